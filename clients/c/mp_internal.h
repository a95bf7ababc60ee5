/* mp_internal.h: the inside of an mp_client, shared by the library's files (not installed). */
#ifndef MOONPOST_MP_INTERNAL_H
#define MOONPOST_MP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>

#include "moonpost.h"
#include "msgread.h"

#define MP_MAX_IN_FRAME (16u << 20)   /* largest frame accepted from the broker */
#define MP_MAX_OUT_QUEUED (16u << 20) /* async requests past this much queued output: BUSY */
#define MP_MAX_DEPTH 8                /* callbacks nested through blocking calls */
#define MP_NAME_MAX 255               /* user names and tokens the client keeps */
#define MP_READ_CHUNK 65536

/* buf.c: a growable byte buffer; [off, len) is the part not yet consumed. */
struct mp_buf {
    uint8_t *data;
    size_t off, len, cap;
};

int mp_buf_reserve(struct mp_buf *b, size_t extra); /* 0, or -1 when out of memory */
int mp_buf_append(struct mp_buf *b, const void *data, size_t len);
void mp_buf_consume(struct mp_buf *b, size_t n);
void mp_buf_compact(struct mp_buf *b); /* moves the unconsumed part to the start */
void mp_buf_reset(struct mp_buf *b);
void mp_buf_free(struct mp_buf *b);
static inline size_t mp_buf_used(const struct mp_buf *b)
{
    return b->len - b->off;
}

/* pending.c: requests waiting for their `res`, kept sorted by id (ids only grow). */
struct mp_pending {
    uint64_t id;
    int64_t deadline_ms;
    mp_reply_fn fn; /* async: called with the outcome; NULL for a blocking wait */
    void *ud;
    uint8_t blocking; /* a blocking call waits on this entry */
    uint8_t done;     /* blocking: the outcome is in err/reply */
    uint8_t used;     /* 0: a freed slot not trimmed yet */
    mp_err err;
    struct mp_reply *reply;
};

struct mp_pending_table {
    struct mp_pending *items;
    size_t head, len, cap; /* live slots are [head, len) */
    size_t live;
    int64_t next_deadline_ms; /* a lower bound of the earliest deadline */
};

struct mp_address {
    int is_unix;
    char *host; /* or the socket path */
    uint16_t port;
};

struct mp_client {
    int fd;
    struct mp_tls *tls; /* mp_client_use_tls: every connect speaks TLS; NULL in clear */
    struct ssl_st *ssl; /* the TLS stream of the open connection (an OpenSSL SSL) */
    struct mp_address addr;
    int timeout_ms;
    struct mp_buf in, out;
    int out_failed;     /* the packer hit out-of-memory while encoding the current frame */
    size_t frame_start; /* offset in out of the frame being encoded */
    uint64_t next_id;
    struct mp_pending_table pending;

    mp_callbacks cb;
    void *ud;
    int depth;                           /* callbacks running (nested through blocking calls) */
    struct mp_buf scratch[MP_MAX_DEPTH]; /* a private copy of the frame each depth dispatches */
    int stop;                            /* mp_client_stop was called */

    char user[MP_NAME_MAX + 1]; /* "" when not logged in */
    char token[MP_NAME_MAX + 1];
    char last_user[MP_NAME_MAX + 1]; /* whose mids last_mid counts */
    int logged_in;

    /* de-duplication and acknowledgement of msg pushes */
    int auto_ack;
    uint64_t last_mid;  /* highest mid delivered (or being delivered) */
    uint64_t done_mid;  /* highest mid whose callback returned (with all before it) */
    uint64_t held_mid;  /* highest mid done by a nested callback while an outer one runs */
    int msg_depth;      /* on_msg callbacks running */
    uint64_t acked_mid; /* highest ack sent on this connection */

    int code; /* broker code of the last error */
    char errmsg[512];
};

