/* web_static: the web chat's files (web_root), read once at start and served from memory at
 * `/` of the HTTP listener, so that no request reads the disk on the event loop. */
#ifndef MOONPOST_WEB_STATIC_H
#define MOONPOST_WEB_STATIC_H

#include "http.h"

/* Reads the regular files directly in DIR (NULL: serve none). Returns 0, or -1 with the reason
 * logged (a missing directory, too many or too large files). */
int web_static_load(const char *dir);
void web_static_free(void);

/* Answers GET PATH from the files ("/" is /index.html); 404 when there is none. */
void web_static_serve(struct http_conn *c, const char *path);

#endif
