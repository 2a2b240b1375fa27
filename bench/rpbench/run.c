/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/rpbench/run.c - rpbench's engines, and the threads that drive them.
 *
 * A job's numjobs clones are threads. Each clone walks its region of the file in blocks
 * of bs: sequentially (wrapping when time_based), or at random (a permutation of the
 * blocks, so that without time_based every block is done once, as fio's random map does;
 * the same permutation every run with randrepeat). Every I/O is timed from its issue to
 * its completion; that time is both fio's clat and lat (rpbench has no separate
 * submission phase to time).
 *
 * Engines:
 *   ringpager       one engine per job (so each job starts cold), the file mapped; a read
 *                   copies bs bytes out of the mapping, a write copies bs bytes into it.
 *                   What is measured is the fault path: userfaultfd, the pool, the loads.
 *                   Synchronous, like fio's psync: one access at a time per clone.
 *   ringpager-pin   the same engine, but each batch of iodepth blocks is made resident
 *                   with one rp_pinv (every load in flight at once), then accessed, then
 *                   unpinned: the explicit API at queue depth.
 *   mmap            the kernel's MAP_SHARED mapping of the file, accessed the same way,
 *                   after dropping the file's page cache (fadvise DONTNEED) for a cold
 *                   start.
 *   io_uring, libaio, psync   ringpager's io/ layer: O_DIRECT reads and writes at
 *                   iodepth, one queue per clone.
 * Jobs that write through the ringpager engines run with dirty_policy=writeback unless
 * the job sets it, because a pool filled with dirty pages would otherwise stall the job
 * (the library's default keeps dirty pages until the application writes them out).
 */
#include "bench/rpbench/rpbench.h"
#include "bench/benchutil.h"
#include "io/io.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define SAMPLE_NS 500000000ull /* fio's bw_avg_time */
#define TICK_NS 100000000ull

struct file {
	char *path;
	uint64_t nblocks;
	/* mmap */
	int fd;
	char *map;
	size_t map_len;
	/* io/ */
	struct rpio_dev *dev;
	/* ringpager */
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;
};

struct thread;

struct jobrun {
	const struct rpb_job *job;
	bool writes, reads;
	rp_engine *eng;
	size_t psz;
	struct file *files;
	unsigned nfiles;
	struct thread *th;
	atomic_bool stats0_taken;
	struct rp_stats stats0;
	int error;
	char errmsg[RPB_ERR_LEN];
	char notes[RPB_NOTES_LEN];
	char describe[RPB_DESC_LEN];
	uint64_t t_setup;
};

struct thread {
	struct jobrun *jr;
	unsigned clone;
	struct file *file;
	pthread_t tid;
	bool started;
	struct rpb_dir dir[2];
	struct rpb_lat sync;
	atomic_uint_fast64_t cnt_bytes[2], cnt_ios[2]; /* measured so far, for the sampler */
	uint64_t last_bytes[2], last_ios[2], last_sample;
	atomic_bool measuring, finished;
	uint64_t t_start, t_meas, t_end, deadline;
	struct rusage ru0, ru1;
	int error;
	char errmsg[RPB_ERR_LEN];
	/* the workload */
	uint64_t issued, next_block, cycle, rng;
	unsigned half;
	uint64_t keys[4];
	char *buf;
	sigjmp_buf jb;
	volatile bool in_access;
	void *volatile bad_addr;
};

static atomic_bool stop_all;
static __thread struct thread *cur_thread;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void note(struct jobrun *jr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct jobrun *jr, const char *fmt, ...)
{
	size_t used = strlen(jr->notes);
	va_list ap;

	if (used && used + 2 < sizeof(jr->notes)) {
		strcat(jr->notes, "; ");
		used += 2;
	}
	va_start(ap, fmt);
	vsnprintf(jr->notes + used, sizeof(jr->notes) - used, fmt, ap);
	va_end(ap);
}

static int job_fail(struct jobrun *jr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int job_fail(struct jobrun *jr, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(jr->errmsg, sizeof(jr->errmsg), fmt, ap);
	va_end(ap);
	if (!jr->error)
		jr->error = EINVAL;
	return -1;
}

static int thread_fail(struct thread *t, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int thread_fail(struct thread *t, int err, const char *fmt, ...)
{
	va_list ap;

	if (t->error)
		return -1;
	t->error = err;
	va_start(ap, fmt);
	vsnprintf(t->errmsg, sizeof(t->errmsg), fmt, ap);
	va_end(ap);
	return -1;
}

static bool is_ringpager(enum rpb_engine e)
{
	return e == RPB_ENG_RINGPAGER || e == RPB_ENG_PIN;
}

static bool is_rawio(enum rpb_engine e)
{
	return e == RPB_ENG_URING || e == RPB_ENG_AIO || e == RPB_ENG_PSYNC;
}

/* rw=randread, randwrite, randrw: offsets from the permutation */
static bool is_random(enum rpb_rw rw)
{
	return rw == RPB_RANDREAD || rw == RPB_RANDWRITE || rw == RPB_RANDRW;
}

/* The mapping engines that do one access at a time per clone (iodepth does not apply). */
static bool is_synchronous(enum rpb_engine e)
{
	return e == RPB_ENG_RINGPAGER || e == RPB_ENG_MMAP;
}

/* Blocks a clone has in flight at once: its buffer holds one per slot. */
static unsigned slots(const struct rpb_job *j)
{
	return is_synchronous(j->engine) ? 1 : j->iodepth;
}

/* ---------------------------------------------------------------- offsets */

/* A random permutation of [0, nblocks): a 4-round Feistel network over the smallest
 * even number of bits that covers nblocks, walking the cycle past values out of range
 * (at most 4x the domain, so a few steps). Every block exactly once per cycle. */
static uint64_t mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static void perm_init(struct thread *t, uint64_t seed)
{
	unsigned bits = 1;

	while (bits < 64 && (1ull << bits) < t->file->nblocks)
		bits++;
	t->half = (bits + 1) / 2;
	for (int i = 0; i < 4; i++)
		t->keys[i] = mix(seed + (uint64_t)i * 0x632BE59BD9B4E019ull);
}

static uint64_t perm(const struct thread *t, uint64_t i)
{
	uint64_t mask = (1ull << t->half) - 1, x = i;

	do {
		uint64_t l = x >> t->half, r = x & mask;

		for (int k = 0; k < 4; k++) {
			uint64_t nl = r;

			r = l ^ (mix(r ^ t->keys[k]) & mask);
			l = nl;
		}
		x = (l << t->half) | r;
	} while (x >= t->file->nblocks);
	return x;
}

/* The next I/O of the clone: its offset and direction (0 read, 1 write); false when the
 * clone is done (size done, runtime over, or stopped). */
static bool next_io(struct thread *t, uint64_t now, uint64_t *off, int *dir)
{
	const struct rpb_job *j = t->jr->job;
	uint64_t nb = t->file->nblocks, b;

	if (atomic_load_explicit(&stop_all, memory_order_relaxed) || t->error)
		return false;
	if (t->deadline && now >= t->deadline)
		return false;
	if (!j->time_based && t->issued >= nb * j->bs &&
	    atomic_load_explicit(&t->measuring, memory_order_relaxed))
		return false; /* size is counted from the end of ramp_time */
	if (t->next_block == nb) { /* a cycle over the region is done: start the next */
		t->next_block = 0;
		t->cycle++;
		if (is_random(j->rw))
			perm_init(t, t->keys[0] + t->cycle);
	}
	b = t->next_block++;
	if (is_random(j->rw))
		b = perm(t, b);
	*off = b * j->bs;
	switch (j->rw) {
	case RPB_READ:
	case RPB_RANDREAD:
		*dir = 0;
		break;
	case RPB_WRITE:
	case RPB_RANDWRITE:
		*dir = 1;
		break;
	default:
		*dir = bu_rand(&t->rng) % 100 < j->rwmixread ? 0 : 1;
	}
	t->issued += j->bs;
	return true;
}

/* Counts a finished I/O once the measurement has begun (after ramp_time). */
static void measure_start(struct thread *t, uint64_t now)
{
	struct jobrun *jr = t->jr;

	/* from the planned end of ramp_time (the I/O that crossed it counts), or from now
	 * when the clone ended within it */
	t->t_meas = now < t->t_meas ? now : t->t_meas;
	t->issued = 0;
	getrusage(RUSAGE_THREAD, &t->ru0);
	if (jr->eng && !atomic_exchange(&jr->stats0_taken, true))
		rp_stats(jr->eng, &jr->stats0);
	atomic_store(&t->measuring, true);
}

static void record(struct thread *t, int d, uint64_t lat, uint64_t bytes, uint64_t now)
{
	if (!atomic_load_explicit(&t->measuring, memory_order_relaxed)) {
		if (now < t->t_meas)
			return; /* ramp_time */
		measure_start(t, now);
	}
	rpb_lat_add(&t->dir[d].lat, lat);
	t->dir[d].ios++;
	t->dir[d].bytes += bytes;
	atomic_store_explicit(&t->cnt_bytes[d], t->dir[d].bytes, memory_order_relaxed);
	atomic_store_explicit(&t->cnt_ios[d], t->dir[d].ios, memory_order_relaxed);
}

/* ---------------------------------------------------------------- the engines */

/* A load error in a ringpager mapping is SIGBUS for the touching thread: it ends the
 * clone with an error instead of the process. */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	struct thread *t = cur_thread;

	(void)uc;
	if (t && t->in_access) {
		t->bad_addr = si->si_addr;
		siglongjmp(t->jb, 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static char *map_base(const struct thread *t)
{
	return t->file->m ? rp_mapping_addr(t->file->m) : t->file->map;
}

static void access_block(struct thread *t, char *p, int d, char *buf)
{
	size_t bs = t->jr->job->bs;

	t->in_access = true;
	if (d)
		memcpy(p, buf, bs);
	else
		memcpy(buf, p, bs);
	t->in_access = false;
}

static void run_mapped(struct thread *t)
{
	char *base = map_base(t);
	uint64_t off;
	int d;

	for (uint64_t now = now_ns(); next_io(t, now, &off, &d);) {
		uint64_t t0 = now_ns();

		access_block(t, base + off, d, t->buf);
		now = now_ns();
		record(t, d, now - t0, t->jr->job->bs, now);
	}
}

static void run_pin(struct thread *t)
{
	const struct rpb_job *j = t->jr->job;
	size_t psz = t->jr->psz;
	rp_range *rg = calloc(j->iodepth, sizeof(*rg));
	uint64_t *offs = calloc(j->iodepth, sizeof(*offs));
	int *dirs = calloc(j->iodepth, sizeof(*dirs));
	char *base = map_base(t);

	if (!rg || !offs || !dirs) {
		thread_fail(t, ENOMEM, "out of memory for %u ranges", j->iodepth);
		goto out;
	}
	for (;;) {
		uint64_t now = now_ns(), t0;
		unsigned n = 0;
		int r;

		while (n < j->iodepth && next_io(t, now, &offs[n], &dirs[n])) {
			rg[n].off = offs[n] / psz * psz;
			rg[n].len = (offs[n] + j->bs + psz - 1) / psz * psz - rg[n].off;
			n++;
		}
		if (n == 0)
			break;
		t0 = now_ns();
		if ((r = rp_pinv(t->file->m, rg, n)) < 0) {
			thread_fail(t, -r, "rp_pinv of %u blocks: %s", n, rp_errmsg());
			break;
		}
		for (unsigned i = 0; i < n; i++)
			access_block(t, base + offs[i], dirs[i], t->buf + (size_t)i * j->bs);
		now = now_ns();
		for (unsigned i = 0; i < n; i++)
			record(t, dirs[i], now - t0, j->bs, now);
		for (unsigned i = 0; i < n; i++)
			(void)rp_unpin(t->file->m, rg[i].off, rg[i].len);
	}
out:
	free(rg);
	free(offs);
	free(dirs);
}

static void run_rawio(struct thread *t)
{
	static const enum rpio_backend be[] = {[RPB_ENG_URING] = IO_BACKEND_URING,
	                                       [RPB_ENG_AIO] = IO_BACKEND_AIO,
	                                       [RPB_ENG_PSYNC] = IO_BACKEND_PSYNC};
	const struct rpb_job *j = t->jr->job;
	struct rpio_queue_params p = {.backend = be[j->engine], .depth = j->iodepth,
	                              .single_thread = true, .submit_batch = 1};
	struct rpio_queue *q = NULL;
	struct rpio_cqe *cqe = calloc(j->iodepth, sizeof(*cqe));
	struct slot {
		uint64_t t0;
		int dir;
	} *slots = calloc(j->iodepth, sizeof(*slots));
	unsigned *freel = calloc(j->iodepth, sizeof(*freel)), nfree = j->iodepth, inflight = 0;
	char msg[IO_MSG_LEN];
	int r;

	if (!cqe || !slots || !freel) {
		thread_fail(t, ENOMEM, "out of memory for iodepth %u", j->iodepth);
		goto out;
	}
	for (unsigned i = 0; i < j->iodepth; i++)
		freel[i] = j->iodepth - 1 - i;
	if ((r = rpio_queue_open(&p, &q, msg, sizeof(msg))) < 0) {
		thread_fail(t, -r, "%s: %s", rpb_engine_name(j->engine), msg);
		goto out;
	}
	for (;;) {
		uint64_t now = now_ns(), off;
		int d;

		while (nfree && next_io(t, now, &off, &d)) {
			unsigned s = freel[--nfree];
			struct iovec iov = {t->buf + (size_t)s * j->bs, j->bs};

			slots[s].t0 = now_ns();
			slots[s].dir = d;
			r = d ? rpio_write(q, t->file->dev, off, &iov, 1, 0, &slots[s])
			      : rpio_read(q, t->file->dev, off, &iov, 1, &slots[s]);
			if (r < 0) {
				thread_fail(t, -r, "%s at offset %llu: %s", d ? "write" : "read",
				            (unsigned long long)off, rpio_queue_error(q));
				nfree++;
				break;
			}
			inflight++;
		}
		if (inflight == 0)
			break;
		if ((r = rpio_reap(q, cqe, j->iodepth, 1)) < 0) {
			thread_fail(t, -r, "reaping completions: %s", rpio_queue_error(q));
			break;
		}
		now = now_ns();
		for (int i = 0; i < r; i++) {
			struct slot *s = cqe[i].udata;

			if (cqe[i].res < 0)
				thread_fail(t, (int)-cqe[i].res, "%s: %s", s->dir ? "write" : "read",
				            strerror((int)-cqe[i].res));
			else
				record(t, s->dir, now - s->t0, j->bs, now);
			freel[nfree++] = (unsigned)(s - slots);
			inflight--;
		}
	}
	if (!t->error && j->end_fsync && t->jr->writes) {
		uint64_t t0 = now_ns();

		if ((r = rpio_fdatasync(q, t->file->dev, NULL)) >= 0)
			r = rpio_reap(q, cqe, 1, 1);
		if (r == 1 && cqe[0].res < 0)
			r = (int)cqe[0].res;
		if (r < 0)
			thread_fail(t, -r, "end_fsync: %s", strerror(-r));
		else
			rpb_lat_add(&t->sync, now_ns() - t0);
	}
out:
	if (q) {
		rpio_queue_detach(q, t->file->dev);
		rpio_queue_close(q);
	}
	free(cqe);
	free(slots);
	free(freel);
}

/* end_fsync for the mapping engines: writeout (ringpager) or msync (mmap), timed. */
static void end_sync(struct thread *t)
{
	uint64_t t0 = now_ns();
	int r;

	if (t->file->fh)
		r = rp_writeout(t->file->fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED |
		                                 RP_WRITEOUT_SYNC);
	else
		r = msync(t->file->map, t->file->map_len, MS_SYNC) < 0 ? -errno : 0;
	if (r < 0)
		thread_fail(t, -r, "end_fsync: %s", t->file->fh ? rp_errmsg() : strerror(-r));
	else
		rpb_lat_add(&t->sync, now_ns() - t0);
}

/* cpus_allowed, as fio: the whole set for every clone, or with the split policy one CPU
 * each, round robin over the set. */
static void bind_cpus(struct thread *t)
{
	const struct rpb_job *j = t->jr->job;
	cpu_set_t set = j->cpus;

	if (!j->ncpus)
		return;
	if (j->cpus_split) {
		unsigned k = t->clone % j->ncpus;

		CPU_ZERO(&set);
		for (int c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &j->cpus) && k-- == 0) {
				CPU_SET(c, &set);
				break;
			}
	}
	int e = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);

	if (e)
		thread_fail(t, e, "cpus_allowed: this machine will not run the job there: %s",
		            strerror(e));
}

static void *thread_main(void *arg)
{
	struct thread *t = arg;
	const struct rpb_job *j = t->jr->job;
	uint64_t seed = j->randseed + (uint64_t)t->clone * 0x9E3779B97F4A7C15ull;

	cur_thread = t;
	bind_cpus(t);
	if (!j->randrepeat)
		seed ^= now_ns() ^ ((uint64_t)getpid() << 32);
	t->rng = mix(seed);
	perm_init(t, seed);
	/* what writes write: random bytes, the same in every slot of the buffer */
	for (size_t i = 0; i < j->bs / 8; i++)
		((uint64_t *)t->buf)[i] = bu_rand(&t->rng);
	for (unsigned s = 1; s < slots(j); s++)
		memcpy(t->buf + (size_t)s * j->bs, t->buf, j->bs);
	t->t_start = now_ns();
	t->t_meas = t->t_start + j->ramp_ns;
	t->deadline = j->runtime_ns ? t->t_meas + j->runtime_ns : 0;
	if (j->ramp_ns == 0)
		measure_start(t, t->t_start);
	if (t->error) {
		/* cpus_allowed could not be had: the job fails having done nothing */
	} else if (sigsetjmp(t->jb, 0)) {
		t->in_access = false;
		thread_fail(t, EIO, "SIGBUS at %p (file offset %llu): the page could not be loaded",
		            t->bad_addr, (unsigned long long)((char *)t->bad_addr - map_base(t)));
	} else if (is_rawio(j->engine)) {
		run_rawio(t);
	} else {
		if (j->engine == RPB_ENG_PIN)
			run_pin(t);
		else
			run_mapped(t);
		if (!t->error && j->end_fsync && t->jr->writes)
			end_sync(t);
	}
	if (!atomic_load(&t->measuring))
		measure_start(t, now_ns()); /* ended within ramp_time: nothing measured */
	t->t_end = now_ns();
	getrusage(RUSAGE_THREAD, &t->ru1);
	cur_thread = NULL;
	atomic_store(&t->finished, true);
	return NULL;
}

/* ---------------------------------------------------------------- setting up a job */

static bool key_given(const struct rpb_job *j, const char *key)
{
	for (unsigned i = 0; i < j->engine_keys.n; i++)
		if (strcmp(j->engine_keys.v[i].key, key) == 0)
			return true;
	return false;
}

/* The file's path, made with the job's size of random bytes when it is missing or
 * short (as fio lays out its files); its region in blocks. */
static int file_prepare(struct jobrun *jr, struct file *f, unsigned clone)
{
	const struct rpb_job *j = jr->job;
	char path[4096];
	struct stat st;
	uint64_t size;

	if (j->filename)
		snprintf(path, sizeof(path), "%s%s%s", j->directory ? j->directory : "",
		         j->directory ? "/" : "", j->filename);
	else
		snprintf(path, sizeof(path), "%s%s%s.%u.0", j->directory ? j->directory : "",
		         j->directory ? "/" : "", j->name, clone);
	f->path = strdup(path);
	f->fd = -1;
	if (!f->path)
		return job_fail(jr, "out of memory");
	if (stat(path, &st) < 0 && !j->size)
		return job_fail(jr, "%s: size is not set and the file does not exist (%s)", path,
		                strerror(errno));
	if (j->size && (stat(path, &st) < 0 || (S_ISREG(st.st_mode) && (uint64_t)st.st_size < j->size))) {
		if (bu_ensure_file("rpbench", path, j->size) < 0)
			return job_fail(jr, "%s: cannot lay out %llu bytes", path,
			                (unsigned long long)j->size);
		if (stat(path, &st) < 0)
			return job_fail(jr, "%s: %s", path, strerror(errno));
	}
	if (S_ISBLK(st.st_mode)) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		size = 0;
		if (fd >= 0) {
			off_t end = lseek(fd, 0, SEEK_END);

			size = end > 0 ? (uint64_t)end : 0;
			close(fd);
		}
	} else if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else {
		return job_fail(jr, "%s: not a regular file or a block device", path);
	}
	if (j->size > size)
		return job_fail(jr, "%s: size=%llu is larger than the device (%llu bytes)", path,
		                (unsigned long long)j->size, (unsigned long long)size);
	if (j->size)
		size = j->size;
	f->nblocks = size / j->bs;
	if (f->nblocks == 0)
		return job_fail(jr, "%s: the region (%llu bytes) is smaller than bs=%llu", path,
		                (unsigned long long)size, (unsigned long long)j->bs);
	return 0;
}

static int file_open(struct jobrun *jr, struct file *f)
{
	const struct rpb_job *j = jr->job;
	uint64_t len = f->nblocks * j->bs;
	char msg[IO_MSG_LEN];
	int r;

	if (is_ringpager(j->engine)) {
		/* The region lies within the file (file_prepare). Its last page may pass the
		 * file's end (a file under 2 MiB is one such page with 2 MiB pages): the engine
		 * reads zeros there and writes out only what lies within the file. */
		const uint64_t map_len = (len + jr->psz - 1) / jr->psz * jr->psz;

		if ((r = rp_store_open(jr->eng, f->path, jr->writes ? O_RDWR : O_RDONLY, &f->st)) < 0 ||
		    (r = rp_fileh_open(f->st, &f->fh)) < 0)
			return job_fail(jr, "%s", rp_errmsg());
		if (rp_map(f->fh, 0, map_len, PROT_READ | (jr->writes ? PROT_WRITE : 0), &f->m) < 0)
			return job_fail(jr, "%s", rp_errmsg());
		return 0;
	}
	if (j->engine == RPB_ENG_MMAP) {
		f->fd = open(f->path, (jr->writes ? O_RDWR : O_RDONLY) | O_CLOEXEC);
		if (f->fd < 0)
			return job_fail(jr, "%s: %s", f->path, strerror(errno));
		/* cold: the file's pages out of the page cache (written back first) */
		fdatasync(f->fd);
		posix_fadvise(f->fd, 0, 0, POSIX_FADV_DONTNEED);
		f->map_len = len;
		f->map = mmap(NULL, len, PROT_READ | (jr->writes ? PROT_WRITE : 0), MAP_SHARED, f->fd, 0);
		if (f->map == MAP_FAILED) {
			f->map = NULL;
			return job_fail(jr, "%s: mmap of %llu bytes: %s", f->path,
			                (unsigned long long)len, strerror(errno));
		}
		return 0;
	}
	if ((r = rpio_dev_open(f->path, jr->writes ? O_RDWR : O_RDONLY, &f->dev, msg, sizeof(msg))) < 0)
		return job_fail(jr, "%s", msg);
	if (j->bs % f->dev->off_align)
		return job_fail(jr, "%s: bs=%llu is not a multiple of the device's O_DIRECT "
		                "alignment, %u bytes", f->path, (unsigned long long)j->bs,
		                f->dev->off_align);
	if (f->dev->buffered)
		note(jr, "%s", f->dev->warning);
	return 0;
}

/* The advice fadvise_hint asks for: RPB_HINT_NONE, _NORMAL, _RANDOM or _SEQUENTIAL. */
static int hint_of(const struct rpb_job *j)
{
	int h = j->fadvise_hint;

	if (h == RPB_HINT_UNSET)
		h = j->engine == RPB_ENG_MMAP ? RPB_HINT_PATTERN : RPB_HINT_NONE;
	if (h == RPB_HINT_PATTERN)
		h = is_random(j->rw) ? RPB_HINT_RANDOM : RPB_HINT_SEQUENTIAL;
	return h;
}

/* Gives the mapping the job's advice (madvise, or rp_advise). */
static int file_advise(struct jobrun *jr, struct file *f)
{
	static const char *const names[] = {[RPB_HINT_NORMAL] = "NORMAL",
	                                    [RPB_HINT_RANDOM] = "RANDOM",
	                                    [RPB_HINT_SEQUENTIAL] = "SEQUENTIAL"};
	int h = hint_of(jr->job), r;

	if (h == RPB_HINT_NONE)
		return 0;
	if (f->m) {
		int adv = h == RPB_HINT_RANDOM ? RP_ADVICE_RANDOM
		          : h == RPB_HINT_SEQUENTIAL ? RP_ADVICE_SEQUENTIAL : RP_ADVICE_NORMAL;

		if ((r = rp_advise(f->m, 0, rp_mapping_len(f->m), adv)) < 0)
			return job_fail(jr, "rp_advise %s: %s", names[h], rp_errmsg());
	} else if (f->map) {
		int adv = h == RPB_HINT_RANDOM ? MADV_RANDOM
		          : h == RPB_HINT_SEQUENTIAL ? MADV_SEQUENTIAL : MADV_NORMAL;

		if (madvise(f->map, f->map_len, adv) < 0)
			return job_fail(jr, "madvise %s: %s", names[h], strerror(errno));
	}
	if (f == &jr->files[0] && (f->m || f->map))
		note(jr, "advice %s (fadvise_hint=%s)", names[h],
		     jr->job->fadvise_hint == RPB_HINT_UNSET ? "1, fio's default for mmap"
		     : jr->job->fadvise_hint == RPB_HINT_PATTERN ? "1" : names[h]);
	return 0;
}

static void file_close(struct jobrun *jr, struct file *f)
{
	if (f->m)
		rp_unmap(f->m);
	if (f->fh)
		rp_fileh_close(f->fh);
	if (f->st)
		rp_store_close(f->st);
	if (f->map)
		munmap(f->map, f->map_len);
	if (f->fd >= 0)
		close(f->fd);
	if (f->dev)
		rpio_dev_close(f->dev);
	free(f->path);
	(void)jr;
}

/* What an option given to the job does not do with its engine, said once. */
static void job_notes(struct jobrun *jr)
{
	const struct rpb_job *j = jr->job;

	if (is_synchronous(j->engine) && j->iodepth > 1)
		note(jr, "iodepth=%u: the %s engine is synchronous, one access at a time per "
		     "clone (as fio's psync); use numjobs, or ringpager-pin for a queue depth",
		     j->iodepth, rpb_engine_name(j->engine));
	if (j->direct_given && !j->direct && j->engine != RPB_ENG_MMAP)
		note(jr, "direct=0: the %s engine always reads and writes with O_DIRECT",
		     rpb_engine_name(j->engine));
	if (j->direct_given && j->direct && j->engine == RPB_ENG_MMAP)
		note(jr, "direct=1: the kernel's mmap always goes through the page cache "
		     "(dropped before the run)");
	if (is_rawio(j->engine) && j->fadvise_hint != RPB_HINT_UNSET)
		note(jr, "fadvise_hint: unused by %s (O_DIRECT, no page cache)",
		     rpb_engine_name(j->engine));
	if (!is_ringpager(j->engine))
		for (unsigned i = 0; i < j->engine_keys.n; i++)
			note(jr, "%s=%s: a ringpager engine key, unused by %s", j->engine_keys.v[i].key,
			     j->engine_keys.v[i].val, rpb_engine_name(j->engine));
	if (is_ringpager(j->engine) && jr->writes && !key_given(j, "dirty_policy"))
		note(jr, "dirty_policy=writeback (rpbench's default for jobs that write)");
	if (is_ringpager(j->engine) && jr->writes && !j->end_fsync)
		note(jr, "dirty pages are written out after the measurement, untimed "
		     "(end_fsync=1 times a durable writeout)");
}

static int job_setup(struct jobrun *jr)
{
	const struct rpb_job *j = jr->job;
	size_t buflen;

	jr->t_setup = now_ns();
	jr->writes = j->rw != RPB_READ && j->rw != RPB_RANDREAD;
	jr->reads = j->rw != RPB_WRITE && j->rw != RPB_RANDWRITE;
	if (j->rw == RPB_RANDRW || j->rw == RPB_READWRITE) {
		jr->writes = j->rwmixread < 100;
		jr->reads = j->rwmixread > 0;
	}
	job_notes(jr);
	jr->nfiles = j->filename ? 1 : j->numjobs;
	jr->files = calloc(jr->nfiles, sizeof(*jr->files));
	jr->th = calloc(j->numjobs, sizeof(*jr->th));
	if (!jr->files || !jr->th)
		return job_fail(jr, "out of memory");
	for (unsigned i = 0; i < jr->nfiles; i++)
		jr->files[i].fd = -1;
	if (is_ringpager(j->engine)) {
		rp_config cfg = j->cfg;

		if (jr->writes && !key_given(j, "dirty_policy"))
			rp_config_set(&cfg, "dirty_policy", "writeback");
		if (rp_engine_open(&cfg, &jr->eng) < 0)
			return job_fail(jr, "%s", rp_errmsg());
		jr->psz = rp_engine_page_size(jr->eng);
		snprintf(jr->describe, sizeof(jr->describe), "%s", rp_engine_describe(jr->eng));
	}
	for (unsigned i = 0; i < jr->nfiles; i++)
		if (file_prepare(jr, &jr->files[i], i) < 0 || file_open(jr, &jr->files[i]) < 0 ||
		    file_advise(jr, &jr->files[i]) < 0)
			return -1;
	buflen = (j->bs * slots(j) + 4095) & ~(size_t)4095;
	for (unsigned i = 0; i < j->numjobs; i++) {
		struct thread *t = &jr->th[i];

		t->jr = jr;
		t->clone = i;
		t->file = &jr->files[j->filename ? 0 : i];
		if (posix_memalign((void **)&t->buf, 4096, buflen))
			return job_fail(jr, "out of memory for %zu-byte buffers", buflen);
		memset(t->buf, 0, buflen); /* thread_main fills it; a tail past bs/8 words stays 0 */
	}
	return 0;
}

/* After the clones: the untimed writeout of ringpager jobs that wrote without end_fsync,
 * the engine's counters, and everything closed. */
static void job_teardown(struct jobrun *jr, struct rp_stats *st)
{
	const struct rpb_job *j = jr->job;

	if (jr->eng) {
		for (unsigned i = 0; i < jr->nfiles && jr->writes && !j->end_fsync; i++)
			if (jr->files[i].fh &&
			    rp_writeout(jr->files[i].fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED) < 0 &&
			    !jr->error)
				job_fail(jr, "writeout after the job: %s", rp_errmsg());
		if (!atomic_load(&jr->stats0_taken))
			rp_stats(jr->eng, &jr->stats0);
		rp_stats(jr->eng, st);
#define D(x) st->x -= jr->stats0.x
		D(faults), D(minor_faults), D(pages_loaded), D(bytes_read), D(loads);
		D(load_errors), D(wp_faults), D(writeouts), D(writeout_errors), D(write_requests);
		D(pages_written), D(bytes_written), D(pages_evicted), D(reclaim_passes);
		D(reference_hits), D(hook_calls), D(memory_waits), D(memory_failures), D(writebacks);
		D(readahead_pages), D(readahead_used), D(readahead_wasted), D(readahead_windows);
		D(readahead_copied), D(readahead_dropped);
#undef D
		st->readahead_window_avg =
		    st->readahead_windows ? st->readahead_pages / st->readahead_windows : 0;
	}
	for (unsigned i = 0; i < jr->nfiles && jr->files; i++)
		file_close(jr, &jr->files[i]);
	if (jr->eng)
		rp_engine_close(jr->eng);
	for (unsigned i = 0; i < j->numjobs && jr->th; i++)
		free(jr->th[i].buf);
	free(jr->files);
}

/* ---------------------------------------------------------------- samples, progress */

static void samples_add(struct rpb_samples *s, double bw, double iops)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->bw = realloc(s->bw, s->cap * sizeof(double));
		s->iops = realloc(s->iops, s->cap * sizeof(double));
		if (!s->bw || !s->iops)
			abort();
	}
	s->bw[s->n] = bw;
	s->iops[s->n++] = iops;
}

