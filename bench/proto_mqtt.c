/* proto_mqtt: the same workloads over MQTT 3.1.1 at QoS 0, to put an MQTT broker beside
 * moonpost. A private chat user subscribes to its own topic u/<i>; broadcast receivers
 * subscribe to one shared topic; publishers only publish. */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "client.h"
#include "proto.h"

#define MQTT_CONNECT 0x10
#define MQTT_CONNACK 0x20
#define MQTT_PUBLISH 0x30
#define MQTT_SUBSCRIBE 0x82 /* type 8 with the reserved flags 0010 */
#define MQTT_SUBACK 0x90
#define MQTT_PINGRESP 0xd0
#define MQTT_MAX_PACKET (16u << 20)
#define TOPIC_MAX 96

enum mqtt_step { STEP_CONNACK = 1, STEP_SUBACK };

/* ---- writing ---- */

static uint8_t *put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t n)
{
    p = put_u16(p, (uint16_t)n);
    memcpy(p, s, n);
    return p + n;
}

/* Reserves a packet of REMAINING bytes after the fixed header; returns where they go. */
static uint8_t *packet_begin(struct client *c, uint8_t type, size_t remaining)
{
    uint8_t *p = buf_reserve(&c->out, remaining + 5);
    if (p == NULL) return NULL;
    uint8_t *start = p;
    *p++ = type;
    size_t n = remaining;
    do {
        uint8_t byte = n & 0x7f;
        n >>= 7;
        *p++ = n ? (byte | 0x80) : byte;
    } while (n);
    c->out.len += (size_t)(p - start) + remaining;
    return p;
}

static void private_topic(char *out, size_t len, uint32_t index)
{
    snprintf(out, len, "%su/%u", run.opt.topic_prefix, index);
}

static void broadcast_topic(char *out, size_t len)
{
    snprintf(out, len, "%sall", run.opt.topic_prefix);
}

static void mqtt_start(struct client *c, int64_t now)
{
    (void)now;
    char id[TOPIC_MAX];
    int n = snprintf(id, sizeof id, "%s%u", run.opt.user_prefix, c->index);
    uint8_t *p = packet_begin(c, MQTT_CONNECT, 10 + 2 + (size_t)n);
    if (p == NULL) return;
    p = put_str(p, "MQTT", 4);
    *p++ = 4;          /* protocol level 3.1.1 */
    *p++ = 0x02;       /* clean session, no will, no credentials */
    p = put_u16(p, 0); /* no keep-alive: the run bounds the connection's life */
    put_str(p, id, (size_t)n);
    c->step = STEP_CONNACK;
    client_mark_dirty(c);
}

static void subscribe(struct client *c)
{
    char topic[TOPIC_MAX];
    if (run.opt.workload == WL_BROADCAST)
        broadcast_topic(topic, sizeof topic);
    else
        private_topic(topic, sizeof topic, c->index);
    size_t n = strlen(topic);
    uint8_t *p = packet_begin(c, MQTT_SUBSCRIBE, 2 + 2 + n + 1);
    if (p == NULL) return;
    p = put_u16(p, 1); /* packet id */
    p = put_str(p, topic, n);
    *p = 0; /* QoS 0 */
    c->step = STEP_SUBACK;
    client_mark_dirty(c);
}

static void publish(struct client *c, const char *topic, const uint8_t *body, size_t len)
{
    size_t n = strlen(topic);
    uint8_t *p = packet_begin(c, MQTT_PUBLISH, 2 + n + len);
    if (p == NULL) return;
    p = put_str(p, topic, n);
    memcpy(p, body, len);
    client_mark_dirty(c);
}

static void mqtt_send_private(struct client *c, uint32_t to, const uint8_t *body, size_t len,
                              int64_t now)
{
    (void)now;
    char topic[TOPIC_MAX];
    private_topic(topic, sizeof topic, to);
    publish(c, topic, body, len);
}

static void mqtt_send_broadcast(struct client *c, const uint8_t *body, size_t len, int64_t now)
{
    (void)now;
    char topic[TOPIC_MAX];
    broadcast_topic(topic, sizeof topic);
    publish(c, topic, body, len);
}

/* ---- reading ---- */

/* Reads the fixed header: 1 when a whole packet is there, 0 when more bytes are needed, -1 on
 * a malformed length. */
static int packet_split(const uint8_t *p, size_t len, size_t *header, size_t *remaining)
{
    size_t value = 0;
    for (size_t i = 1; i <= 4; i++) {
        if (i >= len) return 0;
        value |= (size_t)(p[i] & 0x7f) << (7 * (i - 1));
        if ((p[i] & 0x80) == 0) {
            if (value > MQTT_MAX_PACKET) return -1;
            *header = i + 1;
            *remaining = value;
            return len >= *header + value ? 1 : 0;
        }
    }
    return -1;
}

static void on_publish(struct client *c, uint8_t flags, const uint8_t *p, size_t n, int64_t now)
{
    if (n < 2) return count_local(c->w, LERR_PROTOCOL);
    size_t topic_len = (size_t)p[0] << 8 | p[1];
    size_t skip = 2 + topic_len + (((flags >> 1) & 3) ? 2 : 0); /* packet id above QoS 0 */
    if (skip > n) return count_local(c->w, LERR_PROTOCOL);
    enum delivery_kind kind =
        run.opt.workload == WL_BROADCAST ? DELIVERY_BROADCAST : DELIVERY_PRIVATE;
    client_delivery(c, kind, p + skip, n - skip, 0, 0, now);
}

static void on_connack(struct client *c, const uint8_t *p, size_t n, int64_t now)
{
    if (c->step != STEP_CONNACK || n < 2) return count_local(c->w, LERR_PROTOCOL);
    if (p[1] != 0) return client_setup_failed(c, 0x100 + p[1]); /* reported as 256+rc */
    if (c->receiver) return subscribe(c);
    client_setup_done(c, now);
}

static void on_suback(struct client *c, const uint8_t *p, size_t n, int64_t now)
{
    if (c->step != STEP_SUBACK || n < 3) return count_local(c->w, LERR_PROTOCOL);
    if (p[2] & 0x80) return client_setup_failed(c, 0x180);
    client_setup_done(c, now);
}

static long mqtt_parse(struct client *c, const uint8_t *data, size_t len, int64_t now)
{
    size_t pos = 0;
    while (pos < len && c->state != CL_DONE && c->state != CL_IDLE) {
        size_t header, remaining;
        int rc = packet_split(data + pos, len - pos, &header, &remaining);
        if (rc < 0) return -1;
        if (rc == 0) break;
        uint8_t first = data[pos];
        const uint8_t *p = data + pos + header;
        pos += header + remaining;
        switch (first & 0xf0) {
        case MQTT_PUBLISH:
            on_publish(c, first & 0x0f, p, remaining, now);
            break;
        case MQTT_CONNACK:
            on_connack(c, p, remaining, now);
            break;
        case MQTT_SUBACK:
            on_suback(c, p, remaining, now);
            break;
        case MQTT_PINGRESP:
            break;
        default:
            count_local(c->w, LERR_PROTOCOL);
            break;
        }
    }
    return (long)pos;
}

const struct proto proto_mqtt = {
    .name = "mqtt",
    .default_port = 1883,
    .start = mqtt_start,
    .parse = mqtt_parse,
    .send_private = mqtt_send_private,
    .send_broadcast = mqtt_send_broadcast,
    .ack = NULL,
};
