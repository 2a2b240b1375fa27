/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine/config.c - the configuration keys. One table (keys[]: name, type, range or enum
 * words, default, description) serves rp_config_init (the defaults), rp_config_set, INI
 * files, the RINGPAGER_* variables, rp_config_get, rp_engine_open's check of a whole
 * rp_config (config_check) and README.md's key table (a test compares them), so none of
 * them can disagree about a key's name, syntax, range or default. An enum's words are the
 * owning layer's names (ram_hugepages_name, ...), parsed here alone, in any case.
 */
#include "ringpager.h"
#include "io/io.h"
#include "ram/ram.h"
#include "vm/spin.h"
#include "vm/vm.h"
#include "engine/config.h"
#include "engine/textin.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

extern char **environ;

enum key_type {
	K_SIZE,     /* uint64_t bytes, with a suffix */
	K_UINT,     /* unsigned, optionally "auto" for 0 */
	K_BOOL,     /* int 0/1 */
	K_PAGESIZE, /* size_t: 4k, 2m or auto (0) */
	K_ENUM,     /* int: one of `words` (their index), case-insensitive */
	K_PCT,      /* unsigned percent */
	K_LIMIT,    /* uint64_t bytes, or a percent of ram_size into the unsigned at pct_off */
	K_PATH,     /* char[RP_PATH_MAX]: a directory, or empty */
};

struct key {
	const char *name;
	enum key_type type;
	size_t off; /* in rp_config */
	uint64_t min, max;
	bool auto_zero;                   /* "auto" is accepted and stored as 0 */
	const char *(*word)(unsigned i);  /* K_ENUM: the word of value i (the layer's own name) */
	unsigned nwords;                  /* K_ENUM: values 0..nwords-1 can be asked for */
	size_t pct_off;                   /* K_LIMIT: its percent, in rp_config */
	const char *def; /* the default, as rp_config_set takes it (NULL: computed, below) */
	const char *doc; /* what README.md's table says of the key (tested to match) */
};

static const char *w_hugepages(unsigned i)
{
	return ram_hugepages_name((enum ram_hugepages)i);
}

static const char *w_backend(unsigned i)
{
	return rpio_backend_name((enum rpio_backend)i);
}

static const char *w_dirty(unsigned i)
{
	return vm_dirty_name((enum vm_dirty_mode)i);
}

static const char *w_policy(unsigned i)
{
	return vm_policy_name((enum vm_dirty_policy)i);
}

/* fault_mode's values, by their rp_config numbers (RP_FAULT_MODE_*). */
static const char *w_fault_mode(unsigned i)
{
	static const char *const modes[] = {"auto", "uffd", "sigbus"};

	return i < 3 ? modes[i] : "?";
}

static const char *w_spin(unsigned i)
{
	return vm_spin_name((enum vm_spin_mode)i);
}

/* The rp_config numbers are the layers' enums. */
_Static_assert(RAM_HUGEPAGES_OFF == 2 && IO_BACKEND_PSYNC == 3 && VM_DIRTY_WP_SYNC == 2 &&
                   VM_POLICY_WRITEBACK == 1 && RP_FAULT_MODE_SIGBUS == 2 &&
                   VM_SPIN_NEVER == 2,
               "rp_config's enum numbers");

#define F(field) offsetof(rp_config, field)
#define ENUM(fn, n) .word = (fn), .nwords = (n)

