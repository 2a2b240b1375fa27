/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz/fuzz_jobfile.c - libFuzzer target: rpbench's parser, as a job file and as a
 * command line.
 *
 * The input is parsed as a job file (written to a memfd, named by its /proc/self/fd
 * path), then split at newlines into command-line arguments. rpb_parse must return 0
 * or an error with a message, never crash, hang or leak; nothing is run.
 */
#include "bench/rpbench/rpbench.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse(int argc, char **argv)
{
	struct rpb_spec s;
	char err[RPB_ERR_LEN];

	err[0] = '\0';
	if (rpb_parse(argc, argv, &s, err, sizeof(err)) == 0)
		rpb_spec_free(&s);
	else if (!err[0])
		abort(); /* a refusal names what was wrong */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], *argv[34], *text;
	int argc = 0, fd = memfd_create("fuzz.fio", MFD_CLOEXEC);

	if (fd >= 0) {
		if (write(fd, data, size) == (ssize_t)size) {
			snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
			argv[0] = "rpbench";
			argv[1] = path;
			argv[2] = NULL;
			parse(2, argv);
		}
		close(fd);
	}
	if (!(text = malloc(size + 1)))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	argv[argc++] = "rpbench";
	for (char *a = strtok(text, "\n"); a && argc < 33; a = strtok(NULL, "\n"))
		if (a[0] != '/' && strncmp(a, "--output", 8)) /* no files named by the input */
			argv[argc++] = a;
	argv[argc] = NULL;
	parse(argc, argv);
	free(text);
	return 0;
}
