/* main.c - chatbench: command line, worker processes, progress line and the JSON result.
 *
 *   chatbench SCENARIO --target chatd|ceiling|ws|socketio|nats|mqtt --url ws://HOST:PORT[/PATH]
 *
 * Every run is bounded: connections by --receivers/--senders/--conns, time by --warmup,
 * --duration, --drain and --connect-timeout, and a hard deadline after which the parent kills its
 * own workers. Load goes only to 127.0.0.0/8 (checked).
 */
#include "cb.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct cb_world *world_ptr;

static void free_world(void)
{
    if (world_ptr) {
        free(world_ptr->users);
        free(world_ptr->rooms);
        free(world_ptr->user_room_off);
        free(world_ptr->user_rooms);
        free(world_ptr->room_conns);
        free(world_ptr->room_hash);
    }
}

static void usage(void)
{
    fputs(
        "usage: chatbench SCENARIO --target TARGET --url ws://127.0.0.1:PORT[/path] [options]\n"
        "scenarios: fanout connections (all targets); durable (chatd, ceiling); history storm mix "
        "(chatd)\n"
        "  --url may list several servers, comma-separated: connection i goes to url i % n,\n"
        "  REST setup to the first (nodes of one cluster)\n"
        "targets:   chatd ceiling ws socketio nats mqtt (mosquitto is an alias of mqtt)\n"
        "  --receivers N      fanout receivers (1000)\n"
        "  --senders N        senders (fanout 1, durable 100)\n"
        "  --rate M           messages/s per sender (100)\n"
        "  --size B           message body bytes, >= 36 (100)\n"
        "  --duration S       measured seconds (5)\n"
        "  --warmup S         seconds of load before measuring (1)\n"
        "  --drain S          seconds to wait for stragglers (2)\n"
        "  --procs N          worker processes (1)\n"
        "  --conns N          connections scenario / storm: connections (1000)\n"
        "  --src-addrs N      source addresses 127.0.0.1..N (8)\n"
        "  --concurrency N    connects in flight per worker (500)\n"
        "  --connect-timeout S  (60)\n"
        "  --server-pid PID   server process for RSS and CPU figures\n"
        "  --users N          chatd: users the connections are spread over\n"
        "  --rooms N          chatd durable/storm: rooms\n"
        "  --missed N         storm: messages each connection misses (10)\n"
        "  --history-msgs N   history: messages in the room (1000000)\n"
        "  --queries N        history: queries per kind (2000)\n"
        "  --label TEXT       copied into the result\n"
        "  --quiet            no progress line\n"
        "  --tick-us U        send quantum, microseconds: the send timer fires at most once per U\n"
        "                     and everything due by then goes out (0: at every due time)\n"
        "mix (real-chat shape; --rate is the total offered msgs/s, --users default 2000,\n"
        "     --conns default one per user, connection g belongs to user g % users):\n"
        "  --room-size N      members per group room (10)\n"
        "  --rooms-per-user N group rooms each user is in (3)\n"
        "  --dms N            direct rooms each user is in, even (4)\n"
        "  --senders-share F  share of users who send, 0..1 (0.1)\n"
        "  --churn C          connections/s reset and reconnected with sync (0)\n"
        "  --setup-procs N    parallel REST clients for the setup (4)\n"
        "  --every S          with --every-file: every S seconds of load, append one CSV line of\n"
        "                     that interval's figures (long runs such as bench/soak.sh)\n"
        "  --every-file PATH  the CSV file (header written when the file is empty)\n",
        stderr);
    exit(2);
}

static int parse_url(struct cb_url *o, const char *url)
{
    const char *p = url;
    if (strncmp(p, "ws://", 5) == 0)
        p += 5;
    else if (strncmp(p, "http://", 7) == 0)
        p += 7;
    const char *colon = strchr(p, ':');
    const char *slash = strchr(p, '/');
    const char *comma = strchr(p, ',');
    if (comma && slash && slash > comma)
        slash = NULL;
    if (!colon || (slash && slash < colon))
        return -1;
    size_t hl = (size_t)(colon - p);
    if (hl >= sizeof o->host)
        return -1;
    memcpy(o->host, p, hl);
    o->host[hl] = '\0';
    o->port = atoi(colon + 1);
    size_t pl = slash ? (comma ? (size_t)(comma - slash) : strlen(slash)) : 0;
    if (pl >= sizeof o->path)
        return -1;
    if (slash) {
        memcpy(o->path, slash, pl);
        o->path[pl] = '\0';
    } else {
        snprintf(o->path, sizeof o->path, "/");
    }
    if (strncmp(o->host, "127.", 4) != 0) {
        fprintf(stderr, "chatbench: load goes to 127.0.0.0/8 only (got %s)\n", o->host);
        exit(2);
    }
    return o->port > 0 ? 0 : -1;
}

