/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/uffd.c - the engine's userfaultfd: opening and probing it, registering mappings,
 * and the three ways a fault is answered (map the page, poison it, or wake the thread).
 *
 * Opening: userfaultfd(2) without UFFD_USER_MODE_ONLY first (faults raised inside system
 * calls, such as a write(2) from a mapping, are served too); where that is refused
 * (vm.unprivileged_userfaultfd=0 without CAP_SYS_PTRACE), /dev/userfaultfd (Linux 5.11,
 * its file mode decides); then UFFD_USER_MODE_ONLY, with which a system call that reads a
 * page not yet resident fails with EFAULT instead of waiting (describe() says so).
 *
 * Features required: MINOR faults on the pool's kind of memory (shmem: Linux 5.14,
 * hugetlbfs: 5.13): they are what keeps a thread from seeing a page that is allocated
 * but still being read. Optional: POISON (6.6); without it a failed range is remapped to
 * an empty memfd (VM_POISON_REMAP), which splits the mapping's VMA until invalidate.
 *
 * Dirty tracking (vm/dirty.c) needs write-protection on shmem/hugetlbfs (6.0) and
 * UFFDIO_CONTINUE_MODE_WP (6.5), which maps a page write-protected in the same call that
 * maps it (without it, a thread could write between the map and the protect, unseen);
 * wp_async needs WP_ASYNC and PAGEMAP_SCAN (6.7) too. UFFDIO_API announces features but
 * not ioctl modes, so probe_dirty() tries the mechanism on a one-page memfd of its own:
 * CONTINUE_MODE_WP, and for wp_async a write that must show in exactly one PAGEMAP_SCAN.
 */
#include "vm/uffd.h"
#include "compat/kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static int uffd_new(unsigned flags, const char **how)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | flags);

	if (fd >= 0) {
		*how = flags ? "userfaultfd(UFFD_USER_MODE_ONLY)" : "userfaultfd(2)";
		return fd;
	}
	int err = -errno;

	if (flags == 0 && (err == -EPERM || err == -EACCES)) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
			close(dev);
			if (fd >= 0) {
				*how = "/dev/userfaultfd";
				return fd;
			}
		}
	}
	return err;
}

/* Asks for `want` on a fresh descriptor (UFFDIO_API may be called once per descriptor). */
static int uffd_api(int fd, uint64_t want, uint64_t *features, uint64_t *ioctls)
{
	struct uffdio_api api = {.api = UFFD_API, .features = want};

	if (ioctl(fd, UFFDIO_API, &api) < 0)
		return -errno;
	*features = api.features;
	*ioctls = api.ioctls;
	return 0;
}

#define WP_ASYNC_FEATURES \
	(UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_WP_ASYNC)

/* Tries dirty tracking on a one-page memfd with a userfaultfd of its own (same open
 * mode as the engine's). Sets *cont_wp when UFFDIO_CONTINUE_MODE_WP works, *scan when
 * (with WP_ASYNC offered) a write shows in one PAGEMAP_SCAN and not in the next. */
