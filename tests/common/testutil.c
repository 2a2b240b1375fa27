/* SPDX-License-Identifier: Apache-2.0 */
#include "testutil.h"
#include "compat/kernel.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

const char *tu_dir(void)
{
	const char *d = getenv("RP_TEST_DIR");

	return d && *d ? d : ".";
}

uint64_t tu_rand(uint64_t *s)
{
	/* splitmix64: good enough for test data, cheap, seedable. */
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

void tu_fill(void *buf, size_t len, uint64_t seed, uint64_t pos)
{
	unsigned char *p = buf;

	for (size_t i = 0; i < len;) {
		uint64_t at = pos + i;
		uint64_t st = seed * 0x100000001B3ull + (at >> 3);
		uint64_t w = tu_rand(&st);

		for (unsigned b = at & 7; b < 8 && i < len; b++, i++)
			p[i] = (unsigned char)(w >> (8 * b));
	}
}

void tu_expect_fill(const void *p, size_t len, uint64_t seed, uint64_t pos)
{
	unsigned char *want = malloc(len);

	cr_assert(want);
	tu_fill(want, len, seed, pos);
	cr_assert(memcmp(p, want, len) == 0, "bytes at position %llu differ",
	          (unsigned long long)pos);
	free(want);
}

void *tu_aligned(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, len ? len : 4096))
		return NULL;
	return p;
}

char *tu_scratch_file(const char *name, uint64_t size, uint64_t seed)
{
	static atomic_uint n;
	char *path;
	int fd;

	if (asprintf(&path, "%s/%s-%d-%u.dat", tu_dir(), name, (int)getpid(),
	             atomic_fetch_add(&n, 1)) < 0)
		return NULL;
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		free(path);
		return NULL;
	}
	size_t chunk = 1 << 20;
	unsigned char *buf = malloc(chunk);
	for (uint64_t off = 0; buf && off < size; off += chunk) {
		size_t len = size - off < chunk ? (size_t)(size - off) : chunk;

		tu_fill(buf, len, seed, off);
		if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len) {
			free(buf);
			buf = NULL;
		}
	}
	close(fd);
	if (!buf) {
		unlink(path);
		free(path);
		return NULL;
	}
	free(buf);
	return path;
}

void tu_unlink(char *path)
{
	if (path)
		unlink(path);
	free(path);
}

bool tu_is_root(void)
{
	return geteuid() == 0;
}

int tu_loop_attach(const char *file, unsigned block_size, char *devpath, size_t len)
{
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	int err = -EBUSY;

	if (ctl < 0)
		return -errno;
	for (int tries = 0; tries < 16; tries++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0) {
			err = -errno;
			break;
		}
		snprintf(devpath, len, "/dev/loop%d", n);
		int lfd = open(devpath, O_RDWR | O_CLOEXEC);
		int bfd = open(file, O_RDWR | O_CLOEXEC);
		if (lfd < 0 || bfd < 0) {
			err = -errno;
			if (lfd >= 0)
				close(lfd);
			if (bfd >= 0)
				close(bfd);
			break;
		}
		struct loop_config cfg;
		memset(&cfg, 0, sizeof(cfg));
		cfg.fd = (unsigned)bfd;
		cfg.block_size = block_size;
		cfg.info.lo_flags = LO_FLAGS_DIRECT_IO | LO_FLAGS_AUTOCLEAR;
		int r = ioctl(lfd, LOOP_CONFIGURE, &cfg);
		err = r < 0 ? -errno : 0;
		close(bfd);
		if (r == 0) {
			close(ctl);
			return lfd;
		}
		close(lfd);
		if (err != -EBUSY) /* EBUSY: another process took it first */
			break;
	}
	close(ctl);
	return err;
}

int tu_loop_scratch(const char *name, uint64_t size, uint64_t seed, unsigned block_size,
                    char **path, char *devpath, size_t len)
{
	int lfd;

	if (!tu_is_root())
		cr_skip_test("needs root: attaches a loop device");
	*path = tu_scratch_file(name, size, seed);
	cr_assert_not_null(*path, "scratch file %s in %s", name, tu_dir());
	lfd = tu_loop_attach(*path, block_size, devpath, len);
	if (lfd == -ENOENT || lfd == -ENXIO || lfd == -EACCES) {
		tu_unlink(*path);
		cr_skip_test("no loop devices on this machine (%s)", strerror(-lfd));
	}
	cr_assert_geq(lfd, 0, "attaching a loop device: %s", strerror(-lfd));
	return lfd;
}

