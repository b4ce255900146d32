/* trace.c - spans, the sampler, W3C trace context and the OTLP/HTTP JSON exporter thread. */
#include "trace/trace.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/rbuf.h"

int trace__on;

#define NAME_MAX_LEN 63
#define ATTRS_MAX    1024 /* bytes of one span's attribute JSON */
#define SPAN_JSON_MAX                                                                              \
    (ATTRS_MAX + TRACE_MAX_LINKS * 80 + 2048) /* a span's JSON, links and status included */

struct trace_span {
    struct trace_ctx ctx;
    uint8_t parent_id[8];
    uint8_t has_parent, kind, error;
    char name[NAME_MAX_LEN + 1];
    uint64_t start_ns;
    char attrs[ATTRS_MAX];
    uint32_t attrs_len, attrs_dropped;
    struct trace_ctx *links; /* malloc'ed on the first link */
    uint32_t nlinks, links_dropped;
    char status_msg[128];
};

enum sampler { S_ON, S_OFF, S_RATIO, S_PB_ON, S_PB_OFF, S_PB_RATIO };

static const struct {
    const char *name;
    enum sampler s;
} samplers[] = {
    {"always_on", S_ON},
    {"always_off", S_OFF},
    {"traceidratio", S_RATIO},
    {"parentbased_always_on", S_PB_ON},
    {"parentbased_always_off", S_PB_OFF},
    {"parentbased_traceidratio", S_PB_RATIO},
};

static struct {
    struct trace_config cfg; /* strings below are copies */
    char *url, *service, *instance;
    enum sampler sampler;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char **q; /* span JSON texts, malloc'ed */
    uint32_t n;
    int stop;
    pthread_t th;
    _Atomic uint64_t started, queued, dropped, exported, export_failed;
} ex = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static __thread const struct trace_ctx *tl_current;

const struct trace_ctx *trace_current_set(const struct trace_ctx *c)
{
    const struct trace_ctx *old = tl_current;
    tl_current = c;
    return old;
}

const struct trace_ctx *trace_current(void)
{
    return tl_current;
}

/* ---- ids ---- */

static uint64_t rand64(void)
{
    static __thread uint64_t state;
    uint64_t z;
    if (!state) {
        if (getrandom(&state, sizeof(state), 0) != sizeof(state))
            state = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
        state |= 1;
    }
    z = (state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void rand_bytes(uint8_t *p, size_t n)
{
    while (n) {
        uint64_t r = rand64();
        size_t k = n < 8 ? n : 8;
        memcpy(p, &r, k);
        p += k;
        n -= k;
    }
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static void hex(char *out, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < 2 * n; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0) return 0; /* W3C: lower-case hex only */
        if (i % 2 == 0)
            out[i / 2] = (uint8_t)(v << 4);
        else
            out[i / 2] |= (uint8_t)v;
    }
    return 1;
}

int trace_parse_traceparent(const char *s, size_t n, struct trace_ctx *out)
{
    struct trace_ctx c = {0};
    uint8_t ver, flags;

    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n < TRACE_PARENT_LEN || s[2] != '-' || s[35] != '-' || s[52] != '-') return 0;
    if (!unhex(s, &ver, 1) || ver == 0xff) return 0;
    if (ver == 0 && n != TRACE_PARENT_LEN) return 0;
    if (ver != 0 && n > TRACE_PARENT_LEN && s[TRACE_PARENT_LEN] != '-') return 0;
    if (!unhex(s + 3, c.trace_id, 16) || !unhex(s + 36, c.span_id, 8) || !unhex(s + 53, &flags, 1))
        return 0;
    if (all_zero(c.trace_id, 16) || all_zero(c.span_id, 8)) return 0;
    c.sampled = flags & 1;
    c.valid = 1;
    *out = c;
    return 1;
}

void trace_format_traceparent(const struct trace_ctx *c, char out[TRACE_PARENT_LEN + 1])
{
    char t[33], sp[17];
    hex(t, c->trace_id, 16);
    hex(sp, c->span_id, 8);
    snprintf(out, TRACE_PARENT_LEN + 1, "00-%s-%s-%02x", t, sp, c->sampled ? 1 : 0);
}

