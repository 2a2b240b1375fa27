/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/vm/test_stress.c - model-based stress: seeded random sequences of the public
 * operations against a model of what the store and each handle must hold.
 *
 * The model. Every page's bytes are made from a token (page index, version): the store
 * holds disk[i], handle h shows view[h][i] and knows it dirty or not. Each operation
 * changes the model as the API contract says, and every read through a mapping, every
 * pin and every look at the store is checked against it:
 *   touch, write        a page reads as view[h][i]; a write makes it dirty with a new token
 *                       (through the mapping, or rp_read and rp_write)
 *   scan                up to 64 pages in order through the mapping, each as the model
 *                       says: a stream, whose windows are read ahead, proved, and copied
 *                       into place (readahead_copy)
 *   pin / unpin         the pinned range stays in the pool through a reclaim and reads
 *                       as the model says
 *   advise              NORMAL, RANDOM, SEQUENTIAL, WILLNEED, DONTNEED: no change
 *   writeout            sync or async, every flag set: STORE copies dirty views to disk,
 *                       MARKSTORED makes them clean (alone: the test stored them itself)
 *   discard             dirty views go back to disk
 *   behind the back     the store changes under ringpager; rp_invalidate on every handle
 *   reclaim, map/unmap, close/reopen, a second handle (invalidated where the first one's
 *                       writeouts changed what it holds clean)
 * The pool is a small fraction of the store, so reclaim never rests; dirty pages are
 * written out before they could fill it. With a custom store, loads, stores and syncs
 * fail on request: a failed pin poisons nothing that rp_invalidate does not clear, a
 * failed writeout keeps its pages dirty, and the retry without the fault stores them.
 *
 * Then a threaded phase: writers on disjoint pages, a reader of pages no one writes, and
 * a thread doing writeouts, reclaim and invalidation of the reader's pages; the store is
 * checked against each writer's last tokens at the end.
 *
 * Every other round, a write collection's first, looking walk runs over ranges of 16 pages
 * and more (vm_collect_call_pages lowered), as it does over large mappings.
 *
 * RP_STRESS_OPS (default 3000 per sequence), RP_STRESS_SEED (default: from the clock,
 * printed: a failing seed replays), RP_STRESS_SECONDS (run sequences until then: soak).
 */
#include "ringpager.h"
#include "vm/testing.h"
#include "common/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PG     4096ul
#define NPAGES 1024 /* 4 MiB store */
#define POOL   96   /* pages in the pool */
#define NH     2    /* handles */
#define MAX_DIRTY 24 /* dirty pages (all handles) before the model writes out */

/* ---------------------------------------------------------------- page contents */

/* A hash of x (splitmix64's step). */
static uint64_t mix(uint64_t x)
{
	return tu_rand(&x);
}

static void make_page(uint8_t *p, uint64_t token)
{
	uint64_t x = token;

	for (size_t o = 0; o < PG; o += 8) {
		memcpy(p + o, o ? &x : &token, 8);
		x = mix(x + o);
	}
}

static uint64_t page_token(const volatile uint8_t *p)
{
	uint64_t t;

	memcpy(&t, (const void *)p, 8);
	return t;
}

/* ---------------------------------------------------------------- a custom store */

struct mstore {
	pthread_mutex_t lock;
	uint8_t *data;
	atomic_uint fail_stores, fail_syncs; /* the next n calls fail: -EIO */
	atomic_uint_fast64_t fail_lo, fail_hi; /* loads that touch [lo, hi) bytes fail */
};

static int ms_load(void *ctx, uint64_t off, void *buf, size_t len, rp_load_token *tok)
{
	struct mstore *ms = ctx;

	(void)tok;
	if (off < atomic_load(&ms->fail_hi) && atomic_load(&ms->fail_lo) < off + len)
		return -EIO;
	memset(buf, 0, len);
	pthread_mutex_lock(&ms->lock);
	if (off < NPAGES * PG)
		memcpy(buf, ms->data + off, len < NPAGES * PG - off ? len : NPAGES * PG - off);
	pthread_mutex_unlock(&ms->lock);
	return 0;
}

static bool take_fault(atomic_uint *f)
{
	unsigned n = atomic_load(f);

	while (n && !atomic_compare_exchange_weak(f, &n, n - 1))
		;
	return n != 0;
}

