/* chatd - real-time chat server. See README.md and `chatd --help`. */
#include <stdio.h>

#include "server/app.h"
#include "server/config.h"

extern char **environ;

int main(int argc, char **argv)
{
    struct cfg cfg;
    int rc = cfg_load(&cfg, argc, argv, environ, stdout, stderr);

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
