/* roles_notifier.c - offline notifications (see roles_notifier.h). Per message: one members
 * page, one presence question and one mute lookup per member (O(members)); a username lookup
 * only when the text contains '@'. The notifications of a batch are queued in one write. */
#include "roles/roles_notifier.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/outbox.h"
#include "roles/roles_db.h"
#include "roles/roles_webhook.h"
#include "util/clock.h"
#include "util/imap.h"
#include "util/log.h"
#include "util/status.h"

#define PRUNE_EVERY    4096  /* messages between sweeps of the in-memory copy of the windows */
#define PRUNE_EVERY_MS 60000 /* between prunes of the stored windows */

struct roles_notifier {
    struct store_db *db;
    struct roles_notifier_cfg cfg;
    struct outbox_consumer *oc;
    struct imap last; /* room id -> struct imap * (user id -> last notified ts); consumer thread */
    uint64_t seen;
    int64_t last_prune_ms;
};

/* A notification built during a batch and decided at its end: the stored window
 * (store_ops.notify_take) says whether it goes out, in the transaction that queues it. */
struct note {
    char event_id[STORE_EVENT_ID_MAX + 1];
    char *body; /* the JSON sent (malloc'ed) */
    size_t len;
    int64_t user, room, ts, seq, sender;
    char *excerpt; /* malloc'ed copy, for the log line */
    int mention;
    int taken; /* set by the write: the window was open */
};

struct notes {
    struct note *v;
    size_t n, cap;
    int has_webhook;
    int64_t window_ms;
    size_t from, to; /* the slice [from, to) one write decides */
};

size_t roles_notifier_excerpt_len(const char *text, size_t len, size_t max)
{
    if (len <= max) return len;
    /* Back off continuation bytes (10xxxxxx): the cut then falls before a lead byte. */
    while (max > 0 && ((unsigned char)text[max] & 0xC0) == 0x80)
        max--;
    return max;
}

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

int roles_notifier_mentions(const char *text, size_t len, const char *username)
{
    size_t un = strlen(username);
    for (const char *p = text, *end = text + len; p < end;) {
        const char *at = memchr(p, '@', (size_t)(end - p));
        if (!at) break;
        if ((size_t)(end - at - 1) >= un && !memcmp(at + 1, username, un) &&
            (at + 1 + un == end || !name_char(at[1 + un])))
            return 1;
        p = at + 1;
    }
    return 0;
}

/* The in-memory copy of the windows this process opened: 1 when (user, room) was notified
 * less than a window before ts (skip without asking storage). The stored window decides
 * otherwise (another process, or one before a restart, may have notified). */
static int window_recent(struct roles_notifier *nf, int64_t room, int64_t user, int64_t ts)
{
    struct imap *users = imap_get(&nf->last, room);
    int64_t prev = users ? (int64_t)(intptr_t)imap_get(users, user) : 0;
    return prev && ts - prev < nf->cfg.window_ms;
}

/* Remember a window opened at ts (the store took it). */
static void window_note(struct roles_notifier *nf, int64_t room, int64_t user, int64_t ts)
{
    struct imap *users = imap_get(&nf->last, room);
    if (!users) {
        if (!(users = malloc(sizeof(*users)))) return;
        imap_init(users);
        imap_put(&nf->last, room, users);
    }
    imap_put(users, user, (void *)(intptr_t)(ts ? ts : 1));
}

/* Forget windows that have passed (bounded memory: pairs notified within one window). */
static void window_prune(struct roles_notifier *nf, int64_t now)
{
    uint32_t i, j;
    for (struct imap_ent *e = imap_first(&nf->last, &i); e;) {
        struct imap *users = e->val;
        int64_t room = e->key;
        e = imap_next(&nf->last, e, &i);
        for (struct imap_ent *u = imap_first(users, &j); u;) {
            int64_t user = u->key, ts = (int64_t)(intptr_t)u->val;
            u = imap_next(users, u, &j);
            if (now - ts >= nf->cfg.window_ms) imap_del(users, user);
        }
        if (users->n == 0) {
            imap_del(&nf->last, room);
            imap_free(users);
            free(users);
        }
    }
}

static void window_free(struct roles_notifier *nf)
{
    uint32_t i;
    for (struct imap_ent *e = imap_first(&nf->last, &i); e; e = imap_next(&nf->last, e, &i)) {
        imap_free(e->val);
        free(e->val);
    }
    imap_free(&nf->last);
}

/* "r_12" / "u_3" / 12: the number. 0 when absent or malformed. */
static int64_t json_id(json_t *v)
{
    const char *s;
    if (json_is_integer(v)) return (int64_t)json_integer_value(v);
    if (!(s = json_string_value(v))) return 0;
    if (s[0] && s[1] == '_') s += 2;
    return strtoll(s, NULL, 10);
}

struct member_list {
    int64_t *v;
    size_t n, cap;
};

static int member_row(void *ud, const struct store_room *room, const struct store_member *m)
{
    struct member_list *l = ud;
    (void)room;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        int64_t *v = realloc(l->v, cap * sizeof(*v));
        if (!v) return 1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = m->user_id;
    return 0;
}

