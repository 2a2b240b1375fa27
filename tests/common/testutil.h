/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/common/testutil.h - helpers shared by the Criterion tests: scratch files in a
 * directory that supports O_DIRECT, deterministic random bytes, loop devices.
 */
#ifndef RINGPAGER_TESTUTIL_H
#define RINGPAGER_TESTUTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringpager.h"

/* The directory for scratch files: $RP_TEST_DIR (meson sets it to the build directory,
 * which is on a disk filesystem, unlike /tmp on many machines), else ".". */
const char *tu_dir(void);
/* Creates tu_dir()/name-PID-N with `size` bytes from tu_fill(seed); returns a malloc'ed
 * path. The file is removed by tu_unlink. */
char *tu_scratch_file(const char *name, uint64_t size, uint64_t seed);
void tu_unlink(char *path);

/* Deterministic bytes: byte i of stream `seed` is the same whoever asks for it. */
void tu_fill(void *buf, size_t len, uint64_t seed, uint64_t pos);
uint64_t tu_rand(uint64_t *state);
/* Asserts that [p, p + len) holds what tu_fill(seed, pos) writes there; the message
 * names the position. */
void tu_expect_fill(const void *p, size_t len, uint64_t seed, uint64_t pos);

/* A field of /proc/self/smaps ("Rss", "Referenced", ...) for the mapping that starts at
 * `addr`, in KiB; -1 when there is no such mapping or field. */
long tu_smaps_kb(const void *addr, const char *field);

/* Allocates `len` bytes aligned to 4096. */
void *tu_aligned(size_t len);

bool tu_is_root(void);

/* A loop device over `file` with direct I/O and the given logical block size, set to
 * detach itself on last close. Returns the loop device's control descriptor (>= 0, keep
 * it open while using the device) and writes its path, or -errno. */
int tu_loop_attach(const char *file, unsigned block_size, char *devpath, size_t len);
/* For a test: skips it unless it runs as root on a machine with loop devices; otherwise
 * makes a scratch file (tu_scratch_file(name, size, seed), path in *path) and a loop
 * device over it (tu_loop_attach). Returns the loop device's control descriptor. */
int tu_loop_scratch(const char *name, uint64_t size, uint64_t seed, unsigned block_size,
                    char **path, char *devpath, size_t len);
/* Closes the control descriptor and waits (bounded) until the kernel has detached the
 * device. Returns true when it is gone. */
bool tu_loop_detach(int loopfd, const char *devpath);

/* Writes `value` to a /proc/sys file, returning the old value in old (64 bytes).
 * Returns 0 or -errno. */
int tu_sysctl_swap(const char *path, const char *value, char *old, size_t oldlen);

/* As root: sets a /proc/sys file for the rest of the test, skipping the test when not
 * root or where the kernel has no such file; tu_sysctl_restore_all puts back every value
 * set so (call it from the test's .fini too, should the test fail midway). */
void tu_sysctl_set_or_skip(const char *path, const char *value);
void tu_sysctl_restore_all(void);

/* As root: sets vm.nr_hugepages so that exactly `free_pages` 2 MiB pages are free,
 * remembering the old value; skips the test where that is impossible (not root, no huge
 * pages, fragmented memory). tu_huge_restore puts the old value back (call it from the
 * test's .fini). */
void tu_huge_reserve(long free_pages);
void tu_huge_restore(void);

/* A store, handle and mapping over a scratch file, on an engine the test opened. */
struct tu_map {
	rp_engine *eng;
	char *path;
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;
	char *a;
	uint64_t pages; /* the file's size in 4 KiB pages, rounded up */
	uint64_t seed;  /* the file's bytes are tu_fill(seed) */
};
/* Creates a scratch file of `size` bytes (tu_fill(seed)), opens it on eng (O_RDWR when
 * prot has PROT_WRITE) and maps it whole with prot. Asserts each step. */
void tu_map_open(struct tu_map *f, rp_engine *eng, const char *name, uint64_t size,
                 uint64_t seed, int prot);
/* Unmaps, closes the handle, the store and the engine, removes the file. */
void tu_map_close(struct tu_map *f);
/* Reads one byte of page p through the mapping and asserts it is the file's. */
void tu_map_read(const struct tu_map *f, uint64_t p);
/* The engine's counters (asserting rp_stats succeeded). */
struct rp_stats tu_stats(rp_engine *eng);

/* How many 4 KiB pages of [addr, addr + len) this process has mapped (/proc/self/pagemap). */
unsigned tu_present_pages(const char *addr, size_t len);

/* Touches addr; returns true when that raised SIGBUS, after asserting that si_addr was
 * addr exactly. Its handler is an application's that replaces ringpager's for a moment:
 * it lets rp_sigbus_handle serve ringpager's faults first (fault_mode=sigbus). */
bool tu_touch_gets_sigbus(volatile const char *addr);

/* An asynchronous writeout waited for: pass tu_done_fn and the struct to
 * rp_writeout_async, then tu_done_wait returns the result (and readies it for reuse). */
struct tu_done {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool done;
	int result;
};
#define TU_DONE_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0}
void tu_done_fn(void *arg, int result);
int tu_done_wait(struct tu_done *d);

/* rp_config_init with hugepages=off, then fault_mode from RP_TEST_FAULT_MODE when set:
 * meson runs the vm suites once per fault mode (tests/meson.build). */
void tu_config_init(rp_config *cfg);
/* Sets dirty_tracking; wp_sync also sets fault_mode=uffd, the only mode it runs in. */
void tu_config_dirty(rp_config *cfg, const char *mode);
/* Defines a test body once and registers it in suites <prefix>_wp_async and
 * <prefix>_wp_sync, called with the dirty_tracking mode's name (a hang fails after
 * 300 s). */
#define TU_TEST_EACH_WP(prefix, name)                                                   \
	static void name(const char *mode);                                             \
	Test(prefix##_wp_async, name, .timeout = 300) { name("wp_async"); }             \
	Test(prefix##_wp_sync, name, .timeout = 300) { name("wp_sync"); }               \
	static void name(const char *mode)
#endif
