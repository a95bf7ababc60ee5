/* Unit tests for broker/conf.c: defaults, every value type, lists, --set, paths and errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

/* ---- helpers ---- */

/* Loads TEXT as "test.conf" whose directory is /etc/mp. */
static int load(struct conf *c, const char *text, struct conf_error *err)
{
    return conf_load_string(c, "test.conf", text, "/etc/mp", err);
}

static void assert_load_fails(const char *text, const char *message)
{
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(load(&c, text, &err), -1);
    assert_string_equal(err.text, message);
    conf_free(&c);
}

static void assert_set_fails(const char *assignment, const char *message)
{
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(conf_set(&c, assignment, &err), -1);
    assert_string_equal(err.text, message);
    conf_free(&c);
}

static void assert_list(const struct conf_list *list, size_t count, ...)
{
    va_list ap;
    assert_int_equal(list->count, count);
    va_start(ap, count);
    for (size_t i = 0; i < count; i++)
        assert_string_equal(list->items[i], va_arg(ap, char *));
    va_end(ap);
}

/* Writes TEXT to a new file under /tmp; PATH receives its name. */
static void write_temp(char *path, size_t size, const char *text, size_t len)
{
    snprintf(path, size, "/tmp/test_conf_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static char *cwd_join(const char *name)
{
    char *cwd = getcwd(NULL, 0);
    assert_non_null(cwd);
    size_t len = strlen(cwd) + 1 + strlen(name) + 1;
    char *out = malloc(len);
    assert_non_null(out);
    snprintf(out, len, "%s/%s", cwd, name);
    free(cwd);
    return out;
}

/* ---- defaults and types ---- */

static void test_defaults_are_those_documented_in_conf_h(void **state)
{
    (void)state;
    struct conf c;
    conf_init(&c);
    assert_list(&c.listen, 1, "127.0.0.1:8889");
    assert_int_equal(c.max_connections, 10000);
    assert_int_equal(c.reuseport, 0);
    assert_int_equal(c.max_frame, 65536);
    assert_int_equal(c.max_body, 16384);
    assert_int_equal(c.output_limit, 4 * 1024 * 1024);
    assert_true(c.idle_timeout == 300);
    assert_true(c.login_timeout == 10);
    assert_true(c.shutdown_timeout == 5);
    assert_int_equal(c.log_level, LOG_LEVEL_INFO);
    assert_null(c.log_file);
    assert_null(c.pid_file);
    assert_list(&c.script, 0);
    assert_null(c.script_path);
    assert_list(&c.plugin, 0);
    assert_int_equal(c.lua_memory_limit, 256 * 1024 * 1024);
    assert_int_equal(c.lua_instruction_limit, 10000000);
    assert_int_equal(c.max_frame_values, 1024);
    assert_int_equal(c.lua_request_memory_share, 50);
    assert_string_equal(c.redis, "127.0.0.1:6379");
    assert_null(c.redis_password);
    assert_int_equal(c.redis_db, 0);
    assert_true(c.redis_timeout == 5);
    assert_string_equal(c.redis_prefix, "mp:");
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.pwhash_memory, 19456);
    assert_int_equal(c.pwhash_ops, 2);
    assert_null(c.admin_socket);
    assert_null(c.http_listen);
    assert_null(c.node_id);
    conf_free(&c);
}

static void test_every_key_and_type_is_parsed(void **state)
{
    (void)state;
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(load(&c,
                          "listen [::1]:9000\n"
                          "max_connections 500\n"
                          "reuseport on\n"
                          "max_frame 1024\n"
                          "max_body 0\n"
                          "output_limit 8192\n"
                          "idle_timeout 0.5\n"
                          "login_timeout .25\n"
                          "shutdown_timeout 3600\n"
                          "log_level debug\n"
                          "log_file /var/log/mp.log\n"
                          "pid_file run/mp.pid\n"
                          "script s/a.lua\n"
                          "script_path lib\n"
                          "plugin p/rate.so burst=5 rate=10\n"
                          "lua_memory_limit 0\n"
                          "lua_instruction_limit 2147483647\n"
                          "redis unix:/run/redis.sock\n"
                          "redis_password s3cret\n"
                          "redis_db 3\n"
                          "redis_timeout 0.01\n"
                          "redis_prefix chat:\n"
                          "workers 64\n"
                          "pwhash_memory 8\n"
                          "pwhash_ops 100\n"
                          "admin_socket /run/mp/admin.sock\n"
                          "http_listen 0.0.0.0:9889\n"
                          "node_id node-a\n",
                          &err),
                     0);
    assert_list(&c.listen, 1, "[::1]:9000");
    assert_int_equal(c.max_connections, 500);
    assert_int_equal(c.reuseport, 1);
    assert_int_equal(c.max_frame, 1024);
    assert_int_equal(c.max_body, 0);
    assert_int_equal(c.output_limit, 8192);
    assert_true(c.idle_timeout == 0.5);
    assert_true(c.login_timeout == 0.25);
    assert_true(c.shutdown_timeout == 3600);
    assert_int_equal(c.log_level, LOG_LEVEL_DEBUG);
    assert_string_equal(c.log_file, "/var/log/mp.log");
    assert_string_equal(c.pid_file, "/etc/mp/run/mp.pid");
    assert_list(&c.script, 1, "/etc/mp/s/a.lua");
    assert_string_equal(c.script_path, "/etc/mp/lib");
    assert_list(&c.plugin, 1, "/etc/mp/p/rate.so burst=5 rate=10");
    assert_int_equal(c.lua_memory_limit, 0);
    assert_int_equal(c.lua_instruction_limit, INT_MAX);
    assert_string_equal(c.redis, "unix:/run/redis.sock");
    assert_string_equal(c.redis_password, "s3cret");
    assert_int_equal(c.redis_db, 3);
    assert_true(c.redis_timeout == 0.01);
    assert_string_equal(c.redis_prefix, "chat:");
    assert_int_equal(c.workers, 64);
    assert_int_equal(c.pwhash_memory, 8);
    assert_int_equal(c.pwhash_ops, 100);
    assert_string_equal(c.admin_socket, "/run/mp/admin.sock");
    assert_string_equal(c.http_listen, "0.0.0.0:9889");
    assert_string_equal(c.node_id, "node-a");
    conf_free(&c);
}

static void test_every_bool_spelling_is_accepted(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int value;
    } cases[] = {
        {"reuseport on", 1},   {"reuseport off", 0},   {"reuseport yes", 1}, {"reuseport no", 0},
        {"reuseport true", 1}, {"reuseport false", 0}, {"reuseport 1", 1},   {"reuseport 0", 0},
        {"reuseport On", 1},   {"reuseport OFF", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct conf c;
        struct conf_error err = {{0}};
        conf_init(&c);
        c.reuseport = !cases[i].value;
        assert_int_equal(load(&c, cases[i].text, &err), 0);
        assert_int_equal(c.reuseport, cases[i].value);
        conf_free(&c);
    }
}

static void test_every_log_level_is_accepted(void **state)
{
    (void)state;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        struct conf c;
        struct conf_error err = {{0}};
        char text[64];
        snprintf(text, sizeof text, "log_level %s\n", names[i]);
        conf_init(&c);
        assert_int_equal(load(&c, text, &err), 0);
        assert_int_equal(c.log_level, i);
        assert_string_equal(conf_log_level_name(c.log_level), names[i]);
        assert_int_equal(conf_log_level_parse(names[i]), i);
        conf_free(&c);
    }
    assert_int_equal(conf_log_level_parse("verbose"), -1);
}

