/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sqlite/ringpager_sqlite.c - a SQLite VFS whose main database files are ringpager file
 * handles (docs/sqlite.md has the design; include/ringpager-sqlite.h the interface).
 *
 * Every file but a main database is the default VFS's own: xOpen opens it straight into
 * the caller's sqlite3_file, which then carries the default VFS's methods. A main
 * database is a struct rps_file: the default VFS's file (for locks and the WAL's shared
 * memory, never read or written) and a reference to the process's struct rps_shared of
 * that file (one per inode: the store, the handle, a mapping for xFetch).
 *
 * Size. The handle may be larger than the file (sh->cap >= sh->sz): writes past the end
 * grow it in steps, and xSync (or the end of a write lock) makes it sz before writing
 * out, so the file on disk is exactly sz bytes.
 *
 * Other processes. Writes leave the process at the latest when its write lock ends
 * (rp_writeout STORE, plus SYNC at xSync), so another process sees them as it would a
 * default-VFS write. What this process's cache holds of another's writes is checked:
 *   rollback journal modes: at each shared lock taken from no lock, the header's change
 *       counter in the file against the handle's (every write transaction changes it):
 *       if they differ, the whole handle is invalidated and learns the file's size again;
 *   WAL: at each WAL read lock, the WAL index's checkpoint state (salt, nBackfill)
 *       against the last one seen: the pages of the frames checkpointed since are
 *       invalidated, as the WAL index lists them (when a gap cannot be read there, the
 *       whole handle).
 *
 * Batch atomic writes (SQLITE_IOCAP_BATCH_ATOMIC, when asked for): the writes between
 * SQLITE_FCNTL_BEGIN_ATOMIC_WRITE and _COMMIT_ATOMIC_WRITE stay in the handle; the commit
 * is one RP_WRITEOUT_ATOMIC writeout, and a rollback is rp_discard.
 */
#ifdef RP_SQLITE_LOADABLE
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1
#else
#include <sqlite3.h>
#endif
#include "ringpager-sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GROW_MIN ((uint64_t)1 << 20)    /* the handle grows by at least this */
#define MAP_RESERVE ((uint64_t)1 << 40) /* address space of an xFetch mapping */