void trace_id_hex(const struct trace_ctx *c, char out[33])
{
    hex(out, c->trace_id, 16);
}

/* ---- sampler ---- */

static int parse_sampler(const char *name, enum sampler *out)
{
    for (size_t i = 0; i < sizeof(samplers) / sizeof(samplers[0]); i++)
        if (!strcasecmp(name, samplers[i].name)) {
            *out = samplers[i].s;
            return 1;
        }
    return 0;
}

static int sample(enum sampler s, double ratio, const struct trace_ctx *parent,
                  const uint8_t trace_id[16])
{
    uint64_t v = 0, threshold;
    int has_parent = parent && parent->valid;

    switch (s) {
    case S_ON:
        return 1;
    case S_OFF:
        return 0;
    case S_PB_ON:
        return has_parent ? parent->sampled : 1;
    case S_PB_OFF:
        return has_parent ? parent->sampled : 0;
    case S_PB_RATIO:
        if (has_parent) return parent->sampled;
        break;
    case S_RATIO:
        break;
    }
    /* The trace id's last 8 bytes as a number below ratio x 2^64: every node decides alike. */
    if (ratio >= 1.0) return 1;
    if (ratio <= 0.0) return 0;
    for (int i = 8; i < 16; i++)
        v = v << 8 | trace_id[i];
    threshold = (uint64_t)(ratio * 18446744073709551616.0);
    return v < threshold;
}

int trace_sample(const struct trace_config *c, const struct trace_ctx *parent,
                 const uint8_t trace_id[16])
{
    enum sampler s = S_PB_ON;
    if (c->sampler && *c->sampler) parse_sampler(c->sampler, &s);
    return sample(s, c->ratio, parent, trace_id);
}

/* ---- configuration ---- */

static const char *env_get(char **envp, const char *name)
{
    size_t n = strlen(name);
    for (; envp && *envp; envp++)
        if (!strncmp(*envp, name, n) && (*envp)[n] == '=') return *envp + n + 1;
    return NULL;
}

static uint32_t env_u32(char **envp, const char *name, uint32_t def, uint32_t max)
{
    const char *v = env_get(envp, name);
    char *end;
    unsigned long x;
    if (!v || !*v) return def;
    x = strtoul(v, &end, 10);
    if (*end || x == 0) return def;
    return x > max ? max : (uint32_t)x;
}

