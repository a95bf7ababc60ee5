/* reload: one reload of the configuration, for SIGHUP and admin.reload. */
#ifndef MOONPOST_RELOAD_H
#define MOONPOST_RELOAD_H

#include <stddef.h>

/* Re-reads the config file (and the --set overrides), loads the plugin lines added since,
 * reloads the scripts into a fresh Lua state and applies the settings that can change live.
 * Returns 0, or -1 with the reason in ERRBUF: the running configuration and scripts stay. */
int broker_reload(char *errbuf, size_t errlen);

/* Hands the settings that can change live from broker.conf to the modules that use them (the
 * log level, the session limits); at start and after every reload. The other settings are
 * read where they are used, from broker.conf, each time (max_body, mailbox and Lua limits...),
 * or only at start (see broker_reload). */
void broker_apply_live_settings(void);

#endif
