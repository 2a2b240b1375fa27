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
 *   head   magic "RPLOG02\0", page size, the store's size after, the cut (the size the
 *          store is first truncated to: what the handle shrank away; UINT64_MAX: none),
 *          the number of pages n, and a checksum of the index and the pages
 *   index  n page numbers, right after the head; the two padded to a 4 KiB block
 *   pages  n pages, in the index's order
 *   tail   a 4 KiB block: the same checksum, and "RPLOGEND"
 * complete when its magic is there, the file is at least that long, and both checksums
 * match what it holds. Its blocks are aligned so that the whole log goes to the file in
 * one O_DIRECT write (and one fdatasync), from the writeout's staged copies: a crash in
 * the middle of it leaves bytes that do not match the checksum, so no log. (Where the
 * filesystem refuses O_DIRECT, the same write goes through the page cache.) Emptying the
 * log zeroes its first block. Neither changes the file's size once it has held a log as
 * large, so each fdatasync flushes data, not metadata. A log of the format before,
 * "RPLOG01" (its pages right after the index, its tail not padded), is still applied.
 *
 * Emptying the log after a writeout needs no flush of its own where the log and the store
 * share a filesystem and the log is written O_DIRECT (vm_log_clear's `durable` false):
 * the zero block has reached the device when the call returns, and the device's next
 * flush, whoever asks for it, makes it durable. Until then only a power loss can bring
 * the log back, and applying it then is harmless: it holds the bytes the store already
 * had after that writeout, and any later write to the store that it would overwrite was
 * issued after the zero block completed and not yet flushed (a flush would have made the
 * zero block durable too), so it is one a power loss may lose anyway. A log in another
 * filesystem (atomic_log_dir elsewhere, a block device's) is emptied with an fdatasync,
 * since the store's flushes do not reach it. So the log costs each page written twice
 * and one more fdatasync per writeout (two for a log elsewhere).
 */
#include "vm/atomic.h"
#include "vm/err.h"
#include "io/io.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define LOG_MAGIC  "RPLOG02"
#define LOG_MAGIC1 "RPLOG01" /* the format before: read, never written */
#define LOG_END    "RPLOGEND"
#define LOG_BLOCK  4096u /* the alignment of the log's parts, for O_DIRECT */

struct log_head {
	char magic[8];
	uint64_t psz, size, cut, n, sum;
};

struct log_tail {
	uint64_t sum;
	char end[8];
};

static uint64_t block_up(uint64_t n)
{
	return (n + LOG_BLOCK - 1) & ~(uint64_t)(LOG_BLOCK - 1);
}

/* Where a log's pages start. */
static uint64_t log_data(const struct log_head *h)
{
	const uint64_t d = sizeof(*h) + h->n * 8;

	return memcmp(h->magic, LOG_MAGIC1, 8) ? block_up(d) : d;
}

uint64_t vm_log_sum(uint64_t h, const void *p, size_t len)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < len / 8; i++) {
		h ^= w[i];
		h *= 0x100000001b3ull;
		h ^= h >> 29;
	}
	return h;
}

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

/* Turns O_DIRECT off on fd: true if it was on (and is now off). */
static bool direct_off(int fd)
{
	const int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_DIRECT) && fcntl(fd, F_SETFL, fl & ~O_DIRECT) == 0;
}

static void direct_on(int fd)
{
	const int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl | O_DIRECT);
}

/* The cnt buffers of iov written one after another from off (iov is consumed). A write
 * O_DIRECT refuses (EINVAL: the filesystem, or a block size past LOG_BLOCK) is made again
 * through the page cache, and fd stays so. 0 or -errno. */