/* Called by the main thread every tick: a bandwidth and IOPS sample of each running
 * clone every SAMPLE_NS of its measured time. */
static void sample(struct jobrun *jr, uint64_t now)
{
	for (unsigned i = 0; i < jr->job->numjobs; i++) {
		struct thread *t = &jr->th[i];
		bool used[2] = {jr->reads, jr->writes};

		if (!t->started || !atomic_load(&t->measuring) || atomic_load(&t->finished))
			continue;
		if (t->last_sample == 0) {
			t->last_sample = now;
			for (int d = 0; d < 2; d++) {
				t->last_bytes[d] = atomic_load(&t->cnt_bytes[d]);
				t->last_ios[d] = atomic_load(&t->cnt_ios[d]);
			}
			continue;
		}
		if (now - t->last_sample < SAMPLE_NS)
			continue;
		for (int d = 0; d < 2; d++) {
			uint64_t b = atomic_load(&t->cnt_bytes[d]), n = atomic_load(&t->cnt_ios[d]);
			double secs = (double)(now - t->last_sample) / 1e9;

			if (used[d])
				samples_add(&t->dir[d].samples, (double)(b - t->last_bytes[d]) / 1024 / secs,
				            (double)(n - t->last_ios[d]) / secs);
			t->last_bytes[d] = b;
			t->last_ios[d] = n;
		}
		t->last_sample = now;
	}
}

