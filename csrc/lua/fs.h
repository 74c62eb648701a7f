/* fs.h: the few file-system calls the Lua layer makes itself (the output checks are the worker's). */
#ifndef PF_FS_H
#define PF_FS_H

#include <lua.h>

/* Set module table field "_fs" (the table at the top of L's stack): stat, open_check, realpath,
 * cwd (see fs.c). */
void pf_fs_open(lua_State *L);

#endif