/* The process's engine and its open database files. */
static struct {
	pthread_mutex_t mu;
	rp_engine *eng;
	rp_config cfg;
	bool have_cfg;
	struct rps_shared *files;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* One registered VFS. */
struct rps_vfs {
	sqlite3_vfs base;
	sqlite3_vfs *real; /* the default VFS when registered */
	unsigned flags;    /* RP_SQLITE_* */
	char name[64];
	struct rps_vfs *next;
};

static struct rps_vfs *vfs_list; /* under g.mu */

/* The WAL index's checkpoint state as last seen by this process. */
struct wal_seen {
	bool valid;
	bool restarted; /* seen by this process's writer about to restart the WAL, complete */
	uint32_t salt1, backfill, mxframe;
};

struct rps_shared {
	struct rps_shared *next;
	dev_t dev;
	ino_t ino;
	int refs;
	int fd; /* ours, kept open while the file is open (closing it would drop locks) */
	bool rdonly;
	rp_store *st;
	rp_fileh *fh;
	pthread_mutex_t mu; /* sz, cap, the mapping */
	pthread_mutex_t wal_mu; /* wal, and the invalidations it leads to */
	uint64_t sz;        /* the file's size as SQLite sees it */
	uint64_t cap;       /* the handle's size (>= sz) */
	uint64_t chunk;     /* SQLITE_FCNTL_CHUNK_SIZE */
	uint64_t hint;      /* SQLITE_FCNTL_SIZE_HINT */
	unsigned char counter[4]; /* the handle's change counter (header bytes 24..27) */
	bool counter_ok;          /* ... is known */
	rp_mapping *map;    /* for xFetch, made at the first */
	struct wal_seen wal;
};

struct rps_file {
	sqlite3_file base;
	struct rps_shared *sh;
	sqlite3_file *real;  /* the default VFS's file, after this struct */
	int lock;            /* SQLITE_LOCK_* held */
	bool batch;          /* between BEGIN_ATOMIC_WRITE and its end */
	bool batch_ok;       /* offers SQLITE_IOCAP_BATCH_ATOMIC */
	bool wal_write;      /* holds the WAL's write lock */
	bool wal_reading;    /* took a read lock: check again at the next barrier */
	int64_t mmap_limit;  /* SQLITE_FCNTL_MMAP_SIZE */
	volatile void *shm0; /* the WAL index's first region, once mapped */
	unsigned char hdr[16]; /* header bytes 24..39 as read at the last shared lock */
	bool hdr_ok;           /* ... and the pager has not read them yet */
};

#define REAL_OFF ((sizeof(struct rps_file) + 15) & ~(size_t)15)

static const sqlite3_io_methods rps_methods;

/* ---------------------------------------------------------------- errors */

static void logf_err(int rc, const char *what)
{
	sqlite3_log(rc, "ringpager: %s: %s", what, rp_errmsg());
}

/* A ringpager error as the SQLite code for an operation whose generic failure is io. */
static int ioerr(int err, int io, const char *what)
{
	logf_err(io, what);
	switch (err) {
	case -ENOMEM:
		return SQLITE_IOERR_NOMEM;
	case -ENOSPC:
	case -EDQUOT:
	case -EFBIG:
		return SQLITE_FULL;
	default:
		return io;
	}
}

/* ---------------------------------------------------------------- the engine */

/* The engine, opened at the first database (g.mu held): the registered configuration or
 * the environment's, then the URI parameters of that first file. */
static int engine_get(const char *zName, rp_engine **out)
{
	rp_config cfg;
	int err;

	if (g.eng) {
		*out = g.eng;
		return SQLITE_OK;
	}
	if (g.have_cfg)
		cfg = g.cfg;
	else if ((err = rp_config_init(&cfg)) || (err = rp_config_load_env(&cfg))) {
		logf_err(SQLITE_CANTOPEN, "the engine's configuration");
		return SQLITE_CANTOPEN;
	}
	/* Every URI parameter that names a key (rp_config_get knows it) sets it. */
	for (int i = 0; zName && sqlite3_uri_key(zName, i); i++) {
		const char *key = sqlite3_uri_key(zName, i);
		char now[RP_PATH_MAX];

		if (rp_config_get(&cfg, key, now, sizeof(now)) == -EINVAL)
			continue; /* SQLite's own (vfs, mode, cache, ...) or the VFS's */
		if (rp_config_set(&cfg, key, sqlite3_uri_parameter(zName, key))) {
			logf_err(SQLITE_CANTOPEN, "a URI parameter");
			return SQLITE_CANTOPEN;
		}
	}
	if ((err = rp_engine_open(&cfg, &g.eng))) {
		logf_err(SQLITE_CANTOPEN, "opening the engine");
		return SQLITE_CANTOPEN;
	}
	*out = g.eng;
	return SQLITE_OK;
}

/* ---------------------------------------------------------------- shared files */

/* The shared state of the file zName, made at its first open in the process (g.mu
 * held). A descriptor is opened only then, and kept: closing any descriptor of the file
 * would drop the POSIX locks the process's other connections hold on it. Read-write
 * where the file allows it, so that read-only and read-write connections share it. */
static int shared_get(const char *zName, bool rdonly, struct rps_shared **out)
{
	struct stat sb;
	struct rps_shared *sh;
	rp_engine *eng;
	int rc, err;

	if (stat(zName, &sb) < 0) {
		sqlite3_log(SQLITE_CANTOPEN, "ringpager: %s: %s", zName, strerror(errno));
		return SQLITE_CANTOPEN;
	}
	for (sh = g.files; sh; sh = sh->next)
		if (sh->dev == sb.st_dev && sh->ino == sb.st_ino) {
			if (sh->rdonly && !rdonly) {
				sqlite3_log(SQLITE_CANTOPEN, "ringpager: %s is open in this process through "
				                             "a read-only descriptor (the file was not "
				                             "writable then); close it first",
				            zName);
				return SQLITE_CANTOPEN;
			}
			sh->refs++;
			*out = sh;
			return SQLITE_OK;
		}
	if ((rc = engine_get(zName, &eng)) != SQLITE_OK)
		return rc;
	if (!(sh = calloc(1, sizeof(*sh))))
		return SQLITE_NOMEM;
	sh->fd = open(zName, O_RDWR | O_CLOEXEC);
	if (sh->fd < 0 && rdonly && (errno == EACCES || errno == EROFS || errno == EPERM))
		sh->fd = open(zName, O_RDONLY | O_CLOEXEC);
	sh->rdonly = sh->fd >= 0 && (fcntl(sh->fd, F_GETFL) & O_ACCMODE) == O_RDONLY;
	if (sh->fd < 0 || fstat(sh->fd, &sb) < 0) {
		sqlite3_log(SQLITE_CANTOPEN, "ringpager: opening %s: %s", zName, strerror(errno));
		if (sh->fd >= 0)
			close(sh->fd);
		free(sh);
		return SQLITE_CANTOPEN;
	}
	sh->dev = sb.st_dev;
	sh->ino = sb.st_ino;
	sh->refs = 1;
	pthread_mutex_init(&sh->mu, NULL);
	pthread_mutex_init(&sh->wal_mu, NULL);
	if ((err = rp_store_open_fd(eng, sh->fd, sh->rdonly ? O_RDONLY : O_RDWR, &sh->st)) ||
	    (err = rp_fileh_open(sh->st, &sh->fh))) {
		logf_err(SQLITE_CANTOPEN, zName);
		if (sh->st)
			rp_store_close(sh->st);
		close(sh->fd); /* no connection of the process has locked the file yet */
		pthread_mutex_destroy(&sh->mu);
		pthread_mutex_destroy(&sh->wal_mu);
		free(sh);
		return SQLITE_CANTOPEN;
	}
	sh->sz = sh->cap = rp_fileh_size(sh->fh);
	sh->next = g.files;
	g.files = sh;
	*out = sh;
	return SQLITE_OK;
}

static void shared_put(struct rps_shared *sh)
{
	pthread_mutex_lock(&g.mu);
	if (--sh->refs > 0) {
		pthread_mutex_unlock(&g.mu);
		return;
	}
	for (struct rps_shared **pp = &g.files; *pp; pp = &(*pp)->next)
		if (*pp == sh) {
			*pp = sh->next;
			break;
		}
	pthread_mutex_unlock(&g.mu);
	if (sh->map)
		rp_unmap(sh->map);
	rp_fileh_close(sh->fh);
	rp_store_close(sh->st);
	close(sh->fd);
	pthread_mutex_destroy(&sh->mu);
	pthread_mutex_destroy(&sh->wal_mu);
	free(sh);
}

/* Makes the handle the file's size (sh->mu held): what a writeout writes. */
static int fit(struct rps_shared *sh)
{
	int err;

	if (sh->cap == sh->sz)
		return 0;
	if ((err = rp_fileh_resize(sh->fh, sh->sz)))
		return err;
	sh->cap = sh->sz;
	return 0;
}

/* Writes the handle out with flags, at its exact size. */
static int flush(struct rps_shared *sh, int flags, const char *what)
{
	int err;

	pthread_mutex_lock(&sh->mu);
	err = fit(sh);
	pthread_mutex_unlock(&sh->mu);
	if (!err)
		err = rp_writeout(sh->fh, flags);
	return err ? ioerr(err, SQLITE_IOERR_FSYNC, what) : SQLITE_OK;
}

/* Writes out (STORE, not synced) what the handle holds that the file does not: dirty
 * pages, or another size. SQLITE_OK when there is nothing to write. */
static int write_pending(struct rps_shared *sh, const char *what)
{
	uint64_t dirty = 0;
	bool sized;

	if (sh->rdonly)
		return SQLITE_OK;
	(void)rp_fileh_dirty(sh->fh, &dirty);
	pthread_mutex_lock(&sh->mu);
	sized = sh->sz == sh->cap && sh->cap == rp_store_size(sh->st);
	pthread_mutex_unlock(&sh->mu);
	if (!dirty && sized)
		return SQLITE_OK;
	return flush(sh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED, what);
}

/* The store changed from outside: drops [off, off + len) ranges (NULL: everything) and
 * learns the file's size again. What this process has not written out yet goes first
 * (an invalidate drops dirty pages): with synchronous=OFF in WAL mode this process's own
 * checkpoint may still hold its pages when another connection of it sees nBackfill
 * move. */
static void refresh(struct rps_shared *sh, const rp_range *r, size_t n)
{
	(void)write_pending(sh, "before an invalidation");
	pthread_mutex_lock(&sh->mu);
	sh->counter_ok = false;
	if (fit(sh) == 0) {
		const rp_range all = {0, (size_t)sh->cap};

		if (!r) {
			r = &all;
			n = all.len ? 1 : 0;
		}
		if ((!n || rp_invalidatev(sh->fh, r, n) == 0) && rp_fileh_refresh(sh->fh) == 0)
			sh->sz = sh->cap = rp_fileh_size(sh->fh);
	}
	pthread_mutex_unlock(&sh->mu);
}

/* Rollback modes: whether another process changed the file since this process's cache
 * last agreed with it. Every write transaction there changes the header's change counter
 * (bytes 24..27), a change of size included: one read of the header's bytes 24..39 from
 * the file, to compare the counter with the handle's (kept in sh->counter, which this
 * process's own writes of the header update). No write of this process is pending then
 * (a write lock's end wrote them out), so after the check the handle holds the same 16
 * bytes: the pager's read of them, which follows, is served from p->hdr. */
static void check_counter(struct rps_file *p)
{
	struct rps_shared *sh = p->sh;
	unsigned char *disk = p->hdr;

	if (pread(sh->fd, disk, sizeof(p->hdr), 24) != (ssize_t)sizeof(p->hdr)) {
		/* shorter than a header: an empty file, or another process truncated it */
		pthread_mutex_lock(&sh->mu);
		const bool same = sh->sz < 28;

		pthread_mutex_unlock(&sh->mu);
		if (!same)
			refresh(sh, NULL, 0);
		return;
	}
	pthread_mutex_lock(&sh->mu);
	if (!sh->counter_ok && sh->sz >= 28 && rp_read(sh->fh, 24, sh->counter, 4) == 4)
		sh->counter_ok = true;
	const bool same = sh->counter_ok && !memcmp(disk, sh->counter, 4);

	pthread_mutex_unlock(&sh->mu);
	if (!same)
		refresh(sh, NULL, 0);
	/* What the handle holds there now, from the file: the pager reads exactly these
	 * bytes next (its change counter and page count), and gets them without a copy. */
	p->hdr_ok = true;
}

/* ---------------------------------------------------------------- WAL */

/* The WAL index (SQLite's wal.c): two copies of a 48-byte header, then the checkpoint
 * information (nBackfill first), 136 bytes in all; then the page number of each frame,
 * 4062 in the first 32 KiB region and 4096 in each next one. */
#define WALIDX_HDR 136
#define WALIDX_REGION 32768
#define WALIDX_NPAGE 4096
#define WALIDX_NPAGE_ONE (WALIDX_NPAGE - WALIDX_HDR / 4)

static uint32_t ld32(const volatile void *base, size_t off)
{
	uint32_t v;

	__atomic_load((const uint32_t *)((const char *)base + off), &v, __ATOMIC_ACQUIRE);
	return v;
}

/* The page number of frame `frame` (1-based), or 0 when its region cannot be read. */
static uint32_t wal_frame_page(struct rps_file *p, uint32_t frame)
{
	volatile void *region;
	uint32_t k, i;

	if (frame <= WALIDX_NPAGE_ONE) {
		k = 0;
		i = WALIDX_HDR / 4 + frame - 1;
	} else {
		k = 1 + (frame - WALIDX_NPAGE_ONE - 1) / WALIDX_NPAGE;
		i = (frame - WALIDX_NPAGE_ONE - 1) % WALIDX_NPAGE;
	}
	if (k == 0)
		region = p->shm0;
	else if (p->real->pMethods->xShmMap(p->real, (int)k, WALIDX_REGION, 0, &region) !=
	             SQLITE_OK ||
	         !region)
		return 0;
	return ld32(region, (size_t)i * 4);
}

/* Reads the WAL index's header (retrying while a writer changes it) and its nBackfill. */
static bool wal_state(const volatile void *h, struct wal_seen *out, uint32_t *psz)
{
	for (int tries = 0; tries < 100; tries++) {
		uint32_t a[12], b[12];

		for (int i = 0; i < 12; i++)
			a[i] = ld32(h, (size_t)i * 4);
		for (int i = 0; i < 12; i++)
			b[i] = ld32(h, 48 + (size_t)i * 4);
		if (memcmp(a, b, sizeof(a)))
			continue;
		const uint32_t raw = a[3] >> 16; /* szPage, bytes 14..15 (65536 is 1) */

		*psz = (raw & 0xfe00) + ((raw & 1) << 16);
		*out = (struct wal_seen){.valid = true, .salt1 = a[8], .mxframe = a[4],
		                         .backfill = ld32(h, 96)};
		return true;
	}
	return false;
}

/* Invalidates the pages other connections' checkpoints wrote since the WAL index's
 * state was last seen, then records the state. adopt: this process's own checkpoint
 * wrote them, through the handle: record the state only. */
static void wal_check(struct rps_file *p, bool adopt)
{
	struct rps_shared *sh = p->sh;
	const volatile void *h = p->shm0;
	struct wal_seen was, now;
	uint32_t psz, from;

	if (!h)
		return;
	pthread_mutex_lock(&sh->wal_mu);
	if (!wal_state(h, &now, &psz)) {
		refresh(sh, NULL, 0);
		goto out;
	}
	was = sh->wal;
	sh->wal = now;
	if (adopt)
		goto out;
	if (!was.valid) {
		/* The first look of this process: what the cache holds may predate any number
		 * of checkpoints. */
		refresh(sh, NULL, 0);
		goto out;
	}
	if (now.salt1 == was.salt1 && now.backfill >= was.backfill)
		from = was.backfill; /* the same WAL: the frames backfilled since */
	else if (now.salt1 == was.salt1 + 1 && was.restarted)
		from = 0; /* this process restarted it after a complete checkpoint it saw */
	else {
		refresh(sh, NULL, 0);
		goto out;
	}
	if (now.backfill == from || !psz)
		goto out;
	rp_range *r = malloc((now.backfill - from) * sizeof(*r));
	size_t n = 0;

	for (uint32_t f = from + 1; r && f <= now.backfill; f++) {
		const uint32_t pg = wal_frame_page(p, f);

		if (!pg)
			break;
		r[n++] = (rp_range){(size_t)(pg - 1) * psz, psz};
	}
	if (!r || n < now.backfill - from) { /* a page number that cannot be read */
		free(r);
		refresh(sh, NULL, 0);
		goto out;
	}
	/* Pages past the handle's end are the size's business (refresh learns it). */
	pthread_mutex_lock(&sh->mu);
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (r[i].off + r[i].len <= sh->cap)
			r[k++] = r[i];
	pthread_mutex_unlock(&sh->mu);
	refresh(sh, r, k);
	free(r);
out:
	pthread_mutex_unlock(&sh->wal_mu);
}

/* ---------------------------------------------------------------- io methods */

static int rps_close(sqlite3_file *f)
{
	struct rps_file *p = (struct rps_file *)f;
	int rc = SQLITE_OK;

	if (!p->batch)
		rc = write_pending(p->sh, "close");
	if (p->real->pMethods)
		p->real->pMethods->xClose(p->real);
	shared_put(p->sh);
	return rc;
}

/* After a failed read: the pages that failed to load stay failed in the handle until
 * invalidated; forgetting them lets the next read try the device again. Only when the
 * handle holds no changes (an invalidate would drop a dirty page in the range). */
static void forget_failed(struct rps_shared *sh, uint64_t off, uint64_t len)
{
	const uint64_t psz = rp_engine_page_size(g.eng), lo = off / psz * psz;
	uint64_t dirty = 1;

	if (rp_fileh_dirty(sh->fh, &dirty) == 0 && dirty == 0)
		(void)rp_invalidate(sh->fh, lo, (off + len + psz - 1) / psz * psz - lo);
}

static int rps_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	struct rps_file *p = (struct rps_file *)f;
	struct rps_shared *sh = p->sh;
	uint64_t sz;
	size_t n = 0;

