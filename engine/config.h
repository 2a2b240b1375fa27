/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine/config.h - the configuration keys' table, for what must list every key (the
 * test that README.md's key table names each key and no other).
 */
#ifndef RINGPAGER_ENGINE_CONFIG_H
#define RINGPAGER_ENGINE_CONFIG_H

/* The name of the i-th configuration key, or NULL past the last. */
const char *config_key_name(unsigned i);

#endif