int trace_config_env(struct trace_config *c, char **envp, const char *node_id, const char **err)
{
    static char url[2048];
    const char *ep = env_get(envp, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    const char *base = env_get(envp, "OTEL_EXPORTER_OTLP_ENDPOINT");
    const char *v;
    enum sampler s;

    memset(c, 0, sizeof(*c));
    c->ratio = 1.0;
    c->service_name = env_get(envp, "OTEL_SERVICE_NAME");
    if (!c->service_name || !*c->service_name) c->service_name = "chatd";
    c->instance_id = node_id;
    c->queue_max = env_u32(envp, "OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1u << 20);
    c->batch_max = env_u32(envp, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1u << 16);
    if (c->batch_max > c->queue_max) c->batch_max = c->queue_max;
    c->delay_ms = env_u32(envp, "OTEL_BSP_SCHEDULE_DELAY", 1000, 3600000);
    c->sampler = env_get(envp, "OTEL_TRACES_SAMPLER");
    if (c->sampler && *c->sampler && !parse_sampler(c->sampler, &s)) {
        *err = "OTEL_TRACES_SAMPLER: expected always_on, always_off, traceidratio, "
               "parentbased_always_on, parentbased_always_off or parentbased_traceidratio";
        return -1;
    }
    if ((v = env_get(envp, "OTEL_TRACES_SAMPLER_ARG")) && *v) {
        char *end;
        double r = strtod(v, &end);
        if (*end || !(r >= 0.0 && r <= 1.0)) {
            *err = "OTEL_TRACES_SAMPLER_ARG: expected a ratio from 0 to 1";
            return -1;
        }
        c->ratio = r;
    }
    if (((v = env_get(envp, "OTEL_SDK_DISABLED")) && !strcasecmp(v, "true")) ||
        ((v = env_get(envp, "OTEL_TRACES_EXPORTER")) && !strcasecmp(v, "none")))
        return 0;
    if (ep && *ep) {
        snprintf(url, sizeof(url), "%s", ep);
    } else if (base && *base) {
        size_t n = strlen(base);
        while (n && base[n - 1] == '/')
            n--;
        snprintf(url, sizeof(url), "%.*s/v1/traces", (int)(n < 2000 ? n : 2000), base);
    } else {
        return 0;
    }
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
        *err = "OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:// or https:// URL";
        return -1;
    }
    c->url = url;
    return 0;
}

/* ---- spans ---- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct trace_span *trace_span_start_at(const char *name, enum trace_kind kind,
                                       const struct trace_ctx *parent, uint64_t start_ns)
{
    struct trace_span *s;

    if (!trace__on) return NULL;
    s = xmalloc(sizeof(*s));
    memset(s, 0, offsetof(struct trace_span, attrs));
    s->attrs_len = s->attrs_dropped = s->nlinks = s->links_dropped = 0;
    s->links = NULL;
    s->status_msg[0] = '\0';
    if (parent && parent->valid) {
        memcpy(s->ctx.trace_id, parent->trace_id, 16);
        memcpy(s->parent_id, parent->span_id, 8);
        s->has_parent = 1;
    } else {
        do
            rand_bytes(s->ctx.trace_id, 16);
        while (all_zero(s->ctx.trace_id, 16));
    }
    do
        rand_bytes(s->ctx.span_id, 8);
    while (all_zero(s->ctx.span_id, 8));
    s->ctx.valid = 1;
    s->ctx.sampled = (uint8_t)sample(ex.sampler, ex.cfg.ratio, parent, s->ctx.trace_id);
    s->kind = (uint8_t)kind;
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->start_ns = start_ns;
    atomic_fetch_add_explicit(&ex.started, 1, memory_order_relaxed);
    return s;
}

struct trace_span *trace_span_start(const char *name, enum trace_kind kind,
                                    const struct trace_ctx *parent)
{
    if (!trace__on) return NULL;
    return trace_span_start_at(name, kind, parent, now_ns());
}

const struct trace_ctx *trace_span_ctx(const struct trace_span *s)
{
    return &s->ctx;
}

void trace_span_rename(struct trace_span *s, const char *name)
{
    snprintf(s->name, sizeof(s->name), "%s", name);
}

/* Bytes of the valid UTF-8 sequence at u[0..n), or 0. */
static size_t utf8_len(const unsigned char *u, size_t n)
{
    size_t k = u[0] >= 0xc2 && u[0] <= 0xdf   ? 2
               : u[0] >= 0xe0 && u[0] <= 0xef ? 3
               : u[0] >= 0xf0 && u[0] <= 0xf4 ? 4
                                              : 0;
    if (!k || k > n) return 0;
    for (size_t i = 1; i < k; i++)
        if ((u[i] & 0xc0) != 0x80) return 0;
    return k;
}

/* s[0..n) as the contents of a JSON string into out (cap bytes); invalid UTF-8 becomes '?'.
 * Returns the bytes written, or (size_t)-1 when it does not fit. */
static size_t escape(char *out, size_t cap, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        char e[8];
        size_t m = 0, adv = 1;
        if (u[i] == '"' || u[i] == '\\') {
            e[0] = '\\';
            e[1] = (char)u[i];
            m = 2;
        } else if (u[i] < 0x20 || u[i] == 0x7f) {
            m = (size_t)snprintf(e, sizeof(e), "\\u%04x", u[i]);
        } else if (u[i] < 0x80) {
            e[0] = (char)u[i];
            m = 1;
        } else if ((adv = utf8_len(u + i, n - i)) != 0) {
            memcpy(e, u + i, adv);
            m = adv;
        } else {
            e[0] = '?';
            m = 1;
            adv = 1;
        }
        if (k + m > cap) return (size_t)-1;
        memcpy(out + k, e, m);
        k += m;
        i += adv;
    }
    return k;
}

