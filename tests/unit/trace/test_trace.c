/* trace: W3C traceparent parsing and formatting, the samplers, the OTEL_* environment, and that
 * everything is a no-op while tracing is off. The exporter itself is tested end to end
 * (tests/e2e/tracing.test.js, with an OTLP receiver). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "trace/trace.h"

static void parses_and_formats_traceparent(void **state)
{
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    struct trace_ctx c = {0};
    char out[TRACE_PARENT_LEN + 1], tid[33];
    (void)state;
    assert_int_equal(trace_parse_traceparent(tp, strlen(tp), &c), 1);
    assert_int_equal(c.valid, 1);
    assert_int_equal(c.sampled, 1);
    assert_int_equal(c.trace_id[0], 0x4b);
    assert_int_equal(c.span_id[7], 0xb7);
    trace_format_traceparent(&c, out);
    assert_string_equal(out, tp);
    trace_id_hex(&c, tid);
    assert_string_equal(tid, "4bf92f3577b34da6a3ce929d0e0e4736");
    /* Surrounding whitespace is allowed; flags 00 = not sampled. */
    assert_int_equal(trace_parse_traceparent(
                         " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 ", 57, &c),
                     1);
    assert_int_equal(c.sampled, 0);
}

static void refuses_malformed_traceparent(void **state)
{
    static const char *const bad[] = {
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",       /* no flags */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    /* upper case */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",    /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    /* zero span id */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    /* version ff */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xx", /* v0 with extra */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
    };
    struct trace_ctx c = {0};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(trace_parse_traceparent(bad[i], strlen(bad[i]), &c), 0);
        assert_int_equal(c.valid, 0);
    }
    /* A later version may append fields after a dash. */
    assert_int_equal(trace_parse_traceparent(
                         "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-abc", 59, &c),
                     1);
}

static void samplers_decide(void **state)
{
    struct trace_config c = {.ratio = 1.0};
    struct trace_ctx sampled = {.valid = 1, .sampled = 1}, unsampled = {.valid = 1};
    uint8_t low[16] = {0}, high[16];
    int kept = 0;
    (void)state;
    memset(high, 0xff, sizeof(high));
    c.sampler = NULL; /* default: parentbased_always_on */
    assert_int_equal(trace_sample(&c, NULL, low), 1);
    assert_int_equal(trace_sample(&c, &unsampled, low), 0);
    assert_int_equal(trace_sample(&c, &sampled, low), 1);
    c.sampler = "always_off";
    assert_int_equal(trace_sample(&c, &sampled, low), 0);
    c.sampler = "always_on";
    assert_int_equal(trace_sample(&c, &unsampled, low), 1);
    c.sampler = "parentbased_always_off";
    assert_int_equal(trace_sample(&c, NULL, low), 0);
    assert_int_equal(trace_sample(&c, &sampled, low), 1);
    c.sampler = "traceidratio";
    c.ratio = 0.5;
    assert_int_equal(trace_sample(&c, NULL, low), 1);
    assert_int_equal(trace_sample(&c, NULL, high), 0);
    assert_int_equal(trace_sample(&c, &sampled, high), 0); /* not parent-based */
    c.ratio = 0.0;
    assert_int_equal(trace_sample(&c, NULL, low), 0);
    c.sampler = "parentbased_traceidratio";
    c.ratio = 0.25;
    assert_int_equal(trace_sample(&c, &sampled, high), 1);
    /* About a quarter of spread-out ids. */
    for (int i = 0; i < 1000; i++) {
        uint8_t id[16] = {0};
        uint64_t v = (uint64_t)i * 0x9e3779b97f4a7c15u;
        for (int k = 0; k < 8; k++)
            id[8 + k] = (uint8_t)(v >> (8 * (7 - k)));
        kept += trace_sample(&c, NULL, id);
    }
    assert_true(kept > 200 && kept < 300);
}

