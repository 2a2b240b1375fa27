/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine/textin.h - reading text input that a user names: INI files (rp_config_load)
 * and rpbench's job files. Whatever the path names, reading it never blocks (a FIFO, a
 * terminal, /dev/zero are refused by kind before anything is read) and never grows
 * without bound (a file and a line limit, each named in the error).
 */
#ifndef RINGPAGER_ENGINE_TEXTIN_H
#define RINGPAGER_ENGINE_TEXTIN_H

#include <stddef.h>

/* Reads the regular file `path` whole into a malloc'ed, NUL-terminated buffer (*out,
 * freed by the caller). Refused, with a message in msg that names the path: a path that
 * is not a regular file (-EISDIR for a directory, -EINVAL for a FIFO, a device or a
 * socket), a file over max_bytes (-EFBIG), a file holding a NUL byte (-EINVAL: not
 * text). -errno when it cannot be opened or read. */
int textin_read(const char *path, size_t max_bytes, char **out, char *msg, size_t msglen);

/* The next line of the buffer at *cur, without its newline (cut in place), or NULL at
 * the end; *cur moves past it. */
char *textin_line(char **cur);

/* Strips leading and trailing white space in place; returns the first non-blank byte. */
char *textin_trim(char *s);

#endif