struct progress {
	uint64_t last, bytes[2], ios[2];
	bool shown;
};

static void show_progress(struct progress *pg, struct jobrun *jrs, unsigned njr, uint64_t now,
                          bool final)
{
	uint64_t bytes[2] = {0}, ios[2] = {0}, eta = 0;
	unsigned running = 0;
	double secs = (double)(now - pg->last) / 1e9;
	char bw[2][32], io[2][32];

	if (final) {
		if (pg->shown)
			fprintf(stderr, "\r%-100s\r", "");
		return;
	}
	if (now - pg->last < 1000000000ull)
		return;
	uint64_t left = 0; /* bytes still to do by clones that end when their size is done */

	for (unsigned k = 0; k < njr; k++)
		for (unsigned i = 0; jrs[k].th && i < jrs[k].job->numjobs; i++) {
			struct thread *t = &jrs[k].th[i];

			if (!t->started)
				continue;
			for (int d = 0; d < 2; d++) {
				bytes[d] += atomic_load(&t->cnt_bytes[d]);
				ios[d] += atomic_load(&t->cnt_ios[d]);
			}
			if (!atomic_load(&t->finished)) {
				uint64_t size = t->file->nblocks * jrs[k].job->bs;
				uint64_t done = atomic_load(&t->cnt_bytes[0]) + atomic_load(&t->cnt_bytes[1]);

				running++;
				if (t->deadline > now && t->deadline - now > eta)
					eta = t->deadline - now;
				if (!t->deadline && !jrs[k].job->time_based && size > done)
					left += size - done;
			}
		}
	if (!pg->last) { /* the first call only takes the counts: rates need an interval */
		for (int d = 0; d < 2; d++)
			pg->bytes[d] = bytes[d], pg->ios[d] = ios[d];
		pg->last = now;
		return;
	}
	if (left && bytes[0] + bytes[1] > pg->bytes[0] + pg->bytes[1]) {
		double rate = (double)(bytes[0] + bytes[1] - pg->bytes[0] - pg->bytes[1]) / secs;
		uint64_t e = (uint64_t)((double)left / rate * 1e9);

		eta = e > eta ? e : eta;
	}
	for (int d = 0; d < 2; d++) {
		double b = (double)(bytes[d] - pg->bytes[d]) / secs;
		double n = (double)(ios[d] - pg->ios[d]) / secs;
		static const char *const units[] = {"B", "KiB", "MiB", "GiB"};
		unsigned u = 0;

		while (b >= 1024 && u < 3)
			b /= 1024, u++;
		snprintf(bw[d], sizeof(bw[d]), "%.1f%s/s", b, units[u]);
		snprintf(io[d], sizeof(io[d]), "%.0f", n);
		pg->bytes[d] = bytes[d];
		pg->ios[d] = ios[d];
	}
	fprintf(stderr, "\rJobs: %u: [r=%s,w=%s][r=%s,w=%s IOPS][eta %02llum:%02llus]   ", running,
	        bw[0], bw[1], io[0], io[1], (unsigned long long)(eta / 60000000000ull),
	        (unsigned long long)(eta / 1000000000ull % 60));
	pg->last = now;
	pg->shown = true;
}

