/* payload: timestamped benchmark bodies. */
#include "payload.h"

#include <string.h>

#include "bench.h"

static const char hexdig[] = "0123456789abcdef";

static void put_hex(uint8_t *out, uint64_t v, int digits)
{
    for (int i = digits - 1; i >= 0; i--) {
        out[i] = (uint8_t)hexdig[v & 15];
        v >>= 4;
    }
}

static int get_hex(const uint8_t *in, int digits, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < digits; i++) {
        uint8_t ch = in[i];
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        else
            return -1;
        x = x << 4 | d;
    }
    *v = x;
    return 0;
}

void payload_write(uint8_t *out, size_t size, const struct payload *p)
{
    put_hex(out, (uint64_t)p->sent_ns, 16);
    put_hex(out + 16, p->sender, 8);
    put_hex(out + 24, p->seq, 8);
    put_hex(out + 32, p->run_id, 4);
    memset(out + BENCH_BODY_MIN, '.', size - BENCH_BODY_MIN);
}

int payload_read(const uint8_t *body, size_t len, struct payload *p)
{
    uint64_t ts, sender, seq, run_id;
    if (len < BENCH_BODY_MIN) return -1;
    if (get_hex(body, 16, &ts) || get_hex(body + 16, 8, &sender) || get_hex(body + 24, 8, &seq) ||
        get_hex(body + 32, 4, &run_id))
        return -1;
    p->sent_ns = (int64_t)ts;
    p->sender = (uint32_t)sender;
    p->seq = (uint32_t)seq;
    p->run_id = (uint16_t)run_id;
    return 0;
}
