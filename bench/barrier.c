/* barrier: the ready and go files of --barrier. */
#include "barrier.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int barrier_arrive(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/ready.%d", dir, (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        perror(path);
        return -1;
    }
    close(fd);
    return 0;
}

int barrier_open(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/go", dir);
    return access(path, F_OK) == 0;
}
