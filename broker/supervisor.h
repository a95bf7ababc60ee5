/* supervisor: `processes N` (N > 1): starts N broker processes (workers) on one host, restarts
 * any that dies, passes signals on, and serves admin_socket and http_listen for all of them
 * (docs/cluster.md, "One host, many processes"). */
#ifndef MOONPOST_SUPERVISOR_H
#define MOONPOST_SUPERVISOR_H

#include <stdint.h>
#include <time.h>

/* Runs the supervisor for broker.conf (read from broker.conf_path and broker.conf_sets) on
 * broker.base until it stops; returns the exit code of the command: 0 after a stop asked for
 * (SIGTERM, SIGINT, admin.shutdown), 2 when a worker's first start found the configuration
 * wrong, 1 when it could not start. */
int supervisor_run(void);

/* Stops every worker gracefully (SIGKILL after shutdown_timeout and a margin), then the loop;
 * the command exits with CODE. Safe to call twice (the first code stays). */
void supervisor_stop(const char *why, int code);

/* What the host's admin socket and metrics tell of the supervisor. */
int supervisor_workers(void);
const char *supervisor_node_id(void);    /* "<node_id>" (workers are "<node_id>-<i>") */
const char *supervisor_worker_id(int i); /* worker I's node id, I = 0..N-1 */
int supervisor_worker_running(int i);
uint64_t supervisor_restarts(void);
time_t supervisor_started(void);

#endif
