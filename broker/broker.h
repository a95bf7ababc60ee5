/* broker: the process-wide state of the daemon, one event loop per process. The feature
 * modules (Lua host, plugins, admin, HTTP, server) and the control ones (reload, shutdown) use
 * it; the layers below them (sessions, router, store, listener, worker, presence) are handed
 * what they need instead (docs/architecture.md). */
#ifndef MOONPOST_BROKER_H
#define MOONPOST_BROKER_H

#include <stdint.h>

#include <event2/event.h>

#include "codec.h"
#include "conf.h"
#include "moonpost_version.h"
#include "stats.h"

struct broker {
    struct event_base *base;
    struct conf conf;
    const char *conf_path;
    const char *const *conf_sets; /* the --set overrides, applied again by every reload */
    size_t conf_set_count;
    struct codec_buf scratch; /* reused for every frame the loop thread encodes */
    int shutting_down;
    int exit_code; /* set by whatever stops the broker for a reason of its own (0: normal) */
};

extern struct broker broker;

/* Reads the config file and the --set overrides of the command line into C (initialised here)
 * and checks what the broker cannot run without. Returns 0, or -1 with ERR filled (C freed). */
int broker_conf_read(struct conf *c, struct conf_error *err);

/* Milliseconds since the epoch, from the loop's cached clock. */
int64_t broker_now_ms(void);

#endif
