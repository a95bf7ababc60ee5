/* router_gap: what router.c and router_gap.c share about held live messages. */
#ifndef MOONPOST_ROUTER_GAP_H
#define MOONPOST_ROUTER_GAP_H

#include <stddef.h>
#include <stdint.h>

#include "session.h"

/* Pushes a live message to S now (router.c). */
void router_push_live(struct session *s, const void *frame, size_t frame_len, uint64_t mid);
/* After a push: the held messages whose earlier message is now pushed follow, in mid order;
 * the ones the pushes overtook are dropped as repeats. */
void router_release_held(struct session *s);
/* Forgets what S holds (a resync brings it from the mailbox; a closed session needs none). */
void router_drop_held(struct session *s);

#endif
