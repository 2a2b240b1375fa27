/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/ram/test_hugetlb.c - the 2 MiB pool: the checks of ram_checks.c on hugetlbfs
 * pages, hugepages=require and auto with no huge pages, and a system pool that empties
 * after the ringpager pool opened (-ENOMEM, never a SIGBUS).
 *
 * As root, each test reserves huge pages through vm.nr_hugepages and its .fini puts the
 * old value back. The setting is system-wide, so meson runs this program alone and one
 * test at a time.
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
#include <linux/memfd.h>

/* vm.nr_hugepages is set by tu_huge_reserve and put back by tu_huge_restore. */
static void reserve(long free_pages)
{
	tu_huge_reserve(free_pages);
}

static void restore(void)
{
	tu_huge_restore();
}

static struct ram_pool *huge_pool(uint64_t pages)
{
	struct ram_pool_params p = {.ram_size = pages * RAM_PAGE_2M,
	                            .hugepages = RAM_HUGEPAGES_REQUIRE};
	struct ram_pool *pool;
	char msg[RAM_MSG_LEN];

	cr_assert_eq(ram_pool_open(&p, &pool, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(pool->page_size, RAM_PAGE_2M);
	cr_assert(strstr(pool->describe, "2 MiB"), "describe: %s", pool->describe);
	return pool;
}

/* 16 pages for the pool and room for pages that reading released holes creates. */
static void reserve_for_checks(void)
{
	reserve(40);
}

TestSuite(ram_hugetlb, .init = reserve_for_checks, .fini = restore);

Test(ram_hugetlb, one_page_at_two_addresses_shows_the_same_bytes)
{
	struct ram_pool *pool = huge_pool(16);

	rc_aliasing(pool);
	cr_assert_eq(ram_pool_close(pool), 0);
}

Test(ram_hugetlb, release_zeroes_the_page_in_every_alias)
{
	struct ram_pool *pool = huge_pool(16);

	rc_release(pool);
	cr_assert_eq(ram_pool_close(pool), 0);
}

Test(ram_hugetlb, allocation_past_capacity_gets_enomem_and_no_sigbus)
{
	struct ram_pool *pool = huge_pool(16);

	rc_capacity(pool);
	cr_assert_eq(ram_pool_close(pool), 0);
}

Test(ram_hugetlb, released_and_reallocated_page_reads_zeros)
{
	struct ram_pool *pool = huge_pool(16);

	rc_realloc_zero(pool);
	cr_assert_eq(ram_pool_close(pool), 0);
}

static void reserve_none(void)
{
	reserve(0);
}

Test(ram_hugepages, require_with_none_free_fails_and_says_why, .init = reserve_none,
     .fini = restore)
{
	struct ram_pool_params p = {.ram_size = 32ull << 20, .hugepages = RAM_HUGEPAGES_REQUIRE};
	struct ram_pool *pool = NULL;
	char msg[RAM_MSG_LEN];

	cr_assert_eq(ram_pool_open(&p, &pool, msg, sizeof(msg)), -ENOMEM);
	cr_assert_null(pool);
	cr_assert(strstr(msg, "hugepages=require"), "message: %s", msg);
	cr_assert(strstr(msg, "needs 16 huge pages"), "message: %s", msg);
	cr_assert(strstr(msg, "0 are available"), "message: %s", msg);
	cr_assert(strstr(msg, "vm.nr_hugepages"), "message: %s", msg);
}

Test(ram_hugepages, auto_with_none_free_falls_back_to_4k_and_reports_it, .init = reserve_none,
     .fini = restore)
{
	struct ram_pool_params p = {.ram_size = 32ull << 20, .hugepages = RAM_HUGEPAGES_AUTO};
	struct ram_pool *pool;
	char msg[RAM_MSG_LEN];

	cr_assert_eq(ram_pool_open(&p, &pool, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(pool->page_size, RAM_PAGE_4K);
	cr_assert(strstr(pool->warning, "hugepages=auto"), "warning: %s", pool->warning);
	cr_assert(strstr(pool->warning, "using 4 KiB pages"), "warning: %s", pool->warning);
	cr_assert(strstr(pool->describe, "fell back"), "describe: %s", pool->describe);
	rc_realloc_zero(pool); /* and the fallback pool works */
	cr_assert_eq(ram_pool_close(pool), 0);
}

static void reserve_8(void)
{
	reserve(8);
}

Test(ram_hugepages, auto_uses_huge_pages_when_enough_are_free, .init = reserve_8, .fini = restore)
{
	struct ram_pool_params p = {.ram_size = 16ull << 20, .hugepages = RAM_HUGEPAGES_AUTO};
	struct ram_pool *pool;
	char msg[RAM_MSG_LEN];

	cr_assert_eq(ram_pool_open(&p, &pool, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(pool->page_size, RAM_PAGE_2M, "describe: %s", pool->describe);
	cr_assert_eq(pool->warning[0], 0);
	cr_assert_eq(ram_pool_close(pool), 0);
}

Test(ram_hugepages, system_pool_emptied_by_others_gives_enomem_not_sigbus, .init = reserve_8,
     .fini = restore)
{
	struct ram_pool *pool = huge_pool(8);
	struct ram_handle *h;
	char msg[RAM_MSG_LEN];

	cr_assert_eq(ram_handle_open(pool, 8 * RAM_PAGE_2M, &h, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(ram_alloc(h, 0, 2 * RAM_PAGE_2M, 0), 0);
	/* someone else takes the 6 huge pages that are left */
	int other = memfd_create("other", MFD_CLOEXEC | MFD_HUGETLB);
	cr_assert_geq(other, 0);
	cr_assert_eq(ftruncate(other, 6 * RAM_PAGE_2M), 0);
	cr_assert_eq(fallocate(other, 0, 0, 6 * RAM_PAGE_2M), 0);
	/* our pool has room in its budget, the system has none: -ENOMEM, nothing charged */
	cr_assert_eq(ram_alloc(h, 4 * RAM_PAGE_2M, RAM_PAGE_2M, 0), -ENOMEM);
	cr_assert_eq(ram_pool_charged(pool), 2);
	cr_assert_not(ram_page_allocated(h, 4 * RAM_PAGE_2M));
	/* the pages we have are still usable */
	memset(h->alias, 1, 2 * RAM_PAGE_2M);
	close(other);
	cr_assert_eq(ram_alloc(h, 4 * RAM_PAGE_2M, RAM_PAGE_2M, 0), 0, "room again");
	ram_handle_close(h);
	cr_assert_eq(ram_pool_close(pool), 0);
}
