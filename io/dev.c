/* SPDX-License-Identifier: Apache-2.0 */
/*
 * io/dev.c - opening stores' files and block devices, learning their geometry, and the
 * failure-injection hook.
 */
#include "io/io.h"
#include "compat/kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>

static atomic_uint_fast64_t rpio_dev_next_id = 1;

void rpio_msgf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!buf || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* The largest request the block layer sends to the device in one piece (its queue's
 * max_sectors_kb), for the device `dev` (a partition: its disk's queue); 0 when sysfs
 * does not say (no sysfs, a filesystem without a block device such as tmpfs). */
static uint64_t rpio_dev_max_io(dev_t dev)
{
	static const char *const tails[] = {"queue", "../queue"};

	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		char path[96];
		unsigned long long kb = 0;
		FILE *f;

		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s/max_sectors_kb", major(dev),
		         minor(dev), tails[i]);
		if (!(f = fopen(path, "re")))
			continue;
		int ok = fscanf(f, "%llu", &kb) == 1;

		fclose(f);
		if (ok && kb)
			return (uint64_t)kb << 10;
	}
	return 0;
}

const char *rpio_file_kind(unsigned mode)
{
	return S_ISREG(mode)    ? "a regular file"
	       : S_ISBLK(mode)  ? "a block device"
	       : S_ISDIR(mode)  ? "a directory"
	       : S_ISFIFO(mode) ? "a FIFO"
	       : S_ISCHR(mode)  ? "a character device"
	       : S_ISSOCK(mode) ? "a socket"
	                        : "of another kind";
}