static int ms_store(void *ctx, uint64_t off, const void *buf, size_t len, rp_store_token *tok)
{
	struct mstore *ms = ctx;

	(void)tok;
	if (take_fault(&ms->fail_stores))
		return -EIO;
	pthread_mutex_lock(&ms->lock);
	memcpy(ms->data + off, buf, len < NPAGES * PG - off ? len : NPAGES * PG - off);
	pthread_mutex_unlock(&ms->lock);
	return 0;
}

static int ms_sync(void *ctx)
{
	return take_fault(&((struct mstore *)ctx)->fail_syncs) ? -EIO : 0;
}

static const rp_store_ops ms_ops = {.load = ms_load, .store = ms_store, .sync = ms_sync};

/* ---------------------------------------------------------------- the model */

struct world {
	uint64_t seed, rng, nops;
	const char *dirty_mode;
	bool custom;
	rp_engine *eng;
	rp_store *st;
	char *path;       /* file store */
	int fd;           /* the file, for looks behind ringpager's back */
	struct mstore ms; /* custom store */
	rp_fileh *fh[NH];
	rp_mapping *m[NH];
	uint64_t disk[NPAGES];
	uint64_t view[NH][NPAGES];
	bool dirty[NH][NPAGES];
	uint64_t next_version;
	uint8_t *buf, *buf2;
	unsigned ndirty;
	uint64_t counts[16];
};

enum op {
	OP_TOUCH, OP_WRITE, OP_PIN, OP_ADVISE, OP_WRITEOUT, OP_DISCARD, OP_BEHIND, OP_RECLAIM,
	OP_REMAP, OP_REOPEN, OP_CHECK_STORE, OP_FAIL_LOAD, OP_FAIL_WRITEOUT, OP_SCAN, OP_N
};
static const char *const op_names[] = {"touch", "write", "pin", "advise", "writeout",
                                       "discard", "behind", "reclaim", "remap", "reopen",
                                       "check_store", "fail_load", "fail_writeout", "scan"};

static uint64_t rnd(struct world *w, uint64_t n)
{
	return tu_rand(&w->rng) % n;
}

