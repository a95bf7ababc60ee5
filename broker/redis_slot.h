/* redis_slot: which Redis Cluster hash slot a command goes to (the cluster's key routing). */
#ifndef MOONPOST_REDIS_SLOT_H
#define MOONPOST_REDIS_SLOT_H

#include <stddef.h>

#define REDIS_SLOTS 16384

/* The slot of KEY: CRC16 of the key, or of its hash tag (what lies between the first '{' and
 * the next '}', when that is not empty), modulo 16384. */
unsigned redis_key_slot(const char *key, size_t len);

/* The slot the command ARGV must run on, or -1 when it names no key (any master serves it).
 * FCALL, FCALL_RO, EVAL and EVALSHA route by their first declared key; SPUBLISH by its
 * channel; PUBLISH and the server commands name no key; every other command by argv[1]. */
int redis_command_slot(int argc, const char **argv, const size_t *argv_len);

/* A cluster's redirection error ("MOVED 3999 10.0.0.2:6381", "ASK 3999 10.0.0.2:6381"): 1 with
 * its slot and target ("host:port"; an empty host is FROM_HOST, the host that answered), else 0.
 * ASK is set for ASK (the next command on the target must follow ASKING), cleared for MOVED. */
int redis_parse_redirect(const char *error, size_t len, const char *from_host, int *ask,
                         unsigned *slot, char *addr, size_t addr_len);

#endif
