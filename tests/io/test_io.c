/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/io/test_io.c - the io/ contract, run against each backend (io_uring, libaio,
 * psync): data round trips on a file and on a loop device, deep batches, argument checks,
 * reads past the end, read-only devices, durability requests, failure injection.
 */
#include "io/io.h"
#include "common/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <sys/eventfd.h>

#define MIB (1024ull * 1024)

/* Defines one test per backend, each calling fn(backend), with a timeout in seconds. */
#define PER_BACKEND(name, fn, timeout_s)                                                           \
	Test(io_uring, name, .timeout = timeout_s)                                                 \
	{                                                                                          \
		fn(IO_BACKEND_URING);                                                              \
	}                                                                                          \
	Test(libaio, name, .timeout = timeout_s)                                                   \
	{                                                                                          \
		fn(IO_BACKEND_AIO);                                                                \
	}                                                                                          \
	Test(psync, name, .timeout = timeout_s)                                                    \
	{                                                                                          \
		fn(IO_BACKEND_PSYNC);                                                              \
	}

static struct rpio_queue *queue_open(enum rpio_backend b, unsigned depth)
{
	struct rpio_queue_params p = {.backend = b, .depth = depth, .single_thread = true};
	struct rpio_queue *q = NULL;
	char msg[IO_MSG_LEN];
	int err = rpio_queue_open(&p, &q, msg, sizeof(msg));

	cr_assert_eq(err, 0, "rpio_queue_open(%s): %s", rpio_backend_name(b), msg);
	cr_assert_eq(rpio_queue_backend(q), b);
	return q;
}

static struct rpio_dev *dev_open(const char *path, int flags)
{
	struct rpio_dev *d = NULL;
	char msg[IO_MSG_LEN];
	int err = rpio_dev_open(path, flags, &d, msg, sizeof(msg));

	cr_assert_eq(err, 0, "rpio_dev_open(%s): %s", path, msg);
	return d;
}

/* Closes what a test opened: its queue, its device, its scratch file. */
static void teardown(struct rpio_queue *q, struct rpio_dev *d, char *path)
{
	rpio_queue_close(q);
	rpio_dev_close(d);
	tu_unlink(path);
}

/* Stages one request, submits it, waits for it; returns its completion. */
static struct rpio_cqe one(struct rpio_queue *q, struct rpio_dev *d, enum rpio_op op, uint64_t off,
                           void *buf, size_t len, unsigned flags)
{
	struct iovec iov = {buf, len};
	struct rpio_cqe c = {0};
	int err = op == IO_OP_READ    ? rpio_read(q, d, off, &iov, 1, buf)
	          : op == IO_OP_WRITE ? rpio_write(q, d, off, &iov, 1, flags, buf)
	                              : rpio_fdatasync(q, d, NULL);

	cr_assert_eq(err, 0, "staging op %d at %llu: %s", op, (unsigned long long)off,
	             rpio_queue_error(q));
	cr_assert_eq(rpio_reap(q, &c, 1, 1), 1);
	return c;
}

/* Reaps exactly n completions. */
static void reap_all(struct rpio_queue *q, struct rpio_cqe *out, unsigned n)
{
	unsigned got = 0;

	while (got < n) {
		int r = rpio_reap(q, out + got, n - got, n - got);

		cr_assert_gt(r, 0, "rpio_reap: %d (%s)", r, rpio_queue_error(q));
		got += (unsigned)r;
	}
	cr_assert_eq(rpio_queue_inflight(q), 0);
}

/* ---------------------------------------------------------------- round trips */

struct region {
	uint64_t off;
	size_t len;
	unsigned char *wbuf, *rbuf;
	int niov;
};

/* Splits buf[0, len) into n iovecs of whole 4 KiB units (n <= len / 4096). */
static int split_iov(struct iovec *iov, int n, unsigned char *buf, size_t len)
{
	size_t units = len / 4096, at = 0;

	if ((size_t)n > units)
		n = (int)units;
	for (int i = 0; i < n; i++) {
		size_t take = i == n - 1 ? units - at / 4096 : 1;

		iov[i].iov_base = buf + at;
		iov[i].iov_len = take * 4096;
		at += take * 4096;
	}
	return n;
}

/* Writes random data to `nreg` distinct random aligned regions in one batch, reads them
 * back in another batch, compares, and cross-checks a plain pread of each region. */
