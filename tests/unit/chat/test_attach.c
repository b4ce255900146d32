/* The rules of attachments: ids, file-name sanitising, the content-type allow-list, ranges and
 * Content-Disposition; and of search: terms and snippet escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "chat/attach.h"
#include "chat/search.h"

static void name_is(const char *in, const char *want)
{
    char out[STORE_ATT_NAME_MAX + 1];
    size_t n = attach_name_sanitize(in, strlen(in), out, sizeof(out));
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);
}

static void names(void **state)
{
    char big[1200], out[STORE_ATT_NAME_MAX + 1];
    size_t n;
    (void)state;
    name_is("report.pdf", "report.pdf");
    name_is("../../etc/passwd", "passwd");
    name_is("C:\\dir\\x.png", "x.png");
    name_is("a\x01\x1f\x7f"
            "b",
            "ab");
    name_is("a\xc2\x85"
            "b",
            "ab");                                     /* C1 control (NEL) */
    name_is("evil\xe2\x80\xaegpj.exe", "evilgpj.exe"); /* bidi override */
    name_is("bad\xff\xfeutf8", "badutf8");
    name_is("say \"hi\".txt", "say hi.txt");
    name_is(" . .hidden. ", "hidden");
    name_is("dir/", "");
    name_is("", "");
    name_is("r\xc3\xa9sum\xc3\xa9.txt", "r\xc3\xa9sum\xc3\xa9.txt");
    memset(big, 'x', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    n = attach_name_sanitize(big, strlen(big), out, sizeof(out));
    assert_int_equal(n, STORE_ATT_NAME_MAX);
    /* never cut inside a character: 2-byte characters stop at 254 */
    for (size_t i = 0; i + 1 < sizeof(big); i += 2) {
        big[i] = (char)0xc3;
        big[i + 1] = (char)0xa9;
    }
    big[sizeof(big) - 1] = '\0';
    n = attach_name_sanitize(big, sizeof(big) - 1, out, sizeof(out));
    assert_int_equal(n, 254);
}

static void types(void **state)
{
    char t[STORE_ATT_CTYPE_MAX + 1];
    const char *list = ATTACH_TYPE_LIST_DEFAULT;
    (void)state;
    assert_true(attach_type_allowed(list, "image/png", 9, t, sizeof(t)));
    assert_string_equal(t, "image/png");
    assert_true(attach_type_allowed(list, " Text/Plain ; charset=utf-8", 27, t, sizeof(t)));
    assert_string_equal(t, "text/plain");
    assert_false(attach_type_allowed(list, "text/html", 9, t, sizeof(t)));
    assert_false(attach_type_allowed(list, "image/svg+xml", 13, t, sizeof(t)));
    assert_false(attach_type_allowed(list, "", 0, t, sizeof(t)));
    assert_false(attach_type_allowed(list, "png", 3, t, sizeof(t)));
    assert_false(attach_type_allowed(list, "image/p\"ng", 10, t, sizeof(t)));
    assert_true(
        attach_type_allowed("image/*, application/pdf", "image/x-anything", 16, t, sizeof(t)));
    assert_false(attach_type_allowed("image/*", "imagex/png", 10, t, sizeof(t)));
}

static void ranges(void **state)
{
    uint64_t a, b;
    (void)state;
    assert_int_equal(attach_range("bytes=0-9", 9, 100, &a, &b), 1);
    assert_true(a == 0 && b == 9);
    assert_int_equal(attach_range("bytes=90-", 9, 100, &a, &b), 1);
    assert_true(a == 90 && b == 99);
    assert_int_equal(attach_range("bytes=-10", 9, 100, &a, &b), 1);
    assert_true(a == 90 && b == 99);
    assert_int_equal(attach_range("bytes=-1000", 11, 100, &a, &b), 1);
    assert_true(a == 0 && b == 99);
    assert_int_equal(attach_range("bytes=50-1000", 13, 100, &a, &b), 1);
    assert_true(a == 50 && b == 99);
    assert_int_equal(attach_range("bytes=100-", 10, 100, &a, &b), -1);
    assert_int_equal(attach_range("bytes=-0", 8, 100, &a, &b), -1);
    assert_int_equal(attach_range("bytes=5-1", 9, 100, &a, &b), 0);
    assert_int_equal(attach_range("bytes=0-1,5-6", 13, 100, &a, &b), 0);
    assert_int_equal(attach_range("items=0-1", 9, 100, &a, &b), 0);
    assert_int_equal(attach_range("bytes=-", 7, 100, &a, &b), 0);
    assert_int_equal(attach_range("bytes=99999999999999999999-", 27, 100, &a, &b), 0);
}

static void disposition_and_ids(void **state)
{
    char d[600], id[STORE_ATT_ID_LEN + 1], id2[STORE_ATT_ID_LEN + 1];
    (void)state;
    attach_disposition("a b\xc3\xa9\".txt", d, sizeof(d));
    assert_string_equal(d,
                        "attachment; filename=\"a b___.txt\"; filename*=UTF-8''a%20b%C3%A9%22.txt");
    attach_id_new(id);
    attach_id_new(id2);
    assert_int_equal(strlen(id), STORE_ATT_ID_LEN);
    assert_string_not_equal(id, id2);
    assert_int_equal(attach_id_parse("att_0123456789abcdef0123456789abcdef", 36, id), 1);
    assert_string_equal(id, "0123456789abcdef0123456789abcdef");
    assert_int_equal(attach_id_parse("att_0123456789ABCDEF0123456789abcdef", 36, id), 0);
    assert_int_equal(attach_id_parse("att_0123", 8, id), 0);
    assert_int_equal(attach_id_parse("xyz_0123456789abcdef0123456789abcdef", 36, id), 0);
}

static void terms_and_snippets(void **state)
{
    char out[SEARCH_Q_MAX + 1];
    struct jsonw w;
    (void)state;
    assert_int_equal(search_terms("Hello, WORLD!", 13, out, sizeof(out)), 2);
    assert_string_equal(out, "hello world");
    assert_int_equal(search_terms("\"a\" OR b* NEAR(c)", 17, out, sizeof(out)), 5);
    assert_string_equal(out, "a or b near c");
    assert_int_equal(search_terms("*** ---", 7, out, sizeof(out)), 0);
    assert_int_equal(search_terms("caf\xc3\xa9 x", 7, out, sizeof(out)), 2);
    assert_string_equal(out, "caf\xc3\xa9 x");
    assert_int_equal(search_terms("a b c d e f g h i j", 19, out, sizeof(out)), SEARCH_TERMS_MAX);
    assert_string_equal(out, "a b c d e f g h");
    jsonw_init(&w, 16);
    {
        const char *snip = "<b>&\x01hit\x02 'x' \"y\" \x02\x01open";
        search_snippet_json(&w, snip, strlen(snip));
    }
    {
        const char *want = "\"&lt;b&gt;&amp;<mark>hit</mark> &#39;x&#39; &quot;y&quot; "
                           "<mark>open</mark>\"";
        assert_int_equal(jsonw_text_len(&w), strlen(want));
        assert_memory_equal(jsonw_text(&w), want, strlen(want));
    }
    jsonw_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names),
        cmocka_unit_test(types),
        cmocka_unit_test(ranges),
        cmocka_unit_test(disposition_and_ids),
        cmocka_unit_test(terms_and_snippets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
