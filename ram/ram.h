/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ram/ram.h - RAM pools and RAM handles: the memory every loaded page lives in. The
 * contract of the layer.
 *
 * A pool is the engine's RAM budget (`ram_size`) in pages of one size: 4 KiB (shmem
 * memfds) or 2 MiB (hugetlbfs memfds). It creates RAM handles and charges them for every
 * page they allocate. A RAM handle is one sparse memfd as large as the store it caches,
 * memfd offset == store offset (the identity layout: docs/design.md). It offers:
 *   - an alias mapping of the whole handle, read-write, for the engine's own I/O;
 *   - mappings of any page-aligned range at a chosen or a free address (user mappings);
 *   - allocation of pages before they are filled, charged to the pool;
 *   - release of a run of pages (FALLOC_FL_PUNCH_HOLE): every mapping of them sees the
 *     hole at once, and the pool is credited;
 *   - the count of pages it holds.
 *
 * Guarantees
 *   - Capacity: ram_alloc charges every page it allocates; past the pool's capacity it
 *     fails with -ENOMEM and allocates nothing (the caller reclaims and retries). An
 *     allocated page is backed for real (fallocate), so touching it never raises SIGBUS,
 *     also after a release and a new allocation of the same offset.
 *   - A page is charged once however often it is allocated, and credited only if it was
 *     allocated: each handle keeps a sparse bitmap of its allocated pages.
 *   - No leaks between users: a newly allocated page reads as zeros (the kernel clears
 *     it); memfds have no name in any filesystem and are close-on-exec.
 *   - Engine metadata (page descriptors of vm/) comes from a jemalloc arena of the pool's
 *     own (ram_meta_alloc), kept apart from the host program's heap; its size is read
 *     from jemalloc's statistics (ram_meta_bytes).
 *
 * What is not charged: a page that the caller touches through a mapping without
 * allocating it first is created by the kernel (shmem) or by the hugetlb pool behind the
 * pool's back. vm/ never does that: user mappings are registered with userfaultfd, so a
 * hole faults to the engine, which allocates before it fills.
 *
 * Threads: every function may be called from any thread. Allocation and release of one
 * handle are serialised by the handle's lock (held across the fallocate: correct and
 * simple; vm/ already serialises loads of one page, so contention is between different
 * pages of one handle).
 */
#ifndef RINGPAGER_RAM_H
#define RINGPAGER_RAM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RAM_MSG_LEN 320
#define RAM_PAGE_4K 4096ul
#define RAM_PAGE_2M (2ul << 20)

enum ram_hugepages {
	RAM_HUGEPAGES_AUTO = 0, /* 2 MiB pages when enough are reserved, else 4 KiB + warning */
	RAM_HUGEPAGES_REQUIRE,  /* 2 MiB pages, or the pool does not open */
	RAM_HUGEPAGES_OFF,      /* 4 KiB pages */
};

/* "auto", "require", "off"; parse returns -EINVAL for anything else. */
const char *ram_hugepages_name(enum ram_hugepages h);
int ram_hugepages_parse(const char *s, enum ram_hugepages *out);

struct ram_pool_params {
	uint64_t ram_size; /* bytes; a multiple of the page size chosen */
	enum ram_hugepages hugepages;
	size_t page_size; /* 0: by `hugepages`; RAM_PAGE_4K or RAM_PAGE_2M */
};

struct ram_handle;
struct ram_chunk;

/* One ops struct per backend, one file each (ram/shmem.c, ram/hugetlb.c). A backend is
 * a kind of memfd: what differs is said here, the code that uses it is shared. */
struct ram_ops {
	const char *name;
	size_t page_size;
	/* memfd_create(2) flags besides MFD_CLOEXEC. */
	unsigned memfd_flags;
	/* mmap(2) flags besides MAP_SHARED for every mapping of such a memfd. */
	int mmap_flags;
};

extern const struct ram_ops ram_shmem_ops;
extern const struct ram_ops ram_hugetlb_ops;

struct ram_pool {
	const struct ram_ops *ops;
	size_t page_size;
	uint64_t capacity;        /* pages */
	_Atomic uint64_t charged; /* pages allocated by all handles */
	_Atomic uint64_t handles; /* open handles */
	unsigned arena;           /* jemalloc arena for engine metadata */
	bool arena_ok;
	_Atomic size_t meta_bytes; /* metadata bytes, built with RP_NO_JEMALLOC */
	char describe[RAM_MSG_LEN]; /* what was chosen: pages, size, why */
	char warning[RAM_MSG_LEN];  /* non-empty when hugepages=auto fell back */
};

