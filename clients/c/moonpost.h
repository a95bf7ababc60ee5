/* moonpost.h: libmoonpost, the C client library of the moonpost instant-messaging broker.
 *
 * Speaks the wire protocol of docs/protocol.md over TCP or a Unix socket: connect, register,
 * login, resume, logout, users, send, broadcast, ping, rooms, and any other request as raw
 * MessagePack. Pushed frames (msg, broadcast, presence, room.msg, bye) reach the program through
 * callbacks; offline mail is de-duplicated and acknowledged automatically.
 *
 * Rules that hold for the whole API:
 *  - Threads: an mp_client is used by one thread at a time. The library has no global state
 *    and takes no locks, so different clients may live in different threads.
 *  - Errors are values: every call that can fail returns an mp_err. For the details,
 *    mp_client_errmsg() gives a text and mp_client_code() the broker's code (200..507) when the
 *    broker answered, 0 when the error happened locally. The library never prints, never calls
 *    exit() or abort(), and never raises SIGPIPE.
 *  - Time: no call blocks longer than its timeout. Blocking requests use the client's timeout
 *    (mp_client_set_timeout, default MP_DEFAULT_TIMEOUT_MS); the exceptions say so.
 *  - Memory: a function that returns memory the caller must free says how; every other
 *    pointer the library hands out is owned by the library and valid as documented.
 *  - Callbacks: while a blocking request waits for its reply, pushes that arrive meanwhile are
 *    dispatched to the callbacks. A callback may call any request function (blocking or
 *    async), mp_client_stop() and mp_client_close(); it must not call mp_client_free, and
 *    mp_client_connect* and mp_client_reconnect return MP_ERR_STATE there.
 */
#ifndef MOONPOST_H
#define MOONPOST_H

#include <stddef.h>
#include <stdint.h>
#include <moonpost_version.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(MP_BUILDING_LIBRARY)
#define MP_API __attribute__((visibility("default")))
#else
#define MP_API
#endif

#define MP_VERSION MOONPOST_VERSION
#define MP_DEFAULT_PORT 8889
#define MP_DEFAULT_TIMEOUT_MS 10000
#define MP_DEFAULT_ADMIN_SOCKET "/run/moonpost/admin.sock"
#define MP_NAME_MAX_PUBLIC 64 /* user names are at most 32 bytes; room for more */

/* ---------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------ */

typedef enum mp_err {
    MP_OK = 0,
    MP_ERR_INVAL,    /* a bad argument (NULL, a name or body too long, an `id` in a raw map) */
    MP_ERR_NOMEM,    /* out of memory */
    MP_ERR_RESOLVE,  /* the host name could not be resolved */
    MP_ERR_REFUSED,  /* connection refused (nothing listens there, or no such Unix socket) */
    MP_ERR_TIMEOUT,  /* the connection or the reply did not come within the timeout */
    MP_ERR_CLOSED,   /* not connected, or the broker closed the connection (see code for bye) */
    MP_ERR_IO,       /* another socket error (errno text in mp_client_errmsg) */
    MP_ERR_PROTOCOL, /* the broker sent bytes that are not a valid frame; the client hung up */
    MP_ERR_SERVER,   /* the broker answered code != 200: see mp_client_code/mp_client_errmsg */
    MP_ERR_STATE,    /* not allowed now (reconnect before any connect, connect in a callback) */
    MP_ERR_BUSY,     /* the output queue is full (async requests): process, then retry */
    MP_ERR_TLS,      /* TLS failed: the CA file, the handshake, or the broker's certificate */
} mp_err;

/* A short static description of ERR ("connection refused"). Never NULL. */
MP_API const char *mp_strerror(mp_err err);

/* A static description, for people, of a protocol code of docs/protocol.md (401: "not logged
 * in, or wrong user name or password"). Unknown codes give "unknown error". Never NULL. */
MP_API const char *mp_code_text(int code);

/* ---------------------------------------------------------------------------------------------
 * The client object
 * ------------------------------------------------------------------------------------------ */

typedef struct mp_client mp_client;

/* A new, unconnected client. Returns NULL when out of memory. Free with mp_client_free. */
MP_API mp_client *mp_client_new(void);

