/* main.c: pixflow-sandbox: parse options, serve on 127.0.0.1, stop on a signal or /_sandbox/shutdown. */
/* Built two ways from the same sources: the executable build/pixflow-sandbox (main below), and,
 * with -DSBX_MODULE, the Lua C module pixflow.sandbox, whose run(...) serves inside the calling
 * process until SIGINT, SIGTERM or /_sandbox/shutdown (LuaRocks cannot install an executable it
 * builds, so the installed `pixflow sandbox` runs the module; being one process, a kill of that
 * command stops the server with it). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"

sbx g_sbx;
struct MHD_Daemon *sbx_http_start(unsigned port);

static int wake_pipe[2] = { -1, -1 };
static volatile sig_atomic_t stopped_by;   /* the signal that stopped the server, or 0 */

static void on_signal(int sig) {
  stopped_by = sig;
  if (write(wake_pipe[1], "s", 1) < 0) { /* nothing more can be done in a handler */ }
}

static void usage(FILE *f) {
  fputs("usage: pixflow-sandbox [--port N] [--task-seconds S] [--seed N] [--exit-with-parent]\n"
        "  Emulates the Pixverse gateways on 127.0.0.1 (see docs/sandbox.md).\n"
        "  --port N            port to listen on; 0 (the default) picks a free one\n"
        "  --task-seconds S    how long a generation takes (default 8; a prompt's #seconds=S wins)\n"
        "  --seed N            seed for task ids, for reproducible runs (default: time)\n"
        "  --tls-cert FILE     serve HTTPS with this PEM certificate (and --tls-key FILE)\n"
        "  --exit-with-parent  stop when the process that started it dies\n", f);
}

static int parse_num(const char *opt, const char *val, double lo, double hi, double *out) {
  char *end;
  if (!val) { fprintf(stderr, "pixflow-sandbox: %s needs a value\n", opt); return -1; }
  errno = 0;
  double d = strtod(val, &end);
  if (errno || end == val || *end || d < lo || d > hi) {
    fprintf(stderr, "pixflow-sandbox: %s: '%s' is not a number from %g to %g\n", opt, val, lo, hi);
    return -1;
  }
  *out = d;
  return 0;
}

/* A whole file as a string (PEM), or NULL. */
static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t len = 0, cap = 0, n;
  char chunk[4096];
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (len + n + 1 > cap) {
      cap = (len + n + 1) * 2;
      char *nb = realloc(buf, cap);
      if (!nb) { free(buf); fclose(f); return NULL; }
      buf = nb;
    }
    memcpy(buf + len, chunk, n);
    len += n;
  }
  fclose(f);
  if (buf) buf[len] = '\0';
  return buf;
}

/* Serve until stopped; returns the exit status (0 after a signal or a shutdown request). Signal
 * handlers are installed for the run and the previous ones put back after it. */
