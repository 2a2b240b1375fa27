/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ringpager-sqlite.h - SQLite's main database files through ringpager: a VFS.
 *
 * The VFS keeps each main database file in one ringpager file handle per process (every
 * connection of the process to that file shares it), reads and writes it through the
 * handle's cache (rp_read, rp_write: errors come back as SQLite error codes, never as a
 * signal), and makes it durable at xSync (rp_writeout). Rollback journals, WAL files,
 * temporary files and the WAL's shared memory, and every lock, are the default VFS's:
 * the database's POSIX locks are taken on the default VFS's descriptor, and ringpager
 * reads and writes through a descriptor of its own that it never closes while the file
 * is open (rp_store_open_fd). README.md, "SQLite", says how to use it; docs/sqlite.md how
 * it works.
 */
#ifndef RINGPAGER_SQLITE_H
#define RINGPAGER_SQLITE_H

#include "ringpager.h"

#ifdef __cplusplus
extern "C" {
#endif

/* rp_sqlite_register_ex flags */
#define RP_SQLITE_BATCH_ATOMIC 1 /* offer SQLITE_IOCAP_BATCH_ATOMIC (RP_WRITEOUT_ATOMIC) */

/* Registers a VFS named vfs_name (NULL: "ringpager"), the default VFS when make_default
 * is non-zero. cfg configures the process's one engine, which the first database opened
 * through the VFS opens (NULL: the RINGPAGER_* variables over the defaults; URI
 * parameters of that first open named like the keys override either; the last cfg given
 * before that open counts). Registering the same name again changes make_default (and
 * the configuration, before the first open), not the flags. Returns SQLITE_OK, SQLITE_MISUSE for a name
 * longer than 63 bytes, SQLITE_ERROR when no default VFS exists to build on, or
 * SQLITE_NOMEM. For programs linked with the static library (libringpager-sqlite.a; pkg-config ringpager-sqlite);
 * the loadable extension (libringpager_sqlite.so) registers "ringpager" itself. */
RP_API int rp_sqlite_register(const char *vfs_name, int make_default, const rp_config *cfg);
/* rp_sqlite_register with flags (RP_SQLITE_BATCH_ATOMIC: the VFS offers batch atomic
 * writes by default, as the URI parameter batch_atomic=1 does for one file). */
RP_API int rp_sqlite_register_ex(const char *vfs_name, int make_default, const rp_config *cfg,
                                 unsigned flags);

/* sqlite3_file_control(db, "main", RP_SQLITE_FCNTL_FILEH, &fh) sets fh (rp_fileh *) to
 * the file handle behind a database opened through the VFS, for rp_fileh_stats and
 * the like; SQLITE_NOTFOUND for a database of another VFS. */
#define RP_SQLITE_FCNTL_FILEH 0x7270

#ifdef __cplusplus
}
#endif
#endif