/* Asserts with the sequence's seed and the operation's number (w in scope). */
#define CHECK(cond, fmt, ...)                                                              \
	cr_assert(cond, "seed %" PRIu64 " op %" PRIu64 ": " fmt, w->seed, w->nops, ##__VA_ARGS__)

static uint64_t new_token(struct world *w, uint64_t page)
{
	return (++w->next_version << 16) | page;
}

static void store_read(struct world *w, uint64_t i, uint8_t *out)
{
	if (w->custom) {
		pthread_mutex_lock(&w->ms.lock);
		memcpy(out, w->ms.data + i * PG, PG);
		pthread_mutex_unlock(&w->ms.lock);
	} else
		CHECK(pread(w->fd, out, PG, (off_t)(i * PG)) == (ssize_t)PG, "pread page %" PRIu64,
		      i);
}

static void store_write(struct world *w, uint64_t i, const uint8_t *in)
{
	if (w->custom) {
		pthread_mutex_lock(&w->ms.lock);
		memcpy(w->ms.data + i * PG, in, PG);
		pthread_mutex_unlock(&w->ms.lock);
	} else
		CHECK(pwrite(w->fd, in, PG, (off_t)(i * PG)) == (ssize_t)PG, "pwrite page %" PRIu64,
		      i);
}

static uint8_t *addr(struct world *w, int h, uint64_t i)
{
	return (uint8_t *)rp_mapping_addr(w->m[h]) + i * PG;
}

static void expect_view(struct world *w, int h, uint64_t i)
{
	make_page(w->buf, w->view[h][i]);
	if (memcmp(addr(w, h, i), w->buf, PG)) {
		uint64_t got = page_token(addr(w, h, i));

		store_read(w, i, w->buf2);
		CHECK(0, "handle %d page %" PRIu64 " shows token %" PRIx64 " (%s), the model %" PRIx64
		         " (%s); the store holds %" PRIx64 ", the model's store %" PRIx64,
		      h, i, got, got == w->view[h][i] ? "torn" : "another version", w->view[h][i],
		      w->dirty[h][i] ? "dirty" : "clean", page_token(w->buf2), w->disk[i]);
	}
}

/* As expect_view, through rp_read: a copy through the handle's cache, not the mapping. */
static void expect_read(struct world *w, int h, uint64_t i)
{
	const ssize_t n = rp_read(w->fh[h], i * PG, w->buf2, PG);

	CHECK(n == (ssize_t)PG, "rp_read of handle %d page %" PRIu64 ": %zd (%s)", h, i, n,
	      rp_errmsg());
	make_page(w->buf, w->view[h][i]);
	CHECK(memcmp(w->buf2, w->buf, PG) == 0,
	      "rp_read of handle %d page %" PRIu64 " gives token %" PRIx64 ", the model %" PRIx64,
	      h, i, page_token(w->buf2), w->view[h][i]);
}

static void set_dirty(struct world *w, int h, uint64_t i, bool d)
{
	if (w->dirty[h][i] != d)
		w->ndirty += d ? 1 : -1u;
	w->dirty[h][i] = d;
}

/* The store changed at page i (a writeout of handle `from`, or behind the back): every
 * other handle that holds it clean is told, as an application sharing a store must. */
static void changed_on_store(struct world *w, int from, uint64_t i)
{
	for (int h = 0; h < NH; h++) {
		if (h == from || w->dirty[h][i] || w->view[h][i] == w->disk[i])
			continue;
		CHECK(rp_invalidate(w->fh[h], i * PG, PG) == 0, "rp_invalidate: %s", rp_errmsg());
		w->view[h][i] = w->disk[i];
	}
}

static void map(struct world *w, int h)
{
	CHECK(rp_map(w->fh[h], 0, NPAGES * PG, PROT_READ | PROT_WRITE, &w->m[h]) == 0, "rp_map: %s",
	      rp_errmsg());
}

static void open_handle(struct world *w, int h)
{
	CHECK(rp_fileh_open(w->st, &w->fh[h]) == 0, "rp_fileh_open: %s", rp_errmsg());
	map(w, h);
	for (uint64_t i = 0; i < NPAGES; i++) {
		w->view[h][i] = w->disk[i];
		set_dirty(w, h, i, false);
	}
}

static void close_handle(struct world *w, int h)
{
	CHECK(rp_unmap(w->m[h]) == 0, "rp_unmap: %s", rp_errmsg());
	CHECK(rp_fileh_close(w->fh[h]) == 0, "rp_fileh_close: %s", rp_errmsg());
	for (uint64_t i = 0; i < NPAGES; i++)
		set_dirty(w, h, i, false);
}

static void world_open(struct world *w, uint64_t seed, const char *dirty_mode, bool custom)
{
	rp_config cfg;

	memset(w, 0, sizeof(*w));
	w->seed = w->rng = seed;
	w->dirty_mode = dirty_mode;
	w->custom = custom;
	w->buf = tu_aligned(PG);
	w->buf2 = tu_aligned(PG);
	w->fd = -1;
	tu_config_init(&cfg);
	tu_config_dirty(&cfg, dirty_mode);
	cfg.ram_size = POOL * PG;
	cfg.hugepages = 2;
	cr_assert_eq(rp_config_set(&cfg, "reclaim_wait", "20000"), 0);
	cr_assert_eq(rp_config_set(&cfg, "readahead_max", "128k"), 0);
	cr_assert_eq(rp_engine_open(&cfg, &w->eng), 0, "%s", rp_errmsg());
	for (uint64_t i = 0; i < NPAGES; i++)
		w->disk[i] = new_token(w, i);
	if (custom) {
		pthread_mutex_init(&w->ms.lock, NULL);
		w->ms.data = malloc(NPAGES * PG);
		for (uint64_t i = 0; i < NPAGES; i++)
			make_page(w->ms.data + i * PG, w->disk[i]);
		cr_assert_eq(rp_store_create(w->eng, &ms_ops, &w->ms, NPAGES * PG, &w->st), 0, "%s",
		             rp_errmsg());
	} else {
		w->path = tu_scratch_file("stress", NPAGES * PG, 1);
		w->fd = open(w->path, O_RDWR | O_CLOEXEC);
		cr_assert_geq(w->fd, 0);
		for (uint64_t i = 0; i < NPAGES; i++) {
			make_page(w->buf, w->disk[i]);
			store_write(w, i, w->buf);
		}
		cr_assert_eq(rp_store_open(w->eng, w->path, O_RDWR, &w->st), 0, "%s", rp_errmsg());
	}
	for (int h = 0; h < NH; h++)
		open_handle(w, h);
}

static void world_close(struct world *w)
{
	for (int h = 0; h < NH; h++)
		close_handle(w, h);
	cr_assert_eq(rp_store_close(w->st), 0, "%s", rp_errmsg());
	rp_engine_close(w->eng);
	if (w->custom) {
		free(w->ms.data);
		pthread_mutex_destroy(&w->ms.lock);
	} else {
		close(w->fd);
		tu_unlink(w->path);
	}
	free(w->buf);
	free(w->buf2);
}

/* ---------------------------------------------------------------- writeout */

/* Runs a writeout of handle h, sync or async; while an async one is in flight, reads
 * through the other handle go on (they must not wait for it). */
static int writeout(struct world *w, int h, int flags, bool async)
{
	if (!async)
		return rp_writeout(w->fh[h], flags);
	struct tu_done a = TU_DONE_INIT;
	int err = rp_writeout_async(w->fh[h], flags, tu_done_fn, &a);

	if (err)
		return err;
	for (int k = 0; k < 4; k++) {
		uint64_t i = rnd(w, NPAGES);

		/* A page this writeout stores may reach the other handle, clean, either way. */
		if (!w->dirty[h][i])
			expect_view(w, 1 - h, i);
	}
	return tu_done_wait(&a);
}

/* The model's side of a successful writeout of handle h. */
static void wrote_out(struct world *w, int h, int flags)
{
	for (uint64_t i = 0; i < NPAGES; i++) {
		if (!w->dirty[h][i])
			continue;
		if (flags & RP_WRITEOUT_STORE) {
			w->disk[i] = w->view[h][i];
			changed_on_store(w, h, i);
		}
		if (flags & RP_WRITEOUT_MARKSTORED)
			set_dirty(w, h, i, false);
	}
}

static int random_flags(struct world *w)
{
	static const int sets[] = {
	    RP_WRITEOUT_STORE,
	    RP_WRITEOUT_STORE | RP_WRITEOUT_SYNC,
	    RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED,
	    RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC,
	    RP_WRITEOUT_MARKSTORED, /* the application stored them itself first */
	};

	return sets[rnd(w, 5)];
}

static void do_writeout(struct world *w, int h, int flags)
{
	if (!(flags & RP_WRITEOUT_STORE)) {
		/* MARKSTORED alone: the application says the store has the pages. Make it so. */
		for (uint64_t i = 0; i < NPAGES; i++)
			if (w->dirty[h][i]) {
				make_page(w->buf2, w->view[h][i]);
				store_write(w, i, w->buf2);
				w->disk[i] = w->view[h][i];
				changed_on_store(w, h, i);
			}
	}
	int err = writeout(w, h, flags, rnd(w, 2));

	CHECK(err == 0, "writeout 0x%x of handle %d: %s", (unsigned)flags, h, rp_strerror(err));
	wrote_out(w, h, flags);
}

/* ---------------------------------------------------------------- one operation */

static bool trace; /* RP_STRESS_TRACE=1: every operation on stderr */

static void one_op(struct world *w, enum op op)
{
	const int h = (int)rnd(w, NH);
	const uint64_t i = rnd(w, NPAGES);

	w->counts[op]++;
	if (trace)
		fprintf(stderr, "op %" PRIu64 ": %s handle %d page %" PRIu64 "\n", w->nops,
		        op_names[op], h, i);
	switch (op) {
	case OP_TOUCH:
		if (rnd(w, 2))
			expect_view(w, h, i);
		else
			expect_read(w, h, i);
		break;
	case OP_WRITE:
		if (w->ndirty >= MAX_DIRTY) {
			do_writeout(w, h, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED);
			for (int o = 0; o < NH; o++)
				if (o != h)
					do_writeout(w, o, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED);
		}
		w->view[h][i] = new_token(w, i);
		make_page(w->buf, w->view[h][i]);
		switch (rnd(w, 3)) {
		case 0:
			memcpy(addr(w, h, i), w->buf, PG);
			break;
		case 1: /* two halves: the first write of a page may be a partial one */
			memcpy(addr(w, h, i) + PG / 2, w->buf + PG / 2, PG / 2);
			memcpy(addr(w, h, i), w->buf, PG / 2);
			break;
		default: { /* rp_write, in two halves or whole: a copy through the cache */
			const size_t half = rnd(w, 2) ? PG / 2 : PG;

			for (size_t o = 0; o < PG; o += half) {
				const ssize_t n = rp_write(w->fh[h], i * PG + o, w->buf + o, half);

				CHECK(n == (ssize_t)half, "rp_write of handle %d page %" PRIu64 ": %zd (%s)",
				      h, i, n, rp_errmsg());
			}
		}
		}
		set_dirty(w, h, i, true);
		break;
	case OP_PIN: {
		uint64_t n = 1 + rnd(w, 16), first = i + n > NPAGES ? NPAGES - n : i;
		unsigned char vec[16];

		/* Pinned pages stay in the pool through a reclaim of all of it. */
		CHECK(rp_pin(w->m[h], first * PG, n * PG) == 0, "rp_pin: %s", rp_errmsg());
		CHECK(rp_reclaim(w->eng, POOL) >= 0, "rp_reclaim: %s", rp_errmsg());
		CHECK(mincore(addr(w, h, first), n * PG, vec) == 0, "mincore: %s", strerror(errno));
		for (uint64_t p = 0; p < n; p++)
			CHECK(vec[p] & 1, "pinned page %" PRIu64 " left the pool", first + p);
		for (uint64_t p = first; p < first + n; p++)
			expect_view(w, h, p);
		CHECK(rp_unpin(w->m[h], first * PG, n * PG) == 0, "rp_unpin: %s", rp_errmsg());
		break;
	}
	case OP_ADVISE: {
		uint64_t n = 1 + rnd(w, 64), first = i + n > NPAGES ? NPAGES - n : i;
		int adv = (int)rnd(w, 5);

		int e = rp_advise(w->m[h], first * PG, n * PG, adv);

		/* WILLNEED does not wait for memory: it may find none free. */
		CHECK(e == 0 || (adv == RP_ADVICE_WILLNEED && e == -ENOMEM), "rp_advise %d: %s", adv,
		      rp_errmsg());
		break;
	}
	case OP_WRITEOUT:
		do_writeout(w, h, random_flags(w));
		break;
	case OP_DISCARD:
		CHECK(rp_discard(w->fh[h]) == 0, "rp_discard: %s", rp_errmsg());
		for (uint64_t p = 0; p < NPAGES; p++)
			if (w->dirty[h][p]) {
				w->view[h][p] = w->disk[p];
				set_dirty(w, h, p, false);
			}
		break;
	case OP_BEHIND: {
		uint64_t n = 1 + rnd(w, 4), first = i + n > NPAGES ? NPAGES - n : i;

		for (uint64_t p = first; p < first + n; p++) {
			w->disk[p] = new_token(w, p);
			make_page(w->buf, w->disk[p]);
			store_write(w, p, w->buf);
		}
		for (int o = 0; o < NH; o++) {
			CHECK(rp_invalidate(w->fh[o], first * PG, n * PG) == 0, "rp_invalidate: %s",
			      rp_errmsg());
			for (uint64_t p = first; p < first + n; p++) {
				w->view[o][p] = w->disk[p];
				set_dirty(w, o, p, false);
			}
		}
		break;
	}
	case OP_RECLAIM:
		CHECK(rp_reclaim(w->eng, 1 + (long)rnd(w, POOL)) >= 0, "rp_reclaim: %s", rp_errmsg());
		break;
	case OP_REMAP:
		CHECK(rp_unmap(w->m[h]) == 0, "rp_unmap: %s", rp_errmsg());
		map(w, h);
		break;
	case OP_REOPEN:
		close_handle(w, h);
		open_handle(w, h);
		break;
	case OP_CHECK_STORE: {
		uint64_t nd = 0;

		for (int o = 0; o < NH; o++) {
			CHECK(rp_fileh_dirty(w->fh[o], &nd) == 0, "rp_fileh_dirty");
			uint64_t want = 0;

			for (uint64_t p = 0; p < NPAGES; p++)
				want += w->dirty[o][p];
			CHECK(nd >= want, "handle %d reports %" PRIu64 " dirty pages, the model %" PRIu64,
			      o, nd, want);
		}
		for (uint64_t p = 0; p < NPAGES; p += 1 + rnd(w, 8)) {
			store_read(w, p, w->buf2);
			CHECK(page_token(w->buf2) == w->disk[p], "the store's page %" PRIu64
			                                         " has %" PRIx64 ", the model %" PRIx64,
			      p, page_token(w->buf2), w->disk[p]);
			make_page(w->buf, w->disk[p]);
			CHECK(!memcmp(w->buf, w->buf2, PG), "the store's page %" PRIu64 " is torn", p);
		}
		break;
	}
	case OP_FAIL_LOAD: {
		/* A pin whose loads fail: -EIO and nothing pinned; rp_invalidate clears the
		 * poisoned pages (and drops the range's dirty ones). Custom stores only. A load
		 * of WILLNEED in flight that overlaps the failing range fails too, and may
		 * poison up to 64 pages beside it: that margin is invalidated as well. */
		if (!w->custom)
			break;
		uint64_t n = 1 + rnd(w, 8), first = i + n > NPAGES ? NPAGES - n : i;
		uint64_t lo = first > 64 ? first - 64 : 0;
		uint64_t hi = first + n + 64 < NPAGES ? first + n + 64 : NPAGES;

		CHECK(rp_advise(w->m[h], first * PG, n * PG, RP_ADVICE_DONTNEED) == 0, "DONTNEED");
		atomic_store(&w->ms.fail_lo, first * PG);
		atomic_store(&w->ms.fail_hi, (first + n) * PG);
		int err = rp_pin(w->m[h], first * PG, n * PG);

		atomic_store(&w->ms.fail_hi, 0);
		atomic_store(&w->ms.fail_lo, 0);
		if (err == 0) /* every page was resident (dirty): nothing was loaded */
			CHECK(rp_unpin(w->m[h], first * PG, n * PG) == 0, "rp_unpin");
		else
			CHECK(err == -EIO, "a pin with failing loads: %s", rp_errmsg());
		for (int o = 0; o < NH; o++) {
			CHECK(rp_invalidate(w->fh[o], lo * PG, (hi - lo) * PG) == 0,
			      "rp_invalidate: %s", rp_errmsg());
			for (uint64_t p = lo; p < hi; p++) {
				w->view[o][p] = w->disk[p];
				set_dirty(w, o, p, false);
			}
		}
		for (uint64_t p = first; p < first + n; p++)
			expect_view(w, h, p);
		break;
	}
	case OP_FAIL_WRITEOUT: {
		/* A store or a sync fails: the writeout reports it, the pages stay dirty with
		 * their data, and the retry without the fault stores them all. */
		if (!w->custom)
			break;
		bool any = false;

		for (uint64_t p = 0; p < NPAGES && !any; p++)
			any = w->dirty[h][p];
		if (!any)
			break;
		const bool sync = rnd(w, 2);
		const int flags = RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC;

		atomic_store(sync ? &w->ms.fail_syncs : &w->ms.fail_stores, 1);
		int err = writeout(w, h, flags, rnd(w, 2));

		atomic_store(&w->ms.fail_syncs, 0);
		atomic_store(&w->ms.fail_stores, 0);
		CHECK(err == -EIO, "a writeout whose %s fails returned %d", sync ? "sync" : "store",
		      err);
		for (uint64_t p = 0; p < NPAGES; p++)
			if (w->dirty[h][p])
				expect_view(w, h, p);
		err = writeout(w, h, flags, false);
		CHECK(err == 0, "the retry: %s", rp_strerror(err));
		wrote_out(w, h, flags);
		break;
	}
	case OP_SCAN:
		for (uint64_t p = i, n = 1 + rnd(w, 64); p < NPAGES && p < i + n; p++)
			expect_view(w, h, p);
		break;
	case OP_N:
		break;
	}
}

/* Relative weights of the operations. */
static const unsigned weights[OP_N] = {
    [OP_TOUCH] = 40, [OP_WRITE] = 25,        [OP_PIN] = 6,        [OP_ADVISE] = 6,
    [OP_WRITEOUT] = 5, [OP_DISCARD] = 1,     [OP_BEHIND] = 3,     [OP_RECLAIM] = 3,
    [OP_REMAP] = 1,   [OP_REOPEN] = 1,       [OP_CHECK_STORE] = 2, [OP_FAIL_LOAD] = 2,
    [OP_FAIL_WRITEOUT] = 2, [OP_SCAN] = 4,
};

static enum op pick(struct world *w)
{
	unsigned total = 0, r;

	for (int k = 0; k < OP_N; k++)
		total += weights[k];
	r = (unsigned)rnd(w, total);
	for (int k = 0; k < OP_N; k++) {
		if (r < weights[k])
			return (enum op)k;
		r -= weights[k];
	}
	return OP_TOUCH;
}

static void sequence(uint64_t seed, const char *dirty_mode, bool custom, uint64_t nops)
{
	struct world *w = malloc(sizeof(*w));
	char line[512];
	size_t used = 0;

	world_open(w, seed, dirty_mode, custom);
	for (w->nops = 0; w->nops < nops; w->nops++)
		one_op(w, pick(w));
	/* Everything written out, then the store holds every handle's view. */
	for (int h = 0; h < NH; h++)
		do_writeout(w, h, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC);
	for (uint64_t p = 0; p < NPAGES; p++) {
		store_read(w, p, w->buf2);
		CHECK(page_token(w->buf2) == w->disk[p], "at the end, the store's page %" PRIu64
		                                         " has %" PRIx64 ", the model %" PRIx64,
		      p, page_token(w->buf2), w->disk[p]);
	}
	struct rp_stats s;

	rp_stats(w->eng, &s);
	for (int k = 0; k < OP_N; k++)
		used += (size_t)snprintf(line + used, sizeof(line) - used, " %s %" PRIu64,
		                         op_names[k], w->counts[k]);
	fprintf(stderr,
	        "stress: seed %" PRIu64 " %s %s store: %" PRIu64 " ops (%s), %" PRIu64
	        " loads, %" PRIu64 " evicted, %" PRIu64 " read ahead and copied, %" PRIu64
	        " dropped behind a stream, 0 mismatches\n",
	        seed, dirty_mode, custom ? "custom" : "file", nops, line + 1, s.pages_loaded,
	        s.pages_evicted, s.readahead_copied, s.readahead_dropped);
	world_close(w);
	free(w);
}

/* ---------------------------------------------------------------- threads */

#define NWRITERS 2

struct tshared {
	struct world *w;
	atomic_bool stop;       /* the writers and the reader */
	atomic_bool stop_flush; /* the flusher, once they are gone: a fault of theirs that
	                           waits for memory is freed by its writeouts */
	uint64_t last[NPAGES]; /* writers' pages: the last token written */
	atomic_uint_fast64_t ops, mismatches;
};

struct twriter {
	struct tshared *sh;
	int k;
	uint64_t rng;
};

/* Pages i with i % 4 == k are writer k's (k < NWRITERS); the others are only read. */
static bool writer_page(uint64_t i)
{
	return i % 4 < NWRITERS;
}

static void *writer_main(void *arg)
{
	struct twriter *t = arg;
	struct world *w = t->sh->w;
	uint8_t *b = tu_aligned(PG);
	uint64_t version = 0;

	while (!atomic_load(&t->sh->stop)) {
		uint64_t i = (tu_rand(&t->rng) % (NPAGES / 4)) * 4 + (uint64_t)t->k;
		uint64_t tok = ((uint64_t)t->k << 56) | (++version << 16) | i;

		/* Its own pages only: what it reads back must be its own last write. */
		if (t->sh->last[i]) {
			make_page(b, t->sh->last[i]);
			if (memcmp(addr(w, 0, i), b, PG))
				atomic_fetch_add(&t->sh->mismatches, 1);
		}
		make_page(b, tok);
		memcpy(addr(w, 0, i), b, PG);
		t->sh->last[i] = tok;
		atomic_fetch_add(&t->sh->ops, 1);
	}
	free(b);
	return NULL;
}

static void *reader_main(void *arg)
{
	struct twriter *t = arg;
	struct world *w = t->sh->w;
	uint8_t *b = tu_aligned(PG);

	while (!atomic_load(&t->sh->stop)) {
		uint64_t i = tu_rand(&t->rng) % NPAGES;

		if (writer_page(i))
			continue;
		make_page(b, w->view[0][i]);
		if (memcmp(addr(w, 0, i), b, PG))
			atomic_fetch_add(&t->sh->mismatches, 1);
		atomic_fetch_add(&t->sh->ops, 1);
	}
	free(b);
	return NULL;
}

static void *flusher_main(void *arg)
{
	struct twriter *t = arg;
	struct world *w = t->sh->w;

	while (!atomic_load(&t->sh->stop_flush)) {
		int err = 0;

		switch (tu_rand(&t->rng) % 4) {
		case 0:
			err = rp_writeout(w->fh[0], RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED);
			break;
		case 1:
			err = rp_writeout(w->fh[0], RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED |
			                                RP_WRITEOUT_SYNC);
			break;
		case 2:
			err = rp_reclaim(w->eng, POOL / 4) < 0 ? -1 : 0;
			break;
		case 3: { /* a reader's page: clean, so invalidating reloads the same bytes */
			uint64_t i = (tu_rand(&t->rng) % (NPAGES / 4)) * 4 + 3;

			err = rp_invalidate(w->fh[0], i * PG, PG);
			break;
		}
		}
		if (err)
			atomic_fetch_add(&t->sh->mismatches, 1);
		atomic_fetch_add(&t->sh->ops, 1);
	}
	return NULL;
}

static void threaded(uint64_t seed, const char *dirty_mode, unsigned ms)
{
	struct world *w = malloc(sizeof(*w));
	struct tshared *sh = calloc(1, sizeof(*sh));
	struct twriter t[NWRITERS + 2];
	pthread_t th[NWRITERS + 2];

	world_open(w, seed, dirty_mode, false);
	/* The second handle stays idle: the readers' pages are read through the first. */
	sh->w = w;
	for (int k = 0; k < NWRITERS + 2; k++) {
		t[k] = (struct twriter){sh, k, seed * 7 + (uint64_t)k + 1};
		cr_assert_eq(pthread_create(&th[k], NULL,
		                            k < NWRITERS ? writer_main
		                            : k == NWRITERS ? reader_main
		                                            : flusher_main,
		                            &t[k]),
		             0);
	}
	usleep(ms * 1000);
	atomic_store(&sh->stop, true);
	for (int k = 0; k < NWRITERS + 1; k++)
		pthread_join(th[k], NULL);
	atomic_store(&sh->stop_flush, true);
	pthread_join(th[NWRITERS + 1], NULL);
	cr_assert_eq(rp_writeout(w->fh[0], RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED |
	                                       RP_WRITEOUT_SYNC),
	             0, "%s", rp_errmsg());
	for (uint64_t i = 0; i < NPAGES; i++) {
		uint64_t want = writer_page(i) && sh->last[i] ? sh->last[i] : w->disk[i];

		store_read(w, i, w->buf2);
		make_page(w->buf, want);
		if (memcmp(w->buf, w->buf2, PG))
			atomic_fetch_add(&sh->mismatches, 1);
		w->disk[i] = w->view[0][i] = want;
	}
	fprintf(stderr, "stress: seed %" PRIu64 " %s threads: %" PRIu64 " ops, %" PRIu64
	                " mismatches\n",
	        seed, dirty_mode, (uint64_t)atomic_load(&sh->ops),
	        (uint64_t)atomic_load(&sh->mismatches));
	cr_assert_eq(atomic_load(&sh->mismatches), 0, "seed %" PRIu64 ": %" PRIu64 " mismatches",
	             seed, (uint64_t)atomic_load(&sh->mismatches));
	world_close(w);
	free(sh);
	free(w);
}

/* ---------------------------------------------------------------- the tests */

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *e = getenv(name);

	return e && *e ? strtoull(e, NULL, 0) : def;
}

