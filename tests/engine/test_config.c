/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/engine/test_config.c - configuration keys through rp_config_set, INI files and
 * RINGPAGER_* variables; engine open/close, describe, and refusals of bad values.
 */
#include "ringpager.h"
#include "common/testutil.h"
#include "engine/config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void expect_get(const rp_config *c, const char *key, const char *want)
{
	char buf[64];

	cr_assert_eq(rp_config_get(c, key, buf, sizeof(buf)), 0, "%s", rp_errmsg());
	cr_assert_str_eq(buf, want, "%s", key);
}

Test(config, defaults_are_sensible)
{
	rp_config c;

	cr_assert_eq(rp_config_init(&c), 0);
	cr_assert_gt(c.ram_size, 0);
	cr_assert_eq(c.ram_size % (2u << 20), 0);
	expect_get(&c, "page_size", "auto");
	expect_get(&c, "hugepages", "auto");
	expect_get(&c, "io_backend", "auto");
	expect_get(&c, "queue_depth", "128");
	expect_get(&c, "sqpoll", "false");
	expect_get(&c, "fault_threads", "auto");
	expect_get(&c, "dirty_tracking", "auto");
	expect_get(&c, "fault_spin_us", "200");
	expect_get(&c, "fault_mode", "auto");
}

Test(config, every_key_round_trips_through_set_and_get)
{
	static const char *kv[][3] = {
	    /* key, value set, value read back */
	    {"ram_size", "64M", "67108864"},  {"ram_size", "2g", "2147483648"},
	    {"ram_size", "8192", "8192"},     {"ram_size", "1T", "1099511627776"},
	    {"ram_size", "4k", "4096"},       {"page_size", "4k", "4k"},
	    {"page_size", "2M", "2m"},        {"page_size", "auto", "auto"},
	    {"hugepages", "off", "off"},      {"hugepages", "require", "require"},
	    {"io_backend", "psync", "psync"}, {"io_backend", "libaio", "libaio"},
	    {"io_backend", "io_uring", "io_uring"}, {"queue_depth", "32", "32"},
	    {"queue_depth", "32768", "32768"}, {"sqpoll", "yes", "true"},
	    {"sqpoll", "off", "false"},       {"fault_threads", "4", "4"},
	    {"fault_threads", "auto", "auto"}, {"dirty_tracking", "wp_sync", "wp_sync"},
	    {"dirty_tracking", "WP_ASYNC", "wp_async"}, {"dirty_tracking", "auto", "auto"},
	    {"fault_spin_us", "0", "0"},      {"fault_spin_us", "10000", "10000"},
	    {"fault_mode", "sigbus", "sigbus"}, {"fault_mode", "UFFD", "uffd"},
	    {"fault_mode", "auto", "auto"},
	};
	rp_config c;

	rp_config_init(&c);
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
		cr_assert_eq(rp_config_set(&c, kv[i][0], kv[i][1]), 0, "%s=%s: %s", kv[i][0],
		             kv[i][1], rp_errmsg());
		expect_get(&c, kv[i][0], kv[i][2]);
	}
}

