/* hash.h: SHA-256 (OpenSSL's EVP) for the upload cache, and random UUIDs for trace ids. */
#ifndef PF_HASH_H
#define PF_HASH_H

#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/* Open path for reading if it is a regular file, without ever blocking: it is checked with
 * stat() before it is opened (so a device is never opened), opened O_NONBLOCK (so a FIFO
 * swapped in meanwhile cannot hang the open) and checked again with fstat(). Returns the file
 * descriptor (close-on-exec) and its size in *size; -1 with an invalid error (a directory,
 * FIFO, device or socket) or an io error. */
int pf_open_regular(const char *path, long long *size, pf_err *err);
/* "a directory", "a FIFO (named pipe)", ... : what a file of this mode is, for messages. */
const char *pf_file_kind(mode_t mode);
/* The largest local image pixflow uploads: every gateway's documented cap is 20 MB or more
 * (validate.lua says the same to a file the client's uploader takes). */
#define PF_MAX_IMAGE_BYTES (20LL * 1024 * 1024)
/* Open a local image file for reading, checked as the validation would: a regular file
 * (opened as pf_open_regular does), readable, not empty, at most PF_MAX_IMAGE_BYTES. The
 * descriptor; else -1, err's message "\"path\" <what is wrong>" (code "bad_image", kind invalid;
 * io for a failure of the disk rather than of the path). */
int pf_open_image(const char *path, pf_err *err);
/* Hex SHA-256 of the bytes of fd (path names it in errors), which it closes; *size gets their
 * length. -1 with an io error on failure. */
int pf_sha256_fd(int fd, const char *path, char hex[65], long long *size, pf_err *err);
/* Hex SHA-256 of a buffer. -1 on failure (out of memory in OpenSSL). */
int pf_sha256_hex(const void *data, size_t len, char hex[65]);
/* Make OpenSSL's random generator ready (the worker does, when it starts). */
void pf_crypto_warm(void);
/* Initialise OpenSSL for the process, before libcurl does (pf_init): without its cleanup at
 * exit. OpenSSL's own atexit handler frees its global state while other threads may still use
 * it; a script's os.exit(0) during a worker's image hash crashed 2 runs in 5 that way. -1 when
 * OpenSSL cannot be initialised. */
int pf_crypto_init(void);
/* Free this thread's OpenSSL state now, not in its thread-exit destructor: a worker's last act,
 * before it counts itself finished (that destructor raced OpenSSL's atexit cleanup in a host
 * that lets OpenSSL clean up, a double free). */
void pf_crypto_thread_end(void);
/* A random (version 4) UUID in its 36-character text form. */
void pf_uuid4(char out[37]);

#endif