static void run(const char *dirty_mode)
{
	const uint64_t nops = env_u64("RP_STRESS_OPS", 3000);
	const uint64_t seconds = env_u64("RP_STRESS_SECONDS", 0);
	uint64_t seed = env_u64("RP_STRESS_SEED",
	                        (uint64_t)time(NULL) * 2654435761u + (uint64_t)getpid());
	const time_t end = time(NULL) + (time_t)seconds;

	trace = env_u64("RP_STRESS_TRACE", 0) != 0;
	unsigned rounds = 0;
	const uint64_t call_pages = vm_collect_call_pages;

	fprintf(stderr, "stress: %s, first seed %" PRIu64 " (RP_STRESS_SEED replays)\n", dirty_mode,
	        seed);
	do {
		/* Every other round (the first among them), collections over 16 pages or more
		 * take their two walks (vm/dirty.c), which a 4 MiB store never would. */
		vm_collect_call_pages = rounds % 2 ? call_pages : 8;
		sequence(seed, dirty_mode, false, nops);
		sequence(seed + 1, dirty_mode, true, nops);
		threaded(seed + 2, dirty_mode, 300);
		seed += 3;
		rounds++;
	} while (time(NULL) < end);
	fprintf(stderr, "stress: %s, %u rounds, 0 mismatches\n", dirty_mode, rounds);
}

Test(stress_wp_async, random_operations_match_the_model, .timeout = 7200)
{
	run("wp_async");
}

Test(stress_wp_sync, random_operations_match_the_model, .timeout = 7200)
{
	run("wp_sync");
}
