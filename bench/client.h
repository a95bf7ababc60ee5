/* client: what happens to one benchmark client between the protocol codec (below) and the
 * workload (above): setup finished or failed, a delivery, a reply, an error. */
#ifndef MOONPOST_BENCH_CLIENT_H
#define MOONPOST_BENCH_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "bench.h"

enum delivery_kind { DELIVERY_PRIVATE, DELIVERY_BROADCAST };

/* The client will send bytes at the end of this loop pass (its output is non-empty). */
void client_mark_dirty(struct client *c);

/* A fresh request id that also records when it was sent: max(previous id + 1, now in ns). */
uint64_t client_next_id(struct client *c, int64_t now);

/* Setup (login, resume, subscribe...) finished; REPLY_NS is the latency of its last request. */
void client_setup_done(struct client *c, int64_t now);
/* Setup failed with CODE (a res code, or 0 for a local failure already counted). */
void client_setup_failed(struct client *c, int code);

/* The broker handed this client the resume token of its session. */
void client_token(struct client *c, const uint8_t *token, size_t len);

/* A message arrived. MID is the moonpost mailbox id to ack (0: nothing to ack). */
void client_delivery(struct client *c, enum delivery_kind kind, const uint8_t *body, size_t len,
                     uint64_t mid, int offline, int64_t now);

/* Acks every message the client has seen (moonpost `ack upto`, no id: silent on success). */
void client_ack_now(struct client *c);

/* A `res` to a request sent after setup (send, broadcast). ID 0: a res without id. */
void client_reply(struct client *c, uint64_t id, int code, int64_t now);

/* The broker said bye. */
void client_bye(struct client *c, int code);

/* Closes the client's socket and frees its buffers; it counts as done. */
void client_close(struct client *c);

#endif
