/* chatd - real-time chat server. See README.md and `chatd --help`.
 * `chatd migrate ...` and `chatd apikey ...` are one-shot commands (store/store_migrate.h,
 * server/cli.h), so are the administration commands `chatd user|token|config|backup|restore ...`
 * (admin/admin.h); anything else runs the server with the settings of server/config.h. */
#include <stdio.h>
#include <string.h>

#include "admin/admin.h"
#include "server/app.h"
#include "server/cli.h"
#include "server/config.h"
#include "store/store_migrate.h"

extern char **environ;

static void migrate_usage(FILE *out)
{
    fprintf(out,
            "Usage: chatd migrate --from DATA_DIR --to postgres://user@host:port/db\n\n"
            "Copies a stopped single node's data (SQLite in DATA_DIR: users, sessions, refresh\n"
            "tokens, rooms, memberships with read markers, every room's log with its seqs, room\n"
            "settings (mute), webhook endpoints; not pending webhook deliveries) into\n"
            "a PostgreSQL database for a cluster (--store-url), ids and seqs preserved, in one\n"
            "transaction. Prints the rows of each table on both sides; exit 0 only when they\n"
            "match (committed), 1 otherwise (nothing committed), 2 for a usage error.\n"
            "Refuses a DATA_DIR a running chatd holds and a database that already holds data.\n"
            "The JWT keys (DATA_DIR/jwt.keys) are not copied: pass them to every node with\n"
            "--jwt-keys.\n\n"
            "  --from DATA_DIR   the single node's --data-dir\n"
            "  --to URL          the cluster's --store-url (postgres:// or postgresql://)\n"
            "  --help            print this help and exit\n");
}

/* Flags "--name value" or "--name=value". */
static int migrate_main(int argc, char **argv)
{
    struct store_migrate_opts o = {0};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '='), **dst = NULL;
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            migrate_usage(stdout);
            return 0;
        }
        if (nlen == 6 && !strncmp(a, "--from", 6)) dst = &o.from_dir;
        if (nlen == 4 && !strncmp(a, "--to", 4)) dst = &o.to_url;
        if (!dst) {
            fprintf(stderr, "chatd migrate: unexpected argument '%s' (see chatd migrate --help)\n",
                    a);
            return 2;
        }
        if (eq) {
            *dst = eq + 1;
        } else if (i + 1 < argc) {
            *dst = argv[++i];
        } else {
            fprintf(stderr, "chatd migrate: option '%s' needs a value\n", a);
            return 2;
        }
    }
    if (!o.from_dir || !*o.from_dir || !o.to_url || !*o.to_url) {
        fprintf(stderr, "chatd migrate: --from DATA_DIR and --to postgres://... are required "
                        "(see chatd migrate --help)\n");
        return 2;
    }
    if (strncmp(o.to_url, "postgres://", 11) && strncmp(o.to_url, "postgresql://", 13)) {
        fprintf(stderr, "chatd migrate: --to must be a postgres:// or postgresql:// URL\n");
        return 2;
    }
    return store_migrate_run(&o, stdout, stderr);
}

int main(int argc, char **argv)
{
    struct cfg cfg;
    int rc;

    if (argc > 1 && !strcmp(argv[1], "migrate")) return migrate_main(argc, argv);
    if (argc > 1 && !strcmp(argv[1], "apikey"))
        return cli_apikey_main(argc, argv, environ, stdout, stderr);
    if (admin_is_command(argc, argv)) return admin_main(argc, argv, environ, stdin, stdout, stderr);
    rc = cfg_load(&cfg, argc, argv, environ, stdout, stderr);
    if (rc == CFG_EXIT_OK) {
        cfg_free(&cfg);
        return 0;
    }
    if (rc == CFG_ERROR) {
        cfg_free(&cfg);
        return 2;
    }
    rc = app_run(&cfg);
    cfg_free(&cfg);
    return rc;
}
