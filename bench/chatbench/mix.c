/* mix.c - the `mix` scenario: load shaped like real chat (and like Centrifugo's published
 * million-connection test) rather than one big room.
 *
 * World (made through REST before the workers start, by --setup-procs parallel clients):
 *   - --users users; connection g belongs to user g % users (--conns defaults to one per user);
 *   - --rooms-per-user layers of group rooms: in each layer the users are shuffled and dealt into
 *     users / --room-size rooms, so every user is in --rooms-per-user groups of about --room-size;
 *   - about --dms direct rooms per user: user i opens a DM with i + k * step for k = 1..dms/2, so
 *     each user is in dms/2 DMs it opened and dms/2 it was invited to.
 * Load:
 *   - the first connection of users 0..S-1 sends, S = users * --senders-share (the users are
 *     shuffled into rooms, so these are spread over the rooms); together they offer --rate
 *     msgs/s, open loop, each message to a random room of its user, acked after commit;
 *   - --churn connections/s (round robin, skipping any with unacked sends) are reset and
 *     reconnected; after hello they `sync` every room from the last seq they saw.
 * Checks, per connection and room: seqs arrive exactly once and contiguously (the sender's own
 * message is its ack, which carries the seq). A seq at or below the last seen is a dup, a jump a
 * gap; a window message that never arrives is a drop (expected = the room's member connections
 * minus the sending one, counted at send time).
 */
#include "cb.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t mrng = 0x9E3779B97F4A7C15ull;

static uint32_t mrand(void)
{
    mrng ^= mrng << 13;
    mrng ^= mrng >> 7;
    mrng ^= mrng << 17;
    return (uint32_t)(mrng >> 11);
}

/* ---- setup ---- */

struct mix_ctx {
    const char *prefix;
    struct cb_user *users; /* shared with the setup children */
    struct cb_room *rooms; /* shared */
    int ngroups;
    int *gmem_off, *gmem; /* group g's members: gmem[gmem_off[g]..gmem_off[g+1]), owner first */
    int *dm_a, *dm_b;     /* DM d: opened by dm_a[d] with dm_b[d] */
};

typedef int (*item_fn)(const struct cb_opts *o, const struct mix_ctx *x, int i, int *fd);

