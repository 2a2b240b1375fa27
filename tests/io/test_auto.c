/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/io/test_auto.c - rpio_backend=auto: what it picks, and that it falls back to libaio
 * when io_uring is disabled and to psync when libaio is out of contexts. The fallbacks
 * are provoked for real, as root, with the kernel's own switches
 * (kernel.io_uring_disabled, fs.aio-max-nr), which are restored before each test ends.
 * These tests change system-wide settings, so meson runs them alone (is_parallel false).
 */
#include "io/io.h"
#include "common/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define URING_SYSCTL "/proc/sys/kernel/io_uring_disabled"
#define AIO_SYSCTL   "/proc/sys/fs/aio-max-nr"

/* Opens an auto queue and checks it can read a page. */
static struct rpio_queue *auto_queue_reads(void)
{
	struct rpio_queue_params p = {.backend = IO_BACKEND_AUTO, .depth = 8};
	char msg[IO_MSG_LEN];
	struct rpio_queue *q;
	struct rpio_dev *d;
	char *path = tu_scratch_file("auto", 1 << 20, 8);
	unsigned char *buf = tu_aligned(4096), *want = malloc(4096);

	cr_assert_eq(rpio_queue_open(&p, &q, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(rpio_dev_open(path, O_RDONLY, &d, msg, sizeof(msg)), 0, "%s", msg);
	struct iovec iov = {buf, 4096};
	struct rpio_cqe c;
	cr_assert_eq(rpio_read(q, d, 8192, &iov, 1, NULL), 0);
	cr_assert_eq(rpio_reap(q, &c, 1, 1), 1);
	cr_assert_eq(c.res, 4096);
	tu_fill(want, 4096, 8, 8192);
	cr_assert(memcmp(buf, want, 4096) == 0);
	rpio_dev_close(d);
	tu_unlink(path);
	free(buf);
	free(want);
	return q;
}

Test(auto_backend, reports_what_it_chose)
{
	struct rpio_queue *q = auto_queue_reads();
	const char *desc = rpio_queue_describe(q);
	const char *name = rpio_backend_name(rpio_queue_backend(q));

	cr_assert_neq(rpio_queue_backend(q), IO_BACKEND_AUTO);
	cr_assert_eq(strncmp(desc, name, strlen(name)), 0, "describe: %s", desc);
	cr_assert(strstr(desc, "chosen by auto"), "describe: %s", desc);
	rpio_queue_close(q);
}

Test(auto_backend, falls_back_to_libaio_when_io_uring_is_disabled)
{
	char old[64];
	int err;

	if (!tu_is_root())
		cr_skip_test("needs root: sets kernel.io_uring_disabled");
	if (access(URING_SYSCTL, F_OK) < 0)
		cr_skip_test("kernel has no kernel.io_uring_disabled (before 6.6)");
	err = tu_sysctl_swap(URING_SYSCTL, "2", old, sizeof(old));
	cr_assert_eq(err, 0, "setting io_uring_disabled: %s", strerror(-err));

	struct rpio_queue *q = auto_queue_reads();
	struct rpio_queue_params p = {.backend = IO_BACKEND_URING, .depth = 8};
	struct rpio_queue *forced = NULL;
	char msg[IO_MSG_LEN], scratch[64];
	int forced_err = rpio_queue_open(&p, &forced, msg, sizeof(msg));

	cr_assert_eq(tu_sysctl_swap(URING_SYSCTL, old, scratch, sizeof(scratch)), 0);

	cr_assert_eq(rpio_queue_backend(q), IO_BACKEND_AIO, "describe: %s", rpio_queue_describe(q));
	cr_assert(strstr(rpio_queue_describe(q), "skipped: io_uring"), "describe: %s",
	          rpio_queue_describe(q));
	cr_assert(strstr(rpio_queue_describe(q), "io_uring_disabled=2"), "describe: %s",
	          rpio_queue_describe(q));
	rpio_queue_close(q);
	/* asking for io_uring by name fails with a message naming the key */
	cr_assert_lt(forced_err, 0);
	cr_assert_null(forced);
	cr_assert(strstr(msg, "rpio_backend=io_uring"), "message: %s", msg);
}

Test(auto_backend, falls_back_to_psync_when_io_uring_and_libaio_are_unavailable)
{
	char old_uring[64], old_aio[64], scratch[64];

	if (!tu_is_root())
		cr_skip_test("needs root: sets kernel.io_uring_disabled and fs.aio-max-nr");
	if (access(URING_SYSCTL, F_OK) < 0)
		cr_skip_test("kernel has no kernel.io_uring_disabled (before 6.6)");
	cr_assert_eq(tu_sysctl_swap(URING_SYSCTL, "2", old_uring, sizeof(old_uring)), 0);
	if (tu_sysctl_swap(AIO_SYSCTL, "0", old_aio, sizeof(old_aio)) != 0) {
		tu_sysctl_swap(URING_SYSCTL, old_uring, scratch, sizeof(scratch));
		cr_assert_fail("cannot set fs.aio-max-nr");
	}

	struct rpio_queue *q = auto_queue_reads();

	cr_assert_eq(tu_sysctl_swap(AIO_SYSCTL, old_aio, scratch, sizeof(scratch)), 0);
	cr_assert_eq(tu_sysctl_swap(URING_SYSCTL, old_uring, scratch, sizeof(scratch)), 0);

	cr_assert_eq(rpio_queue_backend(q), IO_BACKEND_PSYNC, "describe: %s",
	             rpio_queue_describe(q));
	cr_assert(strstr(rpio_queue_describe(q), "libaio (io_setup: EAGAIN"), "describe: %s",
	          rpio_queue_describe(q));
	rpio_queue_close(q);
}
