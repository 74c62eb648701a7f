/* journal_fuzz.c: libFuzzer target for the journal's JSONL import (csrc/journal.c) and its reads. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "reconcile.h"

/* A JSONL journal of an earlier pixflow is whatever a crash, a full disk or a hand edit left in
 * the file: the one-time import must turn every byte sequence into tasks and warnings, never
 * crash, and leave a database whose every task has a key. Each input gets a fresh in-memory
 * database; its tasks then go through the matcher as a task list would. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pf_journal *j = NULL;
  pf_err e;
  pf_err_clear(&e);
  if (pf_journal_open(":memory:", NULL, &j, NULL, &e) != 0) {
    if (e.kind == PF_EK_NOMEM) return 0;
    fprintf(stderr, "open: %s\n", e.message);
    abort();
  }
  char *warnings = NULL;
  if (pf_journal_import(j, (const char *)data, size, "fuzz.jsonl", 0, &warnings, &e) != 0 &&
      e.kind != PF_EK_NOMEM) {
    fprintf(stderr, "import failed: %s\n", e.message);
    abort();
  }
  if (warnings && !memchr(warnings, '\0', strlen(warnings) + 1)) abort();
  free(warnings);
  json_t *tasks = NULL;
  if (pf_journal_tasks(j, &tasks, &e) == 0) {
    size_t n = json_array_size(tasks), i;
    json_t *t;
    pf_listed *items = calloc(n ? n : 1, sizeof *items);
    if (!items) abort();
    json_array_foreach(tasks, i, t) {
      if (!json_is_string(json_object_get(t, "key"))) abort();   /* every task has its key */
      items[i].id = json_string_value(json_object_get(t, "id"));
      json_t *tv = json_object_get(t, "t");
      items[i].created = json_is_number(tv) ? json_number_value(tv) : -1;
    }
    pf_rival rv = { 1e9, 1.5e9 };
    pf_match_query q = { .from = 0, .to = 2e9, .skew = 2, .complete = 1, .closed = 1,
                         .clock_known = (size & 2) != 0, .clock_lo = -1, .clock_hi = 1,
                         .rivals = &rv, .nrivals = size & 1 };
    size_t found = 0, ncands = 0;
    pf_match_result m = pf_match_unconfirmed(items, n, &q, &found, &ncands);
    if (m == PF_MATCH_FOUND && (found >= n || ncands != 1)) abort();
    free(items);
    json_decref(tasks);
  }
  json_t *events = NULL;
  if (pf_journal_events(j, &events, &e) == 0) json_decref(events);
  pf_journal_release(j);
  return 0;
}
