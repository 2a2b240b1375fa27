/* SPDX-License-Identifier: Apache-2.0 */
#include "ram_checks.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

static struct ram_handle *handle(struct ram_pool *pool, uint64_t pages)
{
	struct ram_handle *h;
	char msg[RAM_MSG_LEN];

	cr_assert_eq(ram_handle_open(pool, pages * pool->page_size, &h, msg, sizeof(msg)), 0, "%s",
	             msg);
	return h;
}

static bool all_bytes(const unsigned char *p, size_t n, unsigned char v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

void rc_aliasing(struct ram_pool *pool)
{
	size_t ps = pool->page_size;
	struct ram_handle *h = handle(pool, 8);
	unsigned char *view;

	cr_assert_eq(ram_alloc(h, 3 * ps, ps, 0), 0);
	cr_assert_eq(ram_map(h, 2 * ps, 4 * ps, PROT_READ | PROT_WRITE, NULL, (void **)&view), 0);
	cr_assert_neq((void *)view, (void *)(h->alias + 2 * ps), "two different addresses");
	memset(h->alias + 3 * ps, 0xA5, ps);
	cr_assert(all_bytes(view + ps, ps, 0xA5), "the view sees what the alias wrote");
	memcpy(view + ps + 100, "ringpager", 9);
	cr_assert(memcmp(h->alias + 3 * ps + 100, "ringpager", 9) == 0,
	          "the alias sees what the view wrote");
	/* a third mapping at a chosen address */
	unsigned char *fixed = mmap(NULL, ps * 2, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *at = (unsigned char *)(((uintptr_t)fixed + ps - 1) / ps * ps);
	munmap(fixed, ps * 2);
	void *got;
	cr_assert_eq(ram_map(h, 3 * ps, ps, PROT_READ, at, &got), 0);
	cr_assert_eq(got, (void *)at);
	cr_assert(memcmp(at + 100, "ringpager", 9) == 0);
	munmap(at, ps);
	munmap(view, 4 * ps);
	cr_assert_eq(ram_pool_charged(pool), 1);
	ram_handle_close(h);
	cr_assert_eq(ram_pool_charged(pool), 0);
}

void rc_release(struct ram_pool *pool)
{
	size_t ps = pool->page_size;
	struct ram_handle *h = handle(pool, 4);
	unsigned char *view;

	cr_assert_eq(ram_alloc(h, 0, 4 * ps, 0), 0);
	cr_assert_eq(ram_pool_charged(pool), 4);
	cr_assert_eq(ram_map(h, 0, 4 * ps, PROT_READ, NULL, (void **)&view), 0);
	memset(h->alias, 0x77, 4 * ps);
	cr_assert(all_bytes(view + ps, ps, 0x77));
	cr_assert_eq(ram_release(h, ps, ps), 0);
	cr_assert_eq(ram_pool_charged(pool), 3);
	cr_assert_not(ram_page_allocated(h, ps));
	cr_assert(ram_page_allocated(h, 0) && ram_page_allocated(h, 2 * ps));
	/* the hole shows in every mapping; its neighbours keep their bytes */
	cr_assert(all_bytes(view + ps, ps, 0), "the view reads zeros");
	cr_assert(all_bytes((unsigned char *)h->alias + ps, ps, 0), "the alias reads zeros");
	cr_assert(all_bytes(view, ps, 0x77) && all_bytes(view + 2 * ps, 2 * ps, 0x77));
	/* releasing what is not allocated credits nothing */
	cr_assert_eq(ram_release(h, ps, ps), 0);
	cr_assert_eq(ram_pool_charged(pool), 3);
	munmap(view, 4 * ps);
	ram_handle_close(h);
	cr_assert_eq(ram_pool_charged(pool), 0);
}

void rc_capacity(struct ram_pool *pool)
{
	size_t ps = pool->page_size;
	uint64_t cap = pool->capacity;
	struct ram_handle *a = handle(pool, cap), *b = handle(pool, cap);

	cr_assert_leq(cap, 64);
	/* two handles share the budget */
	for (uint64_t i = 0; i < cap; i++)
		cr_assert_eq(ram_alloc(i % 2 ? b : a, i * ps, ps, 0), 0, "page %llu of %llu",
		             (unsigned long long)i, (unsigned long long)cap);
	cr_assert_eq(ram_pool_charged(pool), cap);
	cr_assert_eq(ram_alloc(a, ps, ps, 0), -ENOMEM, "one page past the capacity");
	cr_assert_eq(ram_alloc(b, 0, 2 * ps, 0), -ENOMEM, "a run that does not fit at all");
	cr_assert_eq(ram_pool_charged(pool), cap, "a refused allocation charges nothing");
	cr_assert_not(ram_page_allocated(a, ps));
	cr_assert_eq(ram_alloc(a, 0, ps, 0), 0, "an allocated page may be allocated again");
	/* every allocated page is really there: writing them all raises no SIGBUS */
	for (uint64_t i = 0; i < cap; i++)
		memset((i % 2 ? b : a)->alias + i * ps, (int)i, ps);
	/* freeing one page makes room for one */
	cr_assert_eq(ram_release(b, ps, ps), 0);
	cr_assert_eq(ram_alloc(a, ps, ps, 0), 0);
	cr_assert_eq(ram_alloc(b, ps, ps, 0), -ENOMEM);
	ram_handle_close(a);
	ram_handle_close(b);
	cr_assert_eq(ram_pool_charged(pool), 0);
}

void rc_realloc_zero(struct ram_pool *pool)
{
	size_t ps = pool->page_size;
	struct ram_handle *h = handle(pool, 2);

	cr_assert_eq(ram_alloc(h, ps, ps, 0), 0);
	memset(h->alias + ps, 0xEE, ps);
	cr_assert_eq(ram_release(h, ps, ps), 0);
	cr_assert_eq(ram_alloc(h, ps, ps, 0), 0);
	cr_assert(all_bytes((unsigned char *)h->alias + ps, ps, 0), "no bytes of the old page");
	cr_assert_eq(ram_pool_charged(pool), 1);
	ram_handle_close(h);
	cr_assert_eq(ram_pool_charged(pool), 0);
}
