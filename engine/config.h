/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine/config.h - the configuration keys' table (engine/config.c: name, type, range or
 * words, default, description), for what else must know every key: rp_engine_open's
 * check of a whole rp_config, and the test that README.md's key table is the table.
 */
#ifndef RINGPAGER_ENGINE_CONFIG_H
#define RINGPAGER_ENGINE_CONFIG_H

#include "ringpager.h"

/* The name of the i-th configuration key, or NULL past the last. */
const char *config_key_name(unsigned i);

/* The i-th key's row of README.md's table ("| `key` | default | what it takes |"), from
 * the table: 0, -EINVAL past the last key, -ERANGE when buf is too small. */
int config_readme_row(unsigned i, char *buf, size_t len);

/* Checks every field of cfg, however it was set, by the rules of the key that sets it
 * (what rp_config_set would take), and reclaim_low below reclaim_high. 0, or -EINVAL
 * with rp_errmsg "<fn>: <key>=<value>: expected ...". */
int config_check(const rp_config *cfg, const char *fn);

#endif
