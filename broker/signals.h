/* signals: the signals a process handles in its event loop, and how it lets go of them. */
#ifndef MOONPOST_SIGNALS_H
#define MOONPOST_SIGNALS_H

#include <event2/event.h>

/* Adds one persistent event per signal of SIGS (N of them) to BASE, calling CB; stores them in
 * EVENTS. SIGPIPE is ignored. Returns 0 or -1. */
int signals_start(struct event_base *base, const int *sigs, struct event **events, int n,
                  event_callback_fn cb);

/* Frees EVENTS and ignores their signals from then on. Freeing a signal event puts back the
 * default action, which for SIGTERM kills: a second SIGTERM from a service manager or an
 * operator during the last steps of a clean stop would turn exit 0 into a death by signal. */
void signals_stop(const int *sigs, struct event **events, int n);

#endif
