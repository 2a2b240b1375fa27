/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/vm/test_size.c - files that grow and shrink: rp_fileh_size, rp_fileh_resize,
 * mappings with room to grow, pages known to be zero created without a read, the size
 * written out with the pages and reverted by rp_discard. Both fault modes (meson runs
 * the suite again with fault_mode=sigbus).
 */
#include "ringpager.h"
#include "common/testutil.h"
#include "vm/testing.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096ull

static rp_engine *engine(uint64_t ram)
{
	rp_config cfg;
	rp_engine *eng;

	tu_config_init(&cfg);
	cfg.ram_size = ram;
	cr_assert_eq(rp_engine_open(&cfg, &eng), 0, "%s", rp_errmsg());
	return eng;
}

/* As tu_map_open, on eng (NULL: an engine of its own), but the writable mapping is `map`
 * bytes from offset 0: room to grow past the file. Closed by tu_map_close. */
static void fx_open_on(struct tu_map *f, rp_engine *eng, const char *name, uint64_t size,
                       uint64_t map, uint64_t seed)
{
	memset(f, 0, sizeof(*f));
	f->seed = seed;
	f->eng = eng ? eng : engine(64ull << 20);
	f->path = tu_scratch_file(name, size, seed);
	cr_assert_eq(rp_store_open(f->eng, f->path, O_RDWR, &f->st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(f->st, &f->fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_size(f->fh), size);
	cr_assert_eq(rp_map(f->fh, 0, map, PROT_READ | PROT_WRITE, &f->m), 0, "%s", rp_errmsg());
	f->a = rp_mapping_addr(f->m);
	f->pages = (size + PG - 1) / PG;
}

static void fx_open(struct tu_map *f, const char *name, uint64_t size, uint64_t map,
                    uint64_t seed)
{
	fx_open_on(f, NULL, name, size, map, seed);
}

static uint64_t file_size(const char *path)
{
	struct stat sb;

	cr_assert_eq(stat(path, &sb), 0);
	return (uint64_t)sb.st_size;
}

static void expect_zero(const char *p, size_t len, const char *what)
{
	for (size_t i = 0; i < len; i++)
		cr_assert_eq(p[i], 0, "%s: byte %zu is %d, not 0", what, i, p[i]);
}

/* Fills [off, off + len) of the mapping with tu_fill(seed, off). */
static void put(struct tu_map *f, uint64_t off, size_t len, uint64_t seed)
{
	tu_fill(f->a + off, len, seed, off);
}

/* Reads the file as the kernel has it. */
static char *file_bytes(const char *path, uint64_t *size)
{
	*size = file_size(path);
	char *b = malloc(*size ? *size : 1);
	int fd = open(path, O_RDONLY);

	cr_assert(b && fd >= 0);
	cr_assert_eq(pread(fd, b, *size, 0), (ssize_t)*size);
	close(fd);
	return b;
}

/* Grow, write the new pages (no read of them: they are known to be zero), write out,
 * and find the file that size holding the old bytes, the new ones and zeros between. */
Test(size, grow_write_writeout_reads_back)
{
	struct tu_map f;
	const uint64_t old = 10 * PG + 100, grown = 40 * PG + 7;

	fx_open(&f, "size_grow", old, 64 * PG, 11);
	tu_expect_fill(f.a, 2 * PG, 11, 0); /* loads of the file's own pages */
	cr_assert_eq(rp_fileh_resize(f.fh, grown), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_size(f.fh), grown);
	cr_assert_eq(rp_store_size(f.st), old, "the store changes at writeout only");

	const struct rp_stats s0 = tu_stats(f.eng);

	put(&f, 12 * PG, 28 * PG + 7, 99);
	const struct rp_stats s1 = tu_stats(f.eng);

	cr_assert_eq(s1.loads, s0.loads, "appended pages were read (%llu loads)",
	             (unsigned long long)(s1.loads - s0.loads));
	cr_assert_eq(s1.pages_loaded, s0.pages_loaded);
	/* The old last page: its bytes past the old size are zeros, not the file's slack. */
	expect_zero(f.a + old, 11 * PG - old, "the old last page's tail");
	cr_assert_eq(file_size(f.path), old, "nothing reached the file before writeout");
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC),
	             0, "%s", rp_errmsg());
	cr_assert_eq(rp_store_size(f.st), grown);

	uint64_t n;
	char *b = file_bytes(f.path, &n);

	cr_assert_eq(n, grown);
	tu_expect_fill(b, old, 11, 0);
	expect_zero(b + old, 12 * PG - old, "between the old end and the new pages");
	tu_expect_fill(b + 12 * PG, grown - 12 * PG, 99, 12 * PG);
	free(b);
	tu_map_close(&f);
}

/* Shrink, then discard: the size and every byte come back. Past the new end a touch is
 * SIGBUS; the cut page's tail reads zeros meanwhile. */
Test(size, shrink_then_discard_restores)
{
	struct tu_map f;
	const uint64_t size = 32 * PG, cut = 10 * PG + 512;

	fx_open(&f, "size_discard", size, size, 12);
	put(&f, 3 * PG, PG, 77); /* a dirty page below the cut */
	put(&f, 20 * PG, PG, 78); /* and one past it */
	tu_expect_fill(f.a + 10 * PG, PG, 12, 10 * PG);
	cr_assert_eq(rp_fileh_resize(f.fh, cut), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_size(f.fh), cut);
	tu_expect_fill(f.a + 10 * PG, 512, 12, 10 * PG);
	expect_zero(f.a + cut, 11 * PG - cut, "the cut page's tail");
	cr_assert(tu_touch_gets_sigbus(f.a + 11 * PG), "a touch past the end");
	cr_assert(tu_touch_gets_sigbus(f.a + 20 * PG), "a touch of a dropped dirty page");

	uint64_t dirty;

	cr_assert_eq(rp_fileh_dirty(f.fh, &dirty), 0);
	cr_assert_geq(dirty, 1, "the dirty page below the cut stays");
	cr_assert_eq(rp_discard(f.fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_size(f.fh), size);
	tu_expect_fill(f.a, size, 12, 0);
	cr_assert_eq(file_size(f.path), size);
	tu_map_close(&f);
}

/* Shrink and write out: the file is cut. Grow again: the regrown pages read zeros, not
 * the bytes the file had there before, in memory and in the file after writeout. */
Test(size, shrink_writeout_regrow_reads_zeros)
{
	struct tu_map f;

	fx_open(&f, "size_regrow", 16 * PG, 32 * PG, 13);
	tu_expect_fill(f.a, 16 * PG, 13, 0);
	cr_assert_eq(rp_fileh_resize(f.fh, 5 * PG + 9), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_SYNC), 0, "%s", rp_errmsg());
	cr_assert_eq(file_size(f.path), 5 * PG + 9);
	cr_assert_eq(rp_fileh_resize(f.fh, 20 * PG), 0, "%s", rp_errmsg());
	tu_expect_fill(f.a, 5 * PG + 9, 13, 0);
	expect_zero(f.a + 5 * PG + 9, 15 * PG - 9, "regrown");
	/* shrink below the disk's size and grow again without a writeout between */
	cr_assert_eq(rp_fileh_resize(f.fh, 2 * PG), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_resize(f.fh, 8 * PG), 0, "%s", rp_errmsg());
	expect_zero(f.a + 2 * PG, 6 * PG, "regrown past a cut not written out");
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC),
	             0, "%s", rp_errmsg());

	uint64_t n;
	char *b = file_bytes(f.path, &n);

	cr_assert_eq(n, 8 * PG);
	tu_expect_fill(b, 2 * PG, 13, 0);
	expect_zero(b + 2 * PG, 6 * PG, "the file past the cut");
	free(b);
	tu_map_close(&f);
}

