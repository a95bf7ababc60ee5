/* print: moonpostctl's output: replies as readable tables, or as JSON for scripts. */
#ifndef MOONPOST_CTL_PRINT_H
#define MOONPOST_CTL_PRINT_H

#include <stdio.h>

#include "moonpost.h"

/* The reply's fields (all but type and id) as one JSON object and a newline. */
void print_json(FILE *out, const mp_reply *r);

/* Tables, one function per command; ARG is the command's argument (or NULL). */
void print_stats(FILE *out, const mp_reply *r, const char *arg);
void print_users(FILE *out, const mp_reply *r, const char *arg);
void print_plugins(FILE *out, const mp_reply *r, const char *arg);
void print_kick(FILE *out, const mp_reply *r, const char *arg);
void print_nodes(FILE *out, const mp_reply *r, const char *arg);
void print_broadcast(FILE *out, const mp_reply *r, const char *arg);
void print_reload(FILE *out, const mp_reply *r, const char *arg);
void print_shutdown(FILE *out, const mp_reply *r, const char *arg);
void print_loglevel(FILE *out, const mp_reply *r, const char *arg);

#endif
