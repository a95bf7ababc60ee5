/* metrics: this process's counters as Prometheus text, and its health, for GET /metrics and
 * GET /healthz and for the supervisor (admin.metrics, admin.health). */
#ifndef MOONPOST_METRICS_H
#define MOONPOST_METRICS_H

#include <stddef.h>

#include <event2/buffer.h>

#include "http.h"

/* Appends every metric family of this broker to OUT. */
void metrics_write(struct evbuffer *out);

/* 1 when the broker can serve (Redis up), else 0; TEXT gets "ok" or the reason. */
int metrics_healthy(char *text, size_t size);

/* The broker's own HTTP routes: /metrics and /healthz. */
void metrics_serve_http(struct http_conn *c, const char *path);

#endif