static int parse_target(const char *s, enum cb_target *t)
{
    static const struct {
        const char *name;
        enum cb_target t;
    } names[] = {{"ceiling", T_CEILING}, {"ws", T_WS},     {"socketio", T_SOCKETIO},
                 {"socket.io", T_SOCKETIO}, {"nats", T_NATS}, {"mqtt", T_MQTT},
                 {"mosquitto", T_MQTT},  {"chatd", T_CHATD}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *t = names[i].t;
            return 0;
        }
    return -1;
}

static const char *scenario_name(enum cb_scenario s)
{
    static const char *n[] = {"fanout", "connections", "durable", "history", "storm", "mix"};
    return n[s];
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            v = atol(line + 6);
            break;
        }
    fclose(f);
    return v;
}

/* utime + stime of a process in ns, or -1. */
static int64_t proc_cpu_ns(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut = 0, stt = 0;
    /* fields after the command: state(3) ... utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) != 2)
        return -1;
    return (int64_t)((ut + stt) * (1000000000ull / (unsigned long long)sysconf(_SC_CLK_TCK)));
}

/* Busy and total jiffies of one CPU from /proc/stat (busy = everything but idle and iowait, so
 * it includes the softirq time of loopback TCP that no process is charged for). */
static int cpu_jiffies(int cpu, uint64_t *busy, uint64_t *total)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    char line[512], name[16];
    snprintf(name, sizeof name, "cpu%d ", cpu);
    int rc = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, name, strlen(name)) != 0)
            continue;
        unsigned long long v[10] = {0};
        int n = sscanf(line + strlen(name), "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
                       &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
        if (n >= 8) {
            uint64_t t = 0;
            for (int i = 0; i < 8; i++)
                t += v[i];
            *total = t;
            *busy = t - v[3] - v[4];
            rc = 0;
        }
        break;
    }
    fclose(f);
    return rc;
}

static void merge_all(struct cb_shared *sh, struct cb_stats *sum)
{
    memset(sum, 0, sizeof *sum);
    for (int i = 0; i < sh->nworkers; i++) {
        struct cb_stats *s = &sh->st[i];
        sum->conns_ok += s->conns_ok;
        sum->conns_failed += s->conns_failed;
        sum->recv_ready += s->recv_ready;
        sum->send_ready += s->send_ready;
        sum->closed += s->closed;
        sum->errors += s->errors;
        sum->sent += s->sent;
        sum->sent_total += s->sent_total;
        sum->received += s->received;
        sum->received_total += s->received_total;
        sum->dups += s->dups;
        sum->acks += s->acks;
        sum->ack_window += s->ack_window;
        sum->ack_in_time += s->ack_in_time;
        sum->frames_in += s->frames_in;
        sum->bytes_in += s->bytes_in;
        sum->reads += s->reads;
        sum->cpu_window_ns += s->cpu_window_ns;
        sum->synced += s->synced;
        sum->storm_ok += s->storm_ok;
        sum->expected += s->expected;
        sum->gaps += s->gaps;
        sum->replayed += s->replayed;
        sum->reconnects += s->reconnects;
        sum->reconnect_failed += s->reconnect_failed;
        sum->churn_deferred += s->churn_deferred;
        sum->skipped_offline += s->skipped_offline;
        if (s->send_lag_max > sum->send_lag_max)
            sum->send_lag_max = s->send_lag_max;
        if (s->t_first_connect && (!sum->t_first_connect || s->t_first_connect < sum->t_first_connect))
            sum->t_first_connect = s->t_first_connect;
        if (s->t_last_ready > sum->t_last_ready)
            sum->t_last_ready = s->t_last_ready;
        cb_hist_merge(&sum->lat, &s->lat);
        cb_hist_merge(&sum->hs, &s->hs);
        cb_hist_merge(&sum->ack, &s->ack);
        cb_hist_merge(&sum->sync, &s->sync);
        cb_hist_merge(&sum->reconn, &s->reconn);
        cb_hist_merge(&sum->lat_cross, &s->lat_cross);
    }
}