static void roundtrip(enum rpio_backend b, const char *path, uint64_t seed)
{
	enum { NREG = 128, SLOT = 64 * 1024 };
	struct rpio_dev *d = dev_open(path, O_RDWR);
	struct rpio_queue *q = queue_open(b, 2 * NREG);
	struct region reg[NREG];
	struct rpio_cqe cqe[NREG];
	uint64_t nslots = d->size / SLOT, st = seed;
	unsigned char *used = calloc(nslots, 1);
	int pfd = open(path, O_RDONLY | O_CLOEXEC);

	cr_assert_geq(nslots, (uint64_t)NREG * 2, "device too small: %llu bytes",
	              (unsigned long long)d->size);
	cr_assert_geq(pfd, 0);
	for (int i = 0; i < NREG; i++) {
		uint64_t s;

		do
			s = tu_rand(&st) % nslots;
		while (used[s]);
		used[s] = 1;
		size_t units = 1 + tu_rand(&st) % (SLOT / 4096);
		uint64_t first = tu_rand(&st) % (SLOT / 4096 - units + 1);
		reg[i].off = s * SLOT + first * 4096;
		reg[i].len = units * 4096;
		reg[i].niov = 1 + (int)(tu_rand(&st) % 6); /* 1..6: inline and heap vectors */
		reg[i].wbuf = tu_aligned(reg[i].len);
		reg[i].rbuf = tu_aligned(reg[i].len);
		tu_fill(reg[i].wbuf, reg[i].len, seed + 1, reg[i].off);
		memset(reg[i].rbuf, 0xAA, reg[i].len);

		struct iovec iov[6];
		int n = split_iov(iov, reg[i].niov, reg[i].wbuf, reg[i].len);
		cr_assert_eq(rpio_write(q, d, reg[i].off, iov, n, 0, &reg[i]), 0, "%s",
		             rpio_queue_error(q));
	}
	reap_all(q, cqe, NREG);
	for (int i = 0; i < NREG; i++) {
		struct region *r = cqe[i].udata;

		cr_assert_eq(cqe[i].res, (int64_t)r->len, "write at %llu: res %lld",
		             (unsigned long long)r->off, (long long)cqe[i].res);
	}
	for (int i = 0; i < NREG; i++) {
		struct iovec iov[6];
		int n = split_iov(iov, 7 - reg[i].niov, reg[i].rbuf, reg[i].len);

		cr_assert_eq(rpio_read(q, d, reg[i].off, iov, n, &reg[i]), 0, "%s",
		             rpio_queue_error(q));
	}
	reap_all(q, cqe, NREG);
	for (int i = 0; i < NREG; i++) {
		struct region *r = cqe[i].udata;

		cr_assert_eq(cqe[i].res, (int64_t)r->len);
		cr_assert_eq(cqe[i].flags, 0);
		cr_assert(memcmp(r->rbuf, r->wbuf, r->len) == 0, "data differs at offset %llu",
		          (unsigned long long)r->off);
		memset(r->rbuf, 0, r->len);
		cr_assert_eq(pread(pfd, r->rbuf, r->len, (off_t)r->off), (ssize_t)r->len);
		cr_assert(memcmp(r->rbuf, r->wbuf, r->len) == 0, "pread disagrees at offset %llu",
		          (unsigned long long)r->off);
		free(r->wbuf);
		free(r->rbuf);
	}
	close(pfd);
	free(used);
	rpio_queue_close(q);
	rpio_dev_close(d);
}

static void roundtrip_file(enum rpio_backend b)
{
	char *path = tu_scratch_file("io-roundtrip", 32 * MIB, 7);

	cr_assert_not_null(path);
	roundtrip(b, path, 1000 + b);
	tu_unlink(path);
}
PER_BACKEND(roundtrip_random_offsets_regular_file, roundtrip_file, 120)

static void roundtrip_loop(enum rpio_backend b)
{
	char dev[64];
	char *path;
	int lfd;

	lfd = tu_loop_scratch("io-loop", 32 * MIB, 9, 4096, &path, dev, sizeof(dev));

	struct rpio_dev *d = dev_open(dev, O_RDONLY);
	cr_expect(d->blockdev);
	cr_expect_eq(d->size, 32 * MIB);
	cr_expect_eq(d->lbs, 4096u);
	rpio_dev_close(d);

	roundtrip(b, dev, 2000 + b);
	cr_expect(tu_loop_detach(lfd, dev), "%s was not detached", dev);
	tu_unlink(path);
}
PER_BACKEND(roundtrip_random_offsets_loop_device, roundtrip_loop, 120)

/* ---------------------------------------------------------------- deep batches */

