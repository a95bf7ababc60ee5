/* proto: what a wire protocol must do for the workloads: log a client in, send private and
 * broadcast messages, ack, and turn the bytes it reads into client events (client.h). */
#ifndef MOONPOST_BENCH_PROTO_H
#define MOONPOST_BENCH_PROTO_H

#include <stddef.h>
#include <stdint.h>

struct client;

struct proto {
    const char *name;
    int default_port;
    /* The connection is up: queue the first setup request. */
    void (*start)(struct client *c, int64_t now);
    /* Consumes the whole frames at the start of DATA and reports them as events. Returns the
     * bytes consumed, or -1 when the stream cannot be read (the client is then closed). */
    long (*parse)(struct client *c, const uint8_t *data, size_t len, int64_t now);
    void (*send_private)(struct client *c, uint32_t to, const uint8_t *body, size_t len,
                         int64_t now);
    void (*send_broadcast)(struct client *c, const uint8_t *body, size_t len, int64_t now);
    /* To the client's room (room_of); NULL when the protocol has no rooms. */
    void (*send_room)(struct client *c, const uint8_t *body, size_t len, int64_t now);
    /* Acknowledges every message up to MID; NULL when the protocol has no acks (MQTT QoS 0). */
    void (*ack)(struct client *c, uint64_t mid);
};

extern const struct proto proto_moonpost;
extern const struct proto proto_mqtt;

#endif
