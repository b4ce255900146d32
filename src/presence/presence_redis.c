#include "util/clock.h"
#include "presence/presence_redis.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/imap.h"
#include "util/log.h"
#include "util/rbuf.h"
#include "util/status.h"

#define REPORT_MS 250 /* how often admitted messages go to the shared rate buckets */

enum op_kind { OP_CONNECT, OP_DISCONNECT };

struct op {
    struct op *next;
    int kind;
    int64_t user, ms;
    int64_t *rooms;
    uint32_t nrooms;
};

struct presence_redis {
    struct presence_redis_cfg cfg;
    char node[128], host[256];
    int port, db;
    pthread_t thread;
    pthread_mutex_t mu; /* queue and stop */
    pthread_cond_t cv;
    struct op *head, *tail;
    int stop;
    redisContext *c; /* the thread's */
    redisContext *q; /* presence_redis_online's, under qmu */
    pthread_mutex_t qmu;
    struct imap local; /* users online on this node (thread only) */
    _Atomic int up;
    int64_t next_beat, next_try, next_report;
};

static redisContext *dial(struct presence_redis *pr)
{
    struct timeval tv = {0, 500000};
    redisContext *c = redisConnectWithTimeout(pr->host, pr->port, tv);
    if (!c || c->err) {
        if (c) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (pr->db) {
        redisReply *r = redisCommand(c, "SELECT %d", pr->db);
        int ok = r && r->type != REDIS_REPLY_ERROR;
        if (r) freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* The thread's connection failed: drop it; the loop dials again within a second. */
static void link_lost(struct presence_redis *pr)
{
    log_warn("redis presence link lost", "\"error\":\"%s\"", pr->c->errstr);
    redisFree(pr->c);
    pr->c = NULL;
    atomic_store(&pr->up, 0);
}

static redisReply *vcmd(struct presence_redis *pr, const char *fmt, va_list ap)
{
    redisReply *r;
    if (!pr->c) return NULL;
    r = redisvCommand(pr->c, fmt, ap);
    if (!r || pr->c->err) {
        if (r) freeReplyObject(r);
        link_lost(pr);
        return NULL;
    }
    return r;
}

/* Run a command on the thread's connection; NULL (and the link marked down) on failure. */
static redisReply *cmd(struct presence_redis *pr, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    va_start(ap, fmt);
    r = vcmd(pr, fmt, ap);
    va_end(ap);
    return r;
}

/* The same when the reply does not matter. */
static void cmd_void(struct presence_redis *pr, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    va_start(ap, fmt);
    r = vcmd(pr, fmt, ap);
    va_end(ap);
    if (r) freeReplyObject(r);
}

/* Nodes of user whose entries have not expired; -1 when Redis cannot say. */
static long long live_nodes(struct presence_redis *pr, int64_t user, int64_t now)
{
    redisReply *r = cmd(pr, "ZCOUNT chatd:pu:%lld %lld +inf", (long long)user, (long long)now);
    long long n = -1;
    if (r && r->type == REDIS_REPLY_INTEGER) n = r->integer;
    if (r) freeReplyObject(r);
    return n;
}

static void register_user(struct presence_redis *pr, int64_t user, int64_t now)
{
    int64_t exp = now + pr->cfg.ttl_ms;
    cmd_void(pr, "ZADD chatd:pu:%lld %lld %s", (long long)user, (long long)exp, pr->node);
    cmd_void(pr, "PEXPIRE chatd:pu:%lld %u", (long long)user, 4 * pr->cfg.ttl_ms);
    cmd_void(pr, "SADD chatd:nu:%s %lld", pr->node, (long long)user);
}

/* Heartbeat: this node and each of its users live for another ttl. Pipelined. */
static void beat(struct presence_redis *pr, int64_t now)
{
    int64_t exp = now + pr->cfg.ttl_ms;
    struct imap_ent *e;
    uint32_t i, n = 3;
    redisAppendCommand(pr->c, "ZADD chatd:nodes %lld %s", (long long)exp, pr->node);
    redisAppendCommand(pr->c, "PEXPIRE chatd:nodes %u", 100 * pr->cfg.ttl_ms);
    redisAppendCommand(pr->c, "PEXPIRE chatd:nu:%s %u", pr->node, 4 * pr->cfg.ttl_ms);
    for (e = imap_first(&pr->local, &i); e; e = imap_next(&pr->local, e, &i)) {
        redisAppendCommand(pr->c, "ZADD chatd:pu:%lld %lld %s", (long long)e->key, (long long)exp,
                           pr->node);
        redisAppendCommand(pr->c, "PEXPIRE chatd:pu:%lld %u", (long long)e->key,
                           4 * pr->cfg.ttl_ms);
        n += 2;
    }
    for (uint32_t k = 0; k < n; k++) {
        void *r = NULL;
        if (redisGetReply(pr->c, &r) != REDIS_OK) {
            link_lost(pr);
            return;
        }
        freeReplyObject(r);
    }
}

/* Nodes whose heartbeat expired: one live node (SET NX) removes them from their users and
 * reports the users left with no node as offline. */
static void sweep(struct presence_redis *pr, int64_t now)
{
    redisReply *dead = cmd(pr, "ZRANGEBYSCORE chatd:nodes -inf %lld", (long long)now - 1);
    if (!dead || dead->type != REDIS_REPLY_ARRAY) {
        if (dead) freeReplyObject(dead);
        return;
    }
    for (size_t i = 0; i < dead->elements && pr->c; i++) {
        const char *node = dead->element[i]->str;
        redisReply *lock, *users;
        if (!node || !strcmp(node, pr->node)) continue;
        lock = cmd(pr, "SET chatd:sweep:%s %s NX PX %u", node, pr->node, pr->cfg.ttl_ms);
        if (!lock || lock->type != REDIS_REPLY_STATUS) {
            if (lock) freeReplyObject(lock);
            continue;
        }
        freeReplyObject(lock);
        users = cmd(pr, "SMEMBERS chatd:nu:%s", node);
        for (size_t k = 0; users && users->type == REDIS_REPLY_ARRAY && k < users->elements; k++) {
            int64_t user = strtoll(users->element[k]->str, NULL, 10);
            cmd_void(pr, "ZREM chatd:pu:%lld %s", (long long)user, node);
            if (live_nodes(pr, user, now) == 0) pr->cfg.offline(pr->cfg.ud, user, now, NULL, 0);
        }
        if (users) freeReplyObject(users);
        cmd_void(pr, "DEL chatd:nu:%s", node);
        cmd_void(pr, "ZREM chatd:nodes %s", node);
        log_info("presence: dead node swept", "\"node\":\"%s\"", node);
    }
    freeReplyObject(dead);
}

/* A token bucket in Redis shared by the nodes: KEYS[1] holds {tokens, ms}; ARGV = rate per s,
 * burst, now ms, tokens taken. Returns the ms until the bucket holds a token again (0 if it
 * still does). */
static const char bucket_lua[] =
    "local t = redis.call('HMGET', KEYS[1], 't', 'ms') "
    "local rate, burst, now, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), "
    "tonumber(ARGV[4]) "
    "local tokens, last = tonumber(t[1]) or burst, tonumber(t[2]) or now "
    "if now > last then tokens = math.min(burst, tokens + (now - last) * rate / 1000) end "
    "tokens = tokens - n "
    "redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ms', tostring(math.max(now, last))) "
    "redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000) "
    "if tokens >= 1 then return 0 end "
    "return math.ceil((1 - tokens) * 1000 / rate)";

struct sent_list {
    int64_t *user;
    uint32_t *n;
    uint32_t len, cap;
};

static void sent_emit(void *arg, int64_t user, uint32_t n)
{
    struct sent_list *l = arg;
    if (l->len == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->user = xrealloc(l->user, l->cap * sizeof(*l->user));
        l->n = xrealloc(l->n, l->cap * sizeof(*l->n));
    }
    l->user[l->len] = user;
    l->n[l->len++] = n;
}

/* Report what this node admitted since the last pass to the shared buckets (pipelined). */
static void report_sent(struct presence_redis *pr, int64_t now)
{
    struct sent_list l = {0};
    pr->cfg.collect(pr->cfg.ud, sent_emit, &l);
    for (uint32_t i = 0; i < l.len; i++)
        redisAppendCommand(pr->c, "EVAL %s 1 chatd:rl:%lld %f %f %lld %u", bucket_lua,
                           (long long)l.user[i], pr->cfg.msg_rate, pr->cfg.msg_burst,
                           (long long)now, l.n[i]);
    for (uint32_t i = 0; i < l.len && pr->c; i++) {
        redisReply *r = NULL;
        if (redisGetReply(pr->c, (void **)&r) != REDIS_OK) {
            link_lost(pr);
            break;
        }
        if (r->type == REDIS_REPLY_INTEGER && r->integer > 0)
            pr->cfg.block(pr->cfg.ud, l.user[i], now + r->integer);
        else if (r->type == REDIS_REPLY_ERROR)
            log_warn("redis rate bucket failed", "\"error\":\"%s\"", r->str);
        freeReplyObject(r);
    }
    free(l.user);
    free(l.n);
}

static void run_op(struct presence_redis *pr, struct op *o, int64_t now)
{
    static const int64_t none = 0; /* rooms of a user with none to tell: not NULL (look up) */
    if (o->kind == OP_CONNECT) {
        imap_put(&pr->local, o->user, (void *)1);
        register_user(pr, o->user, now);
        /* Gone again before this ran: its disconnect is queued behind, nothing to announce. */
        if (!pr->cfg.online_here || pr->cfg.online_here(pr->cfg.ud, o->user))
            pr->cfg.online(pr->cfg.ud, o->user, o->rooms, o->nrooms);
        return;
    }
    imap_del(&pr->local, o->user);
    if (pr->c) {
        cmd_void(pr, "ZREM chatd:pu:%lld %s", (long long)o->user, pr->node);
        cmd_void(pr, "SREM chatd:nu:%s %lld", pr->node, (long long)o->user);
    }
    /* Back on this node already (its connect is queued behind), or still on another live node:
     * nobody is told. Redis down: this node's view decides. */
    if (pr->cfg.online_here && pr->cfg.online_here(pr->cfg.ud, o->user)) return;
    if (pr->c && live_nodes(pr, o->user, now) > 0) return;
    pr->cfg.offline(pr->cfg.ud, o->user, o->ms, o->rooms ? o->rooms : &none, o->nrooms);
}

static void *thread_main(void *arg)
{
    struct presence_redis *pr = arg;
    int stopping = 0;

    for (;;) {
        struct op *list;
        int64_t now = clock_unix_ms();

        if (!pr->c && now >= pr->next_try) {
            pr->c = dial(pr);
            pr->next_try = now + 1000;
            if (pr->c) { /* (re)connected: this node's users are online again */
                struct imap_ent *e;
                uint32_t i;
                atomic_store(&pr->up, 1);
                log_info("redis presence connected", "\"node\":\"%s\"", pr->node);
                for (e = imap_first(&pr->local, &i); e && pr->c; e = imap_next(&pr->local, e, &i))
                    register_user(pr, e->key, now);
                pr->next_beat = 0;
            }
        }
        if (pr->c && now >= pr->next_beat) {
            beat(pr, now);
            if (pr->c) sweep(pr, now);
            pr->next_beat = now + pr->cfg.ttl_ms / 3;
        }
        if (pr->c && pr->cfg.msg_rate > 0 && now >= pr->next_report) {
            report_sent(pr, now);
            pr->next_report = now + REPORT_MS;
        }
        pthread_mutex_lock(&pr->mu);
        if (!pr->head && !pr->stop) {
            struct timespec ts;
            int64_t wake = pr->c ? pr->next_beat : pr->next_try;
            if (pr->c && pr->cfg.msg_rate > 0 && pr->next_report < wake) wake = pr->next_report;
            int64_t wait = wake - clock_unix_ms();
            if (wait < 10) wait = 10;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (long)(wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&pr->cv, &pr->mu, &ts);
        }
        list = pr->head;
        pr->head = pr->tail = NULL;
        stopping = pr->stop;
        pthread_mutex_unlock(&pr->mu);
        while (list) {
            struct op *next = list->next;
            run_op(pr, list, clock_unix_ms());
            free(list->rooms);
            free(list);
            list = next;
        }
        if (stopping) break;
    }
    if (pr->c) { /* leaving: this node holds nobody any more */
        struct imap_ent *e;
        uint32_t i;
        for (e = imap_first(&pr->local, &i); e && pr->c; e = imap_next(&pr->local, e, &i))
            cmd_void(pr, "ZREM chatd:pu:%lld %s", (long long)e->key, pr->node);
        cmd_void(pr, "DEL chatd:nu:%s", pr->node);
        cmd_void(pr, "ZREM chatd:nodes %s", pr->node);
    }
    return NULL;
}

static void push(struct presence_redis *pr, struct op *o)
{
    pthread_mutex_lock(&pr->mu);
    if (pr->tail)
        pr->tail->next = o;
    else
        pr->head = o;
    pr->tail = o;
    pthread_cond_signal(&pr->cv);
    pthread_mutex_unlock(&pr->mu);
}

static struct op *op_new(int kind, int64_t user, const int64_t *rooms, uint32_t nrooms)
{
    struct op *o = xcalloc(1, sizeof(*o));
    o->kind = kind;
    o->user = user;
    if (nrooms) {
        o->rooms = xmalloc(nrooms * sizeof(*o->rooms));
        memcpy(o->rooms, rooms, nrooms * sizeof(*o->rooms));
        o->nrooms = nrooms;
    }
    return o;
}

void presence_redis_connect(struct presence_redis *pr, int64_t user, const int64_t *rooms,
                            uint32_t nrooms)
{
    push(pr, op_new(OP_CONNECT, user, rooms, nrooms));
}

void presence_redis_disconnect(struct presence_redis *pr, int64_t user, int64_t now_ms,
                               const int64_t *rooms, uint32_t nrooms)
{
    struct op *o = op_new(OP_DISCONNECT, user, rooms, nrooms);
    o->ms = now_ms;
    push(pr, o);
}

int presence_redis_online(struct presence_redis *pr, int64_t user, int *online)
{
    redisReply *r = NULL;
    int rc = CD_E_UNAVAILABLE;
    pthread_mutex_lock(&pr->qmu);
    if (!pr->q) pr->q = dial(pr);
    if (pr->q) {
        r = redisCommand(pr->q, "ZCOUNT chatd:pu:%lld %lld +inf", (long long)user,
                         (long long)clock_unix_ms());
        if (r && r->type == REDIS_REPLY_INTEGER) {
            *online = r->integer > 0;
            rc = CD_OK;
        } else if (!r || pr->q->err) {
            redisFree(pr->q);
            pr->q = NULL;
        }
        if (r) freeReplyObject(r);
    }
    pthread_mutex_unlock(&pr->qmu);
    return rc;
}

int presence_redis_connected(struct presence_redis *pr)
{
    return atomic_load(&pr->up);
}

static int parse_url(struct presence_redis *pr, const char *url)
{
    const char *p = url, *colon, *slash;
    size_t hl;
    if (strncmp(p, "redis://", 8) != 0) return CD_E_INVALID_FIELD;
    p += 8;
    slash = strchr(p, '/');
    colon = memchr(p, ':', slash ? (size_t)(slash - p) : strlen(p));
    hl = colon ? (size_t)(colon - p) : slash ? (size_t)(slash - p) : strlen(p);
    if (hl == 0 || hl >= sizeof(pr->host)) return CD_E_INVALID_FIELD;
    memcpy(pr->host, p, hl);
    pr->host[hl] = '\0';
    pr->port = colon ? atoi(colon + 1) : 6379;
    pr->db = slash ? atoi(slash + 1) : 0;
    if (pr->port <= 0 || pr->port > 65535 || pr->db < 0) return CD_E_INVALID_FIELD;
    return CD_OK;
}

int presence_redis_open(const struct presence_redis_cfg *cfg, struct presence_redis **out)
{
    struct presence_redis *pr = xcalloc(1, sizeof(*pr));
    pr->cfg = *cfg;
    if (pr->cfg.ttl_ms < 1000) pr->cfg.ttl_ms = 1000;
    snprintf(pr->node, sizeof(pr->node), "%s", cfg->node);
    pr->cfg.node = pr->node;
    pr->cfg.url = NULL;
    if (parse_url(pr, cfg->url) != CD_OK) {
        free(pr);
        return CD_E_INVALID_FIELD;
    }
    pthread_mutex_init(&pr->mu, NULL);
    pthread_mutex_init(&pr->qmu, NULL);
    pthread_cond_init(&pr->cv, NULL);
    imap_init(&pr->local);
    if (pthread_create(&pr->thread, NULL, thread_main, pr) != 0) {
        free(pr);
        return CD_E_IO;
    }
    *out = pr;
    return CD_OK;
}

void presence_redis_close(struct presence_redis *pr)
{
    if (!pr) return;
    pthread_mutex_lock(&pr->mu);
    pr->stop = 1;
    pthread_cond_signal(&pr->cv);
    pthread_mutex_unlock(&pr->mu);
    pthread_join(pr->thread, NULL);
    if (pr->c) redisFree(pr->c);
    if (pr->q) redisFree(pr->q);
    imap_free(&pr->local);
    pthread_cond_destroy(&pr->cv);
    pthread_mutex_destroy(&pr->mu);
    pthread_mutex_destroy(&pr->qmu);
    free(pr);
}