static void batch_in_flight(enum rpio_backend b)
{
	enum { N = 300 };
	char *path = tu_scratch_file("io-batch", 8 * MIB, 11);
	struct rpio_dev *d = dev_open(path, O_RDONLY);
	struct rpio_queue *q = queue_open(b, 512);
	unsigned char *buf = tu_aligned((size_t)N * 4096), *want = malloc(4096);
	struct rpio_cqe cqe[N];
	uint64_t st = 5;

	for (uintptr_t i = 0; i < N; i++) {
		uint64_t page = tu_rand(&st) % (8 * MIB / 4096);
		struct iovec iov = {buf + i * 4096, 4096};

		cr_assert_eq(rpio_read(q, d, page * 4096, &iov, 1, (void *)(page << 16 | i)), 0);
	}
	cr_assert_eq(rpio_queue_inflight(q), N);
	cr_assert_eq(rpio_submit(q), N, "one submit starts the whole batch");
	cr_assert_eq(rpio_queue_inflight(q), N);
	reap_all(q, cqe, N);
	for (int i = 0; i < N; i++) {
		uintptr_t tag = (uintptr_t)cqe[i].udata;
		uint64_t page = tag >> 16;

		cr_assert_eq(cqe[i].res, 4096);
		tu_fill(want, 4096, 11, page * 4096);
		cr_assert(memcmp(buf + (tag & 0xffff) * 4096, want, 4096) == 0);
	}
	free(want);
	free(buf);
	teardown(q, d, path);
}
PER_BACKEND(batch_of_300_requests_in_flight, batch_in_flight, 60)

static void queue_full(enum rpio_backend b)
{
	char *path = tu_scratch_file("io-full", 1 * MIB, 3);
	struct rpio_dev *d = dev_open(path, O_RDONLY);
	struct rpio_queue *q = queue_open(b, 4);
	unsigned char *buf = tu_aligned(5 * 4096);
	struct rpio_cqe cqe[4];

	for (int i = 0; i < 4; i++) {
		struct iovec iov = {buf + i * 4096, 4096};
		cr_assert_eq(rpio_read(q, d, (uint64_t)i * 4096, &iov, 1, NULL), 0);
	}
	struct iovec iov = {buf + 4 * 4096, 4096};
	cr_assert_eq(rpio_read(q, d, 0, &iov, 1, NULL), -EBUSY);
	cr_assert(strstr(rpio_queue_error(q), "depth 4"), "message: %s", rpio_queue_error(q));
	reap_all(q, cqe, 4);
	cr_assert_eq(rpio_read(q, d, 0, &iov, 1, NULL), 0, "a reaped slot is free again");
	reap_all(q, cqe, 1);
	free(buf);
	teardown(q, d, path);
}
PER_BACKEND(full_queue_refuses_with_ebusy, queue_full, 60)

/* ---------------------------------------------------------------- argument checks */

static void unaligned(enum rpio_backend b)
{
	char *path = tu_scratch_file("io-unaligned", 1 * MIB, 3);
	struct rpio_dev *d = dev_open(path, O_RDWR);
	struct rpio_queue *q = queue_open(b, 8);
	unsigned char *buf = tu_aligned(3 * 4096);
	struct iovec iov = {buf, 4096};
	char want[64];

	if (d->buffered)
		cr_skip_test("scratch directory %s has no O_DIRECT: no alignment to check",
		             tu_dir());
	/* offset */
	cr_assert_eq(rpio_read(q, d, 4097, &iov, 1, NULL), -EINVAL);
	snprintf(want, sizeof(want), "offset 4097");
	cr_assert(strstr(rpio_queue_error(q), want), "message: %s", rpio_queue_error(q));
	snprintf(want, sizeof(want), "alignment %u", d->off_align);
	cr_assert(strstr(rpio_queue_error(q), want), "message: %s", rpio_queue_error(q));
	cr_assert_eq(rpio_write(q, d, 100, &iov, 1, 0, NULL), -EINVAL);
	/* buffer address */
	iov.iov_base = buf + 1;
	cr_assert_eq(rpio_read(q, d, 0, &iov, 1, NULL), -EINVAL);
	cr_assert(strstr(rpio_queue_error(q), "memory alignment"), "message: %s",
	          rpio_queue_error(q));
	/* length */
	iov.iov_base = buf;
	iov.iov_len = 4096 + 1;
	cr_assert_eq(rpio_read(q, d, 0, &iov, 1, NULL), -EINVAL);
	cr_assert(strstr(rpio_queue_error(q), "length 4097"), "message: %s", rpio_queue_error(q));
	/* empty */
	iov.iov_len = 0;
	cr_assert_eq(rpio_read(q, d, 0, &iov, 1, NULL), -EINVAL);
	cr_assert_eq(rpio_read(q, d, 0, NULL, 0, NULL), -EINVAL);
	cr_assert_eq(rpio_write(q, d, 0, &iov, 1, 0x80, NULL), -EINVAL);
	/* nothing was staged by any of them */
	cr_assert_eq(rpio_queue_inflight(q), 0);
	free(buf);
	teardown(q, d, path);
}
PER_BACKEND(unaligned_offset_buffer_or_length_gets_einval, unaligned, 60)

