/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/sqlite/test_sqlite.c - the SQLite VFS (sqlite/ringpager_sqlite.c) under SQLite's
 * own use: databases made through it read back by the default VFS in every journal mode,
 * VACUUM, growth far into the address space, batch atomic writes, two processes on one
 * file, kill -9 in a write loop (RP_SQLITE_KILLS per journal mode, default 20), load
 * errors and a full pool as SQLite errors. The other processes are tests/sqlite/worker.c
 * (RP_SQLITE_WORKER) and the loadable extension is RP_SQLITE_EXT.
 */
#include "common/testutil.h"
#include "ringpager-sqlite.h"
#include "io/io.h"
#include "vm/testing.h"
#include "sqlite/rows.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define PG 4096

/* Registers "ringpager" with the test configuration and extra keys (NULL-terminated
 * key, value pairs), once per test process. */
static void reg(const char *const *kv)
{
	rp_config cfg;

	tu_config_init(&cfg);
	cr_assert_eq(rp_config_set(&cfg, "ram_size", "256M"), 0);
	for (; kv && kv[0]; kv += 2)
		cr_assert_eq(rp_config_set(&cfg, kv[0], kv[1]), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_sqlite_register(NULL, 0, &cfg), SQLITE_OK);
}

/* Removes a database and every file beside it: journal, WAL, its index, the redo log. */
static void db_remove(const char *p)
{
	static const char *const sfx[] = {"", "-journal", "-wal", "-shm", "-rplog"};

	for (unsigned i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		char q[4200];

		snprintf(q, sizeof(q), "%s%s", p, sfx[i]);
		unlink(q);
	}
}

/* A fresh path for a database (nothing there or beside it), under the test directory. */
static char *db_path(const char *name)
{
	char *p = malloc(4096);

	snprintf(p, 4096, "%s/sq_%s_%d.db", tu_dir(), name, (int)getpid());
	db_remove(p);
	return p;
}

static void db_unlink(char *p)
{
	db_remove(p);
	free(p);
}

static sqlite3 *db_open(const char *path, const char *vfs)
{
	sqlite3 *db;
	char uri[4200];

	snprintf(uri, sizeof(uri), "file:%s?vfs=%s", path, vfs);
	cr_assert_eq(sqlite3_open_v2(uri, &db,
	                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
	                             NULL),
	             SQLITE_OK, "open %s", uri);
	sqlite3_busy_timeout(db, 10000);
	return db;
}

static void exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &err), SQLITE_OK, "%s: %s", sql,
	             err ? err : "");
}

static sqlite3_int64 one(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	sqlite3_int64 v = -1;

	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
	             sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void expect_ok(sqlite3 *db)
{
	sqlite3_stmt *st;

	cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sqlite3_errmsg(db));
	cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
}

static uint64_t checksum(sqlite3 *db)
{
	return rows_checksum(db);
}

static void fill(sqlite3 *db, int rows)
{
	cr_assert_eq(rows_fill(db, rows), SQLITE_OK, "filling: %s", sqlite3_errmsg(db));
}

/* Opens path through vfs: its rows have checksum sum, and its integrity check is ok. */
static void expect_rows(const char *path, const char *vfs, uint64_t sum)
{
	sqlite3 *db = db_open(path, vfs);

	cr_assert_eq(checksum(db), sum, "%s reads other rows", vfs);
	expect_ok(db);
	cr_assert_eq(sqlite3_close(db), SQLITE_OK);
}

/* ---------------------------------------------------------------- journal modes */

static void roundtrip(const char *mode, const char *const *kv)
{
	char sql[64];
	char *path = db_path(mode);

	reg(kv);
	sqlite3 *db = db_open(path, "ringpager");

	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s", mode);
	exec(db, sql);
	fill(db, 20000);
	const uint64_t sum = checksum(db);

	expect_ok(db);
	cr_assert_eq(sqlite3_close(db), SQLITE_OK);
	expect_rows(path, "unix", sum);      /* the default VFS reads the same rows */
	expect_rows(path, "ringpager", sum); /* and ringpager again, from the file */
	db_unlink(path);
}

