/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz/fuzz_config.c - libFuzzer target: the configuration parser, all four ways in.
 *
 * The input is read three times: as an INI file (rp_config_load, through a memfd's
 * /proc/self/fd path, so the file-type and size checks run too); line by line as
 * "key=value" pairs for rp_config_set, each key then read back with rp_config_get and
 * set again from what it gave (a value the parser accepts must round-trip); and as
 * RINGPAGER_<key> environment variables for rp_config_load_env. Nothing may crash,
 * hang or leak, and every refusal must leave a message.
 */
#include "ringpager.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern char **environ;
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_refusal(int err)
{
	if (err && !*rp_errmsg())
		abort(); /* every refusal names what was wrong */
}

static void as_ini(const uint8_t *data, size_t size)
{
	rp_config c;
	char path[64];
	int fd = memfd_create("fuzz.ini", MFD_CLOEXEC);

	if (fd < 0)
		return;
	if (write(fd, data, size) == (ssize_t)size) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		rp_config_init(&c);
		check_refusal(rp_config_load(&c, path));
	}
	close(fd);
}

static void as_pairs(char *text)
{
	rp_config c;
	char buf[128];

	rp_config_init(&c);
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *eq = strchr(line, '=');

		if (!eq)
			continue;
		*eq = '\0';
		int err = rp_config_set(&c, line, eq + 1);

		check_refusal(err);
		if (err)
			continue;
		/* Accepted: its text form must be accepted again and give the same text. */
		char again[128];
		rp_config d = c;

		if (rp_config_get(&c, line, buf, sizeof(buf)) || rp_config_set(&d, line, buf) ||
		    rp_config_get(&d, line, again, sizeof(again)) || strcmp(buf, again))
			abort();
	}
}

static void as_env(char *text)
{
	rp_config c;
	char name[96];
	int n = 0;

	for (char *line = strtok(text, "\n"); line && n < 8; line = strtok(NULL, "\n")) {
		char *eq = strchr(line, '=');

		if (!eq || eq == line || (size_t)(eq - line) > 64)
			continue;
		*eq = '\0';
		snprintf(name, sizeof(name), "RINGPAGER_%s", line);
		if (strchr(name, '=') || setenv(name, eq + 1, 1))
			continue;
		n++;
	}
	rp_config_init(&c);
	check_refusal(rp_config_load_env(&c));
	for (char **e = environ; e && *e;) {
		if (!strncmp(*e, "RINGPAGER_", 10)) {
			char var[128];
			size_t len = strcspn(*e, "=");

			snprintf(var, sizeof(var), "%.*s", (int)len, *e);
			unsetenv(var);
			continue; /* environ changed: look at the same slot again */
		}
		e++;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	as_ini(data, size);
	memcpy(text, data, size);
	text[size] = '\0';
	as_pairs(text);
	memcpy(text, data, size);
	text[size] = '\0';
	as_env(text);
	free(text);
	return 0;
}