/* A mapping past the end: SIGBUS at the exact address, and after growing the same
 * address is the new page's. An empty file's handle works the same. */
Test(size, touch_past_end_then_grow_serves)
{
	struct tu_map f;

	fx_open(&f, "size_room", 8 * PG, 16 * PG, 14);
	cr_assert(tu_touch_gets_sigbus(f.a + 8 * PG + 40), "a touch past the end");
	cr_assert(tu_touch_gets_sigbus(f.a + 15 * PG), "the mapping's last page");
	cr_assert_eq(rp_fileh_resize(f.fh, 16 * PG), 0, "%s", rp_errmsg());
	expect_zero(f.a + 8 * PG, 8 * PG, "grown");
	f.a[8 * PG + 40] = 5;
	cr_assert_eq(f.a[8 * PG + 40], 5);
	tu_expect_fill(f.a, 8 * PG, 14, 0);
	tu_map_close(&f);

	fx_open(&f, "size_empty", 0, 4 * PG, 15);
	cr_assert(tu_touch_gets_sigbus(f.a), "an empty handle's first page");
	cr_assert_eq(rp_invalidate(f.fh, 0, PG), -EINVAL);
	cr_assert_eq(rp_fileh_resize(f.fh, 3000), 0, "%s", rp_errmsg());
	expect_zero(f.a, PG, "the first page of a grown empty file");
	put(&f, 0, 3000, 5);
	cr_assert(tu_touch_gets_sigbus(f.a + PG), "past the grown end");
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_SYNC), 0, "%s", rp_errmsg());

	uint64_t n;
	char *b = file_bytes(f.path, &n);

	cr_assert_eq(n, 3000);
	tu_expect_fill(b, 3000, 5, 0);
	free(b);
	tu_map_close(&f);
}

/* Readahead reads nothing past the handle's end, nor past the store's end after growing:
 * a scan loads the file's pages once, and the grown ones not at all. */
Test(size, readahead_stops_at_the_end)
{
	struct tu_map f;
	const uint64_t pages = 600;

	fx_open(&f, "size_ra", pages * PG, 2048 * PG, 16);
	cr_assert_eq(rp_advise(f.m, 0, 2048 * PG, RP_ADVICE_SEQUENTIAL), 0, "%s", rp_errmsg());
	for (uint64_t p = 0; p < pages; p++)
		(void)*(volatile char *)(f.a + p * PG + 7);
	tu_expect_fill(f.a, pages * PG, 16, 0);

	struct rp_stats s = tu_stats(f.eng);

	cr_assert_eq(s.pages_loaded, pages, "%llu pages loaded for a %llu-page file",
	             (unsigned long long)s.pages_loaded, (unsigned long long)pages);
	cr_assert_eq(rp_fileh_resize(f.fh, 1500 * PG), 0, "%s", rp_errmsg());
	for (uint64_t p = pages; p < 1500; p++)
		cr_assert_eq(f.a[p * PG + 9], 0);
	s = tu_stats(f.eng);
	cr_assert_eq(s.pages_loaded, pages, "the grown pages were read");
	tu_map_close(&f);
}

/* What cannot change size says so, and a pinned page keeps the handle from shrinking
 * past it. */
