/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/dbbench.c - the database API against the kernel's calls a database would make
 * instead, back to back in each round (the side that goes first alternates):
 *
 *   append   grow a file by --append bytes through a mapping with room to grow
 *            (rp_fileh_resize in 64 MiB steps, every byte stored), then one writeout
 *            STORE|MARKSTORED|SYNC; against pwrite(2) of the same bytes in 1 MiB calls
 *            and one fdatasync. MB/s, the whole of it timed.
 *   commit   dirty 16 random pages of a resident file (stores through a writable mapping,
 *            or rp_write beside a read-only one), then rp_writeout
 *            STORE|MARKSTORED|SYNC (and ATOMIC|SYNC); against pwrite of the same 16 pages
 *            and fdatasync, and the O_DIRECT ways beside it, and the least a redo log
 *            does (commit_redo), ATOMIC|SYNC's floor. Every way writes the same
 *            pages in each commit, in an order that rotates from commit to commit (a
 *            drift of the disk between phases made ratios of separate runs swing by a
 *            third), each after an untimed fdatasync. The commit's latency, median of --commits.
 *            The commit through a writable mapping runs apart, beside the reference and
 *            the kernel's own way: stores through a MAP_SHARED mapping of a file of the
 *            same size (PATH.msync, made and removed by the job), all of it read first,
 *            then msync(MS_SYNC) of the mapping. For both mappings the stores are not timed,
 *            the writeout and the msync are.
 *   read     cold random 4 KiB rp_read of a --size file (a new engine each round, so
 *            every read loads); against pread(2) O_DIRECT of the same offsets. IOPS.
 *
 * The reference runs are the floors: a commit cannot be faster than the writes and the
 * fdatasync it needs, a cold rp_read than the device read behind it.
 */
#include "bench/benchutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#define PG ((uint64_t)4096)
#define MIB ((uint64_t)1 << 20)

struct opts {
	const char *file;
	uint64_t size, append;
	unsigned rounds, commits, reads;
	bool append_job, commit_job, read_job;
};

/* --only: a comma-separated list of append, commit, read. */
static int parse_only(const char *prog, const char *opt, const char *arg, void *dst)
{
	struct opts *o = dst;
	char *list = strdup(arg), *save = NULL;

	o->append_job = o->commit_job = o->read_job = false;
	for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!strcmp(t, "append"))
			o->append_job = true;
		else if (!strcmp(t, "commit"))
			o->commit_job = true;
		else if (!strcmp(t, "read"))
			o->read_job = true;
		else {
			fprintf(stderr, "%s: --%s %s: expected append, commit or read\n", prog, opt, t);
			free(list);
			return -1;
		}
	}
	free(list);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: dbbench [--file PATH] [--size SIZE] [--append SIZE] [--commits N]\n"
	           "               [--reads N] [--rounds N]\n"
	           "  --file     data file for the commit and read jobs (default rp-bench.dat;\n"
	           "             created with random bytes); the append job uses PATH.append,\n"
	           "             the commit job's kernel mapping PATH.msync (both removed after)\n"
	           "  --size     bytes of it used (default 2G)\n"
	           "  --append   bytes the append job writes (default 1G)\n"
	           "  --commits  commits of 16 pages per round (default 200)\n"
	           "  --reads    cold random reads per round (default 20000)\n"
	           "  --rounds   rounds, alternating which side goes first (default 3)\n"
	           "  --only     some of the jobs: append,commit,read\n"
	           "Engine keys come from RINGPAGER_* variables (ram_size is set by the job).\n");
}

static rp_engine *engine(uint64_t ram)
{
	rp_config cfg;
	rp_engine *eng;
	char v[32];

	rp_config_init(&cfg);
	if (rp_config_load_env(&cfg) < 0) {
		fprintf(stderr, "dbbench: RINGPAGER_*: %s\n", rp_errmsg());
		exit(1);
	}
	snprintf(v, sizeof(v), "%" PRIu64, ram);
	if (rp_config_set(&cfg, "ram_size", v) < 0 || rp_engine_open(&cfg, &eng) < 0) {
		fprintf(stderr, "dbbench: engine: %s\n", rp_errmsg());
		exit(1);
	}
	return eng;
}

