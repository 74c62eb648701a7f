/* floor.c: the benchmark floor: W1's exchanges on libcurl's multi interface, nothing else.
 *
 * Each task is one submit to the sandbox's apimart emulation, status reads until the task is
 * done, and a download of the result to a file (written to .part, fsync'd, renamed, as pixflow
 * does). No adapters (the replies are searched with strstr), no Lua, no journal: what is left
 * is the least any client must spend on these exchanges, so pixflow's CPU above it is pixflow's.
 *
 * usage: floor BASE_URL TASKS CONCURRENCY OUTDIR PROMPT
 * Prints one JSON line: {"tasks":N,"ok":N,"cpu":s,"wall":s,"rss_kb":N}.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

enum { SUBMIT, STATUS, DOWNLOAD, DONE, FAILED };

typedef struct task {
  int n, step;
  CURL *easy;
  struct curl_slist *hdrs;
  char id[128], url[1024], path[1024], part[1040];
  char *body;
  size_t len, cap;
  FILE *fp;
} task;

static const char *g_base, *g_outdir;
static char g_submit_body[4096];

static double now(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long peak_rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) kb = strtol(line + 6, NULL, 10);
  if (f) fclose(f);
  return kb;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud) {
  task *t = ud;
  size_t n = sz * nm;
  if (t->step == DOWNLOAD) return fwrite(p, 1, n, t->fp);
  if (t->len + n + 1 > t->cap) {
    size_t cap = (t->len + n + 1) * 2;
    char *nb = realloc(t->body, cap);
    if (!nb) return 0;
    t->body = nb;
    t->cap = cap;
  }
  memcpy(t->body + t->len, p, n);
  t->len += n;
  t->body[t->len] = '\0';
  return n;
}

/* The string value after key (e.g. "\"task_id\":\""), up to the next quote. */
static int find_str(const char *body, const char *key, char *out, size_t n) {
  const char *p = body ? strstr(body, key) : NULL;
  if (!p) return -1;
  p += strlen(key);
  const char *e = strchr(p, '"');
  if (!e || (size_t)(e - p) >= n) return -1;
  memcpy(out, p, (size_t)(e - p));
  out[e - p] = '\0';
  return 0;
}

static int start(CURLM *m, task *t) {
  char url[1200];
  t->len = 0;
  if (!t->easy && !(t->easy = curl_easy_init())) return -1;
  curl_easy_reset(t->easy);
  curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
  curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(t->easy, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->hdrs);
  switch (t->step) {
    case SUBMIT:
      snprintf(url, sizeof url, "%s/v1/videos/generations", g_base);
      curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, g_submit_body);
      break;
    case STATUS:
      snprintf(url, sizeof url, "%s/v1/tasks/%s", g_base, t->id);
      break;
    default:
      snprintf(url, sizeof url, "%s", t->url);
      snprintf(t->path, sizeof t->path, "%s/floor-%d.mp4", g_outdir, t->n);
      snprintf(t->part, sizeof t->part, "%s.part", t->path);
      if (!(t->fp = fopen(t->part, "wb"))) return -1;
  }
  curl_easy_setopt(t->easy, CURLOPT_URL, url);
  return curl_multi_add_handle(m, t->easy) == CURLM_OK ? 0 : -1;
}

/* A transfer of t ended: move to its next step and start it, or finish. */
static void advance(CURLM *m, task *t, CURLcode rc) {
  curl_multi_remove_handle(m, t->easy);
  if (rc != CURLE_OK) { t->step = FAILED; return; }
  if (t->step == SUBMIT) {
    if (find_str(t->body, "\"task_id\":\"", t->id, sizeof t->id) != 0) { t->step = FAILED; return; }
    t->step = STATUS;
  } else if (t->step == STATUS) {
    if (strstr(t->body, "\"status\":\"completed\"")) {
      if (find_str(t->body, "\"url\":[\"", t->url, sizeof t->url) != 0) { t->step = FAILED; return; }
      t->step = DOWNLOAD;
    } else if (strstr(t->body, "\"status\":\"failed\"")) {
      t->step = FAILED;
      return;
    }
  } else {
    int ok = fflush(t->fp) == 0 && fsync(fileno(t->fp)) == 0;
    ok = fclose(t->fp) == 0 && ok;
    t->fp = NULL;
    t->step = ok && rename(t->part, t->path) == 0 ? DONE : FAILED;
    return;
  }
  if (start(m, t) != 0) t->step = FAILED;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: floor BASE_URL TASKS CONCURRENCY OUTDIR PROMPT\n");
    return 2;
  }
  g_base = argv[1];
  int ntasks = atoi(argv[2]), conc = atoi(argv[3]);
  g_outdir = argv[4];
  snprintf(g_submit_body, sizeof g_submit_body,
           "{\"model\":\"pixverse-v6\",\"prompt\":\"%s\",\"duration\":5,\"resolution\":\"540p\"}",
           argv[5]);
  if (ntasks < 1 || conc < 1) return 2;
  double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURLM *m = curl_multi_init();
  task *tasks = calloc((size_t)ntasks, sizeof *tasks);
  struct curl_slist *hdrs = curl_slist_append(NULL, "Authorization: Bearer bench-key");
  hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
  if (!m || !tasks || !hdrs) return 1;
  curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)conc);
  /* at most conc tasks at a time, like pixflow's per-host slots */
  int next = 0, live = 0, ok = 0, done = 0;
  while (done < ntasks) {
    while (live < conc && next < ntasks) {
      task *t = &tasks[next];
      t->n = next++;
      t->hdrs = hdrs;
      if (start(m, t) != 0) { t->step = FAILED; done++; continue; }
      live++;
    }
    int running;
    curl_multi_perform(m, &running);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left))) {
      if (msg->msg != CURLMSG_DONE) continue;
      task *t;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
      advance(m, t, msg->data.result);
      if (t->step == DONE || t->step == FAILED) {
        ok += t->step == DONE;
        done++;
        live--;
        curl_easy_cleanup(t->easy);
        t->easy = NULL;
        free(t->body);
        t->body = NULL;
      }
    }
    if (done < ntasks) curl_multi_poll(m, NULL, 0, 100, NULL);
  }
  double cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0, wall = now(CLOCK_MONOTONIC) - w0;
  printf("{\"tasks\":%d,\"ok\":%d,\"cpu\":%.6f,\"wall\":%.6f,\"rss_kb\":%ld}\n", ntasks, ok, cpu,
         wall, peak_rss_kb());
  curl_slist_free_all(hdrs);
  free(tasks);
  curl_multi_cleanup(m);
  curl_global_cleanup();
  return ok == ntasks ? 0 : 1;
}
