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
 */
#include "vm/vm.h"
#include "compat/kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
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

int vm_uffd_open(struct vm *vm, unsigned flags, char *why, size_t len)
{
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

	if ((have & UFFD_FEATURE_POISON) && !(flags & VM_FORCE_POISON_REMAP))
		want |= UFFD_FEATURE_POISON;
	err = uffd_api(fd, want, &vm->uffd_features, &ioctls);
	if (err < 0) {
		close(fd);
		snprintf(why, len, "UFFDIO_API(features 0x%llx): %s", (unsigned long long)want,
		         strerror(-err));
		return err;
	}
	vm->uffd = fd;
	if (vm->uffd_features & UFFD_FEATURE_POISON) {
		vm->poison = VM_POISON_UFFD;
	} else {
		vm->poison = VM_POISON_REMAP;
		vm->poison_fd = memfd_create("ringpager-poison", MFD_CLOEXEC);
		if (vm->poison_fd < 0) {
			err = -errno;
			close(fd);
			vm->uffd = -1;
			snprintf(why, len, "memfd_create: %s", strerror(-err));
			return err;
		}
	}
	snprintf(why, len, "%s, MISSING+MINOR faults, load errors by %s%s", how,
	         vm->poison == VM_POISON_UFFD ? "UFFDIO_POISON"
	                                      : "remapping to an empty memfd (SIGBUS)",
	         mode ? "; user-mode only: a system call reading a page that is not resident "
	                "gets EFAULT"
	              : "");
	return 0;
}

int vm_uffd_register(struct vm *vm, void *addr, size_t len)
{
	struct uffdio_register reg = {
	    .range = {.start = (uintptr_t)addr, .len = len},
	    .mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR,
	};

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

/* The part of pages [first, first+npages) that mapping m covers, as addresses. */
static bool map_overlap(const struct rp_mapping *m, uint64_t first, uint64_t npages,
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

	if (map_overlap(m, first, npages, &start, &len, vm->psz))
		uffd_wake(vm, start, len);
}

void vm_uffd_continue(struct vm *vm, struct rp_mapping *m, uint64_t first, uint64_t npages)
{
	uint64_t start, len;

	if (!map_overlap(m, first, npages, &start, &len, vm->psz))
		return;
	while (len) {
		struct uffdio_continue c = {.range = {.start = start, .len = len}};

		if (ioctl(vm->uffd, UFFDIO_CONTINUE, &c) == 0)
			return;
		int err = errno;

		if (c.mapped > 0) { /* part done: go on after it */
			start += (uint64_t)c.mapped;
			len -= (uint64_t)c.mapped;
			continue;
		}
		if (err == EAGAIN) /* the address space is changing (fork, mremap): retry */
			continue;
		if (err == EEXIST) {
			/* A page of the range is mapped already: map the rest page by page, then
			 * wake, in case a thread waits on a page that was mapped before its fault
			 * message was read. */
			if (len > vm->psz) {
				for (uint64_t o = 0; o < len; o += vm->psz) {
					struct uffdio_continue one = {
					    .range = {.start = start + o, .len = vm->psz}};

					while (ioctl(vm->uffd, UFFDIO_CONTINUE, &one) < 0 &&
					       errno == EAGAIN)
						;
				}
			}
			uffd_wake(vm, start, len);
			return;
		}
		/* ENOENT/EFAULT: the mapping went away under us (rp_unmap keeps this from
		 * happening while fh->lock is held); wake whoever waits and let them retry. */
		uffd_wake(vm, start, len);
		return;
	}
}

void vm_uffd_poison(struct vm *vm, struct rp_mapping *m, uint64_t first, uint64_t npages)
{
	uint64_t start, len;

	if (!map_overlap(m, first, npages, &start, &len, vm->psz))
		return;
	if (vm->poison == VM_POISON_UFFD) {
		for (uint64_t o = 0; o < len; o += vm->psz) {
			struct uffdio_poison p = {.range = {.start = start + o, .len = vm->psz}};

			/* EEXIST: the page is mapped (it was loaded before) - leave it. */
			while (ioctl(vm->uffd, UFFDIO_POISON, &p) < 0 && errno == EAGAIN)
				;
		}
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

	if (!map_overlap(m, first, npages, &start, &len, vm->psz))
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
		(void)vm_uffd_register(vm, addr, len);
	}
	uffd_wake(vm, start, len);
}
