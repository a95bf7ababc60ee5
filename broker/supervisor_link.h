/* supervisor_link: the supervisor's connection to each worker's private admin socket
 * (`<admin_socket>.<i>`), and the calls it forwards over them. Every request sent gets an id of
 * the links' own, so that the requests of many admin clients share one connection per worker;
 * the replies of one call are collected and handed over together. */
#ifndef MOONPOST_SUPERVISOR_LINK_H
#define MOONPOST_SUPERVISOR_LINK_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "codec.h"

/* One worker's answer to a call: its reply's body and code, or body NULL when it did not answer
 * (not up, gone, or too slow). */
struct link_reply {
    const uint8_t *body;
    size_t len;
    int code;
};

struct link_call;

/* REPLIES has one entry per worker (index 0 = worker 1). */
typedef void (*link_done_fn)(void *arg, const struct link_reply *replies, int count);

/* Prepares COUNT links on BASE to the sockets "ADMIN_SOCKET.<i>", i = 1..COUNT. */
int links_init(struct event_base *base, int count, const char *admin_socket);
/* Ends every call (without its callback) and closes every link. */
void links_free(void);

/* Worker I (0-based) runs: connect to it, and again whenever the connection drops. */
void link_connect(int i);
/* Worker I is gone: close, stop trying; calls waiting for it count it as not answering. */
void link_disconnect(int i);
/* 1 when worker I answered on its connection since it was made. */
int link_is_up(int i);
/* The first worker that is up, or -1. */
int link_first_up(void);

/* Sends the request BODY (a frame body that frame_check accepted; its `id` is replaced) to
 * worker WORKER, or to every worker that is up when WORKER < 0. DONE(ARG, ...) runs once, from
 * the loop (never from within this call), when every worker asked has answered or gone, or after
 * TIMEOUT seconds. Returns NULL when out of memory. */
struct link_call *link_call(int worker, const uint8_t *body, size_t len, double timeout,
                            link_done_fn done, void *arg);
/* The caller is gone: the call ends without calling its DONE. */
void link_call_cancel(struct link_call *call);

/* Writes into OUT the frame (length prefix included) of the map BODY with its `id` set to ID
 * (HAS_ID) or removed (!HAS_ID), every other field as it was. Returns 0, or -1 when BODY is not
 * a map. */
int frame_with_id(const uint8_t *body, size_t len, int has_id, uint64_t id, struct codec_buf *out);

#define FRAME_PULL_EMPTY (-1)
#define FRAME_PULL_TOO_LARGE (-2)
/* Looks for the next frame in IN: 1 with *BODY (LEN bytes, valid until the frame is drained with
 * evbuffer_drain(IN, FRAME_HEADER_LEN + LEN)), 0 when it has not all come yet, or
 * FRAME_PULL_EMPTY / FRAME_PULL_TOO_LARGE (over MAX bytes). */
int frame_pull(struct evbuffer *in, uint32_t max, uint8_t **body, uint32_t *len);

#endif
