/* report: summing the workers up and printing the result. */
#include "report.h"

#include <string.h>
#include <unistd.h>

#include "opts.h"
#include "proto.h"

static const char *const local_names[LERR_COUNT] = {
    "connect", "closed", "protocol", "lost", "setup_timeout", "storm_timeout", "barrier_timeout"};

double report_brokers_cpu(const struct result *r)
{
    double sum = run.opt.brokers ? 0 : -1;
    for (int i = 0; i < run.opt.brokers && sum >= 0; i++)
        sum = r->cpu_broker[i].percent < 0 ? -1 : sum + r->cpu_broker[i].percent;
    return sum;
}

void report_collect(struct result *r)
{
    hist_init(&r->latency);
    hist_init(&r->reply);
    hist_init(&r->setup);
    for (int i = 0; i < run.opt.threads; i++) {
        struct worker *w = &run.workers[i];
        struct counters *c = &w->ctr;
        r->ready += atomic_load(&c->ready);
        r->failed += atomic_load(&c->failed);
        r->sent += atomic_load(&c->sent);
        r->delivered += atomic_load(&c->delivered);
        r->storm_back += atomic_load(&c->back);
        r->sent_window += c->sent_window;
        r->delivered_window += c->delivered_window;
        r->stale += c->stale;
        r->from_mailbox += c->from_mailbox;
        r->acks += c->acks;
        r->other_err += c->other_err;
        for (int k = 0; k < BENCH_CODES; k++) {
            r->res_err[k] += c->res_err[k];
            r->bye[k] += c->bye[k];
        }
        for (int k = 0; k < LERR_COUNT; k++)
            r->local[k] += c->local[k];
        hist_merge(&r->latency, &w->latency);
        hist_merge(&r->reply, &w->reply);
        hist_merge(&r->setup, &w->setup);
    }
    r->errors_total = r->other_err;
    for (int k = 0; k < BENCH_CODES; k++)
        r->errors_total += r->res_err[k] + r->bye[k];
    for (int k = 0; k < LERR_COUNT; k++)
        r->errors_total += r->local[k];
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static double per_second(uint64_t n, double seconds)
{
    return seconds > 0 ? (double)n / seconds : 0;
}

static int storm(void)
{
    return run.opt.workload == WL_LOGIN || run.opt.workload == WL_RESUME;
}

static void print_hist(FILE *out, const char *name, const struct hist *h)
{
    if (h->count == 0) return;
    fprintf(out, "  %-11s p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms  (n=%llu)\n", name,
            ms(hist_quantile(h, 0.50)), ms(hist_quantile(h, 0.99)), ms(hist_quantile(h, 0.999)),
            ms(h->max), (unsigned long long)h->count);
}

static void print_errors(FILE *out, const struct result *r)
{
    fprintf(out, "  %-11s ", "errors");
    if (r->errors_total == 0) {
        fprintf(out, "none\n");
        return;
    }
    for (int k = 0; k < BENCH_CODES; k++)
        if (r->res_err[k]) fprintf(out, "res_%d=%llu ", k, (unsigned long long)r->res_err[k]);
    for (int k = 0; k < BENCH_CODES; k++)
        if (r->bye[k]) fprintf(out, "bye_%d=%llu ", k, (unsigned long long)r->bye[k]);
    for (int k = 0; k < LERR_COUNT; k++)
        if (r->local[k]) fprintf(out, "%s=%llu ", local_names[k], (unsigned long long)r->local[k]);
    if (r->other_err) fprintf(out, "other=%llu", (unsigned long long)r->other_err);
    fprintf(out, "\n");
}

static void print_cpu(FILE *out, const struct result *r)
{
    fprintf(out, "  %-11s bench %.0f%%", "cpu", r->cpu_self.percent);
    double brokers = report_brokers_cpu(r);
    if (brokers >= 0 && run.opt.brokers == 1) fprintf(out, "  broker %.0f%%", brokers);
    if (brokers >= 0 && run.opt.brokers > 1) {
        fprintf(out, "  brokers %.0f%% (", brokers);
        for (int i = 0; i < run.opt.brokers; i++)
            fprintf(out, "%s%.0f%%", i ? " + " : "", r->cpu_broker[i].percent);
        fprintf(out, ")");
    }
    if (r->cpu_redis.percent >= 0) fprintf(out, "  redis %.0f%%", r->cpu_redis.percent);
    if (r->cpu_system.percent >= 0)
        fprintf(out, "  whole machine %.0f%% of %ld00%%", r->cpu_system.percent,
                sysconf(_SC_NPROCESSORS_ONLN));
    if (r->cpu_others.percent >= 0) fprintf(out, "  other processes %.0f%%", r->cpu_others.percent);
    fprintf(out, "  (100%% = one core)\n");
}

void report_table(const struct result *r, FILE *out)
{
    const struct options *o = &run.opt;
    fprintf(out, "moonpost-bench %s  proto %s  clients %d", workload_name(o->workload),
            run.proto->name, o->clients);
    if (workload_fans_out(o)) fprintf(out, "  publishers %d", o->publishers);
    if (o->room_size) fprintf(out, "  room size %d", o->room_size);
    if (run.targets > 1) fprintf(out, "  brokers %d", run.targets);
    if (o->recipients != RCPT_ANY)
        fprintf(out, "  recipients %s", o->recipients == RCPT_CROSS ? "cross" : "local");
    fprintf(out, "  threads %d", o->threads);
    if (workload_sends(o->workload)) {
        if (o->rate > 0) fprintf(out, "  rate %.0f/s", o->rate);
        fprintf(out, "  window %d  size %d", o->window, o->size);
    }
    fprintf(out, "%s\n", r->hard_stop ? "  HARD STOP" : "");
    fprintf(out, "  %-11s %llu ready, %llu failed", "setup", (unsigned long long)r->ready,
            (unsigned long long)r->failed);
    if (r->setup.count)
        fprintf(out, ", connect to ready p50 %.3f ms", ms(hist_quantile(&r->setup, .5)));
    fprintf(out, "\n");
    if (workload_sends(o->workload)) {
        fprintf(out, "  %-11s %.1f s\n", "measured", r->measured_s);
        fprintf(out, "  %-11s %llu (%.0f/s)\n", "sent", (unsigned long long)r->sent_window,
                per_second(r->sent_window, r->measured_s));
        fprintf(out, "  %-11s %llu (%.0f/s)", "delivered", (unsigned long long)r->delivered_window,
                per_second(r->delivered_window, r->measured_s));
        if (r->from_mailbox)
            fprintf(out, ", %llu of the run's from the mailbox (resync)",
                    (unsigned long long)r->from_mailbox);
        fprintf(out, "\n");
        print_hist(out, "latency", &r->latency);
        print_hist(out, "reply", &r->reply);
    }
    if (o->workload == WL_IDLE && r->rss_after_kib >= 0 && r->ready > 0)
        fprintf(out, "  %-11s %ld KiB -> %ld KiB: %.0f bytes per session\n", "broker rss",
                r->rss_before_kib, r->rss_after_kib,
                (double)(r->rss_after_kib - r->rss_before_kib) * 1024.0 / (double)r->ready);
    if (storm()) {
        fprintf(out, "  %-11s %llu/%d back", "storm", (unsigned long long)r->storm_back,
                o->clients);
        if (r->all_back_ms >= 0) fprintf(out, ", all within %.0f ms", r->all_back_ms);
        fprintf(out, "\n");
        print_hist(out, "back", &r->latency);
    }
    print_errors(out, r);
    print_cpu(out, r);
}

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out);
        if ((unsigned char)*s < 0x20)
            fprintf(out, "\\u%04x", *s);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

