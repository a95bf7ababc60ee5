/* redis_slot: see redis_slot.h. */
#include "redis_slot.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as Redis Cluster specifies. */
static uint16_t crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint8_t)buf[i] << 8);
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned redis_key_slot(const char *key, size_t len)
{
    size_t open = 0;
    while (open < len && key[open] != '{')
        open++;
    if (open < len) {
        size_t close = open + 1;
        while (close < len && key[close] != '}')
            close++;
        if (close < len && close > open + 1) return crc16(key + open + 1, close - open - 1) & 16383;
    }
    return crc16(key, len) & 16383;
}

static int is(const char *word, size_t len, const char *name)
{
    size_t n = 0;
    while (name[n] != '\0')
        n++;
    return len == n && strncasecmp(word, name, n) == 0;
}

/* Commands that name no key: they may go to any master. */
static const char *const keyless[] = {
    "PUBLISH", "PING", "ECHO", "INFO", "TIME", "CONFIG", "FUNCTION", "SCRIPT", "CLUSTER",
    "COMMAND", "DBSIZE", "WAIT", "ASKING", "CLIENT", "MEMORY", "LASTSAVE", "ROLE",
};

int redis_command_slot(int argc, const char **argv, const size_t *argv_len)
{
    if (argc < 2) return -1;
    const char *name = argv[0];
    size_t name_len = argv_len[0];
    if (is(name, name_len, "FCALL") || is(name, name_len, "FCALL_RO") ||
        is(name, name_len, "EVAL") || is(name, name_len, "EVALSHA")) {
        /* numkeys is argv[2]: only whether it is 0 matters here */
        if (argc < 4 || argv_len[2] == 0 || (argv_len[2] == 1 && argv[2][0] == '0')) return -1;
        return (int)redis_key_slot(argv[3], argv_len[3]);
    }
    for (size_t i = 0; i < sizeof keyless / sizeof keyless[0]; i++)
        if (is(name, name_len, keyless[i])) return -1;
    return (int)redis_key_slot(argv[1], argv_len[1]);
}

int redis_parse_redirect(const char *error, size_t len, const char *from_host, int *ask,
                         unsigned *slot, char *addr, size_t addr_len)
{
    char text[160];
    if (len >= sizeof text) return 0;
    memcpy(text, error, len);
    text[len] = '\0';
    const char *rest;
    if (strncmp(text, "MOVED ", 6) == 0) {
        *ask = 0;
        rest = text + 6;
    } else if (strncmp(text, "ASK ", 4) == 0) {
        *ask = 1;
        rest = text + 4;
    } else {
        return 0;
    }
    char *end;
    unsigned long n = strtoul(rest, &end, 10);
    if (end == rest || *end != ' ' || n >= REDIS_SLOTS) return 0;
    const char *target = end + 1;
    const char *colon = strrchr(target, ':');
    if (colon == NULL || colon[1] == '\0' || strchr(target, ' ') != NULL) return 0;
    int written = colon == target ? snprintf(addr, addr_len, "%s%s", from_host, colon)
                                  : snprintf(addr, addr_len, "%s", target);
    if (written < 0 || (size_t)written >= addr_len) return 0;
    *slot = (unsigned)n;
    return 1;
}
