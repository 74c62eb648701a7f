/* jobs.c: a task's blocking work as jobs for the client's worker (journal records, the synced "sending", a download's sync and rename), and the pump taking their results back. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"
#include "internal.h"
#include "journal.h"

/* ---------------------------------------------------------------- on the worker thread */

static int ensure_peer(pf_wlocal *w, pf_err *e) {
  if (w->peer) return 0;
  if (!w->journal) {
    pf_err_set(e, PF_EK_IO, 0, "journal", "no journal");
    return -1;
  }
  return pf_journal_peer(w->journal, &w->peer, e);
}

/* The job's records, in order, each in its own commit; done_recs says how many were written. */
static int run_records(pf_job *j, pf_wlocal *w) {
  if (ensure_peer(w, &j->err) != 0) return -1;
  for (int i = 0; i < j->nrec; i++) {
    if (pf_journal_record(w->peer, j->key, j->ev[i], j->t, j->f[i], j->sync[i], PF_J_WAIT,
                          &j->err) != 0)
      return -1;
    j->done_recs = i + 1;
  }
  return 0;
}

/* A whole download: once every chunk before it is written, the .part (path) synced and closed,
 * renamed to path2, its directory synced; then its "downloaded" record when the job has one (a
 * failure there is only owed: the task's records are written again from the pump). */
static int run_finish(pf_job *j, pf_wlocal *w) {
  pf_sink *s = j->sink;
  FILE *fp = s->fp;
  s->fp = NULL;
  if (s->err_no != 0) {                     /* a chunk could not be written */
    fclose(fp);
    j->err_no = s->err_no;
    pf_err_set(&j->err, PF_EK_IO, 0, "write", "writing %s failed: %s", j->path, strerror(s->err_no));
    return -1;
  }
  if (pf_part_close(fp) != 0) {
    j->err_no = errno;
    pf_err_set(&j->err, PF_EK_IO, 0, "write", "writing %s failed: %s", j->path, strerror(errno));
    return -1;
  }
  if (pf_part_commit(j->path, j->path2, &j->err) != 0) return -1;
  if (j->nrec > 0 && ensure_peer(w, &j->err) == 0 &&
      pf_journal_record(w->peer, j->key, j->ev[0], j->t, j->f[0], 0, PF_J_WAIT, &j->err) == 0)
    j->done_recs = 1;
  pf_err_clear(&j->err);
  return 0;
}

/* Where the file goes, recorded (claimed) first: another task's path is refused and nothing is
 * opened; a journal that cannot be written (a full disk) must not cost the video, so the
 * download goes ahead with the record owed (rec_err). Then the .part is opened. */
static int run_open(pf_job *j, pf_wlocal *w) {
  /* the place first (its directory made, a directory or a device there refused): the .part's
   * own opening then says whether a file can be created there */
  char *abs = NULL;
  if (pf_output_check(j->path2, 0, &abs, &j->err) != 0) {
    char msg[sizeof j->err.message];
    snprintf(msg, sizeof msg, "%s", j->err.message);
    pf_err_set(&j->err, j->err.kind, 0, j->err.code, "cannot save the video: %s; the video is "
               "not lost: download it again to a path that can be written (pixflow download ID "
               "-o PATH, or task:download(path))", msg);
    return -1;
  }
  free(abs);
  if (j->nrec > 0) {
    pf_err e;
    pf_err_clear(&e);
    if (ensure_peer(w, &e) == 0 &&
        pf_journal_record(w->peer, j->key, j->ev[0], j->t, j->f[0], 0, PF_J_WAIT, &e) == 0) {
      j->done_recs = 1;
    } else if (e.kind != PF_EK_IO && e.kind != PF_EK_NOMEM) {
      j->err = e;                           /* another task's path */
      return -1;
    } else {
      j->rec_err = e;
    }
  }
  j->sink->fp = pf_part_open(j->path, j->resume, &j->off, &j->err);
  return j->sink->fp ? 0 : -1;
}

/* A chunk of a download, in one write; none after one failed (the file keeps what came before
 * it, in order, which a resumed attempt continues from). */
static int run_write(pf_job *j, pf_wlocal *w) {
  (void)w;
  pf_sink *s = j->sink;
  if (s->err_no == 0 && fwrite(j->buf, 1, j->len, s->fp) != j->len) s->err_no = errno ? errno : EIO;
  j->err_no = s->err_no;
  return s->err_no != 0 ? -1 : 0;
}

