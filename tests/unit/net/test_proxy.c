/* The client address behind trusted proxies: CIDR lists, X-Forwarded-For and Forwarded chains
 * walked from the right past trusted hops only, spoofing attempts, malformed entries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "net/proxy.h"
#include "util/status.h"

static struct slice S(const char *s) {
    return (struct slice){s, strlen(s)};
}

static const char *
client(const struct proxy_list *l, const char *peer, const char *fwd, const char *xff)
{
    static char out[PROXY_IP_LEN + 1];
    proxy_client_ip(l, peer, S(fwd), S(xff), out);
    return out;
}

static void parses_lists(void **state)
{
    struct proxy_list l;
    (void)state;
    assert_int_equal(proxy_list_parse(&l, ""), CD_OK);
    assert_int_equal(l.n, 0);
    assert_int_equal(proxy_list_parse(&l, "127.0.0.1/32, 10.0.0.0/8,::1,fd00::/8"), CD_OK);
    assert_int_equal(l.n, 4);
    assert_true(proxy_trusted(&l, "127.0.0.1"));
    assert_false(proxy_trusted(&l, "127.0.0.2"));
    assert_true(proxy_trusted(&l, "10.200.3.4"));
    assert_false(proxy_trusted(&l, "11.0.0.1"));
    assert_true(proxy_trusted(&l, "::1"));
    assert_true(proxy_trusted(&l, "fd12::5"));
    assert_false(proxy_trusted(&l, "fe80::1"));
    assert_false(proxy_trusted(&l, "garbage"));
    assert_int_equal(proxy_list_parse(&l, "0.0.0.0/0"), CD_OK);
    assert_true(proxy_trusted(&l, "203.0.113.9"));
    assert_false(proxy_trusted(&l, "2001:db8::1")); /* an IPv4 /0 is IPv4 only */
    assert_int_equal(proxy_list_parse(&l, "10.0.0.0/33"), CD_E_INVALID_FIELD);
    assert_int_equal(proxy_list_parse(&l, "10.0.0/8"), CD_E_INVALID_FIELD);
    assert_int_equal(proxy_list_parse(&l, "10.0.0.0/"), CD_E_INVALID_FIELD);
    assert_int_equal(proxy_list_parse(&l, "10.0.0.0/x"), CD_E_INVALID_FIELD);
    assert_int_equal(proxy_list_parse(&l, "::/129"), CD_E_INVALID_FIELD);
    assert_int_equal(proxy_list_parse(&l, "example.com"), CD_E_INVALID_FIELD);
}

static void walks_the_chain(void **state)
{
    struct proxy_list none, l;
    (void)state;
    proxy_list_parse(&none, "");
    proxy_list_parse(&l, "127.0.0.1, 10.0.0.0/8");
    /* No trusted proxies, or an untrusted peer: the headers are ignored. */
    assert_string_equal(client(&none, "127.0.0.1", "", "203.0.113.1"), "127.0.0.1");
    assert_string_equal(client(&l, "198.51.100.7", "", "203.0.113.1"), "198.51.100.7");
    /* Trusted peer: the right-most untrusted address. */
    assert_string_equal(client(&l, "127.0.0.1", "", "203.0.113.1"), "203.0.113.1");
    assert_string_equal(client(&l, "127.0.0.1", "", "6.6.6.6, 203.0.113.1"), "203.0.113.1");
    assert_string_equal(client(&l, "127.0.0.1", "", "203.0.113.1, 10.1.1.1"), "203.0.113.1");
    assert_string_equal(client(&l, "127.0.0.1", "", " 203.0.113.1 ,10.1.1.1 , 10.2.2.2"),
                        "203.0.113.1");
    /* Every hop trusted: the left-most. */
    assert_string_equal(client(&l, "127.0.0.1", "", "10.0.0.5, 10.0.0.6"), "10.0.0.5");
    /* Ports and IPv6. */
    assert_string_equal(client(&l, "127.0.0.1", "", "203.0.113.1:5555"), "203.0.113.1");
    assert_string_equal(client(&l, "127.0.0.1", "", "2001:DB8::1"), "2001:db8::1");
    assert_string_equal(client(&l, "127.0.0.1", "", "[2001:db8::1]:443"), "2001:db8::1");
    /* A malformed entry stops the walk at the last good hop. */
    assert_string_equal(client(&l, "127.0.0.1", "", "203.0.113.1, bogus"), "127.0.0.1");
    assert_string_equal(client(&l, "127.0.0.1", "", "bogus, 10.0.0.9"), "10.0.0.9");
    assert_string_equal(client(&l, "127.0.0.1", "", ""), "127.0.0.1");
    /* Forwarded wins over X-Forwarded-For. */
    assert_string_equal(
        client(&l, "127.0.0.1", "for=192.0.2.60;proto=http;by=203.0.113.43", "6.6.6.6"),
        "192.0.2.60");
    assert_string_equal(
        client(&l, "127.0.0.1", "for=6.6.6.6, For=\"[2001:db8:cafe::17]:4711\"", ""),
        "2001:db8:cafe::17");
    assert_string_equal(client(&l, "127.0.0.1", "proto=https;for=unknown", ""), "127.0.0.1");
    /* An IPv4-mapped peer is the IPv4 address. */
    assert_string_equal(client(&l, "::ffff:127.0.0.1", "", "203.0.113.8"), "203.0.113.8");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_lists),
        cmocka_unit_test(walks_the_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
