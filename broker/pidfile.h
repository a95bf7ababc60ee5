/* pidfile: the pid_file of the broker, or of the supervisor when it runs workers. */
#ifndef MOONPOST_PIDFILE_H
#define MOONPOST_PIDFILE_H

/* Writes this process's pid to PATH. Returns 0 or -1 (logged). */
int pidfile_write(const char *path);

#endif
