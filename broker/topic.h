/* topic: which sessions of this node subscribed to which topic (a room of scripts/rooms.lua is
 * one), and the fan-out of one encoded frame to them. A topic's frames come over the cluster's
 * broadcast channel (a Redis function PUBLISHes them), so every node, the sender's included,
 * pushes them in the one order Redis gave them. */
#ifndef MOONPOST_TOPIC_H
#define MOONPOST_TOPIC_H

#include <stddef.h>
#include <stdint.h>

#include "session.h"

#define TOPIC_NAME_MAX 255
/* The bus payload of a topic's frame: 'T', topic length, topic, except length, except user,
 * then the frame's body (the MessagePack map, without its length prefix, as a Redis function
 * builds it). The header is what comes before the body. */
#define TOPIC_KIND 'T'
#define TOPIC_HEADER_MAX (3 + TOPIC_NAME_MAX + SESSION_USER_MAX)

/* A session follows topics in the order of the Redis stream: a Redis function PUBLISHes, on
 * the node channel of the session's broker, 'F', 8, the session's handle (8 bytes, big-endian),
 * user length, user, then for each topic its length and name. Every frame the function (or any
 * later one) publishes on those topics then reaches the session, and none before. The session
 * must still be logged in as that user. */
#define TOPIC_FOLLOW_KIND 'F'
#define TOPIC_FOLLOW_HEADER_MAX (2 + 8 + 1 + SESSION_USER_MAX)

/* Removes a session's subscriptions when it closes. 0, or -1 when the session events are full. */
int topic_start(void);
/* Forgets every subscription (after the session table is gone). */
void topic_stop(void);

/* S follows TOPIC (1..TOPIC_NAME_MAX bytes): 1 when added, 0 when it already did, -1 when the
 * name is too long or memory ran out. */
int topic_subscribe(struct session *s, const char *topic, size_t len);
/* 1 when S followed TOPIC and no longer does, else 0. */
int topic_unsubscribe(struct session *s, const char *topic, size_t len);
/* Every subscription of S goes (it closes). */
void topic_drop_session(struct session *s);

/* Queues FRAME (encoded once) to every session following TOPIC except the session of user
 * EXCEPT on this node (presence.h; EXCEPT_LEN 0: none); returns how many got it. No allocation
 * per session. */
size_t topic_publish_local(const char *topic, size_t len, const void *frame, size_t frame_len,
                           const char *except, size_t except_len);

/* Writes the bus header for TOPIC and EXCEPT into OUT (TOPIC_HEADER_MAX bytes); returns its
 * length, or 0 when a name is too long. */
size_t topic_header(uint8_t *out, const char *topic, size_t len, const char *except,
                    size_t except_len);
/* A bus payload after its kind and topic (cluster.c has parsed those): the except user, then
 * the frame's body, framed once and fanned out with topic_publish_local. */
void topic_on_bus(const char *topic, size_t len, const uint8_t *rest, size_t rest_len);

/* Writes the follow header (all but the topics) for S into OUT (TOPIC_FOLLOW_HEADER_MAX bytes);
 * returns its length. */
size_t topic_follow_header(uint8_t *out, const struct session *s);
/* A follow message from the node channel after its kind and name (the handle, parsed by
 * cluster.c): the user, then the topics. */
void topic_on_follow(const char *handle, size_t handle_len, const uint8_t *rest, size_t rest_len);

/* How many sessions follow TOPIC; how many topics S follows; how many topics have followers. */
size_t topic_subscriber_count(const char *topic, size_t len);
size_t topic_session_count(const struct session *s);
size_t topic_count(void);

#endif
