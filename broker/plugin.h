/* plugin: loading C plugins (dlopen) and running their hooks. */
#ifndef MOONPOST_PLUGIN_H
#define MOONPOST_PLUGIN_H

#include <msgpack.h>

#include "session.h"

/* Loads every `plugin` line of the config (and subscribes the plugins' session hooks to the
 * session events). Returns 0, or -1 after logging the reason. */
int plugin_load_all(void);
/* Loads one `plugin` line (PATH [key=value ...]); 0, or -1 after logging the reason. */
int plugin_load(const char *line);
void plugin_unload_all(void);
/* Packs the loaded plugins as an array of maps {name, path, version}. */
void plugin_pack_list(msgpack_packer *pk);

#endif