/* Closes the connection (without logout) and frees C and everything it owns. NULL is fine.
 * Pending async requests are dropped without their callbacks. Not from inside a callback. */
MP_API void mp_client_free(mp_client *c);

/* The text of the last error on C, or "" when none. Owned by C; valid until the next call. */
MP_API const char *mp_client_errmsg(const mp_client *c);

/* The broker's code behind the last error (a res or bye code), or 0 for a local error. */
MP_API int mp_client_code(const mp_client *c);

/* Timeout of blocking requests in milliseconds (> 0). Default MP_DEFAULT_TIMEOUT_MS. */
MP_API void mp_client_set_timeout(mp_client *c, int timeout_ms);

/* ---------------------------------------------------------------------------------------------
 * Connecting
 * ------------------------------------------------------------------------------------------ */

/* Connects to HOST (a name or an address) and PORT, waiting at most TIMEOUT_MS (> 0) for the
 * TCP handshake. Name resolution uses getaddrinfo() and is not covered by the timeout.
 * An open connection is closed first. Errors: MP_ERR_INVAL, MP_ERR_RESOLVE, MP_ERR_REFUSED,
 * MP_ERR_TIMEOUT, MP_ERR_IO, MP_ERR_NOMEM, MP_ERR_STATE (inside a callback). */
MP_API mp_err mp_client_connect(mp_client *c, const char *host, uint16_t port, int timeout_ms);

/* Makes every later mp_client_connect (and reconnect) of C speak TLS 1.2 or later, for a
 * broker's tls_listen port. The broker's certificate must chain to a CA of CA_FILE (PEM), or of
 * the system's store when CA_FILE is NULL, and name the host given to mp_client_connect (a
 * name, or an IP address in the certificate's subjectAltName), or SERVER_NAME when it is not
 * NULL. The handshake counts in the connect timeout. Errors: MP_ERR_TLS (CA_FILE cannot be
 * read), MP_ERR_NOMEM; mp_client_connect then fails with MP_ERR_TLS when the certificate is
 * refused ("certificate verify failed: ..." in mp_client_errmsg) or the handshake fails, and
 * with MP_ERR_TIMEOUT when it does not finish in time. The socket of mp_client_fd carries TLS
 * records: read the connection only through mp_client_process. mp_client_connect_unix (the
 * admin socket, local) never uses TLS. */
MP_API mp_err mp_client_use_tls(mp_client *c, const char *ca_file, const char *server_name);

/* Connects to the Unix socket PATH (the broker's admin socket speaks the same framing).
 * Errors: as mp_client_connect; MP_ERR_REFUSED also when PATH does not exist, MP_ERR_IO with
 * "permission denied" when the socket's mode forbids it. */
MP_API mp_err mp_client_connect_unix(mp_client *c, const char *path, int timeout_ms);

/* Closes the connection without logout. Requests in flight fail with MP_ERR_CLOSED (their async
 * callbacks run). The user name, token and de-duplication state are kept for
 * mp_client_reconnect. Safe when not connected, and inside a callback. */
MP_API void mp_client_close(mp_client *c);

/* 1 when the connection is open. */
MP_API int mp_client_is_connected(const mp_client *c);

/* ---------------------------------------------------------------------------------------------
 * Requests (blocking)
 *
 * Each call sends its request with a fresh `id` and waits for the `res` carrying that id,
 * dispatching pushes to the callbacks meanwhile. Common errors: MP_ERR_CLOSED (not connected,
 * or the connection ended while waiting), MP_ERR_TIMEOUT, MP_ERR_NOMEM, MP_ERR_INVAL, and
 * MP_ERR_SERVER when the broker answered code != 200 (mp_client_code gives 400, 401, 404, ...;
 * mp_client_errmsg the broker's `error` text).
 * ------------------------------------------------------------------------------------------ */

/* Names of users, returned by login, resume and users. One allocation: free with
 * mp_userlist_free (or free()). users[0..n-1] are NUL-terminated. */
typedef struct mp_userlist {
    size_t n;       /* names listed */
    uint64_t total; /* users online in all (`count`; equals n for login/resume) */
    char **users;
} mp_userlist;

MP_API void mp_userlist_free(mp_userlist *list);

/* Creates an account. NAME (display name) may be NULL. Broker codes: 400 invalid field,
 * 409 the user exists. */
