/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine/engine.c - the public API: engines, stores, handles, mappings, pins, stats.
 *
 * Every public function checks its arguments here, names the bad value in the message
 * (rp_errmsg), and only then calls into vm/, which may assume valid arguments.
 */
#include "ringpager.h"
#include "engine/config.h"
#include "vm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* The largest store, handle or mapping end (RAM_MAX_SIZE). */
#define MAX_SIZE (1ull << 50)

struct rp_engine {
	struct vm *vm;
	rp_config cfg;
	rp_pressure_fn hook;
	void *hook_arg;
};

const char *rp_errmsg(void)
{
	return vm_errmsg();
}

int rp_engine_open(const rp_config *cfg, rp_engine **out)
{
	struct rp_engine *eng;
	struct vm_params p;
	int err;

	if (!out)
		return vm_errf(-EINVAL, "rp_engine_open: out is NULL");
	*out = NULL;
	eng = calloc(1, sizeof(*eng));
	if (!eng)
		return vm_errf(-ENOMEM, "out of memory");
	if (cfg)
		eng->cfg = *cfg;
	else
		rp_config_init(&eng->cfg);
	cfg = &eng->cfg;
	err = config_check(cfg, "rp_engine_open");
	if (err) {
		free(eng);
		return err;
	}
	memset(&p, 0, sizeof(p));
	p.pool.ram_size = cfg->ram_size;
	p.pool.hugepages = (enum ram_hugepages)cfg->hugepages;
	p.pool.page_size = cfg->page_size;
	p.queue.backend = (enum rpio_backend)cfg->io_backend;
	p.queue.depth = cfg->queue_depth;
	p.queue.sqpoll = cfg->sqpoll != 0;
	/* One request staged is one request started: the io/ measurements (docs/design.md,
	 * "The I/O layer") show a virtio disk serves loose requests faster than plugged
	 * bursts. */
	p.queue.submit_batch = 1;
	p.fault_threads = cfg->fault_threads;
	p.flags = cfg->internal_flags;
	p.dirty = (enum vm_dirty_mode)cfg->dirty_tracking;
	p.reclaim.high = cfg->reclaim_high;
	p.reclaim.low = cfg->reclaim_low;
	p.reclaim.wait_ms = cfg->reclaim_wait;
	p.reclaim.dirty_limit_bytes = cfg->dirty_limit;
	p.reclaim.dirty_limit_pct = cfg->dirty_limit_pct;
	p.reclaim.policy = (enum vm_dirty_policy)cfg->dirty_policy;
	p.readahead_max = cfg->readahead_max;
	p.readahead_copy = cfg->readahead_copy != 0;
	p.scan_keep = cfg->scan_keep;
	p.scan_keep_pct = cfg->scan_keep_pct;
	p.fault_spin_ns = (uint64_t)cfg->fault_spin_us * 1000;
	p.fault_spin = cfg->fault_spin;
	p.fault_self = cfg->fault_mode == RP_FAULT_MODE_SIGBUS;
	p.log_max = cfg->atomic_log_max;
	snprintf(p.log_dir, sizeof(p.log_dir), "%.*s", (int)sizeof(p.log_dir) - 1,
	         cfg->atomic_log_dir);
	err = vm_open(&eng->vm, &p);
	if (err) {
		free(eng);
		return err;
	}
	*out = eng;
	return 0;
}

void rp_engine_close(rp_engine *eng)
{
	if (!eng)
		return;
	vm_close(eng->vm);
	free(eng);
}

const char *rp_engine_describe(const rp_engine *eng)
{
	return eng ? vm_describe(eng->vm) : "";
}

size_t rp_engine_page_size(const rp_engine *eng)
{
	return eng ? vm_page_size(eng->vm) : 0;
}

int rp_sigbus_handle(const siginfo_t *si, void *ucontext)
{
	return vm_sigbus_serve(si, ucontext) ? 1 : 0;
}