	if (p->hdr_ok) {
		p->hdr_ok = false;
		if (off == 24 && amt == (int)sizeof(p->hdr)) {
			memcpy(buf, p->hdr, sizeof(p->hdr));
			return SQLITE_OK;
		}
	}
	pthread_mutex_lock(&sh->mu);
	sz = sh->sz;
	pthread_mutex_unlock(&sh->mu);
	if ((uint64_t)off < sz) {
		const uint64_t want = sz - (uint64_t)off < (uint64_t)amt ? sz - (uint64_t)off : (uint64_t)amt;

		while (n < want) {
			ssize_t r = rp_read(sh->fh, (uint64_t)off + n, (char *)buf + n, want - n);

			if (r <= 0) {
				const int rc = r ? ioerr((int)r, SQLITE_IOERR_READ, "xRead") : SQLITE_IOERR_READ;

				forget_failed(sh, (uint64_t)off + n, want - n); /* after the message */
				return rc;
			}
			n += (size_t)r;
		}
	}
	if (n < (size_t)amt) {
		memset((char *)buf + n, 0, (size_t)amt - n);
		return SQLITE_IOERR_SHORT_READ;
	}
	return SQLITE_OK;
}

static uint64_t round_up(uint64_t v, uint64_t to)
{
	return to ? (v + to - 1) / to * to : v;
}