Test(sqlite, journal_delete) { roundtrip("DELETE", NULL); }
Test(sqlite, journal_truncate) { roundtrip("TRUNCATE", NULL); }
Test(sqlite, journal_persist) { roundtrip("PERSIST", NULL); }
Test(sqlite, journal_wal) { roundtrip("WAL", NULL); }
Test(sqlite, synchronous_off)
{
	/* nothing synced: the writes leave the process when the write lock ends */
	char *path = db_path("sync_off");

	reg(NULL);
	sqlite3 *db = db_open(path, "ringpager");

	exec(db, "PRAGMA synchronous=OFF");
	fill(db, 5000);
	const uint64_t sum = checksum(db);
	sqlite3 *other = db_open(path, "unix");

	cr_assert_eq(checksum(other), sum);
	sqlite3_close(other);
	sqlite3_close(db);
	db_unlink(path);
}

/* The pages of a database read through xFetch (PRAGMA mmap_size) are the same rows. */
Test(sqlite, mmap)
{
	char *path = db_path("mmap");

	reg(NULL);
	sqlite3 *db = db_open(path, "ringpager");

	exec(db, "PRAGMA mmap_size=268435456");
	fill(db, 20000);
	const uint64_t sum = checksum(db);

	expect_ok(db);
	sqlite3_close(db);
	db = db_open(path, "ringpager");
	exec(db, "PRAGMA mmap_size=268435456");
	cr_assert_eq(checksum(db), sum);
	cr_assert_eq(one(db, "PRAGMA mmap_size"), 268435456);
	sqlite3_close(db);
	expect_rows(path, "unix", sum);
	db_unlink(path);
}

Test(sqlite, vacuum_shrinks)
{
	struct stat before, after;
	char *path = db_path("vacuum");

	reg(NULL);
	sqlite3 *db = db_open(path, "ringpager");

	fill(db, 20000);
	cr_assert_eq(stat(path, &before), 0);
	exec(db, "DELETE FROM t WHERE a % 10 != 0");
	exec(db, "VACUUM");
	const uint64_t sum = checksum(db);
	const sqlite3_int64 bytes = one(db, "PRAGMA page_count") * one(db, "PRAGMA page_size");

	cr_assert_eq(stat(path, &after), 0);
	cr_assert_lt(after.st_size, before.st_size / 4, "%lld bytes after, %lld before",
	             (long long)after.st_size, (long long)before.st_size);
	cr_assert_eq(after.st_size, bytes);
	sqlite3_close(db);
	expect_rows(path, "unix", sum);
	db_unlink(path);
}

/* A file grows to 6 GiB and back through the VFS's own methods; xFetch serves the far
 * page from the one mapping. */
Test(sqlite, grows_far)
{
	char *path = db_path("far");
	char page[PG], back[PG];
	sqlite3_int64 size = 0, limit = (sqlite3_int64)8 << 30;
	void *p = NULL;
	const sqlite3_int64 far = (sqlite3_int64)6 << 30;

	reg(NULL);
	sqlite3_vfs *vfs = sqlite3_vfs_find("ringpager");

	cr_assert(vfs);
	sqlite3_file *f = calloc(1, (size_t)vfs->szOsFile);
	int out = 0;

	sqlite3_filename name = sqlite3_create_filename(path, "", "", 0, NULL); /* as SQLite's */

	cr_assert_eq(vfs->xOpen(vfs, name, f,
	                        SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &out),
	             SQLITE_OK);
	tu_fill(page, PG, 77, (uint64_t)far);
	cr_assert_eq(f->pMethods->xWrite(f, page, PG, far), SQLITE_OK);
	cr_assert_eq(f->pMethods->xFileSize(f, &size), SQLITE_OK);
	cr_assert_eq(size, far + PG);
	cr_assert_eq(f->pMethods->xFileControl(f, SQLITE_FCNTL_MMAP_SIZE, &limit), SQLITE_OK);
	cr_assert_eq(f->pMethods->xFetch(f, far, PG, &p), SQLITE_OK);
	cr_assert(p, "no pointer for a page 6 GiB in");
	cr_assert_eq(memcmp(p, page, PG), 0);
	cr_assert_eq(f->pMethods->xUnfetch(f, far, p), SQLITE_OK);
	cr_assert_eq(f->pMethods->xRead(f, back, PG, far - PG), SQLITE_OK); /* a hole */
	for (int i = 0; i < PG; i++)
		cr_assert_eq(back[i], 0);
	cr_assert_eq(f->pMethods->xSync(f, SQLITE_SYNC_NORMAL), SQLITE_OK);
	struct stat sb;

	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_eq(sb.st_size, far + PG);
	cr_assert_eq(f->pMethods->xTruncate(f, PG), SQLITE_OK);
	cr_assert_eq(f->pMethods->xSync(f, SQLITE_SYNC_NORMAL), SQLITE_OK);
	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_eq(sb.st_size, PG);
	cr_assert_eq(f->pMethods->xClose(f), SQLITE_OK);
	free(f);
	sqlite3_free_filename(name);
	db_unlink(path);
}