int rp_stats(rp_engine *eng, struct rp_stats *out)
{
	if (!eng || !out)
		return vm_errf(-EINVAL, "rp_stats: engine and out must not be NULL");
	vm_stats(eng->vm, out);
	return 0;
}

long rp_reclaim(rp_engine *eng, long npages)
{
	if (!eng || npages <= 0)
		return !eng ? vm_errf(-EINVAL, "rp_reclaim: engine is NULL")
		            : vm_errf(-EINVAL, "rp_reclaim: npages %ld: expected a positive number",
		                      npages);
	return (long)vm_reclaim_pages(eng->vm, (uint64_t)npages);
}

static void pressure_trampoline(void *arg, int why, uint64_t dirty_bytes)
{
	struct rp_engine *eng = arg;

	/* Registered before the vm hook was set, cleared after it was cleared. */
	if (eng->hook)
		eng->hook(eng->hook_arg, eng, why, dirty_bytes);
}

int rp_set_pressure_hook(rp_engine *eng, rp_pressure_fn fn, void *arg)
{
	if (!eng)
		return vm_errf(-EINVAL, "rp_set_pressure_hook: engine is NULL");
	vm_reclaim_set_hook(eng->vm, NULL, NULL);
	eng->hook = fn;
	eng->hook_arg = arg;
	if (fn)
		vm_reclaim_set_hook(eng->vm, pressure_trampoline, eng);
	return 0;
}

/* ---------------------------------------------------------------- stores */

int rp_store_open(rp_engine *eng, const char *path, int flags, rp_store **out)
{
	if (!eng || !path || !out)
		return vm_errf(-EINVAL, "rp_store_open: engine, path and out must not be NULL");
	if (flags != O_RDONLY && flags != O_RDWR)
		return vm_errf(-EINVAL, "rp_store_open: %s: flags 0x%x: expected O_RDONLY or O_RDWR",
		               path, (unsigned)flags);
	return vm_store_open(eng->vm, path, flags, out);
}

int rp_store_open_fd(rp_engine *eng, int fd, int flags, rp_store **out)
{
	if (!eng || !out)
		return vm_errf(-EINVAL, "rp_store_open_fd: engine and out must not be NULL");
	if (fd < 0)
		return vm_errf(-EBADF, "rp_store_open_fd: descriptor %d", fd);
	if (flags != O_RDONLY && flags != O_RDWR)
		return vm_errf(-EINVAL, "rp_store_open_fd: flags 0x%x: expected O_RDONLY or O_RDWR",
		               (unsigned)flags);
	return vm_store_open_fd(eng->vm, fd, flags, out);
}

int rp_store_create(rp_engine *eng, const rp_store_ops *ops, void *ctx, uint64_t size,
                    rp_store **out)
{
	if (!eng || !ops || !out)
		return vm_errf(-EINVAL, "rp_store_create: engine, ops and out must not be NULL");
	if (!ops->load)
		return vm_errf(-EINVAL, "rp_store_create: ops->load is NULL");
	if (size == 0)
		return vm_errf(-EINVAL, "rp_store_create: size 0: a store holds at least one byte");
	if (size > MAX_SIZE)
		return vm_errf(-EINVAL, "rp_store_create: size %" PRIu64 " is past the 1 PiB limit",
		               size);
	return vm_store_create(eng->vm, ops, ctx, size, out);
}

int rp_store_close(rp_store *st)
{
	if (!st)
		return vm_errf(-EINVAL, "rp_store_close: store is NULL");
	return vm_store_close(st);
}

uint64_t rp_store_size(const rp_store *st)
{
	return st ? vm_store_size(st) : 0;
}

/* ---------------------------------------------------------------- handles */

/* Functions that wait for the fault service cannot run on one of its threads (a done or
 * store callback): the wait could be for the very thread that waits. */
