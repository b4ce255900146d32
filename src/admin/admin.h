/* admin.h - chatd's administration commands, in the same binary as the server:
 *
 *   chatd user create USERNAME     (password on stdin)
 *   chatd user list
 *   chatd user passwd USERNAME     (new password on stdin; ends the user's sessions)
 *   chatd user disable USERNAME    (no password matches any more; ends the user's sessions)
 *   chatd token mint USERNAME [--ttl SECONDS]
 *   chatd config check
 *   chatd backup --to FILE         (SQLite: a consistent copy while chatd runs)
 *   chatd restore --from FILE [--force]   (SQLite: chatd stopped)
 *
 * Each reads the server's settings (flags, CHATD_* environment, --config file) the way the
 * server does, so `--data-dir` / `--store-url` name the same storage. Commands write through
 * the store's ops in a transaction of their own, beside a running server (SQLite waits for the
 * server's writer like another process would; PostgreSQL is shared anyway).
 */
#ifndef CD_ADMIN_H
#define CD_ADMIN_H

#include <stdio.h>

/* 1 when argv[1] names an administration command. */
int admin_is_command(int argc, char **argv);
/* Run it. Returns the process exit code: 0 done, 1 failed (printed to err), 2 usage or settings
 * error. Reads passwords from in. */
int admin_main(int argc, char **argv, char **envp, FILE *in, FILE *out, FILE *err);

#endif