static void test_comments_blank_lines_and_whitespace_are_ignored(void **state)
{
    (void)state;
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(load(&c,
                          "# a whole-line comment\n"
                          "\n"
                          "   \t\n"
                          "   # an indented comment\n"
                          "max_frame 1000 # a trailing comment\n"
                          "\tmax_body\t\t 200 \t\r\n"
                          "redis_password pa#ss # '#' inside a word is kept\n"
                          "node_id  node with spaces  \n"
                          "#max_connections 1",
                          &err),
                     0);
    assert_int_equal(c.max_frame, 1000);
    assert_int_equal(c.max_body, 200);
    assert_string_equal(c.redis_password, "pa#ss");
    assert_string_equal(c.node_id, "node with spaces");
    assert_int_equal(c.max_connections, 10000);
    conf_free(&c);
}

static void test_later_value_wins_for_single_keys(void **state)
{
    (void)state;
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(load(&c, "workers 3\nredis a:1\nworkers 4\nredis b:2\n", &err), 0);
    assert_int_equal(c.workers, 4);
    assert_string_equal(c.redis, "b:2");
    conf_free(&c);
}

/* ---- lists ---- */

static void test_first_list_line_replaces_default_then_appends(void **state)
{
    (void)state;
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(load(&c,
                          "listen 0.0.0.0:1\n"
                          "script a.lua\n"
                          "listen 0.0.0.0:2\n"
                          "script /abs/b.lua\n"
                          "plugin x.so\n"
                          "plugin y.so k=v\n",
                          &err),
                     0);
    assert_list(&c.listen, 2, "0.0.0.0:1", "0.0.0.0:2");
    assert_list(&c.script, 2, "/etc/mp/a.lua", "/abs/b.lua");
    assert_list(&c.plugin, 2, "/etc/mp/x.so", "/etc/mp/y.so k=v");
    conf_free(&c);
}

