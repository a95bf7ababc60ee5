/* gate: a test plugin for the authentication event and api->login. It refuses every login of
 * the user "blocked" (403), and serves `gate.login {user}` (before login): the session logs in
 * as USER through api->login, as a password check of its own would. */
#include <string.h>

#include "moonpost_plugin.h"

MP_PLUGIN_DEFINE("gate", "0");

static const mp_api *gate_api;

static int on_authenticate(void *state, mp_session session, const char *user, size_t len,
                           const char **error)
{
    (void)state, (void)session;
    if (len == 7 && memcmp(user, "blocked", 7) == 0) {
        *error = "blocked by gate";
        return 403;
    }
    return 0;
}

static void handle_login(void *state, const mp_request *req)
{
    (void)state;
    mp_value user;
    if (!gate_api->field(req, "user", &user) || user.type != MP_STR)
        return gate_api->reply(req, 400, "gate.login needs user");
    int code = gate_api->login(req->session, user.v.str.ptr, user.v.str.len);
    gate_api->reply(req, code == 0 ? 200 : code, code == 0 ? NULL : "login refused");
}

int mp_plugin_init(const mp_api *api, void **state)
{
    MP_PLUGIN_CHECK_VERSION(api);
    if (!MP_API_HAS(api, on_authenticate)) return -1;
    gate_api = api;
    *state = NULL;
    if (api->on_authenticate(api, on_authenticate) != 0) return -1;
    return api->add_handler(api, "gate.login", MP_HANDLER_ANONYMOUS, handle_login);
}

void mp_plugin_fini(void *state)
{
    (void)state;
}
