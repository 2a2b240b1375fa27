/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ram/shmem.c - 4 KiB pages: a plain memfd (shmem). Sparse: a page exists once it is
 * allocated or touched, and a hole punch gives it back to the kernel.
 */
#include "ram/ram.h"

#include <sys/mman.h>

const struct ram_ops ram_shmem_ops = {
    .name = "shmem",
    .page_size = RAM_PAGE_4K,
    .memfd_flags = 0,
    .mmap_flags = MAP_NORESERVE,
};