static void reads_the_environment(void **state)
{
    char *env1[] = {"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318/", "OTEL_SERVICE_NAME=svc",
                    "OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.1", NULL};
    char *env2[] = {"OTEL_EXPORTER_OTLP_ENDPOINT=http://a:1",
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://b:2/custom", NULL};
    char *env3[] = {"OTEL_TRACES_SAMPLER=sometimes", NULL};
    char *env4[] = {"OTEL_TRACES_SAMPLER_ARG=2", NULL};
    char *env5[] = {"OTEL_EXPORTER_OTLP_ENDPOINT=http://a:1", "OTEL_SDK_DISABLED=true", NULL};
    char *env6[] = {"OTEL_EXPORTER_OTLP_ENDPOINT=ftp://a:1", NULL};
    struct trace_config c;
    const char *err = NULL;
    (void)state;
    assert_int_equal(trace_config_env(&c, env1, "node-1", &err), 0);
    assert_string_equal(c.url, "http://127.0.0.1:4318/v1/traces");
    assert_string_equal(c.service_name, "svc");
    assert_string_equal(c.sampler, "traceidratio");
    assert_true(c.ratio > 0.09 && c.ratio < 0.11);
    assert_string_equal(c.instance_id, "node-1");
    assert_int_equal(trace_config_env(&c, env2, NULL, &err), 0);
    assert_string_equal(c.url, "http://b:2/custom");
    assert_string_equal(c.service_name, "chatd");
    assert_int_equal(trace_config_env(&c, env3, NULL, &err), -1);
    assert_non_null(err);
    assert_int_equal(trace_config_env(&c, env4, NULL, &err), -1);
    assert_int_equal(trace_config_env(&c, env5, NULL, &err), 0);
    assert_null(c.url);
    assert_int_equal(trace_config_env(&c, env6, NULL, &err), -1);
    assert_int_equal(trace_config_env(&c, NULL, NULL, &err), 0);
    assert_null(c.url);
}

static void off_costs_nothing(void **state)
{
    struct trace_config c = {0};
    (void)state;
    assert_int_equal(trace_init(&c), 0); /* no url: stays off */
    assert_int_equal(trace_enabled(), 0);
    assert_null(trace_span_start("x", TRACE_INTERNAL, NULL));
    trace_span_end(NULL);
    trace_shutdown();
}

static void spans_without_exporter_queue_and_drop(void **state)
{
    /* An endpoint nobody listens on: spans queue, the failed export is counted. */
    struct trace_config c = {.url = "http://127.0.0.1:9/v1/traces",
                             .service_name = "t",
                             .ratio = 1.0,
                             .queue_max = 4,
                             .batch_max = 4,
                             .delay_ms = 50};
    struct trace_ctx parent = {.valid = 1, .sampled = 0, .trace_id = {1}, .span_id = {2}};
    struct trace_stats st;
    struct trace_span *s, *child;
    (void)state;
    assert_int_equal(trace_init(&c), 0);
    assert_int_equal(trace_enabled(), 1);
    s = trace_span_start("root", TRACE_SERVER, NULL);
    assert_non_null(s);
    assert_int_equal(trace_span_ctx(s)->sampled, 1);
    child = trace_span_start("child", TRACE_INTERNAL, trace_span_ctx(s));
    assert_memory_equal(trace_span_ctx(child)->trace_id, trace_span_ctx(s)->trace_id, 16);
    trace_attr_str(child, "k\"ey", "v\xff\n", 3);
    trace_attr_int(child, "n", -5);
    trace_link(child, &parent);
    trace_span_error(child, "bad \"thing\"");
    trace_span_end(child);
    trace_span_end(s);
    s = trace_span_start("unsampled", TRACE_SERVER, &parent);
    assert_int_equal(trace_span_ctx(s)->sampled, 0);
    trace_span_end(s);
    /* Many more spans than the exporter can take in the time they are made (each of its
     * batches of 4 waits for a refused connection): some are dropped even when this thread is
     * descheduled now and then (20 spans were not enough on a loaded machine). */
    for (int i = 0; i < 2000; i++)
        trace_span_end(trace_span_start("many", TRACE_INTERNAL, NULL));
    trace_shutdown();
    trace_stats(&st);
    assert_int_equal(st.started, 2003);
    assert_true(st.queued + st.dropped == 2002);
    assert_true(st.dropped > 0);
    assert_int_equal(st.exported, 0);
    assert_int_equal(st.export_failed, st.queued);
    assert_int_equal(trace_enabled(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_and_formats_traceparent),
        cmocka_unit_test(refuses_malformed_traceparent),
        cmocka_unit_test(samplers_decide),
        cmocka_unit_test(reads_the_environment),
        cmocka_unit_test(off_costs_nothing),
        cmocka_unit_test(spans_without_exporter_queue_and_drop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
