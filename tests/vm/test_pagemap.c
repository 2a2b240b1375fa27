/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/vm/test_pagemap.c - the radix table of page slots (vm/pagemap.c) against a plain
 * array: lookups, in-order iteration, leaves that start small and grow into full ones,
 * everything freed when the slots return to 0, and the bytes it keeps per page, dense and
 * scattered.
 */
#include "vm/testing.h"
#include "common/testutil.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static struct ram_pool *meta_pool(void)
{
	struct ram_pool_params p = {.ram_size = 8ull << 20, .hugepages = RAM_HUGEPAGES_OFF};
	struct ram_pool *pool;
	char msg[RAM_MSG_LEN];

	cr_assert_eq(ram_pool_open(&p, &pool, msg, sizeof(msg)), 0, "%s", msg);
	return pool;
}

/* Every slot and the iteration agree with the model. */
static void expect_model(const struct vm_pagemap *pm, const uint64_t *model, uint64_t n)
{
	uint64_t idx = 0, w, from = 0;

	for (uint64_t i = 0; i < n; i++)
		cr_assert_eq(pagemap_get(pm, i), model[i], "slot %llu", (unsigned long long)i);
	for (uint64_t i = 0; i < n; i++) {
		if (!model[i])
			continue;
		cr_assert(pagemap_next(pm, from, &idx, &w), "no slot after %llu, %llu expected",
		          (unsigned long long)from, (unsigned long long)i);
		cr_assert_eq(idx, i);
		cr_assert_eq(w, model[i]);
		from = i + 1;
	}
	cr_assert_not(pagemap_next(pm, from, &idx, &w), "a slot past the last: %llu",
	              (unsigned long long)idx);
}

Test(pagemap, random_sets_and_clears_match_an_array)
{
	const uint64_t n = 64 * 64 * 3 + 17; /* two levels of nodes, a partial last leaf */
	struct ram_pool *pool = meta_pool();
	uint64_t *model = calloc(n, sizeof(*model)), seed = 42;
	struct vm_pagemap pm;

	pagemap_init(&pm, pool, n);
	for (int round = 0; round < 40; round++) {
		/* Bursts in one region at a time, so that leaves pass through every size: a
		 * few slots, many (a full leaf), back to none. */
		uint64_t base = tu_rand(&seed) % n, span = 1 + tu_rand(&seed) % 200;

		for (int k = 0; k < 300; k++) {
			uint64_t i = (base + tu_rand(&seed) % span) % n;
			uint64_t w = tu_rand(&seed) % 3 ? tu_rand(&seed) | 1 : 0;

			cr_assert_eq(pagemap_set(&pm, i, w), 0);
			model[i] = w;
		}
		expect_model(&pm, model, n);
	}
	for (uint64_t i = 0; i < n; i++) {
		cr_assert_eq(pagemap_set(&pm, i, 0), 0);
		model[i] = 0;
	}
	expect_model(&pm, model, n);
	cr_assert_eq(pm.nodes, 0, "every leaf and node freed once all slots are 0");
	cr_assert_null(pm.root);
	pagemap_fini(&pm);
	free(model);
	ram_pool_close(pool);
}

Test(pagemap, a_leaf_grows_from_small_to_full_and_back_to_nothing)
{
	struct ram_pool *pool = meta_pool();
	uint64_t model[64 * 4] = {0};
	struct vm_pagemap pm;

	pagemap_init(&pm, pool, 64 * 4);
	/* Leaf 1 filled in a scattered order, one slot at a time, checked at every size. */
	for (unsigned k = 0; k < 64; k++) {
		unsigned i = 64 + (k * 37) % 64;

		cr_assert_eq(pagemap_set(&pm, i, 1000 + i), 0);
		model[i] = 1000 + i;
		expect_model(&pm, model, 64 * 4);
	}
	cr_assert_eq(pm.nodes, 2, "the root node and one leaf");
	for (unsigned k = 0; k < 64; k++) {
		unsigned i = 64 + (k * 29) % 64;

		cr_assert_eq(pagemap_set(&pm, i, 0), 0);
		model[i] = 0;
		expect_model(&pm, model, 64 * 4);
	}
	cr_assert_eq(pm.nodes, 0);
	/* Height 0: the root is the leaf itself. */
	struct vm_pagemap one;

	pagemap_init(&one, pool, 20);
	cr_assert_eq(one.height, 0);
	cr_assert_eq(pagemap_set(&one, 19, 7), 0);
	cr_assert_eq(pagemap_set(&one, 3, 9), 0);
	cr_assert_eq(pagemap_get(&one, 19), 7);
	cr_assert_eq(pagemap_get(&one, 3), 9);
	cr_assert_eq(pagemap_get(&one, 4), 0);
	cr_assert_eq(pagemap_set(&one, 19, 0), 0);
	cr_assert_eq(pagemap_set(&one, 3, 0), 0);
	cr_assert_null(one.root);
	pagemap_fini(&one);
	pagemap_fini(&pm);
	ram_pool_close(pool);
}

/* Bytes the metadata arena holds per slot set, after setting `count` slots chosen by
 * `pick` among n pages. */
