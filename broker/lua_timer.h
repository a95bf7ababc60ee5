/* lua_timer: the timers scripts start; stopped all at once at shutdown. */
#ifndef MOONPOST_LUA_TIMER_H
#define MOONPOST_LUA_TIMER_H

void lua_timer_stop_all(void);

#endif
