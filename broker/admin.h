/* admin: the admin.* message types, served only on the admin socket. */
#ifndef MOONPOST_ADMIN_H
#define MOONPOST_ADMIN_H

#include <msgpack.h>

#include "session.h"

int admin_start(void);
/* The admin types that ask the cluster registry (admin_cluster.c). */
int admin_cluster_start(void);

/* A 200 reply with FIELDS more pairs, encoded in the loop's scratch buffer; admin_reply_end
 * sends it to S. */
msgpack_packer *admin_reply_begin(int has_id, uint64_t id, size_t fields);
void admin_reply_end(struct session *s);
/* Reads the str field KEY of the frame BODY into BUF; returns its length or -1. */
int admin_str_field(const uint8_t *body, size_t len, const char *key, char *buf, size_t cap);

#endif