MP_API mp_err mp_register(mp_client *c, const char *user, const char *password, const char *name);

/* Logs in. On success the client remembers USER and the resume token (mp_client_token) and,
 * when ONLINE is not NULL, stores there the online users (free with mp_userlist_free;
 * set to NULL on failure). Offline mail follows the reply and reaches the msg callback during
 * the next process/run/blocking call. Broker codes: 401 bad credentials, 409 this connection
 * is already logged in, 429 too many failures. */
MP_API mp_err mp_login(mp_client *c, const char *user, const char *password, mp_userlist **online);

/* As mp_login, with a resume token instead of the password. */
MP_API mp_err mp_resume(mp_client *c, const char *user, const char *token, mp_userlist **online);

/* Logs out: the broker revokes the token and closes; the client closes too and forgets user
 * and token. */
MP_API mp_err mp_logout(mp_client *c);

/* Online users, at most LIMIT (0 = the broker's default, 1000). *OUT as for mp_login. */
MP_API mp_err mp_users(mp_client *c, unsigned limit, mp_userlist **out);

/* How a body is sent: as a MessagePack str (text) or bin (bytes). */
enum mp_body_kind { MP_BODY_STR = 0, MP_BODY_BIN = 1 };

/* Sends LEN bytes of BODY (may be NULL when LEN is 0) to user TO. On success *MID (when not
 * NULL) is the message id and *ONLINE (when not NULL) is 1 when TO was online. Broker codes:
 * 404 no such user, 413 body too large, 507 TO's mailbox is full. */
MP_API mp_err mp_send(mp_client *c, const char *to, const void *body, size_t len,
                      enum mp_body_kind kind, uint64_t *mid, int *online);

/* Sends BODY to every other online session. *MID as for mp_send. Broker codes: 413, 429. */
MP_API mp_err mp_broadcast(mp_client *c, const void *body, size_t len, enum mp_body_kind kind,
                           uint64_t *mid);

/* Round trip to the broker. *TS (when not NULL) is the broker's clock, ms since the epoch. */
MP_API mp_err mp_ping(mp_client *c, int64_t *ts);

/* Deletes the mailbox messages with mid <= UPTO. Only needed with auto-ack off. */
MP_API mp_err mp_ack(mp_client *c, uint64_t upto);

/* The user of C's session (NULL when none) and its resume token (NULL when none): set by a
 * successful login or resume, kept when the connection drops (for mp_client_reconnect),
 * cleared by logout. Owned by C, valid until the next login, resume, logout or free. */
MP_API const char *mp_client_user(const mp_client *c);
MP_API const char *mp_client_token(const mp_client *c);

/* 1 when the current connection is logged in (login or resume succeeded on it). */
MP_API int mp_client_is_logged_in(const mp_client *c);

/* ---------------------------------------------------------------------------------------------
 * Raw requests, for tools (moonpostctl) and message types this header does not know
 *
 * MAP/LEN is one MessagePack map with string keys holding `type` (a str) and any fields, but
 * no `id`: the library adds it. Build it with any encoder, e.g. msgpack-c:
 *     msgpack_sbuffer sb; msgpack_packer pk;
 *     msgpack_sbuffer_init(&sb); msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
 *     msgpack_pack_map(&pk, 2);
 *     msgpack_pack_str_with_body(&pk, "type", 4);
 *     msgpack_pack_str_with_body(&pk, "admin.kick", 10);
 *     msgpack_pack_str_with_body(&pk, "user", 4);
 *     msgpack_pack_str_with_body(&pk, "bob", 3);
 *     err = mp_call(c, sb.data, sb.size, &reply);
 *     msgpack_sbuffer_destroy(&sb);
 * A map that is not a valid frame, or that holds `id`, gives MP_ERR_INVAL.
 * ------------------------------------------------------------------------------------------ */

typedef struct mp_reply mp_reply;

/* Sends MAP and waits for its reply. When a reply arrived (MP_OK, or MP_ERR_SERVER for
 * code != 200) and OUT is not NULL, *OUT holds it: free with mp_reply_free. Otherwise *OUT
 * is set to NULL. */
MP_API mp_err mp_call(mp_client *c, const void *map, size_t len, mp_reply **out);