static void probe_dirty(unsigned mode, uint64_t have, bool *cont_wp, bool *scan)
{
	const size_t psz = 4096, len = 2 * psz; /* page 1 stays a hole: never reported */
	const bool async = (have & WP_ASYNC_FEATURES) == WP_ASYNC_FEATURES;
	uint64_t f, io;
	const char *how;
	char *alias = MAP_FAILED, *view = MAP_FAILED;
	int fd = uffd_new(mode, &how), mfd = -1, pm = -1;

	*cont_wp = *scan = false;
	if (fd < 0)
		return;
	if (uffd_api(fd, UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM |
	                     (async ? WP_ASYNC_FEATURES : 0),
	             &f, &io) < 0)
		goto out;
	mfd = memfd_create("ringpager-probe", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, (off_t)len) < 0)
		goto out;
	alias = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	view = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (alias == MAP_FAILED || view == MAP_FAILED)
		goto out;
	struct uffdio_register reg = {
	    .range = {.start = (uintptr_t)view, .len = len},
	    .mode = UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_WP,
	};
	struct uffdio_continue c = {.range = {.start = (uintptr_t)view, .len = psz},
	                            .mode = UFFDIO_CONTINUE_MODE_WP};

	if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0)
		goto out;
	alias[0] = 1; /* the page exists in the memfd: CONTINUE may map it */
	if (ioctl(fd, UFFDIO_CONTINUE, &c) < 0)
		goto out;
	*cont_wp = true;
	if (!async)
		goto out;
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0)
		goto out;
	struct page_region r[2];
	uint64_t end, v = (uintptr_t)view;
	int n0 = vm_pagemap_scan(pm, v, v + len, r, 2, &end);

	*(volatile char *)view = 2; /* resolved by the kernel (WP_ASYNC): no fault message */
	int n1 = vm_pagemap_scan(pm, v, v + len, r, 2, &end);
	bool one = n1 == 1 && r[0].start == v && r[0].end == v + psz;
	int n2 = vm_pagemap_scan(pm, v, v + len, r, 2, &end);

	*scan = n0 == 0 && one && n2 == 0;
out:
	if (pm >= 0)
		close(pm);
	if (view != MAP_FAILED)
		munmap(view, len);
	if (alias != MAP_FAILED)
		munmap(alias, len);
	if (mfd >= 0)
		close(mfd);
	close(fd);
}

/* Picks the dirty-tracking mechanism: the one asked for, or the best there is. */
static int choose_dirty(struct vm *vm, enum vm_dirty_mode want, unsigned mode, uint64_t have,
                        char *why, size_t len)
{
	bool cont_wp, scan;
	const char *no_async, *no_sync = NULL;

	probe_dirty(mode, have, &cont_wp, &scan);
	if (!(have & UFFD_FEATURE_WP_HUGETLBFS_SHMEM))
		no_sync = "no write-protection of shmem/hugetlbfs pages (Linux 6.0)";
	else if (!cont_wp)
		no_sync = "no UFFDIO_CONTINUE_MODE_WP (Linux 6.5)";
	if (no_sync)
		no_async = no_sync;
	else if ((have & WP_ASYNC_FEATURES) != WP_ASYNC_FEATURES)
		no_async = "no UFFD_FEATURE_WP_ASYNC (Linux 6.7)";
	else if (!scan)
		no_async = "PAGEMAP_SCAN did not report a write exactly once";
	else
		no_async = NULL;

	if (want == VM_DIRTY_WP_ASYNC && no_async) {
		snprintf(why, len, "dirty_tracking=wp_async: %s", no_async);
		return -EOPNOTSUPP;
	}
	if (want == VM_DIRTY_WP_SYNC && no_sync) {
		snprintf(why, len, "dirty_tracking=wp_sync: %s", no_sync);
		return -EOPNOTSUPP;
	}
	if (want == VM_DIRTY_AUTO)
		want = !no_async ? VM_DIRTY_WP_ASYNC : !no_sync ? VM_DIRTY_WP_SYNC : VM_DIRTY_NONE;
	vm->dirty = want;
	if (want == VM_DIRTY_NONE)
		snprintf(why, len, "none (%s): writable mappings are refused", no_sync);
	else if (want == VM_DIRTY_WP_SYNC && no_async)
		snprintf(why, len, "wp_sync (wp_async unavailable: %s)", no_async);
	else
		snprintf(why, len, "%s", vm_dirty_name(want));
	return 0;
}