__attribute__((noreturn)) static void die(const char *what)
{
	fprintf(stderr, "dbbench: %s: %s (%s)\n", what, rp_errmsg(), strerror(errno));
	exit(1);
}

/* ---------------------------------------------------------------- append */

static double append_rp(const char *path, uint64_t total)
{
	const uint64_t step = 64 * MIB;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	rp_engine *eng = engine(total + 256 * MIB);
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;

	if (fd < 0)
		die(path);
	close(fd);
	if (rp_store_open(eng, path, O_RDWR, &st) || rp_fileh_open(st, &fh) ||
	    rp_map(fh, 0, total, PROT_READ | PROT_WRITE, &m))
		die("append: open");
	char *a = rp_mapping_addr(m);
	const double t0 = bu_now();

	for (uint64_t off = 0; off < total; off += step) {
		const uint64_t n = total - off < step ? total - off : step;

		if (rp_fileh_resize(fh, off + n))
			die("append: resize");
		for (uint64_t p = 0; p < n; p += PG)
			memset(a + off + p, (int)(p >> 12), PG);
	}
	if (rp_writeout(fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC))
		die("append: writeout");
	const double s = bu_now() - t0;

	rp_engine_close(eng);
	return (double)total / s / 1e6;
}

/* The kernel's side of the append (direct false): pwrite(2) of 1 MiB at a time, then
 * fdatasync. With direct, the floor of ringpager's side's I/O: the file cut to its new
 * size, then O_DIRECT writes of 4 MiB (the writeout's largest request) from one buffer,
 * then fdatasync; no memory is made. On a filesystem such writes into blocks not yet
 * allocated cost more than a buffered writeback of the same bytes (ext4 converts each
 * unwritten extent). MB/s, the whole of it timed. */
static double append_file(const char *path, uint64_t total, bool direct)
{
	const size_t chunk = direct ? 4 * MIB : MIB;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | (direct ? O_DIRECT : 0), 0600);
	char *buf = aligned_alloc(PG, chunk);

	if (fd < 0 || !buf)
		die(path);
	const double t0 = bu_now();

	if (direct && ftruncate(fd, (off_t)total))
		die("append: ftruncate");
	for (uint64_t off = 0; off < total; off += chunk) {
		const size_t n = total - off < chunk ? (size_t)(total - off) : chunk;

		for (uint64_t p = 0; p < n; p += PG)
			memset(buf + p, (int)((off + p) >> 12), PG);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			die("append: pwrite");
	}
	if (fdatasync(fd))
		die("append: fdatasync");
	const double s = bu_now() - t0;

	close(fd);
	free(buf);
	return (double)total / s / 1e6;
}

/* ---------------------------------------------------------------- commit */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median of n values (bu_median takes at most BU_MAX_ROUNDS), freeing them. */
static double median_free(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	double m = v[n / 2];

	free(v);
	return m;
}

/* The commit's ways, each timed on the same 16 pages of every commit, in an order that
 * rotates from commit to commit (a noisy disk disturbs every way alike, and none always
 * writes first): the kernel's, the floor of a writeout's SYNC, then ringpager's. */
enum {
	CW_PWRITE,     /* buffered pwrite x16 + fdatasync (the reference) */
	CW_DIRECT,     /* O_DIRECT pwrite x16, one after the other, + fdatasync */
	CW_DSYNC,      /* O_DIRECT pwritev2 x16 with RWF_DSYNC, no fdatasync */
	CW_URING,      /* O_DIRECT writes x16 at depth 16 through io_uring + fdatasync */
	CW_REDO,       /* the floor of ATOMIC|SYNC: a redo log by hand (below) */
	CW_RP_STORES,  /* stores through a writable mapping + writeout SYNC */
	CW_RP_WRITE,   /* rp_write x16 (a read-only mapping: nothing to collect) + SYNC */
	CW_RP_ATOMIC,  /* rp_write x16 + writeout ATOMIC|SYNC */
	CW_MSYNC,      /* stores through the kernel's MAP_SHARED mapping + msync(MS_SYNC) */
	CW_N
};

struct commit_rp {
	rp_engine *eng;
	rp_fileh *fh;
	volatile char *a;
};

/* An engine with the whole range resident (pinned, then unpinned), mapped writable for
 * stores, read-only otherwise. The writable mapping's pages are then read once, as the
 * kernel's mapping's are: a database reads the pages it maps, and what a commit's page
 * table changes cost depends on whether the CPU has used the entries (docs/benchmarks.md,
 * "Protecting written pages"). */
