#include "server/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "roles/roles.h"
#include "util/rbuf.h"
#include "util/status.h"

enum cfg_type { T_STR, T_INT, T_BOOL };

struct cfg_def {
    const char *field;
    const char *flag;
    enum cfg_type type;
    const char *def;
    const char *help;
    size_t offset;
};

static const struct cfg_def cfg_defs[] = {
#define CFG_DEF(field, flag, type, def, help)                                                      \
    {#field, flag, T_##type, def, help, offsetof(struct cfg, field)},
    CFG_MAP(CFG_DEF)
#undef CFG_DEF
};
#define NDEFS (sizeof(cfg_defs) / sizeof(cfg_defs[0]))

static const struct cfg_def *cfg_find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < NDEFS; i++) {
        const char *f = cfg_defs[i].flag;
        size_t j;
        if (strlen(f) != len) continue;
        for (j = 0; j < len; j++) {
            char a = name[j] == '_' ? '-' : name[j];
            if (a != f[j]) break;
        }
        if (j == len) return &cfg_defs[i];
    }
    return NULL;
}

static int cfg_set(struct cfg *c, const struct cfg_def *d, const char *val, const char *origin,
                   FILE *err)
{
    char *p = (char *)c + d->offset;

    if (d->type == T_STR) {
        free(*(char **)p);
        *(char **)p = xstrndup(val, strlen(val));
        return 0;
    }
    if (d->type == T_BOOL) {
        int v;
        if (!strcasecmp(val, "on") || !strcasecmp(val, "true") || !strcmp(val, "1") ||
            !strcasecmp(val, "yes"))
            v = 1;
        else if (!strcasecmp(val, "off") || !strcasecmp(val, "false") || !strcmp(val, "0") ||
                 !strcasecmp(val, "no"))
            v = 0;
        else {
            fprintf(err, "chatd: %s: --%s expects on or off, got '%s'\n", origin, d->flag, val);
            return -1;
        }
        *(int *)p = v;
        return 0;
    }
    {
        char *end;
        long long v;
        errno = 0;
        v = strtoll(val, &end, 10);
        if (errno || end == val || *end || v < 0) {
            fprintf(err, "chatd: %s: --%s expects a non-negative integer, got '%s'\n", origin,
                    d->flag, val);
            return -1;
        }
        *(int64_t *)p = v;
    }
    return 0;
}

static char *trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int cfg_parse(struct cfg *c, const char *text, size_t len, const char *name, FILE *err)
{
    const char *p = text, *end = text + len;
    char origin[1100];
    int lineno = 0, rc = 0;

    while (p < end && rc == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        char *line, *s, *eq, *key, *val;
        const struct cfg_def *d;

        lineno++;
        if (memchr(p, '\0', n)) {
            fprintf(err, "chatd: %s:%d: NUL byte in the line\n", name, lineno);
            return -1;
        }
        line = xstrndup(p, n);
        p = nl ? nl + 1 : end;
        s = trim(line);
        if (!*s || *s == '#') {
            free(line);
            continue;
        }
        eq = strchr(s, '=');
        if (!eq) {
            fprintf(err, "chatd: %s:%d: expected 'name = value'\n", name, lineno);
            rc = -1;
        } else {
            *eq = '\0';
            key = trim(s);
            val = trim(eq + 1);
            if (strlen(val) >= 2 && val[0] == '"' && val[strlen(val) - 1] == '"') {
                val[strlen(val) - 1] = '\0';
                val++;
            }
            d = cfg_find_flag(key, strlen(key));
            if (!d) {
                fprintf(err, "chatd: %s:%d: unknown setting '%s'\n", name, lineno, key);
                rc = -1;
            } else {
                snprintf(origin, sizeof(origin), "%s:%d", name, lineno);
                if (cfg_set(c, d, val, origin, err)) rc = -1;
            }
        }
        free(line);
    }
    return rc;
}