static int put_iov(int fd, struct iovec *iov, size_t cnt, uint64_t off)
{
	while (cnt) {
		const int k = cnt < IOV_MAX ? (int)cnt : IOV_MAX;
		ssize_t r = pwritev(fd, iov, k, (off_t)off);

		if (r < 0 && (errno == EINTR || (errno == EINVAL && direct_off(fd))))
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		off += (uint64_t)r;
		for (; cnt && (size_t)r >= iov->iov_len; cnt--, iov++)
			r -= (ssize_t)iov->iov_len;
		if (cnt) {
			iov->iov_base = (char *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

int vm_log_write(int logfd, const struct vm_log_run *runs, size_t nruns, size_t psz,
                 uint64_t size, uint64_t cut, uint64_t max, char *msg, size_t msglen)
{
	uint64_t n = 0, sum = VM_LOG_SUM_SEED;

	for (size_t i = 0; i < nruns; i++)
		n += runs[i].n;
	const uint64_t hlen = block_up(sizeof(struct log_head) + n * 8);
	const uint64_t total = hlen + n * psz + LOG_BLOCK;

	if (total > max) {
		snprintf(msg, msglen, "the writeout's redo log would be %" PRIu64 " bytes, more "
		                      "than atomic_log_max (%" PRIu64 ")",
		         total, max);
		return -EFBIG;
	}
	/* The head and index block(s), then the tail block, in one aligned buffer. */
	char *hb = NULL;
	struct iovec *iov = malloc((nruns + 2) * sizeof(*iov));

	if (!iov || posix_memalign((void **)&hb, LOG_BLOCK, hlen + LOG_BLOCK)) {
		free(iov);
		snprintf(msg, msglen, "out of memory for the redo log's index");
		return -ENOMEM;
	}
	memset(hb, 0, hlen + LOG_BLOCK);
	uint64_t *index = (uint64_t *)(hb + sizeof(struct log_head));

	for (size_t i = 0, k = 0; i < nruns; i++)
		for (uint64_t p = 0; p < runs[i].n; p++)
			index[k++] = runs[i].first + p;
	/* The checksum covers the index and then the pages, as they are written. */
	sum = vm_log_sum(sum, index, n * 8);
	iov[0] = (struct iovec){hb, hlen};
	for (size_t i = 0; i < nruns; i++) {
		const size_t len = runs[i].n * psz;

		sum = vm_log_sum(sum, runs[i].src, len);
		iov[i + 1] = (struct iovec){(void *)(uintptr_t)runs[i].src, len};
	}
	iov[nruns + 1] = (struct iovec){hb + hlen, LOG_BLOCK};
	struct log_head h = {.psz = psz, .size = size, .cut = cut, .n = n, .sum = sum};
	struct log_tail t = {.sum = sum};

	memcpy(h.magic, LOG_MAGIC, 8);
	memcpy(t.end, LOG_END, 8);
	memcpy(hb, &h, sizeof(h));
	memcpy(hb + hlen, &t, sizeof(t));
	int err = put_iov(logfd, iov, nruns + 2, 0);

	if (!err && fdatasync(logfd) < 0)
		err = -errno;
	free(iov);
	free(hb);
	if (err)
		snprintf(msg, msglen, "writing the redo log: %s", strerror(-err));
	return err;
}

int vm_log_clear(int logfd, bool durable)
{
	static char zero[LOG_BLOCK] __attribute__((aligned(LOG_BLOCK)));
	struct iovec iov = {zero, sizeof(zero)};
	int err = put_iov(logfd, &iov, 1, 0);
	const int fl = fcntl(logfd, F_GETFL);

	/* written through the page cache, the zero block is not on the device yet */
	if (!err && (durable || fl < 0 || !(fl & O_DIRECT)) && fdatasync(logfd) < 0)
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
	uint64_t sum = VM_LOG_SUM_SEED;

	if (fstat(logfd, &sb) < 0)
		return -errno;
	*cleared = sb.st_size < (off_t)sizeof(*h) || get(logfd, h, sizeof(*h), 0) ||
	           !memcmp(h->magic, zero, 8);
	if (*cleared || sb.st_size < (off_t)(sizeof(*h) + sizeof(t)) ||
	    (memcmp(h->magic, LOG_MAGIC, 8) && memcmp(h->magic, LOG_MAGIC1, 8)) ||
	    h->psz < 4096 || h->psz > (2u << 20) || (h->psz & (h->psz - 1)) ||
	    h->n > (uint64_t)sb.st_size / h->psz)
		return 0;
	const uint64_t data = log_data(h), end = data + h->n * h->psz;

	if ((uint64_t)sb.st_size < end + sizeof(t) || get(logfd, &t, sizeof(t), end) ||
	    memcmp(t.end, LOG_END, 8) || t.sum != h->sum)
		return 0;
	char *buf = malloc(1u << 20);

	if (!buf)
		return -ENOMEM;
	/* the index, then the pages */
	const uint64_t from[2] = {sizeof(*h), data}, to[2] = {sizeof(*h) + h->n * 8, end};

	for (int part = 0; part < 2; part++)
		for (uint64_t off = from[part]; off < to[part];) {
			const uint64_t left = to[part] - off;
			const size_t len = left < (1u << 20) ? (size_t)left : (1u << 20);

			if (get(logfd, buf, len, off)) {
				free(buf);
				return 0;
			}
			sum = vm_log_sum(sum, buf, len);
			off += len;
		}
	free(buf);
	return sum == h->sum ? 1 : 0;
}

int vm_log_pending(int logfd)
{
	struct log_head h;
	bool cleared;
	const bool direct = direct_off(logfd); /* its reads are not block-aligned */
	const int r = log_check(logfd, &h, &cleared);

	if (direct)
		direct_on(logfd);
	return r;
}

static int log_recover(int logfd, int storefd, char *msg, size_t msglen)
{
	struct log_head h;
	bool cleared;
	int ok = log_check(logfd, &h, &cleared), err = 0;

	if (ok < 0) {
		snprintf(msg, msglen, "reading the redo log: %s", strerror(-ok));
		return ok;
	}
	if (!ok) { /* none, or a crash before it was durable: nothing was written in place */
		if (!cleared && (err = vm_log_clear(logfd, true)) < 0)
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
		err = get(logfd, page, psz, log_data(&h) + i * psz);
		if (!err)
			err = put(storefd, page, psz, index[i] * psz);
	}
	if (!err && ftruncate(storefd, (off_t)h.size) < 0)
		err = -errno;
	if (!err && fdatasync(storefd) < 0)
		err = -errno;
	if (!err)
		err = vm_log_clear(logfd, true);
	free(index);
	free(page);
	if (err)
		snprintf(msg, msglen, "applying the redo log: %s", strerror(-err));
	return err ? err : 1;
}

int vm_log_recover(int logfd, int storefd, char *msg, size_t msglen)
{
	const bool direct = direct_off(logfd); /* its reads are not block-aligned */
	const int r = log_recover(logfd, storefd, msg, msglen);

	if (direct)
		direct_on(logfd);
	return r;
}
