/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ram/hugetlb.c - 2 MiB pages: a memfd on the kernel's internal hugetlbfs mount.
 *
 * Huge pages come from the reserved pool (vm.nr_hugepages). Mappings are made with
 * MAP_NORESERVE: otherwise mapping a 64 GiB handle would try to reserve 32768 huge pages
 * at mmap time. Pages are taken from the pool by fallocate when ram_alloc allocates them,
 * which fails cleanly (ENOSPC) when the system's pool is empty, instead of a SIGBUS at
 * the first touch.
 */
#include "ram/ram.h"

#include <sys/mman.h>
#include <linux/memfd.h>

const struct ram_ops ram_hugetlb_ops = {
    .name = "hugetlb",
    .page_size = RAM_PAGE_2M,
    .memfd_flags = MFD_HUGETLB | MFD_HUGE_2MB,
    .mmap_flags = MAP_NORESERVE,
};
