#include <stddef.h>

#include "util/status.h"

struct status_info {
    int http;
    const char *code;
    const char *message;
};

static const struct status_info status_table[] = {
#define CD_STATUS_ROW(name, http, code, msg) {http, code, msg},
    CD_STATUS_MAP(CD_STATUS_ROW)
#undef CD_STATUS_ROW
};

static const struct status_info *status_lookup(int status)
{
    int i = status - (CD__FIRST_ERROR + 1);
    if (status <= CD__FIRST_ERROR || status >= CD__LAST_ERROR) return NULL;
    return &status_table[i];
}

int cd_status_http(int status)
{
    const struct status_info *s = status_lookup(status);
    if (status == CD_OK) return 200;
    return s ? s->http : 500;
}

const char *cd_status_code(int status)
{
    const struct status_info *s = status_lookup(status);
    if (status == CD_OK) return "ok";
    return s ? s->code : "internal";
}

const char *cd_status_message(int status)
{
    const struct status_info *s = status_lookup(status);
    if (status == CD_OK) return "ok";
    return s ? s->message : "internal error";
}