/* Append one attribute: {"key":"<key>","value":{<typed>}} where the value text is prebuilt. */
static void attr_add(struct trace_span *s, const char *key, const char *vtype, const char *val,
                     size_t vlen, int quote)
{
    char buf[ATTRS_MAX];
    size_t k = 0, e;
    int n;

    n = snprintf(buf, sizeof(buf), "%s{\"key\":\"", s->attrs_len ? "," : "");
    k = (size_t)n;
    if ((e = escape(buf + k, sizeof(buf) - k, key, strlen(key))) == (size_t)-1) goto drop;
    k += e;
    n = snprintf(buf + k, sizeof(buf) - k, "\",\"value\":{\"%s\":%s", vtype, quote ? "\"" : "");
    if (n < 0 || (size_t)n >= sizeof(buf) - k) goto drop;
    k += (size_t)n;
    if ((e = escape(buf + k, sizeof(buf) - k, val, vlen)) == (size_t)-1) goto drop;
    k += e;
    if (k + 4 > sizeof(buf)) goto drop;
    if (quote) buf[k++] = '"';
    buf[k++] = '}';
    buf[k++] = '}';
    if (s->attrs_len + k > sizeof(s->attrs)) goto drop;
    memcpy(s->attrs + s->attrs_len, buf, k);
    s->attrs_len += (uint32_t)k;
    return;
drop:
    s->attrs_dropped++;
}

void trace_attr_str(struct trace_span *s, const char *key, const char *val, size_t len)
{
    attr_add(s, key, "stringValue", val ? val : "", val ? len : 0, 1);
}

void trace_attr_int(struct trace_span *s, const char *key, int64_t val)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%lld", (long long)val);
    attr_add(s, key, "intValue", num, (size_t)n, 1); /* int64 is a JSON string in OTLP/JSON */
}

void trace_link(struct trace_span *s, const struct trace_ctx *to)
{
    if (!to || !to->valid) return;
    if (s->nlinks >= TRACE_MAX_LINKS) {
        s->links_dropped++;
        return;
    }
    if (!s->links) s->links = xmalloc(TRACE_MAX_LINKS * sizeof(*s->links));
    s->links[s->nlinks++] = *to;
}

void trace_span_error(struct trace_span *s, const char *message)
{
    size_t k = escape(s->status_msg, sizeof(s->status_msg) - 1, message, strlen(message));
    s->error = 1;
    s->status_msg[k == (size_t)-1 ? 0 : k] = '\0';
}

/* The span's OTLP JSON object (malloc'ed). */
static char *span_json(const struct trace_span *s, uint64_t end_ns)
{
    char *out = xmalloc(SPAN_JSON_MAX), tid[33], sid[17], pid[17];
    size_t k = 0, cap = SPAN_JSON_MAX;
    char name[NAME_MAX_LEN * 6 + 1];
    size_t nl = escape(name, sizeof(name) - 1, s->name, strlen(s->name));

    name[nl == (size_t)-1 ? 0 : nl] = '\0';
    hex(tid, s->ctx.trace_id, 16);
    hex(sid, s->ctx.span_id, 8);
    hex(pid, s->parent_id, 8);
    k += (size_t)snprintf(out + k, cap - k, "{\"traceId\":\"%s\",\"spanId\":\"%s\",", tid, sid);
    if (s->has_parent) k += (size_t)snprintf(out + k, cap - k, "\"parentSpanId\":\"%s\",", pid);
    k += (size_t)snprintf(out + k, cap - k,
                          "\"name\":\"%s\",\"kind\":%d,\"startTimeUnixNano\":\"%llu\","
                          "\"endTimeUnixNano\":\"%llu\",\"attributes\":[",
                          name, s->kind, (unsigned long long)s->start_ns,
                          (unsigned long long)end_ns);
    memcpy(out + k, s->attrs, s->attrs_len);
    k += s->attrs_len;
    k += (size_t)snprintf(out + k, cap - k, "],\"droppedAttributesCount\":%u", s->attrs_dropped);
    if (s->nlinks) {
        k += (size_t)snprintf(out + k, cap - k, ",\"links\":[");
        for (uint32_t i = 0; i < s->nlinks; i++) {
            hex(tid, s->links[i].trace_id, 16);
            hex(sid, s->links[i].span_id, 8);
            k += (size_t)snprintf(out + k, cap - k, "%s{\"traceId\":\"%s\",\"spanId\":\"%s\"}",
                                  i ? "," : "", tid, sid);
        }
        k += (size_t)snprintf(out + k, cap - k, "],\"droppedLinksCount\":%u", s->links_dropped);
    }
    if (s->error)
        k += (size_t)snprintf(out + k, cap - k, ",\"status\":{\"code\":2,\"message\":\"%s\"}",
                              s->status_msg);
    snprintf(out + k, cap - k, "}");
    return out;
}

