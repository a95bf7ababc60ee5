/* phases: the main thread's script of a run: set up, measure, drain (or prepare, disconnect,
 * storm), watching the clock, the hard stop and the progress line. */
#ifndef MOONPOST_BENCH_PHASES_H
#define MOONPOST_BENCH_PHASES_H

#include "report.h"

/* Runs the whole script with the workers already started; fills what only the main thread
 * knows into R (timings, RSS, CPU). */
void phases_run(struct result *r);

#include <signal.h>

/* Set by the SIGINT handler: the script stops at its next check and reports. */
extern volatile sig_atomic_t phases_interrupted;

#endif
