/* session_fixture: real sessions for unit tests, without a broker: an event_base of the test's
 * own, the session table on it, and each session on one end of a socketpair whose other end
 * the test reads the frames from. Included by the unit tests that need sessions. */
#ifndef MOONPOST_SESSION_FIXTURE_H
#define MOONPOST_SESSION_FIXTURE_H

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "codec.h"
#include "frame.h"
#include "msgread.h"
#include "presence.h"
#include "session.h"

#define FIXTURE_MAX_SESSIONS 64

struct fixture_peer {
    struct session *s;
    int fd; /* the client's end */
};

static struct event_base *fixture_base;

static inline void fixture_ignore_frame(struct session *s, const struct frame_info *info,
                                 const uint8_t *body, size_t len)
{
    (void)s, (void)info, (void)body, (void)len;
}

/* Sets up the loop, the session table (frames go to ON_FRAME) and the presence table. */
static inline void fixture_start(session_frame_fn on_frame)
{
    fixture_base = event_base_new();
    assert_non_null(fixture_base);
    struct session_limits limits = {.output_limit = 1 << 20, .request_burst = 1,
                                    .max_frame = 65536};
    session_set_limits(&limits);
    assert_int_equal(session_table_init(fixture_base, FIXTURE_MAX_SESSIONS,
                                        on_frame ? on_frame : fixture_ignore_frame),
                     0);
    assert_int_equal(presence_init(FIXTURE_MAX_SESSIONS), 0);
}

/* Runs the loop until nothing is pending: output is written, doomed sessions are freed. */
static inline void fixture_run(void)
{
    for (int i = 0; i < 4; i++) event_base_loop(fixture_base, EVLOOP_NONBLOCK);
}

static inline void fixture_stop(void)
{
    fixture_run();
    session_table_free();
    presence_free();
    session_unsubscribe_all();
    event_base_free(fixture_base);
    fixture_base = NULL;
}

static inline struct fixture_peer fixture_open(enum session_kind kind)
{
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct fixture_peer p = {session_open(fds[0], (struct sockaddr *)&addr, sizeof addr, kind),
                             fds[1]};
    assert_non_null(p.s);
    return p;
}

/* Reads the next frame the session sent to PEER into BODY (a NUL is appended); returns its
 * length, or -1 when nothing is there. */
static inline ssize_t fixture_read_frame(const struct fixture_peer *p, uint8_t *body, size_t cap)
{
    fixture_run();
    uint8_t header[FRAME_HEADER_LEN];
    ssize_t n = recv(p->fd, header, sizeof header, MSG_DONTWAIT);
    if (n <= 0) return -1;
    assert_int_equal(n, FRAME_HEADER_LEN);
    uint32_t len = frame_read_length(header);
    assert_true(len < cap);
    assert_int_equal(recv(p->fd, body, len, MSG_WAITALL), (ssize_t)len);
    body[len] = '\0';
    return (ssize_t)len;
}

/* The `code` of the next frame PEER got (a `res` or a `bye`), its type in TYPE (when not NULL);
 * -1 when no frame came. */
static inline int fixture_next_code(const struct fixture_peer *p, char *type, size_t type_cap)
{
    uint8_t body[4096];
    ssize_t len = fixture_read_frame(p, body, sizeof body);
    if (len < 0) return -1;
    struct frame_info info;
    assert_int_equal(frame_check(body, (size_t)len, &info), FRAME_OK);
    if (type != NULL) snprintf(type, type_cap, "%.*s", (int)info.type_len, (const char *)info.type);
    struct msgread_item item;
    assert_true(frame_get(body, (size_t)len, "code", &item));
    return (int)item.v.u;
}

/* Encodes {type = TYPE, id = 7} into B and checks it as the session layer would. */
static inline void fixture_frame(struct codec_buf *b, const char *type, struct frame_info *info,
                          const uint8_t **body, size_t *len)
{
    codec_frame_begin(b);
    msgpack_pack_map(&b->pk, 2);
    msgpack_pack_str_with_body(&b->pk, "type", 4);
    msgpack_pack_str_with_body(&b->pk, type, strlen(type));
    msgpack_pack_str_with_body(&b->pk, "id", 2);
    msgpack_pack_uint64(&b->pk, 7);
    size_t n = codec_frame_end(b);
    *body = (const uint8_t *)b->sb.data + FRAME_HEADER_LEN;
    *len = n - FRAME_HEADER_LEN;
    assert_int_equal(frame_check(*body, *len, info), FRAME_OK);
}

#endif