/* Fills size, lbs, max_io and the DIO alignments from the open descriptor. */
static int rpio_dev_probe(struct rpio_dev *d, char *msg, size_t msglen)
{
	struct stat st;
	struct statx stx;

	if (fstat(d->fd, &st) < 0) {
		rpio_msgf(msg, msglen, "cannot stat %s: %s", d->path, strerror(errno));
		return -errno;
	}
	if (S_ISBLK(st.st_mode)) {
		uint64_t bytes;
		int ssz;

		if (ioctl(d->fd, BLKGETSIZE64, &bytes) < 0 || ioctl(d->fd, BLKSSZGET, &ssz) < 0) {
			rpio_msgf(msg, msglen, "cannot read the geometry of block device %s: %s",
			          d->path, strerror(errno));
			return -errno;
		}
		d->blockdev = true;
		d->size = bytes;
		d->lbs = (uint32_t)ssz;
	} else if (S_ISREG(st.st_mode)) {
		d->size = (uint64_t)st.st_size;
		/* The filesystem block size is always a valid DIO granule; statx below may
		 * relax it to the device's logical block size. */
		d->lbs = st.st_blksize > 0 ? (uint32_t)st.st_blksize : 4096;
	} else {
		rpio_msgf(msg, msglen, "%s is %s, neither a regular file nor a block device", d->path,
		          rpio_file_kind(st.st_mode));
		return -EINVAL;
	}
	d->off_align = d->mem_align = d->lbs;
	d->max_io = rpio_dev_max_io(d->blockdev ? st.st_rdev : st.st_dev);
	if (!d->max_io)
		d->max_io = IO_MAX_IO_DEFAULT;

	/* STATX_DIOALIGN: files since 6.1, block devices since 6.11. A filesystem that
	 * accepts O_DIRECT but reports 0 (tmpfs) keeps the conservative values above. */
	memset(&stx, 0, sizeof(stx));
	if (statx(d->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align && stx.stx_dio_mem_align) {
		d->off_align = stx.stx_dio_offset_align;
		d->mem_align = stx.stx_dio_mem_align;
		if (!d->blockdev)
			d->lbs = d->off_align;
	}
	if (d->buffered)
		d->off_align = d->mem_align = 1;
	return 0;
}

int rpio_dev_open(const char *path, int oflags, struct rpio_dev **out, char *msg, size_t msglen)
{
	int acc = oflags & O_ACCMODE;
	int extra = oflags & O_CREAT;
	struct rpio_dev *d;
	int err;

	*out = NULL;
	if (!path || !*path) {
		rpio_msgf(msg, msglen, "empty path");
		return -EINVAL;
	}
	if ((acc != O_RDONLY && acc != O_RDWR) || (oflags & ~(O_ACCMODE | O_CREAT))) {
		rpio_msgf(msg, msglen, "%s: open flags 0%o: only O_RDONLY or O_RDWR, with O_CREAT",
		          path, (unsigned)oflags);
		return -EINVAL;
	}
	d = calloc(1, sizeof(*d));
	if (!d || !(d->path = strdup(path))) {
		free(d);
		rpio_msgf(msg, msglen, "%s: out of memory", path);
		return -ENOMEM;
	}
	d->rdonly = acc == O_RDONLY;
	/* O_NONBLOCK: opening a FIFO or a terminal must not wait for a peer before the probe
	 * below refuses it. It is cleared again once the descriptor is known to be a file or
	 * a block device (io_uring would return EAGAIN for it instead of waiting). */
	extra |= O_NONBLOCK | O_NOCTTY;
	d->fd = open(path, acc | extra | O_DIRECT | O_CLOEXEC, 0600);
	if (d->fd < 0 && errno == EINVAL) {
		/* The filesystem refuses O_DIRECT (ramfs, some FUSE, tmpfs before 6.6). */
		d->fd = open(path, acc | extra | O_CLOEXEC, 0600);
		if (d->fd >= 0) {
			d->buffered = true;
			rpio_msgf(d->warning, sizeof(d->warning),
			          "%s: the filesystem refuses O_DIRECT; using buffered I/O "
			          "(pages also pass through the kernel's page cache)",
			          path);
		}
	}
	if (d->fd < 0) {
		err = -errno;
		rpio_msgf(msg, msglen, "cannot open %s: %s", path, strerror(errno));
		goto fail;
	}
	err = rpio_dev_probe(d, msg, msglen);
	if (err)
		goto fail;
	int fl = fcntl(d->fd, F_GETFL);

	if (fl < 0 || fcntl(d->fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		err = -errno;
		rpio_msgf(msg, msglen, "%s: cannot clear O_NONBLOCK: %s", path, strerror(errno));
		goto fail;
	}
	pthread_mutex_init(&d->fault_lock, NULL);
	d->id = atomic_fetch_add(&rpio_dev_next_id, 1);
	*out = d;
	return 0;
fail:
	if (d->fd >= 0)
		close(d->fd);
	free(d->path);
	free(d);
	return err;
}

int rpio_fd_rw(int fd, void *buf, size_t len, uint64_t off, bool write)
{
	size_t done = 0;

	while (done < len) {
		char *p = (char *)buf + done;
		ssize_t r = write ? pwrite(fd, p, len - done, (off_t)(off + done))
		                  : pread(fd, p, len - done, (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		done += (size_t)r;
	}
	return 0;
}

int rpio_dev_fdatasync(struct rpio_dev *d)
{
	for (unsigned tries = 0;; tries++) {
		int err = rpio_fault_check(d, IO_OP_FDATASYNC, 0);

		if (!err && fdatasync(d->fd) < 0)
			err = errno;
		if (!err)
			return 0;
		if ((err != EINTR && err != EAGAIN) || tries >= IO_MAX_RETRIES)
			return -err;
	}
}

int rpio_dev_adopt(int fd, const char *name, int oflags, bool owned, struct rpio_dev **out,
                   char *msg, size_t msglen)
{
	const int acc = oflags & O_ACCMODE;
	const int fl = fcntl(fd, F_GETFL);
	struct rpio_dev *d;
	int err;

	*out = NULL;
	if (fl < 0) {
		rpio_msgf(msg, msglen, "descriptor %d: %s", fd, strerror(errno));
		return -EBADF;
	}
	if ((acc != O_RDONLY && acc != O_RDWR) || (oflags & ~O_ACCMODE)) {
		rpio_msgf(msg, msglen, "%s: open flags 0%o: only O_RDONLY or O_RDWR", name,
		          (unsigned)oflags);
		return -EINVAL;
	}
	if (acc == O_RDWR && (fl & O_ACCMODE) != O_RDWR) {
		rpio_msgf(msg, msglen, "%s: descriptor %d is not open for writing", name, fd);
		return -EBADF;
	}
	d = calloc(1, sizeof(*d));
	if (!d || !(d->path = strdup(name))) {
		free(d);
		rpio_msgf(msg, msglen, "%s: out of memory", name);
		return -ENOMEM;
	}
	d->fd = fd;
	d->borrowed = !owned;
	d->rdonly = acc == O_RDONLY;
	d->buffered = !(fl & O_DIRECT);
	if (d->buffered)
		rpio_msgf(d->warning, sizeof(d->warning),
		          "%s: the filesystem refuses O_DIRECT; using buffered I/O (pages also pass "
		          "through the kernel's page cache)",
		          name);
	err = rpio_dev_probe(d, msg, msglen);
	if (err) {
		free(d->path);
		free(d);
		return err;
	}
	pthread_mutex_init(&d->fault_lock, NULL);
	d->id = atomic_fetch_add(&rpio_dev_next_id, 1);
	*out = d;
	return 0;
}

void rpio_dev_close(struct rpio_dev *d)
{
	if (!d)
		return;
	if (!d->borrowed)
		close(d->fd);
	pthread_mutex_destroy(&d->fault_lock);
	free(d->path);
	free(d);
}

void rpio_dev_inject(struct rpio_dev *d, const struct rpio_fault *f)
{
	pthread_mutex_lock(&d->fault_lock);
	if (f) {
		d->fault = *f;
		d->fault_seen = d->fault_fired = 0;
	}
	__atomic_store_n(&d->fault_armed, f != NULL, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&d->fault_lock);
}

uint64_t rpio_dev_injected(struct rpio_dev *d)
{
	uint64_t n;

	pthread_mutex_lock(&d->fault_lock);
	n = d->fault_fired;
	pthread_mutex_unlock(&d->fault_lock);
	return n;
}