static const struct key keys[] = {
    {"ram_size", K_SIZE, F(ram_size), 1, UINT64_MAX, false, .def = NULL,
     .doc = "bytes in the pool; a multiple of the page size"},
    {"page_size", K_PAGESIZE, F(page_size), 0, 0, false, .def = "auto",
     .doc = "`4k`, `2m`, or `auto` (follows `hugepages`)"},
    {"hugepages", K_ENUM, F(hugepages), 0, 0, false, ENUM(w_hugepages, 3), .def = "auto",
     .doc = "`auto` (2 MiB pages if enough are reserved, else 4 KiB with a warning), "
            "`require`, `off`"},
    {"io_backend", K_ENUM, F(io_backend), 0, 0, false, ENUM(w_backend, 4), .def = "auto",
     .doc = "`auto` (io_uring, else libaio, else psync, with the reason), `io_uring`, "
            "`libaio`, `psync`"},
    {"queue_depth", K_UINT, F(queue_depth), 1, 32768, false, .def = "128",
     .doc = "I/O requests in flight per service thread, 1..32768"},
    {"sqpoll", K_BOOL, F(sqpoll), 0, 1, false, .def = "false",
     .doc = "io_uring submission polling thread"},
    /* auto: one per CPU, bound (vm/service.c says why) */
    {"fault_threads", K_UINT, F(fault_threads), 1, 64, true, .def = "auto",
     .doc = "`auto` (one per CPU, bound) or 1..64 unbound threads"},
    {"dirty_tracking", K_ENUM, F(dirty_tracking), 0, 0, false, ENUM(w_dirty, 3), .def = "auto",
     .doc = "`auto` (the best the kernel has), `wp_async` (Linux 6.7), `wp_sync` (Linux 6.5); "
            "docs/design.md"},
    /* docs/benchmarks.md, "Reclaim" */
    {"reclaim_high", K_PCT, F(reclaim_high), 1, 100, false, .def = "98",
     .doc = "percent of `ram_size` (`98` or `98%`, 1..100) at which background reclaim "
            "starts"},
    {"reclaim_low", K_PCT, F(reclaim_low), 1, 99, false, .def = "95",
     .doc = "percent (1..99, below `reclaim_high`) down to which it evicts"},
    {"reclaim_wait", K_UINT, F(reclaim_wait), 0, 3600000, false, .def = "5000",
     .doc = "ms (0..3600000) a load waits for memory when nothing can be evicted; then "
            "`SIGBUS` / `-ENOMEM`; 0: fail at once"},
    {"dirty_limit", K_LIMIT, F(dirty_limit), 0, UINT64_MAX, false, .pct_off = F(dirty_limit_pct),
     .def = "50%",
     .doc = "dirty pages at which the pressure hook is called: bytes (`256M`), percent of "
            "`ram_size` (`25%`), or `0` for none"},
    {"dirty_policy", K_ENUM, F(dirty_policy), 0, 0, false, ENUM(w_policy, 2), .def = "keep",
     .doc = "`keep` (dirty pages stay until written out) or `writeback` (the engine writes "
            "cold dirty pages back under pressure); docs/design.md"},
    /* docs/benchmarks.md, "Poll or sleep" */
    {"fault_spin", K_ENUM, F(fault_spin), 0, 0, false, ENUM(w_spin, 3), .def = "auto",
     .doc = "whether the thread waiting for a fault's read, or for a writeout a service "
            "thread runs, polls for the end: `auto` (both ways timed, the faster used), "
            "`always`, `never` (docs/tuning.md)"},
    /* docs/benchmarks.md, "Fault service" */
    {"fault_spin_us", K_UINT, F(fault_spin_us), 0, 10000, false, .def = "200",
     .doc = "microseconds (0..10000) a service thread, or with `fault_mode=sigbus` the "
            "faulting thread, polls for a fault's read at most; `0`: never "
            "(docs/tuning.md)"},
    /* auto is uffd: ringpager.h says why not sigbus */
    {"fault_mode", K_ENUM, F(fault_mode), 0, 0, false, ENUM(w_fault_mode, 3), .def = "auto",
     .doc = "who serves a fault: `uffd` (service threads; what `auto` means), `sigbus` (the "
            "faulting thread, in a `SIGBUS` handler: faster, with the conditions in "
            "docs/design.md)"},
    /* docs/benchmarks.md, "Readahead" */
    {"readahead_max", K_SIZE, F(readahead_max), 0, 1ull << 30, false, .def = "32M",
     .doc = "the largest readahead window, bytes (0..1G; `0` turns readahead off); at most a "
            "quarter of `ram_size` is used; docs/design.md"},
    /* docs/benchmarks.md, "Dropping behind a scan" */
    {"scan_keep", K_LIMIT, F(scan_keep), 0, UINT64_MAX, false, .pct_off = F(scan_keep_pct),
     .def = "25%",
     .doc = "how much of what a sequential stream read stays in the pool behind it: bytes "
            "(`1G`) or percent of `ram_size` (`25%`); older clean pages are dropped as it "
            "moves on; `0`: all stay (docs/design.md)"},
    /* docs/benchmarks.md, "Copied windows" */
    {"readahead_copy", K_BOOL, F(readahead_copy), 0, 1, false, .def = "true",
     .doc = "a proven stream's windows are read into staging buffers and copied into place "
            "(`true`) or read into the pool's pages and mapped (`false`); 4 KiB pages; "
            "docs/design.md"},
    /* docs/design.md, "Atomic writeout" */
    {"atomic_log_max", K_SIZE, F(atomic_log_max), 1ull << 16, 1ull << 40, false, .def = "64M",
     .doc = "the largest redo log of an `RP_WRITEOUT_ATOMIC` writeout, bytes (64k..1T): a "
            "larger one is refused (`-EFBIG`)"},
    {"atomic_log_dir", K_PATH, F(atomic_log_dir), 0, 0, false, .def = "",
     .doc = "the directory of the redo logs; empty: beside each store (`FILE-rplog`), "
            "which a block device needs set"},
};