static void json_hist(FILE *out, const char *name, const struct hist *h)
{
    fprintf(out,
            ",\"%s\":{\"count\":%llu,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
            "\"max_us\":%.1f,\"mean_us\":%.1f}",
            name, (unsigned long long)h->count, hist_quantile(h, .5) / 1e3,
            hist_quantile(h, .99) / 1e3, hist_quantile(h, .999) / 1e3,
            h->count ? (double)h->max / 1e3 : 0.0, hist_mean(h) / 1e3);
}

static void json_errors(FILE *out, const struct result *r)
{
    fprintf(out, ",\"errors_total\":%llu,\"errors\":{", (unsigned long long)r->errors_total);
    const char *sep = "";
    for (int k = 0; k < BENCH_CODES; k++) {
        if (r->res_err[k])
            fprintf(out, "%s\"res_%d\":%llu", sep, k, (unsigned long long)r->res_err[k]);
        if (r->res_err[k]) sep = ",";
    }
    for (int k = 0; k < BENCH_CODES; k++) {
        if (r->bye[k]) fprintf(out, "%s\"bye_%d\":%llu", sep, k, (unsigned long long)r->bye[k]);
        if (r->bye[k]) sep = ",";
    }
    for (int k = 0; k < LERR_COUNT; k++) {
        if (r->local[k])
            fprintf(out, "%s\"%s\":%llu", sep, local_names[k], (unsigned long long)r->local[k]);
        if (r->local[k]) sep = ",";
    }
    if (r->other_err) fprintf(out, "%s\"other\":%llu", sep, (unsigned long long)r->other_err);
    fprintf(out, "}");
}

static void json_pct(FILE *out, const char *name, double percent)
{
    if (percent < 0)
        fprintf(out, ",\"%s\":null", name);
    else
        fprintf(out, ",\"%s\":%.1f", name, percent);
}

static void json_cpu(FILE *out, const char *name, const struct cpu_sample *s)
{
    json_pct(out, name, s->percent);
}

/* The sum as cpu_broker_pct (what scripts of one broker read), and each broker's share. */
static void json_brokers_cpu(FILE *out, const struct result *r)
{
    json_pct(out, "cpu_broker_pct", report_brokers_cpu(r));
    fprintf(out, ",\"cpu_brokers_pct\":[");
    for (int i = 0; i < run.opt.brokers; i++) {
        if (r->cpu_broker[i].percent < 0)
            fprintf(out, "%snull", i ? "," : "");
        else
            fprintf(out, "%s%.1f", i ? "," : "", r->cpu_broker[i].percent);
    }
    fprintf(out, "]");
}

