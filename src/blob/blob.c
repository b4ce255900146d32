/* blob.c - choosing a blob backend by URL. */
#include "blob/blob.h"

#include <stdio.h>
#include <string.h>

#include "util/log.h"
#include "util/status.h"

int blob_key_valid(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'z'))) return 0;
    return 1;
}

int blob_open(const char *url, const char *data_dir, const struct blob_s3_creds *creds,
              struct blob_store **out)
{
    char dir[4096];
    if (!url || !*url || !strcmp(url, "fs")) {
        snprintf(dir, sizeof(dir), "%s/blobs", data_dir);
        return blob_fs_open(dir, out);
    }
    if (!strncmp(url, "s3://", 5)) {
        snprintf(dir, sizeof(dir), "%s/blobs-spool", data_dir);
        return blob_s3_open(url, dir, creds, out);
    }
    log_error("blob url", "\"error\":\"expected empty, fs or s3://bucket?endpoint=...\"");
    return CD_E_INVALID_FIELD;
}