static void test_each_file_starts_its_lists_afresh(void **state)
{
    (void)state;
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(load(&c, "listen 127.0.0.1:1\nlisten 127.0.0.1:2\n", &err), 0);
    assert_int_equal(load(&c, "listen 127.0.0.1:3\n", &err), 0);
    assert_list(&c.listen, 1, "127.0.0.1:3");
    conf_free(&c);
}

static void test_empty_value_unsets_strings_and_empties_lists(void **state)
{
    (void)state;
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(load(&c,
                          "log_file \"\"\n"
                          "redis \"\"\n"
                          "listen \"\"\n"
                          "script a.lua\n"
                          "script \"\"\n"
                          "script b.lua\n",
                          &err),
                     0);
    assert_null(c.log_file);
    assert_null(c.redis);
    assert_list(&c.listen, 0);
    assert_list(&c.script, 1, "/etc/mp/b.lua");
    assert_int_equal(conf_set(&c, "redis_prefix=", &err), 0);
    assert_null(c.redis_prefix);
    assert_int_equal(conf_set(&c, "http_listen=\"\"", &err), 0);
    assert_null(c.http_listen);
    conf_free(&c);
}

static void test_plugin_resolves_only_its_path(void **state)
{
    (void)state;
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(load(&c,
                          "plugin plugins/auth.so\n"
                          "plugin /opt/rate.so   burst=5\trate=../x\n"
                          "plugin rel/a.so dir=rel/b\n",
                          &err),
                     0);
    assert_list(&c.plugin, 3, "/etc/mp/plugins/auth.so", "/opt/rate.so burst=5\trate=../x",
                "/etc/mp/rel/a.so dir=rel/b");
    conf_free(&c);
}

/* ---- --set ---- */

static void test_set_overrides_single_keys(void **state)
{
    (void)state;
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(load(&c, "max_frame 1000\nlog_level warn\n", &err), 0);
    assert_int_equal(conf_set(&c, "max_frame=2000", &err), 0);
    assert_int_equal(conf_set(&c, " log_level = error ", &err), 0);
    assert_int_equal(conf_set(&c, "redis_password=a=b", &err), 0);
    assert_int_equal(c.max_frame, 2000);
    assert_int_equal(c.log_level, LOG_LEVEL_ERROR);
    assert_string_equal(c.redis_password, "a=b");
    conf_free(&c);
}

static void test_set_replaces_list_then_appends(void **state)
{
    (void)state;
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(load(&c, "listen 127.0.0.1:1\nlisten 127.0.0.1:2\nscript /s/a.lua\n", &err),
                     0);
    assert_int_equal(conf_set(&c, "listen=127.0.0.2:1", &err), 0);
    assert_list(&c.listen, 1, "127.0.0.2:1");
    assert_int_equal(conf_set(&c, "listen=127.0.0.2:2", &err), 0);
    assert_int_equal(conf_set(&c, "listen=127.0.0.2:3", &err), 0);
    assert_list(&c.listen, 3, "127.0.0.2:1", "127.0.0.2:2", "127.0.0.2:3");
    assert_list(&c.script, 1, "/s/a.lua");
    conf_free(&c);
}

