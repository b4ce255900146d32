/* AWS Signature Version 4 against the example AWS documents for S3 (GET Object with a Range,
 * access key AKIAIOSFODNN7EXAMPLE, 2013-05-24), and the shape of the header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "blob/blob_sigv4.h"

static void aws_get_object_example(void **state)
{
    const struct sigv4_header h[] = {
        {"host", "examplebucket.s3.amazonaws.com"},
        {"range", "bytes=0-9"},
        {"x-amz-content-sha256", SIGV4_EMPTY_SHA256},
        {"x-amz-date", "20130524T000000Z"},
    };
    struct sigv4_req r = {.method = "GET",
                          .path = "/test.txt",
                          .query = "",
                          .headers = h,
                          .nheaders = 4,
                          .payload_sha256 = SIGV4_EMPTY_SHA256,
                          .amz_date = "20130524T000000Z",
                          .region = "us-east-1",
                          .service = "s3",
                          .access_key = "AKIAIOSFODNN7EXAMPLE",
                          .secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"};
    char out[512];
    (void)state;
    assert_int_equal(sigv4_authorization(&r, out, sizeof(out)), 0);
    assert_string_equal(out, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
                             "s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;"
                             "x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170"
                             "aba48dd91039c6036bdb41");
}

static void any_change_changes_the_signature(void **state)
{
    const struct sigv4_header h[] = {{"host", "h"}, {"x-amz-date", "20240101T000000Z"}};
    struct sigv4_req r = {.method = "PUT",
                          .path = "/b/k",
                          .query = "",
                          .headers = h,
                          .nheaders = 2,
                          .payload_sha256 = SIGV4_EMPTY_SHA256,
                          .amz_date = "20240101T000000Z",
                          .region = "us-east-1",
                          .service = "s3",
                          .access_key = "AK",
                          .secret_key = "SK"};
    char a[512], b[512], small[16];
    (void)state;
    assert_int_equal(sigv4_authorization(&r, a, sizeof(a)), 0);
    r.path = "/b/k2";
    assert_int_equal(sigv4_authorization(&r, b, sizeof(b)), 0);
    assert_string_not_equal(a, b);
    r.path = "/b/k";
    r.secret_key = "SK2";
    assert_int_equal(sigv4_authorization(&r, b, sizeof(b)), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(sigv4_authorization(&r, small, sizeof(small)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(aws_get_object_example),
        cmocka_unit_test(any_change_changes_the_signature),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
