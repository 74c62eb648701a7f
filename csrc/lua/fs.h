/* fs.h: the file-system checks guard.lua and validate.lua make before anything is sent. */
#ifndef PF_FS_H
#define PF_FS_H

#include <lua.h>

/* Set module table field "_fs" (the table at the top of L's stack): stat, open_check,
 * probe_dir, realpath, cwd, mkdir, limits (see fs.c). */
void pf_fs_open(lua_State *L);

#endif
