/* clock.c: the client's clock (monotonic or manual), its random numbers and its adapter context. */
#include <stdint.h>

#include "hash.h"
#include "internal.h"

/* The engine's clock: every due time, back-off and deadline is read from it. Tests inject a
 * manual one (option clock = "manual") that only _advance_clock moves. */
double pf_client_now(const pf_client *c) {
  return (c->manual_clock ? c->clock_origin : pf_monotonic()) + c->clock_offset;
}

double pf_client_rand(pf_client *c) {
  /* xorshift64*: jitter only, not for anything secret */
  uint64_t x = c->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  c->rng = x;
  return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* Unix time as the client sees it: a manual clock moves it too, so that the gateways' absolute
 * times (apimart's created + estimated_time) agree with the engine's clock in tests and benchmarks. */
double pf_client_wall(const pf_client *c) {
  return c->manual_clock ? c->wall_origin + (pf_client_now(c) - c->clock_origin) : pf_walltime();
}

pf_ctx pf_client_ctx(const pf_client *c, char trace[37]) {
  /* a UUID costs a getrandom() call: only for gateways that want one per request */
  if (c->adapter->trace_ids) pf_uuid4(trace);
  else trace[0] = '\0';
  pf_ctx ctx = { c->provider, c->base_url, c->api_key, pf_client_wall(c), c->auth, trace,
                 c->ref_names };
  return ctx;
}
