/* idle_trim: memory a burst took is given back once the broker is idle. */
#ifndef MOONPOST_IDLE_TRIM_H
#define MOONPOST_IDLE_TRIM_H

struct event_base;

/* Checks every second; once no frame came in for a second, frees the output blocks chain_pool
 * kept, and when the Lua heap holds garbage worth it (luahost_garbage_worth_collecting),
 * collects it in slices of 2 ms every 20 ms while the broker stays idle; then hands free
 * memory back to the system (malloc_trim). 0 or -1. */
int idle_trim_start(struct event_base *base);
void idle_trim_stop(void);

#endif
