#include "net/proxy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/status.h"

/* Text to 16 bytes (IPv4 mapped into IPv6). 1 on success. */
static int ip_parse(const char *s, size_t n, uint8_t out[16])
{
    char buf[64];
    struct in_addr a4;
    if (n == 0 || n >= sizeof(buf)) return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, &a4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &a4, 4);
        return 1;
    }
    return inet_pton(AF_INET6, buf, out) == 1;
}

static void ip_text(const uint8_t a[16], char out[PROXY_IP_LEN + 1])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!memcmp(a, mapped, 12))
        inet_ntop(AF_INET, a + 12, out, PROXY_IP_LEN + 1);
    else
        inet_ntop(AF_INET6, a, out, PROXY_IP_LEN + 1);
}

static int in_net(const struct proxy_net *net, const uint8_t a[16])
{
    uint32_t full = net->bits / 8, rest = net->bits % 8;
    if (memcmp(net->addr, a, full)) return 0;
    if (!rest) return 1;
    return ((net->addr[full] ^ a[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

static int trusted_bin(const struct proxy_list *l, const uint8_t a[16])
{
    for (uint32_t i = 0; i < l->n; i++)
        if (in_net(&l->nets[i], a)) return 1;
    return 0;
}

int proxy_list_parse(struct proxy_list *l, const char *spec)
{
    const char *p = spec ? spec : "";
    memset(l, 0, sizeof(*l));
    while (*p) {
        const char *end, *slash;
        size_t n;
        struct proxy_net net;
        int v4;
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p) break;
        end = p;
        while (*end && *end != ',' && *end != ' ')
            end++;
        n = (size_t)(end - p);
        slash = memchr(p, '/', n);
        if (!ip_parse(p, slash ? (size_t)(slash - p) : n, net.addr)) return CD_E_INVALID_FIELD;
        v4 = memchr(p, ':', slash ? (size_t)(slash - p) : n) == NULL;
        net.bits = 128;
        if (slash) {
            char *e;
            long bits;
            if (slash + 1 == end || !isdigit((unsigned char)slash[1])) return CD_E_INVALID_FIELD;
            bits = strtol(slash + 1, &e, 10);
            if (e != end || bits < 0 || bits > (v4 ? 32 : 128)) return CD_E_INVALID_FIELD;
            net.bits = (uint8_t)(v4 ? bits + 96 : bits);
        }
        if (l->n == PROXY_MAX_NETS) return CD_E_INVALID_FIELD;
        l->nets[l->n++] = net;
        p = end;
    }
    return CD_OK;
}

int proxy_trusted(const struct proxy_list *l, const char *ip)
{
    uint8_t a[16];
    return ip_parse(ip, strlen(ip), a) && trusted_bin(l, a);
}

/* One element's address: for X-Forwarded-For the whole (trimmed) entry; for Forwarded the value
 * of its for= parameter, unquoted. Either may carry a port ("a.b.c.d:p", "[v6]:p"). */
static int hop_addr(const char *s, size_t n, int forwarded, uint8_t out[16])
{
    const char *e = s + n;
    if (forwarded) { /* for=...; among ';'-separated pairs */
        const char *p = s, *v = NULL;
        while (p < e) {
            const char *semi = memchr(p, ';', (size_t)(e - p)), *pe = semi ? semi : e;
            while (p < pe && (*p == ' ' || *p == '\t'))
                p++;
            if (pe - p > 4 && !strncasecmp(p, "for=", 4)) {
                v = p + 4;
                e = pe;
                break;
            }
            p = semi ? semi + 1 : e;
        }
        if (!v) return 0;
        s = v;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e - s >= 2 && *s == '"' && e[-1] == '"') s++, e--;
    } else {
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
    }
    if (s < e && *s == '[') { /* [v6] or [v6]:port */
        const char *close = memchr(s, ']', (size_t)(e - s));
        return close && ip_parse(s + 1, (size_t)(close - s - 1), out);
    }
    if (ip_parse(s, (size_t)(e - s), out)) return 1;
    {
        const char *colon = memchr(s, ':', (size_t)(e - s)); /* a.b.c.d:port */
        if (colon && !memchr(colon + 1, ':', (size_t)(e - colon - 1)))
            return ip_parse(s, (size_t)(colon - s), out) && out[10] == 0xff;
    }
    return 0;
}

void proxy_client_ip(const struct proxy_list *l, const char *peer, struct slice forwarded,
                     struct slice xff, char out[PROXY_IP_LEN + 1])
{
    uint8_t cur[16], hop[16];
    struct slice chain = forwarded.len ? forwarded : xff;
    const char *end;

    if (!ip_parse(peer, strlen(peer), cur)) {
        snprintf(out, PROXY_IP_LEN + 1, "%s", peer);
        return;
    }
    /* Right to left while the current hop is trusted. */
    end = chain.p + chain.len;
    for (int hops = 0; l->n && chain.len && trusted_bin(l, cur) && hops < PROXY_MAX_HOPS; hops++) {
        const char *start = end;
        while (start > chain.p && start[-1] != ',')
            start--;
        if (!hop_addr(start, (size_t)(end - start), forwarded.len != 0, hop)) break;
        memcpy(cur, hop, 16);
        if (start == chain.p) break;
        end = start - 1;
    }
    ip_text(cur, out);
}