/* The batch atomic protocol as SQLite drives it (SQLITE_FCNTL_*_ATOMIC_WRITE), through
 * the file's methods: a rolled-back batch leaves the file as it was, size included; a
 * committed one is in the file. */
Test(sqlite, batch_atomic_methods)
{
	char *path = db_path("batch");
	char page[PG], back[PG];
	sqlite3_int64 size = 0;

	cr_assert_eq(rp_sqlite_register_ex("ringpager", 0, NULL, RP_SQLITE_BATCH_ATOMIC), SQLITE_OK);
	sqlite3_vfs *vfs = sqlite3_vfs_find("ringpager");
	sqlite3_file *f = calloc(1, (size_t)vfs->szOsFile);
	int out = 0;

	sqlite3_filename name = sqlite3_create_filename(path, "", "", 0, NULL); /* as SQLite's */

	cr_assert_eq(vfs->xOpen(vfs, name, f,
	                        SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &out),
	             SQLITE_OK);
	cr_assert(f->pMethods->xDeviceCharacteristics(f) & SQLITE_IOCAP_BATCH_ATOMIC);
	tu_fill(page, PG, 5, 0);
	cr_assert_eq(f->pMethods->xWrite(f, page, PG, 0), SQLITE_OK);
	cr_assert_eq(f->pMethods->xSync(f, SQLITE_SYNC_NORMAL), SQLITE_OK);
	/* rolled back */
	cr_assert_eq(f->pMethods->xFileControl(f, SQLITE_FCNTL_BEGIN_ATOMIC_WRITE, NULL), SQLITE_OK);
	tu_fill(page, PG, 6, 0);
	cr_assert_eq(f->pMethods->xWrite(f, page, PG, 0), SQLITE_OK);
	cr_assert_eq(f->pMethods->xWrite(f, page, PG, 3 * PG), SQLITE_OK);
	cr_assert_eq(f->pMethods->xFileControl(f, SQLITE_FCNTL_ROLLBACK_ATOMIC_WRITE, NULL),
	             SQLITE_OK);
	cr_assert_eq(f->pMethods->xFileSize(f, &size), SQLITE_OK);
	cr_assert_eq(size, PG);
	cr_assert_eq(f->pMethods->xRead(f, back, PG, 0), SQLITE_OK);
	tu_expect_fill(back, PG, 5, 0);
	/* committed */
	cr_assert_eq(f->pMethods->xFileControl(f, SQLITE_FCNTL_BEGIN_ATOMIC_WRITE, NULL), SQLITE_OK);
	cr_assert_eq(f->pMethods->xWrite(f, page, PG, 0), SQLITE_OK);
	cr_assert_eq(f->pMethods->xWrite(f, page, PG, 3 * PG), SQLITE_OK);
	cr_assert_eq(f->pMethods->xFileControl(f, SQLITE_FCNTL_COMMIT_ATOMIC_WRITE, NULL), SQLITE_OK);
	int fd = open(path, O_RDONLY);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, back, PG, 3 * PG), PG);
	tu_expect_fill(back, PG, 6, 0);
	close(fd);
	cr_assert_eq(f->pMethods->xClose(f), SQLITE_OK);
	free(f);
	sqlite3_free_filename(name);
	db_unlink(path);
}

