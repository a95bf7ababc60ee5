/* plugin_writer: the mp_writer of the plugin API, MessagePack written into a codec_buf.
 *
 * Replies and frames use writers of the loader whose buffer starts with room for the length
 * prefix (codec_frame_begin); plugin_writer_new makes a plain one for a plugin's own bytes. */
#ifndef MOONPOST_PLUGIN_WRITER_H
#define MOONPOST_PLUGIN_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "moonpost_plugin.h"

struct mp_writer {
    struct codec_buf buf;
};

void plugin_write_map(mp_writer *w, uint32_t pairs);
void plugin_write_array(mp_writer *w, uint32_t count);
void plugin_write_str(mp_writer *w, const char *s, size_t len);
void plugin_write_bin(mp_writer *w, const void *p, size_t len);
void plugin_write_int(mp_writer *w, int64_t v);
void plugin_write_uint(mp_writer *w, uint64_t v);
void plugin_write_float(mp_writer *w, double v);
void plugin_write_bool(mp_writer *w, int v);
void plugin_write_nil(mp_writer *w);

/* A plugin's own writer: empty, no length prefix. NULL when out of memory. */
mp_writer *plugin_writer_new(void);
void plugin_writer_reset(mp_writer *w);
const void *plugin_writer_data(const mp_writer *w, size_t *len);
void plugin_writer_free(mp_writer *w);

#endif
