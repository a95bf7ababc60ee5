/* pidfile: one line, the pid, written once the process serves. */
#include "pidfile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

int pidfile_write(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        log_error("pid_file %s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "%ld\n", (long)getpid());
    fclose(f);
    return 0;
}