/* The reply's `code` (200 on success). */
MP_API int mp_reply_code(const mp_reply *r);

/* The whole reply: LEN bytes of one MessagePack map (with `type` "res", `code`, `id` and the
 * reply's fields), for decoding with any MessagePack reader. Owned by R. */
MP_API const void *mp_reply_data(const mp_reply *r, size_t *len);

/* Top-level field KEY as a str or bin: 1 when present with that type (*PTR, *LEN point into R,
 * not NUL-terminated), 0 otherwise. */
MP_API int mp_reply_str(const mp_reply *r, const char *key, const char **ptr, size_t *len);

/* Top-level field KEY as a non-negative integer (1 when present, 0 otherwise). */
MP_API int mp_reply_uint(const mp_reply *r, const char *key, uint64_t *out);

/* Top-level field KEY as a boolean (1 when present, 0 otherwise). */
MP_API int mp_reply_bool(const mp_reply *r, const char *key, int *out);

/* Frees a reply from mp_call. NULL is fine. */
MP_API void mp_reply_free(mp_reply *r);

/* ---------------------------------------------------------------------------------------------
 * Requests (asynchronous), for programs that keep many requests in flight
 *
 * The request is queued and sent by the next mp_client_process/mp_client_run/blocking call (or
 * mp_client_flush); the reply is handed to FN from there. FN gets MP_OK (code 200),
 * MP_ERR_SERVER (REPLY holds the code and error), MP_ERR_TIMEOUT (no reply within the client's
 * timeout) or MP_ERR_CLOSED (the connection ended first); REPLY is NULL for the last two and
 * valid only during FN. With FN NULL the request goes without an id: success is silent and a
 * failure reaches the on_error callback. Errors of the call itself: MP_ERR_CLOSED, MP_ERR_INVAL,
 * MP_ERR_NOMEM, MP_ERR_BUSY (more than 16 MiB are waiting to be written).
 * ------------------------------------------------------------------------------------------ */

typedef void (*mp_reply_fn)(mp_client *c, mp_err err, const mp_reply *reply, void *ud);

MP_API mp_err mp_call_async(mp_client *c, const void *map, size_t len, mp_reply_fn fn, void *ud);
MP_API mp_err mp_send_async(mp_client *c, const char *to, const void *body, size_t len,
                            enum mp_body_kind kind, mp_reply_fn fn, void *ud);
MP_API mp_err mp_broadcast_async(mp_client *c, const void *body, size_t len, enum mp_body_kind kind,
                                 mp_reply_fn fn, void *ud);

/* Requests waiting for their reply. */
MP_API size_t mp_client_pending(const mp_client *c);

/* ---------------------------------------------------------------------------------------------
 * Rooms (docs/protocol.md, "Rooms"): group chats with members, a history and read cursors
 *
 * ROOM is a name of 1-64 bytes of A-Za-z0-9_.- . Broker codes common to the room calls: 400
 * invalid field, 403 not a member, 404 no such room (or, for mp_room_leave, not a member).
 * ------------------------------------------------------------------------------------------ */

/* A room message: pushed (on_room_msg) or read from the history. Pointers are valid during
 * the callback, or as long as the history that holds them. */
typedef struct mp_room_msg {
    const char *room; /* NUL-terminated */
    uint64_t seq;     /* strictly increasing within the room */
    const char *from; /* NUL-terminated */
    const void *body; /* body_len bytes, followed by a NUL byte */
    size_t body_len;
    int body_is_bin; /* 1 when sent as bin, 0 for str */
    int64_t ts;      /* ms since the epoch, when the broker accepted it */
} mp_room_msg;

/* Creates ROOM with this user as its member. TITLE may be NULL (at most 128 bytes);
 * IS_PRIVATE: only invited users may join. Broker codes: 409 the name is taken, 507 too many
 * rooms (rooms_per_user, rooms_per_creator). */
MP_API mp_err mp_room_create(mp_client *c, const char *room, const char *title, int is_private);

/* Joins ROOM; *SEQ (when not NULL) is its last seq (0: no message yet). Broker codes: 403
 * private and not invited, 404, 507 room full or too many rooms. */
MP_API mp_err mp_room_join(mp_client *c, const char *room, uint64_t *seq);

