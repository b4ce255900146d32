/* metrics_listen.h - GET /metrics on a separate internal address (--metrics-listen). */
#ifndef CD_METRICS_LISTEN_H
#define CD_METRICS_LISTEN_H

struct app;
struct metrics_listener;

/* Listen on addr ("host:port") on a thread of its own. 0 and *out, or -1 (logged: bad address,
 * bind failure). */
int metrics_listen_start(struct app *app, const char *addr, struct metrics_listener **out);
/* Close every connection, stop the thread. NULL is a no-op. Blocks until the thread ends. */
void metrics_listen_stop(struct metrics_listener *ml);

#endif
