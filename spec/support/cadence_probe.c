/* cadence_probe.c: drives the poll policy's pure functions (csrc/engine/cadence.c) from stdin, one command a line, for spec/cadence_spec.lua. */
#include <stdio.h>
#include <string.h>

#include "cadence.h"

/* Commands (numbers separated by spaces), each answered with one line:
 *   opts INITIAL INTERVAL MAX BACKOFF JITTER MIN ADAPTIVE   -> ok
 *   add LO HI | fail | forget                                -> ok
 *   delay ELAPSED PROGRESS ETA NPOLLS OVERDUE                -> DELAY OVERDUE'
 *   delay0 ...  (the same with no learned window)            -> DELAY OVERDUE'
 *   first RND | first0 RND                                   -> DELAY
 *   model                                                    -> READY NOK MU SIGMA FAIL MEAN_END TAIL */
int main(void) {
  pf_opts o;
  pf_durations d;
  memset(&o, 0, sizeof o);
  memset(&d, 0, sizeof d);
  char line[512];
  while (fgets(line, sizeof line, stdin)) {
    char cmd[16];
    double a[8] = { 0 };
    int n = sscanf(line, "%15s %lf %lf %lf %lf %lf %lf %lf %lf", cmd, &a[0], &a[1], &a[2], &a[3],
                   &a[4], &a[5], &a[6], &a[7]);
    if (n < 1) continue;
    if (strcmp(cmd, "opts") == 0) {
      o.poll_initial = a[0];
      o.poll_interval = a[1];
      o.poll_max = a[2];
      o.poll_backoff = a[3];
      o.poll_jitter = a[4];
      o.poll_min = a[5];
      o.poll_adaptive = a[6] != 0;
      puts("ok");
    } else if (strcmp(cmd, "add") == 0) {
      pf_durations_add(&d, a[0], a[1]);
      puts("ok");
    } else if (strcmp(cmd, "fail") == 0) {
      pf_durations_fail(&d);
      puts("ok");
    } else if (strcmp(cmd, "forget") == 0) {
      memset(&d, 0, sizeof d);
      puts("ok");
    } else if (strcmp(cmd, "delay") == 0 || strcmp(cmd, "delay0") == 0) {
      int overdue = (int)a[4];
      double g = pf_poll_delay(&o, a[0], (int)a[1], a[2], (int)a[3], &overdue,
                               strcmp(cmd, "delay") == 0 ? &d : NULL);
      printf("%.17g %d\n", g, overdue);
    } else if (strcmp(cmd, "first") == 0 || strcmp(cmd, "first0") == 0) {
      printf("%.17g\n", pf_poll_first(&o, strcmp(cmd, "first") == 0 ? &d : NULL, a[0]));
    } else if (strcmp(cmd, "model") == 0) {
      printf("%d %zu %.17g %.17g %.17g %.17g %.17g\n", d.ready, d.nok, d.mu, d.sigma, d.fail,
             d.mean_end, d.tail);
    } else {
      puts("?");
    }
    fflush(stdout);
  }
  return 0;
}
