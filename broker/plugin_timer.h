/* plugin_timer: the plugins' timers (api->timer_start, api->timer_cancel) on the event loop. */
#ifndef MOONPOST_PLUGIN_TIMER_H
#define MOONPOST_PLUGIN_TIMER_H

#include <stdint.h>

#include <event2/event.h>

#include "moonpost_plugin.h"

/* Starts a timer owned by OWNER (a plugin): FN(*STATE, ARG) after AFTER_MS, then every
 * EVERY_MS (0: once). STATE is read at each call, so it may be filled after this call. Returns
 * the timer's id, or 0 when out of memory. */
mp_timer plugin_timer_start(struct event_base *base, const void *owner, void *const *state,
                            uint64_t after_ms, uint64_t every_ms, mp_timer_fn fn, void *arg);

/* Stops OWNER's timer ID, also from inside its own callback; nothing when it is gone. */
void plugin_timer_cancel(const void *owner, mp_timer id);

/* Stops and frees every timer (at unload, outside any timer callback). */
void plugin_timer_stop_all(void);

#endif