/* ---------------------------------------------------------------- other processes */

static pid_t spawn(char *const argv[], int *out_fd)
{
	posix_spawn_file_actions_t fa;
	int pipefd[2] = {-1, -1};
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	if (out_fd) {
		cr_assert_eq(pipe(pipefd), 0);
		posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
		posix_spawn_file_actions_addclose(&fa, pipefd[0]);
	}
	cr_assert_eq(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ), 0, "spawn %s", argv[0]);
	posix_spawn_file_actions_destroy(&fa);
	if (out_fd) {
		close(pipefd[1]);
		*out_fd = pipefd[0];
	}
	return pid;
}

static int wait_exit(pid_t pid)
{
	int st;

	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *worker(void)
{
	char *w = getenv("RP_SQLITE_WORKER");

	cr_assert(w, "RP_SQLITE_WORKER is not set (meson test sets it)");
	return w;
}

/* The worker over a SQLite built with SQLITE_ENABLE_BATCH_ATOMIC_WRITE, when the build
 * has one (meson -Dsqlite_amalgamation=DIR); the test is skipped otherwise. */
static char *worker_batch(void)
{
	char *w = getenv("RP_SQLITE_WORKER_BATCH");

	if (!w || !*w)
		cr_skip_test("no SQLite with SQLITE_ENABLE_BATCH_ATOMIC_WRITE in this build (%s is "
		             "built without it; meson -Dsqlite_amalgamation=DIR, DIR from "
		             "sqlite/amalgamation, adds one)",
		             sqlite3_libversion());
	return w;
}

/* Two processes add 1,000 each to one counter; this process's connection reads it
 * between (what it holds of the file must follow the others' commits). */
static void counter(const char *mode)
{
	char *path = db_path("counter");
	char sql[64];

	reg(NULL);
	sqlite3 *db = db_open(path, "ringpager");

	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s", mode);
	exec(db, sql);
	exec(db, "CREATE TABLE c(v INTEGER); INSERT INTO c VALUES(0)");
	cr_assert_eq(one(db, "SELECT v FROM c"), 0);
	char *argv[] = {worker(), "counter", path, "1000", (char *)mode, NULL};
	pid_t a = spawn(argv, NULL), b = spawn(argv, NULL);

	cr_assert_eq(wait_exit(a), 0);
	cr_assert_eq(wait_exit(b), 0);
	cr_assert_eq(one(db, "SELECT v FROM c"), 2000, "this process reads a stale counter");
	if (!strcmp(mode, "WAL")) {
		exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
		cr_assert_eq(one(db, "SELECT v FROM c"), 2000);
	}
	sqlite3_close(db);
	db = db_open(path, "unix");
	cr_assert_eq(one(db, "SELECT v FROM c"), 2000);
	expect_ok(db);
	sqlite3_close(db);
	db_unlink(path);
}

Test(sqlite, two_processes_rollback, .timeout = 300) { counter("DELETE"); }
Test(sqlite, two_processes_wal, .timeout = 300) { counter("WAL"); }

/* A second connection of the process, read-only, opened while the first holds a shared
 * lock: the lock stays (another process cannot commit), and the two share one cache
 * (the read-only one reads what the other wrote). */
Test(sqlite, second_connection_keeps_the_first_ones_lock)
{
	char *path = db_path("locks");
	char uri[4200];
	sqlite3 *ro;

	reg(NULL);
	sqlite3 *db = db_open(path, "ringpager");

	exec(db, "CREATE TABLE c(v INTEGER); INSERT INTO c VALUES(0)");
	exec(db, "BEGIN");
	cr_assert_eq(one(db, "SELECT v FROM c"), 0); /* a SHARED lock, held */
	snprintf(uri, sizeof(uri), "file:%s?vfs=ringpager", path);
	cr_assert_eq(sqlite3_open_v2(uri, &ro, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL),
	             SQLITE_OK);
	cr_assert_eq(one(ro, "SELECT v FROM c"), 0);
	char *argv[] = {worker(), "tryw", path, NULL};

	cr_assert_eq(wait_exit(spawn(argv, NULL)), 5,
	             "another process committed while this one held a shared lock");
	exec(db, "COMMIT");
	exec(db, "UPDATE c SET v = 7");
	cr_assert_eq(one(ro, "SELECT v FROM c"), 7);
	cr_assert_eq(wait_exit(spawn(argv, NULL)), 0); /* no lock held now */
	cr_assert_eq(one(ro, "SELECT v FROM c"), 8);
	sqlite3_close(ro);
	sqlite3_close(db);
	db_unlink(path);
}

/* kill -9 of a process committing in a loop, RP_SQLITE_KILLS times: every transaction it
 * reported committed is there, and the file is intact, read by either VFS. */
static void kills(const char *mode, char *prog)
{
	const char *env = getenv("RP_SQLITE_KILLS");
	const int trials = env ? atoi(env) : 20;
	char *path = db_path("kill");
	uint64_t seed = (uint64_t)getpid() * 2654435761u;

	reg(NULL);
	sqlite3 *db = db_open(path, "unix");

	exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB);"
	         "CREATE TABLE ix(k TEXT PRIMARY KEY, id INTEGER);"
	         "CREATE TABLE s(n INTEGER, last INTEGER); INSERT INTO s VALUES(0, 0)");
	sqlite3_close(db);
	for (int k = 0; k < trials; k++) {
		char *argv[] = {prog, "writer", path, (char *)mode, NULL};
		int fd;
		pid_t pid = spawn(argv, &fd);
		FILE *in = fdopen(fd, "r");
		const long want = 1 + (long)(tu_rand(&seed) % 40);
		long last = 0, n = 0;
		char line[64];

		while (n < want && fgets(line, sizeof(line), in)) {
			last = atol(line);
			n++;
		}
		usleep((useconds_t)(tu_rand(&seed) % 3000)); /* anywhere in the next commits */
		kill(pid, SIGKILL);
		while (fgets(line, sizeof(line), in)) /* committed before the kill */
			last = atol(line);
		fclose(in);
		const int st = wait_exit(pid);

		cr_assert(st == 128 + SIGKILL || st == 0, "the writer failed (%d) in trial %d", st, k);
		cr_assert_gt(last, 0, "the writer committed nothing in trial %d", k);
		/* With batch atomic writes, a commit the kill cut is completed from the redo log
		 * when ringpager opens the file: the default VFS knows no log, so it reads the
		 * file only after ringpager has (the next trial's writer, or this). */
		const bool batch = !strcmp(mode, "BATCH");

		if (batch && k % 2) {
			db = db_open(path, "ringpager");
			cr_assert_eq(sqlite3_close(db), SQLITE_OK);
		}
		db = db_open(path, k % 2 ? "unix" : "ringpager");
		expect_ok(db);
		cr_assert_geq(one(db, "SELECT max(id) FROM t"), last, "trial %d: a committed row is gone",
		              k);
		cr_assert_eq(one(db, "SELECT count(*) FROM t"), one(db, "SELECT max(id) FROM t"));
		cr_assert_eq(one(db, "SELECT n FROM s"), one(db, "SELECT count(*) FROM t"));
		cr_assert_eq(one(db, "SELECT last FROM s"), one(db, "SELECT max(id) FROM t"));
		cr_assert_eq(one(db, "SELECT count(*) FROM ix"), one(db, "SELECT count(*) FROM t"));
		cr_assert_eq(sqlite3_close(db), SQLITE_OK);
	}
	db_unlink(path);
}

