/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/ram/ram_checks.h - checks that every RAM backend must pass, written once and run
 * with 4 KiB pages (test_ram.c) and 2 MiB pages (test_hugetlb.c). Each uses the pool's
 * page size and leaves the pool with nothing charged.
 */
#ifndef RINGPAGER_RAM_CHECKS_H
#define RINGPAGER_RAM_CHECKS_H

#include "ram/ram.h"

/* A page written through the alias reads the same through a second mapping at another
 * address, and the other way round. */
void rc_aliasing(struct ram_pool *pool);
/* Releasing a page zeroes it in the alias and in a mapping, and credits the pool. */
void rc_release(struct ram_pool *pool);
/* The pool's capacity is allocated page by page; one more gets -ENOMEM and charges
 * nothing; every allocated page is then written without a SIGBUS. Needs a pool whose
 * capacity is at most 64 pages. */
void rc_capacity(struct ram_pool *pool);
/* A page written, released and allocated again reads as zeros. */
void rc_realloc_zero(struct ram_pool *pool);

#endif
