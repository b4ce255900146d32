/* proxy.h - the real client address behind trusted reverse proxies (--trusted-proxies).
 *
 * A request whose TCP peer is in the trusted list may name the client in `Forwarded` (RFC 7239,
 * its for= parameters) or, without one, in `X-Forwarded-For`. The client is the right-most
 * address of that chain that is not itself a trusted proxy: each trusted proxy appends the
 * address it received from, so only entries added by trusted hops are believed, and a client
 * cannot pose as another by sending the header itself. A peer not in the list, or an empty list:
 * the peer is the client and the headers are ignored. Pure functions; no allocation per call.
 */
#ifndef CD_PROXY_H
#define CD_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

#define PROXY_MAX_NETS 64 /* CIDRs in one list */
#define PROXY_MAX_HOPS 32 /* addresses of a chain looked at, from the right */
#define PROXY_IP_LEN   46 /* INET6_ADDRSTRLEN */

struct proxy_net {
    uint8_t addr[16]; /* IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d) */
    uint8_t bits;     /* prefix length over the 128 bits */
};

struct proxy_list {
    struct proxy_net nets[PROXY_MAX_NETS];
    uint32_t n;
};

/* Parse "cidr[,cidr...]" (a.b.c.d/n, v6/n, or a bare address = one host; spaces allowed around
 * commas; empty = none) into l. CD_OK, or CD_E_INVALID_FIELD (bad address, prefix, or more than
 * PROXY_MAX_NETS entries). */
int proxy_list_parse(struct proxy_list *l, const char *spec);
/* 1 when the address text ip (IPv4 or IPv6) is in one of l's networks. */
int proxy_trusted(const struct proxy_list *l, const char *ip);

/* The client address of a request from peer (its TCP peer's address text): written to out
 * (PROXY_IP_LEN + 1 bytes) in its canonical text form. forwarded / xff: the values of every
 * Forwarded / X-Forwarded-For header of the request in order (comma-joined), or empty slices. */
void proxy_client_ip(const struct proxy_list *l, const char *peer, struct slice forwarded,
                     struct slice xff, char out[PROXY_IP_LEN + 1]);

#endif
