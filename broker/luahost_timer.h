/* luahost_timer: the timers scripts start, and the waits for a session's output to drain;
 * stopped all at once at shutdown. */
#ifndef MOONPOST_LUAHOST_TIMER_H
#define MOONPOST_LUAHOST_TIMER_H

#include <stddef.h>

#include <lua.h>

#include "luahost.h"

/* Yields R until S's queued output is at most LOW_WATER (resumed from S's write path with
 * true), or S closes (false), or TIMEOUT seconds pass first (> 0; 0 = no limit): then S is
 * closed with bye 429 as a slow reader and R resumes with false. */
int luahost_timer_wait_drain(lua_State *L, struct request *r, struct session *s, size_t low_water,
                         double timeout);

void luahost_timer_stop_all(void);

#endif
