/* session_internal: what session.c (table, lifecycle) and session_io.c (reading, writing)
 * share. Not for other modules. */
#ifndef MOONPOST_SESSION_INTERNAL_H
#define MOONPOST_SESSION_INTERNAL_H

#include "session.h"

#define SESSION_CLOSE_GRACE_SECONDS 2

/* Frees S on the next loop pass, never inside a callback that may still touch it. */
void session_doom(struct session *s);

/* The session in HANDLE's slot even while it is closing (but not once doomed), or NULL. */
struct session *session_get_any(session_handle handle);

/* The event callbacks of a session's socket. */
void session_on_readable(evutil_socket_t fd, short what, void *arg);
void session_on_writable(evutil_socket_t fd, short what, void *arg);

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

#endif
