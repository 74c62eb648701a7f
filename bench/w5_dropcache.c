/* w5_dropcache.c: for bench W5: sync a file, drop it from the page cache (no root), say how much stays cached.
 *
 * usage: w5_dropcache FILE
 * Prints "resident R of N pages" (R = 0: the next read of FILE comes from the disk). fdatasync
 * first, because posix_fadvise(POSIX_FADV_DONTNEED) drops only clean pages; mincore() on a
 * read-only mapping then counts the pages left in memory. Exit 0 when it ran, 1 on an error. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: w5_dropcache FILE\n");
    return 1;
  }
  int fd = open(argv[1], O_RDONLY);
  if (fd < 0) {
    fprintf(stderr, "w5_dropcache: %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size == 0) {
    fprintf(stderr, "w5_dropcache: %s: empty or unreadable\n", argv[1]);
    close(fd);
    return 1;
  }
  if (fdatasync(fd) != 0) fprintf(stderr, "w5_dropcache: fdatasync: %s\n", strerror(errno));
  int rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  if (rc != 0) fprintf(stderr, "w5_dropcache: posix_fadvise: %s\n", strerror(rc));
  long page = sysconf(_SC_PAGESIZE);
  size_t len = (size_t)st.st_size, pages = (len + (size_t)page - 1) / (size_t)page;
  void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
  unsigned char *vec = malloc(pages);
  size_t resident = 0;
  int ok = map != MAP_FAILED && vec && mincore(map, len, vec) == 0;
  if (ok)
    for (size_t i = 0; i < pages; i++) resident += vec[i] & 1;
  else
    fprintf(stderr, "w5_dropcache: mincore: %s\n", strerror(errno));
  free(vec);
  if (map != MAP_FAILED) munmap(map, len);
  close(fd);
  if (!ok) return 1;
  printf("resident %zu of %zu pages\n", resident, pages);
  return 0;
}
