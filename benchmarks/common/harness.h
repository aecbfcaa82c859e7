/* What ohm-bench and ohm-stress both need to measure a run: a seeded PRNG step, the monotonic clock and RSS
 * readings.
 *
 * None of these allocates or uses stdio: ohm-bench calls them inside a child while the allocator under test is
 * live, and their numbers must describe that allocator, not the harness. Each is thread-safe.
 */
#ifndef OHM_HARNESS_H
#define OHM_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

/* splitmix64: advances *state by the golden-ratio increment and returns a well-mixed 64-bit value. The same
 * seed gives the same sequence on every machine and under every allocator. */
static inline uint64_t harness_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t harness_now_ns(void);
/* Resident set size now, from /proc/self/statm; 0 if it cannot be read. */
uint64_t harness_rss_bytes(void);
/* Resets the peak-RSS mark (VmHWM) to the current RSS by writing "5" to /proc/self/clear_refs; false if the
 * kernel refuses, in which case harness_peak_rss_bytes() covers the whole life of the process. */
bool harness_reset_peak_rss(void);
/* Peak RSS since the last successful reset (or process start): VmHWM from /proc/self/status, falling back on
 * getrusage's ru_maxrss; 0 if neither can be read. */
uint64_t harness_peak_rss_bytes(void);

#endif /* OHM_HARNESS_H */