/* ---------------------------------------------------------------- results */

static void result_add(struct rpb_result *r, struct thread *t)
{
	r->clones++;
	for (int d = 0; d < 2; d++) {
		struct rpb_samples *to = &r->dir[d].samples, *from = &t->dir[d].samples;

		r->dir[d].ios += t->dir[d].ios;
		r->dir[d].bytes += t->dir[d].bytes;
		rpb_lat_merge(&r->dir[d].lat, &t->dir[d].lat);
		for (unsigned i = 0; i < from->n; i++)
			samples_add(to, from->bw[i], from->iops[i]);
		free(from->bw);
		free(from->iops);
		memset(from, 0, sizeof(*from));
	}
	rpb_lat_merge(&r->sync, &t->sync);
	if (t->t_end - t->t_meas > r->runtime_ns)
		r->runtime_ns = t->t_end - t->t_meas;
	/* cpu seconds for now; made percentages of the runtime by result_finish */
	r->usr_cpu += (double)(t->ru1.ru_utime.tv_sec - t->ru0.ru_utime.tv_sec) +
	              (double)(t->ru1.ru_utime.tv_usec - t->ru0.ru_utime.tv_usec) / 1e6;
	r->sys_cpu += (double)(t->ru1.ru_stime.tv_sec - t->ru0.ru_stime.tv_sec) +
	              (double)(t->ru1.ru_stime.tv_usec - t->ru0.ru_stime.tv_usec) / 1e6;
	r->ctx += (uint64_t)(t->ru1.ru_nvcsw - t->ru0.ru_nvcsw + t->ru1.ru_nivcsw - t->ru0.ru_nivcsw);
	r->majf += (uint64_t)(t->ru1.ru_majflt - t->ru0.ru_majflt);
	r->minf += (uint64_t)(t->ru1.ru_minflt - t->ru0.ru_minflt);
	if (t->error && !r->error) {
		r->error = t->error;
		snprintf(r->errmsg, sizeof(r->errmsg), "clone %u: %.480s", t->clone, t->errmsg);
	}
}