int cfg_parse_json(struct cfg *c, const char *text, size_t len, const char *name, FILE *err)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je), *v;
    const char *key;
    char origin[1100], num[32];
    int rc = 0;

    if (!root) {
        fprintf(err, "chatd: %s:%d:%d: %s\n", name, je.line, je.column, je.text);
        return -1;
    }
    if (!json_is_object(root)) {
        fprintf(err, "chatd: %s: expected a JSON object {\"setting\": value, ...}\n", name);
        json_decref(root);
        return -1;
    }
    json_object_foreach(root, key, v)
    {
        const struct cfg_def *d = cfg_find_flag(key, strlen(key));
        const char *val = NULL;
        snprintf(origin, sizeof(origin), "%s: \"%.64s\"", name, key);
        if (!d) {
            fprintf(err, "chatd: %s: unknown setting '%.64s'\n", name, key);
            rc = -1;
            break;
        }
        if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v))
            val = json_string_value(v);
        else if (json_is_integer(v) && d->type == T_INT)
            val = (snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v)), num);
        else if (json_is_boolean(v) && d->type == T_BOOL)
            val = json_is_true(v) ? "on" : "off";
        if (!val) {
            fprintf(err, "chatd: %s: \"%s\" expects %s\n", name, d->flag,
                    d->type == T_STR    ? "a string"
                    : d->type == T_BOOL ? "true or false"
                                        : "a non-negative integer");
            rc = -1;
            break;
        }
        if (cfg_set(c, d, val, origin, err)) {
            rc = -1;
            break;
        }
    }
    json_decref(root);
    return rc;
}

/* JSON when the first byte that is not white space (or a UTF-8 BOM) is '{'. */
static int looks_json(const char *text, size_t len)
{
    size_t i = 0;
    if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3)) i = 3;
    while (i < len && isspace((unsigned char)text[i]))
        i++;
    return i < len && text[i] == '{';
}

static int cfg_read_file(struct cfg *c, const char *path, FILE *err)
{
    char *text = xmalloc(CFG_FILE_MAX + 1);
    size_t len;
    int rc = -1;
    FILE *f = fopen(path, "r");

    if (!f) {
        fprintf(err, "chatd: cannot read config file %s: %s\n", path, strerror(errno));
        free(text);
        return -1;
    }
    len = fread(text, 1, CFG_FILE_MAX + 1, f);
    if (ferror(f))
        fprintf(err, "chatd: cannot read config file %s: %s\n", path, strerror(errno));
    else if (len > CFG_FILE_MAX)
        fprintf(err, "chatd: config file %s is larger than %d bytes\n", path, CFG_FILE_MAX);
    else if (looks_json(text, len))
        rc = cfg_parse_json(c, text, len, path, err);
    else
        rc = cfg_parse(c, text, len, path, err);
    fclose(f);
    free(text);
    return rc;
}

static const char *env_get(char **envp, const char *name)
{
    size_t n = strlen(name);
    for (; envp && *envp; envp++)
        if (!strncmp(*envp, name, n) && (*envp)[n] == '=') return *envp + n + 1;
    return NULL;
}

static void env_name(const struct cfg_def *d, char *out, size_t cap)
{
    size_t i = 0, k = 6;
    memcpy(out, "CHATD_", 6);
    for (; d->field[i] && k + 1 < cap; i++)
        out[k++] = (char)toupper((unsigned char)d->field[i]);
    out[k] = '\0';
}

void cfg_usage(FILE *out)
{
    char env[64];
    fprintf(out, "Usage: chatd [options]\n"
                 "       chatd migrate --help (SQLite data dir to PostgreSQL)\n"
                 "       chatd apikey --help (API keys of the server API)\n"
                 "       chatd user|token|config|backup|restore --help (administration)\n\n"
                 "chatd " CHATD_VERSION " - real-time chat server (HTTP + WebSocket).\n"
                 "Precedence: flag > environment > config file > default.\n\n"
                 "  --help                  print this help and exit\n"
                 "  --version               print the version and exit\n"
                 "  --config FILE           config file, lines 'name = value', or a JSON object\n"
                 "                          {\"name\": value} (env CHATD_CONFIG)\n");
    for (size_t i = 0; i < NDEFS; i++) {
        const struct cfg_def *d = &cfg_defs[i];
        env_name(d, env, sizeof(env));
        fprintf(out, "  --%-22s %s\n  %26s env %s, default '%s'\n", d->flag, d->help, "", env,
                d->def);
    }
}

