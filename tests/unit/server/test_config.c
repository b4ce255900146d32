/* Configuration precedence: flag > environment > config file > default. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "roles/roles.h"
#include "server/config.h"

static FILE *devnull;

static int load(struct cfg *c, int argc, char **argv, char **envp)
{
    return cfg_load(c, argc, argv, envp, devnull, devnull);
}

static char *write_file(const char *text)
{
    static char path[64];
    FILE *f;
    snprintf(path, sizeof(path), "/tmp/chatd-cfg-test-%d.conf", (int)getpid());
    f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void defaults(void **state)
{
    struct cfg c;
    char *argv[] = {"chatd", NULL};
    (void)state;
    assert_int_equal(load(&c, 1, argv, NULL), CFG_OK);
    assert_string_equal(c.listen, "0.0.0.0:8080");
    assert_int_equal(c.msg_rate, 20);
    assert_int_equal(c.rate_limits, 1);
    assert_int_equal(c.pwhash_mem_kib, 65536);
    cfg_free(&c);
}

static void env_beats_default_flag_beats_env(void **state)
{
    struct cfg c;
    char *env[] = {"CHATD_LISTEN=127.0.0.1:9000", "CHATD_MSG_RATE=7", "OTHER=1", NULL};
    char *argv1[] = {"chatd", NULL};
    char *argv2[] = {"chatd", "--listen", "127.0.0.1:9001", "--msg-rate=9", NULL};
    (void)state;
    assert_int_equal(load(&c, 1, argv1, env), CFG_OK);
    assert_string_equal(c.listen, "127.0.0.1:9000");
    assert_int_equal(c.msg_rate, 7);
    cfg_free(&c);
    assert_int_equal(load(&c, 4, argv2, env), CFG_OK);
    assert_string_equal(c.listen, "127.0.0.1:9001");
    assert_int_equal(c.msg_rate, 9);
    cfg_free(&c);
}

static void file_is_lowest_but_above_default(void **state)
{
    struct cfg c;
    char *path = write_file("# comment\nlisten = 127.0.0.1:7000\nmsg-rate = 3\n"
                            "data_dir = \"/tmp/x y\"\nrate-limits = off\n");
    char *env[] = {"CHATD_MSG_RATE=4", NULL};
    char *argv[] = {"chatd", "--config", path, NULL};
    char *argv_flag[] = {"chatd", "--config", path, "--listen", "127.0.0.1:7001", NULL};
    (void)state;
    assert_int_equal(load(&c, 3, argv, env), CFG_OK);
    assert_string_equal(c.listen, "127.0.0.1:7000"); /* file beats default */
    assert_int_equal(c.msg_rate, 4);                 /* env beats file */
    assert_string_equal(c.data_dir, "/tmp/x y");
    assert_int_equal(c.rate_limits, 0);
    cfg_free(&c);
    assert_int_equal(load(&c, 5, argv_flag, env), CFG_OK);
    assert_string_equal(c.listen, "127.0.0.1:7001"); /* flag beats file */
    cfg_free(&c);
    unlink(path);
}

static void config_file_from_env(void **state)
{
    struct cfg c;
    char *path = write_file("threads = 3\n");
    char envvar[128];
    char *env[] = {envvar, NULL};
    char *argv[] = {"chatd", NULL};
    (void)state;
    snprintf(envvar, sizeof(envvar), "CHATD_CONFIG=%s", path);
    assert_int_equal(load(&c, 1, argv, env), CFG_OK);
    assert_int_equal(c.threads, 3);
    cfg_free(&c);
    unlink(path);
}

