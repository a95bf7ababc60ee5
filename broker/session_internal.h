/* session_internal: what session.c (table, lifecycle) and session_io.c (reading, writing)
 * share. Not for other modules. */
#ifndef MOONPOST_SESSION_INTERNAL_H
#define MOONPOST_SESSION_INTERNAL_H

#include <sys/types.h>

#include "session.h"

#define SESSION_CLOSE_GRACE_SECONDS 2

/* What the module was given (session_table_init, session_set_limits). */
struct session_context {
    struct event_base *base;
    session_frame_fn on_frame;
    struct session_limits limits;
};
extern struct session_context session_ctx;

/* Frees S on the next loop pass, never inside a callback that may still touch it. */
void session_doom(struct session *s);

/* The session in HANDLE's slot even while it is closing (but not once doomed), or NULL. */
struct session *session_get_any(session_handle handle);

#define SESSION_READ_CHUNK 65536 /* most bytes read from one socket per callback, for fairness */

/* The event callbacks of a session's socket. */
void session_on_readable(evutil_socket_t fd, short what, void *arg);
void session_on_writable(evutil_socket_t fd, short what, void *arg);

/* The read event's timeout passed: `bye` 408 (login or idle timeout). */
void session_read_timed_out(struct session *s);
/* Handles the whole frames buffered in S's input (reading pauses past the in-flight limit). */
void session_handle_frames(struct session *s);

/* A session over TLS (session_tls.c): its writes go through session_tls_write (same contract
 * as writev: bytes written, or -1 with errno), its reads through a read callback of its own. */
ssize_t session_tls_write(struct session *s);

/* Activates S's drain waiter, if any, and forgets it. */
void session_wake_drain(struct session *s);

/* Writes what S has queued; called for a dirty session at the end of a loop pass. */
void session_write_out(struct session *s);
/* Puts S in the list written at the end of this loop pass. */
void session_mark_dirty(struct session *s);

int session_io_init(size_t max);
void session_io_free(void);

/* (Re)arms the read event with the idle timeout. */
void session_arm_read(struct session *s);

/* Output accounting (session_io.c): every byte queued to a session goes through session_queue,
 * so that the broker-wide total stays exact without scanning sessions. */
void session_queue(struct session *s, const void *data, size_t len);
/* Adds LEN bytes already in the transport's framing (a WebSocket header, a control frame). */
void session_queue_wire(struct session *s, const void *data, size_t len);
/* Discards S's output but the end of a frame whose start the socket already has, so that a
 * `bye` queued after it still starts on a frame boundary. */
void session_discard_output(struct session *s);
/* Takes S's remaining output out of the total (S is being freed). */
void session_release_output(struct session *s);
/* The highest total since the last reset. */
size_t session_output_peak(void);
void session_output_peak_reset(void);

/* The output budget (session_budget.c). */
int session_budget_init(void);
void session_budget_free(void);
/* Over budget within a loop pass: drops S when its QUEUED bytes are above the average of the
 * client sessions (the slower readers); returns 1 when it did. */
int session_budget_victim(struct session *s, size_t queued);
/* At the end of a loop pass: drops the sessions with the longest queues until the total is
 * back under 90% of the budget. */
void session_budget_enforce(void);
/* Drops S as a slow reader: its queued output is discarded and it gets `bye` 429 WHY. */
void session_drop_slow(struct session *s, const char *why);

#endif
