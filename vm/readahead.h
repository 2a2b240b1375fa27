/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/readahead.h - the readahead detector and advice ranges (vm/readahead.c; the
 * algorithm is explained at its top). The detector is pure: it sees the pagemap only
 * through vm_ra_env, so tests feed it access sequences. The fault path (vm/fault.c)
 * calls it and starts the loads of the windows it returns.
 */
#ifndef RINGPAGER_VM_READAHEAD_H
#define RINGPAGER_VM_READAHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One stream's state (one per mapping, like the kernel's per open file): the last window
 * read, pages [start, start + size), whose marker is at start + size - async. */
struct vm_ra {
	uint64_t start, size, async;
	uint64_t prev;  /* the last page the stream touched; UINT64_MAX: none yet */
	unsigned miss;  /* misses, less pages read ahead and used: past RA_MISS_MAX, no guessing */
	uint64_t keep_from; /* the stream's first page not dropped behind it (vm_ra_behind) */
};

/* What the detector may look at. */
struct vm_ra_env {
	uint64_t max;    /* the largest window, pages (0 or 1: no readahead) */
	uint64_t lo, hi; /* the pages the stream may read: [lo, hi) */
	bool (*present)(void *arg, uint64_t idx); /* page idx resident or being loaded */
	void *arg;
};

/* A window to read: pages [start, start + size); mark: the page to carry the marker, or
 * UINT64_MAX. Pages already present are skipped when it is read. */
struct vm_ra_win {
	uint64_t start, size, mark;
};

void vm_ra_init(struct vm_ra *ra);
/* A fault found page idx absent; advice RP_ADVICE_NORMAL, _SEQUENTIAL or _RANDOM. True
 * with *w the window to read (the page idx itself is loaded by the caller either way);
 * false: idx alone. */
bool vm_ra_sync(struct vm_ra *ra, const struct vm_ra_env *e, int advice, uint64_t idx,
                struct vm_ra_win *w);
/* A fault found the marker on page idx: true with *w the next window (asynchronous). */
bool vm_ra_async(struct vm_ra *ra, const struct vm_ra_env *e, int advice, uint64_t idx,
                 struct vm_ra_win *w);
/* The stream reached page idx, the marker its state expects (before vm_ra_async moves
 * it on), and keeps at most `keep` pages behind it: true with [*first, *first + *n) the
 * pages of the stream further behind, at least `min` of them (drops come in batches),
 * which the caller drops. keep 0, or another stream's marker: never. */
bool vm_ra_behind(struct vm_ra *ra, uint64_t idx, uint64_t keep, uint64_t min, uint64_t *first,
                  uint64_t *n);
/* n pages read ahead were used, the last of them `last`: the back-off's credit. */
void vm_ra_used(struct vm_ra *ra, uint64_t last, uint64_t n);

/* A range of a mapping with advice other than NORMAL. */
struct vm_adv {
	uint64_t first, end; /* pages of the handle */
	int advice;          /* RP_ADVICE_SEQUENTIAL or RP_ADVICE_RANDOM */
};

/* A mapping's advice: ranges other than NORMAL, sorted and disjoint. */
struct vm_advice {
	struct vm_adv *r;
	size_t n;
};

/* Sets the advice of pages [first, first + n) in a: NORMAL, SEQUENTIAL, RANDOM. fh->lock
 * held. 0 or -ENOMEM. */
int vm_advise(struct vm_advice *a, uint64_t first, uint64_t n, int advice);
/* The advice in force for page idx. fh->lock held. */
int vm_advice_at(const struct vm_advice *a, uint64_t idx);

#endif
