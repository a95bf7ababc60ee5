/* options: the registry of script and plugin options: declare, set from the config, check,
 * get. */
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct option {
    struct option_info info; /* its strings (spec, owner, value text) are owned here */
    int lasting;
};

struct options {
    struct conf_options settings; /* a copy of the config's */
    struct option *items;
    size_t count;
};

static struct options *current;

static const char *const type_names[] = {
    [OPTION_INT] = "int",
    [OPTION_NUMBER] = "number",
    [OPTION_BOOL] = "bool",
    [OPTION_STRING] = "string",
};

const char *option_type_name(enum option_type type)
{
    return (unsigned)type < sizeof type_names / sizeof type_names[0] ? type_names[type] : "?";
}

int option_type_parse(const char *name)
{
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        if (strcmp(name, type_names[i]) == 0) return (int)i;
    return -1;
}

/* ---- values ---- */

/* "expected an integer between 1 and 10": what a value of SPEC must be. */
static void expected(const struct option_spec *spec, char *buf, size_t len)
{
    if (spec->type == OPTION_BOOL) {
        snprintf(buf, len, "expected on or off (or yes/no, true/false, 1/0)");
        return;
    }
    const char *what = spec->type == OPTION_INT ? "an integer" : "a number";
    if (spec->has_min && spec->has_max)
        snprintf(buf, len, "expected %s between %.15g and %.15g", what, spec->min, spec->max);
    else if (spec->has_min)
        snprintf(buf, len, "expected %s >= %.15g", what, spec->min);
    else if (spec->has_max)
        snprintf(buf, len, "expected %s <= %.15g", what, spec->max);
    else
        snprintf(buf, len, "expected %s", what);
}

static int within(const struct option_spec *spec, double d)
{
    return (!spec->has_min || d >= spec->min) && (!spec->has_max || d <= spec->max);
}

/* Parses TEXT as a value of SPEC into OUT, whose text is left NULL. Returns 0, or -1. */
static int parse_value(const struct option_spec *spec, const char *text, struct option_value *out)
{
    *out = (struct option_value){.type = spec->type};
    char *end;
    errno = 0;
    switch (spec->type) {
    case OPTION_INT: {
        long long n = strtoll(text, &end, 10);
        if (end == text || *end != '\0' || errno == ERANGE || !within(spec, (double)n)) return -1;
        out->integer = n;
        out->number = (double)n;
        return 0;
    }
    case OPTION_NUMBER: {
        double d = strtod(text, &end);
        if (end == text || *end != '\0' || !isfinite(d) || !within(spec, d)) return -1;
        out->number = d;
        return 0;
    }
    case OPTION_BOOL: {
        int on = conf_bool_parse(text);
        if (on < 0) return -1;
        out->integer = on;
        out->number = on;
        return 0;
    }
    case OPTION_STRING:
        return 0;
    }
    return -1;
}

/* Parses TEXT into OUT with its canonical text (allocated). Returns 0, or -1 (a bad value or
 * no memory: *nomem says which). */
static int make_value(const struct option_spec *spec, const char *text, struct option_value *out,
                      int *nomem)
{
    *nomem = 0;
    if (parse_value(spec, text, out) != 0) return -1;
    char canonical[32];
    if (spec->type == OPTION_INT) {
        snprintf(canonical, sizeof canonical, "%lld", out->integer);
        text = canonical;
    } else if (spec->type == OPTION_BOOL) {
        text = out->integer ? "1" : "0";
    }
    out->text = strdup(text);
    if (out->text == NULL) *nomem = 1;
    return out->text == NULL ? -1 : 0;
}

/* ---- settings ---- */

/* The setting that gives NAME its value: the last --set of it, else the file's last line. */
static const struct conf_option *setting_of(const struct options *o, const char *name)
{
    const struct conf_option *found = NULL;
    for (size_t i = 0; i < o->settings.count; i++) {
        const struct conf_option *s = &o->settings.items[i];
        if (strcmp(s->key, name) == 0 && (s->from_set || found == NULL || !found->from_set))
            found = s;
    }
    return found;
}

static int copy_settings(struct conf_options *to, const struct conf_options *from)
{
    to->items = calloc(from->count ? from->count : 1, sizeof *to->items);
    if (to->items == NULL) return -1;
    for (size_t i = 0; i < from->count; i++) {
        const struct conf_option *s = &from->items[i];
        struct conf_option *d = &to->items[to->count++];
        *d = (struct conf_option){strdup(s->key), strdup(s->value), strdup(s->origin), s->from_set};
        if (d->key == NULL || d->value == NULL || d->origin == NULL) return -1;
    }
    return 0;
}

/* ---- sets ---- */

static void free_option(struct option *opt)
{
    struct option_info *info = &opt->info;
    free((char *)info->spec.name);
    free((char *)info->spec.default_value);
    free((char *)info->spec.doc);
    free((char *)info->owner);
    free((char *)info->value.text);
}

void options_free(struct options *o)
{
    if (o == NULL) return;
    for (size_t i = 0; i < o->count; i++)
        free_option(&o->items[i]);
    free(o->items);
    for (size_t i = 0; i < o->settings.count; i++) {
        free(o->settings.items[i].key);
        free(o->settings.items[i].value);
        free(o->settings.items[i].origin);
    }
    free(o->settings.items);
    free(o);
}