Test(config, bad_values_and_unknown_keys_are_refused_by_name)
{
	static const char *bad[][2] = {
	    {"ram_size", "12X"},      {"ram_size", "0"},        {"ram_size", ""},
	    {"ram_size", "-5"},       {"ram_size", "99999999999T"}, {"page_size", "8k"},
	    {"hugepages", "maybe"},   {"io_backend", "spdk"},   {"queue_depth", "0"},
	    {"queue_depth", "40000"}, {"sqpoll", "2"},          {"fault_threads", "65"},
	    {"dirty_tracking", "none"}, {"dirty_tracking", "soft_dirty"},
	    {"fault_spin_us", "10001"}, {"fault_spin_us", "fast"},
	    {"fault_mode", "sigsegv"}, {"fault_mode", ""},
	};
	rp_config c, before;
	char buf[4];

	rp_config_init(&c);
	before = c;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(rp_config_set(&c, bad[i][0], bad[i][1]), -EINVAL, "%s=%s", bad[i][0],
		             bad[i][1]);
		cr_assert(strstr(rp_errmsg(), bad[i][0]), "message names the key: %s", rp_errmsg());
		cr_assert(memcmp(&c, &before, sizeof(c)) == 0, "a refused value changes nothing");
	}
	cr_assert_eq(rp_config_set(&c, "ram_size", "12X"), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "ram_size=12X"), "%s", rp_errmsg());
	cr_assert_eq(rp_config_set(&c, "ramsize", "1G"), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "unknown configuration key 'ramsize'"), "%s", rp_errmsg());
	cr_assert_eq(rp_config_get(&c, "nope", buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(rp_config_get(&c, "ram_size", buf, sizeof(buf)), -ERANGE);
	cr_assert_eq(rp_config_set(NULL, "ram_size", "1G"), -EINVAL);
}

static char *write_ini(const char *name, const char *text)
{
	char *path = malloc(strlen(tu_dir()) + strlen(name) + 2);
	FILE *f;

	sprintf(path, "%s/%s", tu_dir(), name);
	f = fopen(path, "w");
	cr_assert(f);
	fputs(text, f);
	fclose(f);
	return path;
}

Test(config, ini_file_sets_keys_and_names_the_bad_line)
{
	rp_config c;
	char *ok = write_ini("cfg_ok.ini", "# ringpager\n[ringpager]\nram_size = 256M\n"
	                                   "  ; comment\n\nio_backend=psync\nqueue_depth = 64 \n");
	char *bad = write_ini("cfg_bad.ini", "ram_size = 128M\nqueue_depth = 16\nfault_thread = 2\n");
	char *badsec = write_ini("cfg_sec.ini", "[other]\nram_size = 1G\n");
	char *noeq = write_ini("cfg_noeq.ini", "ram_size 1G\n");

	rp_config_init(&c);
	cr_assert_eq(rp_config_load(&c, ok), 0, "%s", rp_errmsg());
	expect_get(&c, "ram_size", "268435456");
	expect_get(&c, "io_backend", "psync");
	expect_get(&c, "queue_depth", "64");
	cr_assert_eq(rp_config_load(&c, bad), -EINVAL);
	cr_assert(strstr(rp_errmsg(), ":3:"), "the line number: %s", rp_errmsg());
	cr_assert(strstr(rp_errmsg(), "fault_thread"), "%s", rp_errmsg());
	expect_get(&c, "queue_depth", "16"); /* lines before the bad one stay applied */
	cr_assert_eq(rp_config_load(&c, badsec), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "[other]"), "%s", rp_errmsg());
	cr_assert_eq(rp_config_load(&c, noeq), -EINVAL);
	cr_assert_eq(rp_config_load(&c, "/nonexistent.ini"), -ENOENT);
	cr_assert(strstr(rp_errmsg(), "/nonexistent.ini"), "%s", rp_errmsg());
	for (char **p = (char *[]){ok, bad, badsec, noeq, NULL}; *p; p++) {
		unlink(*p);
		free(*p);
	}
}

/* Whatever the path names, rp_config_load neither blocks nor reads without bound, and a
 * path that is not a file is an error, not an empty configuration. */
