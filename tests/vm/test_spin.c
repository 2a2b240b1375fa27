/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/vm/test_spin.c - the measured choices: poll or sleep for a fault's own read
 * (vm/spin.c): how auto chooses from the latencies it is given, and that an engine's
 * faults, in both fault modes, and a lone rp_read go the way fault_spin says; the same
 * choice among more ways (vm/choice.c), and the service thread writeouts go to.
 */
#include "vm/spin.h"
#include "vm/testing.h"
#include "common/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096ul

/* Of the next n picks, how many poll. */
static unsigned polls(struct vm_spin *s, unsigned n)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++)
		k += vm_spin_pick(s);
	return k;
}

/* Records what each of n picks would measure: slept_ns when it sleeps, polled_ns when
 * it polls. Returns how many polled. */
static unsigned run(struct vm_spin *s, unsigned n, uint64_t slept_ns, uint64_t polled_ns)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++) {
		const bool p = vm_spin_pick(s);

		vm_spin_record(s, p, p ? polled_ns : slept_ns);
		k += p;
	}
	return k;
}

Test(spin, auto_first_tries_both_ways_alike)
{
	struct vm_spin s;

	vm_spin_init(&s, VM_SPIN_AUTO);
	cr_assert_eq(polls(&s, 16), 8);
}

Test(spin, auto_sleeps_where_sleeping_is_faster_and_still_tries_polling)
{
	struct vm_spin s;

	vm_spin_init(&s, VM_SPIN_AUTO);
	(void)run(&s, 16, 100000, 110000);
	/* From then on one read in 16 polls, to notice a change. */
	cr_assert_eq(run(&s, 160, 100000, 110000), 10);
	cr_assert_eq(atomic_load(&s.count[0]) + atomic_load(&s.count[1]), 176);
}

Test(spin, auto_polls_where_polling_is_faster_and_still_tries_sleeping)
{
	struct vm_spin s;

	vm_spin_init(&s, VM_SPIN_AUTO);
	(void)run(&s, 16, 110000, 100000);
	cr_assert_eq(run(&s, 160, 110000, 100000), 150);
}

Test(spin, auto_tries_the_other_way_less_often_when_it_is_far_slower)
{
	struct vm_spin s;

	vm_spin_init(&s, VM_SPIN_AUTO);
	(void)run(&s, 16, 80000, 120000); /* polling 50% slower: one read in 64 */
	cr_assert_eq(run(&s, 256, 80000, 120000), 4);
	vm_spin_init(&s, VM_SPIN_AUTO);
	(void)run(&s, 16, 120000, 80000);
	cr_assert_eq(run(&s, 256, 120000, 80000), 252);
}

Test(spin, auto_follows_a_change_of_the_machine)
{
	struct vm_spin s;

	vm_spin_init(&s, VM_SPIN_AUTO);
	(void)run(&s, 176, 80000, 120000); /* sleeping wins ... */
	(void)run(&s, 400, 120000, 60000); /* ... then polling does */
	cr_assert_geq(polls(&s, 32), 30, "still sleeping after the change");
	vm_spin_init(&s, VM_SPIN_AUTO);
	(void)run(&s, 176, 120000, 60000);
	(void)run(&s, 400, 60000, 120000);
	cr_assert_leq(polls(&s, 32), 2, "still polling after the change");
}

Test(spin, one_stalled_read_does_not_turn_auto)
{
	struct vm_spin s;

	vm_spin_init(&s, VM_SPIN_AUTO);
	(void)run(&s, 64, 100000, 80000); /* polling wins by 20% */
	vm_spin_record(&s, true, 50000000); /* a 50 ms stall of one polled read */
	cr_assert_eq(polls(&s, 32), 30);
}

/* Three ways: each tried in turn, then the fastest, the others probed in turn. */
Test(spin, a_choice_of_three_keeps_the_fastest_and_probes_the_others)
{
	static const uint64_t cost[3] = {300000, 100000, 200000};
	struct vm_choice c;
	unsigned took[3] = {0};

	vm_choice_init(&c, 3);
	for (unsigned i = 0; i < 24; i++) {
		const unsigned w = vm_choice_pick(&c);

		cr_assert_eq(w, i % 3, "turn %u tries way %u", i, w);
		vm_choice_record(&c, w, cost[w]);
	}
	/* every other way more than a quarter slower: one turn in 64 probes */
	for (unsigned i = 0; i < 128; i++) {
		const unsigned w = vm_choice_pick(&c);

		took[w]++;
		vm_choice_record(&c, w, cost[w]);
	}
	cr_assert_eq(took[1], 126);
	cr_assert_eq(took[0], 1, "probed once");
	cr_assert_eq(took[2], 1, "probed once");
	/* way 2 becomes the fastest: its probes notice, slowly while the gap is wide */
	unsigned to2 = 0;

	for (unsigned i = 0; i < 2048 + 256; i++) {
		const unsigned w = vm_choice_pick(&c);

		to2 += i >= 2048 && w == 2;
		vm_choice_record(&c, w, w == 2 ? 50000 : cost[w]);
	}
	cr_assert_geq(to2, 240, "%u of the last 256 to the way that became fastest", to2);
}