static double bytes_per_slot(uint64_t n, uint64_t count, bool scattered)
{
	struct ram_pool *pool = meta_pool();
	struct vm_pagemap pm;
	uint64_t seed = 7, set = 0;
	const size_t before = ram_meta_bytes(pool);

	pagemap_init(&pm, pool, n);
	for (uint64_t k = 0; k < count; k++) {
		uint64_t i = scattered ? tu_rand(&seed) % n : k;

		set += pagemap_get(&pm, i) == 0;
		cr_assert_eq(pagemap_set(&pm, i, 1), 0);
	}
	const double per = (double)(ram_meta_bytes(pool) - before) / (double)set;

	pagemap_fini(&pm);
	ram_pool_close(pool);
	return per;
}

Test(pagemap, scattered_pages_cost_little_more_than_dense_ones)
{
	/* vmbench's sparse case: 32,768 random pages of a 4 GiB file (2^20 pages). With a
	 * full 512-byte leaf for each, it cost 234 bytes a page. */
	double dense = bytes_per_slot(1u << 20, 1u << 16, false);
	double sparse = bytes_per_slot(1u << 20, 32768, true);

	cr_assert_leq(dense, 9.0, "dense: %.1f bytes a page", dense);
	cr_assert_leq(sparse, 64.0, "scattered: %.1f bytes a page (target 64)", sparse);
	cr_log_info("pagemap bytes per page: dense %.1f, scattered (3%%) %.1f", dense, sparse);
}

/* ---------------------------------------------------------------- page words */

/* The transitions vm_page_set accepts are the state machine of vm/page.h. */
Test(page, transitions_follow_the_state_machine)
{
	const uint64_t E = 0, LI = PG_LOADING | (1ull << PG_AUX_SHIFT), LD = PG_LOADED,
	               D = PG_DIRTY, W = PG_WRITING, P = pg_make_poisoned(-5);

	/* allowed */
	cr_assert(vm_page_transition_ok(E, LI));
	cr_assert(vm_page_transition_ok(LI, LD) && vm_page_transition_ok(LI, D));
	cr_assert(vm_page_transition_ok(LI, P) && vm_page_transition_ok(LI, E));
	cr_assert(vm_page_transition_ok(LD, D) && vm_page_transition_ok(LD, E));
	cr_assert(vm_page_transition_ok(LD, LD | PG_REF));
	cr_assert(vm_page_transition_ok(D, W) && vm_page_transition_ok(D, LD));
	cr_assert(vm_page_transition_ok(W, LD) && vm_page_transition_ok(W, D));
	cr_assert(vm_page_transition_ok(W, W | PG_REDIRTY) && vm_page_transition_ok(P, E));
	/* refused */
	cr_assert(!vm_page_transition_ok(E, LD), "a page is never resident without a load");
	cr_assert(!vm_page_transition_ok(E, D) && !vm_page_transition_ok(E, P));
	cr_assert(!vm_page_transition_ok(LD, W), "only a dirty page is written");
	cr_assert(!vm_page_transition_ok(W, E), "a page being written keeps its RAM");
	cr_assert(!vm_page_transition_ok(P, LD) && !vm_page_transition_ok(P, LI));
	cr_assert(!vm_page_transition_ok(LD, LI) && !vm_page_transition_ok(D, P));
}

#ifndef NDEBUG
/* A page word set without the handle's lock stops a debug build at once. */
Test(page, set_without_the_lock_aborts, .signal = SIGABRT)
{
	rp_config cfg;
	rp_engine *eng;
	struct tu_map f;

	tu_config_init(&cfg);
	cr_assert_eq(rp_engine_open(&cfg, &eng), 0, "%s", rp_errmsg());
	tu_map_open(&f, eng, "page_nolock", 16 * 4096, 3, PROT_READ);
	tu_map_read(&f, 0);
	(void)unlink(f.path); /* the abort leaves no scratch file behind */
	(void)vm_page_set(f.fh, 0, PG_LOADED | PG_REF);
}
#endif

/* The table grows taller as the handle grows: the slots it held keep their indexes. */
Test(pagemap, resize_keeps_the_slots)
{
	struct ram_pool *pool = meta_pool();
	struct vm_pagemap pm;

	pagemap_init(&pm, pool, 10);
	for (uint64_t i = 0; i < 10; i++)
		cr_assert_eq(pagemap_set(&pm, i, i + 1), 0);
	cr_assert_eq(pagemap_resize(&pm, 1ull << 30), 0);
	cr_assert_geq(pm.height, 4);
	for (uint64_t i = 0; i < 10; i++)
		cr_assert_eq(pagemap_get(&pm, i), i + 1);
	cr_assert_eq(pagemap_set(&pm, (1ull << 30) - 1, 99), 0);
	cr_assert_eq(pagemap_get(&pm, (1ull << 30) - 1), 99);
	uint64_t idx, w;

	cr_assert(pagemap_next(&pm, 10, &idx, &w));
	cr_assert_eq(idx, (1ull << 30) - 1);
	cr_assert_eq(pagemap_set(&pm, (1ull << 30) - 1, 0), 0);
	cr_assert_eq(pagemap_resize(&pm, 10), 0, "shrinking keeps the height");
	for (uint64_t i = 0; i < 10; i++)
		cr_assert_eq(pagemap_get(&pm, i), i + 1);
	/* an empty table grows without nodes */
	struct vm_pagemap e;

	pagemap_init(&e, pool, 1);
	cr_assert_eq(pagemap_resize(&e, 1ull << 20), 0);
	cr_assert_eq(e.nodes, 0);
	cr_assert_eq(pagemap_set(&e, 12345, 1), 0);
	cr_assert_eq(pagemap_get(&e, 12345), 1);
	pagemap_fini(&e);
	pagemap_fini(&pm);
	cr_assert_eq(ram_pool_close(pool), 0);
}
