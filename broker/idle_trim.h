/* idle_trim: memory a burst took is given back once the broker is idle. */
#ifndef MOONPOST_IDLE_TRIM_H
#define MOONPOST_IDLE_TRIM_H

struct event_base;

/* Every second: when no frame came in since the last check, collects the Lua state's garbage
 * (luahost_collect_garbage) and, when that freed something, hands free memory back to the
 * system (malloc_trim). 0 or -1. */
int idle_trim_start(struct event_base *base);
void idle_trim_stop(void);

#endif
