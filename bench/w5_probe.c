/* w5_probe.c: for bench W5: a Lua module that reads the calling thread's own CPU time, context switches and page faults.
 *
 * require "w5_probe" returns a function; each call returns five numbers for the calling
 * thread: CPU seconds (CLOCK_THREAD_CPUTIME_ID), voluntary context switches (the thread waited:
 * a disk, a lock, a syscall that slept), involuntary ones (the kernel took the core away), minor
 * and major page faults (getrusage RUSAGE_THREAD). The bench takes them before and after each
 * poll(0): a long pump with its CPU time near its wall time did work; one with voluntary
 * switches waited on something; one with involuntary switches was only preempted. Built by the
 * bench itself (bench/w5_pixflow.lua), never by make. */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>
#include <sys/resource.h>
#include <time.h>

static int sample(lua_State *L) {
  struct timespec ts = {0, 0};
  struct rusage ru = {0};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  getrusage(RUSAGE_THREAD, &ru);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  lua_pushinteger(L, (lua_Integer)ru.ru_nvcsw);
  lua_pushinteger(L, (lua_Integer)ru.ru_nivcsw);
  lua_pushinteger(L, (lua_Integer)ru.ru_minflt);
  lua_pushinteger(L, (lua_Integer)ru.ru_majflt);
  return 5;
}

int luaopen_w5_probe(lua_State *L);
int luaopen_w5_probe(lua_State *L) {
  lua_pushcfunction(L, sample);
  return 1;
}
