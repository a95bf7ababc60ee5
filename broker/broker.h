/* broker: the process-wide state of the daemon, one event loop per process. */
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
    struct codec_buf scratch; /* reused for every frame the loop thread encodes */
    int shutting_down;
    struct stats stats;
};

extern struct broker broker;

/* Milliseconds since the epoch, from the loop's cached clock. */
int64_t broker_now_ms(void);

/* Starts a graceful shutdown: stop accepting, bye 503 to everyone, exit when flushed. */
void broker_shutdown(const char *why);

#endif