static void print_hist_ms(FILE *f, const char *name, const struct cb_hist *h)
{
    fprintf(f,
            "\"%s\":{\"count\":%" PRIu64 ",\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
            "\"max\":%.3f,\"mean\":%.3f}",
            name, h->total, cb_hist_pct(h, 50) / 1e6, cb_hist_pct(h, 90) / 1e6,
            cb_hist_pct(h, 99) / 1e6, cb_hist_pct(h, 99.9) / 1e6, h->max / 1e6,
            h->total ? (double)h->sum / (double)h->total / 1e6 : 0.0);
}

/* d = a - b, bucket by bucket (a and b are cumulative snapshots of one histogram, b older). */
static void hist_diff(struct cb_hist *d, const struct cb_hist *a, const struct cb_hist *b)
{
    for (unsigned i = 0; i < CB_HIST_BUCKETS; i++)
        d->count[i] = a->count[i] - b->count[i];
    d->total = a->total - b->total;
    d->sum = a->sum - b->sum;
    d->max = a->max; /* cumulative: it only clamps cb_hist_pct, exact to a bucket anyway */
}

/* --every: one CSV line with the figures of the last interval. Latency columns are ms; the max
 * is the interval's largest value to within one bucket (1.6 %). */
static void every_line(const struct cb_opts *o, double t, const struct cb_stats *sum,
                       const struct cb_stats *prev)
{
    static struct cb_hist ack, lat;
    FILE *f = fopen(o->every_file, "a");
    if (!f)
        return;
    if (ftell(f) == 0)
        fputs("t_s,conns_ok,conns_failed,closed,errors,sent,acks,ack_p50_ms,ack_p99_ms,"
              "ack_max_ms,delivered,lat_p50_ms,lat_p99_ms,lat_max_ms\n",
              f);
    hist_diff(&ack, &sum->ack, &prev->ack);
    hist_diff(&lat, &sum->lat, &prev->lat);
    fprintf(f,
            "%.1f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
            ",%.3f,%.3f,%.3f,%" PRIu64 ",%.3f,%.3f,%.3f\n",
            t, sum->conns_ok, sum->conns_failed, sum->closed, sum->errors,
            sum->sent_total - prev->sent_total, sum->acks - prev->acks,
            cb_hist_pct(&ack, 50) / 1e6, cb_hist_pct(&ack, 99) / 1e6, cb_hist_pct(&ack, 100) / 1e6,
            sum->received - prev->received, cb_hist_pct(&lat, 50) / 1e6,
            cb_hist_pct(&lat, 99) / 1e6, cb_hist_pct(&lat, 100) / 1e6);
    fclose(f);
}

static struct cb_opts opts = {
    .receivers = 1000,
    .senders = -1,
    .rate = 100,
    .size = 100,
    .duration = 5,
    .warmup = 1,
    .drain = 2,
    .procs = 1,
    .conns = -1,
    .src_addrs = 8,
    .concurrency = 500,
    .connect_timeout = 60,
    .users = -1,
    .rooms = -1,
    .missed = 10,
    .history_msgs = 1000000,
    .queries = 2000,
    .room_size = 10,
    .rooms_per_user = 3,
    .dms = 4,
    .senders_share = 0.1,
    .setup_procs = 4,
};