static int no_service_thread(const char *fn)
{
	if (vm_on_service_thread())
		return vm_errf(-EDEADLK, "%s: called on a fault-service thread (from a done or "
		                         "store callback), where it would wait for itself",
		               fn);
	return 0;
}

/* A handle argument of a function that waits for the service. */
static int check_waiting_fh(const char *fn, struct rp_fileh *fh)
{
	if (!fh)
		return vm_errf(-EINVAL, "%s: handle is NULL", fn);
	return no_service_thread(fn);
}

int rp_fileh_open(rp_store *st, rp_fileh **out)
{
	if (!st || !out)
		return vm_errf(-EINVAL, "rp_fileh_open: store and out must not be NULL");
	return vm_fileh_open(st, out);
}

int rp_fileh_close(rp_fileh *fh)
{
	int err = check_waiting_fh("rp_fileh_close", fh);

	return err ? err : vm_fileh_close(fh);
}

/* Checks [off, off + len) against the handle: aligned offset, non-zero length, inside
 * the handle's size (rounded up to a page). Returns 0 and the page range, or -EINVAL. */
static int check_range(const char *fn, struct rp_fileh *fh, uint64_t off, uint64_t len,
                       uint64_t *first, uint64_t *n)
{
	struct vm_extent x;

	vm_fileh_extent(fh, &x);
	const size_t psz = x.psz;
	const uint64_t end = x.end;

	if (len == 0)
		return vm_errf(-EINVAL, "%s: length 0", fn);
	if (!end)
		return vm_errf(-EINVAL, "%s: the handle is empty (0 bytes): no page to reach", fn);
	if (off % psz)
		return vm_errf(-EINVAL, "%s: offset %" PRIu64 " is not a multiple of the page size %zu",
		               fn, off, psz);
	if (off >= end || len > end - off)
		return vm_errf(-EINVAL,
		               "%s: range [%" PRIu64 ", +%" PRIu64 ") passes the end of the handle "
		               "(%" PRIu64 " bytes, %" PRIu64 " with the last page)",
		               fn, off, len, x.size, end);
	*first = off / psz;
	*n = (len + psz - 1) / psz;
	return 0;
}

int rp_invalidate(rp_fileh *fh, uint64_t off, uint64_t len)
{
	rp_range r = {.off = off, .len = len};

	if (len > SIZE_MAX)
		return vm_errf(-EINVAL, "rp_invalidate: length %" PRIu64 " too large", len);
	return rp_invalidatev(fh, &r, 1);
}

int rp_invalidatev(rp_fileh *fh, const rp_range *ranges, size_t n)
{
	uint64_t(*r)[2], one[1][2];
	int err;

	if ((err = check_waiting_fh("rp_invalidate", fh)))
		return err;
	if (!ranges || n == 0)
		return vm_errf(-EINVAL, "rp_invalidatev: no ranges");
	r = n == 1 ? one : malloc(n * sizeof(*r));
	if (!r)
		return vm_errf(-ENOMEM, "out of memory");
	for (size_t i = 0; i < n && !err; i++)
		err = check_range("rp_invalidate", fh, ranges[i].off, ranges[i].len, &r[i][0], &r[i][1]);
	if (!err)
		err = vm_invalidatev(fh, (const uint64_t(*)[2])r, n);
	if (r != one)
		free(r);
	return err;
}

uint64_t rp_fileh_size(rp_fileh *fh)
{
	return fh ? vm_fileh_size(fh) : 0;
}

int rp_fileh_stats(rp_fileh *fh, struct rp_fileh_stats *out)
{
	if (!fh || !out)
		return vm_errf(-EINVAL, "rp_fileh_stats: handle and out must not be NULL");
	vm_fileh_stats(fh, out);
	return 0;
}

int rp_fileh_resize(rp_fileh *fh, uint64_t size)
{
	int err = check_waiting_fh("rp_fileh_resize", fh);

	if (err)
		return err;
	if (size > MAX_SIZE)
		return vm_errf(-EINVAL, "rp_fileh_resize: size %" PRIu64 " is past the 2^50-byte limit",
		               size);
	return vm_fileh_resize(fh, size);
}

