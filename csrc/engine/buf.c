/* buf.c: growable byte buffer used for response bodies and request bodies. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void pf_buf_init(pf_buf *b, size_t limit) {
  memset(b, 0, sizeof *b);
  b->limit = limit;
}

void pf_buf_free(pf_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void pf_buf_reset(pf_buf *b) {
  b->len = 0;
  b->overflow = b->nomem = 0;
  if (b->data) b->data[0] = '\0';
}

int pf_buf_append(pf_buf *b, const void *p, size_t n) {
  if (b->limit && (b->len + n > b->limit || b->len + n < b->len)) {
    b->overflow = 1;
    return -1;
  }
  if (b->len + n > b->cap) {
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->len + n) {
      if (ncap > (size_t)-1 / 2) { b->nomem = 1; return -1; }
      ncap *= 2;
    }
    char *nd = realloc(b->data, ncap + 1);
    if (!nd) { b->nomem = 1; return -1; }
    b->data = nd;
    b->cap = ncap;
  }
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int pf_buf_puts(pf_buf *b, const char *s) {
  return pf_buf_append(b, s, strlen(s));
}

char *pf_buf_take(pf_buf *b) {
  char *d = b->data;
  b->data = NULL;
  b->len = b->cap = 0;
  b->overflow = b->nomem = 0;
  return d;
}