static int rps_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
	struct rps_file *p = (struct rps_file *)f;
	struct rps_shared *sh = p->sh;
	const uint64_t end = (uint64_t)off + (uint64_t)amt;
	int err = 0;

	p->hdr_ok = false;
	pthread_mutex_lock(&sh->mu);
	if (end > sh->cap) {
		uint64_t cap = sh->cap + (sh->cap / 8 > GROW_MIN ? sh->cap / 8 : GROW_MIN);

		if (cap < end)
			cap = end;
		if (cap < sh->hint)
			cap = sh->hint;
		cap = round_up(cap, sh->chunk);
		if ((err = rp_fileh_resize(sh->fh, cap)) == 0)
			sh->cap = cap;
	}
	if (!err && end > sh->sz)
		sh->sz = round_up(end, sh->chunk);
	pthread_mutex_unlock(&sh->mu);
	if (err)
		return ioerr(err, SQLITE_IOERR_WRITE, "xWrite: growing the file");
	for (size_t n = 0; n < (size_t)amt;) {
		ssize_t r = rp_write(sh->fh, (uint64_t)off + n, (const char *)buf + n, (size_t)amt - n);

		if (r <= 0) {
			/* In a batch, an I/O error makes SQLite commit again with a journal. */
			if (p->batch)
				return SQLITE_IOERR_WRITE;
			return r ? ioerr((int)r, SQLITE_IOERR_WRITE, "xWrite") : SQLITE_IOERR_WRITE;
		}
		n += (size_t)r;
	}
	if (off <= 24 && end >= 28) { /* the header's change counter */
		pthread_mutex_lock(&sh->mu);
		memcpy(sh->counter, (const char *)buf + 24 - off, 4);
		sh->counter_ok = true;
		pthread_mutex_unlock(&sh->mu);
	}
	return SQLITE_OK;
}

