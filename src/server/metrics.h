/* metrics.h - server-level counters and the Prometheus text rendering of /metrics.
 * Counters are relaxed atomics: exact under concurrency, no locks on the request path. */
#ifndef CD_METRICS_H
#define CD_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_ROUTES 96
/* Status codes tracked per route; anything else is counted as "other". */
/* Not left to clang-format: it is not idempotent on this list. */
/* clang-format off */
#define METRICS_STATUSES(X)                                                                        \
    X(101) X(200) X(201) X(204) X(400) X(401) X(403) X(404) X(405) X(408) X(409) X(413) X(415)    \
    X(426) X(429) X(431) X(500) X(503)
/* clang-format on */
#define METRICS_NSTATUS  19 /* the list above + other */
#define METRICS_NBUCKETS 14

struct metrics_route {
    _Atomic uint64_t by_status[METRICS_NSTATUS];
    _Atomic uint64_t lat_bucket[METRICS_NBUCKETS]; /* per bucket; summed when rendered */
    _Atomic uint64_t lat_sum_us, lat_count;
};

enum metrics_auth_fail { AUTH_FAIL_TOKEN, AUTH_FAIL_CREDENTIALS, AUTH_FAIL_REFRESH, AUTH_FAIL_N };

struct metrics {
    struct metrics_route routes[METRICS_MAX_ROUTES];
    _Atomic uint64_t auth_failures[AUTH_FAIL_N];
    _Atomic uint64_t rate_limited;
    _Atomic uint64_t messages_stored; /* committed messages, resends of a stored one excluded */
};

/* Record one HTTP request of `route` that ended with `status` after `us` microseconds. */
void metrics_http(struct metrics *m, int route, int status, uint64_t us);
void metrics_auth_failure(struct metrics *m, enum metrics_auth_fail why);

/* Append the Prometheus text for m to *buf (realloc'ed; len and cap updated). route_names has
 * nroutes entries. */
void metrics_render_http(const struct metrics *m, const char *const *route_names, int nroutes,
                         char **buf, size_t *len, size_t *cap);
struct hist;
/* Append a histogram in seconds: name{labels,le=...}. labels: "" or 'k="v"'. */
void metrics_render_hist(char **buf, size_t *len, size_t *cap, const char *name, const char *help,
                         const char *labels, const struct hist *h);
/* Process metrics from /proc/self (process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds, process_start_time_seconds):
 * start_unix_s is when the process started. Linux; series it cannot read are left out. */
void metrics_render_process(char **buf, size_t *len, size_t *cap, double start_unix_s);
/* printf-append helper used by the renderers. */
void metrics_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Outbox consumers (position, head, lag, batches), relay and exporter counters: appended when
 * they run in this process (metrics_outbox.c). */
void metrics_render_outbox(char **buf, size_t *len, size_t *cap);

#endif