/* Run fn on items 0..n-1 in o->setup_procs child processes. Returns 0 or -1. */
static int par_for(const struct cb_opts *o, const struct mix_ctx *x, int n, item_fn fn)
{
    volatile int *failed =
        mmap(NULL, sizeof *failed, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (failed == MAP_FAILED) return -1;
    *failed = 0;
    int np = o->setup_procs < n ? o->setup_procs : n;
    pid_t pids[64];
    int started = 0;
    fflush(stderr);
    for (int k = 0; k < np; k++) {
        pid_t pid = fork();
        if (pid < 0) {
            *failed = 1;
            break;
        }
        if (pid == 0) {
            int fd = -1;
            for (int i = k; i < n && !*failed; i += np)
                if (fn(o, x, i, &fd) != 0) *failed = 1;
            if (fd >= 0) close(fd);
            _exit(0);
        }
        pids[started++] = pid;
    }
    for (int k = 0; k < started; k++) {
        int status;
        if (waitpid(pids[k], &status, 0) != pids[k] || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0)
            *failed = 1;
    }
    int rc = *failed ? -1 : 0;
    munmap((void *)failed, sizeof *failed);
    return rc;
}

static int reg_item(const struct cb_opts *o, const struct mix_ctx *x, int i, int *fd)
{
    return cb_chatd_register(o, fd, x->prefix, i, &x->users[i]);
}

/* POST and keep the room's id and last_seq. */
static int room_post(const struct cb_opts *o, int *fd, const char *path, const char *token,
                     const char *json, struct cb_room *r)
{
    char *body = NULL;
    int st = cb_http(fd, o->host, o->port, "POST", path, token, json, &body);
    long long last = body ? cb_json_num(body, "last_seq") : -1;
    int ok = (st == 201 || st == 200) && body &&
             cb_json_str(body, "id", r->id, sizeof r->id) == 0 && last >= 0;
    if (ok)
        r->last_seq = (uint64_t)last;
    else
        fprintf(stderr, "chatbench: mix: POST %s failed: HTTP %d %.200s\n", path, st,
                body ? body : "");
    free(body);
    return ok ? 0 : -1;
}

static int group_item(const struct cb_opts *o, const struct mix_ctx *x, int g, int *fd)
{
    int a = x->gmem_off[g], b = x->gmem_off[g + 1];
    size_t cap = 128 + (size_t)(b - a) * (sizeof x->users[0].id + 4);
    char *json = malloc(cap);
    if (!json) return -1;
    size_t n = (size_t)snprintf(json, cap, "{\"name\":\"mix %d\",\"members\":[", g);
    for (int i = a + 1; i < b; i++)
        n += (size_t)snprintf(json + n, cap - n, "%s\"%s\"", i > a + 1 ? "," : "",
                              x->users[x->gmem[i]].id);
    snprintf(json + n, cap - n, "]}");
    int rc = room_post(o, fd, "/v1/rooms", x->users[x->gmem[a]].token, json, &x->rooms[g]);
    free(json);
    return rc;
}

static int dm_item(const struct cb_opts *o, const struct mix_ctx *x, int d, int *fd)
{
    char json[128];
    snprintf(json, sizeof json, "{\"user_id\":\"%s\"}", x->users[x->dm_b[d]].id);
    return room_post(o, fd, "/v1/dms", x->users[x->dm_a[d]].token, json, &x->rooms[x->ngroups + d]);
}

static uint32_t fnv(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void *shared_alloc(size_t n)
{
    void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int cb_mix_setup(const struct cb_opts *o, struct cb_world *world)
{
    int U = o->users, L = o->rooms_per_user, rs = o->room_size;
    int gpl = U / rs > 0 ? U / rs : 1; /* groups per layer */
    int G = L * gpl;
    int half = o->dms / 2;
    if (half > (U - 1) / 2) half = (U - 1) / 2;
    int step = U / (2 * half + 1) > 0 ? U / (2 * half + 1) : 1;
    int ND = U * half;
    int R = G + ND;
    int rc = -1;
    struct mix_ctx x = {0};
    char prefix[24];
    snprintf(prefix, sizeof prefix, "mx%08x", (unsigned)(time(NULL) ^ (getpid() << 16)));
    x.prefix = prefix;
    x.ngroups = G;
    x.users = shared_alloc((size_t)U * sizeof *x.users);
    x.rooms = shared_alloc((size_t)R * sizeof *x.rooms);
    x.gmem_off = calloc((size_t)G + 1, sizeof *x.gmem_off);
    x.gmem = calloc((size_t)U * (size_t)L, sizeof *x.gmem);
    x.dm_a = calloc((size_t)ND + 1, sizeof *x.dm_a);
    x.dm_b = calloc((size_t)ND + 1, sizeof *x.dm_b);
    int *perm = calloc((size_t)U, sizeof *perm);
    int *cnt = calloc((size_t)G, sizeof *cnt);
    if (!x.users || !x.rooms || !x.gmem_off || !x.gmem || !x.dm_a || !x.dm_b || !perm || !cnt)
        goto done;

    /* Deal each layer's shuffled users into its groups: member i of the shuffle goes to group
     * i % gpl, so sizes differ by at most one. */
    for (int g = 0; g < G; g++)
        x.gmem_off[g + 1] = x.gmem_off[g] + U / gpl + (g % gpl < U % gpl);
    uint64_t saved = mrng;
    mrng = 0x5DEECE66Dull * 2654435761u + (uint64_t)U; /* the same world for the same --users */
    for (int l = 0; l < L; l++) {
        for (int i = 0; i < U; i++)
            perm[i] = i;
        for (int i = U - 1; i > 0; i--) {
            int j = (int)(mrand() % (uint32_t)(i + 1));
            int t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (int i = 0; i < U; i++) {
            int g = l * gpl + i % gpl;
            x.gmem[x.gmem_off[g] + cnt[g]++] = perm[i];
        }
    }
    mrng = saved;
    for (int i = 0, d = 0; i < U; i++)
        for (int k = 1; k <= half; k++, d++) {
            x.dm_a[d] = i;
            x.dm_b[d] = (i + k * step) % U;
        }

    uint64_t t0 = cb_now();
    if (par_for(o, &x, U, reg_item) != 0) goto done;
    uint64_t t1 = cb_now();
    if (par_for(o, &x, G, group_item) != 0) goto done;
    uint64_t t2 = cb_now();
    if (par_for(o, &x, ND, dm_item) != 0) goto done;
    uint64_t t3 = cb_now();

    /* The world the workers read: private copies, each user's rooms, members' connections. */
    world->users = malloc((size_t)U * sizeof *world->users);
    world->rooms = malloc((size_t)R * sizeof *world->rooms);
    world->user_room_off = calloc((size_t)U + 1, sizeof *world->user_room_off);
    world->user_rooms = calloc((size_t)U * (size_t)(L + 2 * half) + 1, sizeof *world->user_rooms);
    world->room_conns = calloc((size_t)R, sizeof *world->room_conns);
    uint32_t hcap = 16;
    while (hcap < (uint32_t)R * 2)
        hcap <<= 1;
    world->room_hash = calloc(hcap, sizeof *world->room_hash);
    if (!world->users || !world->rooms || !world->user_room_off || !world->user_rooms ||
        !world->room_conns || !world->room_hash)
        goto done;
    memcpy(world->users, x.users, (size_t)U * sizeof *world->users);
    memcpy(world->rooms, x.rooms, (size_t)R * sizeof *world->rooms);
    world->nusers = U;
    world->nrooms = R;
    world->ngroups = G;
    world->ndms = ND;
    world->room_hash_mask = hcap - 1;
    for (int u = 0; u < U; u++)
        world->user_room_off[u + 1] = world->user_room_off[u] + L + 2 * half;
    int *fill = calloc((size_t)U, sizeof *fill);
    if (!fill) goto done;
    int C = o->conns;
    for (int g = 0; g < G; g++)
        for (int i = x.gmem_off[g]; i < x.gmem_off[g + 1]; i++) {
            int u = x.gmem[i];
            world->user_rooms[world->user_room_off[u] + fill[u]++] = g;
            world->room_conns[g] += (uint32_t)(C / U + (u < C % U));
        }
    for (int d = 0; d < ND; d++) {
        int a = x.dm_a[d], b = x.dm_b[d];
        world->user_rooms[world->user_room_off[a] + fill[a]++] = G + d;
        world->user_rooms[world->user_room_off[b] + fill[b]++] = G + d;
        world->room_conns[G + d] += (uint32_t)(C / U + (a < C % U) + C / U + (b < C % U));
    }
    free(fill);
    for (int r = 0; r < R; r++) {
        const char *id = world->rooms[r].id;
        uint32_t h = fnv((const uint8_t *)id, strlen(id)) & world->room_hash_mask;
        while (world->room_hash[h])
            h = (h + 1) & world->room_hash_mask;
        world->room_hash[h] = r + 1;
    }
    if (!o->quiet)
        fprintf(stderr,
                "chatbench: mix setup: %d users in %.1f s, %d groups of ~%d in %.1f s, %d DMs in "
                "%.1f s (%d clients)\n",
                U, (double)(t1 - t0) / 1e9, G, rs, (double)(t2 - t1) / 1e9, ND,
                (double)(t3 - t2) / 1e9, o->setup_procs);
    rc = 0;
done:
    if (x.users) munmap(x.users, (size_t)U * sizeof *x.users);
    if (x.rooms) munmap(x.rooms, (size_t)R * sizeof *x.rooms);
    free(x.gmem_off);
    free(x.gmem);
    free(x.dm_a);
    free(x.dm_b);
    free(perm);
    free(cnt);
    if (rc != 0) fputs("chatbench: mix setup failed\n", stderr);
    return rc;
}

/* ---- worker side ---- */

static int room_index(const struct cb_world *wd, const uint8_t *id, size_t len)
{
    uint32_t h = fnv(id, len) & wd->room_hash_mask;
    for (;;) {
        int v = wd->room_hash[h];
        if (!v) return -1;
        const char *rid = wd->rooms[v - 1].id;
        if (strlen(rid) == len && memcmp(rid, id, len) == 0) return v - 1;
        h = (h + 1) & wd->room_hash_mask;
    }
}

void cb_mix_init_conn(struct cb_worker *w, struct cb_conn *c)
{
    const struct cb_world *wd = w->world;
    int a = wd->user_room_off[c->user], b = wd->user_room_off[c->user + 1];
    c->rseq = calloc((size_t)(b - a) + 1, sizeof *c->rseq);
    if (!c->rseq) abort();
    for (int k = 0; k < b - a; k++)
        c->rseq[k] = wd->rooms[wd->user_rooms[a + k]].last_seq;
    if (mrng == 0x9E3779B97F4A7C15ull)
        mrng ^= (uint64_t)getpid() * 0x2545F4914F6CDD1Dull ^ cb_now();
}

void cb_mix_pick_room(struct cb_worker *w, struct cb_conn *c)
{
    const struct cb_world *wd = w->world;
    int a = wd->user_room_off[c->user], b = wd->user_room_off[c->user + 1];
    c->room = (uint32_t)wd->user_rooms[a + (int)(mrand() % (uint32_t)(b - a))];
}

/* Room index and seq of an event; the position of the room in c's user's list in *k. */
static int parse_entry(struct cb_worker *w, struct cb_conn *c, const uint8_t *p, size_t n, int *k,
                       uint64_t *seq)
{
    const uint8_t *end = p + n;
    const uint8_t *r = memmem(p, n, "\"room\":\"", 8);
    if (!r) return -1;
    r += 8;
    const uint8_t *q = memchr(r, '"', (size_t)(end - r));
    if (!q) return -1;
    int room = room_index(w->world, r, (size_t)(q - r));
    const uint8_t *s = memmem(q, (size_t)(end - q), "\"seq\":", 6);
    if (room < 0 || !s) return -1;
    s += 6;
    uint64_t v = 0;
    int digits = 0;
    while (s < end && *s >= '0' && *s <= '9' && digits < 19) {
        v = v * 10 + (uint64_t)(*s++ - '0');
        digits++;
    }
    if (!digits) return -1;
    const struct cb_world *wd = w->world;
    int a = wd->user_room_off[c->user], b = wd->user_room_off[c->user + 1];
    for (int i = a; i < b; i++)
        if (wd->user_rooms[i] == room) {
            *k = i - a;
            *seq = v;
            return 0;
        }
    return -1;
}

/* Move c's view of room position k to seq; returns 1 when seq is new. */
static int advance(struct cb_worker *w, struct cb_conn *c, int k, uint64_t seq)
{
    static int shown;
    uint64_t last = c->rseq[k];
    if (seq <= last) {
        w->st->dups++;
        if (shown++ < 5)
            fprintf(stderr,
                    "chatbench[%d]: mix: connection %u: seq %" PRIu64 " again (last %" PRIu64 ")\n",
                    w->id, c->gid, seq, last);
        return 0;
    }
    if (seq > last + 1) {
        w->st->gaps += seq - last - 1;
        if (shown++ < 5)
            fprintf(stderr,
                    "chatbench[%d]: mix: connection %u: gap after seq %" PRIu64 " (got %" PRIu64
                    ")\n",
                    w->id, c->gid, last, seq);
    }
    c->rseq[k] = seq;
    return 1;
}

void cb_mix_on_message(struct cb_worker *w, struct cb_conn *c, const uint8_t *p, size_t n)
{
    int k;
    uint64_t seq;
    if (parse_entry(w, c, p, n, &k, &seq) != 0) {
        w->st->errors++;
        return;
    }
    if (!advance(w, c, k, seq)) return;
    if (!(n > 17 && memcmp(p, "{\"type\":\"message\"", 17) == 0))
        return; /* a member or room entry: it takes a seq, it is not a message */
    const uint8_t *b = memmem(p, n, "\"body\":\"#T", 10);
    if (!b || (size_t)(p + n - b) < 10 + 16) {
        w->st->errors++;
        return;
    }
    uint64_t ts = cb_hex(b + 10, 16);
    uint64_t snd = (size_t)(p + n - b) >= 10 + 27 ? cb_hex(b + 10 + 17, 8) : UINT64_MAX;
    if (ts == UINT64_MAX || snd == UINT64_MAX) {
        w->st->errors++;
        return;
    }
    w->st->received_total++;
    if (ts >= w->win_start && ts < w->win_end) {
        w->st->received++;
        if (c->syncing)
            w->st->replayed++;
        else
            cb_record_latency(w, c, ts, snd);
    }
}

void cb_mix_on_ack(struct cb_worker *w, struct cb_conn *c, const uint8_t *p, size_t n)
{
    int k;
    uint64_t seq;
    if (c->pending) c->pending--;
    if (parse_entry(w, c, p, n, &k, &seq) != 0) {
        w->st->errors++;
        return;
    }
    advance(w, c, k, seq);
}

void cb_mix_on_synced(struct cb_worker *w, struct cb_conn *c, const uint8_t *p, size_t n)
{
    c->syncing = 0;
    if (memmem(p, n, "\"has_more\":true", 15)) {
        w->st->errors++; /* more than --sync-max missed: not expected in this scenario */
        fprintf(stderr, "chatbench[%d]: mix: connection %u: sync has_more\n", w->id, c->gid);
    }
    if (c->reconnecting) {
        uint64_t now = cb_now();
        c->reconnecting = 0;
        w->st->reconnects++;
        cb_hist_add(&w->st->reconn, now - c->t_drop);
    }
}

void cb_mix_send_sync(struct cb_worker *w, struct cb_conn *c)
{
    const struct cb_world *wd = w->world;
    int a = wd->user_room_off[c->user], b = wd->user_room_off[c->user + 1];
    size_t cap = 64 + (size_t)(b - a) * (sizeof wd->rooms[0].id + 24);
    char *buf = malloc(cap);
    if (!buf) abort();
    size_t n = (size_t)snprintf(buf, cap, "{\"type\":\"sync\",\"id\":\"m%u\",\"rooms\":{", c->gid);
    for (int i = a; i < b; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s\"%s\":%" PRIu64, i > a ? "," : "",
                              wd->rooms[wd->user_rooms[i]].id, c->rseq[i - a]);
    n += (size_t)snprintf(buf + n, cap - n, "}}");
    c->syncing = 1;
    cb_send_frame(w, c, 1, buf, n);
    free(buf);
}