/* Lets USER join the private ROOM (any member may). Broker codes: 403, 404 no such room or
 * user. */
MP_API mp_err mp_room_invite(mp_client *c, const char *room, const char *user);

/* Leaves ROOM. Broker code: 404 not a member. */
MP_API mp_err mp_room_leave(mp_client *c, const char *room);

/* Sends LEN bytes of BODY to the other members of ROOM; *SEQ (when not NULL) is its seq.
 * Broker codes: 403, 404, 413 body too large. */
MP_API mp_err mp_room_send(mp_client *c, const char *room, const void *body, size_t len,
                           enum mp_body_kind kind, uint64_t *seq);
MP_API mp_err mp_room_send_async(mp_client *c, const char *room, const void *body, size_t len,
                                 enum mp_body_kind kind, mp_reply_fn fn, void *ud);

/* Moves this member's read cursor of ROOM up to SEQ (it never moves back). */
MP_API mp_err mp_room_read(mp_client *c, const char *room, uint64_t seq);

/* Messages of a room, oldest first. One allocation: free with mp_room_history_free. */
typedef struct mp_room_history {
    size_t n;
    mp_room_msg *messages;
} mp_room_history;

/* The newest LIMIT (1..100; 0: the broker's default, 50) messages of ROOM with a seq below
 * BEFORE (0: up to the last). To page back, call again with BEFORE = messages[0].seq until n
 * is 0. *OUT is NULL on failure. */
MP_API mp_err mp_room_history_get(mp_client *c, const char *room, uint64_t before,
                                  unsigned limit, mp_room_history **out);
MP_API void mp_room_history_free(mp_room_history *h);

/* One room of mp_room_list. */
typedef struct mp_room_info {
    const char *room;  /* NUL-terminated */
    const char *title; /* NUL-terminated, "" when none */
    int is_private;
    uint64_t seq;     /* the room's last seq */
    uint64_t read;    /* this member's read cursor */
    uint64_t unread;  /* messages kept with a seq above read */
    uint64_t members; /* how many members */
} mp_room_info;

typedef struct mp_room_list {
    size_t n;
    mp_room_info *rooms;
} mp_room_list;

/* Every room this user is a member of, in one request. Free with mp_room_list_free. */
MP_API mp_err mp_room_list_get(mp_client *c, mp_room_list **out);
MP_API void mp_room_list_free(mp_room_list *list);

/* The members of ROOM (sorted, at most 1000; total: how many) and those online now (at most
 * 1000). Either pointer may be NULL; free each with mp_userlist_free. */
MP_API mp_err mp_room_members(mp_client *c, const char *room, mp_userlist **members,
                              mp_userlist **online);

/* ---------------------------------------------------------------------------------------------
 * Pushes: callbacks
 * ------------------------------------------------------------------------------------------ */

/* A pushed msg or broadcast. Every pointer is valid only during the callback. */
typedef struct mp_message {
    uint64_t mid;
    const char *from; /* NUL-terminated */
    const char *to;   /* NUL-terminated; "" for a broadcast */
    const void *body; /* body_len bytes, followed by a NUL byte (handy for text) */
    size_t body_len;
    int body_is_bin; /* 1 when sent as bin, 0 for str */
    int64_t ts;      /* ms since the epoch, when the broker accepted it */
    int offline;     /* msg: 1 when replayed from the mailbox after login/resume */
    /* msg announcing a file (file transfer below): its id and name (NUL-terminated; the name
     * comes from the sender: sanitize it with mp_file_safe_name before using it as a path) and
     * size. file_fid is NULL for any other message. */
    const char *file_fid;
    const char *file_name;
    uint64_t file_size;
} mp_message;

