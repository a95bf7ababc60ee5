/* presence: who is online on this node and where. Features ask "is USER online" and "deliver to
 * USER" only through this module and the router, so that a cluster registry can replace the
 * local table without touching them. */
#ifndef MOONPOST_PRESENCE_H
#define MOONPOST_PRESENCE_H

#include <stddef.h>

#include "session.h"

int presence_init(size_t max_sessions);
void presence_free(void);

/* Binds S (already carrying its user name) as the session of its user. Returns the session that
 * held the user before, now unbound, or NULL. */
struct session *presence_add(struct session *s);

/* Unbinds S if it is the bound session of its user; harmless otherwise. */
void presence_remove(struct session *s);

struct session *presence_find(const char *user, size_t len);
size_t presence_count(void);

/* The I-th online session, 0 <= I < presence_count(), in no particular order. */
struct session *presence_at(size_t i);

#endif
