/* download.c: a download's file: the .part it streams into, synced and renamed only when whole. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

FILE *pf_part_open(const char *part, int resume, long long *resume_from, pf_err *err) {
  FILE *fp = NULL;
  *resume_from = 0;
  if (resume) {                       /* continue what an interrupted attempt left */
    fp = fopen(part, "ab");
    long have = fp && fseek(fp, 0, SEEK_END) == 0 ? ftell(fp) : -1;
    if (have >= 8) {
      *resume_from = have;
    } else if (fp) {
      fclose(fp);
      fp = NULL;
    }
  }
  if (!fp) fp = fopen(part, "wb");
  if (!fp) {
    pf_err_set(err, PF_EK_IO, 0, "open", "cannot write %s: %s", part, strerror(errno));
    return NULL;
  }
  /* libcurl hands over large chunks (CURLOPT_BUFFERSIZE): each goes to the file in one write */
  setvbuf(fp, NULL, _IONBF, 0);
  return fp;
}

int pf_part_close(FILE *fp) {
  int ok = fflush(fp) == 0 && fsync(fileno(fp)) == 0;
  int saved = errno;
  ok = (fclose(fp) == 0) && ok;
  if (!ok) errno = saved;
  return ok ? 0 : -1;
}

/* fsync the directory holding path, so that a rename in it survives a crash. */
static int sync_dir_of(const char *path) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash == dir) slash[1] = '\0';
  else if (slash) *slash = '\0';
  else snprintf(dir, sizeof dir, ".");
  int fd = open(dir, O_RDONLY);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

int pf_part_commit(const char *part, const char *path, pf_err *err) {
  if (rename(part, path) != 0) {
    pf_err_set(err, PF_EK_IO, 0, "rename", "cannot rename %s to %s: %s", part, path,
               strerror(errno));
    return -1;
  }
  sync_dir_of(path);
  return 0;
}
