/* cli.h - one-shot commands of the chatd binary beside the server (main.c dispatches them). */
#ifndef CD_CLI_H
#define CD_CLI_H

#include <stdio.h>

/* `chatd apikey create --name NAME | list | revoke ID [server settings]`: API keys of the server
 * API, in the storage the server's own settings name (--data-dir or --store-url, --config, env
 * CHATD_*). create prints the key once on stdout (only its hash is stored). Returns the exit
 * code: 0 done, 1 failed (storage, unknown id), 2 usage error. Blocks. */
int cli_apikey_main(int argc, char **argv, char **envp, FILE *out, FILE *err);

#endif
