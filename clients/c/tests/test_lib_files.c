/* test_lib_files: file transfer through libmoonpost against a real broker (run_with_broker.py
 * with scripts/files.lua): a buffer and a path go up and come down byte-exact, an upload whose
 * connection drops reconnects and goes on, fetch never overwrites unless told, and the errors
 * come back with the broker's codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "moonpost.h"
#include "util.h"

/* What the recipient's on_msg saw of the last file msg. */
struct inbox {
    int files;
    char fid[MP_FID_LEN + 1];
    char name[256];
    uint64_t size;
};

static void on_msg(mp_client *c, const mp_message *m, void *ud)
{
    (void)c;
    struct inbox *in = ud;
    if (m->file_fid == NULL) return;
    snprintf(in->fid, sizeof in->fid, "%s", m->file_fid);
    snprintf(in->name, sizeof in->name, "%s", m->file_name);
    in->size = m->file_size;
    in->files++;
}

static const mp_callbacks callbacks = {.on_msg = on_msg};

struct progress {
    uint64_t last, total;
    int calls;
    int drop_at_call; /* closes the connection at this call (0: never) */
};

static void on_progress(mp_client *c, uint64_t done, uint64_t total, void *ud)
{
    struct progress *p = ud;
    p->last = done;
    p->total = total;
    if (++p->calls == p->drop_at_call) mp_client_close(c);
}