/* README.md's default column for ram_size, whose default is computed. */
#define RAM_SIZE_DEFAULT_DOC "a quarter of RAM (in 2 MiB units)"

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static int set_key(rp_config *cfg, const struct key *k, const char *value, const char *where);

int rp_config_init(rp_config *cfg)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	uint64_t ram = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz / 4 : 1ull << 30;

	if (!cfg)
		return vm_errf(-EINVAL, "rp_config_init: cfg is NULL");
	memset(cfg, 0, sizeof(*cfg));
	/* The defaults are the table's; ram_size's is a quarter of the machine, in whole
	 * 2 MiB units so that either page size fits. */
	for (unsigned i = 0; i < NKEYS; i++)
		if (keys[i].def)
			(void)set_key(cfg, &keys[i], keys[i].def, ""); /* tested to be taken */
	cfg->ram_size = ram / RAM_PAGE_2M * RAM_PAGE_2M;
	if (!cfg->ram_size)
		cfg->ram_size = RAM_PAGE_2M;
	return 0;
}

/* Parses "123", "4k", "64M", "2G", "1T" (powers of 1024). */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

/* Parses "50" or "50%". */
static int parse_pct(const char *s, uint64_t *out)
{
	char buf[24];
	size_t n = strlen(s);

	if (n && s[n - 1] == '%')
		n--;
	if (!n || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)buf[i]))
			return -EINVAL;
	return parse_size(buf, out);
}

static int parse_bool(const char *s, int *out)
{
	static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};

	for (unsigned i = 0; i < 4; i++) {
		if (!strcasecmp(s, yes[i]))
			return *out = 1, 0;
		if (!strcasecmp(s, no[i]))
			return *out = 0, 0;
	}
	return -EINVAL;
}

const char *config_key_name(unsigned i)
{
	return i < NKEYS ? keys[i].name : NULL;
}

int config_readme_row(unsigned i, char *buf, size_t len)
{
	if (i >= NKEYS)
		return -EINVAL;
	int n = keys[i].def && !keys[i].def[0]
	            ? snprintf(buf, len, "| `%s` | empty | %s |", keys[i].name, keys[i].doc)
	        : keys[i].def ? snprintf(buf, len, "| `%s` | `%s` | %s |", keys[i].name,
	                                 keys[i].def, keys[i].doc)
	                    : snprintf(buf, len, "| `%s` | %s | %s |", keys[i].name,
	                               RAM_SIZE_DEFAULT_DOC, keys[i].doc);

	return n < 0 || (size_t)n >= len ? -ERANGE : 0;
}

