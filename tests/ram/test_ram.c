/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/ram/test_ram.c - RAM pools and handles with 4 KiB pages (shmem), and the checks
 * shared with the 2 MiB hugetlb tests (tests/ram/test_hugetlb.c): aliasing, release,
 * capacity, re-allocation, sparse handles, the metadata arena.
 */
#include "ram/ram.h"
#include "ram_checks.h"
#include "common/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

static struct ram_pool *shmem_pool(uint64_t ram_size)
{
	struct ram_pool_params p = {.ram_size = ram_size, .hugepages = RAM_HUGEPAGES_OFF};
	struct ram_pool *pool;
	char msg[RAM_MSG_LEN];

	cr_assert_eq(ram_pool_open(&p, &pool, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(pool->page_size, RAM_PAGE_4K);
	return pool;
}

Test(ram_shmem, one_page_at_two_addresses_shows_the_same_bytes)
{
	struct ram_pool *pool = shmem_pool(1 << 20);

	rc_aliasing(pool);
	cr_assert_eq(ram_pool_close(pool), 0);
}

Test(ram_shmem, release_zeroes_the_page_in_every_alias)
{
	struct ram_pool *pool = shmem_pool(1 << 20);

	rc_release(pool);
	cr_assert_eq(ram_pool_close(pool), 0);
}

Test(ram_shmem, allocation_past_capacity_gets_enomem_and_no_sigbus)
{
	struct ram_pool *pool = shmem_pool(64 * RAM_PAGE_4K);

	rc_capacity(pool);
	cr_assert_eq(ram_pool_close(pool), 0);
}

Test(ram_shmem, released_and_reallocated_page_reads_zeros)
{
	struct ram_pool *pool = shmem_pool(1 << 20);

	rc_realloc_zero(pool);
	cr_assert_eq(ram_pool_close(pool), 0);
}

Test(ram_shmem, sparse_64gib_handle_holds_only_what_is_touched)
{
	enum { N = 10000 };
	const uint64_t size = 64ull << 30;
	struct ram_pool *pool = shmem_pool(1ull << 30);
	struct ram_handle *h;
	char msg[RAM_MSG_LEN];
	uint64_t st = 42, *offs = malloc(N * sizeof(*offs));
	uint64_t distinct = 0;

	cr_assert_eq(ram_handle_open(pool, size, &h, msg, sizeof(msg)), 0, "%s", msg);
	for (int i = 0; i < N; i++) {
		uint64_t z = (st += 0x9E3779B97F4A7C15ull);
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
		z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
		offs[i] = ((z ^ (z >> 31)) % (size / RAM_PAGE_4K)) * RAM_PAGE_4K;
		if (!ram_page_allocated(h, offs[i]))
			distinct++;
		cr_assert_eq(ram_alloc(h, offs[i], RAM_PAGE_4K, 0), 0, "page %d", i);
		memcpy(h->alias + offs[i], &offs[i], sizeof(offs[i]));
	}
	cr_assert_eq(ram_handle_pages(h), distinct);
	cr_assert_eq(ram_pool_charged(pool), distinct);
	for (int i = 0; i < N; i++)
		cr_assert_eq(*(uint64_t *)(h->alias + offs[i]), offs[i]);

	/* the kernel agrees: the memfd holds `distinct` pages, the alias maps them */
	struct stat sb;
	cr_assert_eq(fstat(h->fd, &sb), 0);
	cr_assert_eq((uint64_t)sb.st_blocks * 512, distinct * RAM_PAGE_4K,
	             "memfd holds %lld bytes for %llu pages", (long long)sb.st_blocks * 512,
	             (unsigned long long)distinct);
	long rss = tu_smaps_kb(h->alias, "Rss");
	cr_assert_eq(rss, (long)(distinct * 4), "alias Rss %ld kB for %llu pages", rss,
	             (unsigned long long)distinct);
	/* and the bookkeeping is small: the page bitmap is in the metadata arena */
	size_t meta = ram_meta_bytes(pool);
	cr_assert_lt(meta, (size_t)distinct * 1024, "metadata %zu bytes", meta);

	/* releasing everything gives it all back */
	cr_assert_eq(ram_release(h, 0, size), 0);
	cr_assert_eq(ram_handle_pages(h), 0);
	cr_assert_eq(ram_pool_charged(pool), 0);
	cr_assert_eq(fstat(h->fd, &sb), 0);
	cr_assert_eq(sb.st_blocks, 0);
	ram_handle_close(h);
	free(offs);
	cr_assert_eq(ram_pool_close(pool), 0);
}

Test(ram_shmem, memfd_is_close_on_exec_and_nameless)
{
	struct ram_pool *pool = shmem_pool(1 << 20);
	struct ram_handle *h;
	char msg[RAM_MSG_LEN], link[64], target[256];

	cr_assert_eq(ram_handle_open(pool, 1 << 20, &h, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert(fcntl(h->fd, F_GETFD) & FD_CLOEXEC);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", h->fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	cr_assert_gt(n, 0);
	target[n] = 0;
	cr_assert(strncmp(target, "/memfd:", 7) == 0, "fd points at %s", target);
	ram_handle_close(h);
	cr_assert_eq(ram_pool_close(pool), 0);
}

Test(ram_shmem, closing_a_handle_credits_the_pool)
{
	struct ram_pool *pool = shmem_pool(1 << 20);
	struct ram_handle *h;
	char msg[RAM_MSG_LEN];

	cr_assert_eq(ram_handle_open(pool, 1 << 20, &h, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(ram_alloc(h, 0, 16 * RAM_PAGE_4K, 0), 0);
	cr_assert_eq(ram_alloc(h, 8 * RAM_PAGE_4K, 16 * RAM_PAGE_4K, 0), 0, "overlap");
	cr_assert_eq(ram_pool_charged(pool), 24, "a page is charged once");
	cr_assert_eq(ram_pool_close(pool), -EBUSY, "a handle is open");
	ram_handle_close(h);
	cr_assert_eq(ram_pool_charged(pool), 0);
	cr_assert_eq(ram_pool_close(pool), 0);
}

Test(ram_shmem, alloc_by_write_charges_and_leaves_the_write_to_the_caller)
{
	struct ram_pool *pool = shmem_pool(1 << 20);
	struct ram_handle *h;
	char msg[RAM_MSG_LEN], page[RAM_PAGE_4K];
	struct stat st;

	cr_assert_eq(ram_handle_open(pool, 1 << 20, &h, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(ram_alloc(h, 4 * RAM_PAGE_4K, RAM_PAGE_4K, RAM_ALLOC_BY_WRITE), 0);
	cr_assert_eq(ram_pool_charged(pool), 1, "charged at once");
	cr_assert_eq(fstat(h->fd, &st), 0);
	cr_assert_eq(st.st_blocks, 0, "no page allocated by the call");
	memset(page, 0x5a, sizeof(page));
	cr_assert_eq(pwrite(h->fd, page, sizeof(page), 4 * RAM_PAGE_4K), (ssize_t)sizeof(page));
	cr_assert_eq(fstat(h->fd, &st), 0);
	cr_assert_eq(st.st_blocks, RAM_PAGE_4K / 512, "the write allocated it");
	cr_assert_eq(h->alias[4 * RAM_PAGE_4K + 9], 0x5a);
	cr_assert_eq(ram_release(h, 4 * RAM_PAGE_4K, RAM_PAGE_4K), 0);
	cr_assert_eq(ram_pool_charged(pool), 0, "credited like any page");
	cr_assert_eq(fstat(h->fd, &st), 0);
	cr_assert_eq(st.st_blocks, 0);
	ram_handle_close(h);
	cr_assert_eq(ram_pool_close(pool), 0);
}

Test(ram_shmem, bad_ranges_and_parameters_are_refused)
{
	struct ram_pool *pool = shmem_pool(1 << 20);
	struct ram_pool_params p = {.ram_size = 12345, .hugepages = RAM_HUGEPAGES_OFF};
	struct ram_handle *h;
	struct ram_pool *bad;
	char msg[RAM_MSG_LEN];
	void *addr;

	cr_assert_eq(ram_pool_open(&p, &bad, msg, sizeof(msg)), -EINVAL);
	cr_assert(strstr(msg, "ram_size=12345"), "message: %s", msg);
	p.ram_size = 1 << 20;
	p.page_size = 8192;
	cr_assert_eq(ram_pool_open(&p, &bad, msg, sizeof(msg)), -EINVAL);
	cr_assert(strstr(msg, "page_size=8192"), "message: %s", msg);
	p.page_size = RAM_PAGE_2M;
	cr_assert_eq(ram_pool_open(&p, &bad, msg, sizeof(msg)), -EINVAL);
	cr_assert(strstr(msg, "hugepages=off"), "message: %s", msg);
	p.page_size = 0;
	p.hugepages = (enum ram_hugepages)9;
	cr_assert_eq(ram_pool_open(&p, &bad, msg, sizeof(msg)), -EINVAL);
	cr_assert(strstr(msg, "hugepages=9"), "message: %s", msg);

	cr_assert_eq(ram_handle_open(pool, 0, &h, msg, sizeof(msg)), -EINVAL);
	cr_assert_eq(ram_handle_open(pool, 1 << 20, &h, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(ram_alloc(h, 100, RAM_PAGE_4K, 0), -EINVAL);
	cr_assert_eq(ram_alloc(h, 0, 100, 0), -EINVAL);
	cr_assert_eq(ram_alloc(h, 0, 0, 0), -EINVAL);
	cr_assert_eq(ram_alloc(h, 1 << 20, RAM_PAGE_4K, 0), -EINVAL, "past the end");
	cr_assert_eq(ram_release(h, (1 << 20) - RAM_PAGE_4K, 2 * RAM_PAGE_4K), -EINVAL);
	cr_assert_eq(ram_map(h, 0, RAM_PAGE_4K, PROT_READ, (void *)0x1001, &addr), -EINVAL);
	cr_assert_eq(ram_pool_charged(pool), 0);
	ram_handle_close(h);
	cr_assert_eq(ram_pool_close(pool), 0);

	enum ram_hugepages hp;
	cr_assert_eq(ram_hugepages_parse("require", &hp), 0);
	cr_assert_eq(hp, RAM_HUGEPAGES_REQUIRE);
	cr_assert_eq(ram_hugepages_parse("yes", &hp), -EINVAL);
}

Test(ram_shmem, metadata_comes_from_the_pool_arena)
{
	struct ram_pool *pool = shmem_pool(1 << 20);
	size_t before = ram_meta_bytes(pool);
	void *p[100];

	for (int i = 0; i < 100; i++) {
		p[i] = ram_meta_alloc(pool, 1000);
		cr_assert_not_null(p[i]);
		for (int k = 0; k < 1000; k++)
			cr_assert_eq(((unsigned char *)p[i])[k], 0, "zeroed");
	}
	size_t during = ram_meta_bytes(pool);
	cr_assert_geq(during - before, 100 * 1000, "arena grew by %zu", during - before);
	/* the host program's heap is another arena: its allocations do not count */
	void *host = malloc(1 << 20);
	cr_assert_eq(ram_meta_bytes(pool), during);
	free(host);
	for (int i = 0; i < 100; i++)
		ram_meta_free(pool, p[i]);
	cr_assert_eq(ram_meta_bytes(pool), before);
	cr_assert_eq(ram_pool_close(pool), 0);
}

/* A handle grows (its alias moves, the bytes stay, the new pages read zeros) and shrinks
 * (the pages past the end are credited, a mapping past it is past the memfd's end). */
Test(ram_shmem, resize_grows_and_shrinks)
{
	struct ram_pool *pool = shmem_pool(64 << 20);
	struct ram_handle *h;
	char msg[RAM_MSG_LEN];
	const size_t ps = RAM_PAGE_4K;
	void *map;

	cr_assert_eq(ram_handle_open(pool, 4 * ps, &h, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(ram_map(h, 0, 64 * ps, PROT_READ | PROT_WRITE, NULL, &map), 0,
	             "a mapping past the end");
	cr_assert_eq(ram_alloc(h, 0, 4 * ps, 0), 0);
	memset(h->alias, 7, 4 * ps);
	cr_assert_eq(ram_alloc(h, 4 * ps, ps, 0), -EINVAL, "past the end");
	cr_assert_eq(ram_handle_resize(h, 3 * 4096 * ps + 1), 0); /* past one chunk of bits */
	cr_assert_eq(h->size, (3 * 4096 + 1) * ps);
	cr_assert_geq(h->alias_len, h->size);
	for (size_t i = 0; i < 4 * ps; i++)
		cr_assert_eq(h->alias[i], 7);
	cr_assert_eq(ram_alloc(h, 3 * 4096 * ps, ps, 0), 0);
	cr_assert_eq(h->alias[3 * 4096 * ps + 5], 0, "a new page reads zeros");
	cr_assert_eq(((char *)map)[40 * ps], 0, "the mapping past the old end serves now");
	cr_assert_eq(ram_pool_charged(pool), 5);
	cr_assert_eq(ram_handle_resize(h, 2 * ps), 0);
	cr_assert_eq(ram_pool_charged(pool), 2, "the pages past the end are credited");
	struct stat sb;

	cr_assert_eq(fstat(h->fd, &sb), 0);
	cr_assert_eq(sb.st_size, (off_t)(2 * ps), "the memfd ends there: SIGBUS past it");
	cr_assert_eq(((char *)map)[ps], 7);
	cr_assert_eq(ram_handle_resize(h, 0), -EINVAL);
	munmap(map, 64 * ps);
	ram_handle_close(h);
	cr_assert_eq(ram_pool_close(pool), 0);
}