static int rps_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct rps_file *p = (struct rps_file *)f;
	struct rps_shared *sh = p->sh;
	const uint64_t sz = round_up((uint64_t)size, sh->chunk);
	int err = 0;

	p->hdr_ok = false;
	pthread_mutex_lock(&sh->mu);
	if (sz < sh->cap) {
		if ((err = rp_fileh_resize(sh->fh, sz)) == 0)
			sh->cap = sz;
	}
	if (!err)
		sh->sz = sz;
	if (sz < 28)
		sh->counter_ok = false;
	pthread_mutex_unlock(&sh->mu);
	return err ? ioerr(err, SQLITE_IOERR_TRUNCATE, "xTruncate") : SQLITE_OK;
}

static int rps_sync(sqlite3_file *f, int flags)
{
	struct rps_file *p = (struct rps_file *)f;

	(void)flags;
	return flush(p->sh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC, "xSync");
}

static int rps_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	struct rps_shared *sh = ((struct rps_file *)f)->sh;

	pthread_mutex_lock(&sh->mu);
	*size = (sqlite3_int64)sh->sz;
	pthread_mutex_unlock(&sh->mu);
	return SQLITE_OK;
}

static int rps_lock(sqlite3_file *f, int level)
{
	struct rps_file *p = (struct rps_file *)f;
	int rc = p->real->pMethods->xLock(p->real, level);

	if (rc == SQLITE_OK) {
		if (p->lock == SQLITE_LOCK_NONE && level >= SQLITE_LOCK_SHARED && !p->shm0)
			check_counter(p);
		p->lock = level > p->lock ? level : p->lock;
	}
	return rc;
}

static int rps_unlock(sqlite3_file *f, int level)
{
	struct rps_file *p = (struct rps_file *)f;
	int rc = SQLITE_OK;

	/* The end of a write: what SQLite did not sync (synchronous=OFF) leaves the process
	 * now, so that the next process to lock the file reads it. */
	if (p->lock > SQLITE_LOCK_SHARED && level <= SQLITE_LOCK_SHARED && !p->batch)
		rc = write_pending(p->sh, "unlock");
	p->hdr_ok = false;
	int rc2 = p->real->pMethods->xUnlock(p->real, level);

	if (rc2 == SQLITE_OK)
		p->lock = level;
	return rc != SQLITE_OK ? rc : rc2;
}

static int rps_check_reserved(sqlite3_file *f, int *out)
{
	struct rps_file *p = (struct rps_file *)f;

	return p->real->pMethods->xCheckReservedLock(p->real, out);
}

static char *stats_text(struct rps_shared *sh)
{
	struct rp_fileh_stats fs;
	struct rp_stats es;

	rp_fileh_stats(sh->fh, &fs);
	rp_stats(g.eng, &es);
	return sqlite3_mprintf(
	    "file: size=%llu resident_pages=%llu dirty_pages=%llu loads=%llu pages_loaded=%llu "
	    "pages_written=%llu pages_evicted=%llu writeouts=%llu; engine: pool_pages=%llu "
	    "resident_pages=%llu loads=%llu load_errors=%llu pages_loaded=%llu writeouts=%llu "
	    "writeout_errors=%llu pages_written=%llu pages_evicted=%llu memory_failures=%llu "
	    "readahead_pages=%llu",
	    (unsigned long long)fs.size, (unsigned long long)fs.resident_pages,
	    (unsigned long long)fs.dirty_pages, (unsigned long long)fs.loads,
	    (unsigned long long)fs.pages_loaded, (unsigned long long)fs.pages_written,
	    (unsigned long long)fs.pages_evicted, (unsigned long long)fs.writeouts,
	    (unsigned long long)es.pool_pages, (unsigned long long)es.resident_pages,
	    (unsigned long long)es.loads, (unsigned long long)es.load_errors,
	    (unsigned long long)es.pages_loaded, (unsigned long long)es.writeouts,
	    (unsigned long long)es.writeout_errors, (unsigned long long)es.pages_written,
	    (unsigned long long)es.pages_evicted, (unsigned long long)es.memory_failures,
	    (unsigned long long)es.readahead_pages);
}