Test(sqlite, kill_delete, .timeout = 300) { kills("DELETE", worker()); }
Test(sqlite, kill_truncate, .timeout = 300) { kills("TRUNCATE", worker()); }
Test(sqlite, kill_persist, .timeout = 300) { kills("PERSIST", worker()); }
Test(sqlite, kill_wal, .timeout = 300) { kills("WAL", worker()); }
/* BATCH: journal_mode=DELETE, batch_atomic=1: each commit one atomic writeout */
Test(sqlite, kill_batch_atomic, .timeout = 300) { kills("BATCH", worker_batch()); }

/* SQLite commits without a journal through batch atomic writes: the redo log is there,
 * and the rows read back through either VFS. */
Test(sqlite, journal_batch_atomic)
{
	char *prog = worker_batch();
	char *path = db_path("batchdb");
	char line[64] = "", log[4200];
	char *argv[] = {prog, "fill", path, "BATCH", NULL};
	int fd;
	pid_t pid = spawn(argv, &fd);
	FILE *in = fdopen(fd, "r");

	cr_assert(fgets(line, sizeof(line), in));
	fclose(in);
	cr_assert_eq(wait_exit(pid), 0);
	const uint64_t sum = strtoull(line, NULL, 16);

	snprintf(log, sizeof(log), "%s-rplog", path);
	cr_assert_eq(access(log, F_OK), 0, "no redo log: the batches did not reach ringpager");
	reg(NULL);
	expect_rows(path, "unix", sum);
	expect_rows(path, "ringpager", sum);
	db_unlink(path);
}