/* A JSON config file: the same keys, typed values, the same precedence. */
static void json_file(void **state)
{
    struct cfg c;
    char *path =
        write_file("\n  {\"listen\": \"127.0.0.1:7100\", \"msg-rate\": 3, \"data_dir\": "
                   "\"/tmp/j\", \"rate-limits\": false, \"web\": \"off\", \"threads\": \"2\"}\n");
    char *env[] = {"CHATD_MSG_RATE=4", NULL};
    char *argv[] = {"chatd", "--config", path, NULL};
    static const char *const bad[] = {
        "{\"listen\": 8080}",               /* an integer for a string */
        "{\"msg-rate\": -1}",               /* negative */
        "{\"msg-rate\": 1.5}",              /* not an integer */
        "{\"rate-limits\": 1}",             /* not a boolean */
        "{\"msg-rate\": true}",             /* a boolean for an integer */
        "{\"nope\": 1}",                    /* unknown */
        "{\"listen\": null}",               /* null */
        "{\"listen\": {\"a\": 1}}",         /* nested */
        "{\"threads\": 1, \"threads\": 2}", /* duplicate */
        "{\"listen\": \"a\\u0000b\"}",      /* NUL inside a string */
        "[1, 2]",                           /* not an object */
        "{\"listen\": \"x\"",               /* truncated */
    };
    (void)state;
    assert_int_equal(load(&c, 3, argv, env), CFG_OK);
    assert_string_equal(c.listen, "127.0.0.1:7100");
    assert_int_equal(c.msg_rate, 4); /* env beats file */
    assert_string_equal(c.data_dir, "/tmp/j");
    assert_int_equal(c.rate_limits, 0);
    assert_int_equal(c.web, 0);
    assert_int_equal(c.threads, 2);
    cfg_free(&c);
    unlink(path);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *argv1[] = {"chatd", NULL};
        assert_int_equal(load(&c, 1, argv1, NULL), CFG_OK);
        assert_int_equal(cfg_parse_json(&c, bad[i], strlen(bad[i]), "t.json", devnull), -1);
        cfg_free(&c);
        path = write_file(bad[i]);
        assert_int_equal(load(&c, 3, argv, NULL), CFG_ERROR);
        cfg_free(&c);
        unlink(path);
    }
}

static void errors(void **state)
{
    struct cfg c;
    char *unknown[] = {"chatd", "--no-such-flag", "1", NULL};
    char *badnum[] = {"chatd", "--msg-rate", "fast", NULL};
    char *negative[] = {"chatd", "--msg-rate", "-1", NULL};
    char *noval[] = {"chatd", "--listen", NULL};
    char *badbool[] = {"chatd", "--rate-limits", "maybe", NULL};
    char *stray[] = {"chatd", "listen", NULL};
    char *missing[] = {"chatd", "--config", "/nonexistent/chatd.conf", NULL};
    char *badenv[] = {"CHATD_THREADS=many", NULL};
    char *plain[] = {"chatd", NULL};
    char *path = write_file("bogus = 1\n");
    char *badfile[] = {"chatd", "--config", path, NULL};
    (void)state;
    assert_int_equal(load(&c, 3, unknown, NULL), CFG_ERROR);
    cfg_free(&c);
    assert_int_equal(load(&c, 3, badnum, NULL), CFG_ERROR);
    cfg_free(&c);
    assert_int_equal(load(&c, 3, negative, NULL), CFG_ERROR);
    cfg_free(&c);
    assert_int_equal(load(&c, 2, noval, NULL), CFG_ERROR);
    cfg_free(&c);
    assert_int_equal(load(&c, 3, badbool, NULL), CFG_ERROR);
    cfg_free(&c);
    assert_int_equal(load(&c, 2, stray, NULL), CFG_ERROR);
    cfg_free(&c);
    assert_int_equal(load(&c, 3, missing, NULL), CFG_ERROR);
    cfg_free(&c);
    assert_int_equal(load(&c, 1, plain, badenv), CFG_ERROR);
    cfg_free(&c);
    assert_int_equal(load(&c, 3, badfile, NULL), CFG_ERROR);
    cfg_free(&c);
    unlink(path);
}

static char *write_bytes(const char *p, size_t n)
{
    static char path[64];
    FILE *f;
    snprintf(path, sizeof(path), "/tmp/chatd-cfg-test-%d.conf", (int)getpid());
    f = fopen(path, "w");
    fwrite(p, 1, n, f);
    fclose(f);
    return path;
}

/* A line is a line whatever its length: one over 1023 bytes was read in pieces, and the tail of
 * a long comment was applied as a setting (found by fuzz/fuzz_config.c). */
static void long_lines_are_one_line(void **state)
{
    struct cfg c;
    char text[4200], *path;
    char *argv[] = {"chatd", "--config", NULL, NULL};
    size_t n = 0;
    (void)state;
    text[n++] = '#';
    memset(text + n, 'x', 1100);
    n += 1100;
    n += (size_t)sprintf(text + n, "listen = 6.6.6.6:1\njwt-keys = ");
    memset(text + n, 'k', 3000);
    n += 3000;
    text[n++] = '\n';
    argv[2] = path = write_bytes(text, n);
    assert_int_equal(load(&c, 3, argv, NULL), CFG_OK);
    assert_string_equal(c.listen, "0.0.0.0:8080");
    assert_int_equal(strlen(c.jwt_keys), 3000);
    cfg_free(&c);
    unlink(path);
}

