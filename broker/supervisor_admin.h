/* supervisor_admin: the host's admin socket under a supervisor. Each request is forwarded to
 * the workers' private admin sockets: admin.stats to every worker (integer fields summed),
 * admin.reload and admin.loglevel to every worker (200 when all succeed), admin.shutdown stops
 * the host, any other type to one worker (its reply passed through). */
#ifndef MOONPOST_SUPERVISOR_ADMIN_H
#define MOONPOST_SUPERVISOR_ADMIN_H

/* Listens on PATH. Returns 0, SERVER_IN_USE (a live broker answers there) or -1. */
int supervisor_admin_start(const char *path);
void supervisor_admin_stop(void);

#endif