/* A transaction whose redo log would pass atomic_log_max: the batch fails with an I/O
 * error, and SQLite commits it again with a journal. */
Test(sqlite, batch_too_large_commits_with_a_journal)
{
	char *prog = worker_batch();
	char *path = db_path("batchbig");
	char line[64] = "";
	char *argv[] = {prog, "fill", path, "BATCH", NULL};
	int fd;

	setenv("RINGPAGER_ATOMIC_LOG_MAX", "64k", 1); /* the fill's transactions are larger */
	pid_t pid = spawn(argv, &fd);
	FILE *in = fdopen(fd, "r");

	cr_assert(fgets(line, sizeof(line), in), "the worker printed nothing");
	fclose(in);
	cr_assert_eq(wait_exit(pid), 0);
	reg(NULL);
	expect_rows(path, "unix", strtoull(line, NULL, 16));
	db_unlink(path);
}

/* The loadable extension: .load, then vfs=ringpager in a URI. */
Test(sqlite, extension)
{
	char *so = getenv("RP_SQLITE_EXT");
	char *path = db_path("ext");
	char line[64] = "";

	cr_assert(so, "RP_SQLITE_EXT is not set (meson test sets it)");
	char *argv[] = {worker(), "ext", so, path, NULL};
	int fd;
	pid_t pid = spawn(argv, &fd);
	FILE *in = fdopen(fd, "r");

	cr_assert(fgets(line, sizeof(line), in));
	fclose(in);
	cr_assert_eq(wait_exit(pid), 0);
	cr_assert_eq(atol(line), 5000);
	sqlite3 *db = db_open(path, "unix");

	cr_assert_eq(one(db, "SELECT count(*) FROM t"), 5000);
	expect_ok(db);
	sqlite3_close(db);
	db_unlink(path);
}

/* ---------------------------------------------------------------- errors */

/* A page that fails to load gives the query SQLITE_IOERR_READ, not a signal; once the
 * device reads again, so does the query. */