static void test_set_wins_over_a_file_loaded_after_it(void **state)
{
    (void)state;
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(conf_set(&c, "listen=127.0.0.2:1", &err), 0);
    assert_int_equal(conf_set(&c, "workers=7", &err), 0);
    assert_int_equal(load(&c, "listen 127.0.0.1:1\nworkers 3\nmax_frame 100\n", &err), 0);
    assert_list(&c.listen, 1, "127.0.0.2:1");
    assert_int_equal(c.workers, 7);
    assert_int_equal(c.max_frame, 100);
    /* the file's value is still checked */
    assert_int_equal(load(&c, "\nworkers 0\n", &err), -1);
    assert_string_equal(err.text,
                        "test.conf:2: workers must be an integer between 1 and 64, got '0'");
    assert_int_equal(c.workers, 7);
    conf_free(&c);
}

/* ---- relative paths ---- */

static void test_file_paths_are_relative_to_the_file(void **state)
{
    (void)state;
    static const char text[] = "script a.lua\nscript /abs/b.lua\nlog_file ../log/mp.log\n"
                               "plugin p.so k=v\n";
    char path[64];
    write_temp(path, sizeof path, text, sizeof text - 1);
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(conf_load_file(&c, path, &err), 0);
    assert_list(&c.script, 2, "/tmp/a.lua", "/abs/b.lua");
    assert_string_equal(c.log_file, "/tmp/../log/mp.log");
    assert_list(&c.plugin, 1, "/tmp/p.so k=v");
    conf_free(&c);
    unlink(path);
}

static void test_relative_file_name_gives_absolute_paths(void **state)
{
    (void)state;
    static const char text[] = "script a.lua\n";
    char path[64];
    write_temp(path, sizeof path, text, sizeof text - 1);
    char *old = getcwd(NULL, 0);
    assert_non_null(old);
    assert_int_equal(chdir("/tmp"), 0);
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    int rc = conf_load_file(&c, path + strlen("/tmp/"), &err);
    assert_int_equal(chdir(old), 0);
    free(old);
    assert_int_equal(rc, 0);
    assert_list(&c.script, 1, "/tmp/a.lua");
    conf_free(&c);
    unlink(path);
}

static void test_set_paths_are_relative_to_the_current_directory(void **state)
{
    (void)state;
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(conf_set(&c, "script=s/x.lua", &err), 0);
    assert_int_equal(conf_set(&c, "script=/abs/y.lua", &err), 0);
    assert_int_equal(conf_set(&c, "pid_file=mp.pid", &err), 0);
    assert_int_equal(conf_set(&c, "plugin=p.so a=b", &err), 0);
    assert_int_equal(conf_set(&c, "redis=unix:/r.sock", &err), 0);
    char *x = cwd_join("s/x.lua"), *pid = cwd_join("mp.pid"), *plug = cwd_join("p.so a=b");
    assert_list(&c.script, 2, x, "/abs/y.lua");
    assert_string_equal(c.pid_file, pid);
    assert_list(&c.plugin, 1, plug);
    assert_string_equal(c.redis, "unix:/r.sock");
    free(x);
    free(pid);
    free(plug);
    conf_free(&c);
}

static void test_load_string_without_base_dir_keeps_paths(void **state)
{
    (void)state;
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(conf_load_string(&c, "x", "script a.lua\nplugin p.so k=v\n", NULL, &err), 0);
    assert_list(&c.script, 1, "a.lua");
    assert_list(&c.plugin, 1, "p.so k=v");
    conf_free(&c);
}

/* ---- errors ---- */

/* A key conf.c does not know is an option: kept with where it was written, for options.c
 * (tests/unit/test_options.c) to check once scripts and plugins declared theirs. */
static void test_unknown_key_is_kept_as_an_option(void **state)
{
    (void)state;
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(load(&c, "# listeners\n\nlistn 0.0.0.0:1\nmailbox_max \"\"\n", &err), 0);
    assert_int_equal(conf_set(&c, "mailbox_max=5", &err), 0);
    assert_int_equal(c.options.count, 3);
    assert_string_equal(c.options.items[0].key, "listn");
    assert_string_equal(c.options.items[0].value, "0.0.0.0:1");
    assert_string_equal(c.options.items[0].origin, "test.conf:3");
    assert_int_equal(c.options.items[0].from_set, 0);
    assert_string_equal(c.options.items[1].value, "");
    assert_string_equal(c.options.items[1].origin, "test.conf:4");
    assert_string_equal(c.options.items[2].key, "mailbox_max");
    assert_string_equal(c.options.items[2].value, "5");
    assert_string_equal(c.options.items[2].origin, "--set mailbox_max=5");
    assert_int_equal(c.options.items[2].from_set, 1);
    assert_false(conf_is_key("listn"));
    assert_true(conf_is_key("listen"));
    conf_free(&c);
    assert_int_equal(c.options.count, 0);
    assert_load_fails("listn\n", "test.conf:1: missing value for 'listn'");
}

