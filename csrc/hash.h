/* hash.h: SHA-256 (OpenSSL's EVP) for the upload cache, and random UUIDs for trace ids. */
#ifndef PF_HASH_H
#define PF_HASH_H

#include <stddef.h>

#include "error.h"

/* Hex SHA-256 of a file's bytes; *size gets its length. -1 with an io error on failure. */
int pf_sha256_file(const char *path, char hex[65], long long *size, pf_err *err);
/* Hex SHA-256 of a buffer. -1 on failure (out of memory in OpenSSL). */
int pf_sha256_hex(const void *data, size_t len, char hex[65]);
/* A random (version 4) UUID in its 36-character text form. */
void pf_uuid4(char out[37]);

#endif
