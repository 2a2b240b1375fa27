/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ram/handle.c - RAM handles: one sparse memfd per file handle, its alias mapping, page
 * allocation charged to the pool, release by hole punching.
 *
 * Which pages are allocated is kept in a two-level bitmap: a top array with one pointer
 * per RAM_CHUNK_PAGES pages of the handle, and a chunk (a count and the bits) created on
 * the first allocation inside it and freed when its last page is released. Memory is
 * 8 bytes per chunk span of the handle (64 KiB for a 64 GiB handle of 4 KiB pages) plus
 * 520 bytes per chunk that holds pages.
 */
#include "ram/ram.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#define RAM_CHUNK_PAGES 4096u
#define RAM_CHUNK_WORDS (RAM_CHUNK_PAGES / 64)

struct ram_chunk {
	uint64_t count; /* bits set */
	uint64_t words[RAM_CHUNK_WORDS];
};

/* A memfd of `size` bytes of the pool's kind, close-on-exec, with no name in any
 * filesystem. Returns the descriptor or -errno. */
static int ram_memfd_create(const struct ram_ops *ops, uint64_t size)
{
	int fd = memfd_create("ringpager", MFD_CLOEXEC | ops->memfd_flags);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int ram_handle_open(struct ram_pool *pool, uint64_t size, struct ram_handle **out, char *msg,
                    size_t msglen)
{
	struct ram_handle *h;
	int err;

	*out = NULL;
	if (size == 0 || size > RAM_MAX_SIZE) {
		snprintf(msg, msglen,
		         "RAM handle size %" PRIu64 ": must be between 1 and 2^50 bytes", size);
		return -EINVAL;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(msg, msglen, "out of memory");
		return -ENOMEM;
	}
	h->pool = pool;
	h->size = (size + pool->page_size - 1) / pool->page_size * pool->page_size;
	h->npages = h->size / pool->page_size;
	h->nchunks = (h->npages + RAM_CHUNK_PAGES - 1) / RAM_CHUNK_PAGES;
	h->bits = ram_meta_alloc(pool, h->nchunks * sizeof(*h->bits));
	if (!h->bits) {
		snprintf(msg, msglen, "out of memory for the page bitmap of %" PRIu64 " pages",
		         h->npages);
		err = -ENOMEM;
		goto fail;
	}
	h->fd = ram_memfd_create(pool->ops, h->size);
	if (h->fd < 0) {
		err = h->fd;
		snprintf(msg, msglen, "%s memfd of %" PRIu64 " bytes: %s", pool->ops->name, h->size,
		         strerror(-err));
		goto fail;
	}
	h->alias_len = h->size;
	h->alias = mmap(NULL, h->alias_len, PROT_READ | PROT_WRITE,
	                MAP_SHARED | pool->ops->mmap_flags, h->fd, 0);
	if (h->alias == MAP_FAILED) {
		err = -errno;
		snprintf(msg, msglen, "alias mapping of %" PRIu64 " bytes: %s", h->size,
		         strerror(errno));
		close(h->fd);
		goto fail;
	}
	pthread_mutex_init(&h->lock, NULL);
	atomic_fetch_add(&pool->handles, 1);
	*out = h;
	return 0;
fail:
	ram_meta_free(pool, h->bits);
	free(h);
	return err;
}

void ram_handle_close(struct ram_handle *h)
{
	if (!h)
		return;
	/* Give the pages back now rather than when the last mapping goes. */
	fallocate(h->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)h->size);
	atomic_fetch_sub(&h->pool->charged, h->allocated);
	for (uint64_t c = 0; c < h->nchunks; c++)
		ram_meta_free(h->pool, h->bits[c]);
	ram_meta_free(h->pool, h->bits);
	munmap(h->alias, h->alias_len);
	close(h->fd);
	pthread_mutex_destroy(&h->lock);
	atomic_fetch_sub(&h->pool->handles, 1);
	free(h);
}

static int ram_check_range(struct ram_handle *h, uint64_t off, uint64_t len)
{
	size_t ps = h->pool->page_size;

	if (len == 0 || off % ps || len % ps || off > h->size || len > h->size - off)
		return -EINVAL;
	return 0;
}

