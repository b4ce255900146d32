#include "server/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <dirent.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util/hist.h"
#include "util/rbuf.h"

static const int status_codes[] = {
#define METRICS_CODE(s) s,
    METRICS_STATUSES(METRICS_CODE)
#undef METRICS_CODE
};
/* Upper bounds of the latency buckets, microseconds; the last bucket is +Inf. */
static const uint64_t bucket_us[METRICS_NBUCKETS - 1] = {
    250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000};

void metrics_http(struct metrics *m, int route, int status, uint64_t us)
{
    struct metrics_route *r;
    int si = METRICS_NSTATUS - 1, bi = METRICS_NBUCKETS - 1;

    if (route < 0 || route >= METRICS_MAX_ROUTES) return;
    r = &m->routes[route];
    for (int i = 0; i < METRICS_NSTATUS - 1; i++)
        if (status_codes[i] == status) si = i;
    for (int i = 0; i < METRICS_NBUCKETS - 1; i++)
        if (us <= bucket_us[i]) {
            bi = i;
            break;
        }
    atomic_fetch_add_explicit(&r->by_status[si], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->lat_bucket[bi], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->lat_sum_us, us, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->lat_count, 1, memory_order_relaxed);
}

void metrics_auth_failure(struct metrics *m, enum metrics_auth_fail why)
{
    atomic_fetch_add_explicit(&m->auth_failures[why], 1, memory_order_relaxed);
}

void metrics_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < *cap - *len) break;
        *cap = *cap * 2 + (size_t)(n > 0 ? n : 256);
        *buf = xrealloc(*buf, *cap);
    }
    *len += (size_t)n;
}

