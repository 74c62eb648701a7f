/* util.c: the small helpers every part of the core shares: clocks and string copies. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pixflow.h"

double pf_monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double pf_walltime(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *pf_strndup(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

char *pf_strdup(const char *s) {
  return pf_strndup(s, strlen(s));
}

