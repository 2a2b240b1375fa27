/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/store.c - stores: where a handle's pages come from. A device store is an io/ device
 * (regular file or block device, O_DIRECT); a custom store is the application's ops.
 */
#include "vm/fileh.h"
#include "vm/service.h"
#include "vm/vm.h"
#include "vm/list.h"
#include "vm/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>

static void store_link(struct vm *vm, struct rp_store *st)
{
	pthread_mutex_lock(&vm->objs_lock);
	VM_LIST_PUSH(vm->stores, st);
	pthread_mutex_unlock(&vm->objs_lock);
}

/* The store's redo log (vm/atomic.c): its path, and a log left by a crash applied now.
 * 0, or -errno with the message set (fn: ...). */
static int store_log(struct rp_store *st, const char *path, const char *fn)
{
	struct vm *vm = st->vm;
	char lpath[VM_PATH_MAX + 64], msg[256];
	struct stat sb;

	st->log_fd = -1;
	if (vm_log_path(vm->log_dir, path, st->dev->fd, lpath, sizeof(lpath)) < 0)
		return 0; /* no log can be kept: an atomic writeout says so */
	if (!(st->log_path = strdup(lpath)))
		return vm_errf(-ENOMEM, "out of memory");
	if (stat(lpath, &sb) < 0 || sb.st_size == 0)
		return 0; /* no log, or an empty one */
	int fd = open(lpath, (st->dev->rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);

	if (fd < 0)
		return vm_errf(-errno, "%s: %s: %s", fn, lpath, strerror(errno));
	if (st->dev->rdonly) {
		const int pending = vm_log_pending(fd);

		close(fd);
		if (pending)
			return vm_errf(pending < 0 ? pending : -EROFS,
			               "%s: %s: a redo log (%s) must be applied first: open the store "
			               "O_RDWR once",
			               fn, path, lpath);
		return 0;
	}
	int r = vm_log_recover(fd, st->dev->fd, msg, sizeof(msg));

	close(fd);
	if (r < 0)
		return vm_errf(r, "%s: %s: %s", fn, lpath, msg);
	if (fstat(st->dev->fd, &sb) == 0 && S_ISREG(sb.st_mode))
		st->dev->size = (uint64_t)sb.st_size; /* the size the log gave it */
	return 0;
}

/* A store that failed to open after its device did: the device (whose descriptor stays
 * open when borrowed) and the store go. */
static void store_discard(struct rp_store *st)
{
	rpio_dev_close(st->dev);
	free(st->log_path);
	free(st);
}

int vm_store_open(struct vm *vm, const char *path, int flags, struct rp_store **out)
{
	struct rp_store *st = calloc(1, sizeof(*st));
	char msg[IO_MSG_LEN];
	int err;

	if (!st)
		return vm_errf(-ENOMEM, "out of memory");
	err = rpio_dev_open(path, flags, &st->dev, msg, sizeof(msg));
	if (err) {
		free(st);
		return vm_errf(err, "rp_store_open: %s", msg);
	}
	st->vm = vm;
	if ((err = store_log(st, path, "rp_store_open")) < 0) {
		store_discard(st);
		return err;
	}
	st->size = st->dev->size;
	store_link(vm, st);
	*out = st;
	return 0;
}

int vm_store_create(struct vm *vm, const rp_store_ops *ops, void *ctx, uint64_t size,
                    struct rp_store **out)
{
	struct rp_store *st = calloc(1, sizeof(*st));

	if (!st)
		return vm_errf(-ENOMEM, "out of memory");
	st->vm = vm;
	st->log_fd = -1;
	st->ops = ops;
	st->ctx = ctx;
	st->size = size;
	store_link(vm, st);
	*out = st;
	return 0;
}

/* ---------------------------------------------------------------- the caller's descriptor
 *
 * rp_store_open_fd reads and writes through a descriptor of its own, reopened from the
 * caller's (/proc/self/fd/N, with O_DIRECT), unless the caller's has O_DIRECT already:
 * then that one, never closed. A descriptor of its own cannot simply be closed with the
 * store: closing any descriptor of a file drops every POSIX lock the process holds on
 * the file (fcntl(2)), and a database holds its locks on its own descriptor. So it is
 * kept open (vm->kept), reused by the next rp_store_open_fd of the same file, and
 * closed by vm_close, as SQLite keeps the descriptors of closed files while locks are
 * held. */

/* A kept descriptor of the file (dev, ino) that allows acc, taken out of the list; or -1. */
static int kept_take(struct vm *vm, dev_t dev, ino_t ino, int acc)
{
	int fd = -1;

	pthread_mutex_lock(&vm->objs_lock);
	for (size_t i = 0; i < vm->nkept; i++) {
		struct vm_kept_fd *k = &vm->kept[i];

		if (k->dev == dev && k->ino == ino && (k->acc == acc || k->acc == O_RDWR)) {
			fd = k->fd;
			*k = vm->kept[--vm->nkept];
			break;
		}
	}
	pthread_mutex_unlock(&vm->objs_lock);
	return fd;
}

/* Keeps fd open in the list. false when there is no room (then it must stay open where
 * it is, forgotten: never closed). */
static bool kept_put(struct vm *vm, int fd, int acc)
{
	struct stat sb;
	bool ok = false;

	if (fstat(fd, &sb) < 0)
		return false;
	pthread_mutex_lock(&vm->objs_lock);
	if (vm->nkept == vm->ckept) {
		size_t c = vm->ckept ? 2 * vm->ckept : 8;
		struct vm_kept_fd *a = realloc(vm->kept, c * sizeof(*a));

		if (a) {
			vm->kept = a;
			vm->ckept = c;
		}
	}
	if (vm->nkept < vm->ckept) {
		vm->kept[vm->nkept++] = (struct vm_kept_fd){fd, acc, sb.st_dev, sb.st_ino};
		ok = true;
	}
	pthread_mutex_unlock(&vm->objs_lock);
	return ok;
}

void vm_store_close_kept(struct vm *vm)
{
	for (size_t i = 0; i < vm->nkept; i++)
		close(vm->kept[i].fd);
	free(vm->kept);
	vm->kept = NULL;
	vm->nkept = vm->ckept = 0;
}

int vm_store_open_fd(struct vm *vm, int fd, int flags, struct rp_store **out)
{
	char link[64], name[512], msg[IO_MSG_LEN];
	struct stat sb;
	int use, err;
	bool owned;

	if (fstat(fd, &sb) < 0)
		return vm_errf(-EBADF, "rp_store_open_fd: descriptor %d: %s", fd, strerror(errno));
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, name, sizeof(name) - 1);

	if (n > 0)
		name[n] = 0;
	else
		snprintf(name, sizeof(name), "descriptor %d", fd);
	if (!S_ISREG(sb.st_mode) && !S_ISBLK(sb.st_mode))
		return vm_errf(-EINVAL, "rp_store_open_fd: %s is %s, neither a regular file nor a "
		                        "block device",
		               name, rpio_file_kind(sb.st_mode));
	const int fl = fcntl(fd, F_GETFL);

	/* The reopened descriptor never gets more than the caller's has. */
	if (fl < 0 || (flags == O_RDWR && (fl & O_ACCMODE) != O_RDWR))
		return vm_errf(-EBADF, "rp_store_open_fd: %s: descriptor %d is not open for %s", name,
		               fd, fl < 0 ? "I/O" : "writing");
	if (fl & O_DIRECT) {
		use = fd; /* the caller's own, O_DIRECT already */
		owned = false;
	} else if ((use = kept_take(vm, sb.st_dev, sb.st_ino, flags)) >= 0) {
		owned = true;
	} else {
		use = open(link, flags | O_DIRECT | O_CLOEXEC);
		if (use < 0 && errno == EINVAL) /* no O_DIRECT on this filesystem */
			use = open(link, flags | O_CLOEXEC);
		if (use < 0)
			return vm_errf(-errno, "rp_store_open_fd: reopening %s (%s): %s", name, link,
			               strerror(errno));
		owned = true;
	}
	struct rp_store *st = calloc(1, sizeof(*st));

	err = st ? rpio_dev_adopt(use, name, flags, owned, &st->dev, msg, sizeof(msg)) : -ENOMEM;
	if (err) {
		if (owned) /* never closed: the caller's locks on the file would go with it */
			(void)kept_put(vm, use, flags);
		free(st);
		return err == -ENOMEM && !*msg ? vm_errf(err, "out of memory")
		                               : vm_errf(err, "rp_store_open_fd: %s", msg);
	}
	st->vm = vm;
	st->keep_fd = owned;
	if ((err = store_log(st, name, "rp_store_open_fd")) < 0) {
		if (owned) /* never closed: the caller's locks on the file would go with it */
			(void)kept_put(vm, use, flags);
		st->dev->borrowed = true;
		store_discard(st);
		return err;
	}
	st->size = st->dev->size;
	store_link(vm, st);
	*out = st;
	return 0;
}