static struct note *notes_push(struct notes *ns)
{
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 16;
        struct note *v = realloc(ns->v, cap * sizeof(*v));
        if (!v) return NULL;
        ns->v = v;
        ns->cap = cap;
    }
    memset(&ns->v[ns->n], 0, sizeof(ns->v[0]));
    return &ns->v[ns->n++];
}

static void notes_free(struct notes *ns)
{
    for (size_t i = 0; i < ns->n; i++) {
        free(ns->v[i].body);
        free(ns->v[i].excerpt);
    }
    free(ns->v);
}

/* Writer thread: take the stored window of each note of the slice, and queue the delivery of
 * those taken, in one transaction (a crash cannot take a window without queueing its note).
 * Run again from the start when the batch is retried: `taken` is set afresh. */
static int decide_notes(const struct store_ops *ops, struct store_conn *c, void *ud)
{
    struct notes *ns = ud;
    for (size_t i = ns->from; i < ns->to; i++) {
        struct note *nt = &ns->v[i];
        int rc = ops->notify_take(c, nt->user, nt->room, nt->ts, ns->window_ms, &nt->taken);
        if (rc != CD_OK) return rc;
        if (nt->taken && ns->has_webhook) {
            struct store_delivery d = {
                .endpoint_id = ROLES_WEBHOOK_NOTIFY_ID, .body = nt->body, .body_len = nt->len};
            int inserted;
            snprintf(d.event_id, sizeof(d.event_id), "%s", nt->event_id);
            d.created_at = d.next_at = clock_unix_ms();
            if ((rc = ops->delivery_insert(c, &d, &inserted)) != CD_OK) return rc;
        }
    }
    return CD_OK;
}

struct prune {
    int64_t before, n;
};

static int prune_windows(const struct store_ops *ops, struct store_conn *c, void *ud)
{
    struct prune *pr = ud;
    return ops->notify_prune(c, pr->before, ROLES_NOTIFY_WRITE_MAX, &pr->n);
}

/* One message event: the notifications it causes, appended to ns. */
static int on_message(struct roles_notifier *nf, struct store_conn *c,
                      const struct store_outbox_event *ev, struct notes *ns)
{
    const struct store_ops *ops = nf->db->ops;
    json_t *j = json_loadb(ev->json, ev->json_len, 0, NULL), *msg;
    struct member_list ml = {0};
    int64_t room, sender, seq, ts;
    const char *text;
    size_t text_len, ex_len;
    int rc = CD_OK;

    if (!j) return CD_OK; /* not ours to judge: nothing to notify */
    msg = json_object_get(j, "message");
    if (!json_is_object(msg)) msg = j;
    room = ev->room_id ? ev->room_id : json_id(json_object_get(msg, "room_id"));
    sender = json_id(json_object_get(msg, "sender"));
    seq = json_integer_value(json_object_get(msg, "seq"));
    ts = ev->ts;
    text = json_string_value(json_object_get(msg, "text"));
    if (!text) text = json_string_value(json_object_get(msg, "body"));
    if (!text || !room) goto done;
    text_len = strlen(text);
    ex_len = roles_notifier_excerpt_len(text, text_len, nf->cfg.excerpt_max);
    if ((rc = ops->members_list(c, room, nf->cfg.max_members, member_row, &ml)) != CD_OK) goto done;
    for (size_t i = 0; i < ml.n; i++) {
        int64_t user = ml.v[i];
        int online = 0, muted = 0, mention = 0;
        char uid[32], rid[32], sid[32], eid[STORE_EVENT_ID_MAX + 1];
        json_t *note;
        struct note *nt;
        char *body;
        if (user == sender) continue;
        if ((rc = nf->cfg.online(nf->cfg.online_ud, user, &online)) != CD_OK) goto done;
        if (online) continue;
        if ((rc = ops->room_mute_get(c, room, user, &muted)) != CD_OK) goto done;
        if (muted) {
            roles_stat_add(ROLES_NOTE_MUTED, 1);
            continue;
        }
        if (window_recent(nf, room, user, ts)) {
            roles_stat_add(ROLES_NOTE_COALESCED, 1);
            continue;
        }
        if (memchr(text, '@', text_len)) {
            struct store_user u;
            if (ops->user_get(c, user, &u) == CD_OK)
                mention = roles_notifier_mentions(text, text_len, u.username);
        }
        snprintf(uid, sizeof(uid), "u_%" PRId64, user);
        snprintf(rid, sizeof(rid), "r_%" PRId64, room);
        snprintf(sid, sizeof(sid), "u_%" PRId64, sender);
        snprintf(eid, sizeof(eid), "n_%" PRId64 "_%" PRId64 "_%" PRId64, user, room, seq);
        note = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:s%,s:b,s:s}", "type", "notification", "user",
                         uid, "room", rid, "sender", sid, "seq", (json_int_t)seq, "ts",
                         (json_int_t)ts, "excerpt", text, ex_len, "mention", mention, "id", eid);
        body = note ? json_dumps(note, JSON_COMPACT) : NULL;
        json_decref(note);
        if (!body) {
            rc = CD_E_NOMEM;
            goto done;
        }
        if (!(nt = notes_push(ns)) || !(nt->excerpt = strndup(text, ex_len))) {
            free(body);
            rc = CD_E_NOMEM;
            goto done;
        }
        snprintf(nt->event_id, sizeof(nt->event_id), "%s", eid);
        nt->body = body;
        nt->len = strlen(body);
        nt->user = user;
        nt->room = room;
        nt->ts = ts;
        nt->seq = seq;
        nt->sender = sender;
        nt->mention = mention;
    }
