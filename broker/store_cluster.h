/* store_cluster: the slot map of a Redis Cluster (CLUSTER SLOTS): which master serves which
 * slot, read from the seeds at start, again after a MOVED or a lost master, and every 10 s. */
#ifndef MOONPOST_STORE_CLUSTER_H
#define MOONPOST_STORE_CLUSTER_H

#include <stdint.h>

struct store_conn;

/* SEEDS: the redis setting (addresses separated by REDIS_ADDRESS_SEPARATORS). 0 or -1. */
int store_cluster_start(const char *seeds);
void store_cluster_stop(void);
/* Called every watchdog tick: reads the map when it is due, connecting a seed when no
 * connection is up. */
void store_cluster_tick(int64_t timeout_ms);
/* Reads the map again at the next tick (a MOVED, a lost master, CLUSTERDOWN). */
void store_cluster_refresh_soon(void);
/* The master of SLOT, or for SLOT -1 (a command naming no key) a ready master in turn; NULL
 * when the map has none. */
struct store_conn *store_cluster_owner(int slot);
/* A MOVED: SLOT is served by TO from now on (until the next map says otherwise). */
void store_cluster_moved(unsigned slot, struct store_conn *to);
/* A connection of the map's masters became connected, or was lost. */
void store_cluster_conn_changed(struct store_conn *conn);
/* Every slot has a master, and each of them is READY. */
int store_cluster_serving(void);
/* How many masters the map has, and how many of them are READY. */
int store_cluster_masters(int *ready);
/* The address of the master of SLOT, or of a ready master for SLOT -1 (where links such as the
 * heartbeat and the channels connect); the first seed before a map is known. */
const char *store_cluster_addr_for(int slot);
/* The address of the master of SLOT in the map, or NULL before the map says. */
const char *store_cluster_master_of(int slot);

#endif
