/* reload: one reload of the configuration, for SIGHUP and admin.reload. */
#ifndef MOONPOST_RELOAD_H
#define MOONPOST_RELOAD_H

#include <stddef.h>

/* Re-reads the config file (and the --set overrides), loads the plugin lines added since,
 * reloads the scripts into a fresh Lua state and applies the settings that can change live.
 * Returns 0, or -1 with the reason in ERRBUF: the running configuration and scripts stay. */
int broker_reload(char *errbuf, size_t errlen);

#endif
