/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ringpager.h - the public API of ringpager, the only header a user includes.
 *
 * ringpager maps regions of files and block devices into memory and serves their page
 * faults in userspace: pages are loaded with O_DIRECT reads into ringpager's own RAM pool,
 * sequential runs are read ahead in batches, and modified pages are written back only
 * when the application asks (see the README).
 *
 * This header grows with the library: it declares only what is implemented. The engine,
 * stores, mappings and writeout (rp_engine_open, rp_map, rp_writeout, ...) arrive with
 * the virtual-memory core.
 *
 * Errors: every function that can fail returns a negative errno value; rp_strerror()
 * turns it into text. Nothing in the library aborts the process.
 */
#ifndef RINGPAGER_H
#define RINGPAGER_H

#ifdef __cplusplus
extern "C" {
#endif

/* Only the functions marked RP_API are exported by libringpager.so. */
#define RP_API __attribute__((visibility("default")))

#define RINGPAGER_VERSION_MAJOR 0
#define RINGPAGER_VERSION_MINOR 1
#define RINGPAGER_VERSION_PATCH 0

/* The library's version as "MAJOR.MINOR.PATCH"; compare with the macros above to detect a
 * header/library mismatch. */
RP_API const char *rp_version(void);

/* Text for a ringpager error code: a negative errno value (or a positive one, taken as its
 * negation). Never returns NULL; unknown codes get "unknown error N". The returned string
 * is static or thread-local and stays valid until the next call on the same thread. */
RP_API const char *rp_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
