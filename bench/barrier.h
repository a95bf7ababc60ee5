/* barrier: several moonpost-bench processes (one per slice of the clients, when one process
 * cannot hold them all) start their timed phase together. Each says it is ready with a file
 * DIR/ready.PID; whoever started them creates DIR/go once every one is. */
#ifndef MOONPOST_BENCH_BARRIER_H
#define MOONPOST_BENCH_BARRIER_H

/* Creates DIR/ready.<our pid>. Returns 0, or -1 with a message on stderr. */
int barrier_arrive(const char *dir);

/* Whether DIR/go exists. */
int barrier_open(const char *dir);

#endif
