/* blob_s3.c - placeholder until the S3 backend lands. */
#include "blob/blob.h"
#include "util/log.h"
#include "util/status.h"

int blob_s3_open(const char *url, const char *spool_dir, const struct blob_s3_creds *creds,
                 struct blob_store **out)
{
    (void)url;
    (void)spool_dir;
    (void)creds;
    (void)out;
    log_error("blob url", "\"error\":\"%s\"", "s3 backend not available");
    return CD_E_INVALID_FIELD;
}
