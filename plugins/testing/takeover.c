/* A plugin that tries to serve a type the broker already serves in C: init must fail. */
#include "moonpost_plugin.h"

MP_PLUGIN_DEFINE("takeover", "0");

static void handle(void *state, const mp_request *req)
{
    const mp_api *api = state;
    api->reply(req, 200, NULL);
}

int mp_plugin_init(const mp_api *api, void **state)
{
    MP_PLUGIN_CHECK_VERSION(api);
    *state = (void *)api;
    return api->add_handler(api, "admin.stats", 0, handle) == 0 ? 0 : -1;
}

void mp_plugin_fini(void *state)
{
    (void)state;
}