typedef struct mp_callbacks {
    /* A private message. Offline mail is de-duplicated: a mid not above the highest one seen
     * by this client is never delivered twice. After the callback returns the message is
     * acknowledged (deleted from the mailbox) when auto-ack is on. Without an on_msg callback
     * messages are neither delivered nor acknowledged: they stay in the mailbox. */
    void (*on_msg)(mp_client *c, const mp_message *m, void *ud);
    /* A broadcast from another session (not stored, never replayed). */
    void (*on_broadcast)(mp_client *c, const mp_message *m, void *ud);
    /* USER went online (1) or offline (0); only when the broker has presence_notify on. */
    void (*on_presence)(mp_client *c, const char *user, int online, void *ud);
    /* The broker says goodbye (409 logged in elsewhere, 403 kicked, 503 shutdown, 408 idle,
     * 400/413 framing, 429 slow reader). The connection is closed right after the callback. */
    void (*on_bye)(mp_client *c, int code, const char *error, void *ud);
    /* An error reply to a request sent without an id (an automatic ack, an async request with
     * a NULL callback). */
    void (*on_error)(mp_client *c, int code, const char *error, void *ud);
    /* A message of a room this user is a member of, from another member (see Rooms below).
     * Within a room, seqs strictly increase; a member that was away catches up with
     * mp_room_list (unread) and mp_room_history. */
    void (*on_room_msg)(mp_client *c, const struct mp_room_msg *m, void *ud);
} mp_callbacks;

/* Copies CB (NULL clears every callback); UD is passed to each of them. */
MP_API void mp_client_set_callbacks(mp_client *c, const mp_callbacks *cb, void *ud);

/* Automatic acknowledgement, on by default: after on_msg returns, the client sends one
 * `ack {upto}` per batch of messages processed together (live and offline mail alike, which
 * keeps the mailbox small). Off: call mp_ack yourself. */
MP_API void mp_client_set_auto_ack(mp_client *c, int on);

/* The highest msg mid this client has seen for its user, 0 when none. A program that wants
 * de-duplication across its own restarts stores it and gives it back with
 * mp_client_set_last_mid after mp_client_new. Logging in as another user resets it to 0. */
MP_API uint64_t mp_client_last_mid(const mp_client *c);
MP_API void mp_client_set_last_mid(mp_client *c, uint64_t mid);

/* ---------------------------------------------------------------------------------------------
 * Driving the connection
 * ------------------------------------------------------------------------------------------ */

/* The socket, for the program's own poll/epoll/libevent loop; -1 when not connected. It is
 * non-blocking and changes on every (re)connect. */
MP_API int mp_client_fd(const mp_client *c);

#define MP_EV_READ 1
#define MP_EV_WRITE 2
/* What to wait for on mp_client_fd: MP_EV_READ always while connected, plus MP_EV_WRITE when
 * output is queued. 0 when not connected. */
MP_API int mp_client_events(const mp_client *c);

/* Milliseconds until the earliest async request times out (mp_client_process must run by then),
 * or -1 when none is pending. */
MP_API int mp_client_next_timeout(const mp_client *c);

/* Never blocks: reads what the socket has, dispatches pushes and async replies to their
 * callbacks, sends the batched ack, times out late async requests, writes queued output.
 * Call it when the fd is readable or writable, and at mp_client_next_timeout. Returns MP_OK
 * while the connection lives; MP_ERR_CLOSED, MP_ERR_IO or MP_ERR_PROTOCOL once it has ended
 * (after on_bye when the broker said goodbye). */
MP_API mp_err mp_client_process(mp_client *c);

/* Writes queued output without blocking (async requests are queued, not written). */
MP_API mp_err mp_client_flush(mp_client *c);

/* A loop for programs without one: waits for and processes events for TIMEOUT_MS (0: only what
 * is ready now; -1: until the connection ends or mp_client_stop, so it can block for good).
 * Returns MP_OK when the time ran out or mp_client_stop was called, else as
 * mp_client_process. */
MP_API mp_err mp_client_run(mp_client *c, int timeout_ms);

/* Makes mp_client_run return after the current callback. Called from a callback that ran
 * inside a blocking request, it makes the next mp_client_run return at once. */
MP_API void mp_client_stop(mp_client *c);

/* ---------------------------------------------------------------------------------------------
 * File transfer (docs/protocol.md, "File transfer"; docs/client.md)
 *
 * A file goes up in chunks (a window of 8 in flight) and is stored by the broker; once it is
 * all there its recipient gets a msg whose file_fid, file_name and file_size are set. An upload
 * whose connection ends reconnects (mp_client_reconnect, with the session's token) up to 3
 * times and goes on from the bytes the broker has (file.status); a program that restarts goes
 * on with mp_file_resume*. These calls run the connection (like mp_client_run) until they
 * return, so pushes reach their callbacks meanwhile.
 * ------------------------------------------------------------------------------------------ */