/* Opens a pool. hugepages=auto with too few free huge pages falls back to 4 KiB pages
 * and says so in `warning`; require fails (-ENOMEM) with a message that says how many
 * huge pages are free and how many ram_size needs. Bad values get -EINVAL and a message
 * naming the key. */
int ram_pool_open(const struct ram_pool_params *p, struct ram_pool **out, char *msg, size_t msglen);
/* Frees the pool. Every handle must be closed first (-EBUSY otherwise, nothing freed). */
int ram_pool_close(struct ram_pool *pool);
/* Pages charged to the pool right now. */
uint64_t ram_pool_charged(const struct ram_pool *pool);

/* Engine metadata from the pool's arena: allocations of `size` bytes, zeroed. */
void *ram_meta_alloc(struct ram_pool *pool, size_t size);
void ram_meta_free(struct ram_pool *pool, void *p);
/* Bytes currently allocated from the pool's arena (jemalloc statistics). */
size_t ram_meta_bytes(struct ram_pool *pool);

struct ram_handle {
	struct ram_pool *pool;
	int fd;
	uint64_t size; /* bytes */
	uint64_t npages;
	char *alias; /* the whole handle, read-write, shared */
	size_t alias_len; /* bytes mapped at alias: size, or more after growing */
	pthread_mutex_t lock;
	struct ram_chunk **bits; /* allocated-page bitmap, in lazily created chunks */
	uint64_t nchunks;
	uint64_t allocated; /* pages */
};

/* Creates a handle of `size` bytes (rounded up to the page size) and its alias mapping.
 * Nothing is allocated yet. */
int ram_handle_open(struct ram_pool *pool, uint64_t size, struct ram_handle **out, char *msg,
                    size_t msglen);
/* Releases every page, credits the pool, unmaps the alias, closes the memfd. Mappings
 * made with ram_map must be unmapped first (they would keep the pages alive). */
void ram_handle_close(struct ram_handle *h);

/* Maps [off, off+len) of the handle MAP_SHARED with `prot` at `addr` (MAP_FIXED) or, when
 * addr is NULL, where the kernel likes; off, len and addr page-aligned. The range may
 * pass the handle's end (room to grow: SIGBUS there until it has grown). Returns 0 and the
 * address in *out, or -errno. Unmap with munmap. */
int ram_map(struct ram_handle *h, uint64_t off, size_t len, int prot, void *addr, void **out);

/* Allocates the pages of [off, off+len) that are not allocated yet and charges them.
 * -ENOMEM (nothing allocated) if the pool cannot take them all; -EINVAL for a range
 * that is unaligned or outside the handle. With RAM_ALLOC_BY_WRITE the pages are charged
 * and counted allocated but not fallocated: the caller fills them at once with pwrite(2)
 * on the handle's fd, which allocates them (without the fallocate's cost), or releases
 * them if that fails. 4 KiB pools only (hugetlbfs has no write). */
#define RAM_ALLOC_BY_WRITE 1u
int ram_alloc(struct ram_handle *h, uint64_t off, uint64_t len, unsigned flags);
/* Releases [off, off+len): punches the hole (every mapping sees zeros at the next
 * touch) and credits the pool for the pages that were allocated. */
int ram_release(struct ram_handle *h, uint64_t off, uint64_t len);
/* Largest handle (and the end of the largest mapping of one). */
#define RAM_MAX_SIZE (1ull << 50)
/* Makes the handle `size` bytes (rounded up to the page size): growing adds pages that
 * read as zeros; shrinking releases the pages past the new end (credited) and truncates
 * the memfd, so that an access past it through any mapping raises SIGBUS. The alias may
 * move when the handle grows: no request may be using it meanwhile (the caller quiesces
 * the handle). 0, -EINVAL (0 or past RAM_MAX_SIZE), -ENOMEM, or the system call's
 * errno. */
int ram_handle_resize(struct ram_handle *h, uint64_t size);
/* Pages this handle holds. */
uint64_t ram_handle_pages(struct ram_handle *h);
/* Whether the page at off is allocated. */
bool ram_page_allocated(struct ram_handle *h, uint64_t off);

#endif
