/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/atomic.c - the redo log of RP_WRITEOUT_ATOMIC: after a crash at any moment, the
 * store holds every page of an atomic writeout and its size, or none of them.
 *
 * As databases do it: the pages are first written to a log beside the store and the log
 * is made durable; only then are they written in place (vm/writeout.c: the cut, the
 * writes, the size, the fdatasync); then the log is emptied. A crash before the log is
 * durable leaves the store untouched (the log is incomplete, and discarded); after, the
 * next rp_store_open of the store finds the complete log and writes it in place again
 * (the same bytes: replaying twice is harmless), then empties it.
 *
 * The log, one per store (FILE-rplog beside it, or DEV-INO.rplog in atomic_log_dir):
 *   head   magic "RPLOG01\0", page size, the store's size after, the cut (the size the
 *          store is first truncated to: what the handle shrank away; UINT64_MAX: none),
 *          the number of pages n, and a checksum of everything that follows the head
 *   index  n page numbers
 *   pages  n pages, in the index's order
 *   tail   the same checksum, and "RPLOGEND"
 * complete when its magic is there, the file is at least that long, and both checksums
 * match what it holds. The head is written last, and emptying the log zeroes it: the file
 * keeps its blocks, so neither write changes its size and each fdatasync flushes data,
 * not metadata. A crash while a log is written leaves a head that is zero (or names
 * bytes that do not match its checksum): no log. The log costs each page written twice
 * and two more fdatasyncs per writeout (the log's, and its emptying's).
 */
#include "vm/atomic.h"
#include "vm/err.h"
#include "io/io.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_MAGIC "RPLOG01"
#define LOG_END   "RPLOGEND"

struct log_head {
	char magic[8];
	uint64_t psz, size, cut, n, sum;
};

struct log_tail {
	uint64_t sum;
	char end[8];
};

/* A checksum of a stream of 8-byte words (lengths here are multiples of 8). */
static uint64_t sum_add(uint64_t h, const void *p, size_t len)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < len / 8; i++) {
		h ^= w[i];
		h *= 0x100000001b3ull;
		h ^= h >> 29;
	}
	return h;
}

#define SUM_SEED 0xcbf29ce484222325ull