/* A NUL byte ended the line for fgets (the rest was silently dropped): it is an error. */
static void nul_byte_is_an_error(void **state)
{
    struct cfg c;
    char *argv[] = {"chatd", "--config", NULL, NULL};
    (void)state;
    argv[2] = write_bytes("listen = 1.2.3.4:5\0junk\n", 24);
    assert_int_equal(load(&c, 3, argv, NULL), CFG_ERROR);
    cfg_free(&c);
    unlink(argv[2]);
}

/* The byte limits that size a connection's 32-bit buffers and counters have an upper bound: a
 * --ws-max-frame of 5 GB would have let one frame wrap the input buffer's length. */
static void limits_over_their_range(void **state)
{
    struct cfg c;
    char *frame[] = {"chatd", "--ws-max-frame", "5000000000", NULL};
    char *outq[] = {"chatd", "--ws-max-outq=1073741825", NULL};
    char *headers[] = {"chatd", "--http-max-headers", "65537", NULL};
    char *max[] = {"chatd", "--ws-max-outq", "1073741824", "--http-max-body", "1073741824", NULL};
    (void)state;
    assert_int_equal(load(&c, 3, frame, NULL), CFG_ERROR);
    cfg_free(&c);
    assert_int_equal(load(&c, 2, outq, NULL), CFG_ERROR);
    cfg_free(&c);
    assert_int_equal(load(&c, 3, headers, NULL), CFG_ERROR);
    cfg_free(&c);
    assert_int_equal(load(&c, 5, max, NULL), CFG_OK);
    assert_int_equal(c.ws_max_outq, CFG_MAX_BYTES);
    cfg_free(&c);
}

static void roles_and_events_wait(void **state)
{
    struct cfg c;
    char *def[] = {"chatd", NULL};
    char *two[] = {"chatd", "--roles", "relay, exporter", NULL};
    char *bad[] = {"chatd", "--roles", "gateway,bogus", NULL};
    char *wait[] = {"chatd", "--events-wait-max", "0", NULL};
    char *env[] = {"CHATD_ROLES=notifier", NULL};
    (void)state;
    assert_int_equal(load(&c, 1, def, NULL), CFG_OK);
    assert_int_equal(c.roles_mask, ROLES_ALL);
    assert_int_equal(c.server_rate, 100);
    assert_int_equal(c.events_wait_max, 30);
    cfg_free(&c);
    assert_int_equal(load(&c, 3, two, NULL), CFG_OK);
    assert_int_equal(c.roles_mask, ROLES_RELAY | ROLES_EXPORTER);
    cfg_free(&c);
    assert_int_equal(load(&c, 1, def, env), CFG_OK);
    assert_int_equal(c.roles_mask, ROLES_NOTIFIER);
    cfg_free(&c);
    assert_int_equal(load(&c, 3, bad, NULL), CFG_ERROR);
    cfg_free(&c);
    assert_int_equal(load(&c, 3, wait, NULL), CFG_ERROR);
    cfg_free(&c);
}

static void help_and_version_exit(void **state)
{
    struct cfg c;
    char *help[] = {"chatd", "--help", NULL};
    char *version[] = {"chatd", "--version", NULL};
    (void)state;
    assert_int_equal(load(&c, 2, help, NULL), CFG_EXIT_OK);
    cfg_free(&c);
    assert_int_equal(load(&c, 2, version, NULL), CFG_EXIT_OK);
    cfg_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(env_beats_default_flag_beats_env),
        cmocka_unit_test(file_is_lowest_but_above_default),
        cmocka_unit_test(config_file_from_env),
        cmocka_unit_test(errors),
        cmocka_unit_test(json_file),
        cmocka_unit_test(help_and_version_exit),
        cmocka_unit_test(long_lines_are_one_line),
        cmocka_unit_test(nul_byte_is_an_error),
        cmocka_unit_test(limits_over_their_range),
        cmocka_unit_test(roles_and_events_wait),
    };
    int rc;
    devnull = fopen("/dev/null", "w");
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    fclose(devnull);
    return rc;
}