/* Upper bounds of the settings that size a connection's buffers and counters (32-bit, doubled
 * while they grow): a larger value would wrap them instead of bounding them. */
static const struct {
    const char *flag;
    int64_t max;
} cfg_ranges[] = {
    {"http-max-header", CFG_MAX_BYTES}, {"http-max-headers", 65536},
    {"http-max-body", CFG_MAX_BYTES},   {"ws-max-frame", CFG_MAX_BYTES},
    {"ws-max-message", CFG_MAX_BYTES},  {"ws-max-outq", CFG_MAX_BYTES},
    {"webhook-max-attempts", 100},      {"webhook-timeout-ms", 120000},
    {"webhook-poll-ms", 60000},         {"notify-excerpt", 4096},
    {"jetstream-replicas", 5},          {"webhook-retention", 31536000},
};

static int cfg_check_ranges(const struct cfg *c, FILE *err)
{
    for (size_t i = 0; i < sizeof(cfg_ranges) / sizeof(cfg_ranges[0]); i++) {
        const struct cfg_def *d = cfg_find_flag(cfg_ranges[i].flag, strlen(cfg_ranges[i].flag));
        int64_t v = *(const int64_t *)((const char *)c + d->offset);
        if (d->type == T_INT && v > cfg_ranges[i].max) {
            fprintf(err, "chatd: --%s is at most %lld, got %lld\n", d->flag,
                    (long long)cfg_ranges[i].max, (long long)v);
            return CFG_ERROR;
        }
    }
    if (c->webhook_max_attempts < 1 || c->webhook_timeout_ms < 100 || c->webhook_poll_ms < 10 ||
        c->webhook_retry_base_ms < 1 || c->webhook_retry_max_ms < c->webhook_retry_base_ms ||
        c->notify_excerpt < 1 || c->webhook_retention < 1) {
        fprintf(err, "chatd: --webhook-max-attempts >= 1, --webhook-timeout-ms >= 100, "
                     "--webhook-poll-ms >= 10, 1 <= --webhook-retry-base-ms <= "
                     "--webhook-retry-max-ms, --notify-excerpt >= 1, --webhook-retention >= 1\n");
        return CFG_ERROR;
    }
    if ((*c->webhook_url || *c->notify_webhook_url) && !*c->webhook_secret) {
        fprintf(err, "chatd: --webhook-url and --notify-webhook-url need --webhook-secret\n");
        return CFG_ERROR;
    }
    return CFG_OK;
}