Test(sqlite, load_error_is_an_error)
{
	char *path = db_path("eio");
	rp_fileh *fh = NULL;

	reg(NULL);
	sqlite3 *db = db_open(path, "ringpager");

	fill(db, 20000);
	const uint64_t sum = checksum(db);

	sqlite3_close(db);
	db = db_open(path, "ringpager"); /* a new handle: nothing cached */
	cr_assert_eq(one(db, "SELECT count(*) FROM sqlite_schema"), 1);
	cr_assert_eq(sqlite3_file_control(db, "main", RP_SQLITE_FCNTL_FILEH, &fh), SQLITE_OK);
	cr_assert(fh);
	struct rpio_fault fault = {
	    .ops = 1u << IO_OP_READ, .off_lo = 8 * PG, .off_hi = UINT64_MAX, .err = EIO};
	struct rpio_dev *dev = vm_test_dev(vm_test_store(fh));

	rpio_dev_inject(dev, &fault);
	sqlite3_stmt *st;

	cr_assert_eq(sqlite3_prepare_v2(db, "SELECT sum(length(b)) FROM t", -1, &st, NULL),
	             SQLITE_OK);
	int rc = sqlite3_step(st);

	cr_assert_eq(rc, SQLITE_IOERR, "step gave %d (%s)", rc, sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_extended_errcode(db), SQLITE_IOERR_READ);
	sqlite3_finalize(st);
	rpio_dev_inject(dev, NULL);
	cr_assert_eq(checksum(db), sum);
	sqlite3_close(db);
	db_unlink(path);
}

/* A transaction with more dirty pages than the pool holds (dirty_policy=keep) fails
 * with an error, not a signal, and the database keeps what was committed before. */
Test(sqlite, pool_full_is_an_error)
{
	static const char *const kv[] = {"ram_size", "8M",          "dirty_policy", "keep",
	                                 "reclaim_wait", "200", "readahead_max", "0", NULL};
	char *path = db_path("full");

	reg(kv);
	sqlite3 *db = db_open(path, "ringpager");

	exec(db, "PRAGMA cache_size=50");
	fill(db, 2000);
	const uint64_t sum = checksum(db);
	int rc = sqlite3_exec(db,
	                      "BEGIN; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
	                      "WHERE x < 4000) INSERT INTO t SELECT x + 100000, randomblob(4000) "
	                      "FROM c; COMMIT",
	                      NULL, NULL, NULL);

	cr_assert_neq(rc, SQLITE_OK, "16 MB of new rows fit an 8 MiB pool");
	cr_assert(rc == SQLITE_NOMEM || rc == SQLITE_FULL || (rc & 0xff) == SQLITE_IOERR,
	          "rc %d (%s)", rc, sqlite3_errmsg(db));
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	expect_rows(path, "unix", sum);
	db_unlink(path);
}

/* The first open's URI parameters that name keys configure the engine (over the
 * registered configuration's 256M); PRAGMA ringpager_stats shows its counters. */
Test(sqlite, stats_pragma)
{
	char *path = db_path("stats");
	char uri[4200];
	sqlite3 *db;

	reg(NULL);
	snprintf(uri, sizeof(uri), "file:%s?vfs=ringpager&cache=private&ram_size=128M", path);
	cr_assert_eq(sqlite3_open_v2(uri, &db,
	                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
	                             NULL),
	             SQLITE_OK);
	sqlite3_stmt *st;

	fill(db, 1000);
	cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA ringpager_stats", -1, &st, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	const char *s = (const char *)sqlite3_column_text(st, 0);

	cr_assert(s && strstr(s, "pool_pages=32768") && strstr(s, "writeouts="), "%s", s);
	sqlite3_finalize(st);
	char *name = NULL;

	cr_assert_eq(sqlite3_file_control(db, "main", SQLITE_FCNTL_VFSNAME, &name), SQLITE_OK);
	cr_assert_str_eq(name, "ringpager");
	sqlite3_free(name);
	sqlite3_close(db);
	db_unlink(path);
}

/* A bad configuration in the URI refuses the open, naming the key. */
Test(sqlite, bad_uri_parameter)
{
	char *path = db_path("bad");
	char uri[4200];
	sqlite3 *db;

	cr_assert_eq(rp_sqlite_register(NULL, 0, NULL), SQLITE_OK);
	snprintf(uri, sizeof(uri), "file:%s?vfs=ringpager&ram_size=12X", path);
	cr_assert_eq(sqlite3_open_v2(uri, &db,
	                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
	                             NULL),
	             SQLITE_CANTOPEN);
	cr_assert(strstr(rp_errmsg(), "ram_size"), "%s", rp_errmsg());
	sqlite3_close(db);
	db_unlink(path);
}