void vm_store_free(struct rp_store *st)
{
	struct vm *vm = st->vm;

	pthread_mutex_lock(&vm->objs_lock);
	VM_LIST_REMOVE(vm->stores, st);
	pthread_mutex_unlock(&vm->objs_lock);
	if (st->keep_fd) {
		/* Kept (or, with no room in the list, left open all the same): rpio_dev_close
		 * leaves it open. */
		(void)kept_put(vm, st->dev->fd, st->dev->rdonly ? O_RDONLY : O_RDWR);
		st->dev->borrowed = true;
	}
	if (st->dev) {
		/* Queues attach devices lazily; each service thread detaches on its own. */
		vm_service_detach(vm, st->dev);
		rpio_dev_close(st->dev);
	}
	if (st->ops && st->ops->close)
		st->ops->close(st->ctx);
	if (st->log_fd >= 0)
		close(st->log_fd);
	free(st->log_path);
	free(st);
}

int vm_store_close(struct rp_store *st)
{
	struct vm *vm = st->vm;

	pthread_mutex_lock(&vm->objs_lock);
	unsigned n = st->nfileh;

	pthread_mutex_unlock(&vm->objs_lock);
	if (n)
		return vm_errf(-EBUSY, "rp_store_close: %u file handle%s of the store still open", n,
		               n == 1 ? " is" : "s are");
	vm_store_free(st);
	return 0;
}

uint64_t vm_store_size(const struct rp_store *st)
{
	return st->size;
}
