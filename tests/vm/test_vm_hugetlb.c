/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/vm/test_vm_hugetlb.c - mappings over a pool of 2 MiB pages: faults load whole huge
 * pages, pins and invalidation work in their units, and offsets must be 2 MiB aligned.
 * As root it reserves huge pages (vm.nr_hugepages) and puts the old value back.
 */
#include "ringpager.h"
#include "common/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HP (2ul << 20)

Test(vm_hugetlb, huge_pages_load_map_pin_and_invalidate, .fini = tu_huge_restore,
     .timeout = 120)
{
	rp_config c;
	rp_engine *eng;
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;
	struct rp_stats s;

	tu_huge_reserve(8);
	tu_config_init(&c);
	cr_assert_eq(rp_config_set(&c, "ram_size", "16M"), 0);
	cr_assert_eq(rp_config_set(&c, "hugepages", "require"), 0);
	cr_assert_eq(rp_engine_open(&c, &eng), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_engine_page_size(eng), HP);
	cr_assert(strstr(rp_engine_describe(eng), "2 MiB"), "%s", rp_engine_describe(eng));
	char *path = tu_scratch_file("vm_huge", 6 * HP + 4096, 7);

	cr_assert_eq(rp_store_open(eng, path, O_RDONLY, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_map(fh, 4096, HP, PROT_READ, &m), -EINVAL, "offsets are 2 MiB aligned");
	cr_assert_eq(rp_map(fh, 0, 7 * HP, PROT_READ, &m), 0, "%s", rp_errmsg());
	char *a = rp_mapping_addr(m);

	tu_expect_fill(a + HP + 12345, 100, 7, HP + 12345); /* one fault loads 2 MiB */
	rp_stats(eng, &s);
	cr_assert_eq(s.pages_loaded, 1);
	cr_assert_eq(s.bytes_read, HP);
	tu_expect_fill(a + HP, HP, 7, HP);
	tu_expect_fill(a + 6 * HP, 4096, 7, 6 * HP); /* the last page, mostly past the end */
	cr_assert_eq(a[6 * HP + 8192], 0);
	cr_assert_eq(rp_pin(m, 2 * HP, 2 * HP), 0, "%s", rp_errmsg());
	tu_expect_fill(a + 2 * HP, 2 * HP, 7, 2 * HP);
	cr_assert_eq(rp_unpin(m, 2 * HP, 2 * HP), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_invalidate(fh, 0, 7 * HP), 0, "%s", rp_errmsg());
	rp_stats(eng, &s);
	cr_assert_eq(s.resident_pages, 0);
	tu_expect_fill(a + 3 * HP, HP, 7, 3 * HP);
	rp_engine_close(eng);
	tu_unlink(path);
}

/* Reserves `reserve` huge pages and opens an engine of 2 MiB pages with the mode. */
static rp_engine *huge_engine(long reserve, const char *ram, const char *mode)
{
	rp_config c;
	rp_engine *eng = NULL;

	tu_huge_reserve(reserve);
	tu_config_init(&c);
	cr_assert_eq(rp_config_set(&c, "ram_size", ram), 0);
	cr_assert_eq(rp_config_set(&c, "hugepages", "require"), 0);
	tu_config_dirty(&c, mode);
	cr_assert_eq(rp_engine_open(&c, &eng), 0, "%s", rp_errmsg());
	return eng;
}

/* Writes to 2 MiB pages are tracked and written out, with each mechanism. */
static void huge_dirty(const char *mode)
{
	rp_engine *eng;
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;
	uint64_t n = 0;
	struct stat sb;
	char got[3];

	eng = huge_engine(8, "16M", mode);
	char *path = tu_scratch_file("vm_huge_dirty", 3 * HP + 4096, 8);

	cr_assert_eq(rp_store_open(eng, path, O_RDWR, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_map(fh, 0, 4 * HP, PROT_READ | PROT_WRITE, &m), 0, "%s", rp_errmsg());
	char *a = rp_mapping_addr(m);

	tu_expect_fill(a, HP, 8, 0); /* page 0: read, clean */
	a[HP + 7] = 'h';             /* page 1: dirty */
	a[3 * HP + 100] = 'u';       /* page 3: dirty, the store ends 4 KiB into it */
	cr_assert_eq(rp_fileh_dirty(fh, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(rp_writeout(fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC),
	             0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_dirty(fh, &n), 0);
	cr_assert_eq(n, 0);
	int fd = open(path, O_RDONLY);

	cr_assert_eq(pread(fd, &got[0], 1, HP + 7), 1);
	cr_assert_eq(pread(fd, &got[1], 1, 3 * HP + 100), 1);
	cr_assert_eq(pread(fd, &got[2], 1, 0), 1);
	close(fd);
	cr_assert(got[0] == 'h' && got[1] == 'u', "the file holds %c %c", got[0], got[1]);
	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_eq((uint64_t)sb.st_size, 3 * HP + 4096);
	a[HP + 8] = 'i'; /* clean again, and tracked */
	cr_assert_eq(rp_fileh_dirty(fh, &n), 0);
	cr_assert_eq(n, 1);
	rp_engine_close(eng);
	tu_unlink(path);
}

Test(vm_hugetlb, dirty_huge_pages_are_written_out_wp_async, .fini = tu_huge_restore,
     .timeout = 120)
{
	huge_dirty("wp_async");
}

Test(vm_hugetlb, dirty_huge_pages_are_written_out_wp_sync, .fini = tu_huge_restore,
     .timeout = 120)
{
	huge_dirty("wp_sync");
}

/* Reclaim with 2 MiB pages: a pool of 4 huge pages, a mapping of 16; a dirty page stays
 * with its data while the rest are evicted and reloaded around it. */
static void huge_reclaim(const char *mode)
{
	rp_engine *eng;
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;
	struct rp_stats s;

	eng = huge_engine(6, "8M", mode);
	char *path = tu_scratch_file("vm_huge_rc", 16 * HP, 9);

	cr_assert_eq(rp_store_open(eng, path, O_RDWR, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_map(fh, 0, 16 * HP, PROT_READ | PROT_WRITE, &m), 0, "%s", rp_errmsg());
	char *a = rp_mapping_addr(m);

	tu_expect_fill(a + 2 * HP, 4096, 9, 2 * HP);
	a[2 * HP + 5] = 'z'; /* loaded clean, then written: tracked through write-protection */
	for (int pass = 0; pass < 2; pass++)
		for (uint64_t p = 0; p < 16; p++)
			if (p != 2)
				tu_expect_fill(a + p * HP + 4096, 4096, 9, p * HP + 4096);
	cr_assert_eq(rp_stats(eng, &s), 0);
	cr_assert_leq(s.resident_pages, 4);
	cr_assert_geq(s.pages_evicted, 2 * 15 - 4);
	cr_assert_eq(s.dirty_pages, 1);
	cr_assert_eq(a[2 * HP + 5], 'z');
	rp_engine_close(eng);
	tu_unlink(path);
}

Test(vm_hugetlb, reclaim_keeps_a_dirty_huge_page_wp_async, .fini = tu_huge_restore,
     .timeout = 120)
{
	huge_reclaim("wp_async");
}

Test(vm_hugetlb, reclaim_keeps_a_dirty_huge_page_wp_sync, .fini = tu_huge_restore,
     .timeout = 120)
{
	huge_reclaim("wp_sync");
}
