/* plugin: loading C plugins (dlopen) and running their hooks. */
#ifndef MOONPOST_PLUGIN_H
#define MOONPOST_PLUGIN_H

#include <msgpack.h>

#include "session.h"

/* Loads every `plugin` line of the config. Returns 0, or -1 after logging the reason. */
int plugin_load_all(void);
void plugin_unload_all(void);
/* Packs the loaded plugins as an array of maps {name, path, version}. */
void plugin_pack_list(msgpack_packer *pk);
/* Hooks */
void plugin_session_opened(struct session *s);
void plugin_session_login(struct session *s);
void plugin_session_closed(struct session *s);

#endif
