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

/* Linux 6.7: write-protect faults resolved by the kernel; PAGEMAP_SCAN finds the writes. */
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

#endif
