/* clock.h — monotonic time and process memory figures used by --verbose and bench. */
#ifndef HEARTH_BASE_CLOCK_H
#define HEARTH_BASE_CLOCK_H

#include <stdint.h>

int64_t clock_ns(void);          /* CLOCK_MONOTONIC in nanoseconds */
int64_t clock_peak_rss_bytes(void); /* peak resident set size of this process */

#endif
