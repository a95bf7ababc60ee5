/* websocket_upgrade: the WebSocket opening handshake on the HTTP listener's /ws. */
#ifndef MOONPOST_WEBSOCKET_UPGRADE_H
#define MOONPOST_WEBSOCKET_UPGRADE_H

#include <stddef.h>

#include "http.h"

#define WEBSOCKET_ACCEPT_LEN 28 /* base64 of a SHA-1 digest */

/* Answers C's GET /ws: 101 and a new client session, or an HTTP error that says what is
 * missing (426 not an upgrade, 400 bad version, key or subprotocol, 503 full or stopping). */
void websocket_upgrade(struct http_conn *c);

/* Sec-WebSocket-Accept for the client's KEY (LEN bytes). */
void websocket_accept_key(const char *key, size_t len, char out[WEBSOCKET_ACCEPT_LEN + 1]);

#endif
