/* supervisor_metrics: the host's http_listen under a supervisor: /metrics gathers every
 * worker's metrics (admin.metrics), each series labelled node="<worker node id>"; /healthz
 * answers 200 when every worker is up and healthy (admin.health). */
#ifndef MOONPOST_SUPERVISOR_METRICS_H
#define MOONPOST_SUPERVISOR_METRICS_H

#include "http.h"

void supervisor_metrics_serve(struct http_conn *c, const char *path);

#endif