int cfg_load(struct cfg *c, int argc, char **argv, char **envp, FILE *out, FILE *err)
{
    const char *file;

    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < NDEFS; i++)
        cfg_set(c, &cfg_defs[i], cfg_defs[i].def, "default", err);

    /* First pass over argv: --help, --version and --config, which decide what else is read. */
    file = env_get(envp, "CHATD_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            cfg_usage(out);
            return CFG_EXIT_OK;
        }
        if (!strcmp(argv[i], "--version")) {
            fprintf(out, "chatd %s\n", CHATD_VERSION);
            return CFG_EXIT_OK;
        }
        if (!strcmp(argv[i], "--config") && i + 1 < argc) file = argv[i + 1];
        if (!strncmp(argv[i], "--config=", 9)) file = argv[i] + 9;
    }
    if (file && *file) {
        c->config_file = xstrndup(file, strlen(file));
        if (cfg_read_file(c, file, err)) return CFG_ERROR;
    }
    for (size_t i = 0; i < NDEFS; i++) {
        char env[64];
        const char *v;
        env_name(&cfg_defs[i], env, sizeof(env));
        v = env_get(envp, env);
        if (v && cfg_set(c, &cfg_defs[i], v, env, err)) return CFG_ERROR;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val, *eq;
        const struct cfg_def *d;
        size_t nlen;
        if (strncmp(a, "--", 2)) {
            fprintf(err, "chatd: unexpected argument '%s' (see --help)\n", a);
            return CFG_ERROR;
        }
        a += 2;
        eq = strchr(a, '=');
        nlen = eq ? (size_t)(eq - a) : strlen(a);
        if (nlen == 6 && !strncmp(a, "config", 6)) {
            if (!eq) i++;
            continue;
        }
        d = cfg_find_flag(a, nlen);
        if (!d) {
            fprintf(err, "chatd: unknown option '--%.*s' (see --help)\n", (int)nlen, a);
            return CFG_ERROR;
        }
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            fprintf(err, "chatd: option '--%s' needs a value\n", d->flag);
            return CFG_ERROR;
        }
        if (cfg_set(c, d, val, "command line", err)) return CFG_ERROR;
    }
    if (cfg_check_ranges(c, err) != CFG_OK) return CFG_ERROR;
    {
        char bad[64];
        if (roles_parse(c->roles, &c->roles_mask, bad, sizeof(bad)) != CD_OK) {
            fprintf(err,
                    "chatd: --roles: unknown role '%s' (gateway, relay, notifier, exporter, "
                    "indexer or all)\n",
                    bad);
            return CFG_ERROR;
        }
    }
    if (c->events_wait_max < 1 || c->events_wait_max > 300) {
        fprintf(err, "chatd: --events-wait-max is 1 to 300 seconds, got %lld\n",
                (long long)c->events_wait_max);
        return CFG_ERROR;
    }
    return CFG_OK;
}

void cfg_free(struct cfg *c)
{
    for (size_t i = 0; i < NDEFS; i++)
        if (cfg_defs[i].type == T_STR) free(*(char **)((char *)c + cfg_defs[i].offset));
    free(c->config_file);
    memset(c, 0, sizeof(*c));
}

/* A URL list ("scheme://user:password@host,...") with every password replaced by "***". */
static void redact_urls(const char *v, char *out, size_t cap)
{
    size_t k = 0;
    while (*v && k + 1 < cap) {
        const char *end = strchr(v, ','), *scheme = strstr(v, "://"), *at, *colon;
        size_t n = end ? (size_t)(end - v) : strlen(v);
        at = memchr(v, '@', n);
        colon =
            scheme && at && scheme < at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
        if (colon)
            k += (size_t)snprintf(out + k, cap - k, "%.*s***%.*s", (int)(colon + 1 - v), v,
                                  (int)(n - (size_t)(at - v)), at);
        else
            k += (size_t)snprintf(out + k, cap - k, "%.*s", (int)n, v);
        if (k >= cap) k = cap - 1;
        v += n;
        if (*v == ',') {
            if (k + 1 < cap) out[k++] = ',';
            v++;
        }
    }
    out[k < cap ? k : cap - 1] = '\0';
}

void cfg_print(const struct cfg *c, FILE *out)
{
    for (size_t i = 0; i < NDEFS; i++) {
        const struct cfg_def *d = &cfg_defs[i];
        const char *p = (const char *)c + d->offset;
        if (d->type == T_INT) {
            fprintf(out, "%s = %lld\n", d->flag, (long long)*(const int64_t *)p);
        } else if (d->type == T_BOOL) {
            fprintf(out, "%s = %s\n", d->flag, *(const int *)p ? "on" : "off");
        } else {
            const char *v = *(char *const *)p ? *(char *const *)p : "";
            char buf[4096];
            if (!strcmp(d->flag, "jwt-keys") && *v)
                v = "<redacted>";
            else if (strlen(d->flag) > 4 && !strcmp(d->flag + strlen(d->flag) - 4, "-url")) {
                redact_urls(v, buf, sizeof(buf));
                v = buf;
            }
            fprintf(out, "%s = \"%s\"\n", d->flag, v);
        }
    }
}