static void result_finish(struct rpb_result *r, struct jobrun *jr, const struct rp_stats *st,
                          uint64_t end)
{
	double secs = (double)r->runtime_ns / 1e9;

	r->job = jr->job;
	r->usr_cpu = secs > 0 ? 100.0 * r->usr_cpu / secs / (r->clones ? r->clones : 1) : 0;
	r->sys_cpu = secs > 0 ? 100.0 * r->sys_cpu / secs / (r->clones ? r->clones : 1) : 0;
	r->elapsed_ns = end - jr->t_setup;
	if (jr->eng) {
		r->have_rp = true;
		r->rp = *st;
	}
	snprintf(r->describe, sizeof(r->describe), "%s", jr->describe);
	snprintf(r->notes, sizeof(r->notes), "%s", jr->notes);
	if (jr->error && !r->error) {
		r->error = jr->error;
		snprintf(r->errmsg, sizeof(r->errmsg), "%s", jr->errmsg);
	}
	if (!r->clones)
		r->clones = jr->job->numjobs;
}

/* ---------------------------------------------------------------- running */

static void on_sigint(int sig)
{
	(void)sig;
	atomic_store(&stop_all, true);
}

static int run_group(const struct rpb_spec *s, unsigned g, struct jobrun *jrs, bool progress,
                     struct rpb_report *out)
{
	struct progress pg = {0};
	int ret = 0;
	bool running;