int rp_fileh_refresh(rp_fileh *fh)
{
	int err = check_waiting_fh("rp_fileh_refresh", fh);

	return err ? err : vm_fileh_refresh(fh);
}

/* rp_read and rp_write: the arguments, then the copy. */
static ssize_t rw(const char *fn, rp_fileh *fh, uint64_t off, void *buf, size_t len, bool write)
{
	int err = check_waiting_fh(fn, fh);

	if (err)
		return err;
	if (!buf && len)
		return vm_errf(-EINVAL, "%s: buf is NULL", fn);
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (len == 0)
		return 0;
	return (ssize_t)vm_rw(fh, off, buf, len, write);
}

ssize_t rp_read(rp_fileh *fh, uint64_t off, void *buf, size_t len)
{
	return rw("rp_read", fh, off, buf, len, false);
}

ssize_t rp_write(rp_fileh *fh, uint64_t off, const void *buf, size_t len)
{
	return rw("rp_write", fh, off, (void *)(uintptr_t)buf, len, true);
}

/* ---------------------------------------------------------------- dirty pages */

static int check_writeout(const char *fn, struct rp_fileh *fh, int flags)
{
	const int all =
	    RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC | RP_WRITEOUT_ATOMIC;
	if (!fh)
		return vm_errf(-EINVAL, "%s: handle is NULL", fn);
	if (flags & ~all)
		return vm_errf(-EINVAL, "%s: flags 0x%x: unknown bits 0x%x (expected RP_WRITEOUT_STORE, "
		                        "_MARKSTORED, _SYNC, _ATOMIC)",
		               fn, (unsigned)flags, (unsigned)(flags & ~all));
	if (!(flags & (RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED)))
		return vm_errf(-EINVAL, "%s: flags 0x%x: neither RP_WRITEOUT_STORE nor "
		                        "RP_WRITEOUT_MARKSTORED",
		               fn, (unsigned)flags);
	if ((flags & RP_WRITEOUT_SYNC) && !(flags & RP_WRITEOUT_STORE))
		return vm_errf(-EINVAL, "%s: RP_WRITEOUT_SYNC needs RP_WRITEOUT_STORE", fn);
	if ((flags & RP_WRITEOUT_ATOMIC) &&
	    (flags & (RP_WRITEOUT_STORE | RP_WRITEOUT_SYNC)) != (RP_WRITEOUT_STORE | RP_WRITEOUT_SYNC))
		return vm_errf(-EINVAL, "%s: RP_WRITEOUT_ATOMIC needs RP_WRITEOUT_STORE and "
		                        "RP_WRITEOUT_SYNC",
		               fn);
	if (flags & RP_WRITEOUT_STORE) {
		int err = vm_fileh_writable(fh, fn);

		if (err)
			return err;
	}
	return flags & RP_WRITEOUT_ATOMIC ? vm_fileh_atomic_ok(fh, fn) : 0;
}

/* rp_writeoutv's arguments: each handle as check_writeout's, one engine, no handle twice;
 * ORDERED only with SYNC. */
static int check_writeoutv(const char *fn, rp_fileh *const *fhs, size_t n, int flags)
{
	int err;

	if (!fhs || n == 0)
		return vm_errf(-EINVAL, "%s: no handles", fn);
	if ((flags & RP_WRITEOUT_ORDERED) && !(flags & RP_WRITEOUT_SYNC))
		return vm_errf(-EINVAL, "%s: RP_WRITEOUT_ORDERED needs RP_WRITEOUT_SYNC (an order of "
		                        "durability)",
		               fn);
	for (size_t i = 0; i < n; i++) {
		if (flags & RP_WRITEOUT_ATOMIC)
			return vm_errf(-EINVAL, "%s: RP_WRITEOUT_ATOMIC is for one handle's writeout "
			                        "(rp_writeout)",
			               fn);
		if ((err = check_writeout(fn, fhs[i], flags & ~RP_WRITEOUT_ORDERED)))
			return err;
		if (vm_fileh_vm(fhs[i]) != vm_fileh_vm(fhs[0]))
			return vm_errf(-EINVAL, "%s: handle %zu is another engine's", fn, i);
		for (size_t k = 0; k < i; k++)
			if (fhs[k] == fhs[i])
				return vm_errf(-EINVAL, "%s: handles %zu and %zu are the same", fn, k, i);
	}
	return 0;
}

