/* hash.c: SHA-256 (OpenSSL EVP) of buffers and of regular files opened without blocking; UUIDs. */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "hash.h"

static void to_hex(const unsigned char *d, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[d[i] >> 4];
    out[2 * i + 1] = digits[d[i] & 15];
  }
  out[2 * n] = '\0';
}

int pf_sha256_hex(const void *data, size_t len, char hex[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1) return -1;
  to_hex(md, mdlen, hex);
  return 0;
}

const char *pf_file_kind(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

static int not_regular(const char *path, mode_t mode, pf_err *err) {
  pf_err_set(err, PF_EK_INVALID, 0, "not_a_file", "%s is %s, not a regular file: give an image file",
             path, pf_file_kind(mode));
  return -1;
}

/* Open path for reading if it is a regular file (see pf_open_regular): the descriptor, or -1
 * with *e the errno of the call that failed, or -2 when it is no regular file (*st says what). */
static int open_checked(const char *path, struct stat *st, int *e) {
  if (stat(path, st) != 0) { *e = errno; return -1; }
  if (!S_ISREG(st->st_mode)) return -2;     /* never a device or a FIFO: those are not opened */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) { *e = errno; return -1; }
  if (fstat(fd, st) != 0) {
    *e = errno;
    close(fd);
    return -1;
  }
  if (!S_ISREG(st->st_mode)) {              /* replaced between the stat and the open */
    close(fd);
    return -2;
  }
  return fd;
}

int pf_open_regular(const char *path, long long *size, pf_err *err) {
  struct stat st;
  int e = 0;
  int fd = open_checked(path, &st, &e);
  if (fd == -2) return not_regular(path, st.st_mode, err);
  if (fd < 0) {
    pf_err_set(err, PF_EK_IO, 0, "open", "cannot read %s: %s", path, strerror(e));
    return -1;
  }
  *size = (long long)st.st_size;
  return fd;
}

/* A path the user can fix (it names no readable file) rather than a failing disk. */
static int path_problem(int e) {
  return e == ENOENT || e == ENOTDIR || e == EACCES || e == EPERM || e == ELOOP ||
         e == ENAMETOOLONG || e == EISDIR || e == ENXIO;
}

int pf_open_image(const char *path, pf_err *err) {
  struct stat st;
  int e = 0;
  int fd = open_checked(path, &st, &e);
  if (fd == -1) {
    pf_err_set(err, path_problem(e) ? PF_EK_INVALID : PF_EK_IO, 0, "bad_image",
               "\"%s\" cannot be read (%s: %s)", path, path, strerror(e));
    return -1;
  }
  if (fd == -2) {
    pf_err_set(err, PF_EK_INVALID, 0, "bad_image", "\"%s\" is %s, not a regular file: give an "
               "image file", path, pf_file_kind(st.st_mode));
    return -1;
  }
  if (st.st_size == 0 || (long long)st.st_size > PF_MAX_IMAGE_BYTES) {
    close(fd);
    if (st.st_size == 0) pf_err_set(err, PF_EK_INVALID, 0, "bad_image", "\"%s\" is empty", path);
    else pf_err_set(err, PF_EK_INVALID, 0, "bad_image", "\"%s\" is %lld bytes; gateways take "
                    "images up to %lld MB", path, (long long)st.st_size, PF_MAX_IMAGE_BYTES / 1048576);
    return -1;
  }
  return fd;
}

int pf_sha256_fd(int fd, const char *path, char hex[65], long long *size, pf_err *err) {
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(md);
    close(fd);
    pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory hashing %s", path);
    return -1;
  }
  unsigned char buf[65536];
  long long total = 0;
  int ok = 1, rerr = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      rerr = errno;
      break;
    }
    if (n == 0) break;
    total += (long long)n;
    if (EVP_DigestUpdate(md, buf, (size_t)n) != 1) { ok = 0; break; }
  }
  close(fd);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int outlen = 0;
  if (ok && !rerr) ok = EVP_DigestFinal_ex(md, out, &outlen) == 1;
  EVP_MD_CTX_free(md);
  if (rerr) {
    pf_err_set(err, PF_EK_IO, 0, "read", "cannot read %s: %s", path, strerror(rerr));
    return -1;
  }
  if (!ok) {
    pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "hashing %s failed", path);
    return -1;
  }
  to_hex(out, outlen, hex);
  *size = total;
  return 0;
}

void pf_uuid4(char out[37]) {
  unsigned char b[16];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t r = getrandom(b + got, sizeof b - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      /* no kernel randomness: a trace id must only be unique, so mix time and address */
      for (size_t i = got; i < sizeof b; i++) b[i] = (unsigned char)(((uintptr_t)&b + i * 131u) ^ (unsigned)clock());
      break;
    }
    got += (size_t)r;
  }
  b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  for (size_t i = 0; i < sizeof b; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
    out[o++] = hex[b[i] >> 4];
    out[o++] = hex[b[i] & 15];
  }
  out[o] = '\0';
}

static void crypto_warm_once(void) {
  (void)RAND_status();
}

void pf_crypto_warm(void) {
  /* instantiates OpenSSL's primary random generator (its providers, its cipher): 0.7 ms the
   * first time, which libcurl's first multipart body (curl_mime_init makes a random boundary)
   * otherwise paid inside a pump. Once per process: two workers starting together raced on
   * OpenSSL's unlocked method pointer (helgrind) */
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, crypto_warm_once);
}

int pf_crypto_init(void) {
  /* whoever initialises OpenSSL first decides: a host that did so before (with the atexit
   * cleanup) keeps it, and pixflow's own at-exit wait (pf_worker_quiesce) covers that case */
  return OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL) == 1 ? 0 : -1;
}

void pf_crypto_thread_end(void) {
  OPENSSL_thread_stop();
}