static const struct key *find_key(const char *name)
{
	for (unsigned i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

static int set_key(rp_config *cfg, const struct key *k, const char *value, const char *where)
{
	char *field = (char *)cfg + k->off;
	uint64_t v = 0;
	int b, err = 0;

	switch (k->type) {
	case K_SIZE:
	case K_UINT:
		if (k->auto_zero && !strcasecmp(value, "auto")) {
			*(unsigned *)(void *)field = 0;
			return 0;
		}
		err = parse_size(value, &v);
		if (err || v < k->min || v > k->max) {
			if (k->max == UINT64_MAX)
				return vm_errf(-EINVAL,
				               "%s%s=%s: expected a size in bytes, optionally with a "
				               "suffix k, M, G or T (for example 64M)",
				               where, k->name, value);
			if (k->type == K_SIZE)
				return vm_errf(-EINVAL,
				               "%s%s=%s: expected a size from %" PRIu64 " to %" PRIu64
				               " bytes, optionally with a suffix k, M, G or T",
				               where, k->name, value, k->min, k->max);
			return vm_errf(-EINVAL,
			               "%s%s=%s: expected %sa number from %" PRIu64 " to %" PRIu64, where,
			               k->name, value, k->auto_zero ? "auto or " : "", k->min, k->max);
		}
		if (k->type == K_SIZE)
			*(uint64_t *)(void *)field = v;
		else
			*(unsigned *)(void *)field = (unsigned)v;
		return 0;
	case K_PATH:
		if (strlen(value) >= RP_PATH_MAX)
			return vm_errf(-EINVAL, "%s%s: a path of at most %d bytes", where, k->name,
			               RP_PATH_MAX - 1);
		snprintf(field, RP_PATH_MAX, "%s", value);
		return 0;
	case K_BOOL:
		if (parse_bool(value, &b))
			return vm_errf(-EINVAL, "%s%s=%s: expected true or false", where, k->name,
			               value);
		*(int *)(void *)field = b;
		return 0;
	case K_PAGESIZE:
		if (!strcasecmp(value, "auto")) {
			cfg->page_size = 0;
			return 0;
		}
		if (parse_size(value, &v) || (v != RAM_PAGE_4K && v != RAM_PAGE_2M))
			return vm_errf(-EINVAL, "%s%s=%s: expected 4k, 2m or auto", where, k->name,
			               value);
		cfg->page_size = (size_t)v;
		return 0;
	case K_ENUM: {
		char words[128];
		size_t n = 0;

		for (unsigned w = 0; w < k->nwords; w++)
			if (!strcasecmp(value, k->word(w))) {
				*(int *)(void *)field = (int)w;
				return 0;
			}
		for (unsigned w = 0; w < k->nwords && n < sizeof(words); w++)
			n += (size_t)snprintf(words + n, sizeof(words) - n, "%s%s",
			                      w == 0 ? "" : w + 1 == k->nwords ? " or " : ", ",
			                      k->word(w));
		return vm_errf(-EINVAL, "%s%s=%s: expected %s", where, k->name, value, words);
	}
	case K_PCT:
		if (parse_pct(value, &v) || v < k->min || v > k->max)
			return vm_errf(-EINVAL, "%s%s=%s: expected a percentage from %" PRIu64
			                        " to %" PRIu64 " (of ram_size)",
			               where, k->name, value, k->min, k->max);
		*(unsigned *)(void *)field = (unsigned)v;
		return 0;
	case K_LIMIT: {
		unsigned *pct = (unsigned *)(void *)((char *)cfg + k->pct_off);

		if (strchr(value, '%')) {
			if (parse_pct(value, &v) || v > 100)
				return vm_errf(-EINVAL, "%s%s=%s: expected a percentage from 0%% to 100%% "
				                        "(of ram_size)",
				               where, k->name, value);
			*(uint64_t *)(void *)field = 0;
			*pct = (unsigned)v;
			return 0;
		}
		if (parse_size(value, &v))
			return vm_errf(-EINVAL, "%s%s=%s: expected a size in bytes (64M), a percentage "
			                        "of ram_size (25%%), or 0",
			               where, k->name, value);
		*(uint64_t *)(void *)field = v;
		*pct = 0;
		return 0;
	}
	}
	return err;
}

static int unknown_key(const char *where, const char *name)
{
	char known[512];
	size_t n = 0;

	known[0] = '\0';
	for (unsigned i = 0; i < NKEYS && n < sizeof(known); i++)
		n += (size_t)snprintf(known + n, sizeof(known) - n, "%s%s", i ? ", " : "",
		                      keys[i].name);
	return vm_errf(-EINVAL, "%sunknown configuration key '%s' (known keys: %s)", where, name,
	               known);
}

int rp_config_set(rp_config *cfg, const char *key, const char *value)
{
	const struct key *k;

	if (!cfg || !key || !value)
		return vm_errf(-EINVAL, "rp_config_set: cfg, key and value must not be NULL");
	k = find_key(key);
	if (!k)
		return unknown_key("", key);
	return set_key(cfg, k, value, "");
}

/* Writes key k's value as rp_config_set takes it; a value out of the key's range or enum
 * is written as it is ("0", "8192", "7"), so that setting it again refuses it. Returns
 * the length, or -ERANGE when buf is too small. */
static int get_key(const rp_config *cfg, const struct key *k, char *buf, size_t len)
{
	const char *field = (const char *)cfg + k->off;
	int n = 0;

	switch (k->type) {
	case K_SIZE:
		n = snprintf(buf, len, "%" PRIu64, *(const uint64_t *)(const void *)field);
		break;
	case K_UINT:
		if (k->auto_zero && !*(const unsigned *)(const void *)field)
			n = snprintf(buf, len, "auto");
		else
			n = snprintf(buf, len, "%u", *(const unsigned *)(const void *)field);
		break;
	case K_BOOL:
		n = snprintf(buf, len, "%s", *(const int *)(const void *)field ? "true" : "false");
		break;
	case K_PATH:
		n = snprintf(buf, len, "%.*s", RP_PATH_MAX, field);
		break;
	case K_PAGESIZE:
		if (cfg->page_size == RAM_PAGE_4K || cfg->page_size == RAM_PAGE_2M || !cfg->page_size)
			n = snprintf(buf, len, "%s",
			             cfg->page_size == RAM_PAGE_4K   ? "4k"
			             : cfg->page_size == RAM_PAGE_2M ? "2m"
			                                             : "auto");
		else
			n = snprintf(buf, len, "%zu", cfg->page_size);
		break;
	case K_ENUM: {
		const int v = *(const int *)(const void *)field;

		n = v >= 0 && (unsigned)v < k->nwords ? snprintf(buf, len, "%s", k->word((unsigned)v))
		                                      : snprintf(buf, len, "%d", v);
		break;
	}
	case K_PCT:
		n = snprintf(buf, len, "%u%%", *(const unsigned *)(const void *)field);
		break;
	case K_LIMIT: {
		const uint64_t bytes = *(const uint64_t *)(const void *)field;
		const unsigned pct = *(const unsigned *)(const void *)((const char *)cfg + k->pct_off);

		if (bytes || !pct)
			n = snprintf(buf, len, "%" PRIu64, bytes);
		else
			n = snprintf(buf, len, "%u%%", pct);
		break;
	}
	}
	return n < 0 || (size_t)n >= len ? -ERANGE : n;
}

int rp_config_get(const rp_config *cfg, const char *key, char *buf, size_t len)
{
	const struct key *k;

	if (!cfg || !key || !buf)
		return vm_errf(-EINVAL, "rp_config_get: cfg, key and buf must not be NULL");
	k = find_key(key);
	if (!k)
		return unknown_key("", key);
	if (get_key(cfg, k, buf, len) < 0)
		return vm_errf(-ERANGE, "rp_config_get: %zu bytes are too few for %s", len, key);
	return 0;
}

int config_check(const rp_config *cfg, const char *fn)
{
	char where[64], buf[RP_PATH_MAX + 8];
	rp_config scratch = *cfg;

	snprintf(where, sizeof(where), "%s: ", fn);
	/* A field set in the struct directly is held to the rules of the key that sets it:
	 * its text form must be one rp_config_set takes. */
	for (unsigned i = 0; i < NKEYS; i++) {
		int err = get_key(cfg, &keys[i], buf, sizeof(buf)) < 0
		              ? vm_errf(-EINVAL, "%s%s: value out of range", where, keys[i].name)
		              : set_key(&scratch, &keys[i], buf, where);

		if (err < 0)
			return err;
	}
	if (cfg->reclaim_low >= cfg->reclaim_high)
		return vm_errf(-EINVAL, "%sreclaim_low=%u%% must be below reclaim_high=%u%%", where,
		               cfg->reclaim_low, cfg->reclaim_high);
	return 0;
}

/* An INI file is a few dozen lines: anything larger is not one. */
#define INI_MAX_BYTES (1u << 20)
#define INI_MAX_LINE  1022

int rp_config_load(rp_config *cfg, const char *path)
{
	char where[600], msg[600];
	unsigned lineno = 0;
	char *text, *cur, *line;
	int err = 0;

	if (!cfg || !path)
		return vm_errf(-EINVAL, "rp_config_load: cfg and path must not be NULL");
	err = textin_read(path, INI_MAX_BYTES, &text, msg, sizeof(msg));
	if (err)
		return vm_errf(err, "rp_config_load: %s", msg);
	cur = text;
	while ((line = textin_line(&cur))) {
		char *s, *eq;

		lineno++;
		snprintf(where, sizeof(where), "%s:%u: ", path, lineno);
		if (strlen(line) > INI_MAX_LINE) {
			err = vm_errf(-EINVAL, "%sline longer than %u bytes", where, INI_MAX_LINE);
			break;
		}
		s = textin_trim(line);
		if (!*s || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			if (strcmp(s, "[ringpager]")) {
				err = vm_errf(-EINVAL, "%ssection %s: only [ringpager] is known", where, s);
				break;
			}
			continue;
		}
		eq = strchr(s, '=');
		if (!eq) {
			err = vm_errf(-EINVAL, "%sexpected 'key = value', got '%s'", where, s);
			break;
		}
		*eq = '\0';
		char *key = textin_trim(s), *value = textin_trim(eq + 1);
		const struct key *k = find_key(key);

		if (!k) {
			err = unknown_key(where, key);
			break;
		}
		if ((err = set_key(cfg, k, value, where)) < 0)
			break;
	}
	free(text);
	return err;
}

int rp_config_load_env(rp_config *cfg)
{
	static const char prefix[] = "RINGPAGER_";
	char name[64], where[80];

	if (!cfg)
		return vm_errf(-EINVAL, "rp_config_load_env: cfg is NULL");
	for (char **e = environ; e && *e; e++) {
		const char *var = *e, *eq = strchr(var, '=');
		size_t n;

		if (strncmp(var, prefix, sizeof(prefix) - 1) || !eq)
			continue;
		n = (size_t)(eq - var) - (sizeof(prefix) - 1);
		if (n >= sizeof(name))
			n = sizeof(name) - 1;
		for (size_t i = 0; i < n; i++)
			name[i] = (char)tolower((unsigned char)var[sizeof(prefix) - 1 + i]);
		name[n] = '\0';
		snprintf(where, sizeof(where), "environment %.*s: ", (int)(eq - var), var);
		if (strlen(eq + 1) > INI_MAX_LINE)
			return vm_errf(-EINVAL, "%svalue longer than %u bytes", where, INI_MAX_LINE);
		const struct key *k = find_key(name);

		if (!k)
			return unknown_key(where, name);
		int err = set_key(cfg, k, eq + 1, where);

		if (err)
			return err;
	}
	return 0;
}
