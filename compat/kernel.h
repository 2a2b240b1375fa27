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

#endif
