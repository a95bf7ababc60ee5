/* A plugin that calls a broker-internal function instead of going through mp_api: the broker
 * exports no such symbol, so dlopen refuses it. */
#include "moonpost_plugin.h"

MP_PLUGIN_DEFINE("internal", "0");

struct session;
struct session *session_get(uint64_t handle); /* broker/session.h: not part of the API */

int mp_plugin_init(const mp_api *api, void **state)
{
    (void)api;
    *state = session_get(1);
    return 0;
}

void mp_plugin_fini(void *state)
{
    (void)state;
}