/* ---------------------------------------------------------------- end of device */

static void past_end(enum rpio_backend b)
{
	const uint64_t size = 10000; /* not a multiple of any block size */
	char *path = tu_scratch_file("io-eof", size, 21);
	struct rpio_dev *d = dev_open(path, O_RDONLY);
	struct rpio_queue *q = queue_open(b, 8);
	unsigned char *buf = tu_aligned(2 * 4096), *want = malloc(4096);
	struct rpio_cqe c;

	cr_assert_eq(d->size, size);
	/* the last page: 1808 bytes of data, then zeros */
	memset(buf, 0xAA, 4096);
	c = one(q, d, IO_OP_READ, 8192, buf, 4096, 0);
	cr_assert_eq(c.res, 4096);
	cr_assert_eq(c.flags, IO_CQE_ZEROFILL);
	tu_fill(want, size - 8192, 21, 8192);
	cr_assert(memcmp(buf, want, size - 8192) == 0);
	for (size_t i = size - 8192; i < 4096; i++)
		cr_assert_eq(buf[i], 0, "byte %zu past the end is %u", i, buf[i]);

	/* two pages in two iovecs straddling the end */
	struct iovec iov[2] = {{buf, 4096}, {buf + 4096, 4096}};
	memset(buf, 0xAA, 8192);
	cr_assert_eq(rpio_read(q, d, 4096, iov, 2, NULL), 0);
	cr_assert_eq(rpio_reap(q, &c, 1, 1), 1);
	cr_assert_eq(c.res, 8192);
	cr_assert_eq(c.flags, IO_CQE_ZEROFILL);
	tu_fill(want, 4096, 21, 4096);
	cr_assert(memcmp(buf, want, 4096) == 0);
	tu_fill(want, size - 8192, 21, 8192);
	cr_assert(memcmp(buf + 4096, want, size - 8192) == 0);
	for (size_t i = 4096 + size - 8192; i < 8192; i++)
		cr_assert_eq(buf[i], 0);

	/* wholly past the end: zeros */
	memset(buf, 0xAA, 4096);
	c = one(q, d, IO_OP_READ, 64 * 4096, buf, 4096, 0);
	cr_assert_eq(c.res, 4096);
	cr_assert_eq(c.flags, IO_CQE_ZEROFILL);
	for (size_t i = 0; i < 4096; i++)
		cr_assert_eq(buf[i], 0);

	/* a page wholly inside: no flag */
	c = one(q, d, IO_OP_READ, 0, buf, 4096, 0);
	cr_assert_eq(c.res, 4096);
	cr_assert_eq(c.flags, 0);
	free(want);
	free(buf);
	teardown(q, d, path);
}
PER_BACKEND(read_past_end_is_zero_filled, past_end, 60)

/* ---------------------------------------------------------------- read-only */

static void readonly(enum rpio_backend b)
{
	char *path = tu_scratch_file("io-ro", 1 * MIB, 4);
	struct rpio_dev *d = dev_open(path, O_RDONLY);
	struct rpio_queue *q = queue_open(b, 8);
	unsigned char *buf = tu_aligned(4096);
	struct iovec iov = {buf, 4096};

	cr_assert(d->rdonly);
	int err = rpio_write(q, d, 0, &iov, 1, 0, NULL);
	cr_assert_lt(err, 0);
	cr_assert_eq(err, -EBADF);
	cr_assert(strstr(rpio_queue_error(q), "read-only"), "message: %s", rpio_queue_error(q));
	cr_assert(strstr(rpio_queue_error(q), path), "message names the path: %s",
	          rpio_queue_error(q));
	cr_assert_eq(rpio_fdatasync(q, d, NULL), -EBADF);
	/* reads still work */
	struct rpio_cqe c = one(q, d, IO_OP_READ, 0, buf, 4096, 0);
	cr_assert_eq(c.res, 4096);
	free(buf);
	teardown(q, d, path);
}
PER_BACKEND(write_to_read_only_device_fails, readonly, 60)

/* ---------------------------------------------------------------- durability */

