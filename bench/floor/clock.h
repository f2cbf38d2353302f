// SPDX-License-Identifier: Apache-2.0
/* The clock of the bench's C programs: CLOCK_MONOTONIC in microseconds (as bench/lib.mjs mono()). */
#ifndef BENCH_FLOOR_CLOCK_H
#define BENCH_FLOOR_CLOCK_H
#include <time.h>

static inline double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}
#endif
