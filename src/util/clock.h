/* clock.h - wall-clock time for timestamps that leave the process (message ts, last_seen, token
 * times, shared rate buckets). Durations use net_now_ms / uv_hrtime (monotonic) instead. */
#ifndef CD_CLOCK_H
#define CD_CLOCK_H

#include <stdint.h>

/* Unix time in milliseconds (CLOCK_REALTIME). Any thread; never fails. */
int64_t clock_unix_ms(void);

#endif
