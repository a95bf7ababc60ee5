/* Unit tests for broker/presence.c: the user -> session hash and its dense online list, under
 * thousands of random adds and removes checked against a plain array model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presence.h"

#define USERS 300       /* more users than fit at once: probe chains wrap and collide */
#define CAPACITY 256    /* sessions the table is sized for */
#define STEPS 20000

static struct session *new_session(int user)
{
    struct session *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->user_len = (uint8_t)snprintf(s->user, sizeof s->user, "u%d", user);
    return s;
}

static const char *name(int user, char *buf, size_t cap)
{
    snprintf(buf, cap, "u%d", user);
    return buf;
}

/* Every user is found exactly when the model has it, and the online list holds each bound
 * session once, with its index right. */
static void check_against(struct session *const model[USERS], size_t bound)
{
    assert_int_equal(presence_count(), bound);
    char buf[16];
    for (int u = 0; u < USERS; u++) {
        const char *user = name(u, buf, sizeof buf);
        assert_ptr_equal(presence_find(user, strlen(user)), model[u]);
    }
    int seen[USERS] = {0};
    for (size_t i = 0; i < presence_count(); i++) {
        struct session *s = presence_at(i);
        assert_non_null(s);
        assert_int_equal(s->online_index, i);
        int u = atoi(s->user + 1);
        assert_ptr_equal(model[u], s);
        assert_int_equal(seen[u]++, 0);
    }
    assert_null(presence_at(presence_count()));
}

static void test_churn_matches_a_model(void **state)
{
    (void)state;
    assert_int_equal(presence_init(CAPACITY), 0);
    struct session *model[USERS] = {0};
    size_t bound = 0;
    srand(12);
    for (int step = 0; step < STEPS; step++) {
        int u = rand() % USERS;
        if (model[u] == NULL && bound < CAPACITY && rand() % 2) {
            model[u] = new_session(u);
            assert_null(presence_add(model[u]));
            bound++;
        } else if (model[u] != NULL && rand() % 3 == 0) {
            /* a new login of a bound user: the older session is handed back, unbound */
            struct session *newer = new_session(u);
            assert_ptr_equal(presence_add(newer), model[u]);
            presence_remove(model[u]); /* harmless: no longer bound */
            free(model[u]);
            model[u] = newer;
        } else if (model[u] != NULL) {
            presence_remove(model[u]);
            free(model[u]);
            model[u] = NULL;
            bound--;
        }
        if (step % 97 == 0) check_against(model, bound);
    }
    check_against(model, bound);
    for (int u = 0; u < USERS; u++) {
        if (model[u] == NULL) continue;
        presence_remove(model[u]);
        free(model[u]);
        model[u] = NULL;
    }
    check_against(model, 0);
    presence_free();
}

static void test_add_twice_and_remove_unbound(void **state)
{
    (void)state;
    assert_int_equal(presence_init(4), 0);
    struct session *a = new_session(1);
    assert_null(presence_add(a));
    assert_null(presence_add(a)); /* already bound: nothing changes */
    assert_int_equal(presence_count(), 1);
    struct session *anonymous = calloc(1, sizeof *anonymous);
    presence_remove(anonymous); /* no user: ignored */
    struct session *stranger = new_session(2);
    presence_remove(stranger); /* not bound: ignored */
    assert_int_equal(presence_count(), 1);
    assert_ptr_equal(presence_find("u1", 2), a);
    presence_remove(a);
    assert_null(presence_find("u1", 2));
    assert_int_equal(presence_count(), 0);
    free(a), free(anonymous), free(stranger);
    presence_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_churn_matches_a_model),
        cmocka_unit_test(test_add_twice_and_remove_unbound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