static void test_missing_value_is_an_error(void **state)
{
    (void)state;
    assert_load_fails("max_frame 100\nmax_frame\n", "test.conf:2: missing value for 'max_frame'");
    assert_load_fails("log_file   # nothing\n", "test.conf:1: missing value for 'log_file'");
    assert_load_fails("script\n", "test.conf:1: missing value for 'script'");
    assert_load_fails("max_frame \"\"\n", "test.conf:1: missing value for 'max_frame'");
}

static void test_bad_integer_is_an_error(void **state)
{
    (void)state;
    assert_load_fails(
        "\n\nmax_frame abc\n",
        "test.conf:3: max_frame must be an integer between 64 and 16777216, got 'abc'");
    assert_load_fails(
        "max_frame 100x\n",
        "test.conf:1: max_frame must be an integer between 64 and 16777216, got '100x'");
    assert_load_fails(
        "max_frame 1.5\n",
        "test.conf:1: max_frame must be an integer between 64 and 16777216, got '1.5'");
    assert_load_fails(
        "lua_memory_limit 99999999999999999999\n",
        "test.conf:1: lua_memory_limit must be an integer between 0 and 2147483647, got "
        "'99999999999999999999'");
}

static void test_integer_out_of_range_is_an_error(void **state)
{
    (void)state;
    assert_load_fails(
        "max_frame 63\n",
        "test.conf:1: max_frame must be an integer between 64 and 16777216, got '63'");
    assert_load_fails(
        "max_frame 16777217\n",
        "test.conf:1: max_frame must be an integer between 64 and 16777216, got '16777217'");
    assert_load_fails("max_body -1\n",
                      "test.conf:1: max_body must be an integer between 0 and 16777216, got '-1'");
    assert_load_fails("workers 65\n",
                      "test.conf:1: workers must be an integer between 1 and 64, got '65'");
    assert_load_fails("redis_db 1001\n",
                      "test.conf:1: redis_db must be an integer between 0 and 1000, got '1001'");
}

static void test_bad_bool_is_an_error(void **state)
{
    (void)state;
    assert_load_fails(
        "reuseport maybe\n",
        "test.conf:1: reuseport must be on or off (or yes/no, true/false, 1/0), got 'maybe'");
}

static void test_bad_duration_is_an_error(void **state)
{
    (void)state;
    assert_load_fails(
        "idle_timeout -1\n",
        "test.conf:1: idle_timeout must be a number of seconds between 0 and 86400, got '-1'");
    assert_load_fails(
        "idle_timeout 5s\n",
        "test.conf:1: idle_timeout must be a number of seconds between 0 and 86400, got '5s'");
    assert_load_fails(
        "idle_timeout 1e3\n",
        "test.conf:1: idle_timeout must be a number of seconds between 0 and 86400, got '1e3'");
    assert_load_fails(
        "idle_timeout .\n",
        "test.conf:1: idle_timeout must be a number of seconds between 0 and 86400, got '.'");
    assert_load_fails(
        "shutdown_timeout 3600.5\n",
        "test.conf:1: shutdown_timeout must be a number of seconds between 0 and 3600, got "
        "'3600.5'");
    assert_load_fails(
        "redis_timeout 0\n",
        "test.conf:1: redis_timeout must be a number of seconds between 0.01 and 3600, got '0'");
}

static void test_bad_log_level_is_an_error(void **state)
{
    (void)state;
    assert_load_fails("log_level verbose\n",
                      "test.conf:1: log_level must be one of debug, info, warn, error, got "
                      "'verbose'");
}

static void test_missing_file_is_an_error(void **state)
{
    (void)state;
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(conf_load_file(&c, "/tmp/test_conf_no_such_file.conf", &err), -1);
    assert_string_equal(err.text,
                        "/tmp/test_conf_no_such_file.conf: cannot open: No such file or directory");
    conf_free(&c);
}

