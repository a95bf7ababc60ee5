/* payload: the body every benchmark message carries: when it was sent, by whom, its sequence
 * number and the run it belongs to, in ASCII hex so that it is a valid str on any protocol. */
#ifndef MOONPOST_BENCH_PAYLOAD_H
#define MOONPOST_BENCH_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

struct payload {
    int64_t sent_ns;
    uint32_t sender;
    uint32_t seq;
    uint16_t run_id;
};

/* Writes SIZE bytes (SIZE >= BENCH_BODY_MIN) to OUT: the fields, then '.' padding. */
void payload_write(uint8_t *out, size_t size, const struct payload *p);

/* Reads the fields back; -1 when BODY is not a benchmark payload. */
int payload_read(const uint8_t *body, size_t len, struct payload *p);

#endif