static void enqueue(char *json)
{
    pthread_mutex_lock(&ex.mu);
    if (ex.stop || ex.n >= ex.cfg.queue_max) {
        pthread_mutex_unlock(&ex.mu);
        atomic_fetch_add_explicit(&ex.dropped, 1, memory_order_relaxed);
        free(json);
        return;
    }
    ex.q[ex.n++] = json;
    if (ex.n == ex.cfg.batch_max) pthread_cond_signal(&ex.cv);
    pthread_mutex_unlock(&ex.mu);
    atomic_fetch_add_explicit(&ex.queued, 1, memory_order_relaxed);
}

void trace_span_end(struct trace_span *s)
{
    if (!s) return;
    if (s->ctx.sampled && trace__on) enqueue(span_json(s, now_ns()));
    free(s->links);
    free(s);
}

void trace_stats(struct trace_stats *out)
{
    out->started = atomic_load(&ex.started);
    out->queued = atomic_load(&ex.queued);
    out->dropped = atomic_load(&ex.dropped);
    out->exported = atomic_load(&ex.exported);
    out->export_failed = atomic_load(&ex.export_failed);
}

/* ---- exporter ---- */

static size_t discard_body(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static void resource_json(char *out, size_t cap)
{
    char svc[512], inst[512];
    size_t a = escape(svc, sizeof(svc) - 1, ex.service, strlen(ex.service));
    size_t b = ex.instance ? escape(inst, sizeof(inst) - 1, ex.instance, strlen(ex.instance)) : 0;
    svc[a == (size_t)-1 ? 0 : a] = '\0';
    inst[b == (size_t)-1 ? 0 : b] = '\0';
    snprintf(out, cap,
             "{\"resourceSpans\":[{\"resource\":{\"attributes\":["
             "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"%s\"}},"
             "{\"key\":\"service.version\",\"value\":{\"stringValue\":\"%s\"}},"
             "{\"key\":\"service.instance.id\",\"value\":{\"stringValue\":\"%s\"}},"
             "{\"key\":\"telemetry.sdk.language\",\"value\":{\"stringValue\":\"c\"}}]},"
             "\"scopeSpans\":[{\"scope\":{\"name\":\"chatd\",\"version\":\"%s\"},\"spans\":[",
             svc, CHATD_VERSION, inst, CHATD_VERSION);
}

static void post_batch(CURL *curl, struct curl_slist *hdrs, char **spans, uint32_t n)
{
    char head[2048];
    size_t len, total;
    char *body;
    long code = 0;
    CURLcode rc;
    static int failing;

    resource_json(head, sizeof(head));
    total = strlen(head) + 8;
    for (uint32_t i = 0; i < n; i++)
        total += strlen(spans[i]) + 1;
    body = xmalloc(total);
    len = strlen(head);
    memcpy(body, head, len);
    for (uint32_t i = 0; i < n; i++) {
        size_t l = strlen(spans[i]);
        if (i) body[len++] = ',';
        memcpy(body + len, spans[i], l);
        len += l;
        free(spans[i]);
    }
    memcpy(body + len, "]}]}]}", 6);
    len += 6;
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)len);
    rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    if (rc == CURLE_OK && code >= 200 && code < 300) {
        atomic_fetch_add(&ex.exported, n);
        if (failing) log_info("trace export recovered", "\"url\":\"%s\"", ex.url);
        failing = 0;
    } else {
        atomic_fetch_add(&ex.export_failed, n);
        if (!failing)
            log_warn("trace export failed", "\"url\":\"%s\",\"error\":\"%s\",\"http_status\":%ld",
                     ex.url, rc == CURLE_OK ? "" : curl_easy_strerror(rc), code);
        failing = 1;
    }
    (void)hdrs;
    free(body);
}