void metrics_render_http(const struct metrics *m, const char *const *route_names, int nroutes,
                         char **buf, size_t *len, size_t *cap)
{
    static const char *const auth_reasons[] = {"token", "credentials", "refresh_token"};

    metrics_printf(buf, len, cap,
                   "# HELP chatd_http_requests_total HTTP requests by route and status.\n"
                   "# TYPE chatd_http_requests_total counter\n");
    for (int r = 0; r < nroutes; r++)
        for (int s = 0; s < METRICS_NSTATUS; s++) {
            uint64_t v = atomic_load_explicit(&m->routes[r].by_status[s], memory_order_relaxed);
            if (!v) continue;
            if (s < METRICS_NSTATUS - 1)
                metrics_printf(buf, len, cap,
                               "chatd_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                               route_names[r], status_codes[s], (unsigned long long)v);
            else
                metrics_printf(buf, len, cap,
                               "chatd_http_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                               route_names[r], (unsigned long long)v);
        }
    metrics_printf(buf, len, cap,
                   "# HELP chatd_http_request_duration_seconds Time from the first byte of a "
                   "request to its response.\n"
                   "# TYPE chatd_http_request_duration_seconds histogram\n");
    for (int r = 0; r < nroutes; r++) {
        const struct metrics_route *mr = &m->routes[r];
        uint64_t cum = 0, count = atomic_load(&mr->lat_count);
        if (!count) continue;
        for (int b = 0; b < METRICS_NBUCKETS; b++) {
            cum += atomic_load_explicit(&mr->lat_bucket[b], memory_order_relaxed);
            if (b < METRICS_NBUCKETS - 1)
                metrics_printf(buf, len, cap,
                               "chatd_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
                               "%llu\n",
                               route_names[r], (double)bucket_us[b] / 1e6, (unsigned long long)cum);
            else
                metrics_printf(
                    buf, len, cap,
                    "chatd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"}"
                    " %llu\n",
                    route_names[r], (unsigned long long)cum);
        }
        metrics_printf(buf, len, cap,
                       "chatd_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                       "chatd_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                       route_names[r], (double)atomic_load(&mr->lat_sum_us) / 1e6, route_names[r],
                       (unsigned long long)count);
    }
    metrics_printf(buf, len, cap,
                   "# HELP chatd_auth_failures_total Rejected tokens, credentials and refresh "
                   "tokens.\n# TYPE chatd_auth_failures_total counter\n");
    for (int i = 0; i < AUTH_FAIL_N; i++)
        metrics_printf(buf, len, cap, "chatd_auth_failures_total{reason=\"%s\"} %llu\n",
                       auth_reasons[i], (unsigned long long)atomic_load(&m->auth_failures[i]));
    metrics_printf(buf, len, cap,
                   "# HELP chatd_rate_limited_total Requests refused by a rate limit.\n"
                   "# TYPE chatd_rate_limited_total counter\nchatd_rate_limited_total %llu\n",
                   (unsigned long long)atomic_load(&m->rate_limited));
}

void metrics_render_hist(char **buf, size_t *len, size_t *cap, const char *name, const char *help,
                         const char *labels, const struct hist *h)
{
    uint64_t cum = 0;
    const char *sep = labels[0] ? "," : "";
    metrics_printf(buf, len, cap, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (int b = 0; b < HIST_NBUCKETS; b++) {
        cum += atomic_load_explicit(&h->bucket[b], memory_order_relaxed);
        if (b < HIST_NBUCKETS - 1)
            metrics_printf(buf, len, cap, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                           (double)hist_bounds_us[b] / 1e6, (unsigned long long)cum);
        else
            metrics_printf(buf, len, cap, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                           (unsigned long long)cum);
    }
    /* The count is the +Inf bucket's cumulated value: the buckets were read once, so a
     * concurrent observation cannot make _count disagree with them. */
    metrics_printf(buf, len, cap, "%s_sum%s%s%s %.6f\n%s_count%s%s%s %llu\n", name,
                   labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
                   (double)atomic_load(&h->sum_us) / 1e6, name, labels[0] ? "{" : "", labels,
                   labels[0] ? "}" : "", (unsigned long long)cum);
}

void metrics_render_process(char **buf, size_t *len, size_t *cap, double start_unix_s)
{
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char stat[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    struct rlimit rl;
    DIR *d;

    if (f) {
        size_t n = fread(stat, 1, sizeof(stat) - 1, f);
        const char *p;
        unsigned long long utime, stime, vsize;
        long long rss;
        fclose(f);
        stat[n] = '\0';
        /* After the ")" that ends the command name: state is field 3; utime 14, stime 15,
         * vsize 23, rss 24. */
        p = strrchr(stat, ')');
        if (p && tick > 0 &&
            sscanf(p + 2,
                   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
                   "%*u %llu %lld",
                   &utime, &stime, &vsize, &rss) == 4) {
            metrics_printf(buf, len, cap,
                           "# HELP process_cpu_seconds_total Total user and system CPU time spent "
                           "in seconds.\n# TYPE process_cpu_seconds_total counter\n"
                           "process_cpu_seconds_total %.2f\n",
                           (double)(utime + stime) / (double)tick);
            metrics_printf(buf, len, cap,
                           "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                           "# TYPE process_resident_memory_bytes gauge\n"
                           "process_resident_memory_bytes %lld\n",
                           rss * (long long)page);
            metrics_printf(buf, len, cap,
                           "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                           "# TYPE process_virtual_memory_bytes gauge\n"
                           "process_virtual_memory_bytes %llu\n",
                           vsize);
        }
    }
    if ((d = opendir("/proc/self/fd"))) {
        long n = 0;
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') n++;
        closedir(d);
        metrics_printf(buf, len, cap,
                       "# HELP process_open_fds Number of open file descriptors.\n"
                       "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n",
                       n - 1); /* opendir's own */
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        metrics_printf(buf, len, cap,
                       "# HELP process_max_fds Maximum number of open file descriptors.\n"
                       "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n",
                       (unsigned long long)rl.rlim_cur);
    metrics_printf(buf, len, cap,
                   "# HELP process_start_time_seconds Start time of the process since unix epoch "
                   "in seconds.\n# TYPE process_start_time_seconds gauge\n"
                   "process_start_time_seconds %.3f\n",
                   start_unix_s);
}