Test(config, ini_paths_that_are_not_ini_files_are_refused_at_once, .timeout = 60)
{
	rp_config c;
	char fifo[256], *big, *nul;
	FILE *f;

	rp_config_init(&c);
	cr_assert_eq(rp_config_load(&c, tu_dir()), -EISDIR, "%s", rp_errmsg());
	cr_assert(strstr(rp_errmsg(), "directory"), "%s", rp_errmsg());
	cr_assert_eq(rp_config_load(&c, "/dev/zero"), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "character device"), "%s", rp_errmsg());
	snprintf(fifo, sizeof(fifo), "%s/cfg-fifo-%d", tu_dir(), getpid());
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	cr_assert_eq(rp_config_load(&c, fifo), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "FIFO"), "%s", rp_errmsg());
	unlink(fifo);
	big = write_ini("cfg_big.ini", "");
	cr_assert((f = fopen(big, "w")));
	for (int i = 0; i < (1 << 20) + 1; i++)
		fputc(i % 64 ? ' ' : '\n', f);
	fclose(f);
	cr_assert_eq(rp_config_load(&c, big), -EFBIG);
	cr_assert(strstr(rp_errmsg(), "cfg_big.ini"), "%s", rp_errmsg());
	nul = write_ini("cfg_nul.ini", "ram_size = 1G\n");
	cr_assert((f = fopen(nul, "a")));
	fputc(0, f);
	fclose(f);
	cr_assert_eq(rp_config_load(&c, nul), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "NUL"), "%s", rp_errmsg());
	for (char **p = (char *[]){big, nul, NULL}; *p; p++) {
		unlink(*p);
		free(*p);
	}
}

Test(config, environment_variables_set_keys_and_typos_are_refused)
{
	rp_config c;

	rp_config_init(&c);
	setenv("RINGPAGER_RAM_SIZE", "96M", 1);
	setenv("RINGPAGER_IO_BACKEND", "libaio", 1);
	cr_assert_eq(rp_config_load_env(&c), 0, "%s", rp_errmsg());
	expect_get(&c, "ram_size", "100663296");
	expect_get(&c, "io_backend", "libaio");
	setenv("RINGPAGER_QUEUE_DEPTH", "12X", 1);
	cr_assert_eq(rp_config_load_env(&c), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "RINGPAGER_QUEUE_DEPTH"), "%s", rp_errmsg());
	unsetenv("RINGPAGER_QUEUE_DEPTH");
	setenv("RINGPAGER_RAMSIZE", "1G", 1);
	cr_assert_eq(rp_config_load_env(&c), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "ramsize"), "%s", rp_errmsg());
	unsetenv("RINGPAGER_RAMSIZE");
	unsetenv("RINGPAGER_RAM_SIZE");
	unsetenv("RINGPAGER_IO_BACKEND");
}

Test(engine, opens_with_defaults_and_describes_its_choices)
{
	rp_engine *eng;

	cr_assert_eq(rp_engine_open(NULL, &eng), 0, "%s", rp_errmsg());
	const char *d = rp_engine_describe(eng);

	cr_assert(strstr(d, "pool:"), "%s", d);
	cr_assert(strstr(d, "io:"), "%s", d);
	cr_assert(strstr(d, "MISSING+MINOR"), "%s", d);
	cr_assert(strstr(d, "dirty tracking wp_"), "%s", d);
	cr_log_info("%s", d);
	cr_assert(rp_engine_page_size(eng) == 4096 || rp_engine_page_size(eng) == (2u << 20));
	rp_engine_close(eng);
}

Test(engine, each_io_backend_serves_the_engine)
{
	static const char *be[] = {"io_uring", "libaio", "psync"};

	for (int i = 0; i < 3; i++) {
		rp_config c;
		rp_engine *eng;

		rp_config_init(&c);
		rp_config_set(&c, "ram_size", "16M");
		rp_config_set(&c, "hugepages", "off");
		rp_config_set(&c, "io_backend", be[i]);
		cr_assert_eq(rp_engine_open(&c, &eng), 0, "%s: %s", be[i], rp_errmsg());
		cr_assert(strstr(rp_engine_describe(eng), be[i]), "%s", rp_engine_describe(eng));
		/* ... and loads pages through it. */
		char *path = tu_scratch_file("engine_be", 256 << 10, 3);
		rp_store *st;
		rp_fileh *fh;
		rp_mapping *m;

		cr_assert_eq(rp_store_open(eng, path, O_RDONLY, &st), 0, "%s", rp_errmsg());
		cr_assert_eq(rp_fileh_open(st, &fh), 0);
		cr_assert_eq(rp_map(fh, 0, 256 << 10, PROT_READ, &m), 0);
		cr_assert_eq(rp_pin(m, 0, 128 << 10), 0, "%s: %s", be[i], rp_errmsg());
		tu_expect_fill(rp_mapping_addr(m), 128 << 10, 3, 0);
		rp_unmap(m);
		rp_fileh_close(fh);
		rp_store_close(st);
		tu_unlink(path);
		rp_engine_close(eng);
	}
}

