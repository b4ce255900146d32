/* hub_int.h - what the files of the hub share (internal to src/chat; see hub.h).
 *
 *   hub.c           threads, write jobs, rooms and subscriptions, storage reads, sync requests
 *   hub_sub.c       one connection's stream of one room: order, gaps, buffers (no I/O)
 *   hub_conn.c      connection lifecycle, requests in flight, ended sessions
 *   hub_deliver.c   committed batches to subscribers
 *   hub_presence.c  presence and typing
 */
#ifndef CD_HUB_INT_H
#define CD_HUB_INT_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

#include "chat/hub.h"
#include "chat/hub_sub.h"
#include "util/imap.h"

struct hub_room {
    int64_t id;
    int64_t last_seq;     /* highest seq seen on this thread (load or live) */
    int64_t member_count; /* from the last load or member event */
    struct hub_sub **subs;
    uint32_t n, cap;
};

struct hub_conn {
    struct conn *c;
    int64_t user;
    int64_t sid; /* login session of its access token (0: none) */
    struct hub_sub **subs;
    uint32_t n, cap;
    uint8_t loaded : 1, released : 1, came_online : 1;
    uint8_t req_paused : 1; /* not read: max_inflight requests unanswered */
    uint16_t requests;      /* requests in flight (hub_request_begin) */
    uint32_t stamp;         /* presence de-duplication */
    struct hub_conn *user_next;
};

struct hub_user {
    int64_t id;
    struct hub_conn *conns;
};

struct typing_ent {
    struct hub_conn *hc;
    int64_t room;
    uint32_t expires;
};

struct hub {
    struct net_io *io;
    struct imap rooms; /* id -> hub_room with local subscribers */
    struct imap users; /* id -> hub_user with local connections */
    uint32_t stamp;
    struct typing_ent *typing;
    uint32_t ntyping, captyping;
    struct store_job *jhead, *jtail; /* write jobs of this loop iteration */
    size_t jn;                       /* how many */
    _Atomic uint64_t deliveries;     /* hub__tl_deliveries as of the last loop end (/metrics) */
};

/* Frames this thread queued to connections: a plain counter on the delivery path, published
 * into the hub once per loop iteration (hub_loop_end), so no atomic per recipient. */
extern __thread uint64_t hub__tl_deliveries;

extern struct hub_env hub__env;

static inline struct hub *hub__of(struct net_io *io)
{
    return io->app;
}

/* hub.c */
struct hub_sub *hub__find_sub(struct hub_conn *hc, int64_t room);
struct hub_room *hub__room_get(struct hub *h, int64_t id, int create);
struct hub_sub *hub__subscribe(struct hub *h, struct hub_conn *hc, int64_t room_id,
                               int64_t next_seq, int64_t last_seq, int64_t member_count);
void hub__send_json(struct hub_conn *hc, json_t *o);

/* hub_conn.c */
void hub__conn_loaded(struct hub *h, struct hub_conn *hc, const int64_t *rooms, uint32_t n);
/* One of hc's requests is answered. */
void hub__request_done(struct hub_conn *hc);
/* Close the connections opened with session sid: of user, or of every user when user is 0. */
void hub__session_end(struct hub *h, int64_t user, int64_t sid);

/* hub_presence.c */
/* The rooms of hc that get its presence (small enough), in a new array; *n = count. */
int64_t *hub__presence_rooms(struct hub_conn *hc, uint32_t *n);
void hub__publish_presence(struct hub_conn *hc, const char *status, int64_t last_seen);
/* Forget hc's typing indicators (publish: announce typing:false for each). */
void hub__typing_drop(struct hub *h, struct hub_conn *hc, int publish);

#endif