done:
    free(ml.v);
    json_decref(j);
    return rc;
}

/* After the commit of a slice: log what went out, count what the stored window held back. */
static void notes_done(struct roles_notifier *nf, struct notes *ns)
{
    for (size_t i = ns->from; i < ns->to; i++) {
        struct note *nt = &ns->v[i];
        if (!nt->taken) {
            roles_stat_add(ROLES_NOTE_COALESCED, 1);
            continue;
        }
        window_note(nf, nt->room, nt->user, nt->ts);
        roles_stat_add(ROLES_NOTE_PRODUCED, 1);
        log_info("notification",
                 "\"user\":\"u_%" PRId64 "\",\"room\":\"r_%" PRId64 "\",\"sender\":\"u_%" PRId64
                 "\",\"seq\":%" PRId64 ",\"mention\":%s,\"excerpt\":\"%s\"",
                 nt->user, nt->room, nt->sender, nt->seq, nt->mention ? "true" : "false",
                 nt->excerpt);
    }
}

/* Every PRUNE_EVERY_MS: delete stored windows that have passed, ROLES_NOTIFY_WRITE_MAX per
 * writer job. "Passed" in message time (the last event handled, not the clock), so a notifier
 * catching up on a backlog keeps the windows its next events still fall in. */
static int prune(struct roles_notifier *nf, int64_t now, int64_t last_ts)
{
    struct prune pr = {.before = last_ts - nf->cfg.window_ms};
    int rc;
    if (now - nf->last_prune_ms < PRUNE_EVERY_MS) return CD_OK;
    nf->last_prune_ms = now;
    do {
        pr.n = 0;
        rc = roles_write(nf->db, prune_windows, &pr);
    } while (rc == CD_OK && pr.n == ROLES_NOTIFY_WRITE_MAX);
    return rc;
}

static int handle(void *ud, const struct store_outbox_event *evs, size_t n, size_t *taken)
{
    struct roles_notifier *nf = ud;
    struct store_conn *c = store_reader(nf->db);
    struct notes ns = {.has_webhook = nf->cfg.has_webhook, .window_ms = nf->cfg.window_ms};
    int rc = CD_OK, queued = 0;

    (void)taken; /* all or nothing: one writer job queues the batch's notifications */
    if (!c) return CD_E_IO;
    for (size_t i = 0; i < n && rc == CD_OK; i++) {
        if (evs[i].type_len != 7 || memcmp(evs[i].type, "message", 7)) continue;
        rc = on_message(nf, c, &evs[i], &ns);
        if (++nf->seen % PRUNE_EVERY == 0) window_prune(nf, evs[i].ts);
    }
    /* The batch's notes in slices of ROLES_NOTIFY_WRITE_MAX, one writer job each. A failed
     * slice fails the batch: it is handled again (slices already committed then find their
     * windows taken, and their deliveries queued: nothing twice). */
    for (ns.from = 0; rc == CD_OK && ns.from < ns.n; ns.from = ns.to) {
        ns.to = ns.from + ROLES_NOTIFY_WRITE_MAX < ns.n ? ns.from + ROLES_NOTIFY_WRITE_MAX : ns.n;
        if ((rc = roles_write(nf->db, decide_notes, &ns)) != CD_OK) break;
        notes_done(nf, &ns);
        queued = queued || ns.has_webhook;
    }
    if (queued) roles_webhook_kick(nf->cfg.wh);
    notes_free(&ns);
    if (rc == CD_OK && n) /* failures are retried at the next one */
        prune(nf, clock_unix_ms(), evs[n - 1].ts);
    return rc;
}

int roles_notifier_start(struct store_db *db, const struct roles_notifier_cfg *cfg,
                         struct roles_notifier **out)
{
    struct roles_notifier *nf = calloc(1, sizeof(*nf));
    int rc;
    *out = NULL;
    if (!nf) return CD_E_NOMEM;
    nf->db = db;
    nf->cfg = *cfg;
    imap_init(&nf->last);
    rc = roles_consume(db, "notifier", handle, nf, cfg->batch, (int)cfg->poll_ms, &nf->oc);
    if (rc != CD_OK) {
        free(nf);
        return rc;
    }
    *out = nf;
    return CD_OK;
}

void roles_notifier_stop(struct roles_notifier *nf)
{
    if (!nf) return;
    outbox_consumer_stop(nf->oc);
    window_free(nf);
    free(nf);
}
