/* plugin_value: reading request values for plugins (api->field, api->read) with the msgread
 * reader, as the plugin API's own mp_value and mp_reader types. */
#ifndef MOONPOST_PLUGIN_VALUE_H
#define MOONPOST_PLUGIN_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "moonpost_plugin.h"

/* How deep an array or map read by plugin_value_read may nest below the value itself. */
#define PLUGIN_VALUE_MAX_DEPTH 32

/* api->read: the next value of R into OUT, R moved past it; 1, or 0 at the end or on bad
 * data (R is then left at its end). */
int plugin_value_read(mp_reader *r, mp_value *out);

/* api->field: top-level KEY of the map BODY; 1 when found (OUT filled), else 0. */
int plugin_value_field(const uint8_t *body, size_t len, const char *key, mp_value *out);

#endif
