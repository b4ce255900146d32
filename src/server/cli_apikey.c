/* cli_apikey.c - `chatd apikey ...` (see cli.h): opens the server's storage directly (SQLite
 * allows other processes beside a running server; PostgreSQL is shared anyway), runs one
 * statement and exits. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/apikey.h"
#include "auth/auth.h"
#include "server/app.h"
#include "server/cli.h"
#include "server/config.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/rbuf.h"
#include "util/status.h"

static void usage(FILE *out)
{
    fprintf(out, "Usage: chatd apikey create --name NAME [server settings]\n"
                 "       chatd apikey list [server settings]\n"
                 "       chatd apikey revoke ID [server settings]\n\n"
                 "API keys of the server API (Authorization: Bearer ck_... on /v1/server/...).\n"
                 "create prints the new key once on stdout: only its SHA-256 is stored, so it\n"
                 "cannot be shown again. list prints id, name, created and revoked times. revoke\n"
                 "refuses the key from then on (a running server within one request).\n"
                 "The storage is the server's: --data-dir or --store-url, from flags, CHATD_*\n"
                 "environment variables or --config FILE (see chatd --help).\n");
}

static void iso(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int print_key(void *ud, const struct store_apikey *k)
{
    FILE *out = ud;
    char created[32], revoked[40] = "active";
    iso(k->created_at, created, sizeof(created));
    if (k->revoked_at) {
        memcpy(revoked, "revoked ", 8);
        iso(k->revoked_at, revoked + 8, sizeof(revoked) - 8);
    }
    fprintf(out, "k_%" PRId64 "\t%s\tcreated %s\t%s\n", k->id, k->name, created, revoked);
    return 0;
}

int cli_apikey_main(int argc, char **argv, char **envp, FILE *out, FILE *err)
{
    const char *cmd = argc > 2 ? argv[2] : NULL, *name = NULL, *id_arg = NULL;
    char **rest = xcalloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0, code = 1, rc;
    struct cfg cfg;
    struct store_config sc = {0};
    const struct store_ops *ops = &store_sqlite_ops;
    struct store *st = NULL;
    struct store_conn *c = NULL;

    if (!cmd || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(cmd ? out : err);
        free(rest);
        return cmd ? 0 : 2;
    }
    if (strcmp(cmd, "create") && strcmp(cmd, "list") && strcmp(cmd, "revoke")) {
        fprintf(err, "chatd apikey: unknown command '%s' (see chatd apikey --help)\n", cmd);
        free(rest);
        return 2;
    }
    /* Our own arguments out, the server's settings left for cfg_load. */
    rest[nrest++] = argv[0];
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(out);
            free(rest);
            return 0;
        }
        if (!strcmp(cmd, "create") && !strcmp(a, "--name") && i + 1 < argc) {
            name = argv[++i];
        } else if (!strcmp(cmd, "create") && !strncmp(a, "--name=", 7)) {
            name = a + 7;
        } else if (!strcmp(cmd, "revoke") && !id_arg && strncmp(a, "--", 2)) {
            id_arg = a;
        } else {
            rest[nrest++] = argv[i];
        }
    }
    if (!strcmp(cmd, "create") && (!name || !apikey_name_ok(name, strlen(name)))) {
        fprintf(err, "chatd apikey create: --name NAME is required (1-64 printable characters, "
                     "no quotes or backslashes)\n");
        free(rest);
        return 2;
    }
    if (!strcmp(cmd, "revoke") && !id_arg) {
        fprintf(err, "chatd apikey revoke: the key's id is required (k_N, see chatd apikey "
                     "list)\n");
        free(rest);
        return 2;
    }
    rc = cfg_load(&cfg, nrest, rest, envp, out, err);
    free(rest);
    if (rc != CFG_OK) {
        cfg_free(&cfg);
        return rc == CFG_EXIT_OK ? 0 : 2;
    }
    log_set_level(LOG_WARN);
    if (auth_init() != CD_OK) goto done;
    ops = cfg.store_url && *cfg.store_url ? &store_pg_ops : &store_sqlite_ops;
    sc.url = cfg.store_url;
    sc.dir = cfg.data_dir;
    sc.sync_mode = cfg.sqlite_sync;
    if (ops->open(&sc, &st) != CD_OK || ops->conn_open(st, 1, &c) != CD_OK) {
        fprintf(err, "chatd apikey: cannot open the storage (%s)\n",
                ops == &store_pg_ops ? "--store-url" : cfg.data_dir);
        goto done;
    }
    if (!strcmp(cmd, "create")) {
        char key[APIKEY_LEN + 1];
        uint8_t hash[32];
        int64_t id = 0;
        apikey_new(key, hash);
        if (ops->apikey_insert(c, name, hash, clock_unix_ms(), &id) != CD_OK) {
            fprintf(err, "chatd apikey create: storage error\n");
            goto done;
        }
        fprintf(out, "%s\n", key);
        fprintf(err,
                "chatd apikey: created k_%" PRId64 " (\"%s\"). The key above is shown only "
                "now: only its hash is stored.\n",
                id, name);
        code = 0;
    } else if (!strcmp(cmd, "list")) {
        code = ops->apikey_list(c, print_key, out) == CD_OK ? 0 : 1;
    } else {
        int64_t id = 0;
        struct slice s = {id_arg, strlen(id_arg)};
        if (!id_parse(s, 'k', &id)) {
            char *end;
            long long v = strtoll(id_arg, &end, 10);
            if (*end || v <= 0) {
                fprintf(err, "chatd apikey revoke: '%s' is not a key id (k_N)\n", id_arg);
                code = 2;
                goto done;
            }
            id = v;
        }
        rc = ops->apikey_revoke(c, id, clock_unix_ms());
        if (rc == CD_OK) {
            fprintf(out, "revoked k_%" PRId64 "\n", id);
            code = 0;
        } else {
            fprintf(err, "chatd apikey revoke: %s\n",
                    rc == CD_E_NOT_FOUND ? "no such active key" : "storage error");
        }
    }
done:
    if (c) ops->conn_close(c);
    if (st) ops->close(st);
    cfg_free(&cfg);
    return code;
}
