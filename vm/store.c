/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/store.c - stores: where a handle's pages come from. A device store is an io/ device
 * (regular file or block device, O_DIRECT); a custom store is the application's ops.
 */
#include "vm/fileh.h"
#include "vm/service.h"
#include "vm/vm.h"
#include "vm/list.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

static void store_link(struct vm *vm, struct rp_store *st)
{
	pthread_mutex_lock(&vm->objs_lock);
	VM_LIST_PUSH(vm->stores, st);
	pthread_mutex_unlock(&vm->objs_lock);
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
	st->ops = ops;
	st->ctx = ctx;
	st->size = size;
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
	if (st->dev) {
		/* Queues attach devices lazily; each service thread detaches on its own. */
		vm_service_detach(vm, st->dev);
		rpio_dev_close(st->dev);
	}
	if (st->ops && st->ops->close)
		st->ops->close(st->ctx);
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
