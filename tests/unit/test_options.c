/* Unit tests for broker/options.c, the options scripts and plugins declare: declaring,
 * values from the config file and --set, defaults, the check of every setting (unknown key,
 * bad value, with their origin), type clashes, and what a reload derives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "conf.h"
#include "options.h"

/* ---- helpers ---- */

/* A conf read from TEXT as "test.conf", then the --set assignments (NULL-terminated). */
static void load(struct conf *c, const char *text, ...)
{
    struct conf_error err = {{0}};
    conf_init(c);
    assert_int_equal(conf_load_string(c, "test.conf", text, NULL, &err), 0);
    va_list ap;
    va_start(ap, text);
    for (const char *set = va_arg(ap, const char *); set != NULL; set = va_arg(ap, const char *))
        assert_int_equal(conf_set(c, set, &err), 0);
    va_end(ap);
}

static const struct option_spec mailbox_max = {.name = "mailbox_max",
                                               .type = OPTION_INT,
                                               .default_value = "10000",
                                               .has_min = 1,
                                               .min = 1,
                                               .doc = "messages a mailbox holds"};
static const struct option_spec presence_notify = {
    .name = "presence_notify", .type = OPTION_BOOL, .default_value = "off", .doc = "presence"};
static const struct option_spec backoff = {.name = "backoff",
                                           .type = OPTION_NUMBER,
                                           .default_value = "0.25",
                                           .has_min = 1,
                                           .min = 0,
                                           .has_max = 1,
                                           .max = 10,
                                           .doc = "seconds"};
static const struct option_spec greeting = {
    .name = "greeting", .type = OPTION_STRING, .default_value = "hello", .doc = "a word"};

static void declare_ok(struct options *o, const struct option_spec *spec, const char *owner)
{
    char err[512] = "";
    assert_int_equal(options_declare(o, spec, owner, 0, err, sizeof err), 0);
    assert_string_equal(err, "");
}

static void assert_declare_fails(struct options *o, const struct option_spec *spec,
                                 const char *owner, const char *message)
{
    char err[512] = "";
    assert_int_equal(options_declare(o, spec, owner, 0, err, sizeof err), -1);
    assert_string_equal(err, message);
}

/* Checks the settings of TEXT against the four options above; MESSAGE NULL = passes. */
static void assert_check(const char *text, const char *set, const char *message)
{
    struct conf c;
    load(&c, text, set, NULL);
    struct options *o = options_new(&c);
    assert_non_null(o);
    declare_ok(o, &mailbox_max, "send.lua");
    declare_ok(o, &presence_notify, "chat.lua");
    declare_ok(o, &backoff, "chat.lua");
    declare_ok(o, &greeting, "hello.lua");
    char err[512] = "";
    assert_int_equal(options_check(o, err, sizeof err), message ? -1 : 0);
    assert_string_equal(err, message ? message : "");
    options_free(o);
    conf_free(&c);
}

/* ---- declaring and defaults ---- */

static void test_declared_option_not_set_takes_its_default(void **state)
{
    (void)state;
    struct conf c;
    load(&c, "", NULL);
    struct options *o = options_new(&c);
    declare_ok(o, &mailbox_max, "send.lua");
    declare_ok(o, &presence_notify, "chat.lua");
    declare_ok(o, &backoff, "chat.lua");
    declare_ok(o, &greeting, "hello.lua");
    const struct option_value *v = options_get(o, "mailbox_max");
    assert_non_null(v);
    assert_int_equal(v->type, OPTION_INT);
    assert_int_equal(v->integer, 10000);
    assert_string_equal(v->text, "10000");
    v = options_get(o, "presence_notify");
    assert_int_equal(v->integer, 0);
    assert_string_equal(v->text, "0");
    v = options_get(o, "backoff");
    assert_true(v->number == 0.25);
    assert_string_equal(v->text, "0.25");
    assert_string_equal(options_get(o, "greeting")->text, "hello");
    assert_null(options_get(o, "nobody_declared_this"));
    assert_int_equal(options_check(o, (char[64]){0}, 64), 0);
    /* listed in the order of declaration, with their doc and owner */
    assert_int_equal(options_count(o), 4);
    assert_string_equal(options_at(o, 0)->spec.name, "mailbox_max");
    assert_string_equal(options_at(o, 0)->spec.doc, "messages a mailbox holds");
    assert_string_equal(options_at(o, 0)->owner, "send.lua");
    assert_string_equal(options_at(o, 3)->owner, "hello.lua");
    assert_null(options_at(o, 4));
    options_free(o);
    conf_free(&c);
}

