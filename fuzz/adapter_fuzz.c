/* adapter_fuzz.c: libFuzzer target for one adapter's response parsers (PF_FUZZ_ADAPTER picks it). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"

#ifndef PF_FUZZ_ADAPTER
#error "build with -DPF_FUZZ_ADAPTER=pf_adapter_<name>"
#endif

/* Input layout: byte 0 picks the parser, byte 1 the HTTP status, byte 2 the upload step and
 * the context's flavour; the rest is the response body, exactly as a gateway might send it. */
static const long statuses[] = { 200, 201, 202, 204, 400, 401, 402, 403, 404, 408, 409, 413,
                                 422, 429, 500, 502, 503, 504, 302, 0 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const pf_adapter *a = &PF_FUZZ_ADAPTER;
  if (size < 3) return 0;
  int which = data[0] % 6;
  long http = statuses[data[1] % (sizeof statuses / sizeof statuses[0])];
  int flavour = data[2];
  size_t len = size - 3;
  char *body = malloc(len + 1);
  if (!body) return 0;
  memcpy(body, data + 3, len);
  body[len] = '\0';                         /* the transport NUL-terminates every body */
  pf_ctx ctx = { "fuzz", "http://127.0.0.1:1", "sk-fuzz", 1.7e9,
                 (flavour & 1) ? "api-key" : "bearer", "00000000-0000-4000-8000-000000000000",
                 (flavour >> 1) & 1 };
  pf_err e;
  pf_err_clear(&e);
  switch (which) {
    case 0: {
      char *id = NULL;
      if (a->parse_submit(&ctx, http, body, len, &id, &e) == 0 && !id) abort();
      free(id);
      break;
    }
    case 1: case 2: {
      pf_status st;
      pf_status_init(&st);
      int (*parse)(const pf_ctx *, long, const char *, size_t, pf_status *, pf_err *) =
        which == 2 && a->parse_result ? a->parse_result : a->parse_status;
      if (parse(&ctx, http, body, len, &st, &e) == 0) {
        if (st.state == PF_ST_SUCCEEDED && !st.need_result && st.nvideos == 0) abort();
        for (size_t i = 0; i < st.nvideos; i++) if (!st.videos[i].url) abort();
      }
      pf_status_free(&st);
      break;
    }
    case 3:
      if (a->parse_upload) {
        pf_upload up;
        memset(&up, 0, sizeof up);
        up.path = "/tmp/hero.png";
        up.filename = "hero.png";
        up.mime = "image/png";
        up.model = "pixverse-v5";
        up.step = (flavour >> 2) & 1;
        if (up.step) up.state = json_pack("{s:s,s:s,s:s}", "upload_host", "http://127.0.0.1:1",
                                          "upload_dir", "dir", "policy", "p");
        int r = a->parse_upload(&ctx, &up, http, body, len, &e);
        if (r == 0 && !up.result) abort();
        free(up.result);
        json_decref(up.state);
      }
      break;
    case 4:
      if (a->parse_cancel) a->parse_cancel(&ctx, http, body, len, &e);
      break;
    case 5:
      if (a->parse_list) {
        json_t *items = NULL;
        int more = 0;
        long total = 0;
        if (a->parse_list(&ctx, http, body, len, &items, &more, &total, &e) == 0 &&
            (!json_is_array(items) || more < -1 || more > 1))
          abort();
        json_decref(items);
      }
      break;
  }
  /* every error message must be valid UTF-8 and NUL-terminated within its buffer */
  if (memchr(e.message, '\0', sizeof e.message) == NULL) abort();
  if (memchr(e.code, '\0', sizeof e.code) == NULL) abort();
  free(body);
  return 0;
}