static int run_close_conns(pf_job *j, pf_wlocal *w) {
  (void)w;
  pf_net_close_detached(j->ctx);
  j->ctx = NULL;
  return 0;
}

/* A download attempt's file closed, not synced (what it keeps is checked when it resumes). */
static int run_close(pf_job *j, pf_wlocal *w) {
  (void)w;
  pf_sink *s = j->sink;
  int rc = s->fp ? fclose(s->fp) : 0;
  s->fp = NULL;
  return rc;
}

/* A chunk of an upload's file: len bytes at off into buf (j->len says how many came). The first
 * read opens the file, without blocking on a FIFO (pf_open_regular), and checks that it still
 * has the size it was hashed with: the Content-Length was made from it, and a file that grew or
 * shrank since would send other bytes than the ones its content key stands for. */
static int run_read(pf_job *j, pf_wlocal *w) {
  (void)w;
  pf_source *s = j->src;
  if (s->failed) {
    pf_err_set(&j->err, PF_EK_IO, 0, "read", "cannot read %s for its upload", s->path);
    return -1;
  }
  if (s->fd < 0) {
    long long size = 0;
    s->fd = pf_open_regular(s->path, &size, &j->err);
    if (s->fd < 0) goto failed;
    if (size != s->size) {
      pf_err_set(&j->err, PF_EK_IO, 0, "changed", "%s changed while it was being uploaded (%lld "
                 "bytes when it was read for its content key, %lld now)", s->path, s->size, size);
      goto failed;
    }
  }
  size_t got = 0;
  while (got < j->len) {
    ssize_t r = pread(s->fd, j->buf + got, j->len - got, (off_t)(j->off + (long long)got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      pf_err_set(&j->err, PF_EK_IO, 0, "read", "cannot read %s for its upload: %s", s->path,
                 strerror(errno));
      goto failed;
    }
    if (r == 0) {
      pf_err_set(&j->err, PF_EK_IO, 0, "changed", "%s changed while it was being uploaded (it "
                 "ends at byte %lld, not %lld)", s->path, j->off + (long long)got, s->size);
      goto failed;
    }
    got += (size_t)r;
  }
  return 0;
failed:
  s->failed = 1;
  return -1;
}

/* An upload's file closed and freed, after every read posted before this. */
static int run_src_close(pf_job *j, pf_wlocal *w) {
  (void)w;
  (void)j;                                  /* pf_job_free (owns_src) closes and frees it */
  return 0;
}

static int run_remove(pf_job *j, pf_wlocal *w) {
  (void)w;
  return remove(j->path);
}

/* A local image of a submit: checked (a regular file that can be read, not empty, not too
 * large: the checks the validation makes of a file it looks at), then its content key, its
 * SHA-256; the hex goes to path2, the size it had to off (the upload sends that many bytes, read
 * on the worker too: run_read). Here, not in submit: a stat or an open can wait on the disk. */
static int run_hash(pf_job *j, pf_wlocal *w) {
  (void)w;
  char hex[65];
  long long size = 0;
  int fd = pf_open_image(j->path, &j->err);
  if (fd < 0 || pf_sha256_fd(fd, j->path, hex, &size, &j->err) != 0) return -1;
  j->off = size;
  j->path2 = pf_strdup(hex);
  if (!j->path2) {
    pf_err_set(&j->err, PF_EK_NOMEM, 0, "nomem", "out of memory");
    return -1;
  }
  return 0;
}

static int run_output(pf_job *j, pf_wlocal *w) {
  (void)w;
  return pf_output_check(j->path, 1, &j->path2, &j->err);
}

static int run_lookup(pf_job *j, pf_wlocal *w) {
  if (ensure_peer(w, &j->err) != 0) return -1;
  double since = 0, until = 0;
  int r = pf_journal_rivals(w->peer, j->key, j->path, j->path2, j->t,
                            json_number_value(json_object_get(j->f[0], "now")), &since, &until);
  json_t *owned = json_object();
  j->f[1] = json_pack("{s:i,s:f,s:f,s:o}", "r", r, "since", since, "until", until, "owned", owned);
  if (!j->f[1]) {
    pf_err_set(&j->err, PF_EK_NOMEM, 0, "nomem", "out of memory");
    return -1;
  }
  const char *id;
  json_t *v;
  json_object_foreach(json_object_get(j->f[0], "ids"), id, v) {
    int has = pf_journal_has_id(w->peer, id);
    /* a read that failed counts as known: no task is adopted on a guess */
    if (has != 0 && json_object_set_new(owned, id, json_true()) != 0) {
      pf_err_set(&j->err, PF_EK_NOMEM, 0, "nomem", "out of memory");
      return -1;
    }
  }
  return 0;
}

static int run_claim(pf_job *j, pf_wlocal *w) {
  if (ensure_peer(w, &j->err) != 0) return -1;
  char what[sizeof j->key + 8];
  snprintf(what, sizeof what, "task:%s", j->key);
  long pid = 0;
  int r = pf_journal_claim(w->peer, what, &pid, &j->err);
  /* this process's: a client closed a moment ago may have it, its worker still releasing */
  if (r == PF_CLAIM_HELD && pid == (long)getpid() && pf_worker_drain(10) == 0)
    r = pf_journal_claim(w->peer, what, &pid, &j->err);
  if (r == PF_CLAIM_HELD)
    pf_err_set(&j->err, PF_EK_INVALID, 0, "claimed", "task %s is being followed by another "
               "running pixflow process (pid %ld); it is left to that one", j->path, pid);
  return r < 0 || r == PF_CLAIM_HELD ? -1 : 0;
}

static int run_intent(pf_job *j, pf_wlocal *w) {
  if (ensure_peer(w, &j->err) != 0) return -1;
  return pf_journal_intent(w->peer, j->key, j->t, j->f[0], j->ev[0], &j->err);
}

static int run_release(pf_job *j, pf_wlocal *w) {
  if (ensure_peer(w, &j->err) != 0) return -1;
  return pf_journal_release_task(w->peer, j->key, &j->err);
}

/* ---------------------------------------------------------------- posting */

static int nomem(pf_err *err) {
  pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory");
  return -1;
}

static pf_job *task_job(pf_task *t, int kind, int (*run)(pf_job *, pf_wlocal *)) {
  pf_job *j = pf_job_new(kind, t, run);
  if (j) {
    snprintf(j->key, sizeof j->key, "%s", t->jkey);
    j->t = pf_walltime();
  }
  return j;
}

/* Queue j on c's worker (made on first use). When the worker cannot take it (no memory for a
 * thread), the job runs here instead: slower, never wrong. */
static void post(pf_client *c, pf_job *j) {
  pf_err e;
  pf_err_clear(&e);
  c->jobs_out++;
  if (c->worker && pf_worker_post(c->worker, j, &e) == 0) return;
  pf_wlocal local = { c->journal, c->journal };
  j->rc = j->run(j, &local);
  j->next = NULL;
  if (c->jsync_tail) c->jsync_tail->next = j;
  else c->jsync = j;
  c->jsync_tail = j;
}

static void add_record(pf_job *j, const char *ev, json_t *f, unsigned bit, int sync) {
  j->ev[j->nrec] = ev;
  j->f[j->nrec] = f;
  j->bits[j->nrec] = bit;
  j->sync[j->nrec] = sync;
  j->nrec++;
}

static json_t *error_fields(const pf_err *e) {
  json_t *o = json_pack("{s:s,s:s}", "kind", pf_errkind_name(e->kind), "message", e->message);
  if (o && e->code[0]) json_object_set_new(o, "code", json_string(e->code));
  if (o && e->status) json_object_set_new(o, "status", json_integer(e->status));
  return o;
}

/* A record the worker could not write: kept as owed, tried again (a second later), and
 * reported. */
void pf_task_journal_owed(pf_client *c, pf_task *t, const pf_err *e, const char *what) {
  if (!t->jpending) {
    t->jpending = 1;
    c->jpending++;
  }
  int busy = strcmp(e->code, "busy") == 0;
  c->jretry_at = pf_client_now(c) + (busy ? 0 : 1);
  if (busy) return;
  pf_err_set(&t->jerr, PF_EK_IO, 0, "journal", "the journal could not record %s of task %s "
             "(pixflow keeps trying while this client is open): %s", what,
             t->id ? t->id : t->jkey, e->message);
  t->has_jerr = 1;
  c->jerr = t->jerr;
  c->jerr_new = 1;
}

void pf_task_journal(pf_client *c, pf_task *t) {
  if (!c || !c->journal || !t->jkey[0]) return;
  if (t->jbusy) {                           /* the records in flight come back first */
    t->jagain = 1;
    return;
  }
  pf_job *j = task_job(t, PF_JOB_RECORDS, run_records);
  pf_err e;
  if (!j) {
    nomem(&e);
    pf_task_journal_owed(c, t, &e, "the task");
    return;
  }
  /* in order: the id before the end, the end before the file */
  int ok = 1;
  if (t->id && !(t->jrec & PF_JR_ACCEPTED)) {
    json_t *f = json_pack("{s:s}", "id", t->id);
    if (f && t->found_by_list) json_object_set_new(f, "found", json_string("task list"));
    ok = ok && f;
    add_record(j, "accepted", f, PF_JR_ACCEPTED, 0);
  }
  if (pf_state_terminal(t->state) && t->jstate != (int)t->state + 1) {
    json_t *f = json_pack("{s:s}", "status", pf_state_name(t->state));
    if (f && t->has_err) json_object_set_new(f, "error", error_fields(&t->err));
    ok = ok && f;
    add_record(j, "status", f, 0, 0);
    j->state = (int)t->state + 1;
  }
  if (t->dl_rec_owed && t->dl_path && !(t->jrec & PF_JR_DOWNLOAD)) {
    json_t *f = json_pack("{s:s}", "path", t->dl_path);
    ok = ok && f;
    add_record(j, "download", f, PF_JR_DOWNLOAD, 0);
  }
  if (t->dl == PF_DL_DONE && t->dl_path && !(t->jrec & PF_JR_DOWNLOADED)) {
    json_t *f = json_pack("{s:s}", "path", t->dl_path);
    ok = ok && f;
    add_record(j, "downloaded", f, PF_JR_DOWNLOADED, 0);
  }
  if (!ok) {
    pf_job_free(j);
    nomem(&e);
    pf_task_journal_owed(c, t, &e, "the task");
    return;
  }
  if (j->nrec == 0) {
    pf_job_free(j);
    if (t->jpending) {
      t->jpending = 0;
      c->jpending--;
      t->has_jerr = 0;
    }
    return;
  }
  t->jbusy = 1;
  post(c, j);
}

int pf_task_sending_durable(pf_client *c, pf_task *t, pf_err *err) {
  if (t->jrec & PF_JR_SENDING) return 1;
  if (t->sending_job) return 0;
  pf_job *j = task_job(t, PF_JOB_SENDING, run_records);
  if (!j) return nomem(err);
  add_record(j, "sending", NULL, PF_JR_SENDING, 1);
  t->sending_job = 1;
  post(c, j);
  return 0;
}

int pf_task_finish_download(pf_client *c, pf_task *t, pf_sink *s) {
  pf_job *j = task_job(t, PF_JOB_FINISH, run_finish);
  if (!j) return -1;
  j->path = pf_strdup(t->dl_part);
  j->path2 = pf_strdup(t->dl_path);
  json_t *f = c->journal && t->jkey[0] ? json_pack("{s:s}", "path", t->dl_path) : NULL;
  if (!j->path || !j->path2 || (c->journal && t->jkey[0] && !f)) {
    json_decref(f);
    pf_job_free(j);
    return -1;
  }
  if (f) add_record(j, "downloaded", f, PF_JR_DOWNLOADED, 0);
  pf_job_free(s->close_job);                /* this job closes it */
  s->close_job = NULL;
  j->sink = s;
  j->owns_sink = 1;
  t->dl_finishing = 1;
  post(c, j);
  return 0;
}

void pf_client_close_sink(pf_client *c, pf_sink *s) {
  pf_job *j = s->close_job;
  s->close_job = NULL;
  j->owns_sink = 1;
  post(c, j);
}

void pf_client_close_conns_later(pf_client *c, void *conns) {
  pf_job *j = pf_job_new(PF_JOB_CLOSE, NULL, run_close_conns);
  if (!j) {
    pf_net_close_detached(conns);
    return;
  }
  j->ctx = conns;
  post(c, j);
}

void pf_client_sink_close(void *ud, pf_sink *s) {
  pf_client_close_sink(ud, s);
}

pf_source *pf_client_src_open(void *ud, const char *path, long long size) {
  (void)ud;
  pf_source *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->fd = -1;
  s->size = size;
  s->path = pf_strdup(path);
  s->close_job = pf_job_new(PF_JOB_CLOSE, NULL, run_src_close);
  if (!s->path || !s->close_job) {
    pf_job_free(s->close_job);
    free(s->path);
    free(s);
    return NULL;
  }
  s->close_job->src = s;
  return s;
}

int pf_client_src_read(void *ud, void *owner, pf_source *s, unsigned id, char *buf, size_t len,
                       long long off) {
  pf_job *j = pf_job_new(PF_JOB_READ, owner, run_read);
  if (!j) {
    free(buf);
    return -1;
  }
  j->src = s;
  j->gen = id;
  j->buf = buf;
  j->len = len;
  j->off = off;
  post(ud, j);
  return 0;
}

void pf_client_src_close(void *ud, pf_source *s) {
  pf_job *j = s->close_job;
  s->close_job = NULL;
  j->owns_src = 1;
  post(ud, j);
}

/* Chunk buffers for the pool, each page written once here so that the pump that fills one pays
 * no page fault (a fresh one cost it an mmap and 32 faults: W5's complete200 rows). */
static int run_chunks(pf_job *j, pf_wlocal *w) {
  (void)w;
  j->bufs = calloc(j->len, sizeof *j->bufs);
  if (!j->bufs) return -1;
  while (j->nbufs < j->len) {
    char *b = malloc(PF_DL_CHUNK);
    if (!b) break;                          /* what there is: the pump makes the rest itself */
    memset(b, 0, PF_DL_CHUNK);
    j->bufs[j->nbufs++] = b;
  }
  return 0;
}

static int run_close_fd(pf_job *j, pf_wlocal *w) {
  (void)w;
  close((int)j->off);                       /* nothing to do if it fails: the fd is gone */
  return 0;
}

int pf_client_sock_close(void *ud, int fd) {
  pf_client *c = ud;
  pf_job *j = pf_job_new(PF_JOB_CLOSEFD, NULL, run_close_fd);
  if (!j) return -1;
  j->off = fd;
  post(c, j);                               /* no worker: closed here, at once */
  return 0;
}

int pf_client_chunks_low(void *ud, size_t n) {
  pf_client *c = ud;
  pf_job *j = pf_job_new(PF_JOB_CHUNKS, NULL, run_chunks);
  if (!j) return -1;
  j->len = n;
  post(c, j);
  return 0;
}

int pf_client_sink_write(void *ud, pf_xfer *x, char *buf, size_t len) {
  pf_client *c = ud;
  pf_job *j = pf_job_new(PF_JOB_WRITE, x->owner, run_write);
  if (!j) {
    free(buf);
    return -1;
  }
  j->sink = x->sink;
  j->buf = buf;
  j->len = len;
  post(c, j);
  return 0;
}

int pf_task_post_hashes(pf_client *c, pf_task *t, pf_err *err) {
  for (size_t i = 0; i < t->nups; i++) {
    pf_upsrc *u = &t->ups[i];
    if (!u->hashing) continue;
    pf_job *j = pf_job_new(PF_JOB_HASH, t, run_hash);
    if (j) j->path = pf_strdup(u->path);
    if (!j || !j->path) {
      pf_job_free(j);
      return nomem(err);
    }
    j->gen = (unsigned)i;                   /* which source */
    t->nhashing++;
    post(c, j);
  }
  return 0;
}

int pf_task_post_output(pf_client *c, pf_task *t, const char *output, pf_err *err) {
  pf_job *j = pf_job_new(PF_JOB_OUTPUT, t, run_output);
  if (j) j->path = pf_strdup(output);
  if (!j || !j->path) {
    pf_job_free(j);
    return nomem(err);
  }
  t->output_job = 1;
  post(c, j);
  return 0;
}

int pf_task_post_lookup(pf_client *c, pf_task *t, json_t *ids, double now_wall, pf_err *err) {
  pf_job *j = pf_job_new(PF_JOB_LOOKUP, t, run_lookup);
  if (j) {
    j->path = pf_strdup(c->provider);
    j->path2 = pf_strdup(c->base_url);
    j->f[0] = json_pack("{s:o,s:f}", "ids", ids, "now", now_wall);
    ids = NULL;                             /* the pack took it, or freed it */
  }
  if (!j || !j->path || !j->path2 || !j->f[0]) {
    json_decref(ids);
    pf_job_free(j);
    return nomem(err);
  }
  snprintf(j->key, sizeof j->key, "%s", t->jkey);
  j->t = t->submit_wall;
  t->lookup_job = 1;
  post(c, j);
  return 0;
}

int pf_task_post_claim(pf_client *c, pf_task *t, pf_err *err) {
  pf_job *j = task_job(t, PF_JOB_CLAIM, run_claim);
  if (j) j->path = pf_strdup(t->id);
  if (!j || !j->path) {
    pf_job_free(j);
    return nomem(err);
  }
  t->claim_job = 1;
  post(c, j);
  return 0;
}

int pf_task_post_intent(pf_client *c, pf_task *t, const char *key, json_t *fields, const char *stage,
                        pf_err *e) {
  pf_job *j = pf_job_new(PF_JOB_INTENT, t, run_intent);
  if (!j) return nomem(e);
  snprintf(j->key, sizeof j->key, "%s", key);
  j->t = pf_walltime();
  j->f[0] = json_incref(fields);
  j->ev[0] = stage;                         /* a static string */
  t->intent_job = 1;
  post(c, j);
  return 0;
}

int pf_task_open_part(pf_client *c, pf_task *t) {
  pf_job *j = task_job(t, PF_JOB_OPEN, run_open);
  if (!j) return -1;
  /* the file, with the job that will close it whatever happens */
  j->sink = calloc(1, sizeof *j->sink);
  if (j->sink) {
    j->owns_sink = 1;
    j->sink->close_job = pf_job_new(PF_JOB_CLOSE, NULL, run_close);
    if (j->sink->close_job) j->sink->close_job->sink = j->sink;
  }
  if (!j->sink || !j->sink->close_job) {
    pf_job_free(j);
    return -1;
  }
  j->path = pf_strdup(t->dl_part);
  j->path2 = pf_strdup(t->dl_path);
  j->resume = t->dl_resume;
  j->gen = t->dl_gen;
  int record = c->journal && t->jkey[0] && !(t->jrec & PF_JR_DOWNLOAD);
  json_t *f = record ? json_pack("{s:s}", "path", t->dl_path) : NULL;
  if (!j->path || !j->path2 || (record && !f)) {
    json_decref(f);
    pf_job_free(j);
    return -1;
  }
  if (f) add_record(j, "download", f, PF_JR_DOWNLOAD, 0);
  t->dl_opening = 1;
  post(c, j);
  return 0;
}

int pf_task_remove_part(pf_client *c, pf_task *t) {
  pf_job *j = task_job(t, PF_JOB_REMOVE, run_remove);
  if (j) j->path = pf_strdup(t->dl_part);
  if (!j || !j->path) {
    pf_job_free(j);
    return -1;
  }
  j->gen = t->dl_gen;
  t->dl_removing = 1;
  post(c, j);
  return 0;
}

void pf_client_remove_later(pf_client *c, const char *path) {
  pf_job *j = path ? pf_job_new(PF_JOB_REMOVE, NULL, run_remove) : NULL;
  if (j) j->path = pf_strdup(path);
  if (!j || !j->path) {
    pf_job_free(j);
    if (path) remove(path);                 /* no memory for the job: here */
    return;
  }
  post(c, j);
}

void pf_task_release_claims_later(pf_client *c, pf_task *t) {
  pf_job *j = task_job(t, PF_JOB_RELEASE, run_release);
  if (!j) return;                           /* they go when the journal closes */
  j->owner = NULL;                          /* nobody waits for it */
  post(c, j);
}

void pf_task_jobs_detach(pf_client *c, pf_task *t, int unclaim) {
  if (c->journal && t->jkey[0]) {
    /* posted again in full: a record the job in flight also writes is written twice, which the
     * journal takes as once; one it does not write is not lost */
    if (t->jbusy || t->jpending) {
      t->jbusy = 0;
      pf_task_journal(c, t);
    }
    if (unclaim) pf_task_release_claims_later(c, t);
  }
  if (c->worker) pf_worker_forget(c->worker, t);
  for (pf_job *j = c->jsync; j; j = j->next) if (j->owner == t) j->owner = NULL;
  t->jbusy = t->jagain = t->sending_job = 0;
}

/* ---------------------------------------------------------------- taking results back */

pf_job *pf_client_take_job(pf_client *c) {
  pf_job *j = c->jsync;
  if (j) {                                  /* run here: the worker could not take them */
    c->jsync = j->next;
    if (!c->jsync) c->jsync_tail = NULL;
    j->next = NULL;
  } else {
    j = c->worker ? pf_worker_take(c->worker) : NULL;
  }
  if (j && c->jobs_out > 0) c->jobs_out--;
  return j;
}