static void durable(enum rpio_backend b)
{
	char *path = tu_scratch_file("io-dsync", 1 * MIB, 4);
	struct rpio_dev *d = dev_open(path, O_RDWR);
	struct rpio_queue *q = queue_open(b, 8);
	unsigned char *buf = tu_aligned(4096), *back = tu_aligned(4096);
	struct rpio_cqe c;

	tu_fill(buf, 4096, 77, 0);
	c = one(q, d, IO_OP_WRITE, 12288, buf, 4096, IO_DSYNC);
	cr_assert_eq(c.res, 4096, "RWF_DSYNC write: %lld", (long long)c.res);
	c = one(q, d, IO_OP_FDATASYNC, 0, NULL, 0, 0);
	cr_assert_eq(c.res, 0, "fdatasync: %lld", (long long)c.res);
	c = one(q, d, IO_OP_READ, 12288, back, 4096, 0);
	cr_assert(memcmp(buf, back, 4096) == 0);
	free(buf);
	free(back);
	teardown(q, d, path);
}
PER_BACKEND(dsync_write_and_fdatasync_complete, durable, 60)

/* ---------------------------------------------------------------- failure injection */

static void injected(enum rpio_backend b)
{
	enum { N = 8 };
	char *path = tu_scratch_file("io-inject", 1 * MIB, 31);
	struct rpio_dev *d = dev_open(path, O_RDWR);
	struct rpio_queue *q = queue_open(b, 16);
	unsigned char *buf = tu_aligned(N * 4096), *want = malloc(4096);
	struct rpio_cqe cqe[N];

	/* the 3rd read fails */
	rpio_dev_inject(d,
	                &(struct rpio_fault){
	                    .ops = 1u << IO_OP_READ, .off_hi = UINT64_MAX, .nth = 3, .err = EIO});
	for (uintptr_t i = 0; i < N; i++) {
		struct iovec iov = {buf + i * 4096, 4096};
		cr_assert_eq(rpio_read(q, d, i * 4096, &iov, 1, (void *)i), 0);
	}
	reap_all(q, cqe, N);
	int failed = 0;
	for (int i = 0; i < N; i++) {
		uintptr_t k = (uintptr_t)cqe[i].udata;

		if (k == 2) {
			cr_assert_eq(cqe[i].res, -EIO);
			failed++;
			continue;
		}
		cr_assert_eq(cqe[i].res, 4096, "request %zu: %lld", (size_t)k,
		             (long long)cqe[i].res);
		tu_fill(want, 4096, 31, k * 4096);
		cr_assert(memcmp(buf + k * 4096, want, 4096) == 0);
	}
	cr_assert_eq(failed, 1);
	cr_assert_eq(rpio_dev_injected(d), 1);

	/* the backend goes on serving: the same requests now all succeed */
	for (uintptr_t i = 0; i < N; i++) {
		struct iovec iov = {buf + i * 4096, 4096};
		cr_assert_eq(rpio_read(q, d, i * 4096, &iov, 1, (void *)i), 0);
	}
	reap_all(q, cqe, N);
	for (int i = 0; i < N; i++)
		cr_assert_eq(cqe[i].res, 4096);

	/* writes in an offset range fail with a chosen errno; others land */
	rpio_dev_inject(d, &(struct rpio_fault){.ops = 1u << IO_OP_WRITE,
	                                        .off_lo = 4 * 4096,
	                                        .off_hi = 6 * 4096,
	                                        .err = ENOSPC});
	tu_fill(buf, N * 4096, 99, 0);
	for (uintptr_t i = 0; i < N; i++) {
		struct iovec iov = {buf + i * 4096, 4096};
		cr_assert_eq(rpio_write(q, d, i * 4096, &iov, 1, 0, (void *)i), 0);
	}
	reap_all(q, cqe, N);
	for (int i = 0; i < N; i++) {
		uintptr_t k = (uintptr_t)cqe[i].udata;
		cr_assert_eq(cqe[i].res, k == 4 || k == 5 ? -ENOSPC : 4096);
	}
	rpio_dev_inject(d, NULL);
	/* the failed writes never reached the file */
	unsigned char *back = tu_aligned(4096);
	struct rpio_cqe c = one(q, d, IO_OP_READ, 4 * 4096, back, 4096, 0);
	cr_assert_eq(c.res, 4096);
	tu_fill(want, 4096, 31, 4 * 4096);
	cr_assert(memcmp(back, want, 4096) == 0);
	c = one(q, d, IO_OP_READ, 3 * 4096, back, 4096, 0);
	cr_assert(memcmp(back, buf + 3 * 4096, 4096) == 0);

	/* fdatasync can fail too */
	rpio_dev_inject(
	    d, &(struct rpio_fault){
	           .ops = 1u << IO_OP_FDATASYNC, .off_hi = UINT64_MAX, .count = 1, .err = EIO});
	cr_assert_eq(one(q, d, IO_OP_FDATASYNC, 0, NULL, 0, 0).res, -EIO);
	cr_assert_eq(one(q, d, IO_OP_FDATASYNC, 0, NULL, 0, 0).res, 0, "count=1: once only");
	free(back);
	free(want);
	free(buf);
	teardown(q, d, path);
}
PER_BACKEND(injected_error_reaches_caller_and_queue_keeps_serving, injected, 60)

