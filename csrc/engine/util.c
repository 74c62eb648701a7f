/* util.c: the small helpers every part of the core shares: clocks, string copies, and memory
 * for secrets. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* memset through a volatile pointer: a wipe the compiler cannot drop as a dead store */
static void *(*const volatile wipe_memset)(void *, int, size_t) = memset;

void pf_wipe(void *p, size_t n) {
  if (p && n) wipe_memset(p, 0, n);
}

void *pf_secret_map(size_t n, size_t *cap) {
  long page = sysconf(_SC_PAGESIZE);
  size_t ps = page > 0 ? (size_t)page : 4096;
  size_t size = n == 0 ? ps : (n + ps - 1) / ps * ps;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
#ifdef MADV_DONTDUMP
  madvise(p, size, MADV_DONTDUMP);         /* not in core dumps (Linux 3.4+) */
#endif
#ifdef MADV_WIPEONFORK
  madvise(p, size, MADV_WIPEONFORK);       /* a fork()ed child gets zeros (Linux 4.14+) */
#endif
  mlock(p, size);                          /* never swapped, where RLIMIT_MEMLOCK allows */
  *cap = size;
  return p;
}

/* Zero the stack below the caller's frame: where the frames of the functions it called were
 * (vsnprintf's work areas, libcurl's, a header line an adapter formatted). */
__attribute__((noinline)) static void scrub_stack(void) {
  unsigned char below[32 * 1024];
  pf_wipe(below, sizeof below);
}

/* After a request was built or sent, or a reply read: the stack the callees used is zeroed, and
 * so are the vector registers, which keep the last bytes that memcpy, strlen and friends moved
 * through them (a core dump shows them in its register notes). The registers are cleared on
 * x86-64 only; every vector register is caller-saved there, so no caller holds a value in one
 * across this call. */
__attribute__((noinline)) void pf_scrub_secrets(void) {
  scrub_stack();
#if defined(__x86_64__) && defined(__GNUC__)
  if (__builtin_cpu_supports("avx512f"))
    __asm__ volatile(".irp r,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n\t"
                     "vpxord %%zmm\\r, %%zmm\\r, %%zmm\\r\n\t.endr\n\tvzeroall"
                     ::: "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                     "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
  else if (__builtin_cpu_supports("avx"))
    __asm__ volatile("vzeroall" ::: "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
                     "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
                     "xmm15");
  else
    __asm__ volatile(".irp r,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n\t"
                     "pxor %%xmm\\r, %%xmm\\r\n\t.endr"
                     ::: "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                     "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
#endif
}

void pf_secret_unmap(void *p, size_t cap) {
  if (!p) return;
  pf_wipe(p, cap);
  munlock(p, cap);
  munmap(p, cap);
}

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