static void commit_rp_open(struct commit_rp *c, const char *path, uint64_t size, bool stores)
{
	rp_store *st;
	rp_mapping *m;

	c->eng = engine(size + 64 * MIB);
	if (rp_store_open(c->eng, path, O_RDWR, &st) || rp_fileh_open(st, &c->fh) ||
	    rp_map(c->fh, 0, size, stores ? PROT_READ | PROT_WRITE : PROT_READ, &m) ||
	    rp_pin(m, 0, size) || rp_unpin(m, 0, size))
		die("commit: open");
	c->a = rp_mapping_addr(m);
	for (uint64_t o = 0; stores && o < size; o += PG)
		(void)c->a[o];
}

/* The 16 pages at off, O_DIRECT at depth 16 through io_uring, page k from buf + k *
 * stride (stride 0: the same page each time); returns when all 16 completed. */
static void uring_write16(struct io_uring *ring, int dfd, const char *buf, uint64_t stride,
                          const uint64_t off[16])
{
	for (int k = 0; k < 16; k++)
		io_uring_prep_write(io_uring_get_sqe(ring), dfd, buf + k * stride, PG, off[k]);
	if (io_uring_submit_and_wait(ring, 16) != 16)
		die("commit: io_uring submit");
	for (int k = 0; k < 16; k++) {
		struct io_uring_cqe *cqe;

		if (io_uring_wait_cqe(ring, &cqe) || cqe->res != (int)PG)
			die("commit: io_uring write");
		io_uring_cqe_seen(ring, cqe);
	}
}

/* The least a redo-logged commit does (vm/atomic.c): the 16 pages and a block of index
 * in one O_DIRECT write to a log file + fdatasync, the 16 pages in place at depth 16 +
 * fdatasync, then one 4 KiB O_DIRECT write that empties the log. */
static void commit_redo(struct io_uring *ring, int dfd, int lfd, char *logbuf,
                        const uint64_t off[16])
{
	if (pwrite(lfd, logbuf, 17 * PG, 0) != (ssize_t)(17 * PG) || fdatasync(lfd))
		die("commit: the redo log's write");
	uring_write16(ring, dfd, logbuf + PG, PG, off);
	if (fdatasync(dfd) || pwrite(lfd, logbuf + 17 * PG, PG, 0) != (ssize_t)PG)
		die("commit: the redo log's end");
}

/* Median commit latency (us) of each way in `ways` (bits 1 << CW_*; out[CW_*]) over
 * `commits` commits of 16 random pages. CW_MSYNC maps kpath, a file of its own: pages
 * of `path` in the page cache, mapped, and dirtied there, made ringpager's O_DIRECT writes
 * to the same file flush and drop them first (its commit 1.6 ms alone, 3.0 beside). */
