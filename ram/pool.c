/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ram/pool.c - the pool: page size choice (hugepages=auto|require|off), capacity, and the
 * jemalloc arena that holds the engine's metadata.
 *
 * Built with RP_NO_JEMALLOC (the SQLite extension, which a program loads with dlopen:
 * jemalloc's initial-exec thread-local storage cannot be placed there), the metadata
 * comes from malloc, each block headed by its size, counted for ram_meta_bytes.
 */
#include "ram/ram.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef RP_NO_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#define HUGEPAGES_SYSFS "/sys/kernel/mm/hugepages/hugepages-2048kB/"

static const char *const ram_hugepages_names[] = {
    [RAM_HUGEPAGES_AUTO] = "auto",
    [RAM_HUGEPAGES_REQUIRE] = "require",
    [RAM_HUGEPAGES_OFF] = "off",
};

const char *ram_hugepages_name(enum ram_hugepages h)
{
	return (unsigned)h <= RAM_HUGEPAGES_OFF ? ram_hugepages_names[h] : "unknown";
}

int ram_hugepages_parse(const char *s, enum ram_hugepages *out)
{
	for (unsigned i = 0; i <= RAM_HUGEPAGES_OFF; i++) {
		if (s && strcmp(s, ram_hugepages_names[i]) == 0) {
			*out = (enum ram_hugepages)i;
			return 0;
		}
	}
	return -EINVAL;
}

static long read_sysfs_long(const char *name)
{
	char path[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), HUGEPAGES_SYSFS "%s", name);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* 2 MiB pages that a new pool could take now: free and not reserved by someone else. */
static long hugepages_available(long *total)
{
	long free_p = read_sysfs_long("free_hugepages");
	long resv = read_sysfs_long("resv_hugepages");

	*total = read_sysfs_long("nr_hugepages");
	if (free_p < 0)
		return 0; /* no 2 MiB huge pages in this kernel */
	return free_p - (resv > 0 ? resv : 0);
}

/* Chooses the backend; fills describe/warning; returns 0 or -errno with msg. */
static int ram_choose(struct ram_pool *pool, const struct ram_pool_params *p, char *msg,
                      size_t msglen)
{
	bool want_huge =
	    p->page_size == RAM_PAGE_2M || (p->page_size == 0 && p->hugepages != RAM_HUGEPAGES_OFF);
	uint64_t need = (p->ram_size + RAM_PAGE_2M - 1) / RAM_PAGE_2M;
	long total, avail;

	if (p->page_size != 0 && p->page_size != RAM_PAGE_4K && p->page_size != RAM_PAGE_2M) {
		snprintf(msg, msglen, "page_size=%zu: must be 4k or 2m", p->page_size);
		return -EINVAL;
	}
	if ((unsigned)p->hugepages > RAM_HUGEPAGES_OFF) {
		snprintf(msg, msglen, "hugepages=%d: must be auto, require or off",
		         (int)p->hugepages);
		return -EINVAL;
	}
	if (p->page_size == RAM_PAGE_2M && p->hugepages == RAM_HUGEPAGES_OFF) {
		snprintf(msg, msglen, "page_size=2m contradicts hugepages=off");
		return -EINVAL;
	}
	if (p->page_size == RAM_PAGE_4K && p->hugepages == RAM_HUGEPAGES_REQUIRE) {
		snprintf(msg, msglen, "page_size=4k contradicts hugepages=require");
		return -EINVAL;
	}
	if (!want_huge) {
		pool->ops = &ram_shmem_ops;
		snprintf(pool->describe, sizeof(pool->describe), "4 KiB pages (shmem memfd)%s",
		         p->hugepages == RAM_HUGEPAGES_OFF ? ", hugepages=off" : "");
		return 0;
	}
	avail = hugepages_available(&total);
	if ((uint64_t)(avail > 0 ? avail : 0) >= need) {
		pool->ops = &ram_hugetlb_ops;
		snprintf(pool->describe, sizeof(pool->describe),
		         "2 MiB pages (hugetlbfs memfd): %" PRIu64 " needed, %ld available", need,
		         avail);
		return 0;
	}
	if (p->hugepages == RAM_HUGEPAGES_REQUIRE || p->page_size == RAM_PAGE_2M) {
		snprintf(msg, msglen,
		         "hugepages=%s: ram_size=%" PRIu64 " MiB needs %" PRIu64
		         " huge pages of 2 MiB, but %ld are available (vm.nr_hugepages=%ld); "
		         "reserve more with sysctl vm.nr_hugepages, or set hugepages=auto",
		         p->page_size == RAM_PAGE_2M && p->hugepages != RAM_HUGEPAGES_REQUIRE
		             ? "auto with page_size=2m"
		             : "require",
		         p->ram_size >> 20, need, avail > 0 ? avail : 0, total > 0 ? total : 0);
		return -ENOMEM;
	}
	pool->ops = &ram_shmem_ops;
	snprintf(pool->warning, sizeof(pool->warning),
	         "hugepages=auto: ram_size=%" PRIu64 " MiB needs %" PRIu64
	         " huge pages of 2 MiB, %ld are available (vm.nr_hugepages=%ld); using 4 KiB pages",
	         p->ram_size >> 20, need, avail > 0 ? avail : 0, total > 0 ? total : 0);
	snprintf(pool->describe, sizeof(pool->describe),
	         "4 KiB pages (shmem memfd): hugepages=auto fell back");
	return 0;
}

int ram_pool_open(const struct ram_pool_params *p, struct ram_pool **out, char *msg, size_t msglen)
{
	struct ram_pool *pool;
	size_t sz = sizeof(unsigned);
	int err;

	*out = NULL;
	pool = calloc(1, sizeof(*pool));
	if (!pool) {
		snprintf(msg, msglen, "out of memory");
		return -ENOMEM;
	}
	err = ram_choose(pool, p, msg, msglen);
	if (err)
		goto fail;
	pool->page_size = pool->ops->page_size;
	if (p->ram_size < pool->page_size || p->ram_size % pool->page_size) {
		snprintf(msg, msglen,
		         "ram_size=%" PRIu64 ": must be a non-zero multiple of the %s page size",
		         p->ram_size, pool->page_size == RAM_PAGE_2M ? "2 MiB" : "4 KiB");
		err = -EINVAL;
		goto fail;
	}
	pool->capacity = p->ram_size / pool->page_size;
	/* A dedicated arena: the engine's metadata does not share pages with the host
	 * program's heap, and its size can be read on its own. */
#ifdef RP_NO_JEMALLOC
	(void)sz;
	pool->arena_ok = true;
#else
	pool->arena_ok = mallctl("arenas.create", &pool->arena, &sz, NULL, 0) == 0;
#endif
	if (!pool->arena_ok) {
		snprintf(msg, msglen, "jemalloc: cannot create the metadata arena");
		err = -ENOMEM;
		goto fail;
	}
	*out = pool;
	return 0;
fail:
	free(pool);
	return err;
}

int ram_pool_close(struct ram_pool *pool)
{
	char name[64];

	if (!pool)
		return 0;
	if (atomic_load(&pool->handles))
		return -EBUSY;
#ifndef RP_NO_JEMALLOC
	snprintf(name, sizeof(name), "arena.%u.destroy", pool->arena);
	mallctl(name, NULL, NULL, NULL, 0);
#else
	(void)name;
#endif
	free(pool);
	return 0;
}

uint64_t ram_pool_charged(const struct ram_pool *pool)
{
	return atomic_load(&pool->charged);
}

#ifdef RP_NO_JEMALLOC
/* The block's size before it, in a 16-byte header (malloc's alignment). */
#define META_HDR 16

void *ram_meta_alloc(struct ram_pool *pool, size_t size)
{
	char *p = calloc(1, META_HDR + size);

	if (!p)
		return NULL;
	memcpy(p, &size, sizeof(size));
	atomic_fetch_add(&pool->meta_bytes, size);
	return p + META_HDR;
}

void ram_meta_free(struct ram_pool *pool, void *p)
{
	size_t size;

	if (!p)
		return;
	memcpy(&size, (char *)p - META_HDR, sizeof(size));
	atomic_fetch_sub(&pool->meta_bytes, size);
	free((char *)p - META_HDR);
}

size_t ram_meta_bytes(struct ram_pool *pool)
{
	return atomic_load(&pool->meta_bytes);
}
#else
void *ram_meta_alloc(struct ram_pool *pool, size_t size)
{
	return mallocx(size ? size : 1,
	               MALLOCX_ARENA(pool->arena) | MALLOCX_TCACHE_NONE | MALLOCX_ZERO);
}

void ram_meta_free(struct ram_pool *pool, void *p)
{
	if (p)
		dallocx(p, MALLOCX_TCACHE_NONE);
}

size_t ram_meta_bytes(struct ram_pool *pool)
{
	static const char *const kinds[] = {"small", "large"};
	uint64_t epoch = 1;
	size_t total = 0, sz = sizeof(epoch);

	/* jemalloc's statistics are a snapshot refreshed by writing the epoch. */
	mallctl("epoch", &epoch, &sz, &epoch, sz);
	for (unsigned i = 0; i < 2; i++) {
		char name[96];
		size_t v = 0, vsz = sizeof(v);

		snprintf(name, sizeof(name), "stats.arenas.%u.%s.allocated", pool->arena, kinds[i]);
		if (mallctl(name, &v, &vsz, NULL, 0) == 0)
			total += v;
	}
	return total;
}
#endif