static void test_error_in_a_file_names_file_and_line(void **state)
{
    (void)state;
    static const char text[] = "# moonpost\nmax_frame 100\n\nmax_frame 10\n";
    char path[64], expected[256];
    write_temp(path, sizeof path, text, sizeof text - 1);
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(conf_load_file(&c, path, &err), -1);
    snprintf(expected, sizeof expected,
             "%s:4: max_frame must be an integer between 64 and 16777216, got '10'", path);
    assert_string_equal(err.text, expected);
    conf_free(&c);
    unlink(path);
}

static void test_file_with_nul_byte_is_an_error(void **state)
{
    (void)state;
    static const char text[] = "max_frame 100\n\0workers 3\n";
    char path[64], expected[256];
    write_temp(path, sizeof path, text, sizeof text - 1);
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(conf_load_file(&c, path, &err), -1);
    snprintf(expected, sizeof expected, "%s: not a text file (it contains a NUL byte)", path);
    assert_string_equal(err.text, expected);
    conf_free(&c);
    unlink(path);
}

static void test_set_errors_name_the_assignment(void **state)
{
    (void)state;
    assert_set_fails("max_frame", "--set max_frame: expected KEY=VALUE, no '=' found");
    assert_set_fails("=5", "--set =5: missing key before '='");
    assert_set_fails("max_frame=", "--set max_frame=: missing value for 'max_frame'");
    assert_set_fails("max_frame=abc",
                     "--set max_frame=abc: max_frame must be an integer between 64 and 16777216, "
                     "got 'abc'");
    assert_set_fails("reuseport=maybe", "--set reuseport=maybe: reuseport must be on or off (or "
                                        "yes/no, true/false, 1/0), got 'maybe'");
    assert_set_fails("log_level=loud",
                     "--set log_level=loud: log_level must be one of debug, info, warn, error, "
                     "got 'loud'");
    assert_set_fails("idle_timeout=x", "--set idle_timeout=x: idle_timeout must be a number of "
                                       "seconds between 0 and 86400, got 'x'");
}

/* ---- addresses ---- */

static void test_addresses_take_ipv4_ipv6_and_host_names(void **state)
{
    (void)state;
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(load(&c,
                          "listen 127.0.0.1:1\n"
                          "listen [::1]:65535\n"
                          "listen localhost:8889\n"
                          "http_listen localhost:9889\n"
                          "redis redis.example:6379\n",
                          &err),
                     0);
    assert_list(&c.listen, 3, "127.0.0.1:1", "[::1]:65535", "localhost:8889");
    assert_string_equal(c.http_listen, "localhost:9889");
    assert_string_equal(c.redis, "redis.example:6379"); /* resolved when connecting */
    assert_int_equal(conf_set(&c, "redis=unix:/run/redis/redis.sock", &err), 0);
    assert_string_equal(c.redis, "unix:/run/redis/redis.sock");
    conf_free(&c);
}

static void test_address_port_must_be_1_to_65535(void **state)
{
    (void)state;
    assert_load_fails("listen 127.0.0.1:88890\n",
                      "test.conf:1: listen: port 88890 out of range 1..65535");
    assert_load_fails("\nhttp_listen 127.0.0.1:99999\n",
                      "test.conf:2: http_listen: port 99999 out of range 1..65535");
    assert_load_fails("listen [::1]:0\n", "test.conf:1: listen: port 0 out of range 1..65535");
    assert_load_fails("redis 127.0.0.1:123456789012\n",
                      "test.conf:1: redis: port 123456789012 out of range 1..65535");
    assert_load_fails("listen 127.0.0.1:-1\n", "test.conf:1: listen: port '-1' is not a number");
    assert_set_fails("listen=127.0.0.1:65536",
                     "--set listen=127.0.0.1:65536: listen: port 65536 out of range 1..65535");
}

static void test_address_needs_host_and_port(void **state)
{
    (void)state;
    assert_load_fails("listen 127.0.0.1\n",
                      "test.conf:1: listen: missing port in '127.0.0.1' (write HOST:PORT)");
    assert_load_fails("listen 127.0.0.1:\n",
                      "test.conf:1: listen: missing port after ':' (HOST:PORT, port 1..65535)");
    assert_load_fails("listen :8889\n",
                      "test.conf:1: listen: missing host in ':8889' (write HOST:PORT)");
    assert_load_fails("redis localhost\n",
                      "test.conf:1: redis: missing port in 'localhost' (write HOST:PORT)");
    assert_load_fails("http_listen [::1]\n",
                      "test.conf:1: http_listen: missing port in '[::1]' (write [IPV6]:PORT)");
}