int vm_uffd_open(struct vm *vm, unsigned flags, enum vm_dirty_mode dirty, char *why, size_t len)
{
	char dirty_why[160];
	const bool huge = vm->psz > RAM_PAGE_4K;
	const uint64_t minor = huge ? UFFD_FEATURE_MINOR_HUGETLBFS : UFFD_FEATURE_MINOR_SHMEM;
	const uint64_t missing = huge ? UFFD_FEATURE_MISSING_HUGETLBFS : UFFD_FEATURE_MISSING_SHMEM;
	const char *how = "";
	uint64_t have = 0, ioctls = 0;
	unsigned mode = 0;
	int fd, err;

	fd = uffd_new(0, &how);
	if (fd == -EPERM || fd == -EACCES) {
		mode = UFFD_USER_MODE_ONLY;
		fd = uffd_new(mode, &how);
	}
	if (fd < 0) {
		snprintf(why, len,
		         "userfaultfd: %s (needs vm.unprivileged_userfaultfd=1, CAP_SYS_PTRACE, "
		         "or read-write access to /dev/userfaultfd; a seccomp profile may also "
		         "forbid it)",
		         strerror(-fd));
		return fd;
	}
	/* Probe what the kernel offers on a descriptor of its own, then ask for the subset. */
	int probe = uffd_new(mode, &how);

	if (probe < 0 || (err = uffd_api(probe, 0, &have, &ioctls)) < 0) {
		err = probe < 0 ? probe : err;
		if (probe >= 0)
			close(probe);
		close(fd);
		snprintf(why, len, "UFFDIO_API: %s", strerror(-err));
		return err;
	}
	close(probe);
	if ((have & (minor | missing)) != (minor | missing)) {
		close(fd);
		snprintf(why, len,
		         "this kernel's userfaultfd lacks %s faults on %s memory (Linux %s or "
		         "newer has them)",
		         (have & minor) ? "MISSING" : "MINOR", huge ? "hugetlbfs" : "shmem",
		         huge ? "5.13" : "5.14");
		return -EOPNOTSUPP;
	}
	uint64_t want = minor | missing;

	if (vm->fault_self && !(have & UFFD_FEATURE_SIGBUS)) {
		close(fd);
		snprintf(why, len, "fault_mode=sigbus: this kernel's userfaultfd has no "
		                   "UFFD_FEATURE_SIGBUS (Linux 4.14); use fault_mode=uffd");
		return -EOPNOTSUPP;
	}
	if (vm->fault_self)
		want |= UFFD_FEATURE_SIGBUS;
	else if (have & UFFD_FEATURE_THREAD_ID) /* which CPUs listen (vm/service.c) */
		want |= UFFD_FEATURE_THREAD_ID;

	if ((have & UFFD_FEATURE_POISON) && !(flags & VM_FORCE_POISON_REMAP))
		want |= UFFD_FEATURE_POISON;
	err = choose_dirty(vm, dirty, mode,
	                   flags & VM_FORCE_NO_WP ? have & ~(uint64_t)UFFD_FEATURE_WP_HUGETLBFS_SHMEM
	                                          : have,
	                   dirty_why, sizeof(dirty_why));
	if (err < 0) {
		close(fd);
		snprintf(why, len, "%s", dirty_why);
		return err;
	}
	if (vm->fault_self && vm->dirty == VM_DIRTY_WP_SYNC) {
		/* A write-protect fault would arrive as SIGBUS too, and is not told from a
		 * missing one by the signal; wp_async writes take no fault at all. */
		close(fd);
		if (dirty == VM_DIRTY_WP_SYNC)
			snprintf(why, len,
			         "fault_mode=sigbus needs dirty_tracking=wp_async, not wp_sync (its "
			         "write-protect faults would arrive as SIGBUS); use fault_mode=uffd");
		else
			snprintf(why, len,
			         "fault_mode=sigbus needs dirty_tracking=wp_async, which is not "
			         "available here (%s); use fault_mode=uffd",
			         dirty_why);
		return -EOPNOTSUPP;
	}
	if (vm->dirty == VM_DIRTY_WP_SYNC)
		want |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	else if (vm->dirty == VM_DIRTY_WP_ASYNC)
		want |= WP_ASYNC_FEATURES;
	err = uffd_api(fd, want, &vm->uffd_features, &ioctls);
	if (err < 0) {
		close(fd);
		snprintf(why, len, "UFFDIO_API(features 0x%llx): %s", (unsigned long long)want,
		         strerror(-err));
		return err;
	}
	vm->uffd = fd;
	if (vm->dirty == VM_DIRTY_WP_ASYNC) {
		vm->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		if (vm->pagemap_fd < 0) {
			err = -errno;
			close(fd);
			vm->uffd = -1;
			snprintf(why, len, "/proc/self/pagemap: %s", strerror(-err));
			return err;
		}
	}
	if (vm->uffd_features & UFFD_FEATURE_POISON) {
		vm->poison = VM_POISON_UFFD;
	} else {
		vm->poison = VM_POISON_REMAP;
		vm->poison_fd = memfd_create("ringpager-poison", MFD_CLOEXEC);
		if (vm->poison_fd < 0) {
			err = -errno;
			close(fd);
			vm->uffd = -1;
			if (vm->pagemap_fd >= 0)
				close(vm->pagemap_fd);
			vm->pagemap_fd = -1;
			snprintf(why, len, "memfd_create: %s", strerror(-err));
			return err;
		}
	}
	snprintf(why, len, "%s, MISSING+MINOR faults %s, load errors by %s, dirty tracking %s%s",
	         how,
	         vm->fault_self ? "served by the faulting thread (fault_mode=sigbus)"
	                        : "served by service threads (fault_mode=uffd)",
	         vm->poison == VM_POISON_UFFD ? "UFFDIO_POISON"
	                                      : "remapping to an empty memfd (SIGBUS)",
	         dirty_why,
	         mode ? "; user-mode only: a system call reading a page that is not resident "
	                "gets EFAULT"
	              : "");
	return 0;
}

