/* plugin: the C plugin loader (dlopen of `plugin PATH [key=value ...]` lines). */
#include "plugin.h"

#include "broker.h"
#include "log.h"

int plugin_load_all(void)
{
    if (broker.conf.plugin.count == 0) return 0;
    log_error("plugin %s: plugins are not supported by this build", broker.conf.plugin.items[0]);
    return -1;
}

void plugin_unload_all(void)
{
}

void plugin_pack_list(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 0);
}

void plugin_session_opened(struct session *s)
{
    (void)s;
}

void plugin_session_login(struct session *s)
{
    (void)s;
}

void plugin_session_closed(struct session *s)
{
    (void)s;
}
