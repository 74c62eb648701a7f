/* buf.h: growable byte buffer with a hard size cap; growth failure is reported, never fatal. */
#ifndef PF_BUF_H
#define PF_BUF_H

#include <stddef.h>

typedef struct pf_buf {
  char *data;     /* always NUL-terminated when non-NULL */
  size_t len;
  size_t cap;     /* allocated bytes, excluding the terminating NUL */
  size_t limit;   /* 0 = no limit */
  int overflow;   /* set when an append was refused by limit */
  int nomem;      /* set when an allocation failed */
} pf_buf;

void pf_buf_init(pf_buf *b, size_t limit);
void pf_buf_free(pf_buf *b);
void pf_buf_reset(pf_buf *b);
/* Returns 0 on success, -1 when the limit or memory refused it (flags say which). */
int pf_buf_append(pf_buf *b, const void *p, size_t n);
int pf_buf_puts(pf_buf *b, const char *s);
/* Hand the NUL-terminated contents to the caller (NULL if empty); the buffer is reset. */
char *pf_buf_take(pf_buf *b);

#endif