static int rps_file_control(sqlite3_file *f, int op, void *arg)
{
	struct rps_file *p = (struct rps_file *)f;
	struct rps_shared *sh = p->sh;
	int err;

	switch (op) {
	case SQLITE_FCNTL_SIZE_HINT:
		pthread_mutex_lock(&sh->mu);
		sh->hint = (uint64_t)*(sqlite3_int64 *)arg;
		pthread_mutex_unlock(&sh->mu);
		return SQLITE_OK;
	case SQLITE_FCNTL_CHUNK_SIZE:
		pthread_mutex_lock(&sh->mu);
		sh->chunk = *(int *)arg > 0 ? (uint64_t) * (int *)arg : 0;
		pthread_mutex_unlock(&sh->mu);
		return SQLITE_OK;
	case SQLITE_FCNTL_VFSNAME:
		*(char **)arg = sqlite3_mprintf("ringpager");
		return SQLITE_OK;
	case SQLITE_FCNTL_MMAP_SIZE: {
		sqlite3_int64 want = *(sqlite3_int64 *)arg;

		if (want >= 0)
			p->mmap_limit = want > (sqlite3_int64)MAP_RESERVE ? (sqlite3_int64)MAP_RESERVE : want;
		*(sqlite3_int64 *)arg = p->mmap_limit;
		return SQLITE_OK;
	}
	case SQLITE_FCNTL_PRAGMA: {
		char **a = arg;

		if (a[1] && !sqlite3_stricmp(a[1], "ringpager_stats")) {
			a[0] = stats_text(sh);
			return a[0] ? SQLITE_OK : SQLITE_NOMEM;
		}
		return SQLITE_NOTFOUND;
	}
	case RP_SQLITE_FCNTL_FILEH:
		*(rp_fileh **)arg = sh->fh;
		return SQLITE_OK;
	case SQLITE_FCNTL_BEGIN_ATOMIC_WRITE:
		if (!p->batch_ok)
			return SQLITE_NOTFOUND;
		p->batch = true;
		return SQLITE_OK;
	case SQLITE_FCNTL_COMMIT_ATOMIC_WRITE:
		if (!p->batch)
			return SQLITE_MISUSE;
		/* Any failure is an I/O error to SQLite, which then rolls the batch back and
		 * commits again with a journal. */
		if (flush(sh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC |
		                  RP_WRITEOUT_ATOMIC,
		          "the batch's atomic writeout") != SQLITE_OK)
			return SQLITE_IOERR_WRITE;
		p->batch = false;
		return SQLITE_OK;
	case SQLITE_FCNTL_ROLLBACK_ATOMIC_WRITE:
		if (!p->batch)
			return SQLITE_OK;
		p->batch = false;
		pthread_mutex_lock(&sh->mu);
		err = rp_discard(sh->fh);
		sh->sz = sh->cap = rp_fileh_size(sh->fh);
		sh->counter_ok = false;
		pthread_mutex_unlock(&sh->mu);
		return err ? ioerr(err, SQLITE_IOERR_WRITE, "rolling the batch back") : SQLITE_OK;
	default:
		return p->real->pMethods->xFileControl(p->real, op, arg);
	}
}

static int rps_sector_size(sqlite3_file *f)
{
	struct rps_file *p = (struct rps_file *)f;

	return p->real->pMethods->xSectorSize(p->real);
}

static int rps_device_characteristics(sqlite3_file *f)
{
	struct rps_file *p = (struct rps_file *)f;
	int c = p->real->pMethods->xDeviceCharacteristics(p->real);

	return p->batch_ok ? c | SQLITE_IOCAP_BATCH_ATOMIC : c;
}

static int rps_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **pp)
{
	struct rps_file *p = (struct rps_file *)f;
	int rc = p->real->pMethods->xShmMap(p->real, region, size, extend, pp);

	if (rc == SQLITE_OK && region == 0 && *pp)
		p->shm0 = *pp;
	return rc;
}

/* WAL locks (wal.c): 0 write, 1 checkpoint, 2 recover, 3.. read marks (3 + 1.. are
 * what a writer restarting the WAL takes exclusively). */
#define WAL_WRITE_LOCK 0
#define WAL_CKPT_LOCK 1
#define WAL_READ_LOCK0 3

static bool covers(int ofst, int n, int slot)
{
	return ofst <= slot && ofst + n > slot;
}

/* The WAL's locks, and what this process's cache learns at each:
 *   a read lock: other processes' checkpoints since the last look (wal_check), again at
 *       the barrier that follows, after which SQLite reads nBackfill;
 *   the checkpoint lock, taken: the same; released: this process's checkpoint wrote
 *       through the handle (its unsynced writes leave the process now), so its state is
 *       adopted as seen, nothing invalidated;
 *   read marks 1.. taken exclusively by this process's writer: it is about to restart
 *       the WAL, which it does only after a complete checkpoint; seen now, the restart
 *       will not hide another process's backfill. */