#define MP_FID_LEN 32 /* a file id: 32 lowercase hex digits */

/* Called after each reply with the bytes the broker has (upload) or written (download). */
typedef void (*mp_progress_fn)(mp_client *c, uint64_t done, uint64_t total, void *ud);

/* What file.status answers. */
typedef struct mp_file_info {
    char name[256]; /* as the sender gave it: see mp_file_safe_name */
    char from[MP_NAME_MAX_PUBLIC + 1];
    char to[MP_NAME_MAX_PUBLIC + 1];
    uint64_t size, received;
    int complete;       /* the msg is in the recipient's mailbox: the file can be fetched */
    uint32_t chunk_max; /* bytes per chunk the broker takes (0 when it did not say) */
} mp_file_info;

/* Offers LEN (> 0) bytes of DATA named NAME (1-255 bytes, no '/') to user TO and uploads them.
 * FID (MP_FID_LEN + 1 bytes) gets the file id as soon as the offer is answered ("" before), so
 * that a failed upload can be resumed. Broker codes: 404 no such user, 413 larger than the
 * broker's max_file_size, 507 the sender's files in flight would exceed its file_quota; at
 * the last chunk, the codes of a send (507 or 429: the recipient's mailbox is full; the file
 * waits, resume it later). */
MP_API mp_err mp_file_send(mp_client *c, const char *to, const char *name, const void *data,
                           size_t len, char fid[MP_FID_LEN + 1], mp_progress_fn progress, void *ud);

/* As mp_file_send, for the regular file at PATH, named after its last component. */
MP_API mp_err mp_file_send_path(mp_client *c, const char *to, const char *path,
                                char fid[MP_FID_LEN + 1], mp_progress_fn progress, void *ud);

/* Goes on with the upload of FID (the same bytes as the first time) from where the broker
 * stands. MP_OK at once when the file is complete already. */
MP_API mp_err mp_file_resume(mp_client *c, const char *fid, const void *data, size_t len,
                             mp_progress_fn progress, void *ud);
MP_API mp_err mp_file_resume_path(mp_client *c, const char *fid, const char *path,
                                  mp_progress_fn progress, void *ud);

/* file.status of FID into *OUT. Broker codes: 403 neither its sender nor its recipient,
 * 404 unknown or expired. */
MP_API mp_err mp_file_status(mp_client *c, const char *fid, mp_file_info *out);

#define MP_FILE_OVERWRITE 1 /* mp_file_fetch: replace PATH when it exists */

/* Downloads the complete file FID to PATH. PATH is created (mode 0644, not through a symbolic
 * link); when it exists the call fails with MP_ERR_INVAL unless FLAGS has MP_FILE_OVERWRITE.
 * On failure PATH is removed. Broker codes: 403, 404, 409 not complete yet. */
MP_API mp_err mp_file_fetch(mp_client *c, const char *fid, const char *path, int flags,
                            mp_progress_fn progress, void *ud);

/* A file name another user chose, made safe as one path component in a directory: control
 * characters are dropped, '/' and backslash become '_', leading dots and trailing dots and spaces
 * go (no "..", no hidden file), and an empty result becomes "file". Writes at most SIZE bytes with
 * the NUL into OUT; returns the length. */
MP_API size_t mp_file_safe_name(const char *name, char *out, size_t size);

/* ---------------------------------------------------------------------------------------------
 * Reconnecting
 * ------------------------------------------------------------------------------------------ */

/* Reconnects to the last address given to mp_client_connect* and, when a login succeeded
 * before, resumes the session with the token (never the password). Retries with growing pauses
 * (0.1 s to 2 s) while the broker refuses, times out, closes or answers 503, for at most
 * TIMEOUT_MS in all (> 0). A 401 (token expired or revoked), 409 or 429 is returned at once
 * with the connection left open: log in with the password then. Without a remembered session
 * (never logged in, or logged out) it only connects. *ONLINE as for mp_login (may be NULL). Errors:
 * those of mp_client_connect and mp_resume, MP_ERR_STATE when C never connected or inside a
 * callback. */
MP_API mp_err mp_client_reconnect(mp_client *c, int timeout_ms, mp_userlist **online);

#ifdef __cplusplus
}
#endif
#endif