int vm_uffd_register(struct vm *vm, void *addr, size_t len, bool track)
{
	struct uffdio_register reg = {
	    .range = {.start = (uintptr_t)addr, .len = len},
	    .mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR |
	            (track ? UFFDIO_REGISTER_MODE_WP : 0),
	};

	/* No UFFDIO_WRITEPROTECT of the whole view after registering (the design's probe
	 * did one): every page is mapped write-protected by UFFDIO_CONTINUE_MODE_WP, holes
	 * are not reported as written (probe_dirty checks it on this kernel), and protecting
	 * an empty shmem range installs a marker per page: 2 MiB of page tables per GiB
	 * mapped, measured, which a sparse 64 GiB mapping cannot afford. */
	return ioctl(vm->uffd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

void vm_uffd_unregister(struct vm *vm, void *addr, size_t len)
{
	struct uffdio_range r = {.start = (uintptr_t)addr, .len = len};

	(void)ioctl(vm->uffd, UFFDIO_UNREGISTER, &r);
}

static void uffd_wake(struct vm *vm, uint64_t start, uint64_t len)
{
	struct uffdio_range r = {.start = start, .len = len};

	(void)ioctl(vm->uffd, UFFDIO_WAKE, &r);
}

void vm_uffd_wake_addr(struct vm *vm, uint64_t start, uint64_t len)
{
	uffd_wake(vm, start, len);
}

/* The part of pages [first, first+npages) that mapping m covers, as addresses. */
bool vm_map_overlap(const struct rp_mapping *m, uint64_t first, uint64_t npages,
                    uint64_t *start, uint64_t *len, size_t psz)
{
	uint64_t lo = first > m->first ? first : m->first;
	uint64_t hi = first + npages < m->first + m->npages ? first + npages : m->first + m->npages;

	if (lo >= hi)
		return false;
	*start = (uintptr_t)m->addr + (lo - m->first) * psz;
	*len = (hi - lo) * psz;
	return true;
}

void vm_uffd_wake(struct vm *vm, struct rp_mapping *m, uint64_t first, uint64_t npages)
{
	uint64_t start, len;

	if (vm_map_overlap(m, first, npages, &start, &len, vm->psz))
		uffd_wake(vm, start, len);
}

/* UFFDIO_CONTINUE over [*start, *start + *len), going on after a part done and
 * retrying while the address space changes (fork, mremap). Returns 0 when all is mapped,
 * else the errno that stopped it at *start (EEXIST: that page is mapped already). */
static int continue_range(struct vm *vm, uint64_t *start, uint64_t *len, uint64_t mode)
{
	while (*len) {
		struct uffdio_continue c = {.range = {.start = *start, .len = *len}, .mode = mode};

		if (ioctl(vm->uffd, UFFDIO_CONTINUE, &c) == 0)
			return 0;
		int err = errno;

		if (c.mapped > 0) { /* part done: go on after it */
			*start += (uint64_t)c.mapped;
			*len -= (uint64_t)c.mapped;
		} else if (err != EAGAIN) {
			return err;
		}
	}
	return 0;
}

/* UFFDIO_CONTINUE over [start, start + len), skipping the pages mapped already; stops at
 * any other error (the mapping is going). */
static void continue_unmapped(struct vm *vm, uint64_t start, uint64_t len, uint64_t mode)
{
	while (continue_range(vm, &start, &len, mode) == EEXIST) {
		start += vm->psz;
		len -= vm->psz;
	}
}

void vm_uffd_continue(struct vm *vm, struct rp_mapping *m, uint64_t first, uint64_t npages,
                      bool writable)
{
	/* A tracked mapping maps pages write-protected, so the first write is seen; a page
	 * already known dirty (the fault was a write) is mapped writable at once. */
	const uint64_t mode = m->track && !writable ? UFFDIO_CONTINUE_MODE_WP : 0;
	uint64_t start, len;

	if (!vm_map_overlap(m, first, npages, &start, &len, vm->psz))
		return;
	int err = continue_range(vm, &start, &len, mode);

	if (!err)
		return;
	if (err == EEXIST) {
		/* A page of the range is mapped already: map the rest, then wake, in case a
		 * thread waits on a page that was mapped before its fault message was read. */
		continue_unmapped(vm, start, len, mode);
		uffd_wake(vm, start, len);
		return;
	}
	/* ENOENT/EFAULT: the mapping went away under us (rp_unmap keeps this from happening
	 * while fh->lock is held); wake whoever waits and let them retry. */
	uffd_wake(vm, start, len);
}

void vm_uffd_map_around(struct vm *vm, struct rp_mapping *m, uint64_t first, uint64_t npages)
{
	const uint64_t mode = m->track ? UFFDIO_CONTINUE_MODE_WP : 0;
	uint64_t start, len;

	if (vm_map_overlap(m, first, npages, &start, &len, vm->psz))
		continue_unmapped(vm, start, len, mode);
}

int vm_uffd_copy(struct vm *vm, struct rp_mapping *m, uint64_t first, uint64_t npages,
                 const void *src, bool writable, bool wake)
{
	const uint64_t mode = (wake ? 0 : UFFDIO_COPY_MODE_DONTWAKE) |
	                      (m->track && !writable ? UFFDIO_COPY_MODE_WP : 0);
	uint64_t start, len;

	if (!vm_map_overlap(m, first, npages, &start, &len, vm->psz) || len != npages * vm->psz)
		return -ERANGE;
	while (len) {
		struct uffdio_copy c = {
		    .dst = start, .src = (uintptr_t)src, .len = len, .mode = mode};

		if (ioctl(vm->uffd, UFFDIO_COPY, &c) == 0)
			return 0;
		if (errno != EAGAIN)
			return -errno;
		/* The address space changed (fork, mremap) after c.copy bytes: go on from there. */
		if (c.copy > 0) {
			start += (uint64_t)c.copy;
			src = (const char *)src + c.copy;
			len -= (uint64_t)c.copy;
		}
	}
	return 0;
}

void vm_uffd_protect(struct vm *vm, struct rp_mapping *m, uint64_t first, uint64_t npages,
                     bool protect)
{
	uint64_t start, len;

	if (!m->track || !vm_map_overlap(m, first, npages, &start, &len, vm->psz))
		return;
	struct uffdio_writeprotect wp = {
	    .range = {.start = start, .len = len},
	    .mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0, /* unprotect also wakes */
	};

	while (ioctl(vm->uffd, UFFDIO_WRITEPROTECT, &wp) < 0 && errno == EAGAIN)
		;
}

/* Installs a poison marker at addr. EEXIST says the slot is not empty: either the page is
 * mapped there (loaded before: left alone), or, in a write-tracked mapping, the slot keeps
 * the write-protect marker that zapping a protected page leaves (reclaim, invalidation).
 * The page is then not in the RAM handle at all (mincore, which looks at the memfd); the
 * marker is dropped (unprotecting a slot without a page clears it, without a wake-up) and
 * the poison installed. Left there, the faulting thread would be woken instead of
 * signalled, fault again, and wait for ever. */
static void poison_page(struct vm *vm, const struct rp_mapping *m, uint64_t addr)
{
	struct uffdio_poison p = {.range = {.start = addr, .len = vm->psz}};
	int r;

	for (int tries = 0; tries < 2; tries++) {
		while ((r = ioctl(vm->uffd, UFFDIO_POISON, &p)) < 0 && errno == EAGAIN)
			;
		unsigned char in_ram = 1;

		if (r == 0 || errno != EEXIST || !m->track ||
		    mincore((void *)(uintptr_t)addr, vm->psz, &in_ram) < 0 || (in_ram & 1))
			return;
		struct uffdio_writeprotect wp = {.range = {.start = addr, .len = vm->psz},
		                                 .mode = UFFDIO_WRITEPROTECT_MODE_DONTWAKE};

		while (ioctl(vm->uffd, UFFDIO_WRITEPROTECT, &wp) < 0 && errno == EAGAIN)
			;
	}
}

void vm_uffd_poison(struct vm *vm, struct rp_mapping *m, uint64_t first, uint64_t npages)
{
	uint64_t start, len;

	if (!vm_map_overlap(m, first, npages, &start, &len, vm->psz))
		return;
	if (vm->poison == VM_POISON_UFFD) {
		for (uint64_t o = 0; o < len; o += vm->psz)
			poison_page(vm, m, start + o);
		uffd_wake(vm, start, len);
		return;
	}
	/* Remap the range to offset 0 of an empty memfd: every access is past its end, and
	 * the kernel raises SIGBUS with the address. The new VMA is not registered, so the
	 * threads that wait on the range retry into it once woken; wake them first, as the
	 * unregistered range no longer has waiters the kernel would find. */
	uffd_wake(vm, start, len);
	if (mmap((void *)(uintptr_t)start, len, m->prot, MAP_SHARED | MAP_FIXED, vm->poison_fd,
	         0) == MAP_FAILED)
		return; /* out of map count: the threads refault, and are poisoned again */
	(void)madvise((void *)(uintptr_t)start, len, MADV_DONTFORK);
	m->remapped = true;
}

void vm_uffd_unpoison(struct vm *vm, struct rp_mapping *m, uint64_t first, uint64_t npages)
{
	uint64_t start, len;

	if (!vm_map_overlap(m, first, npages, &start, &len, vm->psz))
		return;
	void *addr = (void *)(uintptr_t)start;

	if (vm->poison == VM_POISON_UFFD) {
		/* MADV_DONTNEED drops poison markers along with any mapped page. */
		(void)madvise(addr, len, MADV_DONTNEED);
		return;
	}
	/* Map the RAM handle back over the range and register it again, then wake threads
	 * that waited there. The caller has released the pages, so the range faults afresh. */
	if (!m->remapped)
		return;
	void *got;
	uint64_t off = m->off + (uint64_t)((char *)addr - m->addr);

	if (ram_map(m->fh->ram, off, len, m->prot, addr, &got) == 0) {
		(void)madvise(addr, len, MADV_DONTFORK);
		(void)vm_uffd_register(vm, addr, len, m->track);
	}
	uffd_wake(vm, start, len);
}

static const char *const dirty_names[] = {"auto", "wp_async", "wp_sync", "none"};

const char *vm_dirty_name(enum vm_dirty_mode d)
{
	return (unsigned)d < 4 ? dirty_names[d] : "?";
}