static void commit_ways(const char *path, const char *kpath, uint64_t size, unsigned commits,
                        uint64_t seed, unsigned ways, double out[CW_N])
{
	struct commit_rp rp[3];
	char lpath[4200];
	int fd = open(path, O_RDWR), dfd = open(path, O_RDWR | O_DIRECT), lfd = -1;
	double *lat[CW_N];
	char *page = NULL, *logbuf = NULL;
	struct io_uring ring;

	snprintf(lpath, sizeof(lpath), "%s.redo", path);
	if (fd < 0 || dfd < 0 || posix_memalign((void **)&page, PG, PG) ||
	    posix_memalign((void **)&logbuf, PG, 18 * PG) || io_uring_queue_init(16, &ring, 0))
		die(path);
	memset(page, 1, PG);
	memset(logbuf, 1, 17 * PG);
	memset(logbuf + 17 * PG, 0, PG);
	if ((ways & (1u << CW_REDO)) &&
	    ((lfd = open(lpath, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0600)) < 0 ||
	     pwrite(lfd, logbuf, 17 * PG, 0) != (ssize_t)(17 * PG) || fdatasync(lfd)))
		die(lpath);
	for (int w = 0; w < CW_N; w++)
		if (!(lat[w] = malloc(commits * sizeof(double))))
			die("commit: out of memory");
	for (int k = 0; k < 3; k++)
		if (ways & (1u << (CW_RP_STORES + k)))
			commit_rp_open(&rp[k], path, size, k == 0);
	volatile char *kmap = NULL;
	int kfd = -1;

	if (ways & (1u << CW_MSYNC)) { /* the kernel's mapping, all of it in the page cache */
		void *a = MAP_FAILED;

		if ((kfd = open(kpath, O_RDWR)) < 0 ||
		    (a = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, kfd, 0)) == MAP_FAILED ||
		    madvise(a, size, MADV_SEQUENTIAL))
			die(kpath);
		kmap = a;
		for (uint64_t o = 0; o < size; o += PG)
			(void)kmap[o];
		if (madvise(a, size, MADV_NORMAL))
			die(kpath);
	}
	for (unsigned c = 0; c < commits; c++) {
		uint64_t off[16];

		for (int k = 0; k < 16; k++)
			off[k] = (bu_rand(&seed) % (size / PG)) * PG;
		for (int i = 0; i < CW_N; i++) {
			const int w = (int)((c + (unsigned)i) % CW_N);

			if (!(ways & (1u << w)))
				continue;
			const char b = (char)c;

			/* Each way starts from a flushed device: the write a way leaves for the next
			 * flush (ATOMIC's and the hand-made log's emptying) would otherwise be paid
			 * by the way after it, always the same one in this cyclic order. */
			if (fdatasync(fd))
				die("commit: fdatasync");
			double t0 = bu_now();

			if (w == CW_REDO) {
				commit_redo(&ring, dfd, lfd, logbuf, off);
			} else if (w == CW_URING) {
				uring_write16(&ring, dfd, page, 0, off);
			} else if (w <= CW_DSYNC) {
				for (int k = 0; k < 16; k++) {
					struct iovec iov = {page, PG};

					if (pwritev2(w == CW_PWRITE ? fd : dfd, &iov, 1, (off_t)off[k],
					             w == CW_DSYNC ? RWF_DSYNC : 0) != (ssize_t)PG)
						die("commit: pwrite");
				}
			} else if (w == CW_MSYNC) {
				for (int k = 0; k < 16; k++)
					kmap[off[k] + 8] = b;
				t0 = bu_now(); /* the commit is the msync, as for the writeout */
				if (msync((void *)kmap, size, MS_SYNC))
					die("commit: msync");
			} else {
				struct commit_rp *r = &rp[w - CW_RP_STORES];

				for (int k = 0; k < 16; k++)
					if (w == CW_RP_STORES)
						r->a[off[k] + 8] = b;
					else if (rp_write(r->fh, off[k] + 8, &b, 1) != 1)
						die("commit: rp_write");
				t0 = bu_now(); /* the commit is the writeout */
				if (rp_writeout(r->fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED |
				                           RP_WRITEOUT_SYNC |
				                           (w == CW_RP_ATOMIC ? RP_WRITEOUT_ATOMIC : 0)))
					die("commit: writeout");
			}
			if ((w == CW_PWRITE || w == CW_DIRECT || w == CW_URING) &&
			    fdatasync(w == CW_PWRITE ? fd : dfd))
				die("commit: fdatasync");
			lat[w][c] = (bu_now() - t0) * 1e6;
		}
	}
	for (int k = 0; k < 3; k++)
		if (ways & (1u << (CW_RP_STORES + k)))
			rp_engine_close(rp[k].eng);
	if (kmap) {
		munmap((void *)kmap, size);
		close(kfd);
	}
	for (int w = 0; w < CW_N; w++)
		if (ways & (1u << w))
			out[w] = median_free(lat[w], commits);
		else
			free(lat[w]);
	io_uring_queue_exit(&ring);
	close(fd);
	close(dfd);
	if (lfd >= 0) {
		close(lfd);
		unlink(lpath);
	}
	free(page);
	free(logbuf);
}

/* ---------------------------------------------------------------- read */

static double read_rp(const char *path, uint64_t size, unsigned reads, uint64_t seed)
{
	rp_engine *eng = engine(size + 64 * MIB);
	rp_store *st;
	rp_fileh *fh;
	char buf[PG];

	if (rp_store_open(eng, path, O_RDONLY, &st) || rp_fileh_open(st, &fh))
		die("read: open");
	const double t0 = bu_now();

	for (unsigned i = 0; i < reads; i++)
		if (rp_read(fh, (bu_rand(&seed) % (size / PG)) * PG, buf, PG) != (ssize_t)PG)
			die("read: rp_read");
	const double s = bu_now() - t0;

	rp_engine_close(eng);
	return reads / s;
}