static int rps_shm_lock(sqlite3_file *f, int ofst, int n, int flags)
{
	struct rps_file *p = (struct rps_file *)f;
	struct rps_shared *sh = p->sh;
	const bool unlock = flags & SQLITE_SHM_UNLOCK, excl = flags & SQLITE_SHM_EXCLUSIVE;
	int rc;

	if (unlock && excl && covers(ofst, n, WAL_CKPT_LOCK)) {
		(void)write_pending(sh, "checkpoint end");
		wal_check(p, true);
	}
	rc = p->real->pMethods->xShmLock(p->real, ofst, n, flags);
	if (rc != SQLITE_OK)
		return rc;
	if (unlock) {
		if (excl && covers(ofst, n, WAL_WRITE_LOCK))
			p->wal_write = false;
	} else if (excl && covers(ofst, n, WAL_WRITE_LOCK)) {
		p->wal_write = true;
	} else if (excl && ofst > WAL_READ_LOCK0 && p->wal_write) {
		wal_check(p, false);
		pthread_mutex_lock(&sh->wal_mu);
		sh->wal.restarted = sh->wal.backfill == sh->wal.mxframe;
		pthread_mutex_unlock(&sh->wal_mu);
	} else if (!excl && ofst >= WAL_READ_LOCK0) {
		wal_check(p, false);
		p->wal_reading = true;
	} else if (excl && covers(ofst, n, WAL_CKPT_LOCK)) {
		wal_check(p, false);
	}
	return rc;
}

static void rps_shm_barrier(sqlite3_file *f)
{
	struct rps_file *p = (struct rps_file *)f;

	p->real->pMethods->xShmBarrier(p->real);
	if (p->wal_reading) {
		p->wal_reading = false;
		wal_check(p, false);
	}
}

static int rps_shm_unmap(sqlite3_file *f, int del)
{
	struct rps_file *p = (struct rps_file *)f;

	p->shm0 = NULL;
	return p->real->pMethods->xShmUnmap(p->real, del);
}

/* A pointer into the file's one mapping (read-only, reserved MAP_RESERVE bytes long, so
 * that it never moves as the file grows). As with the kernel's mmap of a file, and the
 * default VFS's, the pages are not pinned: a page that fails to load, or finds no room in
 * the pool, raises SIGBUS where SQLite touches it (pinning each fetch to turn that into
 * an error was measured and not kept: docs/benchmarks.md, "SQLite"). docs/sqlite.md. */
static int rps_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
	struct rps_file *p = (struct rps_file *)f;
	struct rps_shared *sh = p->sh;

	*pp = NULL;
	if (off < 0 || amt <= 0 || off + amt > p->mmap_limit)
		return SQLITE_OK;
	pthread_mutex_lock(&sh->mu);
	const bool inside = (uint64_t)(off + amt) <= sh->sz;

	if (inside && !sh->map && rp_map(sh->fh, 0, MAP_RESERVE, PROT_READ, &sh->map) != 0) {
		logf_err(SQLITE_OK, "mapping the file for xFetch");
		sh->map = NULL;
	}
	if (inside && sh->map)
		*pp = (char *)rp_mapping_addr(sh->map) + off;
	pthread_mutex_unlock(&sh->mu);
	return SQLITE_OK;
}

static int rps_unfetch(sqlite3_file *f, sqlite3_int64 off, void *ptr)
{
	(void)f;
	(void)off;
	(void)ptr;
	return SQLITE_OK; /* nothing was pinned; the mapping stays until the file closes */
}

static const sqlite3_io_methods rps_methods = {
    3,
    rps_close,
    rps_read,
    rps_write,
    rps_truncate,
    rps_sync,
    rps_file_size,
    rps_lock,
    rps_unlock,
    rps_check_reserved,
    rps_file_control,
    rps_sector_size,
    rps_device_characteristics,
    rps_shm_map,
    rps_shm_lock,
    rps_shm_barrier,
    rps_shm_unmap,
    rps_fetch,
    rps_unfetch,
};

/* ---------------------------------------------------------------- the VFS */

static int uri_bool(const char *zName, const char *key, int dflt)
{
	return zName ? sqlite3_uri_boolean(zName, key, dflt) : dflt;
}

static int rps_open(sqlite3_vfs *vfs, const char *zName, sqlite3_file *f, int flags, int *outFlags)
{
	struct rps_vfs *v = (struct rps_vfs *)vfs;
	struct rps_file *p = (struct rps_file *)f;
	int rc;

	if (!(flags & SQLITE_OPEN_MAIN_DB) || !zName)
		return v->real->xOpen(v->real, zName, f, flags, outFlags);
	memset(p, 0, sizeof(*p));
	p->real = (sqlite3_file *)((char *)p + REAL_OFF);
	if ((rc = v->real->xOpen(v->real, zName, p->real, flags, outFlags)) != SQLITE_OK)
		return rc;
	const bool rdonly = !(flags & SQLITE_OPEN_READWRITE);

	pthread_mutex_lock(&g.mu);
	rc = shared_get(zName, rdonly, &p->sh);
	pthread_mutex_unlock(&g.mu);
	if (rc != SQLITE_OK) {
		p->real->pMethods->xClose(p->real);
		return rc;
	}
	p->batch_ok = !rdonly && uri_bool(zName, "batch_atomic", !!(v->flags & RP_SQLITE_BATCH_ATOMIC));
	p->mmap_limit = 0;
	p->base.pMethods = &rps_methods;
	return SQLITE_OK;
}

