/* options: the settings scripts and plugins declare for themselves (the chat policy:
 * mailbox_max, token_ttl, ...), set in the config file like any key.
 *
 * conf.c keeps every key it does not know in conf->options. A set of options (struct options)
 * copies those settings, takes the declarations (name, type, default, bounds, doc) and gives
 * each declared option its value: the last --set of it, else the file's last line of it, else
 * its default. Once everything that declares options has loaded, options_check refuses a
 * setting nobody declared or whose value does not fit its declaration, naming its origin
 * ("FILE:LINE: unknown key 'x'").
 *
 * Plugins declare once, at start; scripts on every load of the Lua state. A load derives a new
 * set from the current one (keeping the plugins' declarations, values read from the config
 * being loaded) and installs it when it succeeds: plugins read the installed set. */
#ifndef MOONPOST_OPTIONS_H
#define MOONPOST_OPTIONS_H

#include <stddef.h>

#include "conf.h"

enum option_type { OPTION_INT, OPTION_NUMBER, OPTION_BOOL, OPTION_STRING };

/* What a declaration says. DEFAULT_VALUE is written as in the config file ("10000", "off"). */
struct option_spec {
    const char *name;
    enum option_type type;
    const char *default_value;
    int has_min, has_max; /* INT and NUMBER: the bounds below apply */
    double min, max;
    const char *doc;
};

/* A declared option's value. TEXT is its canonical text: an integer in decimal, a number as
 * written, "1"/"0" for a bool, a string as is. */
struct option_value {
    enum option_type type;
    long long integer; /* INT, and BOOL as 0/1 */
    double number;     /* NUMBER (and INT as a double) */
    const char *text;
};

/* One declared option, as options_at lists them. */
struct option_info {
    struct option_spec spec; /* of the first declaration: its doc, default and bounds */
    const char *owner;       /* who declared it first: a script's path, "plugin NAME" */
    struct option_value value;
};

struct options;

/* An empty set whose values come from C's settings (copied: C may go away). NULL when out of
 * memory. */
struct options *options_new(const struct conf *c);

/* A new set with FROM's lasting declarations (the plugins') and values read from C. FROM may
 * be NULL (an empty set). NULL when out of memory. */
struct options *options_derive(const struct options *from, const struct conf *c);

void options_free(struct options *o);

/* Declares SPEC for OWNER ("plugin send", a script's path); LASTING declarations are kept by
 * options_derive. A second declaration of a name must have the same type (its doc, default and
 * bounds are ignored). Returns 0, or -1 with ERR filled: a bad spec or default, a type clash
 * (naming both owners), no memory. */
int options_declare(struct options *o, const struct option_spec *spec, const char *owner,
                    int lasting, char *err, size_t errlen);

/* The value of a declared option, or NULL. Valid until O is freed. */
const struct option_value *options_get(const struct options *o, const char *name);

/* Every setting of the config names a declared option and fits it. Returns 0, or -1 with ERR
 * filled for the first that does not ("FILE:LINE: unknown key 'x'", "--set x=1: x: expected
 * an integer >= 2, got '1'"). */
int options_check(const struct options *o, char *err, size_t errlen);

/* The declared options, in the order they were first declared. */
size_t options_count(const struct options *o);
const struct option_info *options_at(const struct options *o, size_t i);

/* The set in force (NULL before the first install): what plugins read. options_install
 * replaces it (freeing the previous one); options_install(NULL) frees it at exit. */
struct options *options_current(void);
void options_install(struct options *o);

/* The name of a type ("int", "number", "bool", "string") and the reverse (-1 if unknown). */
const char *option_type_name(enum option_type type);
int option_type_parse(const char *name);

#endif