Test(engine, bad_configuration_is_refused_at_open)
{
	rp_config c;
	rp_engine *eng = (rp_engine *)1;

	rp_config_init(&c);
	c.ram_size = 4097;
	c.hugepages = 2;
	cr_assert_eq(rp_engine_open(&c, &eng), -EINVAL);
	cr_assert_null(eng);
	cr_assert(strstr(rp_errmsg(), "ram_size=4097"), "%s", rp_errmsg());
	rp_config_init(&c);
	c.queue_depth = 0;
	cr_assert_eq(rp_engine_open(&c, &eng), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "queue_depth"), "%s", rp_errmsg());
	rp_config_init(&c);
	c.dirty_tracking = 7;
	cr_assert_eq(rp_engine_open(&c, &eng), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "dirty_tracking=7"), "%s", rp_errmsg());
	/* Every field, however it was set, is held to its key's rules (these two were not). */
	rp_config_init(&c);
	c.fault_spin_us = 50000;
	cr_assert_eq(rp_engine_open(&c, &eng), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "fault_spin_us=50000"), "%s", rp_errmsg());
	rp_config_init(&c);
	c.page_size = 8192;
	cr_assert_eq(rp_engine_open(&c, &eng), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "page_size=8192"), "%s", rp_errmsg());
	rp_config_init(&c);
	c.reclaim_low = 99;
	c.reclaim_high = 90;
	cr_assert_eq(rp_engine_open(&c, &eng), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "reclaim_low=99%"), "%s", rp_errmsg());
	cr_assert_eq(rp_engine_open(&c, NULL), -EINVAL);
}

/* README.md's table of keys is the library's table: the same keys, in the same order,
 * with the same defaults and descriptions (engine/config.c holds them). */
Test(config, the_readmes_key_table_is_the_librarys)
{
	char path[4096], line[1024], want[1024];
	unsigned n = 0;
	FILE *f;
	bool in_table = false;

	snprintf(path, sizeof(path), "%s/README.md", RP_SOURCE_DIR);
	cr_assert((f = fopen(path, "re")), "%s", path);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "## Configuration keys", 21))
			in_table = true;
		else if (in_table && !strncmp(line, "## ", 3))
			break;
		else if (in_table && !strncmp(line, "| `", 3)) {
			cr_assert(config_key_name(n), "README.md has a row past the last key: %s", line);
			cr_assert_eq(config_readme_row(n, want, sizeof(want)), 0);
			cr_assert_str_eq(line, want, "README.md's row for %s differs from the table "
			                             "(engine/config.c):\n%s\nshould read\n%s",
			                 config_key_name(n), line, want);
			n++;
		}
	}
	fclose(f);
	cr_assert(!config_key_name(n), "key '%s' is missing from README.md's table",
	          config_key_name(n));
}

/* Every default in the table is a value its key takes (rp_config_init applies them). */
Test(config, the_tables_defaults_are_taken_by_their_keys)
{
	rp_config c;
	char buf[64];

	rp_config_init(&c);
	for (unsigned k = 0; config_key_name(k); k++) {
		cr_assert_eq(rp_config_get(&c, config_key_name(k), buf, sizeof(buf)), 0);
		cr_assert_eq(rp_config_set(&c, config_key_name(k), buf), 0, "%s=%s: %s",
		             config_key_name(k), buf, rp_errmsg());
	}
}
