/* session: one client connection, its state and its output, addressed by a handle that
 * outlives it safely (slot index + generation), never by a raw pointer kept across I/O. */
#ifndef MOONPOST_SESSION_H
#define MOONPOST_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "frame.h"

#define SESSION_USER_MAX 32
#define SESSION_MAX_MALFORMED 3
#define SESSION_MAX_INFLIGHT 64 /* handlers running at once for one session: reading pauses past it */
#define SESSION_MAX_INFLIGHT_ANONYMOUS 4 /* the same before login */

typedef uint64_t session_handle; /* 0 is never a live session */

enum session_state { SESSION_ANONYMOUS, SESSION_AUTHENTICATED, SESSION_CLOSING };
enum session_kind { SESSION_CLIENT, SESSION_ADMIN };

/* About 400 bytes with its buffers empty: the read event is embedded, the write event exists
 * only while the kernel's send buffer is full, and buffers hold chains only while they hold
 * bytes. */
struct session {
    session_handle handle;
    evutil_socket_t fd;
    struct event read_ev;       /* EV_READ | EV_PERSIST, with the idle timeout */
    struct event *write_ev;     /* allocated the first time a write would block */
    struct evbuffer *in;        /* NULL for plain TCP while no byte waits in it (session_io.c) */
    struct evbuffer *out;
    struct event *login_timer;  /* while anonymous: the login_timeout deadline */
    struct tls_conn *tls;       /* the TLS stream (tls_listen, or WSS on http_tls), NULL in clear */
    enum session_state state;
    uint8_t kind;
    uint8_t malformed;
    uint8_t doomed;      /* queued to be freed on the next loop pass */
    uint8_t read_paused; /* in-flight limit reached: reading waits for handlers */
    uint8_t dirty;       /* in the list of sessions to flush at the end of this loop pass */
    uint8_t replaying;   /* mailbox replay in progress: live `msg` pushes wait for it */
    uint8_t user_len;
    uint8_t superseded;  /* closed because the user logged in again (here or on another node) */
    uint8_t claiming;    /* its cluster claims on their way to Redis */
    uint16_t inflight;
    uint8_t addr_family; /* AF_INET, AF_INET6 or AF_UNIX */
    uint8_t addr[16];
    uint64_t last_mid;   /* highest `msg` mid pushed in this session */
    uint64_t covered_mid; /* highest mid a replay or resync pushed: a live copy of it is a repeat */
    uint64_t held_mid;   /* highest live mid held back during a replay (the replay reads again) */
    uint64_t claim_seq;  /* the cluster claim of this login (0: not answered yet) */
    uint64_t kicked_seq; /* a newer claim elsewhere seen before claim_seq came */
    struct gap_hold *held; /* live messages waiting for an earlier one (router_gap.c), or NULL */
    struct websocket *ws;  /* NULL: plain TCP; else the WebSocket codec its bytes pass through */
    struct event *drain_ev; /* session_wait_drain: activated once out is at most drain_low_water */
    int64_t rate_tat_us; /* request_rate: when the next request is due (GCRA), monotonic µs */
    uint32_t rate_refused; /* requests refused in a row for request_rate */
    uint32_t out_partial;  /* bytes at the head of `out` ending a frame partly written */
    uint32_t drain_low_water; /* at most output_limit (< 4 GiB) */
    uint32_t online_index; /* position in the presence table's list */
    char user[SESSION_USER_MAX + 1];
};

/* Where a session's well-formed frames go (the router): called once per frame that passed the
 * framing, malformed and request_rate checks. */
typedef void (*session_frame_fn)(struct session *s, const struct frame_info *info,
                                 const uint8_t *body, size_t len);

/* The limits the session module enforces; session_set_limits may change them at any time (a
 * reload): timeouts apply to the sessions opened or re-armed after, the others at once. */
struct session_limits {
    double idle_timeout;   /* seconds without a frame from a client, 0 = none */
    double login_timeout;  /* seconds from connect to login, 0 = none */
    size_t output_limit;   /* bytes queued to one session before it is dropped */
    size_t output_budget;  /* bytes queued to all sessions before the slowest go, 0 = none */
    int request_rate;      /* requests per second per client connection, 0 = none */
    int request_burst;     /* requests above the rate a client may send at once */
    uint32_t max_frame;    /* bytes of one frame body */
};

/* Allocates the session table for up to MAX sessions on BASE; frames go to ON_FRAME. */
int session_table_init(struct event_base *base, size_t max, session_frame_fn on_frame);
void session_set_limits(const struct session_limits *limits);
void session_table_free(void);
size_t session_count(void);
/* Client connections only (admin connections have slots of their own). */
size_t session_client_count(void);