static void parse_args(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *sc = argv[1];
    const char *names[] = {"fanout", "connections", "durable", "history", "storm", "mix"};
    int found = 0;
    for (int i = 0; i < 6; i++)
        if (strcmp(sc, names[i]) == 0) {
            opts.scenario = (enum cb_scenario)i;
            found = 1;
        }
    if (!found)
        usage();
    int have_target = 0, have_url = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (ARG("--target")) {
            if (parse_target(v, &opts.target) != 0)
                usage();
            have_target = 1;
        } else if (ARG("--url")) {
            opts.nurls = 0;
            for (const char *u = v; u; u = strchr(u, ',') ? strchr(u, ',') + 1 : NULL) {
                if (opts.nurls == CB_MAX_URLS || parse_url(&opts.urls[opts.nurls++], u) != 0)
                    usage();
            }
            snprintf(opts.host, sizeof opts.host, "%s", opts.urls[0].host);
            opts.port = opts.urls[0].port;
            snprintf(opts.path, sizeof opts.path, "%s", opts.urls[0].path);
            have_url = 1;
        } else if (ARG("--receivers"))
            opts.receivers = atoi(v);
        else if (ARG("--senders"))
            opts.senders = atoi(v);
        else if (ARG("--rate"))
            opts.rate = atof(v);
        else if (ARG("--size"))
            opts.size = atoi(v);
        else if (ARG("--duration"))
            opts.duration = atof(v);
        else if (ARG("--warmup"))
            opts.warmup = atof(v);
        else if (ARG("--drain"))
            opts.drain = atof(v);
        else if (ARG("--procs"))
            opts.procs = atoi(v);
        else if (ARG("--conns"))
            opts.conns = atoi(v);
        else if (ARG("--src-addrs"))
            opts.src_addrs = atoi(v);
        else if (ARG("--concurrency"))
            opts.concurrency = atoi(v);
        else if (ARG("--connect-timeout"))
            opts.connect_timeout = atof(v);
        else if (ARG("--server-pid"))
            opts.server_pid = (pid_t)atoi(v);
        else if (ARG("--users"))
            opts.users = atoi(v);
        else if (ARG("--rooms"))
            opts.rooms = atoi(v);
        else if (ARG("--missed"))
            opts.missed = atoi(v);
        else if (ARG("--history-msgs"))
            opts.history_msgs = atol(v);
        else if (ARG("--queries"))
            opts.queries = atoi(v);
        else if (ARG("--label"))
            snprintf(opts.label, sizeof opts.label, "%s", v);
        else if (ARG("--tick-us"))
            opts.tick_us = atof(v);
        else if (ARG("--room-size"))
            opts.room_size = atoi(v);
        else if (ARG("--rooms-per-user"))
            opts.rooms_per_user = atoi(v);
        else if (ARG("--dms"))
            opts.dms = atoi(v);
        else if (ARG("--senders-share"))
            opts.senders_share = atof(v);
        else if (ARG("--churn"))
            opts.churn = atof(v);
        else if (ARG("--setup-procs"))
            opts.setup_procs = atoi(v);
        else if (ARG("--every"))
            opts.every = atof(v);
        else if (ARG("--every-file"))
            snprintf(opts.every_file, sizeof opts.every_file, "%s", v);
        else if (strcmp(a, "--quiet") == 0)
            opts.quiet = 1;
        else {
            fprintf(stderr, "chatbench: unknown or incomplete option %s\n", a);
            usage();
        }
#undef ARG
    }
    if (!have_target || !have_url)
        usage();
    if (opts.senders < 0)
        opts.senders = opts.scenario == SC_DURABLE ? 100 : 1;
    if (opts.scenario == SC_MIX) {
        if (opts.users < 0)
            opts.users = 2000;
        if (opts.conns < 0)
            opts.conns = opts.users;
        opts.senders = (int)(opts.users * opts.senders_share + 0.5);
        if (opts.senders < 1)
            opts.senders = 1;
        if (opts.users < 2 || opts.conns < opts.users || opts.room_size < 2 ||
            opts.room_size > 1000 || opts.rooms_per_user < 0 || opts.dms < 0 ||
            opts.rooms_per_user + opts.dms < 1 || opts.senders_share <= 0 ||
            opts.senders_share > 1 || opts.churn < 0 || opts.setup_procs < 1 ||
            opts.setup_procs > 64) {
            fputs("chatbench: mix: --users >= 2, --conns >= --users, --room-size 2..1000, at "
                  "least one room per user, --senders-share in (0, 1], --setup-procs 1..64\n",
                  stderr);
            exit(2);
        }
    }
    if (opts.conns < 0)
        opts.conns = 1000;
    if (opts.size < CB_BODY_MIN || opts.size > 65536 || opts.procs < 1 || opts.procs > 64 ||
        opts.src_addrs < 1 || opts.src_addrs > 250 || opts.rate <= 0 || opts.duration <= 0 ||
        opts.concurrency < 1 || opts.receivers < 0 || opts.conns < 0 || opts.every < 0 ||
        (opts.every > 0 && (opts.every < 1 || !opts.every_file[0]))) {
        fputs("chatbench: option out of range\n", stderr);
        exit(2);
    }
    if (opts.target != T_CHATD && opts.scenario >= SC_DURABLE &&
        !(opts.target == T_CEILING && opts.scenario == SC_DURABLE)) {
        fputs("chatbench: history and storm are chatd scenarios; durable runs on chatd and the "
              "ceiling\n",
              stderr);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    struct cb_opts *o = &opts;
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (o->scenario == SC_HISTORY)
        return cb_chatd_history(o);

    int nrecv = 0, nsend = 0, nidle = 0;
    switch (o->scenario) {
    case SC_FANOUT:
        nrecv = o->receivers;
        nsend = o->senders;
        break;
    case SC_CONNECTIONS:
        nidle = o->conns;
        break;
    case SC_DURABLE:
        nsend = o->senders;
        break;
    case SC_MIX:
        nsend = o->senders;
        nrecv = o->conns - nsend;
        break;
    default:
        nidle = o->conns;
        break;
    }
    int total = nrecv + nsend + nidle;
    if (total / o->procs > (int)rl.rlim_cur - 64) {
        fprintf(stderr, "chatbench: %d connections need more than %d workers (limit %ld files)\n",
                total, o->procs, (long)rl.rlim_cur);
        return 2;
    }

    static struct cb_world world;
    atexit(free_world);
    if (o->target == T_CHATD &&
        (o->scenario == SC_MIX ? cb_mix_setup(o, &world) : cb_chatd_setup(o, &world)) != 0)
        return 1;
    world_ptr = &world;

    size_t shsize = sizeof(struct cb_shared) + (size_t)o->procs * sizeof(struct cb_stats);
    struct cb_shared *sh =
        mmap(NULL, shsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    sh->nworkers = o->procs;
    sh->total_receivers = nrecv;
    sh->total_senders = nsend;

    long rss0 = o->server_pid ? rss_kib(o->server_pid) : -1;
    pid_t pids[64];
    for (int p = 0; p < o->procs; p++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            sh->stop = 1;
            break;
        }
        if (pid == 0) {
            /* A worker never outlives its parent (killed by its caller, e.g. bench/soak.sh). */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() == 1)
                _exit(1);
            struct cb_worker w = {.id = p, .o = o, .proto = cb_proto_for(o->target),
                                  .world = &world, .sh = sh, .st = &sh->st[p]};
            w.conns = calloc((size_t)total / (size_t)o->procs + 1, sizeof *w.conns);
            w.senders = calloc((size_t)nsend / (size_t)o->procs + 1, sizeof *w.senders);
            for (int g = p; g < total; g += o->procs) {
                struct cb_conn *c = &w.conns[w.nconns];
                c->fd = -1;
                c->gid = (uint32_t)g;
                if (o->scenario == SC_MIX) {
                    /* the first connection of users 0..senders-1 sends; every one receives */
                    c->role = g < nsend ? ROLE_SEND : ROLE_RECV;
                    if (g < nsend) {
                        c->sender = (uint32_t)g;
                        w.senders[w.nsenders++] = w.nconns;
                    }
                } else if (g < nrecv) {
                    c->role = ROLE_RECV;
                } else if (g < nrecv + nsend) {
                    c->role = ROLE_SEND;
                    c->sender = (uint32_t)(g - nrecv);
                    w.senders[w.nsenders++] = w.nconns;
                } else {
                    c->role = ROLE_IDLE;
                }
                if (world.nusers > 0)
                    c->user = (uint32_t)(g % world.nusers);
                if (world.nrooms > 0)
                    c->room = o->scenario == SC_FANOUT || o->scenario == SC_MIX
                                  ? 0
                                  : (uint32_t)(g % world.nrooms);
                w.nconns++;
            }
            cb_worker_run(&w);
            _exit(0);
        }
        pids[p] = pid;
    }

    /* Parent: start the run when everyone is connected, report once a second, stop it. */
    uint64_t t_begin = cb_now(), last_report = t_begin;
    uint64_t hard_deadline = t_begin + (uint64_t)((o->connect_timeout + o->warmup + o->duration +
                                                   o->drain + 30) * 1e9);
    uint64_t win_start = 0, win_end = 0, ready_at = 0;
    int64_t srv_cpu0 = -1, srv_cpu1 = -1;
    int cpu_sampled0 = 0, cpu_sampled1 = 0;
    uint64_t cb0[2] = {0}, ct0[2] = {0}, cb1[2] = {0}, ct1[2] = {0};
    long rss_n = -1;
    struct cb_stats sum;
    static struct cb_hist prev_lat, cur_lat;
    static struct cb_stats every_prev;
    uint64_t every_next = 0;
    uint64_t prev_recv = 0, prev_sent = 0;
    int storm_post_failures = 0;
    double storm_post_s = 0, storm_s = -1;

    for (;;) {
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
        uint64_t now = cb_now();
        int ready = 0, done = 0;
        for (int p = 0; p < o->procs; p++) {
            ready += sh->st[p].ready != 0;
            done += sh->st[p].done != 0;
        }
        if (done == o->procs || now > hard_deadline)
            break;
        merge_all(sh, &sum);
        if (o->scenario == SC_STORM) {
            int dropped = 0;
            for (int p = 0; p < o->procs; p++)
                dropped += sh->st[p].dropped != 0;
            if (ready == o->procs && sh->phase == 0) {
                sh->phase = 1;
            } else if (sh->phase == 1 && dropped == o->procs) {
                uint64_t t = cb_now();
                storm_post_failures = cb_chatd_post_missed(o, &world);
                storm_post_s = (double)(cb_now() - t) / 1e9;
                sh->start_ns = cb_now();
                sh->phase = 2;
            } else if (sh->phase == 2 && !sh->stop &&
                       (sum.synced >= (uint64_t)total ||
                        now - sh->start_ns > (uint64_t)(o->connect_timeout * 1e9))) {
                storm_s = (double)(now - sh->start_ns) / 1e9;
                sh->stop = 1;
            }
        } else if (ready == o->procs && !sh->start_ns && !sh->stop) {
            if (!ready_at)
                ready_at = now;
            if (o->scenario == SC_CONNECTIONS) {
                if (now - ready_at > 1000000000ull) { /* let the server settle, then measure */
                    if (o->server_pid)
                        rss_n = rss_kib(o->server_pid);
                    sh->stop = 1;
                }
            } else {
                sh->start_ns = now + 50000000ull;
                win_start = sh->start_ns + (uint64_t)(o->warmup * 1e9);
                win_end = win_start + (uint64_t)(o->duration * 1e9);
            }
        }
        if (win_start && now >= win_start && !cpu_sampled0) {
            cpu_sampled0 = 1;
            if (o->server_pid)
                srv_cpu0 = proc_cpu_ns(o->server_pid);
            for (int c = 0; c < 2; c++)
                cpu_jiffies(c, &cb0[c], &ct0[c]);
        }
        if (win_end && now >= win_end && !cpu_sampled1) {
            cpu_sampled1 = 1;
            if (o->server_pid)
                srv_cpu1 = proc_cpu_ns(o->server_pid);
            for (int c = 0; c < 2; c++)
                cpu_jiffies(c, &cb1[c], &ct1[c]);
        }
        if (win_end && now >= win_end && !sh->stop) {
            uint64_t expected = sum.sent * sum.recv_ready;
            int drained = o->scenario == SC_DURABLE ? sum.ack_window >= sum.sent
                          : o->scenario == SC_MIX
                              ? sum.ack_window >= sum.sent && sum.received >= sum.expected
                              : sum.received + sum.dups >= expected;
            if (drained || now >= win_end + (uint64_t)(o->drain * 1e9))
                sh->stop = 1;
        }
        if (o->every > 0 && sh->start_ns && now >= sh->start_ns) {
            if (!every_next) {
                every_next = sh->start_ns + (uint64_t)(o->every * 1e9);
                every_prev = sum;
            } else if (now >= every_next) {
                every_line(o, (double)(now - sh->start_ns) / 1e9, &sum, &every_prev);
                every_prev = sum;
                every_next += (uint64_t)(o->every * 1e9);
            }
        }
        if (!o->quiet && now - last_report >= 1000000000ull) {
            double dt = (double)(now - last_report) / 1e9;
            memset(&cur_lat, 0, sizeof cur_lat);
            cb_hist_merge(&cur_lat, &sum.lat);
            for (unsigned i = 0; i < CB_HIST_BUCKETS; i++)
                cur_lat.count[i] -= prev_lat.count[i];
            cur_lat.max = 0;
            fprintf(stderr,
                    "[%5.1fs] conns %" PRIu64 "/%d failed %" PRIu64 " | sent %.0f/s | delivered "
                    "%.0f/s | p99 %.2f ms | acks %" PRIu64 " | errors %" PRIu64 " closed %" PRIu64
                    "\n",
                    (double)(now - t_begin) / 1e9, sum.conns_ok, total, sum.conns_failed,
                    (double)(sum.sent_total - prev_sent) / dt,
                    (double)(sum.received_total - prev_recv) / dt,
                    cb_hist_pct(&cur_lat, 99) / 1e6, sum.acks, sum.errors, sum.closed);
            prev_lat = sum.lat;
            prev_recv = sum.received_total;
            prev_sent = sum.sent_total;
            last_report = now;
        }
    }
    sh->stop = 1;
    for (int p = 0; p < o->procs; p++) {
        int status;
        for (int tries = 0; tries < 100; tries++) {
            if (waitpid(pids[p], &status, WNOHANG) == pids[p])
                break;
            if (tries == 99) {
                kill(pids[p], SIGKILL);
                waitpid(pids[p], &status, 0);
            }
            struct timespec ts = {0, 50 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    merge_all(sh, &sum);

    /* Result. */
    FILE *f = stdout;
    int mix = o->scenario == SC_MIX;
    uint64_t expected = mix ? sum.expected : sum.sent * sum.recv_ready;
    double dur = o->duration;
    double rate_per_sender = mix ? o->rate / nsend : o->rate;
    fprintf(f, "{\"scenario\":\"%s\",\"target\":\"%s\",\"url\":\"ws://%s:%d%s\",\"label\":\"%s\",",
            scenario_name(o->scenario), cb_target_name(o->target), o->host, o->port, o->path,
            o->label);
    fprintf(f, "\"urls\":[");
    for (int i = 0; i < o->nurls; i++)
        fprintf(f, "%s\"ws://%s:%d%s\"", i ? "," : "", o->urls[i].host, o->urls[i].port,
                o->urls[i].path);
    fprintf(f, "],");
    fprintf(f,
            "\"params\":{\"receivers\":%d,\"senders\":%d,\"rate_per_sender\":%.3f,\"size\":%d,"
            "\"duration\":%.1f,\"warmup\":%.1f,\"procs\":%d,\"conns\":%d,\"src_addrs\":%d,"
            "\"tick_us\":%.0f",
            nrecv, nsend, rate_per_sender, o->size, o->duration, o->warmup, o->procs, total,
            o->src_addrs, o->tick_us);
    if (mix)
        fprintf(f,
                ",\"users\":%d,\"rate\":%.1f,\"senders_share\":%.3f,\"room_size\":%d,"
                "\"rooms_per_user\":%d,\"dms_per_user\":%d,\"group_rooms\":%d,\"dm_rooms\":%d,"
                "\"churn\":%.1f",
                world.nusers, o->rate, o->senders_share, o->room_size, o->rooms_per_user,
                world.nusers ? (world.user_room_off[1] - world.user_room_off[0]) - o->rooms_per_user
                             : 0,
                world.ngroups, world.ndms, o->churn);
    fprintf(f, "},");
    fprintf(f,
            "\"conns_ok\":%" PRIu64 ",\"conns_failed\":%" PRIu64 ",\"closed\":%" PRIu64
            ",\"errors\":%" PRIu64 ",",
            sum.conns_ok, sum.conns_failed, sum.closed, sum.errors);
    double connect_s = sum.t_last_ready > sum.t_first_connect
                           ? (double)(sum.t_last_ready - sum.t_first_connect) / 1e9
                           : 0;
    fprintf(f, "\"connect_seconds\":%.3f,\"connect_rate\":%.1f,", connect_s,
            connect_s > 0 ? (double)sum.conns_ok / connect_s : 0.0);
    print_hist_ms(f, "handshake_ms", &sum.hs);
    fputc(',', f);
    if (o->scenario == SC_FANOUT || o->scenario == SC_DURABLE || mix) {
        fprintf(f,
                "\"offered_msgs_per_s\":%.1f,\"sent\":%" PRIu64 ",\"expected\":%" PRIu64
                ",\"received\":%" PRIu64 ",\"drops\":%" PRId64 ",\"dups\":%" PRIu64
                ",\"deliveries_per_s\":%.1f,\"msgs_per_s\":%.1f,\"send_lag_max_ms\":%.3f,",
                rate_per_sender * nsend, sum.sent, expected, sum.received,
                (int64_t)expected - (int64_t)sum.received, sum.dups, (double)sum.received / dur,
                (double)sum.sent / dur, sum.send_lag_max / 1e6);
        print_hist_ms(f, "latency_ms", &sum.lat);
        fputc(',', f);
        if (o->nurls > 1) {
            print_hist_ms(f, "latency_cross_node_ms", &sum.lat_cross);
            fputc(',', f);
        }
        if (mix) {
            /* gaps: seqs a connection never saw in a room; replayed: window messages that came
             * by sync after a reconnect (not in latency_ms); skipped_offline: sends due while
             * the sender was reconnecting (not sent, not in sent). */
            fprintf(f,
                    "\"gaps\":%" PRIu64 ",\"replayed\":%" PRIu64 ",\"reconnects\":%" PRIu64
                    ",\"reconnects_per_s\":%.1f,\"reconnect_failed\":%" PRIu64
                    ",\"churn_deferred\":%" PRIu64 ",\"skipped_offline\":%" PRIu64 ",",
                    sum.gaps, sum.replayed, sum.reconnects, (double)sum.reconnects / (dur + o->warmup),
                    sum.reconnect_failed, sum.churn_deferred, sum.skipped_offline);
            print_hist_ms(f, "reconnect_ms", &sum.reconn);
            fputc(',', f);
        }
        if (o->target == T_CHATD || o->scenario == SC_DURABLE) {
            /* acked_per_s: acks that arrived within the window (a sustained rate); acked_in_window
             * also counts those that came during the drain (a backlog, not a rate). */
            fprintf(f,
                    "\"acks\":%" PRIu64 ",\"acked_in_window\":%" PRIu64
                    ",\"acked_by_window_end\":%" PRIu64 ",\"acked_per_s\":%.1f,",
                    sum.acks, sum.ack_window, sum.ack_in_time, (double)sum.ack_in_time / dur);
            print_hist_ms(f, "ack_ms", &sum.ack);
            fputc(',', f);
        }
        double load_share = (double)sum.cpu_window_ns / (dur * 1e9);
        fprintf(f,
                "\"load_cpu_share\":%.3f,\"load_bound\":%s,\"frames_in\":%" PRIu64
                ",\"bytes_per_frame\":%.1f"
                ",\"reads\":%" PRIu64 ",\"frames_per_read\":%.1f,\"recv_frames_per_load_cpu_s\":%.0f,",
                load_share, load_share > 0.9 ? "true" : "false", sum.frames_in,
                sum.frames_in ? (double)sum.bytes_in / (double)sum.frames_in : 0.0, sum.reads,
                sum.reads ? (double)sum.frames_in / (double)sum.reads : 0.0,
                sum.cpu_window_ns ? (double)sum.received / ((double)sum.cpu_window_ns / 1e9) : 0.0);
        if (srv_cpu0 >= 0 && srv_cpu1 >= 0)
            fprintf(f, "\"server_cpu_share\":%.3f,", (double)(srv_cpu1 - srv_cpu0) / (dur * 1e9));
        if (cpu_sampled1 && ct1[0] > ct0[0] && ct1[1] > ct0[1])
            fprintf(f, "\"cpu0_busy\":%.3f,\"cpu1_busy\":%.3f,",
                    (double)(cb1[0] - cb0[0]) / (double)(ct1[0] - ct0[0]),
                    (double)(cb1[1] - cb0[1]) / (double)(ct1[1] - ct0[1]));
    }
    if (o->scenario == SC_STORM) {
        /* Time until every connection got `synced`: the slowest one (histogram max). */
        fprintf(f,
                "\"storm_conns\":%d,\"missed_per_conn\":%d,\"post_failures\":%d,\"post_seconds\":%.3f,"
                "\"synced\":%" PRIu64 ",\"storm_ok\":%" PRIu64 ",\"dups\":%" PRIu64
                ",\"storm_seconds\":%.3f,\"gave_up_after\":%.3f,",
                total, o->missed, storm_post_failures, storm_post_s, sum.synced, sum.storm_ok,
                sum.dups, sum.synced == (uint64_t)total ? sum.sync.max / 1e9 : -1.0, storm_s);
        print_hist_ms(f, "synced_ms", &sum.sync);
        fputc(',', f);
    }
    if (o->scenario == SC_CONNECTIONS && rss0 >= 0 && rss_n >= 0 && sum.conns_ok > 0)
        fprintf(f,
                "\"server_rss_kib_at_0\":%ld,\"server_rss_kib_at_n\":%ld,"
                "\"server_bytes_per_conn\":%.1f,",
                rss0, rss_n, (double)(rss_n - rss0) * 1024.0 / (double)sum.conns_ok);
    int ok = sum.conns_failed == 0 && sum.closed == 0 && sum.errors == 0;
    if (mix)
        ok = ok && sum.received == expected && sum.dups == 0 && sum.gaps == 0 &&
             sum.reconnect_failed == 0 && sum.ack_window == sum.sent;
    fprintf(f, "\"ok\":%s}\n", ok ? "true" : "false");
    return 0;
}
