/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/sqlite/speedtest_main.c - SQLite's speedtest1 (test/speedtest1.c of the installed
 * SQLite's source, which bench/sqlite/speedtest fetches and builds beside this, its main
 * renamed speedtest1_main) with the ringpager VFS registered twice: "ringpager", and
 * "ringpager-batch", which offers batch atomic writes. Two more jobs:
 *
 *   speedtest --commits N VFS DB   N one-row transactions (journal_mode=DELETE,
 *                                  synchronous=FULL) after 10,000 rows; prints
 *                                  "commits N median_us P90_us"
 *   speedtest --check DB           prints "check INTEGRITY CHECKSUM": PRAGMA
 *                                  integrity_check, and FNV-1a over every table's rows
 *                                  (type and bytes of each value, in rowid order)
 *   speedtest ARGS...              speedtest1 itself (--vfs ringpager, ...)
 *
 * RINGPAGER_* variables configure the engine.
 */
#include "ringpager-sqlite.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int speedtest1_main(int argc, char **argv);

static void die(sqlite3 *db, const char *what)
{
	fprintf(stderr, "speedtest: %s: %s\n", what, db ? sqlite3_errmsg(db) : "");
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
	const double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int commits(int n, const char *vfs, const char *path)
{
	sqlite3 *db;
	double *lat = malloc((size_t)n * sizeof(*lat));

	unlink(path);
	if (!lat || sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs))
		die(NULL, path);
	if (sqlite3_exec(db, "PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL;"
	                     "CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB);"
	                     "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
	                     "WHERE x < 10000) INSERT INTO t SELECT x, randomblob(200) FROM c",
	                 NULL, NULL, NULL))
		die(db, "setup");
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, "INSERT INTO t VALUES(NULL, randomblob(200))", -1, &st, NULL))
		die(db, "prepare");
	for (int i = 0; i < n; i++) {
		const double t0 = now();

		if (sqlite3_step(st) != SQLITE_DONE)
			die(db, "insert");
		lat[i] = (now() - t0) * 1e6;
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	qsort(lat, (size_t)n, sizeof(*lat), cmp);
	printf("commits %d %.1f %.1f\n", n, lat[n / 2], lat[n * 9 / 10]);
	free(lat);
	return 0;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static int check(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *tabs, *st;
	uint64_t h = 0xcbf29ce484222325ull;
	char sql[512];

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL))
		die(NULL, path);
	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) ||
	    sqlite3_step(st) != SQLITE_ROW)
		die(db, "integrity_check");
	const char *ic = (const char *)sqlite3_column_text(st, 0);
	char integrity[64];

	snprintf(integrity, sizeof(integrity), "%s", strcmp(ic, "ok") ? "FAILED" : "ok");
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db, "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name",
	                       -1, &tabs, NULL))
		die(db, "schema");
	while (sqlite3_step(tabs) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(tabs, 0);

		h = fnv(h, name, strlen(name));
		snprintf(sql, sizeof(sql), "SELECT * FROM \"%s\" ORDER BY rowid", name);
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL)) /* WITHOUT ROWID: key order */
			snprintf(sql, sizeof(sql), "SELECT * FROM \"%s\"", name);
		if (!st && sqlite3_prepare_v2(db, sql, -1, &st, NULL))
			die(db, sql);
		while (sqlite3_step(st) == SQLITE_ROW)
			for (int c = 0; c < sqlite3_column_count(st); c++) {
				const int type = sqlite3_column_type(st, c);
				const void *v = type == SQLITE_BLOB ? sqlite3_column_blob(st, c)
				                                    : (const void *)sqlite3_column_text(st, c);

				h = fnv(h, &type, sizeof(type));
				if (v)
					h = fnv(h, v, (size_t)sqlite3_column_bytes(st, c));
			}
		sqlite3_finalize(st);
		st = NULL;
	}
	sqlite3_finalize(tabs);
	sqlite3_close(db);
	printf("check %s %016llx\n", integrity, (unsigned long long)h);
	return 0;
}

int main(int argc, char **argv)
{
	rp_config cfg;

	if (rp_config_init(&cfg) || rp_config_load_env(&cfg)) {
		fprintf(stderr, "speedtest: %s\n", rp_errmsg());
		return 1;
	}
	if (rp_sqlite_register_ex("ringpager", 0, &cfg, 0) != SQLITE_OK ||
	    rp_sqlite_register_ex("ringpager-batch", 0, &cfg, RP_SQLITE_BATCH_ATOMIC) != SQLITE_OK) {
		fprintf(stderr, "speedtest: registering the VFS failed\n");
		return 1;
	}
	if (argc == 5 && !strcmp(argv[1], "--commits"))
		return commits(atoi(argv[2]), argv[3], argv[4]);
	if (argc == 3 && !strcmp(argv[1], "--check"))
		return check(argv[2]);
	return speedtest1_main(argc, argv);
}