static const char *const recipients_names[] = {"any", "cross", "local"};

void report_json(const struct result *r, FILE *out)
{
    const struct options *o = &run.opt;
    fprintf(out, "{\"workload\":\"%s\",\"proto\":\"%s\",\"label\":", workload_name(o->workload),
            run.proto->name);
    json_str(out, o->label ? o->label : "");
    fprintf(out,
            ",\"clients\":%d,\"publishers\":%d,\"threads\":%d,\"rate\":%.0f,\"window\":%d,"
            "\"size\":%d,\"room_size\":%d,\"brokers\":%d,\"recipients\":\"%s\",\"hard_stop\":%s",
            o->clients, workload_fans_out(o) ? o->publishers : 0, o->threads, o->rate,
            o->window, o->size, o->room_size, run.targets, recipients_names[o->recipients],
            r->hard_stop ? "true" : "false");
    fprintf(out, ",\"t_measure_start_ms\":%.3f", (double)r->t_measure_start / 1e6);
    fprintf(out, ",\"ready\":%llu,\"failed\":%llu,\"measured_s\":%.3f",
            (unsigned long long)r->ready, (unsigned long long)r->failed, r->measured_s);
    fprintf(out, ",\"sent\":%llu,\"delivered\":%llu,\"sent_per_s\":%.1f,\"delivered_per_s\":%.1f",
            (unsigned long long)r->sent_window, (unsigned long long)r->delivered_window,
            per_second(r->sent_window, r->measured_s),
            per_second(r->delivered_window, r->measured_s));
    fprintf(out,
            ",\"sent_all\":%llu,\"delivered_all\":%llu,\"stale\":%llu,\"from_mailbox\":%llu,"
            "\"acks\":%llu",
            (unsigned long long)r->sent, (unsigned long long)r->delivered,
            (unsigned long long)r->stale, (unsigned long long)r->from_mailbox,
            (unsigned long long)r->acks);
    json_hist(out, "latency", &r->latency);
    json_hist(out, "reply", &r->reply);
    json_hist(out, "setup", &r->setup);
    if (o->workload == WL_IDLE && r->rss_after_kib >= 0 && r->ready > 0)
        fprintf(out,
                ",\"broker_rss_before_kib\":%ld,\"broker_rss_after_kib\":%ld,"
                "\"rss_per_session_bytes\":%.1f",
                r->rss_before_kib, r->rss_after_kib,
                (double)(r->rss_after_kib - r->rss_before_kib) * 1024.0 / (double)r->ready);
    if (storm()) {
        fprintf(out, ",\"t_storm_start_ms\":%.3f,\"t_last_back_ms\":%.3f",
                (double)r->t_storm_start / 1e6, (double)r->t_last_back / 1e6);
        fprintf(out, ",\"storm_back\":%llu,\"all_back_ms\":", (unsigned long long)r->storm_back);
        if (r->all_back_ms >= 0)
            fprintf(out, "%.1f", r->all_back_ms);
        else
            fprintf(out, "null");
    }
    json_errors(out, r);
    json_cpu(out, "cpu_bench_pct", &r->cpu_self);
    json_brokers_cpu(out, r);
    json_cpu(out, "cpu_redis_pct", &r->cpu_redis);
    json_cpu(out, "cpu_machine_pct", &r->cpu_system);
    if (r->cpu_others.percent < 0)
        fprintf(out, ",\"cpu_others_pct\":null");
    else
        fprintf(out, ",\"cpu_others_pct\":%.1f", r->cpu_others.percent);
    fprintf(out, ",\"cores\":%ld", sysconf(_SC_NPROCESSORS_ONLN));
    fprintf(out, "}\n");
}

void report_progress(const char *phase, double elapsed_s, FILE *out)
{
    static uint64_t last_sent, last_delivered;
    static double last_t;
    uint64_t sent = 0, delivered = 0, ready = 0, failed = 0, back = 0, errors = 0;
    for (int i = 0; i < run.opt.threads; i++) {
        struct counters *c = &run.workers[i].ctr;
        sent += atomic_load(&c->sent);
        delivered += atomic_load(&c->delivered);
        ready += atomic_load(&c->ready);
        failed += atomic_load(&c->failed);
        back += atomic_load(&c->back);
        errors += atomic_load(&c->errors);
    }
    double dt = elapsed_s - last_t;
    fprintf(out, "\r[%6.1fs] %-7s ready %llu/%d", elapsed_s, phase, (unsigned long long)ready,
            run.total);
    if (storm()) fprintf(out, "  back %llu", (unsigned long long)back);
    if (dt > 0 && (sent || delivered))
        fprintf(out, "  sent %.0f/s  delivered %.0f/s", (double)(sent - last_sent) / dt,
                (double)(delivered - last_delivered) / dt);
    fprintf(out, "  failed %llu  errors %llu   ", (unsigned long long)failed,
            (unsigned long long)errors);
    fflush(out);
    last_sent = sent;
    last_delivered = delivered;
    last_t = elapsed_s;
}
