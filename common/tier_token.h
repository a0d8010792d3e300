/*
 * tier_token.h -- reading a bearer token, on the client side.
 *
 * A token lives in a file of its own (one line), readable by its owner
 * only, as an ssh key does: tier_token_read refuses a file that group or
 * others can read, so a token cannot leak through a careless chmod
 * unnoticed.  Programs take it from --token-file, else TIER_TOKEN_FILE,
 * else TIER_TOKEN (the token itself, for containers that inject secrets
 * as variables); never from a command-line argument, which every user of
 * the machine can see.
 */
#ifndef TIER_TOKEN_H
#define TIER_TOKEN_H

#include <stddef.h>

#define TIER_TOKEN_MAX 256 /* bytes; TIER_RPC_MAX_TOKEN */

/* Reads the token in path into buf (NUL-terminated, newline stripped).
 * Returns a tier_status with the reason in err. */
int tier_token_read(const char *path, char *buf, size_t len, char *err, size_t errlen);

/* The token a program should use: from file (may be NULL), else
 * TIER_TOKEN_FILE, else TIER_TOKEN.  TIER_OK with buf "" when none is set. */
int tier_token_find(const char *file, char *buf, size_t len, char *err, size_t errlen);

#endif