static double read_pread(const char *path, uint64_t size, unsigned reads, uint64_t seed)
{
	int fd = open(path, O_RDONLY | O_DIRECT);
	void *buf;

	if (fd < 0 || posix_memalign(&buf, PG, PG))
		die(path);
	const double t0 = bu_now();

	for (unsigned i = 0; i < reads; i++)
		if (pread(fd, buf, PG, (off_t)((bu_rand(&seed) % (size / PG)) * PG)) != (ssize_t)PG)
			die("read: pread");
	const double s = bu_now() - t0;

	close(fd);
	free(buf);
	return reads / s;
}

int main(int argc, char **argv)
{
	struct opts o = {.file = "rp-bench.dat", .size = 2ull << 30, .append = 1ull << 30,
	                 .rounds = 3, .commits = 200, .reads = 20000, .append_job = true,
	                 .commit_job = true, .read_job = true};
	const struct bu_opt opts[] = {
	    BU_OPT("file", BU_STR, &o.file),          BU_OPT("size", BU_SIZE4K, &o.size),
	    BU_OPT("append", BU_SIZE4K, &o.append),   BU_OPT("commits", BU_COUNT, &o.commits),
	    BU_OPT("reads", BU_COUNT, &o.reads),      BU_OPT("rounds", BU_ROUNDS, &o.rounds),
	    BU_OPT_FN("only", parse_only, &o),
	};
	int parsed = bu_parse_opts("dbbench", argc, argv, opts, sizeof(opts) / sizeof(opts[0]),
	                           usage);

	if (parsed)
		return parsed == 1 ? 0 : 2;
	if (bu_ensure_file("dbbench", o.file, o.size))
		return 1;
	char apath[4096], kpath[4096];

	snprintf(apath, sizeof(apath), "%s.append", o.file);
	snprintf(kpath, sizeof(kpath), "%s.msync", o.file);
	if (o.commit_job) {
		/* On the disk before any commit is timed, then out of the page cache, so that
		 * commit_ways reads it back by faults, as a database would find its file. The
		 * kernel's page cache then holds it in large folios, each of which msync
		 * writes whole for a byte stored: about 2 MiB a store here (docs/benchmarks.md,
		 * "A commit's collection"). */
		int kfd = bu_ensure_file("dbbench", kpath, o.size) ? -1 : open(kpath, O_RDWR);

		if (kfd < 0 || fsync(kfd) || posix_fadvise(kfd, 0, 0, POSIX_FADV_DONTNEED))
			die(kpath);
		close(kfd);
	}
	printf("dbbench: %s, %" PRIu64 " MiB; append %" PRIu64 " MiB; %u commits, %u reads; %u "
	       "rounds (medians, min..max, ratio to the kernel's side)\n",
	       o.file, o.size / MIB, o.append / MIB, o.commits, o.reads, o.rounds);

	double ar[BU_MAX_ROUNDS], ak[BU_MAX_ROUNDS], ad[BU_MAX_ROUNDS], cm[CW_N][BU_MAX_ROUNDS],
	    cm_ref[BU_MAX_ROUNDS],
	    rr[BU_MAX_ROUNDS], rk[BU_MAX_ROUNDS];

	for (unsigned r = 0; r < o.rounds; r++) {
		const uint64_t seed = 0x5eed + r;

		/* Each job's two sides back to back, which first alternating: a side that
		 * followed the other job's same side ran after different work (the read after
		 * ringpager's append measured 0.81x where it measured 0.90x alone). */
		for (int k = 0; k < 2; k++) {
			if ((k == 0) == (r % 2 == 0)) {
				ar[r] = o.append_job ? append_rp(apath, o.append) : 0;
			} else {
				ak[r] = o.append_job ? append_file(apath, o.append, false) : 0;
				ad[r] = o.append_job ? append_file(apath, o.append, true) : 0;
			}
		}
		for (int k = 0; k < 2; k++) {
			if ((k == 0) == (r % 2 == 0))
				rr[r] = o.read_job ? read_rp(o.file, o.size, o.reads, seed) : 0;
			else
				rk[r] = o.read_job ? read_pread(o.file, o.size, o.reads, seed) : 0;
		}
		if (o.commit_job) {
			/* Its ways alternate commit by commit; the commit through a writable mapping
			 * in a run of its own, beside the reference again: its writeout's scan and
			 * write-protection of the whole mapping slowed the other engines' commits
			 * in the same process by half (docs/benchmarks.md, "A commit's writes"). The
			 * kernel's mapping goes with it (the whole file in the page cache). */
			double c[CW_N];
			const unsigned apart = (1u << CW_RP_STORES) | (1u << CW_MSYNC);

			commit_ways(o.file, kpath, o.size, o.commits, seed, ~apart & ((1u << CW_N) - 1),
			            c);
			for (int w = 0; w < CW_N; w++)
				if (!(apart & (1u << w)))
					cm[w][r] = c[w];
			commit_ways(o.file, kpath, o.size, o.commits, seed + 1,
			            (1u << CW_PWRITE) | apart, c);
			cm[CW_RP_STORES][r] = c[CW_RP_STORES];
			cm[CW_MSYNC][r] = c[CW_MSYNC];
			cm_ref[r] = c[CW_PWRITE];
		}
		printf("dbbench: round %u of %u done\n", r + 1, o.rounds);
	}
	unlink(apath);
	unlink(kpath);
	if (o.append_job) {
		printf("\nappend %" PRIu64 " MiB, then durable\n", o.append / MIB);
		bu_row("  pwrite 1 MiB + fdatasync", ak, o.rounds, "MB/s", 0);
		bu_row("  O_DIRECT pwrite 4 MiB, cut to size first, + fdatasync", ad, o.rounds,
		       "MB/s", bu_median(ak, o.rounds));
		bu_row("  ringpager: resize + stores + writeout SYNC", ar, o.rounds, "MB/s",
		       bu_median(ak, o.rounds));
	}
	if (o.commit_job) {
		printf("commit of 16 random pages, the ways alternating commit by commit, median "
		       "latency (lower is better; ratio to the first)\n");
		static const char *const ways[CW_N] = {
		    "  pwrite x16 + fdatasync",
		    "  O_DIRECT pwrite x16 + fdatasync",
		    "  O_DIRECT pwritev2 x16 RWF_DSYNC",
		    "  O_DIRECT io_uring x16 depth 16 + fdatasync",
		    "  a redo log by hand: log + fdatasync, x16 + fdatasync, emptied",
		    "  ringpager: stores in a mapping + writeout SYNC",
		    "  ringpager: rp_write x16 + writeout SYNC",
		    "  ringpager: rp_write x16 + writeout ATOMIC|SYNC",
		    "  kernel mmap: stores + msync(MS_SYNC) of the mapping",
		};
		for (int w = 0; w < CW_N; w++)
			if (w != CW_RP_STORES && w != CW_MSYNC)
				bu_row(ways[w], cm[w], o.rounds, "us",
				       w ? bu_median(cm[CW_PWRITE], o.rounds) : 0);
		bu_row("  ringpager ATOMIC|SYNC against the redo log by hand", cm[CW_RP_ATOMIC],
		       o.rounds, "us", bu_median(cm[CW_REDO], o.rounds));
		printf("  the commit through a mapping, alternating with the reference in a run of "
		       "its own (the stores not timed)\n");
		bu_row("  pwrite x16 + fdatasync", cm_ref, o.rounds, "us", 0);
		bu_row(ways[CW_MSYNC], cm[CW_MSYNC], o.rounds, "us", bu_median(cm_ref, o.rounds));
		bu_row(ways[CW_RP_STORES], cm[CW_RP_STORES], o.rounds, "us",
		       bu_median(cm_ref, o.rounds));
		bu_row("  ringpager's stores + writeout against msync", cm[CW_RP_STORES], o.rounds,
		       "us", bu_median(cm[CW_MSYNC], o.rounds));
	}
	if (o.read_job) {
		printf("cold random 4 KiB reads\n");
		bu_row("  pread O_DIRECT", rk, o.rounds, "IOPS", 0);
		bu_row("  rp_read", rr, o.rounds, "IOPS", bu_median(rk, o.rounds));
	}
	return 0;
}