static void test_ipv6_address_needs_brackets(void **state)
{
    (void)state;
    assert_load_fails("listen ::1:8889\n",
                      "test.conf:1: listen: an IPv6 address is written in brackets: [ADDR]:PORT");
    assert_load_fails("listen [::1:8889\n", "test.conf:1: listen: '[' without ']' in '[::1:8889'");
}

static void test_listen_host_must_resolve(void **state)
{
    (void)state;
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(load(&c, "listen no-such-host.invalid:8889\n", &err), -1);
    const char *prefix = "test.conf:1: listen: cannot resolve 'no-such-host.invalid': ";
    assert_int_equal(strncmp(err.text, prefix, strlen(prefix)), 0);
    conf_free(&c);
}

static void test_redis_unix_socket_needs_an_absolute_path(void **state)
{
    (void)state;
    assert_set_fails("redis=unix:redis.sock",
                     "--set redis=unix:redis.sock: redis: a Unix socket is written "
                     "unix:/absolute/path, got 'unix:redis.sock'");
}

static void test_conf_free_twice_is_safe(void **state)
{
    (void)state;
    struct conf c;
    struct conf_error err = {{0}};
    conf_init(&c);
    assert_int_equal(load(&c, "script a.lua\nplugin b.so\nlog_file x\n", &err), 0);
    assert_int_equal(conf_set(&c, "listen=127.0.0.1:1", &err), 0);
    conf_free(&c);
    conf_free(&c);
    assert_null(c.listen.items);
    assert_int_equal(c.script.count, 0);
    assert_null(c.log_file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_those_documented_in_conf_h),
        cmocka_unit_test(test_every_key_and_type_is_parsed),
        cmocka_unit_test(test_every_bool_spelling_is_accepted),
        cmocka_unit_test(test_every_log_level_is_accepted),
        cmocka_unit_test(test_comments_blank_lines_and_whitespace_are_ignored),
        cmocka_unit_test(test_later_value_wins_for_single_keys),
        cmocka_unit_test(test_first_list_line_replaces_default_then_appends),
        cmocka_unit_test(test_each_file_starts_its_lists_afresh),
        cmocka_unit_test(test_empty_value_unsets_strings_and_empties_lists),
        cmocka_unit_test(test_plugin_resolves_only_its_path),
        cmocka_unit_test(test_set_overrides_single_keys),
        cmocka_unit_test(test_set_replaces_list_then_appends),
        cmocka_unit_test(test_set_wins_over_a_file_loaded_after_it),
        cmocka_unit_test(test_file_paths_are_relative_to_the_file),
        cmocka_unit_test(test_relative_file_name_gives_absolute_paths),
        cmocka_unit_test(test_set_paths_are_relative_to_the_current_directory),
        cmocka_unit_test(test_load_string_without_base_dir_keeps_paths),
        cmocka_unit_test(test_unknown_key_is_kept_as_an_option),
        cmocka_unit_test(test_missing_value_is_an_error),
        cmocka_unit_test(test_bad_integer_is_an_error),
        cmocka_unit_test(test_integer_out_of_range_is_an_error),
        cmocka_unit_test(test_bad_bool_is_an_error),
        cmocka_unit_test(test_bad_duration_is_an_error),
        cmocka_unit_test(test_bad_log_level_is_an_error),
        cmocka_unit_test(test_missing_file_is_an_error),
        cmocka_unit_test(test_error_in_a_file_names_file_and_line),
        cmocka_unit_test(test_file_with_nul_byte_is_an_error),
        cmocka_unit_test(test_set_errors_name_the_assignment),
        cmocka_unit_test(test_conf_free_twice_is_safe),
        cmocka_unit_test(test_addresses_take_ipv4_ipv6_and_host_names),
        cmocka_unit_test(test_address_port_must_be_1_to_65535),
        cmocka_unit_test(test_address_needs_host_and_port),
        cmocka_unit_test(test_ipv6_address_needs_brackets),
        cmocka_unit_test(test_listen_host_must_resolve),
        cmocka_unit_test(test_redis_unix_socket_needs_an_absolute_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