static void *exporter_main(void *arg)
{
    CURL *curl = curl_easy_init();
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    char **batch = xmalloc(ex.cfg.batch_max * sizeof(*batch));
    (void)arg;

    curl_easy_setopt(curl, CURLOPT_URL, ex.url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "chatd/" CHATD_VERSION);
    for (;;) {
        uint32_t n;
        int stop;
        pthread_mutex_lock(&ex.mu);
        if (!ex.stop && ex.n < ex.cfg.batch_max) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += ex.cfg.delay_ms / 1000;
            until.tv_nsec += (long)(ex.cfg.delay_ms % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&ex.cv, &ex.mu, &until);
        }
        n = ex.n < ex.cfg.batch_max ? ex.n : ex.cfg.batch_max;
        memcpy(batch, ex.q, n * sizeof(*batch));
        memmove(ex.q, ex.q + n, (ex.n - n) * sizeof(*ex.q));
        ex.n -= n;
        stop = ex.stop && ex.n == 0;
        pthread_mutex_unlock(&ex.mu);
        if (n) post_batch(curl, hdrs, batch, n);
        if (stop) break;
    }
    free(batch);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(curl);
    return NULL;
}

int trace_init(const struct trace_config *c)
{
    if (!c->url || !*c->url) return 0;
    ex.cfg = *c;
    if (!ex.cfg.queue_max) ex.cfg.queue_max = 2048;
    if (!ex.cfg.batch_max || ex.cfg.batch_max > ex.cfg.queue_max) ex.cfg.batch_max = 512;
    if (ex.cfg.batch_max > ex.cfg.queue_max) ex.cfg.batch_max = ex.cfg.queue_max;
    if (!ex.cfg.delay_ms) ex.cfg.delay_ms = 1000;
    ex.sampler = S_PB_ON;
    if (c->sampler && *c->sampler) parse_sampler(c->sampler, &ex.sampler);
    ex.url = xstrndup(c->url, strlen(c->url));
    ex.service = xstrndup(c->service_name ? c->service_name : "chatd",
                          strlen(c->service_name ? c->service_name : "chatd"));
    ex.instance = c->instance_id ? xstrndup(c->instance_id, strlen(c->instance_id)) : NULL;
    ex.q = xmalloc(ex.cfg.queue_max * sizeof(*ex.q));
    ex.n = 0;
    ex.stop = 0;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
        pthread_create(&ex.th, NULL, exporter_main, NULL) != 0) {
        log_error("cannot start the trace exporter", "\"url\":\"%s\"", ex.url);
        free(ex.q);
        free(ex.url);
        free(ex.service);
        free(ex.instance);
        ex.q = NULL;
        return -1;
    }
    trace__on = 1;
    log_info("tracing on", "\"url\":\"%s\",\"sampler\":\"%s\",\"ratio\":%g,\"service\":\"%s\"",
             ex.url, samplers[ex.sampler].name, ex.cfg.ratio, ex.service);
    return 0;
}

void trace_shutdown(void)
{
    if (!trace__on) return;
    pthread_mutex_lock(&ex.mu);
    ex.stop = 1;
    pthread_cond_signal(&ex.cv);
    pthread_mutex_unlock(&ex.mu);
    pthread_join(ex.th, NULL);
    trace__on = 0;
    curl_global_cleanup();
    free(ex.q);
    free(ex.url);
    free(ex.service);
    free(ex.instance);
    ex.q = NULL;
}