/* error.c */
mp_err mp_fail(mp_client *c, mp_err err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void mp_clear_error(mp_client *c);

/* clock */
int64_t mp_now_ms(void);

/* pending.c */
struct mp_pending *mp_pending_add(mp_client *c, uint64_t id, int64_t deadline_ms);
struct mp_pending *mp_pending_find(mp_client *c, uint64_t id);
void mp_pending_remove(mp_client *c, struct mp_pending *p);
/* Hands the outcome to the waiter or the callback and frees the entry (async) or marks it
 * done (blocking). REPLY is borrowed for async, taken for blocking. */
void mp_pending_complete(mp_client *c, struct mp_pending *p, mp_err err, struct mp_reply *reply);
void mp_pending_expire(mp_client *c, int64_t now_ms);
void mp_pending_fail_all(mp_client *c, mp_err err);
void mp_pending_free(mp_client *c);

/* conn.c */
mp_err mp_conn_open(mp_client *c, int timeout_ms); /* to the remembered address */
void mp_conn_close(mp_client *c, mp_err why);      /* closes the socket, fails what is in flight */

/* tls.c: the stream of a connection over TLS (c->ssl). Read and write work like recv and send
 * (a count, 0 at the end, or -1 with errno EAGAIN to wait). */
mp_err mp_tls_connect(mp_client *c, int64_t deadline, const char *where);
void mp_tls_close(mp_client *c);
void mp_tls_free(mp_client *c);
ssize_t mp_tls_read(mp_client *c, void *buf, size_t len);
ssize_t mp_tls_write(mp_client *c, const void *buf, size_t len);
int mp_tls_pending(const mp_client *c); /* decrypted bytes wait inside TLS */

/* io.c */
mp_err mp_io_step(mp_client *c, int can_read);
mp_err mp_wait_reply(mp_client *c, uint64_t id, mp_reply **out);
mp_err mp_check_usable(mp_client *c);

/* dispatch.c: one complete frame body from the broker. */
mp_err mp_dispatch_frame(mp_client *c, uint8_t *body,
                         size_t len); /* body: len + 1 writable bytes */
void mp_queue_ack(mp_client *c);

/* fields.c: reads several top-level fields of a frame body in one pass. */
struct mp_field {
    const char *key;
    int found;
    struct msgread_item item;
    struct mpr after; /* positioned right after the item's header (a container's first element) */
};
void mp_fields_read(const uint8_t *body, size_t len, struct mp_field *f, size_t n);
/* Points the str/bin value of F at a NUL-terminated copy in place: only for bodies the client
 * owns and has read every field of (the byte after a value is the next key's header). */
const char *mp_field_cstr(struct mp_field *f);

/* request.c */
msgpack_packer *mp_frame_begin(mp_client *c, msgpack_packer *pk, const char *type, size_t fields,
                               uint64_t id);
mp_err mp_frame_end(mp_client *c);
uint64_t mp_new_id(mp_client *c);
void mp_pack_cstr(msgpack_packer *pk, const char *s);
void mp_pack_body(msgpack_packer *pk, const void *body, size_t len, enum mp_body_kind kind);
/* Starts a request: checks the client can send, begins the frame. A new id when WANT_ID. */
mp_err mp_start(mp_client *c, msgpack_packer *pk, const char *type, size_t fields, int want_id,
                uint64_t *id);
/* Ends the frame started by mp_start and waits for its reply. */
mp_err mp_finish_blocking(mp_client *c, uint64_t id, mp_reply **out);
/* Ends the frame and registers FN for its reply (nothing when FN is NULL). */
mp_err mp_finish_async(mp_client *c, uint64_t id, mp_reply_fn fn, void *ud);

/* reply.c */
struct mp_reply {
    int code;
    size_t len;
    uint8_t data[];
};
struct mp_reply *mp_reply_copy(const uint8_t *body, size_t len, int code);
/* Reads the error text of a reply/bye body into C's error message. */
void mp_error_from_body(mp_client *c, const uint8_t *body, size_t len, int code);
mp_err mp_userlist_from_reply(mp_client *c, const mp_reply *r, mp_userlist **out);
/* The array of names under KEY (with its total under COUNT_KEY, when given) as a userlist. */
mp_err mp_namelist_from_reply(mp_client *c, const mp_reply *r, const char *key,
                              const char *count_key, mp_userlist **out);

/* rooms.c */
mp_err mp_on_room_msg(mp_client *c, uint8_t *body, size_t len);

/* client.c */
void mp_set_session(mp_client *c, const char *user, const char *token, size_t token_len);
void mp_forget_session(mp_client *c);
int mp_copy_name(char *dst, const char *src); /* 0, or -1 when longer than MP_NAME_MAX */

#endif