int ram_map(struct ram_handle *h, uint64_t off, size_t len, int prot, void *addr, void **out)
{
	const size_t ps = h->pool->page_size;
	void *p;

	/* Past the handle's end is allowed: room to grow (an access there is SIGBUS until
	 * the handle is that large). */
	if (len == 0 || off % ps || len % ps || off > RAM_MAX_SIZE || len > RAM_MAX_SIZE - off ||
	    ((uintptr_t)addr % ps))
		return -EINVAL;
	p = mmap(addr, len, prot, MAP_SHARED | h->pool->ops->mmap_flags | (addr ? MAP_FIXED : 0),
	         h->fd, (off_t)off);
	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	return 0;
}

/* Visits the pages [first, first+n): counts those whose bit differs from `want`, and
 * when `apply`, sets them to `want`. Chunks must exist where want is true and apply set. */
static uint64_t ram_bits_walk(struct ram_handle *h, uint64_t first, uint64_t n, bool want,
                              bool apply)
{
	uint64_t changed = 0;

	for (uint64_t pg = first; pg < first + n;) {
		uint64_t c = pg / RAM_CHUNK_PAGES, in = pg % RAM_CHUNK_PAGES;
		uint64_t span = RAM_CHUNK_PAGES - in;
		struct ram_chunk *ch = h->bits[c];

		if (span > first + n - pg)
			span = first + n - pg;
		if (!ch) {
			/* an absent chunk is all clear */
			changed += want ? span : 0;
			pg += span;
			continue;
		}
		uint64_t chunk_changed = 0;
		for (uint64_t i = in; i < in + span; i++) {
			uint64_t bit = 1ull << (i % 64), *w = &ch->words[i / 64];

			if (((*w & bit) != 0) == want)
				continue;
			chunk_changed++;
			if (apply)
				*w ^= bit;
		}
		changed += chunk_changed;
		if (apply) {
			ch->count = want ? ch->count + chunk_changed : ch->count - chunk_changed;
			if (ch->count == 0) {
				ram_meta_free(h->pool, ch);
				h->bits[c] = NULL;
			}
		}
		pg += span;
	}
	return changed;
}

/* Creates the chunks covering [first, first+n). */
static int ram_bits_prepare(struct ram_handle *h, uint64_t first, uint64_t n)
{
	for (uint64_t c = first / RAM_CHUNK_PAGES; c <= (first + n - 1) / RAM_CHUNK_PAGES; c++) {
		if (h->bits[c])
			continue;
		h->bits[c] = ram_meta_alloc(h->pool, sizeof(struct ram_chunk));
		if (!h->bits[c])
			return -ENOMEM;
	}
	return 0;
}

/* Frees chunks in [first, first+n) that ram_bits_prepare made but nothing filled. */
static void ram_bits_trim(struct ram_handle *h, uint64_t first, uint64_t n)
{
	for (uint64_t c = first / RAM_CHUNK_PAGES; c <= (first + n - 1) / RAM_CHUNK_PAGES; c++) {
		struct ram_chunk *ch = h->bits[c];

		if (ch && ch->count == 0) {
			ram_meta_free(h->pool, ch);
			h->bits[c] = NULL;
		}
	}
}

/* Charges n pages to the pool unless that would pass its capacity. */
static bool ram_charge(struct ram_pool *pool, uint64_t n)
{
	uint64_t cur = atomic_load(&pool->charged);

	do {
		if (cur + n > pool->capacity)
			return false;
	} while (!atomic_compare_exchange_weak(&pool->charged, &cur, cur + n));
	return true;
}

int ram_alloc(struct ram_handle *h, uint64_t off, uint64_t len, unsigned flags)
{
	size_t ps = h->pool->page_size;
	uint64_t first = off / ps, n = len / ps, missing;
	int err = 0;

	if (ram_check_range(h, off, len))
		return -EINVAL;
	pthread_mutex_lock(&h->lock);
	missing = ram_bits_walk(h, first, n, true, false);
	if (missing == 0)
		goto out;
	if (!ram_charge(h->pool, missing)) {
		err = -ENOMEM;
		goto out;
	}
	err = ram_bits_prepare(h, first, n);
	/* fallocate reserves real pages: a later touch cannot fail. On a hugetlb pool it
	 * fails with ENOSPC when the system's huge pages are gone. */
	if (!err && !(flags & RAM_ALLOC_BY_WRITE) && fallocate(h->fd, 0, (off_t)off, (off_t)len) < 0)
		err = errno == ENOSPC ? -ENOMEM : -errno;
	if (err) {
		atomic_fetch_sub(&h->pool->charged, missing);
		ram_bits_trim(h, first, n);
		goto out;
	}
	ram_bits_walk(h, first, n, true, true);
	h->allocated += missing;
out:
	pthread_mutex_unlock(&h->lock);
	return err;
}

