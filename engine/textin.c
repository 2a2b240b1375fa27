/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine/textin.c - bounded, non-blocking reads of user-named text files (textin.h).
 */
#include "engine/textin.h"
#include "io/io.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(char *msg, size_t msglen, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *msg, size_t msglen, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	return err;
}

int textin_read(const char *path, size_t max_bytes, char **out, char *msg, size_t msglen)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd, err;

	*out = NULL;
	/* O_NONBLOCK: a FIFO opens at once instead of waiting for a writer; fstat then
	 * refuses it. A regular file reads the same with or without it. */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return fail(msg, msglen, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		err = fail(msg, msglen, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		err = fail(msg, msglen, -EISDIR, "%s: is a directory, not a file", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err = fail(msg, msglen, -EINVAL, "%s: is %s; only a regular file is read", path,
		           rpio_file_kind(st.st_mode));
		goto out;
	}
	if ((uint64_t)st.st_size > max_bytes) {
		err = fail(msg, msglen, -EFBIG, "%s: %lld bytes, more than the %zu read at most",
		           path, (long long)st.st_size, max_bytes);
		goto out;
	}
	/* The size can change while reading: read at most max_bytes + 1 to know. */
	buf = malloc(max_bytes + 2);
	if (!buf) {
		err = fail(msg, msglen, -ENOMEM, "%s: out of memory", path);
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + len, max_bytes + 1 - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = fail(msg, msglen, -errno, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > max_bytes) {
			err = fail(msg, msglen, -EFBIG, "%s: more than the %zu bytes read at most",
			           path, max_bytes);
			goto out;
		}
	}
	if (memchr(buf, '\0', len)) {
		err = fail(msg, msglen, -EINVAL, "%s: holds a NUL byte at %zu: not a text file",
		           path, (size_t)((char *)memchr(buf, '\0', len) - buf));
		goto out;
	}
	buf[len] = '\0';
	*out = buf;
	buf = NULL;
	err = 0;
out:
	free(buf);
	close(fd);
	return err;
}

char *textin_line(char **cur)
{
	char *s = *cur, *nl;

	if (!*s)
		return NULL;
	nl = strchr(s, '\n');
	if (nl) {
		*nl = '\0';
		*cur = nl + 1;
	} else
		*cur = s + strlen(s);
	return s;
}

char *textin_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}
