/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/io/test_dev.c - opening devices: geometry of files and block devices, the
 * buffered fallback where O_DIRECT is refused, and errors that name the path.
 */
#include "io/io.h"
#include "common/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

static bool power_of_two(uint32_t v)
{
	return v && !(v & (v - 1));
}

Test(dev, regular_file_geometry)
{
	char *path = tu_scratch_file("dev-geom", 123 * 4096 + 17, 1);
	struct rpio_dev *d;
	char msg[IO_MSG_LEN];

	cr_assert_eq(rpio_dev_open(path, O_RDWR, &d, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(d->size, 123 * 4096 + 17);
	cr_assert_not(d->blockdev);
	cr_assert_not(d->rdonly);
	cr_assert(power_of_two(d->lbs), "lbs %u", d->lbs);
	cr_assert(power_of_two(d->off_align) && power_of_two(d->mem_align));
	if (!d->buffered) {
		cr_assert_geq(d->off_align, 512);
		cr_assert_leq(d->off_align, 4096);
		cr_assert_eq(d->warning[0], 0);
	}
	rpio_dev_close(d);
	tu_unlink(path);
}

Test(dev, loop_device_geometry)
{
	char dev[64], msg[IO_MSG_LEN];
	struct rpio_dev *d;
	char *path;
	int lfd;

	lfd = tu_loop_scratch("dev-loop", 4 << 20, 2, 512, &path, dev, sizeof(dev));
	cr_assert_eq(rpio_dev_open(dev, O_RDWR, &d, msg, sizeof(msg)), 0, "%s", msg);
	cr_expect(d->blockdev);
	cr_expect_eq(d->size, 4 << 20);
	cr_expect_eq(d->lbs, 512u, "BLKSSZGET of a 512-byte loop device: %u", d->lbs);
	cr_expect_eq(d->off_align, 512u);
	cr_expect_not(d->buffered);
	rpio_dev_close(d);
	cr_expect(tu_loop_detach(lfd, dev), "%s was not detached", dev);
	tu_unlink(path);
}

/* ramfs has no direct I/O at all: the open must fall back and say so. The mount lives in
 * a private mount namespace of this test process, so nothing outlives the test. */
Test(dev, buffered_fallback_where_odirect_is_refused)
{
	char dir[256], file[300], msg[IO_MSG_LEN];
	struct rpio_dev *d;

	if (!tu_is_root())
		cr_skip_test("needs root: mounts a ramfs in a private mount namespace");
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		cr_skip_test("cannot make a private mount namespace: %s", strerror(errno));
	snprintf(dir, sizeof(dir), "%s/ramfs-%d", tu_dir(), (int)getpid());
	cr_assert_eq(mkdir(dir, 0700), 0, "%s", strerror(errno));
	if (mount("none", dir, "ramfs", 0, NULL) < 0) {
		rmdir(dir);
		cr_skip_test("cannot mount ramfs: %s", strerror(errno));
	}
	snprintf(file, sizeof(file), "%s/data", dir);
	int fd = open(file, O_RDWR | O_CREAT | O_DIRECT, 0600);
	if (fd >= 0) {
		close(fd);
		umount(dir);
		rmdir(dir);
		cr_skip_test("this kernel's ramfs accepts O_DIRECT: nothing to fall back from");
	}
	cr_assert_eq(rpio_dev_open(file, O_RDWR | O_CREAT, &d, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert(d->buffered);
	cr_assert(strstr(d->warning, "O_DIRECT"), "warning: %s", d->warning);
	cr_assert(strstr(d->warning, file), "warning names the path: %s", d->warning);
	cr_assert_eq(d->off_align, 1u, "buffered I/O has no alignment rule");

	/* and it works: a write and a read back through a backend, unaligned even */
	struct rpio_queue_params p = {.backend = IO_BACKEND_PSYNC, .depth = 4};
	struct rpio_queue *q;
	cr_assert_eq(rpio_queue_open(&p, &q, msg, sizeof(msg)), 0, "%s", msg);
	char out[100] = "buffered bytes", in[100] = {0};
	struct iovec iov = {out, sizeof(out)};
	struct rpio_cqe c;
	cr_assert_eq(rpio_write(q, d, 10, &iov, 1, 0, NULL), 0, "%s", rpio_queue_error(q));
	cr_assert_eq(rpio_reap(q, &c, 1, 1), 1);
	cr_assert_eq(c.res, (int64_t)sizeof(out));
	iov.iov_base = in;
	cr_assert_eq(rpio_read(q, d, 10, &iov, 1, NULL), 0);
	cr_assert_eq(rpio_reap(q, &c, 1, 1), 1);
	cr_assert_str_eq(in, "buffered bytes");
	rpio_queue_close(q);
	rpio_dev_close(d);
	umount(dir);
	rmdir(dir);
}

Test(dev, missing_path_error_names_it)
{
	char msg[IO_MSG_LEN];
	struct rpio_dev *d = (struct rpio_dev *)1;
	const char *path = "/nonexistent-ringpager/dir/store.dat";

	cr_assert_eq(rpio_dev_open(path, O_RDONLY, &d, msg, sizeof(msg)), -ENOENT);
	cr_assert_null(d);
	cr_assert(strstr(msg, path), "message: %s", msg);
}

Test(dev, directory_is_refused)
{
	char msg[IO_MSG_LEN];
	struct rpio_dev *d;
	int err = rpio_dev_open(tu_dir(), O_RDONLY, &d, msg, sizeof(msg));

	cr_assert_lt(err, 0);
	cr_assert(strstr(msg, tu_dir()), "message: %s", msg);
}

Test(dev, bad_open_flags_are_refused)
{
	char msg[IO_MSG_LEN];
	struct rpio_dev *d;

	cr_assert_eq(rpio_dev_open("x", O_WRONLY, &d, msg, sizeof(msg)), -EINVAL);
	cr_assert(strstr(msg, "O_RDONLY or O_RDWR"), "message: %s", msg);
	cr_assert_eq(rpio_dev_open("x", O_RDWR | O_TRUNC, &d, msg, sizeof(msg)), -EINVAL);
	cr_assert_eq(rpio_dev_open("", O_RDWR, &d, msg, sizeof(msg)), -EINVAL);
}

Test(queue, bad_parameters_are_refused)
{
	char msg[IO_MSG_LEN];
	struct rpio_queue *q;
	struct rpio_queue_params p = {.backend = IO_BACKEND_URING, .depth = 0};

	cr_assert_eq(rpio_queue_open(&p, &q, msg, sizeof(msg)), -EINVAL);
	cr_assert(strstr(msg, "queue_depth=0"), "message: %s", msg);
	p.depth = 1u << 20;
	cr_assert_eq(rpio_queue_open(&p, &q, msg, sizeof(msg)), -EINVAL);
	p.depth = 8;
	p.backend = (enum rpio_backend)42;
	cr_assert_eq(rpio_queue_open(&p, &q, msg, sizeof(msg)), -EINVAL);
	cr_assert(strstr(msg, "rpio_backend=42"), "message: %s", msg);
}

Test(queue, backend_names_parse_both_ways)
{
	enum rpio_backend b;

	for (int i = IO_BACKEND_AUTO; i <= IO_BACKEND_PSYNC; i++) {
		cr_assert_eq(rpio_backend_parse(rpio_backend_name((enum rpio_backend)i), &b), 0);
		cr_assert_eq((int)b, i);
	}
	cr_assert_eq(rpio_backend_parse("uring", &b), -EINVAL);
	cr_assert_eq(rpio_backend_parse(NULL, &b), -EINVAL);
}

/* rpio_pread's rules, the same whichever way it reads (spin: its spin_ns). Returns the
 * device's ring_reads after them. */
static int pread_rules(uint64_t spin)
{
	const uint64_t size = 10 * 4096 + 100; /* the last page is short */
	char *path = tu_scratch_file("dev-pread", size, 7);
	char *buf = tu_aligned(2 * 4096);
	struct rpio_dev *d;
	char msg[IO_MSG_LEN];

	cr_assert_eq(rpio_dev_open(path, O_RDONLY, &d, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(rpio_pread(d, 3 * 4096, buf, 2 * 4096, spin), 2 * 4096);
	tu_expect_fill(buf, 2 * 4096, 7, 3 * 4096);
	/* Past the end: the file's 100 bytes, then zeros. */
	memset(buf, 0xaa, 4096);
	cr_assert_eq(rpio_pread(d, 10 * 4096, buf, 4096, spin), 4096);
	tu_expect_fill(buf, 100, 7, 10 * 4096);
	for (size_t i = 100; i < 4096; i++)
		cr_assert_eq(buf[i], 0, "byte %zu past the end", i);
	if (!d->buffered) {
		cr_assert_eq(rpio_pread(d, 4096 + d->off_align / 2 + 1, buf, 4096, spin), -EINVAL);
		cr_assert_eq(rpio_pread(d, 0, buf + 1, 4096, spin), -EINVAL);
	}
	cr_assert_eq(rpio_pread(d, 0, buf, 0, spin), -EINVAL);
	/* Failure injection reaches it: EIO is returned, EINTR retried. */
	struct rpio_fault f = {
	    .ops = 1u << IO_OP_READ, .off_lo = 4096, .off_hi = 2 * 4096, .err = EIO};

	rpio_dev_inject(d, &f);
	cr_assert_eq(rpio_pread(d, 4096, buf, 4096, spin), -EIO);
	cr_assert_eq(rpio_pread(d, 0, buf, 4096, spin), 4096, "outside the range");
	f.err = EINTR;
	f.count = 1;
	rpio_dev_inject(d, &f);
	cr_assert_eq(rpio_pread(d, 4096, buf, 4096, spin), 4096);
	tu_expect_fill(buf, 4096, 7, 4096);
	cr_assert_eq(rpio_dev_injected(d), 1);
	rpio_dev_inject(d, NULL);
	int ring = d->ring_reads;

	rpio_dev_close(d);
	free(buf);
	tu_unlink(path);
	return ring;
}

Test(dev, pread_on_the_calling_thread_follows_the_read_rules)
{
	pread_rules(0);
	cr_assert_eq(rpio_pread_ring(), 0, "spin_ns 0 reads with pread(2), no ring");
}

Test(dev, pread_polled_through_the_threads_ring_follows_the_same_rules)
{
	if (pread_rules(1000000) < 0)
		cr_skip_test("the scratch directory's filesystem refuses RWF_NOWAIT: no ring");
	cr_assert_eq(rpio_pread_ring(), 1, "the thread's ring was made and kept");
	/* A spin that ends before the device: the thread sleeps for the completion. */
	pread_rules(1);
	cr_assert_eq(rpio_pread_ring(), 1);
}

Test(dev, pread_falls_back_to_pread_where_no_ring_can_be_made)
{
	rpio_pread_ring_forbid(true);
	if (pread_rules(1000000) < 0)
		cr_skip_test("the scratch directory's filesystem refuses RWF_NOWAIT: no ring");
	cr_assert_eq(rpio_pread_ring(), -EPERM, "reads went through pread(2)");
	rpio_pread_ring_forbid(false);
}

Test(dev, pread_of_a_file_io_uring_would_hand_to_a_worker_uses_pread)
{
	/* tmpfs takes no RWF_NOWAIT (O_DIRECT where the kernel has it, else buffered). */
	char path[] = "/dev/shm/rp-test-pread-XXXXXX";
	char *buf = tu_aligned(4096), want[4096];
	int fd = mkstemp(path);
	struct rpio_dev *d;
	char msg[IO_MSG_LEN];

	if (fd < 0)
		cr_skip_test("no /dev/shm: %s", strerror(errno));
	tu_fill(want, sizeof(want), 9, 4096);
	cr_assert_eq(pwrite(fd, want, sizeof(want), 4096), 4096);
	close(fd);
	cr_assert_eq(rpio_dev_open(path, O_RDONLY, &d, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(rpio_pread(d, 4096, buf, 4096, 1000000), 4096);
	cr_assert(memcmp(buf, want, sizeof(want)) == 0);
	cr_assert_eq(d->ring_reads, -1, "the probe found no RWF_NOWAIT");
	cr_assert_eq(rpio_pread_ring(), 0, "so no ring was made");
	rpio_dev_close(d);
	unlink(path);
	free(buf);
}

static int count_fds(void)
{
	char p[64];
	int n = 0;

	for (int fd = 0; fd < 1024; fd++) {
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		n += access(p, F_OK) == 0;
	}
	return n;
}

struct ring_thread {
	struct rpio_dev *d;
	char *buf;
	int64_t got;
	int state, fds;
};

static void *ring_thread_main(void *arg)
{
	struct ring_thread *t = arg;

	t->got = rpio_pread(t->d, 4096, t->buf, 4096, 1000000);
	t->state = rpio_pread_ring();
	t->fds = count_fds();
	return NULL;
}

Test(dev, a_threads_ring_is_closed_when_it_ends_and_a_forked_child_makes_its_own)
{
	char *path = tu_scratch_file("dev-pread-ring", 8 * 4096, 3);
	char *buf = tu_aligned(4096);
	struct rpio_dev *d;
	char msg[IO_MSG_LEN];
	pthread_t th;

	cr_assert_eq(rpio_dev_open(path, O_RDONLY, &d, msg, sizeof(msg)), 0, "%s", msg);
	const int before = count_fds();
	struct ring_thread t = {.d = d, .buf = buf};

	cr_assert_eq(pthread_create(&th, NULL, ring_thread_main, &t), 0);
	pthread_join(th, NULL);
	if (d->ring_reads < 0)
		cr_skip_test("the scratch directory's filesystem refuses RWF_NOWAIT: no ring");
	cr_assert_eq(t.got, 4096);
	tu_expect_fill(buf, 4096, 3, 4096);
	cr_assert_eq(t.state, 1);
	cr_assert_eq(t.fds, before + 1, "the ring's descriptor while the thread lives");
	cr_assert_eq(count_fds(), before, "and none after it ended");

	/* This thread's ring, then a child's: its first read makes a ring of its own. */
	cr_assert_eq(rpio_pread(d, 0, buf, 4096, 1000000), 4096);
	cr_assert_eq(rpio_pread_ring(), 1);
	pid_t pid = fork();

	if (pid == 0) {
		char want[4096];
		int ok = rpio_pread_ring() == 0 &&
		         rpio_pread(d, 2 * 4096, buf, 4096, 1000000) == 4096 &&
		         rpio_pread_ring() == 1 && count_fds() == before + 1;

		tu_fill(want, sizeof(want), 3, 2 * 4096);
		_exit(ok && memcmp(buf, want, sizeof(want)) == 0 ? 0 : 1);
	}
	cr_assert_gt(pid, 0);
	int status;

	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child's read");
	cr_assert_eq(rpio_pread(d, 3 * 4096, buf, 4096, 1000000), 4096, "the parent's ring");
	tu_expect_fill(buf, 4096, 3, 3 * 4096);
	rpio_dev_close(d);
	free(buf);
	tu_unlink(path);
}
