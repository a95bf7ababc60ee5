/* websocket_upgrade: the opening handshake of RFC 6455 on the HTTP listener's /ws: checks the
 * request, answers 101 with the accept key (SHA-1 and base64 from OpenSSL's libcrypto) and
 * subprotocol `moonpost`, and hands the socket to a new WebSocket session. */
#include "websocket_upgrade.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "broker.h"
#include "log.h"
#include "session.h"
#include "stats.h"
#include "tls.h"
#include "websocket.h"

#define WEBSOCKET_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WEBSOCKET_KEY_LEN 24 /* base64 of 16 bytes */
#define SUBPROTOCOL "moonpost"

/* True when the comma-separated list VALUE (LEN bytes) holds TOKEN, in any case. */
static int list_has_token(const char *value, size_t len, const char *token)
{
    size_t n = strlen(token);
    const char *end = value + len;
    for (const char *p = value; p < end;) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *item = p;
        while (p < end && *p != ',')
            p++;
        const char *stop = p;
        while (stop > item && (stop[-1] == ' ' || stop[-1] == '\t'))
            stop--;
        if ((size_t)(stop - item) == n && strncasecmp(item, token, n) == 0) return 1;
    }
    return 0;
}

static int header_has(struct http_conn *c, const char *name, const char *token)
{
    size_t len;
    const char *v = http_request_header(c, name, &len);
    return v != NULL && list_has_token(v, len, token);
}

void websocket_accept_key(const char *key, size_t len, char out[WEBSOCKET_ACCEPT_LEN + 1])
{
    unsigned char digest[SHA_DIGEST_LENGTH];
    char joined[128];
    int n = snprintf(joined, sizeof joined, "%.*s%s", (int)len, key, WEBSOCKET_GUID);
    SHA1((const unsigned char *)joined, (size_t)n, digest);
    EVP_EncodeBlock((unsigned char *)out, digest, sizeof digest);
}

/* The refusals of a connection that was accepted as an upgrade but cannot become a session. */
static const char *cannot_open(void)
{
    if (broker.shutting_down) return "shutting down";
    if (session_client_count() >= (size_t)broker.conf.max_connections)
        return "too many connections";
    return NULL;
}

static void on_upgraded(evutil_socket_t fd, SSL *ssl, struct evbuffer *rest)
{
    const char *why = cannot_open();
    if (why != NULL) {
        log_warn("refused a WebSocket connection: %s", why);
        stats.connections_rejected_total++;
        evbuffer_free(rest);
        SSL_free(ssl);
        evutil_closesocket(fd);
        return;
    }
    struct tls_conn *tls = NULL;
    if (ssl != NULL && (tls = tls_conn_adopt(ssl)) == NULL) { /* the session goes on in TLS */
        stats.connections_rejected_total++;
        evbuffer_free(rest);
        evutil_closesocket(fd);
        return;
    }
    if (websocket_open(fd, tls, rest) == NULL) {
        stats.connections_rejected_total++;
        return;
    }
    stats.connections_total++;
}

void websocket_upgrade(struct http_conn *c)
{
    if (!broker.conf.websocket) return http_reply_text(c, 404, "not found");
    if (!header_has(c, "Upgrade", "websocket") || !header_has(c, "Connection", "upgrade"))
        return http_reply_text(c, 426, "this is a WebSocket endpoint: upgrade to websocket");
    size_t len;
    const char *version = http_request_header(c, "Sec-WebSocket-Version", &len);
    if (version == NULL || len != 2 || strncmp(version, "13", 2) != 0)
        return http_reply_text(c, 400, "Sec-WebSocket-Version must be 13");
    const char *key = http_request_header(c, "Sec-WebSocket-Key", &len);
    if (key == NULL || len != WEBSOCKET_KEY_LEN)
        return http_reply_text(c, 400, "Sec-WebSocket-Key must be 16 bytes in base64");
    if (!header_has(c, "Sec-WebSocket-Protocol", SUBPROTOCOL))
        return http_reply_text(c, 400, "Sec-WebSocket-Protocol must offer " SUBPROTOCOL);
    const char *why = cannot_open();
    if (why != NULL) {
        stats.connections_rejected_total++;
        return http_reply_text(c, 503, why);
    }
    char accept[WEBSOCKET_ACCEPT_LEN + 1];
    websocket_accept_key(key, len, accept);
    char headers[256];
    snprintf(headers, sizeof headers,
             "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
             "Sec-WebSocket-Protocol: " SUBPROTOCOL "\r\n",
             accept);
    http_upgrade(c, headers, on_upgraded);
}
