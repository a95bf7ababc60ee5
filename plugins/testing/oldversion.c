/* A plugin built for plugin API version 1, below the broker's MP_PLUGIN_API_MIN: refused
 * before init. */
#define MP_PLUGIN_API_TARGET 1
#include "moonpost_plugin.h"

MP_PLUGIN_DEFINE("oldversion", "0");

int mp_plugin_init(const mp_api *api, void **state)
{
    (void)api, (void)state;
    return 0;
}

void mp_plugin_fini(void *state)
{
    (void)state;
}