static void test_config_file_sets_declared_options(void **state)
{
    (void)state;
    struct conf c;
    load(&c,
         "mailbox_max 5000\n"
         "presence_notify YES\n"
         "backoff 2.5\n"
         "greeting \"\"\n"
         "mailbox_max 6000\n", /* the last line of a key wins */
         NULL);
    struct options *o = options_new(&c);
    conf_free(&c); /* the set keeps its own copy of the settings */
    declare_ok(o, &mailbox_max, "send.lua");
    declare_ok(o, &presence_notify, "chat.lua");
    declare_ok(o, &backoff, "chat.lua");
    declare_ok(o, &greeting, "hello.lua");
    assert_int_equal(options_get(o, "mailbox_max")->integer, 6000);
    assert_int_equal(options_get(o, "presence_notify")->integer, 1);
    assert_string_equal(options_get(o, "presence_notify")->text, "1");
    assert_true(options_get(o, "backoff")->number == 2.5);
    assert_string_equal(options_get(o, "greeting")->text, "");
    assert_int_equal(options_check(o, (char[64]){0}, 64), 0);
    options_free(o);
}

static void test_set_overrides_the_file_whatever_the_order(void **state)
{
    (void)state;
    struct conf c;
    load(&c, "mailbox_max 5000\n", "mailbox_max=7", "mailbox_max=8", NULL);
    /* a file read after the --set still loses to it */
    struct conf_error err;
    assert_int_equal(conf_load_string(&c, "later.conf", "mailbox_max 9\n", NULL, &err), 0);
    struct options *o = options_new(&c);
    declare_ok(o, &mailbox_max, "send.lua");
    assert_int_equal(options_get(o, "mailbox_max")->integer, 8);
    options_free(o);
    conf_free(&c);
}

/* ---- the check of every setting ---- */

static void test_unknown_key_is_an_error_naming_file_and_line(void **state)
{
    (void)state;
    assert_check("mailbox_max 5\n\n# a comment\nmailbox_maxx 5\n", NULL,
                 "test.conf:4: unknown key 'mailbox_maxx'");
    assert_check("", "no_such_option=1", "--set no_such_option=1: unknown key 'no_such_option'");
}

static void test_bad_value_is_an_error_naming_file_and_line(void **state)
{
    (void)state;
    assert_check("greeting hi\nmailbox_max 0\n", NULL,
                 "test.conf:2: mailbox_max: expected an integer >= 1, got '0'");
    assert_check("mailbox_max 12abc\n", NULL,
                 "test.conf:1: mailbox_max: expected an integer >= 1, got '12abc'");
    assert_check("backoff 11\n", NULL,
                 "test.conf:1: backoff: expected a number between 0 and 10, got '11'");
    assert_check("backoff nan\n", NULL,
                 "test.conf:1: backoff: expected a number between 0 and 10, got 'nan'");
    assert_check("presence_notify 2\n", NULL,
                 "test.conf:1: presence_notify: expected on or off (or yes/no, true/false, 1/0), "
                 "got '2'");
    /* a bad file value is reported even when a --set overrides it (as conf.c does) */
    assert_check("mailbox_max -1\n", "mailbox_max=3",
                 "test.conf:1: mailbox_max: expected an integer >= 1, got '-1'");
    assert_check("", "mailbox_max=x",
                 "--set mailbox_max=x: mailbox_max: expected an integer >= 1, "
                 "got 'x'");
    assert_check("mailbox_max 3\npresence_notify off\nbackoff 0\ngreeting x y\n", "backoff=10",
                 NULL);
}

static void test_bad_value_leaves_the_default_until_checked(void **state)
{
    (void)state;
    struct conf c;
    load(&c, "mailbox_max 0\n", NULL);
    struct options *o = options_new(&c);
    declare_ok(o, &mailbox_max, "send.lua");
    assert_int_equal(options_get(o, "mailbox_max")->integer, 10000);
    char err[256];
    assert_int_equal(options_check(o, err, sizeof err), -1);
    options_free(o);
    conf_free(&c);
}

/* ---- declarations ---- */

