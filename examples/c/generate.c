/* generate.c: one video from a C program through the engine's C interface alone (no Lua).
 *
 *   build/examples/generate BASE_URL OUT.mp4 [PROMPT]
 *
 * BASE_URL speaks apimart's wire protocol (the sandbox's /apimart, or https://api.apimart.ai);
 * the key comes from APIMART_API_KEY. It submits a 5-second text-to-video task, pumps the
 * client the way a game loop would (pf_client_pump(c, 0) once a frame, here with a short sleep
 * between frames), downloads the result to OUT.mp4 and exits 0; any failure prints the engine's
 * error and exits 1. The same calls serve a C or C++ host (a Godot, Unreal or Unity plugin). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"

static int fail(const char *what, const pf_err *e) {
  fprintf(stderr, "generate: %s: [%s] %s\n", what, pf_errkind_name(e->kind), e->message);
  return 1;
}

/* The engine has no defaults of its own: a host passes every number (these are
 * lua/pixflow/defaults.lua's, with faster polls for a short demo). */
static pf_opts options(void) {
  pf_opts o;
  memset(&o, 0, sizeof o);
  o.connect_ms = 10000;
  o.request_ms = 60000;
  o.download_ms = 3600000;
  o.low_speed_bytes = 1;
  o.low_speed_secs = 30;
  o.max_body = 8u << 20;
  o.max_download = 4LL << 30;
  o.max_per_host = 8;
  o.poll_initial = 0.5;
  o.poll_interval = 1;
  o.poll_max = 30;
  o.poll_backoff = 1.5;
  o.poll_jitter = 0.2;
  o.poll_min = 0.25;
  o.poll_rate = 0;
  o.poll_adaptive = 1;
  o.poll_list = 1;                                     /* DashScope: one task-list query a round */
  o.max_poll_failures = 8;
  o.download_attempts = 5;
  o.upload_attempts = 4;
  o.submit_attempts = 4;
  o.retry_base = 1;
  o.retry_max = 60;
  o.retry_after_max = 300;
  o.task_timeout = 1800;
  o.lookup_delay = 2;
  o.lookup_attempts = 3;
  o.budget = 0.0003;                                   /* at most 0.3 ms of work per pump */
  o.user_agent = "pixflow-generate/" PF_VERSION;
  return o;
}

static char *dup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s BASE_URL OUT.mp4 [PROMPT]   (key in APIMART_API_KEY)\n", argv[0]);
    return 2;
  }
  const char *key = getenv("APIMART_API_KEY");
  if (!key || !key[0]) {
    fprintf(stderr, "generate: set APIMART_API_KEY (any value works on the sandbox)\n");
    return 2;
  }
  pf_err e;
  if (pf_init(&e) != 0) return fail("init", &e);

  pf_client_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.provider = "apimart";
  cfg.adapter = "apimart";
  cfg.base_url = argv[1];
  cfg.api_key = key;
  cfg.api_key_len = strlen(key);
  cfg.auth = "bearer";
  cfg.o = options();
  pf_client *c;
  if (pf_client_new(&cfg, &c, &e) != 0) return fail("client", &e);

  /* the request as the engine takes it: already valid for the gateway (the Lua layer's
   * validate.lua checks a user's request; a C host checks its own) */
  pf_request rq;
  memset(&rq, 0, sizeof rq);
  rq.mode = PF_MODE_TEXT;
  rq.model = dup("pixverse-v6");
  rq.prompt = dup(argc > 3 ? argv[3] : "a lighthouse at dusk, waves, slow dolly in");
  rq.duration = 5;
  rq.audio = rq.watermark = rq.expand_prompt = -1;
  if (!rq.model || !rq.prompt) {
    pf_request_free(&rq);
    pf_client_free(c);
    fprintf(stderr, "generate: out of memory\n");
    return 1;
  }
  pf_task *t = pf_client_submit(c, &rq, NULL, &e);
  if (!t) {
    pf_client_free(c);
    return fail("submit", &e);
  }

  int rc = 1, downloading = 0, last_progress = -2;
  struct timespec frame = { 0, 20 * 1000 * 1000 };     /* a 50 Hz "frame" */
  for (;;) {
    pf_client_pump(c, 0, NULL);                          /* never waits */
    int visible;
    pf_task *ch;
    while ((ch = pf_client_next_change(c, &visible))) pf_client_drop_change(c);
    pf_state st = pf_task_state(t);
    if (!downloading && pf_task_progress(t) != last_progress && !pf_state_terminal(st)) {
      last_progress = pf_task_progress(t);
      printf("%s %s %d%%\n", pf_task_id(t) ? pf_task_id(t) : "-", pf_state_name(st),
             last_progress < 0 ? 0 : last_progress);
    }
    if (!downloading && st == PF_ST_SUCCEEDED) {
      if (pf_task_download(t, argv[2], &e) != 0) { rc = fail("download", &e); break; }
      downloading = 1;
    } else if (!downloading && pf_state_terminal(st)) {
      pf_err te;
      if (!pf_task_error(t, PF_TE_TASK, &te)) pf_err_set(&te, PF_EK_FAILED, 0, "failed", "%s", pf_state_name(st));
      rc = fail("generation", &te);
      break;
    } else if (downloading && pf_task_download_state(t) == PF_DL_DONE) {
      printf("%s downloaded to %s\n", pf_task_id(t), pf_task_path(t));
      rc = 0;
      break;
    } else if (downloading && pf_task_download_state(t) == PF_DL_FAILED) {
      pf_err de;
      pf_task_error(t, PF_TE_DOWNLOAD, &de);
      rc = fail("download", &de);
      break;
    }
    nanosleep(&frame, NULL);
  }
  pf_task_free(t);
  pf_client_free(c);
  pf_drain(10);                       /* the worker finishes what the client left (journal, files) */
  return rc;
}
