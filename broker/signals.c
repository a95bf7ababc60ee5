/* signals: see signals.h. */
#include "signals.h"

#include <signal.h>
#include <stddef.h>

int signals_start(struct event_base *base, const int *sigs, struct event **events, int n,
                  event_callback_fn cb)
{
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < n; i++) {
        events[i] = evsignal_new(base, sigs[i], cb, NULL);
        if (events[i] == NULL || event_add(events[i], NULL) != 0) return -1;
    }
    return 0;
}

void signals_stop(const int *sigs, struct event **events, int n)
{
    /* blocked first, so none lands between the event's free and SIG_IGN; one that is pending
     * when SIG_IGN is set is discarded */
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < n; i++) sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (int i = 0; i < n; i++) {
        if (events[i]) event_free(events[i]);
        events[i] = NULL;
        signal(sigs[i], SIG_IGN);
    }
}
