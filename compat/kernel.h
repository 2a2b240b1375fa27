/* SPDX-License-Identifier: Apache-2.0 */
/*
 * compat/kernel.h - the one place where ringpager names kernel interfaces that are newer
 * than the headers it is built against (Debian 12 ships 6.1 uapi headers; ringpager runs
 * on whatever kernel the user has).
 *
 * Rule: a constant defined here is only a name. Code that uses it must probe the running
 * kernel (the call fails with EINVAL, ENOTTY or ENOSYS on a kernel without it), fall back,
 * and report what it chose. Nothing here is assumed to work.
 */
#ifndef RINGPAGER_COMPAT_KERNEL_H
#define RINGPAGER_COMPAT_KERNEL_H

#include <fcntl.h>
#include <sys/stat.h>
#include <linux/fs.h>

/* statx(2) direct-I/O alignment: Linux 6.1 for regular files, 6.11 for block devices. */
#ifndef STATX_DIOALIGN
#define STATX_DIOALIGN 0x00002000U
#endif

/* pwritev2/io_uring/aio per-write flag: data durable at completion (Linux 4.7). */
#ifndef RWF_DSYNC
#define RWF_DSYNC 0x00000002
#endif

/* Loop devices (Linux 5.8): configure in one ioctl, detach on last close. */
#ifndef LOOP_CONFIGURE
#define LOOP_CONFIGURE 0x4C0A
#endif

/* ------------------------------------------------------------ userfaultfd */
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

/* Linux 6.4: writes to a never-populated page are also write-protected (dirty tracking). */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif

/* Linux 6.6: UFFDIO_POISON installs a marker that raises SIGBUS on access. */
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
struct uffdio_poison {
	struct uffdio_range range;
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

/* Linux 6.5: UFFDIO_CONTINUE maps the page write-protected (dirty tracking on shmem).
 * Not announced by UFFDIO_API: vm/uffd.c probes it by trying. */
#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP ((__u64)1 << 1)
#endif

/* Linux 6.7: write-protect faults resolved by the kernel; PAGEMAP_SCAN finds the writes. */
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

/* Linux 6.7: the PAGEMAP_SCAN ioctl on /proc/<pid>/pagemap (linux/fs.h). */
#ifndef PAGEMAP_SCAN
#include <linux/types.h>
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN   (1 << 1)
#define PAGE_IS_FILE      (1 << 2)
#define PAGE_IS_PRESENT   (1 << 3)
#define PAGE_IS_SWAPPED   (1 << 4)
#define PAGE_IS_PFNZERO   (1 << 5)
#define PAGE_IS_HUGE      (1 << 6)

struct page_region {
	__u64 start;
	__u64 end; /* exclusive */
	__u64 categories;
};

#define PM_SCAN_WP_MATCHING   (1 << 0) /* write-protect the pages it reports */
#define PM_SCAN_CHECK_WPASYNC (1 << 1) /* fail on a range without WP_ASYNC tracking */

struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end; /* written by the kernel: where the walk stopped */
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

/* pidfd_open (5.3) and process_madvise (5.10; MADV_DONTNEED on the caller's own pidfd
 * since 6.13): one system-call number on every architecture. Probed before use. */
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_process_madvise
#define __NR_process_madvise 440
#endif

#endif