static int sbx_serve(int argc, char **argv) {
  double port = 0, seconds = 8, seed = (double)time(NULL);
  int with_parent = 0;
  const char *cert = NULL, *key = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--port") == 0) { if (parse_num(a, argv[++i], 0, 65535, &port)) return 2; }
    else if (strcmp(a, "--task-seconds") == 0) { if (parse_num(a, argv[++i], 0, 86400, &seconds)) return 2; }
    else if (strcmp(a, "--seed") == 0) { if (parse_num(a, argv[++i], 0, 1e18, &seed)) return 2; }
    else if (strcmp(a, "--exit-with-parent") == 0) with_parent = 1;
    else if (strcmp(a, "--tls-cert") == 0 && i + 1 < argc) cert = argv[++i];
    else if (strcmp(a, "--tls-key") == 0 && i + 1 < argc) key = argv[++i];
    else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { usage(stdout); return 0; }
    else { fprintf(stderr, "pixflow-sandbox: unknown option '%s'\n", a); usage(stderr); return 2; }
  }
  if (!cert != !key) {
    fprintf(stderr, "pixflow-sandbox: --tls-cert and --tls-key go together\n");
    return 2;
  }
  /* one server per process: the state below is global */
  if (g_sbx.daemon) {
    fprintf(stderr, "pixflow-sandbox: a sandbox already runs in this process\n");
    return 1;
  }
  int rc = 0;
  struct sigaction sa, old_int, old_term, old_pipe;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  stopped_by = 0;
  g_sbx.task_seconds = seconds;
  g_sbx.rng = (uint64_t)seed * 0x9E3779B97F4A7C15ULL + 1;
  static int lock_ready;
  if (!lock_ready) { pthread_mutex_init(&g_sbx.lock, NULL); lock_ready = 1; }
  if (sbx_store_init(1 << 16) != 0 || pipe(wake_pipe) != 0) {
    fprintf(stderr, "pixflow-sandbox: out of memory\n");
    rc = 1;
    goto done;
  }
  g_sbx.wake_fd = wake_pipe[1];
  if (cert && (!(g_sbx.tls_cert = read_file(cert)) || !(g_sbx.tls_key = read_file(key)))) {
    fprintf(stderr, "pixflow-sandbox: cannot read %s: %s\n", g_sbx.tls_cert ? key : cert, strerror(errno));
    rc = 2;
    goto done;
  }
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, &old_pipe);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  if (with_parent) prctl(PR_SET_PDEATHSIG, SIGTERM);
  g_sbx.daemon = sbx_http_start((unsigned)port);
  if (!g_sbx.daemon) {
    fprintf(stderr, "pixflow-sandbox: cannot listen on 127.0.0.1:%u (%s)\n", (unsigned)port,
            strerror(errno));
    rc = 1;
  } else {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(g_sbx.daemon, MHD_DAEMON_INFO_BIND_PORT);
    g_sbx.port = info ? info->port : (unsigned)port;
    printf("pixflow sandbox: listening on %s://127.0.0.1:%u\n", g_sbx.tls_cert ? "https" : "http",
           g_sbx.port);
    fflush(stdout);
    char ch;
    while (read(wake_pipe[0], &ch, 1) < 0 && errno == EINTR) {}
    MHD_stop_daemon(g_sbx.daemon);
    g_sbx.daemon = NULL;
  }
  if (with_parent) prctl(PR_SET_PDEATHSIG, 0);
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  sigaction(SIGPIPE, &old_pipe, NULL);
done:
  if (g_sbx.buckets) sbx_reset();
  free(g_sbx.buckets);
  free(g_sbx.objects);
  g_sbx.buckets = NULL;
  g_sbx.objects = NULL;
  g_sbx.nbuckets = 0;
  free(g_sbx.tls_cert);
  free(g_sbx.tls_key);
  g_sbx.tls_cert = g_sbx.tls_key = NULL;
  for (int i = 0; i < 2; i++) {
    if (wake_pipe[i] >= 0) close(wake_pipe[i]);
    wake_pipe[i] = -1;
  }
  g_sbx.wake_fd = -1;
  return rc;
}

#ifndef SBX_MODULE
int main(int argc, char **argv) {
  return sbx_serve(argc, argv);
}
#else
#include <lauxlib.h>
#include <lua.h>

/* pixflow.sandbox.run(arg...): the executable's options as strings; serves in this process until
 * SIGINT, SIGTERM or /_sandbox/shutdown. Returns the exit status (0, or 1/2 on bad options or a
 * port that cannot be bound) and the name of the signal that stopped it, if one did. */
static int l_run(lua_State *L) {
  int n = lua_gettop(L);
  const char **argv = lua_newuserdatauv(L, sizeof *argv * (size_t)(n + 2), 0);
  argv[0] = "pixflow-sandbox";
  for (int i = 1; i <= n; i++) argv[i] = luaL_checkstring(L, i);
  argv[n + 1] = NULL;
  int rc = sbx_serve(n + 1, (char **)argv);
  lua_pushinteger(L, rc);
  if (stopped_by == SIGINT) lua_pushliteral(L, "SIGINT");
  else if (stopped_by == SIGTERM) lua_pushliteral(L, "SIGTERM");
  else lua_pushnil(L);
  return 2;
}

int luaopen_pixflow_sandbox(lua_State *L);
__attribute__((visibility("default"))) int luaopen_pixflow_sandbox(lua_State *L) {
  static const luaL_Reg fns[] = { { "run", l_run }, { NULL, NULL } };
  luaL_newlib(L, fns);
  return 1;
}
#endif