struct options *options_new(const struct conf *c)
{
    struct options *o = calloc(1, sizeof *o);
    if (o == NULL) return NULL;
    if (copy_settings(&o->settings, &c->options) != 0) {
        options_free(o);
        return NULL;
    }
    return o;
}

static struct option *find(const struct options *o, const char *name)
{
    for (size_t i = 0; i < o->count; i++)
        if (strcmp(o->items[i].info.spec.name, name) == 0) return &o->items[i];
    return NULL;
}

/* Config keys are single words: a name anything else could never be set. */
static int valid_name(const char *name)
{
    if (name == NULL || *name == '\0' || strlen(name) > 64) return 0;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) return 0;
    return 1;
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int check_spec(const struct option_spec *spec, char *err, size_t errlen)
{
    if (!valid_name(spec->name))
        return fail(err, errlen, "option name '%s' is not 1 to 64 of a-z 0-9 _",
                    spec->name ? spec->name : "");
    if (conf_is_key(spec->name))
        return fail(err, errlen, "option '%s' is a broker setting, not an option", spec->name);
    if ((unsigned)spec->type > OPTION_STRING)
        return fail(err, errlen, "option '%s': unknown type", spec->name);
    int numeric = spec->type == OPTION_INT || spec->type == OPTION_NUMBER;
    if (!numeric && (spec->has_min || spec->has_max))
        return fail(err, errlen, "option '%s': min and max are for int and number options",
                    spec->name);
    if (spec->has_min && spec->has_max && spec->min > spec->max)
        return fail(err, errlen, "option '%s': min is above max", spec->name);
    if (spec->default_value == NULL)
        return fail(err, errlen, "option '%s' needs a default", spec->name);
    struct option_value v;
    if (parse_value(spec, spec->default_value, &v) != 0) {
        char why[128];
        expected(spec, why, sizeof why);
        return fail(err, errlen, "option '%s': default '%s' does not fit: %s", spec->name,
                    spec->default_value, why);
    }
    return 0;
}

/* A new option for SPEC, its value from the settings (or the default when they have none or a
 * bad one: options_check reports it). */
static int add_option(struct options *o, const struct option_spec *spec, const char *owner,
                      int lasting)
{
    struct option *items = realloc(o->items, (o->count + 1) * sizeof *items);
    if (items == NULL) return -1;
    o->items = items;
    struct option *opt = &items[o->count++];
    memset(opt, 0, sizeof *opt);
    opt->lasting = lasting;
    struct option_spec *s = &opt->info.spec;
    *s = *spec;
    s->name = strdup(spec->name);
    s->default_value = strdup(spec->default_value);
    s->doc = strdup(spec->doc ? spec->doc : "");
    opt->info.owner = strdup(owner);
    if (!s->name || !s->default_value || !s->doc || !opt->info.owner) return -1;
    const struct conf_option *set = setting_of(o, spec->name);
    int nomem;
    if (set != NULL && make_value(s, set->value, &opt->info.value, &nomem) == 0) return 0;
    if (set != NULL && nomem) return -1;
    return make_value(s, s->default_value, &opt->info.value, &nomem);
}

int options_declare(struct options *o, const struct option_spec *spec, const char *owner,
                    int lasting, char *err, size_t errlen)
{
    if (check_spec(spec, err, errlen) != 0) return -1;
    struct option *known = find(o, spec->name);
    if (known != NULL) {
        if (known->info.spec.type != spec->type)
            return fail(err, errlen, "option '%s' is declared as %s by %s and as %s by %s",
                        spec->name, option_type_name(known->info.spec.type), known->info.owner,
                        option_type_name(spec->type), owner);
        known->lasting |= lasting;
        return 0;
    }
    if (add_option(o, spec, owner, lasting) != 0)
        return fail(err, errlen, "option '%s': out of memory", spec->name);
    return 0;
}

struct options *options_derive(const struct options *from, const struct conf *c)
{
    struct options *o = options_new(c);
    for (size_t i = 0; o != NULL && from != NULL && i < from->count; i++) {
        const struct option *opt = &from->items[i];
        if (opt->lasting && add_option(o, &opt->info.spec, opt->info.owner, 1) != 0) {
            options_free(o);
            o = NULL;
        }
    }
    return o;
}

const struct option_value *options_get(const struct options *o, const char *name)
{
    const struct option *opt = o != NULL && name != NULL ? find(o, name) : NULL;
    return opt != NULL ? &opt->info.value : NULL;
}

int options_check(const struct options *o, char *err, size_t errlen)
{
    for (size_t i = 0; i < o->settings.count; i++) {
        const struct conf_option *s = &o->settings.items[i];
        const struct option *opt = find(o, s->key);
        if (opt == NULL) return fail(err, errlen, "%s: unknown key '%s'", s->origin, s->key);
        struct option_value v;
        if (parse_value(&opt->info.spec, s->value, &v) != 0) {
            char why[128];
            expected(&opt->info.spec, why, sizeof why);
            return fail(err, errlen, "%s: %s: %s, got '%s'", s->origin, s->key, why, s->value);
        }
    }
    return 0;
}

size_t options_count(const struct options *o)
{
    return o != NULL ? o->count : 0;
}

const struct option_info *options_at(const struct options *o, size_t i)
{
    return o != NULL && i < o->count ? &o->items[i].info : NULL;
}

struct options *options_current(void)
{
    return current;
}

void options_install(struct options *o)
{
    if (o == current) return;
    options_free(current);
    current = o;
}
