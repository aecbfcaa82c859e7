/* Random numbers (splitmix64 seeding, xorshift64* per thread), the pattern every buffer carries, and
 * the error records the summary prints. */
#include "stress.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64 of one value: a seed or a buffer id, mixed. */
static uint64_t splitmix64(uint64_t x) { return harness_splitmix64(&x); }

/* Thread index i of a run seeded s always gets the same stream: the choices of a thread are reproducible
 * (their interleaving with other threads is not). */
uint64_t rng_seed(uint64_t seed, unsigned index)
{
    uint64_t x = splitmix64(seed + index);
    return x ? x : 1; /* xorshift's state must not be 0 */
}

uint64_t rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

uint64_t rng_range(uint64_t *state, uint64_t lo, uint64_t hi)
{
    if (hi <= lo) return lo;
    return lo + rng_next(state) % (hi - lo + 1);
}

bool rng_chance(uint64_t *state, double p)
{
    if (p <= 0) return false;
    return (double)(rng_next(state) >> 11) * 0x1.0p-53 < p;
}

/* The pattern: the 8-byte word at absolute offset 8k of buffer pid is x ^ (x >> 31) with x = h(pid) + k * K,
 * little-endian: any byte can be recomputed from (pid, offset), so slices at odd offsets and spilled data
 * verify too, and two buffers (or two offsets) never share a word sequence. One multiply a word: the pattern
 * must not be what the run spends its time on. */
static inline uint64_t pattern_word_h(uint64_t h, size_t k)
{
    uint64_t x = h + (uint64_t)k * 0x9e3779b97f4a7c15ull;
    return x ^ (x >> 31);
}

void pattern_fill(void *dst, size_t len, uint64_t pid, size_t off)
{
    const uint64_t h = splitmix64(pid);
    uint8_t *p = dst;
    size_t i = 0;
    while (i < len && ((off + i) & 7)) { /* head up to a word boundary */
        size_t o = off + i;
        p[i++] = (uint8_t)(pattern_word_h(h, o >> 3) >> ((o & 7) * 8));
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w = pattern_word_h(h, (off + i) >> 3);
        memcpy(p + i, &w, 8);
    }
    for (; i < len; i++) {
        size_t o = off + i;
        p[i] = (uint8_t)(pattern_word_h(h, o >> 3) >> ((o & 7) * 8));
    }
}

size_t pattern_find_mismatch(const void *src, size_t len, uint64_t pid, size_t off)
{
    const uint64_t h = splitmix64(pid);
    const uint8_t *p = src;
    size_t i = 0;
    while (i < len && ((off + i) & 7)) {
        size_t o = off + i;
        if (p[i] != (uint8_t)(pattern_word_h(h, o >> 3) >> ((o & 7) * 8))) return i;
        i++;
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w = pattern_word_h(h, (off + i) >> 3), got;
        memcpy(&got, p + i, 8);
        if (got != w) break; /* the byte loop below names the first differing byte */
    }
    for (; i < len; i++) {
        size_t o = off + i;
        if (p[i] != (uint8_t)(pattern_word_h(h, o >> 3) >> ((o & 7) * 8))) return i;
    }
    return SIZE_MAX;
}

#define KEPT_ERRORS 8
static pthread_mutex_t errors_lock = PTHREAD_MUTEX_INITIALIZER;
static char errors[KEPT_ERRORS][256];
static unsigned nerrors;

void stress_error(stress *s, counter *kind, const char *fmt, ...)
{
    (void)s;
    atomic_fetch_add_explicit(kind, 1, memory_order_relaxed);
    pthread_mutex_lock(&errors_lock);
    if (nerrors < KEPT_ERRORS) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errors[nerrors++], sizeof errors[0], fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&errors_lock);
}

void stress_print_errors(void)
{
    pthread_mutex_lock(&errors_lock);
    for (unsigned i = 0; i < nerrors; i++) fprintf(stderr, "ohm-stress: error: %s\n", errors[i]);
    pthread_mutex_unlock(&errors_lock);
}

bool parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return false;
    *out = v;
    return true;
}

bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) return false;
    *out = v;
    return true;
}

const char *leak_level_name(ohm_leak_level level)
{
    static const char *const names[] = {"off", "simple", "advanced", "paranoid"};
    return (unsigned)level < sizeof names / sizeof names[0] ? names[level] : "?";
}
