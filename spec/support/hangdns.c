/* hangdns.c: a resolver that never answers, for specs: getaddrinfo() of a name ending in
 * ".hang.test" sleeps HANGDNS_SECONDS (default 30) before failing; every other name goes to the
 * real resolver. Loaded with LD_PRELOAD; nothing leaves the machine. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
  size_t n = node ? strlen(node) : 0;
  if (n >= 10 && strcmp(node + n - 10, ".hang.test") == 0) {
    const char *s = getenv("HANGDNS_SECONDS");
    unsigned left = s ? (unsigned)atoi(s) : 30;
    while (left > 0) left = sleep(left);
    return EAI_AGAIN;
  }
  gai_fn real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
  return real ? real(node, service, hints, res) : EAI_FAIL;
}
