/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/page.h - the state of one page of a file handle, and the word that holds it.
 *
 * Every page of a file handle has one 64-bit slot in the handle's pagemap (vm/pagemap.c).
 * The slot is the page descriptor: the common case needs no other memory (as GNU Hurd
 * libpager's compact pagemap entries). An empty slot is 0, and a pagemap leaf whose
 * slots are all 0 is freed, so metadata follows what is resident.
 *
 *   bits  0..2   state (below)
 *   bit   3      readahead marker: a touch of this page starts the stream's next window
 *                (vm/readahead.c); LOADING or resident pages only
 *   bit   4      referenced: touched since the CLOCK hand last passed (vm/evict.c)
 *   bit   5      redirtied: WRITING, and written again since its writeout took it
 *   bit   6      read ahead and not used yet: loaded by a readahead window and mapped in
 *                no mapping since (the first touch maps it and clears the bit); LOADED only
 *   bit   7      in the alias: a copy (rp_read, rp_write) mapped it in the engine's alias
 *                mapping, where it stays until the page leaves; a hint, never needed for
 *                correctness: writeout copies such a page with memcpy, not pread(2)
 *   bits  8..19  pin count (rp_pin), 0..PG_PIN_MAX
 *   bits 20..63  aux: LOADING -> the struct vm_load in flight, shifted right by 4;
 *                     POISONED -> the positive errno of the failed load
 *
 * States and transitions, all made by vm_page_set with the handle's lock held (it
 * asserts both in debug builds). Loading:
 *
 *                 vm_load_start                     vm_load_finish (ok)
 *      EMPTY -------------------------> LOADING ----------------------------> LOADED
 *        ^ ^                               |  \        (DIRTY at once when the fault
 *        | |    vm_load_finish (error)     |   \         that asked was a write)
 *        | |            v------------------+    \ vm_load_finish (stale:
 *        | |        POISONED                     v  invalidated in flight)
 *        | +----------- | ---------------------- EMPTY
 *        |   vm_invalidate
 *        +------- LOADED or DIRTY: vm_invalidate; DIRTY: vm_discard; all: handle close
 *        +------- LOADED, unpinned, bit 4 clear: evicted by the CLOCK (rc_window)
 *
 * Writing and writeout:
 *
 *                  vm_dirty_mark (a write seen)
 *      LOADED ---------------------------------> DIRTY
 *        ^  ^                                     |  ^
 *        |  +---------------------------------<---+  |  wo_finish: redirtied, the
 *        |       wo_start (MARKSTORED alone)      |  |  write failed, or no MARKSTORED
 *        |                        wo_start (STORE) v  |
 *        +------------------------------------- WRITING
 *            wo_finish (MARKSTORED, stored, not redirtied: write-protected again)
 *
 * Where "a write seen" comes from depends on the tracking mechanism (vm/dirty.c): with
 * wp_async the kernel records writes in the page tables and dirty_collect moves written
 * pages to DIRTY (a WRITING page gets the redirtied bit); with wp_sync the write-protect
 * fault does the same at once. Either way a page is DIRTY or WRITING, or written in a
 * page table since the last collection, whenever its RAM holds bytes the store lacks.
 *
 * Invariants (checked by vm_page_check in debug builds):
 *   EMPTY     the slot is 0 (no pin, no marker): nothing is allocated in the RAM handle
 *             for it, and no user mapping maps it (a poison marker put by a fault that
 *             found the pool full may remain in one mapping; the next load overwrites it).
 *   LOADING   aux points to the load in flight that covers the page; the RAM handle page
 *             is allocated and being filled through the alias (or charged, for a staged
 *             load, and made by its copy); no user mapping maps it: faults on it wait (the
 *             kernel holds the faulting thread) until vm_load_finish maps the load's range
 *             into every mapping of the handle. One exception: a staged load (a fault's or
 *             a pin's lone page, a run of a stream's window) is copied into the mapping
 *             that asked with the handle's lock dropped (the load's `copying`, vm/load.c),
 *             and its pages are mapped there from the copy until vm_load_finish takes the
 *             lock again (a window's marker page apart); a write to one that a collection
 *             sees meanwhile is kept by the load (`written`, vm_dirty_mark_region: the
 *             load's pages are dirty once in), and writeouts, discards and dirty counts
 *             wait for the copies under way when they are called (vm_load_wait_copies).
 *             Pins only on pages that were resident when pinned: 0 here.
 *   LOADED    the RAM page holds the store's bytes; it may be mapped in any mapping.
 *             Referenced bit clear (any resident state): no user mapping maps it; the hand
 *             that cleared the bit unmapped it, and every path that maps a page sets the
 *             bit (vm_load_finish, the minor fault, pins). So a clear bit survives
 *             only while nobody touches the page, and evicting it races with no write.
 *             The converse does not hold: a page read ahead (bit 6) is referenced, as
 *             every new page is for one pass of the hand, yet mapped nowhere. The alias
 *             bit (7) is set on resident pages only.
 *   DIRTY     resident, and modified since it was loaded or last stored: never released
 *             except by invalidate, discard or closing the handle.
 *   WRITING   a writeout is writing it from the alias: its RAM must stay (invalidate and
 *             discard wait for the writeout). Redirtied bit: written again meanwhile.
 *   POISONED  the load failed with errno aux; the RAM page is released; mappings that
 *             touched it hold a poison marker (SIGBUS on access). rp_pin returns -EIO;
 *             vm_invalidate makes it EMPTY again. No pins.
 */
#ifndef RINGPAGER_VM_PAGE_H
#define RINGPAGER_VM_PAGE_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vm_page_state {
	PG_EMPTY = 0,
	PG_LOADING = 1,
	PG_LOADED = 2,
	PG_DIRTY = 3,
	PG_WRITING = 4,
	PG_POISONED = 5,
};

#define PG_STATE_MASK 0x7ull
#define PG_RA_MARK    (1ull << 3)
#define PG_REF        (1ull << 4)
#define PG_REDIRTY    (1ull << 5)
#define PG_RA         (1ull << 6)
#define PG_ALIAS      (1ull << 7)
#define PG_PIN_SHIFT  8
#define PG_PIN_MAX    0xfffull
#define PG_PIN_MASK   (PG_PIN_MAX << PG_PIN_SHIFT)
#define PG_AUX_SHIFT  20

struct vm_load;

static inline unsigned pg_state(uint64_t w)
{
	return (unsigned)(w & PG_STATE_MASK);
}

static inline unsigned pg_pins(uint64_t w)
{
	return (unsigned)((w & PG_PIN_MASK) >> PG_PIN_SHIFT);
}

static inline uint64_t pg_with_pins(uint64_t w, unsigned pins)
{
	return (w & ~PG_PIN_MASK) | ((uint64_t)pins << PG_PIN_SHIFT);
}

/* Resident: the RAM page holds valid data that may be mapped. */
static inline int pg_resident(uint64_t w)
{
	unsigned s = pg_state(w);

	return s == PG_LOADED || s == PG_DIRTY || s == PG_WRITING;
}

/* DIRTY or WRITING: holds bytes the store may lack. */
static inline int pg_dirty(uint64_t w)
{
	unsigned s = pg_state(w);

	return s == PG_DIRTY || s == PG_WRITING;
}

/* The same word in state s (pins, the marker and the reference bit kept; redirtied and
 * read-ahead cleared: a page changes state only once something used it). */
static inline uint64_t pg_with_state(uint64_t w, unsigned s)
{
	return (w & ~(PG_STATE_MASK | PG_REDIRTY | PG_RA)) | s;
}

/* Load objects are allocated 16-byte aligned below 2^48: (ptr >> 4) fits in 44 bits. */
static inline uint64_t pg_make_loading(struct vm_load *ld)
{
	assert(((uintptr_t)ld & 15) == 0 && (uintptr_t)ld >> 48 == 0);
	return PG_LOADING | (((uint64_t)(uintptr_t)ld >> 4) << PG_AUX_SHIFT);
}

static inline struct vm_load *pg_load(uint64_t w)
{
	return (struct vm_load *)(uintptr_t)((w >> PG_AUX_SHIFT) << 4);
}

static inline uint64_t pg_make_poisoned(int err)
{
	return PG_POISONED | ((uint64_t)(err < 0 ? -err : err) << PG_AUX_SHIFT);
}

static inline int pg_poison_err(uint64_t w)
{
	return -(int)(w >> PG_AUX_SHIFT);
}

/* Debug builds: the invariants above that a slot alone can show. */
static inline void vm_page_check(uint64_t w)
{
	(void)w;
	assert(pg_state(w) <= PG_POISONED);
	assert(pg_state(w) != PG_EMPTY || w == 0);
	assert(pg_state(w) != PG_LOADING || (pg_load(w) != NULL && pg_pins(w) == 0));
	assert(pg_state(w) != PG_POISONED || (pg_pins(w) == 0 && pg_poison_err(w) < 0));
	assert(!(w & PG_REDIRTY) || pg_state(w) == PG_WRITING);
	assert(!(w & PG_REF) || pg_resident(w));
	assert(!(w & PG_RA) || pg_state(w) == PG_LOADED);
	assert(!(w & PG_ALIAS) || pg_resident(w));
	assert(!(w & PG_RA_MARK) || pg_state(w) == PG_LOADING || pg_resident(w));
}

/* ---------------------------------------------------------------- vm/page.c */

struct rp_fileh;

/* Every change of a page's word goes through here: sets page idx of fh to w. Checks
 * that w is a valid word (vm_page_check) and, in debug builds, that fh->lock is held by
 * this thread and that the move from the slot's state to w's is one of the state
 * machine's above. Returns 0, or -ENOMEM when the slot of an EMPTY page cannot be made
 * (the pagemap's arena is full); from any other state it cannot fail. */
int vm_page_set(struct rp_fileh *fh, uint64_t idx, uint64_t w);
/* The first DIRTY or WRITING page of fh at index >= from: true with *idx and *w set.
 * Walks the handle's dirty index (every dirty page, and only those), so that writeout
 * costs what is dirty, not what is resident. fh->lock held. */
bool vm_next_dirty(const struct rp_fileh *fh, uint64_t from, uint64_t *idx, uint64_t *w);
/* Whether the state machine allows a page's word to go from `from` to `to`. */
bool vm_page_transition_ok(uint64_t from, uint64_t to);

/* A page of fh was touched: the CLOCK reference (counted in reference_hits). w is its
 * word. fh->lock held. */
void vm_page_referenced(struct rp_fileh *fh, uint64_t idx, uint64_t w);
/* Adds n (may be negative) to the handle's and the engine's dirty counts. fh->lock held. */
void vm_dirty_add(struct rp_fileh *fh, int64_t n);
/* A write was seen on page idx: LOADED -> DIRTY, WRITING -> redirtied. Returns false
 * when the page is not resident. fh->lock held. */
bool vm_dirty_mark(struct rp_fileh *fh, uint64_t idx);
/* A vm_region_fn for the written pages that a collection protected again (wp_async):
 * each page of [first, end) vm_dirty_mark's. A page still LOADING whose load is copying
 * it into a mapping with fh->lock dropped (vm/load.c, load_copy_out) is mapped there
 * already and may have been written: the load keeps the write (`written`), and the page
 * is made dirty once in. fh->lock held. */
int vm_dirty_mark_region(struct rp_fileh *fh, uint64_t first, uint64_t end, uint64_t cat,
                         void *arg);
/* Releases the RAM of pages in runs: vm_release_page for each page in ascending order,
 * then vm_release_flush. fh->lock held. */
struct vm_release {
	uint64_t lo, hi;
};
void vm_release_page(struct rp_fileh *fh, struct vm_release *r, uint64_t idx);
void vm_release_flush(struct rp_fileh *fh, struct vm_release *r);

#endif
