/* store_append - the storage commit path alone: N messages appended through store_ops in
 * transactions of B (a group commit's worth) over R rooms, SQLite synchronous=NORMAL, one
 * thread. Prints the CPU and the wall time per message, in microseconds. Build it against one
 * revision's chatd_store (bench/notes.md, "The outbox"):
 *   gcc -O2 -I SRC bench/store_append.c BUILD/libchatd_store.a BUILD/libchatd_util.a \
 *       $(pkg-config --libs sqlite3 libuv jansson libsodium libpq) -lpthread -lm -o store_append
 *   ./store_append DIR 300000 20 100 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "store/store.h"
#include "util/status.h"

static double now(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *dir = argv[1];
    int n = atoi(argv[2]), b = atoi(argv[3]), rooms = atoi(argv[4]);
    struct store_config cfg = {.dir = dir, .sync_mode = "normal"};
    const struct store_ops *o = &store_sqlite_ops;
    struct store *st;
    struct store_conn *c;
    int64_t user, *rid = calloc(rooms, sizeof(int64_t));
    char body[101], cmid[32];
    memset(body, 'x', 100);
    body[100] = 0;
    if (o->open(&cfg, &st) || o->conn_open(st, 1, &c)) return 1;
    o->user_insert(c, "bench", "h", 1, &user);
    for (int i = 0; i < rooms; i++) {
        struct store_room r = {0};
        snprintf(r.name, sizeof(r.name), "r%d", i);
        r.created_by = user;
        o->room_insert(c, &r, NULL);
        rid[i] = r.id;
    }
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < n;) {
        o->begin(c);
        for (int k = 0; k < b && i < n; k++, i++) {
            struct store_event ev = {.room_id = rid[i % rooms], .kind = EV_MESSAGE, .sender = user,
                                     .ts = i, .body = body, .body_len = 100};
            snprintf(cmid, sizeof(cmid), "c%d", i);
            ev.client_msg_id = cmid;
            ev.cmid_len = strlen(cmid);
            if (o->event_append(c, &ev) != CD_OK) return 2;
        }
        if (o->commit(c) != CD_OK) return 3;
    }
    double w1 = now(CLOCK_MONOTONIC), c1 = now(CLOCK_PROCESS_CPUTIME_ID);
    printf("%.3f %.3f\n", (c1 - c0) / n * 1e6, (w1 - w0) / n * 1e6);
    o->conn_close(c);
    o->close(st);
    return 0;
}
