/* plugin_writer: the mp_writer functions of the plugin API, thin calls into msgpack-c's packer
 * that keep msgpack-c out of moonpost_plugin.h. */
#include "plugin_writer.h"

#include <stdlib.h>

void plugin_write_map(mp_writer *w, uint32_t pairs)
{
    msgpack_pack_map(&w->buf.pk, pairs);
}

void plugin_write_array(mp_writer *w, uint32_t count)
{
    msgpack_pack_array(&w->buf.pk, count);
}

void plugin_write_str(mp_writer *w, const char *s, size_t len)
{
    msgpack_pack_str_with_body(&w->buf.pk, s, len);
}

void plugin_write_bin(mp_writer *w, const void *p, size_t len)
{
    msgpack_pack_bin_with_body(&w->buf.pk, p, len);
}

void plugin_write_int(mp_writer *w, int64_t v)
{
    msgpack_pack_int64(&w->buf.pk, v);
}

void plugin_write_uint(mp_writer *w, uint64_t v)
{
    msgpack_pack_uint64(&w->buf.pk, v);
}

void plugin_write_float(mp_writer *w, double v)
{
    msgpack_pack_double(&w->buf.pk, v);
}

void plugin_write_bool(mp_writer *w, int v)
{
    if (v)
        msgpack_pack_true(&w->buf.pk);
    else
        msgpack_pack_false(&w->buf.pk);
}

void plugin_write_nil(mp_writer *w)
{
    msgpack_pack_nil(&w->buf.pk);
}

mp_writer *plugin_writer_new(void)
{
    mp_writer *w = malloc(sizeof *w);
    if (w != NULL) codec_buf_init(&w->buf);
    return w;
}

void plugin_writer_reset(mp_writer *w)
{
    msgpack_sbuffer_clear(&w->buf.sb);
}

const void *plugin_writer_data(const mp_writer *w, size_t *len)
{
    *len = w->buf.sb.size;
    return w->buf.sb.data;
}

void plugin_writer_free(mp_writer *w)
{
    if (w == NULL) return;
    codec_buf_free(&w->buf);
    free(w);
}
