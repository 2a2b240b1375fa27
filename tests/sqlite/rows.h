/* SPDX-License-Identifier: Apache-2.0 */
/* tests/sqlite/rows.h - what the SQLite tests and their worker both do to a database:
 * fill table t (several transactions of inserts, an update, a delete), and a checksum of
 * its rows (FNV-1a over each key and blob, in key order). 0 on success. */
#ifndef RP_TESTS_SQLITE_ROWS_H
#define RP_TESTS_SQLITE_ROWS_H

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>

static inline int rows_fill(sqlite3 *db, int rows)
{
	char sql[512];
	int rc = sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS t(a INTEGER PRIMARY KEY, b BLOB)",
	                      NULL, NULL, NULL);

	for (int k = 0; rc == SQLITE_OK && k < 10; k++) {
		snprintf(sql, sizeof(sql),
		         "BEGIN; WITH RECURSIVE c(x) AS (SELECT %d UNION ALL SELECT x + 1 FROM c "
		         "WHERE x < %d) INSERT INTO t SELECT x, randomblob(50 + x %% 700) FROM c; COMMIT",
		         k * rows / 10 + 1, (k + 1) * rows / 10);
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "UPDATE t SET b = randomblob(900) WHERE a % 7 = 0", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "DELETE FROM t WHERE a % 11 = 0", NULL, NULL, NULL);
	return rc;
}

static inline uint64_t rows_checksum(sqlite3 *db)
{
	sqlite3_stmt *st;
	uint64_t h = 0xcbf29ce484222325ull;

	if (sqlite3_prepare_v2(db, "SELECT a, b FROM t ORDER BY a", -1, &st, NULL) != SQLITE_OK)
		return 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const sqlite3_int64 a = sqlite3_column_int64(st, 0);
		const unsigned char *b = sqlite3_column_blob(st, 1);
		const int n = sqlite3_column_bytes(st, 1);

		for (unsigned i = 0; i < sizeof(a); i++)
			h = (h ^ ((uint64_t)a >> (8 * i) & 0xff)) * 0x100000001b3ull;
		for (int i = 0; i < n; i++)
			h = (h ^ b[i]) * 0x100000001b3ull;
	}
	sqlite3_finalize(st);
	return h;
}

#endif
