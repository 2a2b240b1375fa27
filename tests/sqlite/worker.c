/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/sqlite/worker.c - the other process of tests/sqlite/test_sqlite.c: a SQLite
 * program on the ringpager VFS (rp_sqlite_register), one job per run.
 *
 *   worker counter DB N MODE   add 1 to the counter row N times, one transaction each
 *                              (MODE: a journal_mode); prints nothing, exits 0
 *   worker writer DB MODE      commit transactions until killed: each inserts row `id`
 *                              (the next after the table's largest) with a blob of 300..4K
 *                              bytes, indexes it and updates the summary row; after each
 *                              COMMIT returns, prints "id\n" (flushed)
 *   worker fill DB MODE        fills table t (tests/sqlite/rows.h), prints its checksum
 *   worker tryw DB             one transaction adding 1 to the counter row, waiting at
 *                              most 200 ms for locks: exits 0 committed, 5 busy
 *   worker ext SO DB           loads the extension SO (sqlite3_load_extension) instead of
 *                              linking the VFS, makes and fills DB through it, prints the
 *                              row count
 * MODE is a journal_mode, or BATCH: DELETE with batch_atomic=1 (the worker must then be
 * built over a SQLite with SQLITE_ENABLE_BATCH_ATOMIC_WRITE: it exits 3 otherwise).
 * RINGPAGER_* variables configure the engine. Exit status 0, or 1 with a message.
 */
#include "ringpager-sqlite.h"
#include "sqlite/rows.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sqlite3 *db;

__attribute__((noreturn)) static void fail(const char *what)
{
	fprintf(stderr, "worker: %s: %s\n", what, db ? sqlite3_errmsg(db) : "");
	exit(1);
}

static void exec(const char *sql)
{
	int rc;

	while ((rc = sqlite3_exec(db, sql, NULL, NULL, NULL)) == SQLITE_BUSY)
		;
	if (rc != SQLITE_OK)
		fail(sql);
}

static sqlite3_int64 one(const char *sql)
{
	sqlite3_stmt *st;
	sqlite3_int64 v = 0;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail(sql);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void open_db(const char *path, const char *vfs, const char *mode)
{
	char uri[4200];
	const bool batch = mode && !strcmp(mode, "BATCH");

	if (batch && !sqlite3_compileoption_used("ENABLE_BATCH_ATOMIC_WRITE")) {
		fprintf(stderr, "worker: this SQLite has no SQLITE_ENABLE_BATCH_ATOMIC_WRITE\n");
		exit(3);
	}
	snprintf(uri, sizeof(uri), "file:%s?vfs=%s%s", path, vfs, batch ? "&batch_atomic=1" : "");
	if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
	                    NULL) != SQLITE_OK)
		fail("open");
	sqlite3_busy_timeout(db, 10000);
}

static void mode(const char *m)
{
	char sql[64];

	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s", strcmp(m, "BATCH") ? m : "DELETE");
	exec(sql);
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "ext")) {
		if (sqlite3_open(":memory:", &db) != SQLITE_OK)
			fail("open :memory:");
		sqlite3_enable_load_extension(db, 1);
		char *err = NULL;

		if (sqlite3_load_extension(db, argv[2], NULL, &err) != SQLITE_OK) {
			fprintf(stderr, "worker: load %s: %s\n", argv[2], err ? err : "");
			return 1;
		}
		sqlite3_close(db);
		open_db(argv[3], "ringpager", NULL);
		exec("CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB);"
		     "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000)"
		     "INSERT INTO t SELECT x, randomblob(200) FROM c;");
		printf("%lld\n", (long long)one("SELECT count(*) FROM t"));
		return sqlite3_close(db) == SQLITE_OK ? 0 : 1;
	}
	if (rp_sqlite_register(NULL, 0, NULL) != SQLITE_OK)
		fail("rp_sqlite_register");
	if (argc == 5 && !strcmp(argv[1], "counter")) {
		const long n = atol(argv[3]);

		open_db(argv[2], "ringpager", argv[4]);
		mode(argv[4]);
		for (long i = 0; i < n; i++)
			exec("BEGIN IMMEDIATE; UPDATE c SET v = v + 1; COMMIT");
		return sqlite3_close(db) == SQLITE_OK ? 0 : 1;
	}
	if (argc == 4 && !strcmp(argv[1], "writer")) {
		open_db(argv[2], "ringpager", argv[3]);
		mode(argv[3]);
		for (sqlite3_int64 id = one("SELECT coalesce(max(id), 0) FROM t") + 1;; id++) {
			char sql[512];

			snprintf(sql, sizeof(sql),
			         "BEGIN IMMEDIATE;"
			         "INSERT INTO t VALUES(%lld, randomblob(%lld));"
			         "INSERT INTO ix VALUES(hex(randomblob(8)), %lld);"
			         "UPDATE s SET n = n + 1, last = %lld;"
			         "COMMIT",
			         (long long)id, (long long)(300 + id * 7919 % 3800), (long long)id,
			         (long long)id);
			exec(sql);
			printf("%lld\n", (long long)id);
			fflush(stdout);
		}
	}
	if (argc == 3 && !strcmp(argv[1], "tryw")) {
		open_db(argv[2], "ringpager", NULL);
		sqlite3_busy_timeout(db, 200);
		const int rc = sqlite3_exec(db, "BEGIN IMMEDIATE; UPDATE c SET v = v + 1; COMMIT",
		                            NULL, NULL, NULL);

		sqlite3_close(db);
		return rc == SQLITE_OK ? 0 : (rc & 0xff) == SQLITE_BUSY ? 5 : 1;
	}
	if (argc == 4 && !strcmp(argv[1], "fill")) {
		open_db(argv[2], "ringpager", argv[3]);
		mode(argv[3]);
		if (rows_fill(db, 20000) != SQLITE_OK)
			fail("fill");
		printf("%016llx\n", (unsigned long long)rows_checksum(db));
		return sqlite3_close(db) == SQLITE_OK ? 0 : 1;
	}
	fprintf(stderr, "usage: worker counter DB N MODE | writer DB MODE | fill DB MODE | "
	                "tryw DB | ext SO DB\n");
	return 2;
}