/* With bound service threads, every atomic writeout handed to them goes where
 * vm/service.c chooses, other writeouts do not, and each thread's syncs are measured
 * (the first atomic writeouts try each thread in turn). */
Test(spin, atomic_writeouts_go_to_the_thread_whose_syncs_finish_soonest)
{
	rp_config cfg;
	rp_engine *eng;
	struct tu_map f;

	tu_config_init(&cfg);
	cfg.ram_size = 32ul << 20;
	cr_assert_eq(rp_config_set(&cfg, "fault_threads", "auto"), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_engine_open(&cfg, &eng), 0, "%s", rp_errmsg());
	tu_map_open(&f, eng, "spin_wo", 16 * PG, 31, PROT_READ | PROT_WRITE);
	struct vm *vm = vm_test_vm(f.fh);

	if (vm_test_nsvc(vm) < 2 || vm_service_cpu(vm, 0) < 0) {
		tu_map_close(&f);
		cr_skip_test("one service thread, or none bound: no choice to make");
	}
	struct vm_choice *c = vm_test_wo_ways(vm);
	const uint64_t before = atomic_load(&c->turns);

	vm_test_lend(vm, false); /* as where rp_writeout's caller cannot run them itself */

	const int sync = RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC;

	for (unsigned i = 0; i < 8 * vm_test_nsvc(vm); i++) {
		f.a[(i % 16) * PG] = (char)i;
		cr_assert_eq(rp_writeout(f.fh, sync | RP_WRITEOUT_ATOMIC), 0, "%s", rp_errmsg());
		f.a[(i % 16) * PG + 1] = (char)i;
		cr_assert_eq(rp_writeout(f.fh, sync), 0, "%s", rp_errmsg());
	}
	cr_assert_eq(atomic_load(&c->turns) - before, 8 * vm_test_nsvc(vm),
	             "only the atomic writeouts chosen");
	for (unsigned i = 0; i < vm_test_nsvc(vm); i++)
		cr_assert_gt(atomic_load(&c->avg[i]), 0, "thread %u's syncs measured", i);
	char log[4200];

	snprintf(log, sizeof(log), "%s-rplog", f.path);
	tu_map_close(&f);
	unlink(log);
}

/* A synchronous writeout that a service thread runs: its caller polls for its end, or
 * sleeps, as fault_spin says; the data reaches the file either way. */
static void writeouts_wait(const char *spin, bool polls)
{
	rp_config cfg;
	rp_engine *eng;
	struct tu_map f;

	tu_config_init(&cfg);
	cfg.ram_size = 32ul << 20;
	cr_assert_eq(rp_config_set(&cfg, "fault_spin", spin), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_engine_open(&cfg, &eng), 0, "%s", rp_errmsg());
	tu_map_open(&f, eng, "spin_wait", 16 * PG, 41, PROT_READ | PROT_WRITE);
	struct vm_spin *s = vm_test_wo_spin(vm_test_vm(f.fh));

	vm_test_lend(vm_test_vm(f.fh), false); /* rp_writeout's caller runs it itself else */
	const int sync = RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC;
	rp_fileh *one[1] = {f.fh};

	for (unsigned i = 0; i < 8; i++) {
		f.a[i * PG] = (char)(i + 1);
		cr_assert_eq(i % 2 ? rp_writeout(f.fh, sync) : rp_writeoutv(one, 1, sync), 0, "%s",
		             rp_errmsg());
	}
	cr_assert_eq(atomic_load(&s->count[polls]), 8, "%s: 8 waits %s", spin,
	             polls ? "polled" : "slept");
	cr_assert_eq(atomic_load(&s->count[!polls]), 0);
	char b;
	int fd = open(f.path, O_RDONLY);

	cr_assert(fd >= 0);
	for (unsigned i = 0; i < 8; i++) {
		cr_assert_eq(pread(fd, &b, 1, i * PG), 1);
		cr_assert_eq(b, (char)(i + 1), "page %u in the file", i);
	}
	close(fd);
	tu_map_close(&f);
}

Test(spin, a_writeouts_caller_polls_or_sleeps_as_fault_spin_says)
{
	writeouts_wait("always", true);
	writeouts_wait("never", false);
}

