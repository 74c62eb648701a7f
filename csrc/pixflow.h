/* pixflow.h: includes, export macro and small helpers shared by every file of the C core. */
#ifndef PIXFLOW_H
#define PIXFLOW_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 504
#error "pixflow needs Lua 5.4"
#endif

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
