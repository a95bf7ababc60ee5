/* http: GET /metrics (Prometheus text) and GET /healthz on `http_listen`. */
#ifndef MOONPOST_HTTP_H
#define MOONPOST_HTTP_H

int http_start(void);
void http_stop(void);

#endif