/* ---------------------------------------------------------------- close with work */

static void close_in_flight(enum rpio_backend b)
{
	char *path = tu_scratch_file("io-close", 1 * MIB, 3);
	struct rpio_dev *d = dev_open(path, O_RDONLY);
	struct rpio_queue *q = queue_open(b, 32);
	unsigned char *buf = tu_aligned(32 * 4096);

	for (int i = 0; i < 32; i++) {
		struct iovec iov = {buf + i * 4096, 4096};
		cr_assert_eq(rpio_read(q, d, (uint64_t)i * 4096, &iov, 1, NULL), 0);
	}
	rpio_submit(q);
	rpio_queue_close(q); /* waits for the 32 reads before freeing anything */
	free(buf);
	rpio_dev_close(d);
	tu_unlink(path);
}
PER_BACKEND(close_waits_for_requests_in_flight, close_in_flight, 60)

/* ---------------------------------------------------------------- submit_batch */

/* A queue of depth 16 that starts requests `batch` at a time. */
static struct rpio_queue *batch_queue(enum rpio_backend b, unsigned batch)
{
	struct rpio_queue_params p = {.backend = b, .depth = 16, .submit_batch = batch};
	struct rpio_queue *q;
	char msg[IO_MSG_LEN];

	cr_assert_eq(rpio_queue_open(&p, &q, msg, sizeof(msg)), 0, "%s", msg);
	return q;
}

/* The n reads reaped into cqe[] each brought 4 KiB whole: read k, into buf + k * 4096,
 * from offset k * 4096 of a file filled with seed. */
static void expect_reads(const unsigned char *buf, const struct rpio_cqe *cqe, int n,
                         uint64_t seed)
{
	unsigned char *want = malloc(4096);

	for (int i = 0; i < n; i++) {
		uintptr_t k = (uintptr_t)cqe[i].udata;

		cr_assert_eq(cqe[i].res, 4096, "read %zu", (size_t)k);
		tu_fill(want, 4096, seed, k * 4096);
		cr_assert(memcmp(buf + k * 4096, want, 4096) == 0, "read %zu", (size_t)k);
	}
	free(want);
}

static void early_start(enum rpio_backend b)
{
	struct rpio_queue *q = batch_queue(b, 4);
	char *path = tu_scratch_file("io-batchsz", 1 * MIB, 13);
	struct rpio_dev *d = dev_open(path, O_RDONLY);
	unsigned char *buf = tu_aligned(8 * 4096);
	struct rpio_cqe cqe[8];

	for (uintptr_t i = 0; i < 8; i++) {
		struct iovec iov = {buf + i * 4096, 4096};

		cr_assert_eq(rpio_read(q, d, i * 4096, &iov, 1, (void *)i), 0);
		/* the 4th and the 8th staged request start the four staged so far */
		cr_assert_eq(q->staged, (unsigned)(i + 1) % 4, "after request %zu", (size_t)i);
	}
	cr_assert_eq(rpio_submit(q), 0, "nothing left to start");
	reap_all(q, cqe, 8);
	expect_reads(buf, cqe, 8, 13);
	free(buf);
	teardown(q, d, path);
}
PER_BACKEND(submit_batch_starts_requests_as_they_are_staged, early_start, 60)

/* Writes staged with IO_HOLD wait for rpio_submit whatever submit_batch says, and then
 * start together; the bytes land as written. */
static void held_writes(enum rpio_backend b)
{
	struct rpio_queue *q = batch_queue(b, 1);
	char *path = tu_scratch_file("io-hold", 1 * MIB, 17);
	struct rpio_dev *d = dev_open(path, O_RDWR);
	unsigned char *buf = tu_aligned(8 * 4096), *back = tu_aligned(4096);
	struct rpio_cqe cqe[8];

	for (uintptr_t i = 0; i < 8; i++) {
		struct iovec iov = {buf + i * 4096, 4096};

		memset(buf + i * 4096, (int)('a' + i), 4096);
		cr_assert_eq(rpio_write(q, d, i * 8192, &iov, 1, IO_HOLD, (void *)i), 0);
		cr_assert_eq(q->staged, (unsigned)i + 1, "a held write started");
	}
	cr_assert_eq(rpio_submit(q), 8, "the held writes start together");
	reap_all(q, cqe, 8);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(cqe[i].res, 4096);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(rpio_pread(d, (uint64_t)i * 8192, back, 4096, 0), 4096);
		cr_assert_eq(back[0], 'a' + i);
		cr_assert_eq(back[4095], 'a' + i);
	}
	free(back);
	free(buf);
	teardown(q, d, path);
}
PER_BACKEND(held_writes_start_at_submit_together, held_writes, 60)