static uint8_t *random_bytes(size_t n)
{
    uint8_t *b = malloc(n);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(rand() >> 7);
    return b;
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void temp_path(char *buf, size_t len, const char *what)
{
    const char *dir = getenv("MOONPOST_TMP");
    snprintf(buf, len, "%s/%s-%d", dir ? dir : "/tmp", what, (int)getpid());
}

/* A recipient client logged in with the inbox callback. */
static mp_client *recipient(char *user, size_t len, struct inbox *in)
{
    mp_client *c = test_login_new(user, len, "fr");
    mp_client_set_callbacks(c, &callbacks, in);
    return c;
}

static void test_buffer_goes_up_and_comes_down_byte_exact(void **state)
{
    (void)state;
    char a[40], b[40], fid[MP_FID_LEN + 1], path[512];
    struct inbox in = {0};
    mp_client *ca = test_login_new(a, sizeof a, "fs");
    mp_client *cb = recipient(b, sizeof b, &in);
    size_t n = 300000;
    uint8_t *data = random_bytes(n);
    struct progress p = {0};
    assert_int_equal(mp_file_send(ca, b, "notes.bin", data, n, fid, on_progress, &p), MP_OK);
    assert_int_equal(strlen(fid), MP_FID_LEN);
    assert_true(p.calls >= 1);
    assert_int_equal(p.last, n);
    assert_int_equal(p.total, n);
    assert_int_equal(test_run_until(cb, &in.files, 1, 10000), 1);
    assert_string_equal(in.fid, fid);
    assert_string_equal(in.name, "notes.bin");
    assert_int_equal(in.size, n);

    mp_file_info info;
    assert_int_equal(mp_file_status(cb, fid, &info), MP_OK);
    assert_string_equal(info.name, "notes.bin");
    assert_string_equal(info.from, a);
    assert_string_equal(info.to, b);
    assert_int_equal(info.size, n);
    assert_int_equal(info.received, n);
    assert_true(info.complete);

    temp_path(path, sizeof path, "fetched");
    unlink(path);
    struct progress q = {0};
    assert_int_equal(mp_file_fetch(cb, fid, path, 0, on_progress, &q), MP_OK);
    assert_int_equal(q.last, n);
    size_t got_len;
    uint8_t *got = read_all(path, &got_len);
    assert_int_equal(got_len, n);
    assert_memory_equal(got, data, n);
    free(got);
    /* an existing file is not replaced unless asked */
    assert_int_equal(mp_file_fetch(cb, fid, path, 0, NULL, NULL), MP_ERR_INVAL);
    assert_int_equal(mp_file_fetch(cb, fid, path, MP_FILE_OVERWRITE, NULL, NULL), MP_OK);
    unlink(path);
    free(data);
    mp_client_free(ca);
    mp_client_free(cb);
}

static void test_upload_reconnects_and_resumes(void **state)
{
    (void)state;
    char a[40], b[40], fid[MP_FID_LEN + 1], path[512];
    struct inbox in = {0};
    mp_client *ca = test_login_new(a, sizeof a, "fs");
    mp_client *cb = recipient(b, sizeof b, &in);
    size_t n = 3000000;
    uint8_t *data = random_bytes(n);
    struct progress p = {.drop_at_call = 3};
    assert_int_equal(mp_file_send(ca, b, "big.bin", data, n, fid, on_progress, &p), MP_OK);
    assert_true(p.calls > 3);
    assert_int_equal(p.last, n);
    assert_true(mp_client_is_logged_in(ca)); /* resumed with the token */
    assert_int_equal(test_run_until(cb, &in.files, 1, 10000), 1);
    assert_string_equal(in.fid, fid);
    temp_path(path, sizeof path, "resumed");
    unlink(path);
    assert_int_equal(mp_file_fetch(cb, fid, path, 0, NULL, NULL), MP_OK);
    size_t got_len;
    uint8_t *got = read_all(path, &got_len);
    assert_int_equal(got_len, n);
    assert_memory_equal(got, data, n);
    free(got);
    unlink(path);
    /* a program that restarts goes on with mp_file_resume: complete already, nothing to do */
    assert_int_equal(mp_file_resume(ca, fid, data, n, NULL, NULL), MP_OK);
    free(data);
    mp_client_free(ca);
    mp_client_free(cb);
}

static void test_path_is_named_after_its_last_component(void **state)
{
    (void)state;
    char a[40], b[40], fid[MP_FID_LEN + 1], path[512];
    struct inbox in = {0};
    mp_client *ca = test_login_new(a, sizeof a, "fs");
    mp_client *cb = recipient(b, sizeof b, &in);
    temp_path(path, sizeof path, "report.txt");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("quarterly numbers\n", f);
    fclose(f);
    assert_int_equal(mp_file_send_path(ca, b, path, fid, NULL, NULL), MP_OK);
    assert_int_equal(test_run_until(cb, &in.files, 1, 10000), 1);
    assert_string_equal(in.name, strrchr(path, '/') + 1);
    assert_int_equal(in.size, 18);
    unlink(path);
    mp_client_free(ca);
    mp_client_free(cb);
}

static void test_errors_carry_the_broker_codes(void **state)
{
    (void)state;
    char a[40], nobody[40], fid[MP_FID_LEN + 1], path[512];
    mp_client *ca = test_login_new(a, sizeof a, "fs");
    test_user(nobody, sizeof nobody, "nobody");
    assert_int_equal(mp_file_send(ca, nobody, "x", "abc", 3, fid, NULL, NULL), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(ca), 404);
    assert_string_equal(fid, "");
    assert_int_equal(mp_file_send(ca, a, "a/b", "abc", 3, fid, NULL, NULL), MP_ERR_INVAL);
    assert_int_equal(mp_file_send(ca, a, "x", "abc", 0, fid, NULL, NULL), MP_ERR_INVAL);
    mp_file_info info;
    const char *unknown = "0123456789abcdef0123456789abcdef";
    assert_int_equal(mp_file_status(ca, unknown, &info), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(ca), 404);
    assert_int_equal(mp_file_status(ca, "not-a-fid", &info), MP_ERR_INVAL);
    temp_path(path, sizeof path, "never");
    unlink(path);
    assert_int_equal(mp_file_fetch(ca, unknown, path, 0, NULL, NULL), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(ca), 404);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(mp_file_send_path(ca, a, "/nonexistent/file", fid, NULL, NULL), MP_ERR_IO);
    mp_client_free(ca);
}

int main(void)
{
    srand((unsigned)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buffer_goes_up_and_comes_down_byte_exact),
        cmocka_unit_test(test_upload_reconnects_and_resumes),
        cmocka_unit_test(test_path_is_named_after_its_last_component),
        cmocka_unit_test(test_errors_carry_the_broker_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