static void test_same_name_twice_must_agree_on_type(void **state)
{
    (void)state;
    struct conf c;
    load(&c, "mailbox_max 42\n", NULL);
    struct options *o = options_new(&c);
    declare_ok(o, &mailbox_max, "scripts/send.lua");
    struct option_spec again = mailbox_max;
    again.doc = "another doc";
    again.default_value = "5";
    declare_ok(o, &again, "plugin send");
    assert_int_equal(options_count(o), 1);
    assert_string_equal(options_at(o, 0)->spec.doc, "messages a mailbox holds"); /* first wins */
    assert_string_equal(options_at(o, 0)->owner, "scripts/send.lua");
    assert_int_equal(options_get(o, "mailbox_max")->integer, 42);
    struct option_spec clash = {
        .name = "mailbox_max", .type = OPTION_STRING, .default_value = "many"};
    assert_declare_fails(o, &clash, "scripts/other.lua",
                         "option 'mailbox_max' is declared as int by scripts/send.lua and as "
                         "string by scripts/other.lua");
    options_free(o);
    conf_free(&c);
}

static void test_bad_declarations_are_refused(void **state)
{
    (void)state;
    struct conf c;
    load(&c, "", NULL);
    struct options *o = options_new(&c);
    struct option_spec s = mailbox_max;
    s.default_value = "0";
    assert_declare_fails(
        o, &s, "a.lua", "option 'mailbox_max': default '0' does not fit: expected an integer >= 1");
    s = mailbox_max;
    s.default_value = NULL;
    assert_declare_fails(o, &s, "a.lua", "option 'mailbox_max' needs a default");
    s = mailbox_max;
    s.has_max = 1;
    s.max = 0;
    assert_declare_fails(o, &s, "a.lua", "option 'mailbox_max': min is above max");
    s = presence_notify;
    s.has_min = 1;
    assert_declare_fails(o, &s, "a.lua",
                         "option 'presence_notify': min and max are for int and number options");
    s = greeting;
    s.name = "Bad Name";
    assert_declare_fails(o, &s, "a.lua", "option name 'Bad Name' is not 1 to 64 of a-z 0-9 _");
    s.name = "max_body";
    assert_declare_fails(o, &s, "a.lua", "option 'max_body' is a broker setting, not an option");
    assert_int_equal(options_count(o), 0);
    options_free(o);
    conf_free(&c);
}

static void test_type_names(void **state)
{
    (void)state;
    assert_int_equal(option_type_parse("int"), OPTION_INT);
    assert_int_equal(option_type_parse("number"), OPTION_NUMBER);
    assert_int_equal(option_type_parse("bool"), OPTION_BOOL);
    assert_int_equal(option_type_parse("string"), OPTION_STRING);
    assert_int_equal(option_type_parse("integer"), -1);
    assert_string_equal(option_type_name(OPTION_NUMBER), "number");
}

/* ---- reload ---- */

static void test_derive_keeps_lasting_declarations_with_new_values(void **state)
{
    (void)state;
    struct conf before, after;
    load(&before, "mailbox_max 5\ngreeting hi\n", NULL);
    load(&after, "mailbox_max 6\n", NULL);
    struct options *o = options_new(&before);
    char err[256];
    assert_int_equal(options_declare(o, &mailbox_max, "plugin send", 1, err, sizeof err), 0);
    declare_ok(o, &greeting, "hello.lua");
    options_install(o);
    assert_ptr_equal(options_current(), o);
    struct options *next = options_derive(options_current(), &after);
    assert_non_null(next);
    /* the plugin's declaration stays, with the new value; the script's goes until re-declared */
    assert_int_equal(options_count(next), 1);
    assert_int_equal(options_get(next, "mailbox_max")->integer, 6);
    assert_null(options_get(next, "greeting"));
    assert_int_equal(options_get(o, "mailbox_max")->integer, 5); /* the old set is untouched */
    options_install(next);
    assert_ptr_equal(options_current(), next);
    options_install(NULL);
    assert_null(options_current());
    struct options *empty = options_derive(NULL, &after);
    assert_int_equal(options_count(empty), 0);
    assert_int_equal(options_check(empty, err, sizeof err), -1);
    assert_string_equal(err, "test.conf:1: unknown key 'mailbox_max'");
    options_free(empty);
    conf_free(&before);
    conf_free(&after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_declared_option_not_set_takes_its_default),
        cmocka_unit_test(test_config_file_sets_declared_options),
        cmocka_unit_test(test_set_overrides_the_file_whatever_the_order),
        cmocka_unit_test(test_unknown_key_is_an_error_naming_file_and_line),
        cmocka_unit_test(test_bad_value_is_an_error_naming_file_and_line),
        cmocka_unit_test(test_bad_value_leaves_the_default_until_checked),
        cmocka_unit_test(test_same_name_twice_must_agree_on_type),
        cmocka_unit_test(test_bad_declarations_are_refused),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_derive_keeps_lasting_declarations_with_new_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
