/* opts: the command line of moonpost-bench. */
#ifndef MOONPOST_BENCH_OPTS_H
#define MOONPOST_BENCH_OPTS_H

#include "bench.h"

/* Fills O from ARGV with defaults for what is not given. Returns 0, 1 after --help (exit 0),
 * or -1 on an error (already printed). */
int opts_parse(struct options *o, int argc, char **argv);

const char *workload_name(enum workload_kind k);

#endif