int vm_log_path(const char *dir, const char *store_path, int fd, char *out, size_t len)
{
	struct stat sb;
	int n;

	if (dir && *dir) {
		if (fstat(fd, &sb) < 0)
			return -errno;
		n = snprintf(out, len, "%s/%" PRIu64 "-%" PRIu64 ".rplog", dir, (uint64_t)sb.st_dev,
		             (uint64_t)sb.st_ino);
	} else {
		if (fstat(fd, &sb) < 0)
			return -errno;
		if (S_ISBLK(sb.st_mode))
			return -EINVAL; /* no file can be made beside a device */
		n = snprintf(out, len, "%s-rplog", store_path);
	}
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* All of buf written at off, or read into it: 0 or -errno. */
static int put(int fd, const void *buf, size_t len, uint64_t off)
{
	return rpio_fd_rw(fd, (void *)(uintptr_t)buf, len, off, true);
}

static int get(int fd, void *buf, size_t len, uint64_t off)
{
	return rpio_fd_rw(fd, buf, len, off, false);
}

int vm_log_write(int logfd, const struct vm_log_run *runs, size_t nruns, size_t psz,
                 uint64_t size, uint64_t cut, uint64_t max, char *msg, size_t msglen)
{
	uint64_t n = 0, sum = SUM_SEED;

	for (size_t i = 0; i < nruns; i++)
		n += runs[i].n;
	const uint64_t data = sizeof(struct log_head) + n * 8;
	const uint64_t total = data + n * psz + sizeof(struct log_tail);

	if (total > max) {
		snprintf(msg, msglen, "the writeout's redo log would be %" PRIu64 " bytes, more "
		                      "than atomic_log_max (%" PRIu64 ")",
		         total, max);
		return -EFBIG;
	}
	uint64_t *index = malloc(n ? n * 8 : 8);

	if (!index) {
		snprintf(msg, msglen, "out of memory for the redo log's index");
		return -ENOMEM;
	}
	for (size_t i = 0, k = 0; i < nruns; i++)
		for (uint64_t p = 0; p < runs[i].n; p++)
			index[k++] = runs[i].first + p;
	/* The checksum covers the index and then the pages, as they are written. */
	sum = sum_add(sum, index, n * 8);
	int err = 0;
	uint64_t off = data;

	/* The head last: until it is there and durable, whatever the file holds is no log
	 * (the previous one's head was zeroed when it was emptied). */
	for (size_t i = 0; !err && i < nruns; i++) {
		const size_t len = runs[i].n * psz;
		const char *src = runs[i].src;

		sum = sum_add(sum, src, len);
		err = put(logfd, src, len, off);
		off += len;
	}
	struct log_head h = {.psz = psz, .size = size, .cut = cut, .n = n, .sum = sum};
	struct log_tail t = {.sum = sum};

	memcpy(h.magic, LOG_MAGIC, 8);
	memcpy(t.end, LOG_END, 8);
	if (!err)
		err = put(logfd, index, n * 8, sizeof(h));
	if (!err)
		err = put(logfd, &t, sizeof(t), off);
	if (!err)
		err = put(logfd, &h, sizeof(h), 0);
	if (!err && fdatasync(logfd) < 0)
		err = -errno;
	free(index);
	if (err)
		snprintf(msg, msglen, "writing the redo log: %s", strerror(-err));
	return err;
}

int vm_log_clear(int logfd)
{
	const struct log_head zero = {.magic = {0}};
	int err = put(logfd, &zero, sizeof(zero), 0);

	if (!err && fdatasync(logfd) < 0)
		err = -errno;
	return err;
}

/* Whether the log is complete; its head in *h. 0 for none or incomplete, 1 complete, or
 * -errno. *cleared: it holds no head at all (nothing to empty). */
static int log_check(int logfd, struct log_head *h, bool *cleared)
{
	static const char zero[8];
	struct stat sb;
	struct log_tail t;
	uint64_t sum = SUM_SEED;

	if (fstat(logfd, &sb) < 0)
		return -errno;
	*cleared = sb.st_size < (off_t)sizeof(*h) || get(logfd, h, sizeof(*h), 0) ||
	           !memcmp(h->magic, zero, 8);
	if (*cleared || sb.st_size < (off_t)(sizeof(*h) + sizeof(t)) ||
	    memcmp(h->magic, LOG_MAGIC, 8) || h->psz < 4096 || h->psz > (2u << 20) ||
	    (h->psz & (h->psz - 1)) || h->n > (uint64_t)sb.st_size / h->psz)
		return 0;
	const uint64_t psz = h->psz;
	const uint64_t data = sizeof(*h) + h->n * 8, end = data + h->n * psz;

	if ((uint64_t)sb.st_size < end + sizeof(t) || get(logfd, &t, sizeof(t), end) ||
	    memcmp(t.end, LOG_END, 8) || t.sum != h->sum)
		return 0;
	char *buf = malloc(1u << 20);

	if (!buf)
		return -ENOMEM;
	for (uint64_t off = sizeof(*h); off < end;) {
		const size_t len = end - off < (1u << 20) ? (size_t)(end - off) : (1u << 20);

		if (get(logfd, buf, len, off)) {
			free(buf);
			return 0;
		}
		sum = sum_add(sum, buf, len);
		off += len;
	}
	free(buf);
	return sum == h->sum ? 1 : 0;
}

int vm_log_pending(int logfd)
{
	struct log_head h;
	bool cleared;

	return log_check(logfd, &h, &cleared);
}

int vm_log_recover(int logfd, int storefd, char *msg, size_t msglen)
{
	struct log_head h;
	bool cleared;
	int ok = log_check(logfd, &h, &cleared), err = 0;

	if (ok < 0) {
		snprintf(msg, msglen, "reading the redo log: %s", strerror(-ok));
		return ok;
	}
	if (!ok) { /* none, or a crash before it was durable: nothing was written in place */
		if (!cleared && (err = vm_log_clear(logfd)) < 0)
			snprintf(msg, msglen, "emptying an incomplete redo log: %s", strerror(-err));
		return err;
	}
	/* Complete: write it in place again, through an aligned buffer (O_DIRECT), in the
	 * page size it was written in. */
	const size_t psz = h.psz;
	uint64_t *index = malloc(h.n ? h.n * 8 : 8);
	void *page = NULL;

	if (!index || posix_memalign(&page, 4096, psz)) {
		free(index);
		snprintf(msg, msglen, "out of memory to apply the redo log");
		return -ENOMEM;
	}
	if (h.cut != UINT64_MAX && ftruncate(storefd, (off_t)h.cut) < 0)
		err = -errno;
	if (!err)
		err = get(logfd, index, h.n * 8, sizeof(h));
	for (uint64_t i = 0; !err && i < h.n; i++) {
		err = get(logfd, page, psz, sizeof(h) + h.n * 8 + i * psz);
		if (!err)
			err = put(storefd, page, psz, index[i] * psz);
	}
	if (!err && ftruncate(storefd, (off_t)h.size) < 0)
		err = -errno;
	if (!err && fdatasync(storefd) < 0)
		err = -errno;
	if (!err)
		err = vm_log_clear(logfd);
	free(index);
	free(page);
	if (err)
		snprintf(msg, msglen, "applying the redo log: %s", strerror(-err));
	return err ? err : 1;
}