int rp_writeoutv(rp_fileh *const *fhs, size_t n, int flags)
{
	int err;

	if ((err = check_writeoutv("rp_writeoutv", fhs, n, flags)) ||
	    (err = no_service_thread("rp_writeoutv")))
		return err;
	return vm_writeoutv_wait(fhs, n, flags);
}

int rp_writeoutv_async(rp_fileh *const *fhs, size_t n, int flags, rp_done_fn done, void *arg)
{
	int err;

	if ((err = check_writeoutv("rp_writeoutv_async", fhs, n, flags)))
		return err;
	if (!done)
		return vm_errf(-EINVAL, "rp_writeoutv_async: done is NULL");
	return vm_writeoutv(fhs, n, flags, done, arg, NULL, 0);
}

int rp_writeout(rp_fileh *fh, int flags)
{
	int err;

	if ((err = check_writeout("rp_writeout", fh, flags)) ||
	    (err = no_service_thread("rp_writeout")))
		return err;
	return vm_writeout_wait(fh, flags);
}

int rp_writeout_async(rp_fileh *fh, int flags, rp_done_fn done, void *arg)
{
	int err;

	if ((err = check_writeout("rp_writeout_async", fh, flags)))
		return err;
	if (!done)
		return vm_errf(-EINVAL, "rp_writeout_async: done is NULL");
	return vm_writeout(fh, flags, done, arg, NULL, 0);
}

int rp_discard(rp_fileh *fh)
{
	int err = check_waiting_fh("rp_discard", fh);

	return err ? err : vm_discard(fh);
}

int rp_fileh_dirty(rp_fileh *fh, uint64_t *pages)
{
	if (!fh || !pages)
		return vm_errf(-EINVAL, "rp_fileh_dirty: handle and pages must not be NULL");
	return vm_fileh_dirty(fh, pages);
}

/* ---------------------------------------------------------------- mappings */

int rp_map(rp_fileh *fh, uint64_t off, size_t len, int prot, rp_mapping **out)
{
	struct vm_extent x;

	if (!fh || !out)
		return vm_errf(-EINVAL, "rp_map: handle and out must not be NULL");
	if (prot != PROT_READ && prot != (PROT_READ | PROT_WRITE))
		return vm_errf(-EINVAL, "rp_map: prot 0x%x: expected PROT_READ or "
		                        "PROT_READ|PROT_WRITE",
		               (unsigned)prot);
	vm_fileh_extent(fh, &x);
	if (len == 0)
		return vm_errf(-EINVAL, "rp_map: length 0");
	if (off % x.psz)
		return vm_errf(-EINVAL, "rp_map: offset %" PRIu64 " is not a multiple of the page "
		                        "size %zu",
		               off, x.psz);
	/* Past the handle's end is room to grow (SIGBUS there until it has). */
	if (off > MAX_SIZE || len > MAX_SIZE - off)
		return vm_errf(-EINVAL, "rp_map: range [%" PRIu64 ", +%zu) passes the 2^50-byte limit",
		               off, len);
	return vm_map(fh, off, (len + x.psz - 1) / x.psz * x.psz, prot, out);
}

void *rp_mapping_addr(const rp_mapping *m)
{
	struct vm_map_info i;

	if (!m)
		return NULL;
	vm_mapping_info(m, &i);
	return i.addr;
}

