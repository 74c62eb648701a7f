/* journal.h: the durable record of every task (SQLite, WAL), with claims across processes.
 *
 * No Lua here: the engine (task.c, client.c) and the Lua binding (journal_lua.c) both call it.
 *
 * A journal is one SQLite database. It holds, per task (a key made at submit):
 *   tasks    the current state: provider, base URL, model, request, absolute output path, stage
 *            ("uploading": nothing sent yet; "sending": the submit may have left), gateway id,
 *            terminal status and error, downloaded path
 *   events   the history, one row per record (intent, sending, accepted, status, download,
 *            downloaded, ...), as the old JSONL journal had it
 *   claims   'task:<key>' and 'output:<absolute path>': the one live owner of each
 *   owners   who each owner token is (pid, host, since), for messages
 * An owner is one open journal handle. Its token names a lock file in <db>.owners/, which the
 * handle holds with flock() for as long as it is open: the kernel drops that lock when the
 * process dies, however it dies, so "is the owner alive" is "is its lock file still locked"
 * (no pid reuse, no clocks, no heartbeats). A claim whose owner is dead is taken over inside one
 * write transaction (compare and swap on the owner), so two takers cannot both win.
 *
 * Durability: WAL with synchronous=NORMAL, so every committed record survives the process being
 * killed (kill -9) at once; the records that money depends on (intent, sending) are committed with
 * synchronous=FULL (fsync) before the call returns. docs/ARCHITECTURE.md has the reasoning.
 * Every function returns 0 or -1 with err filled (kind io, naming the database's path). */
#ifndef PF_JOURNAL_H
#define PF_JOURNAL_H

#include <jansson.h>

#include "error.h"

typedef struct pf_journal pf_journal;

/* Whether a call may wait for another process's write lock (a user call: up to ten seconds) or
 * must not (the pump: a busy journal is tried again on the next pump). */
enum { PF_J_NOWAIT = 0, PF_J_WAIT = 1, PF_J_SHORT = 2 };   /* SHORT: a few milliseconds at most */

/* How a claim came out. */
typedef enum pf_claim {
  PF_CLAIM_TAKEN = 0,      /* now ours (it was free, or its owner had died) */
  PF_CLAIM_MINE = 1,       /* this handle held it already */
  PF_CLAIM_HELD = 2,       /* another live owner holds it: *holder_pid says who */
} pf_claim;

/* Open (create) the journal database at path, making missing directories (0700). When legacy
 * names a JSONL journal of an earlier pixflow that exists, its lines not yet imported are
 * imported first (once: the byte offset reached is kept). *warnings (may be NULL) gets a
 * malloc'd text of what the import skipped, one line each, or NULL. The handle holds one
 * reference; pf_journal_retain/release count more. */
int pf_journal_open(const char *path, const char *legacy, pf_journal **out, char **warnings,
                    pf_err *err);
void pf_journal_retain(pf_journal *j);
/* Drop a reference; the last one releases this handle's claims, its lock file, the database. */
void pf_journal_release(pf_journal *j);
const char *pf_journal_path(const pf_journal *j);
/* A second connection to j's database that acts as the same owner (its records and claims are
 * j's), for the engine's worker thread, so that the caller's own reads of j never wait behind
 * the worker's commits. It holds a reference to j; release it with pf_journal_release. For a
 * ":memory:" journal (one database per connection) it is j itself, retained. Retain and release
 * may be called from any thread; one handle is used by one thread at a time. */
int pf_journal_peer(pf_journal *j, pf_journal **out, pf_err *err);

/* The intent of a new task, before anything of it is sent: fields is a JSON object {provider,
 * base_url, model, request, output, label} (output made absolute here), stage "uploading" or
 * "sending", t the wall clock. In the same transaction it claims 'task:<key>' and, with an
 * output, 'output:<path>'; an output another live task may still write is refused (kind
 * invalid, code output_taken, nothing recorded). Synced to disk before it returns. */
int pf_journal_intent(pf_journal *j, const char *key, double t, json_t *fields, const char *stage,
                      pf_err *err);

/* One record of an existing task: ev is sending, accepted {id}, status {status, error},
 * download {path} (claims the output, refusing one that another task may still write),
 * downloaded {path}, forgotten. sync: fsync before returning. wait: PF_J_WAIT or
 * PF_J_NOWAIT (then err->code is "busy" when another process holds the write lock). */
int pf_journal_record(pf_journal *j, const char *key, const char *ev, double t, json_t *fields,
                      int sync, int wait, pf_err *err);

/* Claim or release one resource ('task:<key>', 'output:<absolute path>'). On PF_CLAIM_HELD,
 * *holder_pid is the holder's process id. Returns a pf_claim, or -1 with err. */
int pf_journal_claim(pf_journal *j, const char *what, long *holder_pid, pf_err *err);
/* Claim n things in one transaction: rcs[i] gets what pf_journal_claim would return for
 * whats[i], pids[i] the holder's pid when held. Two processes claiming the same list at once never
 * split it: the first to commit has all that was free. 0, or -1 with nothing claimed. */
int pf_journal_claim_all(pf_journal *j, const char *const *whats, size_t n, int *rcs, long *pids,
                         pf_err *err);
int pf_journal_unclaim(pf_journal *j, const char *what, pf_err *err);
/* Give up this handle's claims of one task (its 'task:' claim and its output's): it is closed,
 * or finished. Does not wait for another process's lock. */
int pf_journal_release_task(pf_journal *j, const char *key, pf_err *err);

/* Does a task of the journal have this gateway id? 1 yes, 0 no (or it cannot be read: then
 * -1, which callers must treat as "cannot tell"). */
int pf_journal_has_id(pf_journal *j, const char *id);

/* Other submits to the same gateway account (provider and base URL) whose answer is unknown
 * (sent, not still uploading, no id, not settled otherwise) and whose window, from their intent
 * to now (in flight) or to when they were given up (unconfirmed), meets [from, to]: such a
 * submit, in this process or another, may have made a task the list shows in that window. 1
 * with [*since, *until] covering them, 0 none, -1 cannot tell (callers treat it as a rival). */
int pf_journal_rivals(pf_journal *j, const char *key, const char *provider, const char *base_url,
                      double from, double to, double *since, double *until);

/* Every task, in the order they were submitted: a JSON array of objects {key, t, provider,
 * base_url, model, request, output, label, stage, id, status, error, downloaded, updated,
 * owner = {pid, alive, mine}} (absent fields are left out). */
int pf_journal_tasks(pf_journal *j, json_t **out, pf_err *err);
/* Every record, oldest first: [{seq, key, t, ev, ...fields}]. */
int pf_journal_events(pf_journal *j, json_t **out, pf_err *err);

/* Import JSONL text (the legacy format: one {v, ev, key, t, ...} per line) into j; what is
 * skipped is appended to *warnings (malloc'd, may start NULL), each line named by label:N.
 * Exposed for the fuzz target and the one-time migration. */
int pf_journal_import(pf_journal *j, const char *text, size_t len, const char *label,
                      size_t first_line, char **warnings, pf_err *err);

/* The absolute, lexically normalised form of path (relative to the working directory),
 * malloc'd, or NULL (err filled) when it cannot be made. */
char *pf_abspath(const char *path, pf_err *err);
/* Make every missing directory above the file path (mode 0700). */
int pf_make_parents(const char *path, pf_err *err);

#endif