bool tu_loop_detach(int loopfd, const char *devpath)
{
	char sys[128];
	const char *name = strrchr(devpath, '/');
	struct stat st;

	close(loopfd);
	snprintf(sys, sizeof(sys), "/sys/block/%s/loop/backing_file", name ? name + 1 : devpath);
	/* Autoclear runs when the last opener closes, possibly from a kernel worker. */
	for (int i = 0; i < 500; i++) {
		if (stat(sys, &st) < 0)
			return true;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return false;
}

int tu_sysctl_swap(const char *path, const char *value, char *old, size_t oldlen)
{
	FILE *f = fopen(path, "r+e");

	if (!f)
		return -errno;
	if (!fgets(old, (int)oldlen, f)) {
		fclose(f);
		return -EIO;
	}
	old[strcspn(old, "\n")] = 0;
	rewind(f);
	int r = fputs(value, f) < 0 ? -EIO : 0;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	return r;
}

/* Values changed by tu_sysctl_set_or_skip, to be put back. */
static struct {
	char path[128], old[64];
} sysctl_saved[4];
static unsigned nsysctl_saved;

void tu_sysctl_set_or_skip(const char *path, const char *value)
{
	char old[64];

	if (!tu_is_root())
		cr_skip_test("needs root: sets %s", path);
	if (access(path, F_OK))
		cr_skip_test("this kernel has no %s", path);
	cr_assert_lt(nsysctl_saved, 4);
	cr_assert_eq(tu_sysctl_swap(path, value, old, sizeof(old)), 0, "setting %s", path);
	snprintf(sysctl_saved[nsysctl_saved].path, sizeof(sysctl_saved[0].path), "%s", path);
	snprintf(sysctl_saved[nsysctl_saved].old, sizeof(sysctl_saved[0].old), "%s", old);
	nsysctl_saved++;
}

void tu_sysctl_restore_all(void)
{
	char scratch[64];

	while (nsysctl_saved) {
		nsysctl_saved--;
		tu_sysctl_swap(sysctl_saved[nsysctl_saved].path, sysctl_saved[nsysctl_saved].old,
		               scratch, sizeof(scratch));
	}
}

/* ---------------------------------------------------------------- huge pages */

#define NR_HUGEPAGES   "/proc/sys/vm/nr_hugepages"
#define FREE_HUGEPAGES "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"

static char huge_saved[64];
static bool huge_changed;

static long huge_read_long(const char *path)
{
	FILE *f = fopen(path, "re");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* Sets vm.nr_hugepages so that `free` pages are free (or 0 for none), remembering the
 * old value for restore(). Skips the test when that is not possible here. */
void tu_huge_reserve(long free_pages)
{
	char want[32];
	long cur_total = huge_read_long(NR_HUGEPAGES), cur_free = huge_read_long(FREE_HUGEPAGES);

	if (!tu_is_root())
		cr_skip_test("needs root: sets vm.nr_hugepages");
	if (cur_total < 0 || cur_free < 0)
		cr_skip_test("this kernel has no 2 MiB huge pages");
	long target = free_pages ? cur_total - cur_free + free_pages : cur_total - cur_free;
	snprintf(want, sizeof(want), "%ld", target);
	cr_assert_eq(tu_sysctl_swap(NR_HUGEPAGES, want, huge_saved, sizeof(huge_saved)), 0);
	huge_changed = true;
	if (huge_read_long(FREE_HUGEPAGES) != free_pages)
		cr_skip_test("could not make exactly %ld huge pages free (memory fragmented?)",
		             free_pages);
}

void tu_huge_restore(void)
{
	char scratch[64];

	if (huge_changed)
		tu_sysctl_swap(NR_HUGEPAGES, huge_saved, scratch, sizeof(scratch));
	huge_changed = false;
}


static sigjmp_buf bus_jmp;
static void *volatile bus_addr;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	if (rp_sigbus_handle(si, uc))
		return; /* a page fault ringpager served: the touch is retried */
	bus_addr = si->si_addr;
	siglongjmp(bus_jmp, 1);
}

bool tu_touch_gets_sigbus(volatile const char *addr)
{
	struct sigaction sa = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO}, old;
	volatile bool got = false;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old);
	bus_addr = NULL;
	if (sigsetjmp(bus_jmp, 1) == 0)
		(void)*addr;
	else
		got = true;
	sigaction(SIGBUS, &old, NULL);
	if (got)
		cr_assert_eq(bus_addr, (void *)addr, "si_addr %p, touched %p", bus_addr, (void *)addr);
	return got;
}