int ram_release(struct ram_handle *h, uint64_t off, uint64_t len)
{
	size_t ps = h->pool->page_size;
	uint64_t first = off / ps, n = len / ps, held;
	int err = 0;

	if (ram_check_range(h, off, len))
		return -EINVAL;
	pthread_mutex_lock(&h->lock);
	if (fallocate(h->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) <
	    0) {
		err = -errno;
		goto out;
	}
	held = ram_bits_walk(h, first, n, false, true);
	h->allocated -= held;
	atomic_fetch_sub(&h->pool->charged, held);
out:
	pthread_mutex_unlock(&h->lock);
	return err;
}

uint64_t ram_handle_pages(struct ram_handle *h)
{
	uint64_t n;

	pthread_mutex_lock(&h->lock);
	n = h->allocated;
	pthread_mutex_unlock(&h->lock);
	return n;
}

bool ram_page_allocated(struct ram_handle *h, uint64_t off)
{
	uint64_t pg = off / h->pool->page_size;
	bool set = false;

	if (off >= h->size)
		return false;
	pthread_mutex_lock(&h->lock);
	struct ram_chunk *ch = h->bits[pg / RAM_CHUNK_PAGES];
	if (ch) {
		uint64_t i = pg % RAM_CHUNK_PAGES;
		set = (ch->words[i / 64] >> (i % 64)) & 1;
	}
	pthread_mutex_unlock(&h->lock);
	return set;
}

int ram_handle_resize(struct ram_handle *h, uint64_t size)
{
	const size_t ps = h->pool->page_size;
	int err = 0;

	if (size == 0 || size > RAM_MAX_SIZE)
		return -EINVAL;
	size = (size + ps - 1) / ps * ps;
	const uint64_t npages = size / ps, nchunks = (npages + RAM_CHUNK_PAGES - 1) / RAM_CHUNK_PAGES;

	if (size == h->size)
		return 0;
	if (size < h->size) {
		/* The pages past the new end go (credited), then the memfd shrinks. */
		if ((err = ram_release(h, size, h->size - size)))
			return err;
		if (ftruncate(h->fd, (off_t)size) < 0)
			return -errno;
		pthread_mutex_lock(&h->lock);
		h->size = size;
		h->npages = npages;
		pthread_mutex_unlock(&h->lock);
		return 0;
	}
	/* Growing: the chunk table first (nothing changes if it cannot), then the alias
	 * (moved where it must be larger: the caller has no request using it), then the
	 * memfd. */
	struct ram_chunk **bits = h->bits;

	if (nchunks > h->nchunks) {
		bits = ram_meta_alloc(h->pool, nchunks * sizeof(*bits));
		if (!bits)
			return -ENOMEM;
		memcpy(bits, h->bits, h->nchunks * sizeof(*bits));
	}
	if (size > h->alias_len) {
		size_t len = h->alias_len * 2 > size ? h->alias_len * 2 : size;
		void *a = mremap(h->alias, h->alias_len, len, MREMAP_MAYMOVE);

		if (a == MAP_FAILED) {
			err = -errno;
			goto fail;
		}
		h->alias = a;
		h->alias_len = len;
	}
	if (ftruncate(h->fd, (off_t)size) < 0) {
		err = -errno;
		goto fail;
	}
	pthread_mutex_lock(&h->lock);
	if (bits != h->bits) {
		ram_meta_free(h->pool, h->bits);
		h->bits = bits;
		h->nchunks = nchunks;
	}
	h->size = size;
	h->npages = npages;
	pthread_mutex_unlock(&h->lock);
	return 0;
fail:
	if (bits != h->bits)
		ram_meta_free(h->pool, bits);
	return err;
}