static sqlite3_vfs *real_of(sqlite3_vfs *vfs)
{
	return ((struct rps_vfs *)vfs)->real;
}

static int rps_delete(sqlite3_vfs *vfs, const char *z, int sync)
{
	return real_of(vfs)->xDelete(real_of(vfs), z, sync);
}

static int rps_access(sqlite3_vfs *vfs, const char *z, int flags, int *out)
{
	return real_of(vfs)->xAccess(real_of(vfs), z, flags, out);
}

static int rps_full_pathname(sqlite3_vfs *vfs, const char *z, int n, char *out)
{
	return real_of(vfs)->xFullPathname(real_of(vfs), z, n, out);
}

static void *rps_dlopen(sqlite3_vfs *vfs, const char *z)
{
	return real_of(vfs)->xDlOpen(real_of(vfs), z);
}

static void rps_dlerror(sqlite3_vfs *vfs, int n, char *out)
{
	real_of(vfs)->xDlError(real_of(vfs), n, out);
}

static void (*rps_dlsym(sqlite3_vfs *vfs, void *h, const char *z))(void)
{
	return real_of(vfs)->xDlSym(real_of(vfs), h, z);
}

static void rps_dlclose(sqlite3_vfs *vfs, void *h)
{
	real_of(vfs)->xDlClose(real_of(vfs), h);
}

static int rps_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	return real_of(vfs)->xRandomness(real_of(vfs), n, out);
}

static int rps_sleep(sqlite3_vfs *vfs, int us)
{
	return real_of(vfs)->xSleep(real_of(vfs), us);
}

static int rps_current_time(sqlite3_vfs *vfs, double *out)
{
	return real_of(vfs)->xCurrentTime(real_of(vfs), out);
}

static int rps_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	return real_of(vfs)->xGetLastError(real_of(vfs), n, out);
}

static int rps_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	return real_of(vfs)->xCurrentTimeInt64(real_of(vfs), out);
}

int rp_sqlite_register_ex(const char *vfs_name, int make_default, const rp_config *cfg,
                          unsigned flags)
{
	const char *name = vfs_name ? vfs_name : "ringpager";
	struct rps_vfs *v;
	sqlite3_vfs *real;
	int rc;

	if (strlen(name) >= sizeof(v->name))
		return SQLITE_MISUSE;
	pthread_mutex_lock(&g.mu);
	if (cfg && !g.eng) {
		g.cfg = *cfg;
		g.have_cfg = true;
	}
	for (v = vfs_list; v; v = v->next)
		if (!strcmp(v->name, name))
			break;
	if (v) {
		rc = sqlite3_vfs_register(&v->base, make_default);
		pthread_mutex_unlock(&g.mu);
		return rc;
	}
	real = sqlite3_vfs_find(NULL);
	if (real && real->xOpen == rps_open)
		real = ((struct rps_vfs *)real)->real;
	if (!real || real->iVersion < 2) {
		pthread_mutex_unlock(&g.mu);
		return SQLITE_ERROR;
	}
	if (!(v = calloc(1, sizeof(*v)))) {
		pthread_mutex_unlock(&g.mu);
		return SQLITE_NOMEM;
	}
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->real = real;
	v->flags = flags;
	v->base = (sqlite3_vfs){
	    .iVersion = 2,
	    .szOsFile = (int)(REAL_OFF + (size_t)real->szOsFile),
	    .mxPathname = real->mxPathname,
	    .zName = v->name,
	    .pAppData = v,
	    .xOpen = rps_open,
	    .xDelete = rps_delete,
	    .xAccess = rps_access,
	    .xFullPathname = rps_full_pathname,
	    .xDlOpen = rps_dlopen,
	    .xDlError = rps_dlerror,
	    .xDlSym = rps_dlsym,
	    .xDlClose = rps_dlclose,
	    .xRandomness = rps_randomness,
	    .xSleep = rps_sleep,
	    .xCurrentTime = rps_current_time,
	    .xGetLastError = rps_last_error,
	    .xCurrentTimeInt64 = rps_current_time64,
	};
	rc = sqlite3_vfs_register(&v->base, make_default);
	if (rc == SQLITE_OK) {
		v->next = vfs_list;
		vfs_list = v;
	} else {
		free(v);
	}
	pthread_mutex_unlock(&g.mu);
	return rc;
}

int rp_sqlite_register(const char *vfs_name, int make_default, const rp_config *cfg)
{
	return rp_sqlite_register_ex(vfs_name, make_default, cfg, 0);
}

#ifdef RP_SQLITE_LOADABLE
/* The loadable extension's entry point (SQLite derives its name from the file's):
 * registers "ringpager", not as the default. SQLITE_OK_LOAD_PERMANENTLY keeps the
 * library loaded after the connection that loaded it closes. */
RP_API int sqlite3_ringpagersqlite_init(sqlite3 *db, char **pzErrMsg,
                                         const sqlite3_api_routines *pApi);
RP_API int sqlite3_ringpagersqlite_init(sqlite3 *db, char **pzErrMsg,
                                         const sqlite3_api_routines *pApi)
{
	int rc;

	(void)db;
	SQLITE_EXTENSION_INIT2(pApi);
	rc = rp_sqlite_register(NULL, 0, NULL);
	if (rc != SQLITE_OK) {
		*pzErrMsg = sqlite3_mprintf("ringpager: registering the VFS failed (%d)", rc);
		return rc;
	}
	return SQLITE_OK_LOAD_PERMANENTLY;
}
#endif