Test(spin, always_and_never_do_not_measure_their_way_out)
{
	struct vm_spin a, n;

	vm_spin_init(&a, VM_SPIN_ALWAYS);
	vm_spin_init(&n, VM_SPIN_NEVER);
	cr_assert_eq(run(&a, 100, 1000, 1000000), 100);
	cr_assert_eq(run(&n, 100, 1000000, 1000), 0);
	cr_assert_eq(atomic_load(&a.count[1]), 100);
	cr_assert_eq(atomic_load(&n.count[0]), 100);
	cr_assert_str_eq(vm_spin_name(VM_SPIN_AUTO), "auto");
}

/* An engine's cold faults (RANDOM advice: one read each) in fault_mode `mode` with
 * fault_spin `spin`: every read is counted one way or the other, the bytes are the
 * file's, and rp_engine_describe names the setting. Returns how many were polled. */
static uint64_t faults_polled(const char *mode, const char *spin, uint64_t *slept)
{
	rp_config cfg;
	rp_engine *eng;
	struct tu_map f;

	tu_config_init(&cfg);
	cfg.ram_size = 32ul << 20;
	cr_assert(rp_config_set(&cfg, "fault_mode", mode) == 0 &&
	              rp_config_set(&cfg, "fault_spin", spin) == 0,
	          "%s", rp_errmsg());
	cr_assert_eq(rp_engine_open(&cfg, &eng), 0, "%s", rp_errmsg());
	char want[64];

	snprintf(want, sizeof(want), "fault_spin %s,", spin);
	cr_assert(strstr(rp_engine_describe(eng), want), "%s", rp_engine_describe(eng));
	tu_map_open(&f, eng, "spin", 256 * PG, 23, PROT_READ);
	cr_assert_eq(rp_advise(f.m, 0, 256 * PG, RP_ADVICE_RANDOM), 0);
	for (uint64_t p = 0; p < 256; p += 5)
		tu_map_read(&f, p);
	struct rp_stats st = tu_stats(eng);

	cr_assert_eq(st.fault_reads_slept + st.fault_reads_polled, 52, "%s %s: %lu + %lu", mode,
	             spin, (unsigned long)st.fault_reads_slept,
	             (unsigned long)st.fault_reads_polled);
	*slept = st.fault_reads_slept;
	tu_map_close(&f);
	return st.fault_reads_polled;
}

static void modes(const char *mode)
{
	uint64_t slept;

	cr_assert_eq(faults_polled(mode, "always", &slept), 52);
	cr_assert_eq(faults_polled(mode, "never", &slept), 0);
	/* auto tries both ways whatever it then finds */
	cr_assert(faults_polled(mode, "auto", &slept) >= 2 && slept >= 2);
}

Test(spin, faults_read_the_way_fault_spin_says_uffd)
{
	modes("uffd");
}

Test(spin, faults_read_the_way_fault_spin_says_sigbus)
{
	modes("sigbus");
}

Test(spin, fault_spin_us_0_never_polls)
{
	rp_config cfg;
	rp_engine *eng;

	tu_config_init(&cfg);
	cr_assert_eq(rp_config_set(&cfg, "fault_spin_us", "0"), 0);
	cr_assert_eq(rp_config_set(&cfg, "fault_spin", "always"), 0);
	cr_assert_eq(rp_engine_open(&cfg, &eng), 0, "%s", rp_errmsg());
	cr_assert(strstr(rp_engine_describe(eng), "fault_spin never,"), "%s",
	          rp_engine_describe(eng));
	rp_engine_close(eng);
}

Test(spin, a_lone_rp_read_is_counted)
{
	rp_config cfg;
	rp_engine *eng;
	struct tu_map f;
	char buf[PG];

	tu_config_init(&cfg);
	cfg.ram_size = 32ul << 20;
	cfg.readahead_max = 0;
	cr_assert_eq(rp_config_set(&cfg, "fault_spin", "always"), 0);
	cr_assert_eq(rp_engine_open(&cfg, &eng), 0, "%s", rp_errmsg());
	tu_map_open(&f, eng, "spin_read", 16 * PG, 29, PROT_READ);
	cr_assert_eq(rp_read(f.fh, 3 * PG, buf, PG), (ssize_t)PG);
	tu_expect_fill(buf, PG, 29, 3 * PG);
	cr_assert_eq(tu_stats(eng).fault_reads_polled, 1);
	tu_map_close(&f);
}

Test(spin, the_key_names_its_values)
{
	rp_config cfg;
	char buf[32];

	rp_config_init(&cfg);
	cr_assert_eq(rp_config_get(&cfg, "fault_spin", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "auto");
	cr_assert_eq(rp_config_set(&cfg, "fault_spin", "sometimes"), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "fault_spin=sometimes") &&
	              strstr(rp_errmsg(), "auto, always or never"),
	          "%s", rp_errmsg());
}