	for (unsigned k = 0; k < s->njobs; k++) {
		struct jobrun *jr = &jrs[k];

		if (s->jobs[k].groupid != g)
			continue;
		jr->job = &s->jobs[k];
		if (job_setup(jr) < 0)
			continue;
		for (unsigned i = 0; i < jr->job->numjobs; i++) {
			int r = pthread_create(&jr->th[i].tid, NULL, thread_main, &jr->th[i]);

			if (r) {
				job_fail(jr, "cannot start clone %u: %s", i, strerror(r));
				atomic_store(&stop_all, true);
				break;
			}
			jr->th[i].started = true;
		}
	}
	do {
		struct timespec tick = {0, (long)TICK_NS};
		uint64_t now;

		nanosleep(&tick, NULL);
		now = now_ns();
		running = false;
		for (unsigned k = 0; k < s->njobs; k++) {
			if (s->jobs[k].groupid != g || !jrs[k].th)
				continue;
			sample(&jrs[k], now);
			for (unsigned i = 0; i < jrs[k].job->numjobs; i++)
				running |= jrs[k].th[i].started && !atomic_load(&jrs[k].th[i].finished);
		}
		if (progress)
			show_progress(&pg, jrs, s->njobs, now, false);
	} while (running);
	if (progress)
		show_progress(&pg, jrs, s->njobs, now_ns(), true);

