/* trace.h - OpenTelemetry spans exported over OTLP/HTTP (JSON) from a background thread.
 *
 * Off unless an endpoint is configured (OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): then every call site costs one load and one branch
 * (trace_enabled()) and nothing else. On: trace_span_start makes a span (heap, ~1 KiB) whether
 * or not the sampler keeps it, so its trace id can be logged and its children inherit the
 * decision; trace_span_end of a sampled span formats its OTLP JSON and queues it for the exporter
 * thread (a bounded queue: when full the span is dropped and counted; an I/O thread never waits
 * for the network, only for a mutex held while a pointer is appended). Unsampled spans are freed.
 *
 * The exporter POSTs batches ({"resourceSpans":[...]}) to <endpoint>/v1/traces with libcurl every
 * OTEL_BSP_SCHEDULE_DELAY ms (default 1000) or as soon as OTEL_BSP_MAX_EXPORT_BATCH_SIZE spans
 * (512) wait; OTEL_BSP_MAX_QUEUE_SIZE (2048) bounds the queue. Sampler: OTEL_TRACES_SAMPLER
 * (always_on, always_off, traceidratio, parentbased_always_on [default], parentbased_always_off,
 * parentbased_traceidratio) with OTEL_TRACES_SAMPLER_ARG (the ratio, default 1.0).
 * OTEL_SERVICE_NAME (default "chatd") names the resource.
 *
 * Spans are not thread-bound: one may start on one thread and end on another, but only one
 * thread may use a span at a time.
 */
#ifndef CD_TRACE_H
#define CD_TRACE_H

#include <stddef.h>
#include <stdint.h>

/* A span's identity as W3C trace context carries it. valid 0 = no context. */
struct trace_ctx {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t sampled; /* the W3C "sampled" flag */
    uint8_t valid;
};

enum trace_kind {
    TRACE_INTERNAL = 1,
    TRACE_SERVER = 2,
    TRACE_CLIENT = 3,
    TRACE_PRODUCER = 4,
    TRACE_CONSUMER = 5,
};

struct trace_span; /* opaque */

/* The one branch of the hot path. Read-only after trace_init. */
extern int trace__on;
static inline int trace_enabled(void)
{
    return trace__on;
}

struct trace_config {
    const char *url;          /* the traces URL (…/v1/traces); NULL or "" = tracing off */
    const char *service_name; /* resource service.name */
    const char *instance_id;  /* resource service.instance.id (the node id), or NULL */
    const char *sampler;      /* OTEL_TRACES_SAMPLER value, NULL = parentbased_always_on */
    double ratio;             /* traceidratio's ratio, 0..1 */
    uint32_t queue_max;       /* spans waiting for export, at most */
    uint32_t batch_max;       /* spans per POST, at most */
    uint32_t delay_ms;        /* most time a span waits before its batch leaves */
};

/* Fill c from the environment envp (NULL-terminated "NAME=value"; NULL = none) following the
 * OpenTelemetry variables above; node_id becomes service.instance.id. The strings point into
 * envp or static storage. Returns 0, or -1 after writing a reason to *err (an unknown sampler, a
 * ratio outside 0..1): the caller refuses to start. */
int trace_config_env(struct trace_config *c, char **envp, const char *node_id, const char **err);

/* Start tracing with c (c->url empty: stays off, returns 0). Starts the exporter thread and
 * initializes libcurl. Returns 0, or -1 when the exporter cannot start (then tracing is off).
 * Call once, before any thread uses trace_*. */
int trace_init(const struct trace_config *c);
/* Export what is queued (one last POST, up to a few seconds), stop the thread, turn tracing off.
 * Call after every thread that starts spans stopped. */
void trace_shutdown(void);

/* A new span named name (copied, cut at 63 bytes) of kind, child of parent (NULL or !valid: a
 * new trace, sampled by the root sampler; else the parent-based sampler decides). Its start is
 * now. Returns NULL when tracing is off. Never fails otherwise (aborts on OOM). */
struct trace_span *trace_span_start(const char *name, enum trace_kind kind,
                                    const struct trace_ctx *parent);
/* As trace_span_start with an explicit start time (unix ns). */
struct trace_span *trace_span_start_at(const char *name, enum trace_kind kind,
                                       const struct trace_ctx *parent, uint64_t start_ns);
/* The span's context (for children, links, logs and traceparent). s must not be NULL. */
const struct trace_ctx *trace_span_ctx(const struct trace_span *s);
/* Rename s (e.g. once the route is known). */
void trace_span_rename(struct trace_span *s, const char *name);
/* Attributes: at most about 1 KiB of them per span (more are dropped and counted in the span's
 * droppedAttributesCount). Strings are copied and JSON-escaped. */
void trace_attr_str(struct trace_span *s, const char *key, const char *val, size_t len);
void trace_attr_int(struct trace_span *s, const char *key, int64_t val);
/* Link s to another span (at most TRACE_MAX_LINKS; more are counted as dropped). */
#define TRACE_MAX_LINKS 64
void trace_link(struct trace_span *s, const struct trace_ctx *to);
/* Mark s failed (status ERROR) with a message. */
void trace_span_error(struct trace_span *s, const char *message);
/* End s now: queue it for export if sampled, and free it. NULL is ignored. */
void trace_span_end(struct trace_span *s);

/* The context the calling thread works for, or NULL: the writer sets its group commit's while
 * it runs the jobs' done() and the fanout, which parent their spans on it. Thread-local. Returns
 * the previous one (to restore). */
const struct trace_ctx *trace_current_set(const struct trace_ctx *c);
const struct trace_ctx *trace_current(void);

/* Parse a W3C traceparent header value ("00-<32 hex>-<16 hex>-<2 hex>"; other versions are read
 * by the same first fields, per the spec). Returns 1 and fills out (valid = 1), or 0 when the
 * value is malformed or has an all-zero id (then out is untouched). */
int trace_parse_traceparent(const char *s, size_t n, struct trace_ctx *out);
/* "00-<trace>-<span>-<flags>": 55 characters and a NUL. */
#define TRACE_PARENT_LEN 55
void trace_format_traceparent(const struct trace_ctx *c, char out[TRACE_PARENT_LEN + 1]);
/* 32 hex digits of c's trace id and a NUL. */
void trace_id_hex(const struct trace_ctx *c, char out[33]);

struct trace_stats {
    uint64_t started;       /* spans started */
    uint64_t queued;        /* sampled spans queued for export */
    uint64_t dropped;       /* sampled spans dropped: queue full */
    uint64_t exported;      /* spans in batches the endpoint accepted (2xx) */
    uint64_t export_failed; /* spans in batches that failed (network, non-2xx) */
};
/* Any thread; a snapshot. */
void trace_stats(struct trace_stats *out);

/* The sampler alone, for tests: 1 when a span with trace_id (and parent, or NULL) is sampled
 * under the configuration c. */
int trace_sample(const struct trace_config *c, const struct trace_ctx *parent,
                 const uint8_t trace_id[16]);

#endif