/* Wraps an accepted socket; returns NULL when the table is full or on allocation failure. */
struct session *session_open(int fd, const struct sockaddr *addr, int addr_len,
                             enum session_kind kind);
/* The same for a client whose bytes pass through the WebSocket codec WS, and through TLS when
 * TLS is not NULL (an HTTPS upgrade; the session owns both from then on; on NULL the caller
 * still does). */
struct session *session_open_websocket(int fd, const struct sockaddr *addr, int addr_len,
                                       struct websocket *ws, struct tls_conn *tls);

/* Makes S, just opened, speak TLS with a connection of CTX (session_tls.c). Returns 0, or -1
 * when out of memory (S is then closed). */
struct tls_context;
int session_start_tls(struct session *s, struct tls_context *ctx);

/* The live session behind HANDLE, or NULL when it is gone (or closing, unless allow_closing). */
struct session *session_get(session_handle handle);

/* Visits every live session (closing ones excluded). */
void session_foreach(void (*fn)(struct session *s, void *arg), void *arg);

/* Bytes queued to S and not yet written to its socket. */
size_t session_queued(const struct session *s);
/* Bytes queued to all sessions and not yet written (what output_budget bounds). */
size_t session_output_total(void);

/* Activates EV (with EV_WRITE) once S's queued output is at most LOW_WATER, or when S closes;
 * at most one waiter per session. Returns 0, or -1 when another waiter is registered. */
int session_wait_drain(struct session *s, size_t low_water, struct event *ev);
/* Forgets EV if it is S's drain waiter (it timed out). */
void session_cancel_drain(struct session *s, const struct event *ev);

/* Queues raw frame bytes; they are written once per loop pass, after every callback that
 * added to them. A session past its output limit is dropped as a slow reader. */
void session_send_bytes(struct session *s, const void *data, size_t len);

/* Replies `res` with CODE (and ERROR when CODE != 200), carrying ID when HAS_ID. */
void session_reply(struct session *s, int has_id, uint64_t id, int code, const char *error);

/* Sends `bye` CODE ERROR (when CODE != 0), stops reading, and frees the session once its output
 * is flushed (or after a short grace period). Safe to call twice. */
void session_close(struct session *s, int code, const char *error);

/* Marks the session logged in as USER and moves it from the login to the idle timeout. */
void session_set_user(struct session *s, const char *user, size_t len);

/* The client address as text ("127.0.0.1", "::1", "unix"). */
const char *session_addr_text(const struct session *s, char *buf, size_t len);

/* What per-address limits count S under, as text: its IPv4 address (also when it came as an
 * IPv4-mapped IPv6 address), or the /64 of its IPv6 address ("2001:db8:1:2::/64"), since one
 * subscriber usually holds a whole /64 and could otherwise pick a new address per attempt. */
const char *session_addr_key(const struct session *s, char *buf, size_t len);

/* A frame handler finished: lets reading resume if it was paused. */
void session_handler_done(struct session *s);

/* ---- lifecycle events (session_events.c) ---- */

enum session_event {
    SESSION_OPENED,    /* accepted (client or admin socket), before its first frame */
    SESSION_LOGGED_IN, /* session_login succeeded */
    SESSION_CLOSED,    /* being freed: its socket is gone; S is valid only during the call */
};
typedef void (*session_event_fn)(void *state, struct session *s, enum session_event event);

/* Calls FN(STATE, s, event) for every event from now on, after the earlier subscribers.
 * Returns 0, or -1 when the list is full. */
int session_subscribe(session_event_fn fn, void *state);
/* Fires EVENT for S (the session module only). */
void session_emit(struct session *s, enum session_event event);

/* A check run before a session logs in: 0 lets it, else a reply code (403, 429...) with *error
 * set to a static reason. */
typedef int (*session_login_check)(void *state, struct session *s, const char *user, size_t len,
                                   const char **error);
int session_add_login_check(session_login_check fn, void *state);
/* Forgets every subscriber and login check (at exit, and between unit tests). */
void session_unsubscribe_all(void);

/* Closes S with `bye` 409: its user logged in again, here or on another node. */
void session_supersede(struct session *s);

/* Logs S in as USER (1 to SESSION_USER_MAX bytes): runs the login checks, binds S as USER's
 * session (the session USER had before gets `bye` 409), and fires SESSION_LOGGED_IN. Returns 0,
 * or the refusing code with *error set (S stays as it was). */
int session_login(struct session *s, const char *user, size_t len, const char **error);

#endif
