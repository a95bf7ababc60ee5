/* A plugin built for another plugin API version: the loader must refuse it before init. */
#include "moonpost_plugin.h"

MP_EXPORT const mp_plugin_info mp_plugin = {MP_PLUGIN_API_VERSION + 1000, "badversion", "0"};

int mp_plugin_init(const mp_api *api, void **state)
{
    (void)api, (void)state;
    return 0;
}

void mp_plugin_fini(void *state)
{
    (void)state;
}
