/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/vm/test_security.c - what one user of an engine must never see of another's, and
 * what a process must never hand on: bytes of a page another handle held (a short page's
 * tail, through the service threads' reused bounce pages), descriptors without
 * close-on-exec, a mapping's memory in a forked child. (That ringpager's SIGBUS handler
 * passes on what is not its own is tests/vm/test_sigbus.c.) Runs in both fault modes.
 */
#include "ringpager.h"
#include "common/testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096ul

static rp_engine *open_engine(void)
{
	rp_config cfg;
	rp_engine *eng;

	tu_config_init(&cfg);
	cfg.ram_size = 8ul << 20;
	cfg.hugepages = 2;
	cr_assert_eq(rp_engine_open(&cfg, &eng), 0, "%s", rp_errmsg());
	return eng;
}

/* A file whose last page is short: its tail must read as zeros, whatever page of the
 * pool or bounce page held before. Pages of a "secret" file go through the same service
 * threads (4 KiB pages of a file store are read through bounce pages) between each. */
Test(security, a_short_pages_tail_never_shows_bytes_another_handle_held)
{
	rp_engine *eng = open_engine();
	char *secret = tu_scratch_file("sec_secret", 64 * PG, 0), *small;
	rp_store *sst, *st;
	rp_fileh *sfh, *fh;
	rp_mapping *sm, *m;
	int fd;

	/* The secret: 0xA5 everywhere. */
	fd = open(secret, O_WRONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	char *b = malloc(64 * PG);

	memset(b, 0xA5, 64 * PG);
	cr_assert_eq(pwrite(fd, b, 64 * PG, 0), (ssize_t)(64 * PG));
	close(fd);
	/* The small file: 100 bytes of 'z', on tmpfs where there is one: its reads copy the
	 * 100 bytes alone (a disk's O_DIRECT read brings the block's zeros with it), so
	 * what the buffer held before shows unless ringpager clears it. */
	if (access("/dev/shm", W_OK) == 0) {
		cr_assert(asprintf(&small, "/dev/shm/rp-sec-small-%d", getpid()) > 0);
		fd = open(small, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	} else {
		small = tu_scratch_file("sec_small", 100, 0);
		fd = open(small, O_WRONLY | O_CLOEXEC);
	}
	cr_assert_geq(fd, 0);
	memset(b, 'z', 100);
	cr_assert_eq(pwrite(fd, b, 100, 0), 100);
	close(fd);
	free(b);

	cr_assert_eq(rp_store_open(eng, secret, O_RDONLY, &sst), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(sst, &sfh), 0);
	cr_assert_eq(rp_map(sfh, 0, 64 * PG, PROT_READ, &sm), 0);
	cr_assert_eq(rp_advise(sm, 0, 64 * PG, RP_ADVICE_RANDOM), 0);
	cr_assert_eq(rp_store_open(eng, small, O_RDONLY, &st), 0, "%s", rp_errmsg());
	for (int round = 0; round < 32; round++) {
		volatile const unsigned char *s = rp_mapping_addr(sm);

		for (uint64_t p = 0; p < 64; p += 1 + (uint64_t)(round % 3))
			cr_assert_eq(s[p * PG + 5], 0xA5);
		cr_assert_eq(rp_fileh_open(st, &fh), 0);
		cr_assert_eq(rp_map(fh, 0, 100, PROT_READ, &m), 0, "%s", rp_errmsg());
		const unsigned char *a = rp_mapping_addr(m);

		for (size_t i = 0; i < PG; i++)
			cr_assert_eq(a[i], i < 100 ? 'z' : 0, "round %d: byte %zu of the short page is 0x%x",
			             round, i, a[i]);
		cr_assert_eq(rp_unmap(m), 0);
		cr_assert_eq(rp_fileh_close(fh), 0);
		cr_assert_eq(rp_advise(sm, 0, 64 * PG, RP_ADVICE_DONTNEED), 0);
	}
	cr_assert_eq(rp_unmap(sm), 0);
	cr_assert_eq(rp_fileh_close(sfh), 0);
	cr_assert_eq(rp_store_close(sst), 0);
	cr_assert_eq(rp_store_close(st), 0);
	rp_engine_close(eng);
	tu_unlink(secret);
	tu_unlink(small);
}

/* The descriptors open now, as a bit set over [0, 1024). */
static void open_fds(unsigned char *set)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	cr_assert(d);
	memset(set, 0, 1024);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) < 1024)
			set[atoi(e->d_name)] = 1;
	closedir(d);
}

/* Every descriptor the engine opens (userfaultfd, memfds, rings, eventfds, the stores'
 * files, pidfds) is close-on-exec: an exec'd program inherits none of them. */
Test(security, every_descriptor_the_engine_opens_is_close_on_exec)
{
	unsigned char before[1024], after[1024];
	struct tu_map f;
	unsigned n = 0;

	open_fds(before);
	tu_map_open(&f, open_engine(), "sec_fds", 64 * PG, 3, PROT_READ | PROT_WRITE);
	for (uint64_t p = 0; p < 64; p += 5)
		f.a[p * PG] = 1;
	cr_assert_eq(rp_pin(f.m, 0, 8 * PG), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED |
	                                   RP_WRITEOUT_SYNC),
	             0, "%s", rp_errmsg());
	open_fds(after);
	for (int fd = 0; fd < 1024; fd++) {
		if (!after[fd] || before[fd])
			continue;
		int fl = fcntl(fd, F_GETFD);
		char link[64], target[256] = "";

		if (fl < 0 && errno == EBADF)
			continue; /* closed since the listing (the listing's own, for one) */

		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		(void)!readlink(link, target, sizeof(target) - 1);
		cr_assert(fl >= 0 && (fl & FD_CLOEXEC), "descriptor %d (%s) is not close-on-exec", fd,
		          target);
		n++;
	}
	cr_assert_geq(n, 3, "only %u new descriptors: the engine's were not seen", n);
	cr_assert_eq(rp_unpin(f.m, 0, 8 * PG), 0);
	tu_map_close(&f);
}

/* A forked child does not inherit the mapping (MADV_DONTFORK): touching it is SIGSEGV,
 * never the parent's data, resident or not. */
Test(security, a_forked_child_never_sees_a_mapping)
{
	struct tu_map f;

	tu_map_open(&f, open_engine(), "sec_fork", 64 * PG, 4, PROT_READ | PROT_WRITE);
	memset(f.a, 's', PG); /* resident and dirty */
	for (int which = 0; which < 2; which++) {
		pid_t pid = fork();

		cr_assert_neq(pid, -1);
		if (pid == 0) {
			/* The default action (a sanitizer's handler would turn it into an exit). */
			struct sigaction dfl = {.sa_handler = SIG_DFL};

			sigaction(SIGSEGV, &dfl, NULL);
			volatile char c = f.a[which ? 40 * PG : 0]; /* resident, then absent */

			(void)c;
			_exit(0);
		}
		int st = 0;

		cr_assert_eq(waitpid(pid, &st, 0), pid);
		cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV,
		          "the child touching a %s page: status 0x%x, not SIGSEGV",
		          which ? "absent" : "resident", st);
	}
	cr_assert_eq(f.a[0], 's');
	tu_expect_fill(f.a + 40 * PG, PG, 4, 40 * PG);
	tu_map_close(&f);
}