size_t rp_mapping_len(const rp_mapping *m)
{
	struct vm_map_info i;

	if (!m)
		return 0;
	vm_mapping_info(m, &i);
	return i.len;
}

int rp_unmap(rp_mapping *m)
{
	if (!m)
		return vm_errf(-EINVAL, "rp_unmap: mapping is NULL");
	return vm_unmap(m);
}

/* A range relative to mapping m, as pages of its handle. */
static int map_range(const char *fn, const rp_mapping *m, size_t off, size_t len,
                     uint64_t *first, uint64_t *n)
{
	struct vm_map_info i;

	vm_mapping_info(m, &i);
	const size_t psz = i.psz;

	if (len == 0)
		return vm_errf(-EINVAL, "%s: length 0", fn);
	if (off % psz || len % psz)
		return vm_errf(-EINVAL,
		               "%s: offset %zu and length %zu must be multiples of the page size %zu",
		               fn, off, len, psz);
	if (off >= i.len || len > i.len - off)
		return vm_errf(-EINVAL, "%s: range [%zu, +%zu) passes the end of the mapping (%zu bytes)",
		               fn, off, len, i.len);
	*first = i.first + off / psz;
	*n = len / psz;
	return 0;
}

int rp_advise(rp_mapping *m, size_t off, size_t len, int advice)
{
	uint64_t r[1][2];
	int err;

	if (!m)
		return vm_errf(-EINVAL, "rp_advise: mapping is NULL");
	if ((err = map_range("rp_advise", m, off, len, &r[0][0], &r[0][1])))
		return err;
	switch (advice) {
	case RP_ADVICE_NORMAL:
	case RP_ADVICE_RANDOM:
	case RP_ADVICE_SEQUENTIAL:
		return vm_map_advise(m, r[0][0], r[0][1], advice);
	case RP_ADVICE_WILLNEED:
		return vm_pin(m, (const uint64_t(*)[2])r, 1, false, false);
	case RP_ADVICE_DONTNEED:
		return vm_dontneed(m, r[0][0], r[0][1]);
	default:
		return vm_errf(-EINVAL, "rp_advise: advice %d: expected RP_ADVICE_NORMAL (0), "
		                        "_RANDOM (1), _SEQUENTIAL (2), _WILLNEED (3) or _DONTNEED (4)",
		               advice);
	}
}

int rp_pin(rp_mapping *m, size_t off, size_t len)
{
	rp_range r = {.off = off, .len = len};

	return rp_pinv(m, &r, 1);
}

int rp_pinv(rp_mapping *m, const rp_range *ranges, size_t n)
{
	uint64_t (*r)[2], one[1][2];
	int err = 0;

	if (!m || (!ranges && n))
		return vm_errf(-EINVAL, "rp_pin: mapping and ranges must not be NULL");
	if (n == 0)
		return vm_errf(-EINVAL, "rp_pinv: no ranges");
	r = n == 1 ? one : malloc(n * sizeof(*r));
	if (!r)
		return vm_errf(-ENOMEM, "out of memory");
	for (size_t i = 0; i < n && !err; i++)
		err = map_range("rp_pin", m, ranges[i].off, ranges[i].len, &r[i][0], &r[i][1]);
	if (!err)
		err = no_service_thread("rp_pin");
	if (!err)
		err = vm_pin(m, (const uint64_t(*)[2])r, n, true, true);
	if (r != one)
		free(r);
	return err;
}

int rp_unpin(rp_mapping *m, size_t off, size_t len)
{
	uint64_t first = 0, n = 0; /* set by the range check when it returns 0 */
	int err;

	if (!m)
		return vm_errf(-EINVAL, "rp_unpin: mapping is NULL");
	if ((err = map_range("rp_unpin", m, off, len, &first, &n)))
		return err;
	return vm_unpin(m, first, n);
}
