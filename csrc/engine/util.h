/* util.h: the export macro, clocks and string copies shared by every file of the engine. */
#ifndef PF_UTIL_H
#define PF_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define PF_VERSION "0.1.0"

#if defined(__GNUC__)
#define PF_API __attribute__((visibility("default")))
#else
#define PF_API
#endif

/* Monotonic seconds since an arbitrary origin. */
double pf_monotonic(void);
/* Wall-clock seconds since the Unix epoch. */
double pf_walltime(void);

/* strdup that returns NULL on allocation failure (C11 has no strdup). */
char *pf_strdup(const char *s);
char *pf_strndup(const char *s, size_t n);

#endif