/* ---------------------------------------------------------------- a mapped file */

void tu_map_open(struct tu_map *f, rp_engine *eng, const char *name, uint64_t size,
                 uint64_t seed, int prot)
{
	f->eng = eng;
	f->pages = (size + 4095) / 4096;
	f->seed = seed;
	f->path = tu_scratch_file(name, size, seed);
	cr_assert_eq(rp_store_open(eng, f->path, (prot & PROT_WRITE) ? O_RDWR : O_RDONLY, &f->st),
	             0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(f->st, &f->fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_map(f->fh, 0, size, prot, &f->m), 0, "%s", rp_errmsg());
	f->a = rp_mapping_addr(f->m);
}

void tu_map_close(struct tu_map *f)
{
	cr_assert_eq(rp_unmap(f->m), 0);
	cr_assert_eq(rp_fileh_close(f->fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_store_close(f->st), 0);
	rp_engine_close(f->eng);
	tu_unlink(f->path);
}

void tu_map_read(const struct tu_map *f, uint64_t p)
{
	unsigned char want;

	tu_fill(&want, 1, f->seed, p * 4096 + 17);
	cr_assert_eq((unsigned char)((volatile char *)f->a)[p * 4096 + 17], want, "page %lu",
	             (unsigned long)p);
}

struct rp_stats tu_stats(rp_engine *eng)
{
	struct rp_stats s;

	cr_assert_eq(rp_stats(eng, &s), 0);
	return s;
}

/* ---------------------------------------------------------------- configurations */

void tu_config_init(rp_config *cfg)
{
	const char *mode = getenv("RP_TEST_FAULT_MODE");

	rp_config_init(cfg);
	/* 4 KiB pages whatever the machine has reserved: hugepages=auto would take 2 MiB pages
	 * that another process reserved meanwhile, and refuse the tests' small pools. The tests
	 * of huge pages ask for them. */
	cr_assert_eq(rp_config_set(cfg, "hugepages", "off"), 0, "%s", rp_errmsg());
	if (mode && *mode)
		cr_assert_eq(rp_config_set(cfg, "fault_mode", mode), 0, "%s", rp_errmsg());
}

void tu_config_dirty(rp_config *cfg, const char *mode)
{
	cr_assert_eq(rp_config_set(cfg, "dirty_tracking", mode), 0, "%s", rp_errmsg());
	if (!strcmp(mode, "wp_sync"))
		cfg->fault_mode = RP_FAULT_MODE_UFFD;
}

void tu_done_fn(void *arg, int result)
{
	struct tu_done *d = arg;

	pthread_mutex_lock(&d->lock);
	d->done = true;
	d->result = result;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->lock);
}

int tu_done_wait(struct tu_done *d)
{
	pthread_mutex_lock(&d->lock);
	while (!d->done)
		pthread_cond_wait(&d->cv, &d->lock);
	d->done = false;
	pthread_mutex_unlock(&d->lock);
	return d->result;
}

unsigned tu_present_pages(const char *addr, size_t len)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	unsigned n = 0;

	cr_assert_geq(fd, 0);
	for (size_t o = 0; o < len; o += 4096) {
		uint64_t e = 0;

		cr_assert_eq(pread(fd, &e, 8, (off_t)(((uintptr_t)addr + o) / 4096 * 8)), 8);
		n += (unsigned)(e >> 63);
	}
	close(fd);
	return n;
}

long tu_smaps_kb(const void *addr, const char *field)
{
	char line[512], want[32];
	FILE *f = fopen("/proc/self/smaps", "re");
	const size_t flen = strlen(field);
	bool in = false;
	long kb = -1;

	snprintf(want, sizeof(want), "%lx-", (unsigned long)addr);
	while (f && fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strncmp(line, want, strlen(want)) == 0) {
			in = true;
		} else if (in && strncmp(line, field, flen) == 0 && line[flen] == ':') {
			if (sscanf(line + flen + 1, " %ld kB", &kb) != 1)
				kb = -1;
			break;
		}
	}
	if (f)
		fclose(f);
	return kb;
}
