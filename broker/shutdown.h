/* shutdown: the graceful stop of the daemon. */
#ifndef MOONPOST_SHUTDOWN_H
#define MOONPOST_SHUTDOWN_H

/* Starts a graceful shutdown: stop accepting, bye 503 to everyone, leave the loop when flushed
 * (or after shutdown_timeout). Safe to call twice. */
void broker_shutdown(const char *why);
/* Frees the shutdown's timers (after the loop). */
void broker_shutdown_free(void);

#endif