/* Reads staged on a held queue wait for rpio_submit although submit_batch is 1, and then
 * start together; once the queue is let go, a read starts as it is staged again. */
static void held_queue(enum rpio_backend b)
{
	struct rpio_queue *q = batch_queue(b, 1);
	char *path = tu_scratch_file("io-qhold", 1 * MIB, 19);
	struct rpio_dev *d = dev_open(path, O_RDONLY);
	unsigned char *buf = tu_aligned(9 * 4096);
	struct rpio_cqe cqe[9];

	rpio_queue_hold(q, true);
	for (uintptr_t i = 0; i < 8; i++) {
		struct iovec iov = {buf + i * 4096, 4096};

		cr_assert_eq(rpio_read(q, d, i * 4096, &iov, 1, (void *)i), 0);
		cr_assert_eq(q->staged, (unsigned)i + 1, "a read staged on a held queue started");
	}
	rpio_queue_hold(q, false);
	cr_assert_eq(rpio_submit(q), 8, "the held reads start together");
	struct iovec last = {buf + 8 * 4096, 4096};

	cr_assert_eq(rpio_read(q, d, 8 * 4096, &last, 1, (void *)8), 0);
	cr_assert_eq(q->staged, 0, "a read on a queue let go starts as it is staged");
	reap_all(q, cqe, 9);
	expect_reads(buf, cqe, 9, 19);
	free(buf);
	teardown(q, d, path);
}
PER_BACKEND(held_queue_starts_reads_at_submit_together, held_queue, 60)

/* ---------------------------------------------------------------- EINTR / EAGAIN */

static void retried(enum rpio_backend b)
{
	enum { N = 6 };
	char *path = tu_scratch_file("io-retry", 1 * MIB, 17);
	struct rpio_dev *d = dev_open(path, O_RDWR);
	struct rpio_queue *q = queue_open(b, 16);
	unsigned char *buf = tu_aligned(N * 4096), *want = malloc(4096);
	struct rpio_cqe cqe[N];

	/* three reads are interrupted, then one is told to try again: all complete */
	for (int pass = 0; pass < 2; pass++) {
		int err = pass == 0 ? EINTR : EAGAIN;

		rpio_dev_inject(
		    d, &(struct rpio_fault){
		           .ops = 1u << IO_OP_READ, .off_hi = UINT64_MAX, .count = 3, .err = err});
		memset(buf, 0, N * 4096);
		for (uintptr_t i = 0; i < N; i++) {
			struct iovec iov = {buf + i * 4096, 4096};
			cr_assert_eq(rpio_read(q, d, i * 4096, &iov, 1, (void *)i), 0);
		}
		reap_all(q, cqe, N);
		cr_assert_eq(rpio_dev_injected(d), 3, "the injection fired");
		for (int i = 0; i < N; i++) {
			uintptr_t k = (uintptr_t)cqe[i].udata;

			cr_assert_eq(cqe[i].res, 4096, "%s: request %zu got %lld", strerror(err),
			             (size_t)k, (long long)cqe[i].res);
			tu_fill(want, 4096, 17, k * 4096);
			cr_assert(memcmp(buf + k * 4096, want, 4096) == 0, "retried data");
		}
	}
	rpio_dev_inject(d, NULL);
	free(want);
	free(buf);
	teardown(q, d, path);
}
PER_BACKEND(eintr_and_eagain_are_retried_not_reported, retried, 60)

/* ---------------------------------------------------------------- SQPOLL */

