/* A plugin without mp_plugin_init: the loader must refuse it. */
#include "moonpost_plugin.h"

MP_PLUGIN_DEFINE("noinit", "0");

void mp_plugin_fini(void *state)
{
    (void)state;
}