	for (unsigned k = 0; k < s->njobs; k++) {
		struct jobrun *jr = &jrs[k];
		const struct rpb_job *j = &s->jobs[k];
		struct rp_stats st = {0};
		unsigned first = out->n, entries = j->group_reporting ? 1 : j->numjobs;
		uint64_t end;

		if (j->groupid != g)
			continue;
		for (unsigned i = 0; jr->th && i < j->numjobs; i++)
			if (jr->th[i].started)
				pthread_join(jr->th[i].tid, NULL);
		job_teardown(jr, &st);
		end = now_ns();
		out->res = realloc(out->res, (out->n + entries) * sizeof(*out->res));
		if (!out->res)
			abort();
		memset(&out->res[first], 0, entries * sizeof(*out->res));
		out->n += entries;
		for (unsigned i = 0; jr->th && i < j->numjobs; i++)
			if (jr->th[i].started)
				result_add(&out->res[first + (j->group_reporting ? 0 : i)], &jr->th[i]);
		for (unsigned e = 0; e < entries; e++) {
			result_finish(&out->res[first + e], jr, &st, end);
			if (out->res[first + e].error)
				ret = -1;
		}
		free(jr->th);
		jr->th = NULL;
	}
	return ret;
}

int rpb_run(const struct rpb_spec *s, struct rpb_report *out, bool progress)
{
	struct sigaction sa = {0}, old_bus, old_int;
	struct jobrun *jrs = calloc(s->njobs, sizeof(*jrs));
	unsigned ngroups = 0;
	struct timespec ts;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	out->spec = s;
	if (!jrs)
		return -1;
	atomic_store(&stop_all, false);
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old_bus);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);

	for (unsigned k = 0; k < s->njobs; k++)
		if (s->jobs[k].groupid + 1 > ngroups)
			ngroups = s->jobs[k].groupid + 1;
	for (unsigned g = 0; g < ngroups; g++)
		if (run_group(s, g, jrs, progress, out) < 0)
			ret = -1;

	sigaction(SIGBUS, &old_bus, NULL);
	sigaction(SIGINT, &old_int, NULL);
	free(jrs);
	clock_gettime(CLOCK_REALTIME, &ts);
	out->timestamp_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	return ret;
}