Test(size, refusals)
{
	struct tu_map f;

	fx_open(&f, "size_refuse", 8 * PG, 8 * PG, 17);
	cr_assert_eq(rp_pin(f.m, 6 * PG, PG), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_resize(f.fh, 4 * PG), -EBUSY);
	cr_assert(strstr(rp_errmsg(), "pinned"), "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_size(f.fh), 8 * PG, "nothing done");
	cr_assert_eq(rp_unpin(f.m, 6 * PG, PG), 0);
	cr_assert_eq(rp_fileh_resize(f.fh, 1ull << 51), -EINVAL);
	cr_assert_eq(rp_fileh_resize(NULL, 0), -EINVAL);
	cr_assert_eq(rp_pin(f.m, 0, 8 * PG), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_unpin(f.m, 0, 8 * PG), 0);
	cr_assert_eq(rp_fileh_resize(f.fh, 4 * PG), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_pin(f.m, 0, 8 * PG), -EINVAL, "a pin past the end");
	cr_assert(strstr(rp_errmsg(), "end"), "%s", rp_errmsg());
	tu_map_close(&f);

	rp_store *st;
	rp_fileh *fh;
	rp_engine *eng = engine(16ull << 20);
	char *path = tu_scratch_file("size_ro", 4 * PG, 1);

	cr_assert_eq(rp_store_open(eng, path, O_RDONLY, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fh), 0);
	cr_assert_eq(rp_fileh_resize(fh, PG), -EBADF);
	cr_assert(strstr(rp_errmsg(), "O_RDONLY"), "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_close(fh), 0);
	cr_assert_eq(rp_store_close(st), 0);
	rp_engine_close(eng);
	tu_unlink(path);
}

/* A raw block device cannot change size: -EINVAL naming the device. */
Test(size, block_device_refuses)
{
	char dev[64], *path;
	int loopfd = tu_loop_scratch("size_loop", 64 * PG, 3, 4096, &path, dev, sizeof(dev));
	rp_engine *eng = engine(16ull << 20);
	rp_store *st;
	rp_fileh *fh;

	cr_assert_eq(rp_store_open(eng, dev, O_RDWR, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fh), 0);
	cr_assert_eq(rp_fileh_resize(fh, 128 * PG), -EINVAL);
	cr_assert(strstr(rp_errmsg(), dev), "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_size(fh), 64 * PG);
	cr_assert_eq(rp_fileh_refresh(fh), 0); /* its size is fixed: nothing to learn */
	cr_assert_eq(rp_fileh_size(fh), 64 * PG);
	cr_assert_eq(rp_fileh_close(fh), 0);
	cr_assert_eq(rp_store_close(st), 0);
	rp_engine_close(eng);
	cr_assert(tu_loop_detach(loopfd, dev));
	tu_unlink(path);
}

/* Another process changes the file: rp_fileh_refresh learns its size. Growing reads the
 * new bytes (and the old last page, cut in the middle, again); shrinking drops what is
 * past the new end; a handle with changes not written out is refused. */
Test(size, refresh_learns_the_size)
{
	struct tu_map f;
	char buf[2 * PG];
	const uint64_t half = 10 * PG + 100; /* the old end cuts page 10 */

	fx_open(&f, "refresh", half, 64 * PG, 41);
	cr_assert_eq(rp_read(f.fh, 10 * PG, buf, 100), 100); /* page 10 resident, cut */
	tu_map_read(&f, 3);
	int fd = open(f.path, O_RDWR);

	cr_assert_geq(fd, 0);
	/* the file grows from outside, its bytes those of seed 41 to 20 pages */
	char *more = malloc(20 * PG);

	tu_fill(more, 20 * PG, 41, 0);
	cr_assert_eq(pwrite(fd, more + half, 20 * PG - half, (off_t)half), (ssize_t)(20 * PG - half));
	cr_assert_eq(rp_fileh_size(f.fh), half);
	cr_assert_eq(rp_fileh_refresh(f.fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_size(f.fh), 20 * PG);
	cr_assert_eq(rp_read(f.fh, 10 * PG, buf, 2 * PG), (ssize_t)(2 * PG));
	tu_expect_fill(buf, 2 * PG, 41, 10 * PG);
	tu_expect_fill(f.a + 15 * PG, PG, 41, 15 * PG);
	/* and shrinks: past the end is SIGBUS again */
	cr_assert_eq(ftruncate(fd, 5 * PG), 0);
	cr_assert_eq(rp_fileh_refresh(f.fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_size(f.fh), 5 * PG);
	cr_assert(tu_touch_gets_sigbus(f.a + 6 * PG));
	tu_expect_fill(f.a + 3 * PG, PG, 41, 3 * PG);
	/* unwritten changes: refused, nothing changed */
	put(&f, 0, 8, 9);
	cr_assert_eq(ftruncate(fd, 7 * PG), 0);
	cr_assert_eq(rp_fileh_refresh(f.fh), -EBUSY);
	cr_assert(strstr(rp_errmsg(), "not written out"), "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_size(f.fh), 5 * PG);
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0);
	cr_assert_eq(rp_fileh_resize(f.fh, 6 * PG), 0);
	cr_assert_eq(rp_fileh_refresh(f.fh), -EBUSY); /* a size not written out */
	cr_assert_eq(rp_discard(f.fh), 0);
	cr_assert_eq(rp_fileh_refresh(f.fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_size(f.fh), 7 * PG);
	close(fd);
	free(more);
	tu_map_close(&f);
}

/* A custom store: without a resize callback a handle cannot change size; with one, the
 * writeout calls it with the handle's size (after cutting what a shrink dropped). */
struct mem {
	char *b;
	uint64_t size, cap;
	uint64_t resizes[8];
	unsigned nresizes;
};

static int mem_load(void *ctx, uint64_t off, void *buf, size_t len, rp_load_token *tok)
{
	struct mem *m = ctx;

	(void)tok;
	memset(buf, 0, len);
	if (off < m->size)
		memcpy(buf, m->b + off, m->size - off < len ? m->size - off : len);
	return 0;
}

static int mem_store(void *ctx, uint64_t off, const void *buf, size_t len, rp_store_token *tok)
{
	struct mem *m = ctx;

	(void)tok;
	if (off + len > m->cap)
		return -ENOSPC;
	if (off > m->size) /* a write past the end grows the store over zeros, as a file's */
		memset(m->b + m->size, 0, off - m->size);
	memcpy(m->b + off, buf, len);
	if (off + len > m->size)
		m->size = off + len;
	return 0;
}

static int mem_resize(void *ctx, uint64_t size)
{
	struct mem *m = ctx;

	if (size > m->cap)
		return -ENOSPC;
	if (size > m->size)
		memset(m->b + m->size, 0, size - m->size);
	m->size = size;
	if (m->nresizes < 8)
		m->resizes[m->nresizes++] = size;
	return 0;
}

Test(size, custom_store_resize_callback)
{
	struct mem mem = {.cap = 64 * PG, .size = 8 * PG};
	rp_store_ops ops = {.load = mem_load, .store = mem_store};
	rp_engine *eng = engine(16ull << 20);
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;

	mem.b = calloc(1, mem.cap);
	tu_fill(mem.b, mem.size, 21, 0);
	cr_assert_eq(rp_store_create(eng, &ops, &mem, mem.size, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fh), 0);
	cr_assert_eq(rp_fileh_resize(fh, 4 * PG), -EOPNOTSUPP);
	cr_assert(strstr(rp_errmsg(), "resize"), "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_refresh(fh), -EOPNOTSUPP);
	cr_assert_eq(rp_fileh_close(fh), 0);
	cr_assert_eq(rp_store_close(st), 0);

	ops.resize = mem_resize;
	cr_assert_eq(rp_store_create(eng, &ops, &mem, mem.size, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fh), 0);
	cr_assert_eq(rp_map(fh, 0, 32 * PG, PROT_READ | PROT_WRITE, &m), 0, "%s", rp_errmsg());
	char *a = rp_mapping_addr(m);

	cr_assert_eq(rp_fileh_resize(fh, 2 * PG), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_resize(fh, 20 * PG), 0, "%s", rp_errmsg());
	tu_fill(a + 10 * PG, PG, 22, 10 * PG);
	cr_assert_eq(rp_writeout(fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0, "%s",
	             rp_errmsg());
	cr_assert_eq(mem.nresizes, 2, "%u calls", mem.nresizes);
	cr_assert_eq(mem.resizes[0], 2 * PG, "the cut first");
	cr_assert_eq(mem.resizes[1], 20 * PG, "then the size");
	cr_assert_eq(rp_store_size(st), 20 * PG);
	tu_expect_fill(mem.b, 2 * PG, 21, 0);
	expect_zero(mem.b + 2 * PG, 8 * PG, "the store past the cut");
	tu_expect_fill(mem.b + 10 * PG, PG, 22, 10 * PG);
	cr_assert_eq(rp_unmap(m), 0);
	cr_assert_eq(rp_fileh_close(fh), 0);
	cr_assert_eq(rp_store_close(st), 0);
	rp_engine_close(eng);
	free(mem.b);
}

/* Nothing reaches the file before a writeout: closing without one leaves it as it was. */
Test(size, no_writeout_leaves_the_file)
{
	struct tu_map f;

	fx_open(&f, "size_nowo", 6 * PG + 33, 64 * PG, 18);
	cr_assert_eq(rp_fileh_resize(f.fh, 50 * PG), 0, "%s", rp_errmsg());
	put(&f, 0, 50 * PG, 4);
	cr_assert_eq(rp_fileh_resize(f.fh, PG), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_unmap(f.m), 0);
	cr_assert_eq(rp_fileh_close(f.fh), 0);
	cr_assert_eq(rp_store_close(f.st), 0);
	rp_engine_close(f.eng);

	uint64_t n;
	char *b = file_bytes(f.path, &n);

	cr_assert_eq(n, 6 * PG + 33);
	tu_expect_fill(b, n, 18, 0);
	free(b);
	tu_unlink(f.path);
}

/* ---------------------------------------------------------------- rp_read, rp_write */

/* A durable writeout of f, after which its file holds the size bytes of model. */
static void write_out_and_expect(struct tu_map *f, const char *model, uint64_t size)
{
	uint64_t n;

	cr_assert_eq(
	    rp_writeout(f->fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC), 0,
	    "%s", rp_errmsg());
	char *b = file_bytes(f->path, &n);

	cr_assert_eq(n, size);
	cr_assert_eq(memcmp(b, model, size), 0, "the file holds the writes");
	free(b);
}

/* Reads and writes at random offsets and lengths, against a model of the file: what is
 * read is what the file holds or what was written, the counts are short at the end,
 * and after a writeout the file holds the writes. */
Test(rw, read_write_against_a_model)
{
	struct tu_map f;
	const uint64_t size = 300 * PG + 1234;
	uint64_t rng = 42;
	char *model = malloc(size), *buf = malloc(64 * PG);

	fx_open(&f, "rw_model", size, size, 31);
	tu_fill(model, size, 31, 0);
	for (int i = 0; i < 400; i++) {
		const uint64_t off = tu_rand(&rng) % (size + 2 * PG);
		const size_t len = 1 + tu_rand(&rng) % (i % 10 == 0 ? 64 * PG : 3 * PG);
		const size_t want = off >= size ? 0 : (len < size - off ? len : size - off);

		if (tu_rand(&rng) % 3 == 0) {
			tu_fill(buf, len, 1000 + (uint64_t)i, 0);
			cr_assert_eq(rp_write(f.fh, off, buf, len), (ssize_t)want, "write %d: %s", i,
			             rp_errmsg());
			if (want)
				memcpy(model + off, buf, want);
		} else {
			cr_assert_eq(rp_read(f.fh, off, buf, len), (ssize_t)want, "read %d: %s", i,
			             rp_errmsg());
			cr_assert_eq(memcmp(buf, model + off, want), 0, "read %d at %llu", i,
			             (unsigned long long)off);
		}
	}
	/* the mapping sees the writes, and the writes are dirty pages */
	cr_assert_eq(memcmp(f.a, model, size), 0);
	uint64_t dirty;

	cr_assert_eq(rp_fileh_dirty(f.fh, &dirty), 0);
	cr_assert_gt(dirty, 0);
	write_out_and_expect(&f, model, size);
	/* bad arguments */
	cr_assert_eq(rp_read(NULL, 0, buf, 1), -EINVAL);
	cr_assert_eq(rp_read(f.fh, 0, NULL, 1), -EINVAL);
	cr_assert_eq(rp_read(f.fh, 0, buf, 0), 0);
	free(buf);
	free(model);
	tu_map_close(&f);
}

/* Pages past the file's end written with rp_write: a whole page is made of the bytes
 * (vm/pin.c, struct pin_copy), a part of one is zeros around them; nothing is read, the
 * new pages are dirty at once and stay through reclaim, and a writeout stores them. */
Test(rw, appended_pages_are_made_of_the_bytes_written)
{
	struct tu_map f;
	const uint64_t old = 8 * PG, size = 40 * PG;
	char *model = calloc(1, size), *buf = malloc(PG);
	uint64_t dirty;

	fx_open(&f, "rw_append", old, size, 77);
	tu_fill(model, old, 77, 0);
	const uint64_t loaded = tu_stats(f.eng).pages_loaded;

	cr_assert_eq(rp_fileh_resize(f.fh, size), 0, "%s", rp_errmsg());
	for (uint64_t p = old / PG; p < size / PG; p++) {
		const uint64_t off = p * PG + (p % 4 == 3 ? 100 : 0); /* every fourth: a part */
		const size_t len = p % 4 == 3 ? PG - 200 : PG;

		tu_fill(buf, len, 500 + p, 0);
		cr_assert_eq(rp_write(f.fh, off, buf, len), (ssize_t)len, "page %lu: %s",
		             (unsigned long)p, rp_errmsg());
		memcpy(model + off, buf, len);
	}
	cr_assert_eq(tu_stats(f.eng).pages_loaded, loaded, "nothing read for new pages");
	cr_assert_eq(rp_fileh_dirty(f.fh, &dirty), 0);
	cr_assert_eq(dirty, (size - old) / PG);
	(void)rp_reclaim(f.eng, 1 << 20); /* dirty pages stay */
	cr_assert_eq(rp_fileh_dirty(f.fh, &dirty), 0);
	cr_assert_eq(dirty, (size - old) / PG);
	for (uint64_t p = 0; p < size / PG; p++) {
		cr_assert_eq(rp_read(f.fh, p * PG, buf, PG), (ssize_t)PG);
		cr_assert_eq(memcmp(buf, model + p * PG, PG), 0, "page %lu read back",
		             (unsigned long)p);
	}
	cr_assert_eq(memcmp(f.a, model, size), 0, "the mapping shows the writes");
	write_out_and_expect(&f, model, size);
	free(buf);
	free(model);
	tu_map_close(&f);
}

/* A failed load reaches rp_read and rp_write as -EIO, never as a signal. */
Test(rw, load_error_is_a_return_value)
{
	struct tu_map f;
	char buf[3 * 4096];

	fx_open(&f, "rw_eio", 64 * PG, 64 * PG, 32);
	struct rpio_fault fault = {
	    .ops = 1u << IO_OP_READ, .off_lo = 8 * PG, .off_hi = 12 * PG, .err = EIO};

	rpio_dev_inject(vm_test_dev(f.st), &fault);
	cr_assert_eq(rp_read(f.fh, 9 * PG + 5, buf, 100), -EIO, "%s", rp_errmsg());
	cr_assert_eq(rp_write(f.fh, 10 * PG + 5, buf, 100), -EIO, "%s", rp_errmsg());
	/* a copy that reached good pages first is short; the next call gets the error */
	cr_assert_eq(rp_read(f.fh, 2 * PG, buf, 2 * PG), (ssize_t)(2 * PG));
	cr_assert_eq(rp_read(f.fh, 20 * PG, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	tu_expect_fill(buf, sizeof(buf), 32, 20 * PG);
	rpio_dev_inject(vm_test_dev(f.st), NULL);
	cr_assert_eq(rp_invalidate(f.fh, 8 * PG, 4 * PG), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_read(f.fh, 9 * PG, buf, PG), (ssize_t)PG, "%s", rp_errmsg());
	tu_expect_fill(buf, PG, 32, 9 * PG);
	tu_map_close(&f);
}

/* rp_read and rp_write copy a resident page through the handle's alias mapping (vm/pin.c;
 * a page they load, with pread and pwrite): it stays mapped there, leaves when dropped,
 * and a page loaded again shows the file's new bytes, never the old mapping's. Reads and
 * writes at random through a pool a quarter of the file's size, written out as they go,
 * match a model throughout. */
Test(rw, copies_go_through_the_alias_and_leave_with_the_page)
{
	enum { PAGES = 512, POOL = 128 };
	rp_engine *eng = engine(POOL * PG);
	rp_store *st;
	rp_fileh *fh;
	char *path = tu_scratch_file("rw_alias", PAGES * PG, 34), *model = malloc(PAGES * PG);
	char *buf = malloc(3 * PG);
	uint64_t rng = 9;

	cr_assert_eq(rp_store_open(eng, path, O_RDWR, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fh), 0, "%s", rp_errmsg());
	const char *alias = vm_test_alias(fh);

	for (int i = 0; i < 2; i++) {
		memset(buf, 0, PG);
		cr_assert_eq(rp_read(fh, 3 * PG, buf, PG), (ssize_t)PG, "%s", rp_errmsg());
		tu_expect_fill(buf, PG, 34, 3 * PG);
		cr_assert_eq(tu_present_pages(alias + 3 * PG, PG), (unsigned)i, "%s",
		             i ? "a resident page's copy maps it" : "a cold page's copy maps nothing");
	}
	/* the file changes behind the cache; dropped, the page leaves the alias */
	int fd = open(path, O_RDWR);

	cr_assert_geq(fd, 0);
	memset(buf, 'n', PG);
	cr_assert_eq(pwrite(fd, buf, PG, 3 * PG), (ssize_t)PG);
	cr_assert_eq(rp_invalidate(fh, 3 * PG, PG), 0, "%s", rp_errmsg());
	cr_assert_eq(tu_present_pages(alias + 3 * PG, PG), 0, "dropped, the page left the alias");
	memset(buf, 0, PG);
	cr_assert_eq(rp_read(fh, 3 * PG, buf, PG), (ssize_t)PG, "%s", rp_errmsg());
	cr_assert(buf[0] == 'n' && buf[PG - 1] == 'n', "the file's new bytes are read");
	cr_assert_eq(pread(fd, model, PAGES * PG, 0), (ssize_t)(PAGES * PG));
	for (int i = 0; i < 3000; i++) {
		const uint64_t off = tu_rand(&rng) % (PAGES * PG - 3 * PG);
		const size_t len = 1 + tu_rand(&rng) % (3 * PG);

		if (tu_rand(&rng) % 4 == 0) {
			tu_fill(buf, len, 2000 + (uint64_t)i, 0);
			cr_assert_eq(rp_write(fh, off, buf, len), (ssize_t)len, "write %d: %s", i,
			             rp_errmsg());
			memcpy(model + off, buf, len);
		} else {
			cr_assert_eq(rp_read(fh, off, buf, len), (ssize_t)len, "read %d: %s", i,
			             rp_errmsg());
			cr_assert_eq(memcmp(buf, model + off, len), 0, "read %d at %llu", i,
			             (unsigned long long)off);
		}
		if (i % 8 == 7) /* clean pages can be evicted, and are */
			cr_assert_eq(rp_writeout(fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0,
			             "%s", rp_errmsg());
	}
	cr_assert_gt(tu_stats(eng).pages_evicted, 0, "the pool was too small for the file");
	cr_assert_leq(tu_present_pages(alias, PAGES * PG), POOL, "evicted pages left the alias");
	cr_assert_eq(rp_writeout(fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC),
	             0, "%s", rp_errmsg());
	char *back = malloc(PAGES * PG);

	cr_assert_eq(pread(fd, back, PAGES * PG, 0), (ssize_t)(PAGES * PG));
	cr_assert_eq(memcmp(back, model, PAGES * PG), 0, "the file holds the writes");
	close(fd);
	free(back);
	free(buf);
	free(model);
	cr_assert_eq(rp_fileh_close(fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_store_close(st), 0, "%s", rp_errmsg());
	rp_engine_close(eng);
	tu_unlink(path);
}

/* A writeout copies a run into its staging area from the alias when copies mapped every
 * page of it there (PG_ALIAS, vm/writeout.c), with pread otherwise: it maps nothing in the
 * alias that a copy did not, and the file gets the bytes either way. */
Test(rw, a_writeout_copies_from_the_alias_only_what_a_copy_mapped_there)
{
	enum { PAGES = 8 };
	rp_engine *eng = engine(64 * PG);
	rp_store *st;
	rp_fileh *fh;
	char *path = tu_scratch_file("rw_stage", PAGES * PG, 35), buf[2 * PG], back[PG];

	cr_assert_eq(rp_store_open(eng, path, O_RDWR, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fh), 0, "%s", rp_errmsg());
	const char *alias = vm_test_alias(fh);

	/* page 2 written once (cold: pwrite), page 5 twice (then through the alias), pages 6
	 * and 7 once each then again together: one run of two pages, both in the alias */
	memset(buf, 'a', PG);
	cr_assert_eq(rp_write(fh, 2 * PG, buf, PG), (ssize_t)PG, "%s", rp_errmsg());
	cr_assert_eq(rp_write(fh, 5 * PG, buf, PG), (ssize_t)PG, "%s", rp_errmsg());
	memset(buf, 'b', 2 * PG);
	cr_assert_eq(rp_write(fh, 5 * PG, buf, PG), (ssize_t)PG, "%s", rp_errmsg());
	for (int i = 6; i < 8; i++)
		cr_assert_eq(rp_write(fh, (uint64_t)i * PG, buf, PG), (ssize_t)PG, "%s", rp_errmsg());
	cr_assert_eq(rp_write(fh, 6 * PG, buf, 2 * PG), (ssize_t)(2 * PG), "%s", rp_errmsg());
	cr_assert_eq(tu_present_pages(alias + 2 * PG, PG), 0, "a cold write maps nothing");
	cr_assert_eq(tu_present_pages(alias + 5 * PG, 3 * PG), 3, "resident writes map theirs");
	cr_assert_eq(rp_writeout(fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC),
	             0, "%s", rp_errmsg());
	cr_assert_eq(tu_present_pages(alias + 2 * PG, PG), 0, "the writeout mapped nothing");
	int fd = open(path, O_RDONLY);

	cr_assert_geq(fd, 0);
	const struct {
		int page;
		char c;
	} want[] = {{2, 'a'}, {5, 'b'}, {6, 'b'}, {7, 'b'}};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		cr_assert_eq(pread(fd, back, PG, (off_t)want[i].page * PG), (ssize_t)PG);
		cr_assert(back[0] == want[i].c && back[PG - 1] == want[i].c, "page %d on disk",
		          want[i].page);
	}
	/* an untouched neighbour keeps the file's bytes */
	cr_assert_eq(pread(fd, back, PG, 4 * PG), (ssize_t)PG);
	tu_expect_fill(back, PG, 35, 4 * PG);
	close(fd);
	cr_assert_eq(rp_fileh_close(fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_store_close(st), 0, "%s", rp_errmsg());
	rp_engine_close(eng);
	tu_unlink(path);
}

/* A pool that cannot make room (every page dirty, dirty_policy=keep) reaches rp_write and
 * rp_read as -ENOMEM after reclaim_wait, never as a signal. */
Test(rw, full_pool_is_a_return_value)
{
	rp_config cfg;
	rp_engine *eng;
	rp_store *st;
	rp_fileh *fh;
	char *path = tu_scratch_file("rw_full", 256 * PG, 33), buf[4096];

	tu_config_init(&cfg);
	cfg.ram_size = 64 * PG;
	cr_assert_eq(rp_config_set(&cfg, "dirty_policy", "keep"), 0);
	cr_assert_eq(rp_config_set(&cfg, "reclaim_wait", "50"), 0);
	cr_assert_eq(rp_engine_open(&cfg, &eng), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_store_open(eng, path, O_RDWR, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fh), 0);
	memset(buf, 7, sizeof(buf));
	uint64_t p = 0;
	ssize_t r = 0;

	for (; p < 256 && (r = rp_write(fh, p * PG, buf, PG)) == (ssize_t)PG; p++)
		;
	cr_assert_eq(r, -ENOMEM, "write of page %llu: %zd (%s)", (unsigned long long)p, r,
	             rp_errmsg());
	cr_assert_leq(p, 64, "no more dirty pages than the pool holds");
	cr_assert_eq(rp_read(fh, 200 * PG, buf, 10), -ENOMEM, "%s", rp_errmsg());
	/* written out and clean, the pages make room again */
	cr_assert_eq(rp_writeout(fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0, "%s",
	             rp_errmsg());
	cr_assert_eq(rp_read(fh, 200 * PG, buf, 10), 10, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_close(fh), 0);
	cr_assert_eq(rp_store_close(st), 0);
	rp_engine_close(eng);
	tu_unlink(path);
}

/* ---------------------------------------------------------------- the caller's descriptor */

static unsigned open_fds(void)
{
	unsigned n = 0;
	char p[64];

	for (int fd = 0; fd < 4096; fd++) {
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		n += access(p, F_OK) == 0;
	}
	return n;
}

/* Whether another process sees a write lock on byte 0 of path (a child asks F_GETLK). */
static bool locked_elsewhere(const char *path)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(path, O_RDWR);
		struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};

		_exit(fd >= 0 && fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type == F_WRLCK ? 0 : 1);
	}
	int status;

	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

Test(fd, store_over_the_callers_descriptor_keeps_its_locks)
{
	rp_engine *eng = engine(16ull << 20);
	char *path = tu_scratch_file("fd_lock", 16 * PG, 41), buf[100];
	int fd = open(path, O_RDWR);
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 100};
	rp_store *st;
	rp_fileh *fh;

	cr_assert_geq(fd, 0);
	cr_assert_eq(fcntl(fd, F_SETLK, &fl), 0);
	cr_assert(locked_elsewhere(path));
	for (int round = 0; round < 3; round++) {
		cr_assert_eq(rp_store_open_fd(eng, fd, O_RDWR, &st), 0, "%s", rp_errmsg());
		cr_assert_eq(rp_store_size(st), 16 * PG);
		cr_assert_eq(rp_fileh_open(st, &fh), 0);
		cr_assert_eq(rp_read(fh, 5 * PG + 3, buf, sizeof(buf)), (ssize_t)sizeof(buf), "%s",
		             rp_errmsg());
		tu_expect_fill(buf, sizeof(buf), 41, 5 * PG + 3);
		cr_assert_eq(rp_write(fh, 0, "abc", 3), 3, "%s", rp_errmsg());
		cr_assert_eq(rp_writeout(fh, RP_WRITEOUT_STORE | RP_WRITEOUT_SYNC), 0, "%s",
		             rp_errmsg());
		cr_assert_eq(rp_fileh_close(fh), 0);
		const unsigned before = open_fds();

		cr_assert_eq(rp_store_close(st), 0);
		cr_assert_eq(open_fds(), before, "round %d: a descriptor of the file was closed",
		             round);
		cr_assert(locked_elsewhere(path), "round %d: the lock went with the store", round);
		cr_assert_geq(fcntl(fd, F_GETFD), 0, "the caller's descriptor is open");
	}
	char head[3];

	cr_assert_eq(pread(fd, head, 3, 0), 3);
	cr_assert_eq(memcmp(head, "abc", 3), 0, "the writeout reached the file");
	/* a descriptor with O_DIRECT is used as it is, and left open */
	int dfd = open(path, O_RDONLY | O_DIRECT);

	cr_assert_geq(dfd, 0);
	const unsigned n0 = open_fds();

	cr_assert_eq(rp_store_open_fd(eng, dfd, O_RDONLY, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(open_fds(), n0, "no descriptor of its own");
	cr_assert_eq(rp_store_close(st), 0);
	cr_assert_geq(fcntl(dfd, F_GETFD), 0);
	cr_assert_eq(rp_store_open_fd(eng, dfd, O_RDWR, &st), -EBADF, "not open for writing");
	close(dfd);
	/* bad descriptors */
	int p[2];

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(rp_store_open_fd(eng, p[0], O_RDONLY, &st), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "FIFO"), "%s", rp_errmsg());
	cr_assert_eq(rp_store_open_fd(eng, -1, O_RDONLY, &st), -EBADF);
	close(p[0]);
	close(p[1]);
	cr_assert_eq(rp_store_open_fd(eng, p[0], O_RDONLY, &st), -EBADF);
	/* rp_engine_close closes the descriptors it kept: the locks go, as documented */
	rp_engine_close(eng);
	cr_assert(!locked_elsewhere(path), "the engine's close closed the kept descriptor");
	cr_assert_geq(fcntl(fd, F_GETFD), 0, "and never the caller's");
	close(fd);
	tu_unlink(path);
}

/* ---------------------------------------------------------------- invalidatev, stats */

Test(fd, invalidatev_and_handle_stats)
{
	struct tu_map f;
	struct rp_fileh_stats s;
	char buf[8];

	fx_open(&f, "fd_inval", 64 * PG, 64 * PG, 42);
	tu_expect_fill(f.a, 64 * PG, 42, 0);
	cr_assert_eq(rp_fileh_stats(f.fh, &s), 0);
	cr_assert_eq(s.size, 64 * PG);
	cr_assert_eq(s.pages_loaded, 64, "%llu", (unsigned long long)s.pages_loaded);
	cr_assert_geq(s.loads, 1);
	cr_assert_eq(s.resident_pages, 64);
	put(&f, 3 * PG, 10, 1);
	put(&f, 40 * PG, 10, 2);
	cr_assert_eq(rp_fileh_stats(f.fh, &s), 0);
	cr_assert_eq(s.dirty_pages, 2);

	const rp_range r[2] = {{0, 8 * PG}, {32 * PG, 16 * PG}};

	cr_assert_eq(rp_pin(f.m, 44 * PG, PG), 0);
	cr_assert_eq(rp_invalidatev(f.fh, r, 2), -EBUSY);
	cr_assert_eq(rp_fileh_stats(f.fh, &s), 0);
	cr_assert_eq(s.dirty_pages, 2, "nothing done");
	cr_assert_eq(rp_unpin(f.m, 44 * PG, PG), 0);
	cr_assert_eq(rp_invalidatev(f.fh, r, 2), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_stats(f.fh, &s), 0);
	cr_assert_eq(s.dirty_pages, 0);
	cr_assert_eq(s.resident_pages, 64 - 24);
	tu_expect_fill(f.a + 3 * PG, PG, 42, 3 * PG);
	tu_expect_fill(f.a + 40 * PG, PG, 42, 40 * PG);
	const rp_range bad = {60 * PG, 8 * PG};

	cr_assert_eq(rp_invalidatev(f.fh, &bad, 1), -EINVAL);
	cr_assert_eq(rp_invalidatev(f.fh, NULL, 0), -EINVAL);
	/* written and evicted pages */
	cr_assert_eq(rp_write(f.fh, 0, "x", 1), 1);
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0);
	cr_assert_eq(rp_advise(f.m, 48 * PG, 16 * PG, RP_ADVICE_DONTNEED), 0);
	cr_assert_eq(rp_fileh_stats(f.fh, &s), 0);
	cr_assert_eq(s.pages_written, 1);
	cr_assert_eq(s.writeouts, 1);
	cr_assert_eq(s.pages_evicted, 16);
	cr_assert_eq(rp_read(f.fh, 50 * PG, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	cr_assert_eq(rp_fileh_stats(NULL, &s), -EINVAL);
	tu_map_close(&f);
}

/* ---------------------------------------------------------------- group writeout */

/* Custom stores that log what they are asked, in order, into one shared log. */
struct logstore {
	char name;
	char *b;
	uint64_t size;
	int fail_sync;
	unsigned syncs;
	pthread_mutex_t *lock;
	char *log; /* "a" a store of A, "A" a sync of A, ... */
	size_t *nlog;
};

static void logc(struct logstore *s, char c)
{
	pthread_mutex_lock(s->lock);
	s->log[(*s->nlog)++] = c;
	pthread_mutex_unlock(s->lock);
}

static int ls_load(void *ctx, uint64_t off, void *buf, size_t len, rp_load_token *tok)
{
	struct logstore *s = ctx;

	(void)tok;
	memcpy(buf, s->b + off, len);
	return 0;
}

static int ls_store(void *ctx, uint64_t off, const void *buf, size_t len, rp_store_token *tok)
{
	struct logstore *s = ctx;

	(void)tok;
	memcpy(s->b + off, buf, len);
	logc(s, s->name);
	return 0;
}

static int ls_sync(void *ctx)
{
	struct logstore *s = ctx;

	logc(s, (char)(s->name - 'a' + 'A'));
	s->syncs++;
	return s->fail_sync ? -EIO : 0;
}

/* A done callback that notes whether it runs on a service thread: rp_writeout refuses
 * to wait there (-EDEADLK). */
struct where_done {
	struct tu_done d;
	rp_fileh *fh;
	int probe;
};

static void where_done_fn(void *arg, int result)
{
	struct where_done *w = arg;

	w->probe = rp_writeout(w->fh, RP_WRITEOUT_STORE);
	tu_done_fn(&w->d, result);
}

Test(group, one_sync_per_store_and_the_order_asked)
{
	static const rp_store_ops ops = {.load = ls_load, .store = ls_store, .sync = ls_sync};
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	char log[4096];
	size_t nlog = 0;
	struct logstore s[2] = {{.name = 'a', .size = 32 * PG}, {.name = 'b', .size = 32 * PG}};
	rp_engine *eng = engine(32ull << 20);
	rp_store *st[2];
	rp_fileh *fh[3];
	uint64_t dirty;

	for (int i = 0; i < 2; i++) {
		s[i].b = calloc(1, s[i].size);
		s[i].lock = &lock;
		s[i].log = log;
		s[i].nlog = &nlog;
		cr_assert_eq(rp_store_create(eng, &ops, &s[i], s[i].size, &st[i]), 0);
	}
	/* two handles of store a, one of b */
	cr_assert_eq(rp_fileh_open(st[0], &fh[0]), 0);
	cr_assert_eq(rp_fileh_open(st[0], &fh[1]), 0);
	cr_assert_eq(rp_fileh_open(st[1], &fh[2]), 0);
	for (int i = 0; i < 3; i++)
		for (uint64_t p = 0; p < 4; p++)
			cr_assert_eq(rp_write(fh[i], (p * 3 + (uint64_t)i) * PG, "x", 1), 1, "%s",
			             rp_errmsg());
	const int f = RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC;

	cr_assert_eq(rp_writeoutv(fh, 3, f), 0, "%s", rp_errmsg());
	cr_assert_eq(s[0].syncs, 1, "store a synced %u times for its two handles", s[0].syncs);
	cr_assert_eq(s[1].syncs, 1);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(rp_fileh_dirty(fh[i], &dirty), 0);
		cr_assert_eq(dirty, 0, "handle %d", i);
	}
	/* every store before any sync */
	log[nlog] = 0;
	cr_assert_eq(strspn(log, "ab"), nlog - 2, "%s", log);

	/* ORDERED: b (handle 2) durable before a's first write, then a */
	rp_fileh *order[2] = {fh[2], fh[0]};

	nlog = 0;
	for (uint64_t p = 0; p < 3; p++) {
		cr_assert_eq(rp_write(fh[2], p * PG, "y", 1), 1);
		cr_assert_eq(rp_write(fh[0], p * PG, "y", 1), 1);
	}
	cr_assert_eq(rp_writeoutv(order, 2, f | RP_WRITEOUT_ORDERED), 0, "%s", rp_errmsg());
	log[nlog] = 0;
	cr_assert_str_eq(log, "bBaA"); /* three pages in a row: one store each */

	/* a failed sync of the first stops there: the second is not written */
	nlog = 0;
	s[1].fail_sync = 1;
	cr_assert_eq(rp_write(fh[2], 0, "z", 1), 1);
	cr_assert_eq(rp_write(fh[0], 0, "z", 1), 1);
	cr_assert_eq(rp_writeoutv(order, 2, f | RP_WRITEOUT_ORDERED), -EIO);
	cr_assert(strstr(rp_errmsg(), "handle 1 of 2"), "%s", rp_errmsg());
	log[nlog] = 0;
	cr_assert_str_eq(log, "bB");
	cr_assert_eq(rp_fileh_dirty(fh[2], &dirty), 0);
	cr_assert_eq(dirty, 1, "a failed sync keeps the page dirty");
	cr_assert_eq(rp_fileh_dirty(fh[0], &dirty), 0);
	cr_assert_eq(dirty, 1, "not written");
	s[1].fail_sync = 0;
	struct where_done wd = {.d = TU_DONE_INIT, .fh = fh[0]};

	cr_assert_eq(rp_writeoutv_async(fh, 3, f, where_done_fn, &wd), 0);
	cr_assert_eq(tu_done_wait(&wd.d), 0);
	cr_assert_eq(wd.probe, -EDEADLK, "done runs on a service thread (%d)", wd.probe);
	cr_assert_eq(rp_fileh_dirty(fh[0], &dirty), 0);
	cr_assert_eq(dirty, 0);

	/* arguments */
	rp_fileh *twice[2] = {fh[0], fh[0]};

	cr_assert_eq(rp_writeoutv(twice, 2, f), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "same"), "%s", rp_errmsg());
	cr_assert_eq(rp_writeoutv(fh, 3, RP_WRITEOUT_STORE | RP_WRITEOUT_ORDERED), -EINVAL);
	cr_assert_eq(rp_writeoutv(NULL, 0, f), -EINVAL);
	cr_assert_eq(rp_writeoutv_async(fh, 3, f, NULL, NULL), -EINVAL);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(rp_fileh_close(fh[i]), 0);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(rp_store_close(st[i]), 0);
		free(s[i].b);
	}
	rp_engine_close(eng);
}

/* Files: three handles written out with one call reach their files, durable. */
Test(group, files)
{
	struct tu_map f[3];
	rp_fileh *fh[3];
	rp_engine *eng = engine(64ull << 20);

	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "group%d", i);
		fx_open_on(&f[i], eng, name, 16 * PG, 16 * PG, 50 + (uint64_t)i);
		put(&f[i], (uint64_t)i * PG, 2 * PG, 60 + (uint64_t)i);
		fh[i] = f[i].fh;
	}
	cr_assert_eq(rp_writeoutv(fh, 3, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED |
	                                     RP_WRITEOUT_SYNC),
	             0, "%s", rp_errmsg());
	for (int i = 0; i < 3; i++) {
		uint64_t n;
		char *b = file_bytes(f[i].path, &n);

		tu_expect_fill(b + (uint64_t)i * PG, 2 * PG, 60 + (uint64_t)i, (uint64_t)i * PG);
		free(b);
		f[i].eng = NULL; /* the test's, closed below (rp_engine_close(NULL) does nothing) */
		tu_map_close(&f[i]);
	}
	rp_engine_close(eng);
}

/* Writeout finds the dirty pages through the handle's dirty index, and through a walk of
 * every page once the index is given up (its fallback). */
Test(size, writeout_with_and_without_the_dirty_index)
{
	struct tu_map f;

	fx_open(&f, "size_dindex", 512 * PG, 512 * PG, 19);
	tu_expect_fill(f.a, 512 * PG, 19, 0);
	for (int round = 0; round < 2; round++) {
		if (round == 1)
			vm_test_lose_dirty_index(f.fh);
		for (uint64_t p = (uint64_t)round; p < 512; p += 37)
			put(&f, p * PG, 100, 300 + (uint64_t)round);
		cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED |
		                                   RP_WRITEOUT_SYNC),
		             0, "%s", rp_errmsg());
		uint64_t dirty, n;

		cr_assert_eq(rp_fileh_dirty(f.fh, &dirty), 0);
		cr_assert_eq(dirty, 0, "round %d", round);
		char *b = file_bytes(f.path, &n);

		for (uint64_t p = (uint64_t)round; p < 512; p += 37)
			tu_expect_fill(b + p * PG, 100, 300 + (uint64_t)round, p * PG);
		free(b);
	}
	tu_map_close(&f);
}
