/* Unit tests for broker/redis_connect.c's events: one loop pass reads every reply that is
 * waiting on the connection, not 16 KiB of them, and a context freed by a reply's callback in
 * the middle of that reading stops it cleanly; hiredis's output buffer is kept between writes.
 * The "server" is a Unix socket this test answers itself, so that the replies are all in the
 * socket before the pass. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/sds.h>

#include "redis_connect.h"

#define COMMANDS 8000 /* their replies, 7 bytes each: 56,000 bytes, over three 16 KiB reads */

struct fixture {
    char dir[64];
    char path[96];
    int listener;
    int server; /* the accepted connection */
    struct event_base *base;
    redisAsyncContext *ctx;
    int replies;      /* callbacks run */
    int pongs;        /* of which with a reply */
    int free_at_pong; /* a callback frees the context at this pong (0: never) */
    int disconnects;
};

static void on_connect(const redisAsyncContext *ctx, int status)
{
    (void)ctx, (void)status;
}

/* hiredis frees the context after this */
static void on_disconnect(const redisAsyncContext *ctx, int status)
{
    (void)status;
    struct fixture *f = ctx->data;
    f->disconnects++;
    f->ctx = NULL;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/moonpost-unit.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/redis.sock", f->dir);
    f->listener = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(f->listener >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->path);
    assert_int_equal(bind(f->listener, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(f->listener, 1), 0);
    f->base = event_base_new();
    assert_non_null(f->base);
    char addr[160], err[128];
    snprintf(addr, sizeof addr, "unix:%s", f->path);
    f->ctx = redis_connect(addr, f->base, on_connect, on_disconnect, err, sizeof err);
    if (f->ctx == NULL) fail_msg("redis_connect: %s", err);
    f->ctx->data = f;
    f->server = accept(f->listener, NULL, NULL);
    assert_true(f->server >= 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->ctx != NULL) redisAsyncFree(f->ctx);
    event_base_free(f->base);
    if (f->server >= 0) close(f->server);
    close(f->listener);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void on_reply(redisAsyncContext *ctx, void *reply, void *arg)
{
    struct fixture *f = arg;
    f->replies++;
    if (reply == NULL) return;
    f->pongs++;
    if (f->pongs == f->free_at_pong) {
        redisAsyncFree(ctx); /* hiredis frees it once this callback returns */
        f->ctx = NULL;
    }
}

/* Sends N pings and reads them, every byte as sent, on the server's side. */
static void send_pings(struct fixture *f, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(redisAsyncCommand(f->ctx, on_reply, f, "PING"), REDIS_OK);
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    size_t want = (size_t)n * (sizeof ping - 1), got = 0;
    static char buf[COMMANDS * (sizeof ping - 1)];
    while (got < want) {
        event_base_loop(f->base, EVLOOP_NONBLOCK); /* the adapter writes the commands */
        ssize_t r = recv(f->server, buf + got, sizeof buf - got, MSG_DONTWAIT);
        if (r > 0) got += (size_t)r;
    }
    assert_int_equal(got, want);
    for (size_t at = 0; at < got; at += sizeof ping - 1)
        assert_memory_equal(buf + at, ping, sizeof ping - 1);
}

/* Sends COMMANDS pings, reads them on the server's side, then writes the first ANSWERED of
 * their replies. */
static void answer_pings(struct fixture *f, int answered)
{
    send_pings(f, COMMANDS);
    char *replies = malloc(COMMANDS * 7);
    assert_non_null(replies);
    for (int i = 0; i < answered; i++) memcpy(replies + 7 * i, "+PONG\r\n", 7);
    assert_int_equal(send(f->server, replies, (size_t)answered * 7, 0), answered * 7);
    free(replies);
    assert_int_equal(f->replies, 0);
}

static void answer_every_ping(struct fixture *f)
{
    answer_pings(f, COMMANDS);
}

static void test_one_pass_reads_every_waiting_reply(void **state)
{
    struct fixture *f = *state;
    answer_every_ping(f);
    event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(f->pongs, COMMANDS);
}

static void test_a_context_freed_by_a_reply_stops_the_reading(void **state)
{
    struct fixture *f = *state;
    f->free_at_pong = 100;
    answer_every_ping(f);
    event_base_loop(f->base, EVLOOP_ONCE);
    assert_null(f->ctx);
    assert_int_equal(f->pongs, 100); /* the rest are called without a reply, once */
    assert_int_equal(f->replies, COMMANDS);
    event_base_loop(f->base, EVLOOP_NONBLOCK); /* nothing of the context is left to run */
    assert_int_equal(f->replies, COMMANDS);
}

static void test_a_connection_closed_amid_the_replies_ends_cleanly(void **state)
{
    struct fixture *f = *state;
    answer_pings(f, 5000); /* more than one read's worth, then the server goes */
    close(f->server);
    f->server = -1;
    event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(f->pongs, 5000);
    /* the end of the stream, read once the replies before it are gone (that pass or the next) */
    for (int pass = 0; pass < 2 && f->ctx != NULL; pass++) event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(f->disconnects, 1);
    assert_null(f->ctx);
    assert_int_equal(f->pongs, 5000);
    assert_int_equal(f->replies, COMMANDS); /* the rest are called without a reply, once */
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    assert_int_equal(f->replies, COMMANDS);
}

/* A write of the commands of a pass empties hiredis's output buffer in place, where hiredis
 * would free it and grow a new one; one that grew past 64 KiB is freed, as hiredis does. */
static void test_a_written_output_buffer_is_kept_up_to_64_kib(void **state)
{
    struct fixture *f = *state;
    send_pings(f, 1); /* the first write is hiredis's: it completes the connection */
    send_pings(f, 100); /* 1,400 bytes */
    assert_int_equal(sdslen(f->ctx->c.obuf), 0);
    assert_true(sdsalloc(f->ctx->c.obuf) >= 1400);
    send_pings(f, COMMANDS); /* 112,000 bytes */
    assert_int_equal(sdslen(f->ctx->c.obuf), 0);
    assert_int_equal(sdsalloc(f->ctx->c.obuf), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_pass_reads_every_waiting_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_context_freed_by_a_reply_stops_the_reading, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_connection_closed_amid_the_replies_ends_cleanly,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_written_output_buffer_is_kept_up_to_64_kib, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
