/* wire.h - chat events as bytes between nodes (the bus payload, bus/bus.h).
 *
 * One bus message holds one or more records. A record is the event's routing fields and its
 * client JSON text (the committed fields as clients see them), never a WebSocket frame, a
 * pointer or a connection; the receiving node encodes the frame once. Little-endian:
 *
 *   u8 version (1) | u8 kind (enum fan_kind) | u8 member (enum fan_member) | u8 flags
 *   u32 nrooms | i64 room | i64 seq | i64 user | i64 member_count | u32 text_len | u32 0
 *   [trace context: u8 trace_id[16] | u8 span_id[8] | u8 trace_flags, when flags & 1]
 *   i64 rooms[nrooms] | text[text_len]
 *
 * The trace context (W3C ids of the span that published the record: bus hops join the trace of
 * the group commit that produced them) is optional and only written when tracing is on and the
 * span sampled: 25 bytes on a record that has one, nothing otherwise. A node that predates it
 * reads flags as 0 only from nodes without tracing: turn tracing on after every node is upgraded.
 *
 * Only FAN_LOG, FAN_TYPING (on the room's channel), FAN_PRESENCE, FAN_USER and FAN_SESSION_END
 * (on the control channel) cross nodes; replies, room-list loads and heads stay local.
 * Pure functions; any thread. */
#ifndef CD_WIRE_H
#define CD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "chat/fanout.h"
#include "util/jsonw.h"

#define WIRE_VERSION    1
#define WIRE_HEADER_LEN 48
#define WIRE_MAX_ROOMS  65536 /* rooms of one presence record */
#define WIRE_F_TRACE    1     /* flags: a trace context follows the header */
#define WIRE_TRACE_LEN  25

/* The channel ev travels on: its room, 0 for the control channel, -1 when it stays local. */
int64_t wire_channel(const struct fan_ev *ev);
/* Append ev's record to out (raw bytes, see jsonw_raw). ev must cross (wire_channel >= 0).
 * trace: the publishing span's context, written when valid and sampled; NULL = none. */
void wire_encode(struct jsonw *out, const struct fan_ev *ev, const struct trace_ctx *trace);
/* Decode every record of p[0..n) into events appended to b: frames are encoded here, nothing
 * refers to p afterwards. The first record's trace context, if any, goes to b->trace. CD_OK, or
 * CD_E_BAD_REQUEST for a malformed message (b then holds the records before the bad one). */
int wire_decode(const uint8_t *p, size_t n, struct fan_batch *b);

#endif
