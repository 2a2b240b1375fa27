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
	rp_config_init(&c);
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

/* Writes to 2 MiB pages are tracked and written out, with each mechanism. */
static void huge_dirty(const char *mode)
{
	rp_config c;
	rp_engine *eng;
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;
	uint64_t n = 0;
	struct stat sb;
	char got[3];

	tu_huge_reserve(8);
	rp_config_init(&c);
	cr_assert_eq(rp_config_set(&c, "ram_size", "16M"), 0);
	cr_assert_eq(rp_config_set(&c, "hugepages", "require"), 0);
	cr_assert_eq(rp_config_set(&c, "dirty_tracking", mode), 0);
	cr_assert_eq(rp_engine_open(&c, &eng), 0, "%s", rp_errmsg());
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