Test(io_uring, sqpoll_queue_reads_and_writes)
{
	struct rpio_queue_params p = {.backend = IO_BACKEND_URING, .depth = 32, .sqpoll = true};
	char *path = tu_scratch_file("io-sqpoll", 1 * MIB, 19);
	struct rpio_dev *d = dev_open(path, O_RDWR);
	unsigned char *buf = tu_aligned(16 * 4096), *back = tu_aligned(16 * 4096);
	struct rpio_cqe cqe[16];
	struct rpio_queue *q;
	char msg[IO_MSG_LEN];
	int err = rpio_queue_open(&p, &q, msg, sizeof(msg));

	if (err == -EPERM)
		cr_skip_test("SQPOLL is not permitted here: %s", msg);
	cr_assert_eq(err, 0, "%s", msg);
	cr_assert(strstr(rpio_queue_describe(q), "SQPOLL"), "describe: %s", rpio_queue_describe(q));
	tu_fill(buf, 16 * 4096, 20, 0);
	for (uintptr_t i = 0; i < 16; i++) {
		struct iovec iov = {buf + i * 4096, 4096};
		cr_assert_eq(rpio_write(q, d, (i * 2) * 4096, &iov, 1, 0, NULL), 0);
	}
	reap_all(q, cqe, 16);
	for (int i = 0; i < 16; i++)
		cr_assert_eq(cqe[i].res, 4096);
	for (uintptr_t i = 0; i < 16; i++) {
		struct iovec iov = {back + i * 4096, 4096};
		cr_assert_eq(rpio_read(q, d, (i * 2) * 4096, &iov, 1, NULL), 0);
	}
	reap_all(q, cqe, 16);
	cr_assert(memcmp(buf, back, 16 * 4096) == 0);
	free(buf);
	free(back);
	teardown(q, d, path);
}

/* ---------------------------------------------------------------- end of a block device */

static void write_past_end(enum rpio_backend b)
{
	char dev[64];
	char *path;
	int lfd;

	lfd = tu_loop_scratch("io-loopend", 1 * MIB, 23, 4096, &path, dev, sizeof(dev));

	struct rpio_dev *d = dev_open(dev, O_RDWR);
	struct rpio_queue *q = queue_open(b, 8);
	unsigned char *buf = tu_aligned(2 * 4096), *back = tu_aligned(4096);
	struct rpio_cqe c;

	/* two pages from the last one: the device holds one, the second has no room */
	tu_fill(buf, 2 * 4096, 24, 0);
	struct iovec iov = {buf, 2 * 4096};
	cr_assert_eq(rpio_write(q, d, d->size - 4096, &iov, 1, 0, NULL), 0);
	cr_assert_eq(rpio_reap(q, &c, 1, 1), 1);
	cr_assert_lt(c.res, 0, "a write past the end is reported, got %lld", (long long)c.res);
	/* the part that fits was stored: the short transfer was continued, not dropped */
	c = one(q, d, IO_OP_READ, d->size - 4096, back, 4096, 0);
	cr_assert_eq(c.res, 4096);
	cr_assert(memcmp(back, buf, 4096) == 0);
	free(buf);
	free(back);
	rpio_queue_close(q);
	rpio_dev_close(d);
	cr_expect(tu_loop_detach(lfd, dev), "%s was not detached", dev);
	tu_unlink(path);
}
PER_BACKEND(write_past_end_of_block_device_is_reported, write_past_end, 60)

/* With `notify`, the backend signals an eventfd when completions arrive, so a thread can
 * wait for them in poll(2) beside other descriptors (vm/'s fault service does). */
static void notify_eventfd(enum rpio_backend b)
{
	struct rpio_queue_params p = {.backend = b, .depth = 8, .single_thread = true,
	                              .notify = true};
	struct rpio_queue *q = NULL;
	char msg[IO_MSG_LEN], *path = tu_scratch_file("io_notify", 1 << 20, 9);
	struct rpio_dev *d = dev_open(path, O_RDONLY);
	void *buf = tu_aligned(4096);
	struct iovec iov = {buf, 4096};
	struct rpio_cqe c;

	p.notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	cr_assert_geq(p.notify_fd, 0);
	cr_assert_eq(rpio_queue_open(&p, &q, msg, sizeof(msg)), 0, "%s", msg);
	for (int round = 0; round < 3; round++) {
		struct pollfd pfd = {.fd = p.notify_fd, .events = POLLIN};
		eventfd_t v;

		cr_assert_eq(poll(&pfd, 1, 0), 0, "not readable before a request");
		cr_assert_eq(rpio_read(q, d, (uint64_t)round * 4096, &iov, 1, buf), 0);
		cr_assert_eq(rpio_submit(q) >= 0, true);
		cr_assert_eq(poll(&pfd, 1, 10000), 1, "readable once the read completes");
		cr_assert_eq(eventfd_read(p.notify_fd, &v), 0);
		cr_assert_eq(rpio_reap(q, &c, 1, 0), 1, "the completion is there to reap");
		cr_assert_eq(c.res, 4096);
	}
	rpio_queue_close(q);
	close(p.notify_fd);
	free(buf);
	teardown(NULL, d, path);
}
PER_BACKEND(completion_signals_the_notify_eventfd, notify_eventfd, 60)
