/* ohm-stress: a stress and leak-detection run over the whole runtime.
 *
 * main.c     options, setup, the run, the final checks (leaks, accounting drift) and the exit status
 * workers.c  the worker threads: pool blocks, buffers handed between threads, memory-manager tasks with
 *            spilling consumers, the storage block cache, mapped files
 * monitor.c  the sampling thread (every ~100 ms) and the progress line
 * report.c   the summary (text or JSON) and the HTML report
 * chart.c    the HTML reports' page head and inline SVG line charts (chart.h)
 * util.c     random numbers, the byte pattern every buffer carries, RSS, error records, option numbers
 * workload.c, lua_driver.c  ohm-stress --lua: users' workloads, and their report (see workload.h); workload.c and
 *            chart.c are also the report writer of the Java driver (libohm_jni.so links them)
 *
 * Every shared counter is a relaxed atomic: the monitor reads them while workers run. */
#ifndef OHM_STRESS_H
#define OHM_STRESS_H

#include "chart.h"
#include "harness.h"
#include "ohm.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define STRESS_INBOX_CAP 256 /* hand-off queue per worker; a full queue makes the sender consume itself */
#define STRESS_RAW_SLOTS 64  /* live pool blocks per worker */
#define STRESS_CONSUMERS 3   /* OFF_HEAP consumers per task */
#define STRESS_PAGES     4   /* pages per consumer */
#define STRESS_BLOCKS    32  /* cached storage blocks per worker */

typedef struct stress_opts {
    unsigned threads;
    double duration_s; /* used when ops == 0 */
    uint64_t ops;      /* total operations over all threads; 0 = run for duration_s */
    uint64_t seed;
    double leak_rate, fail_rate;
    ohm_leak_level leak_level; /* the detector's level for the run (default PARANOID) */
    uint64_t max_leaks;        /* cap on injected leaks (all threads), so long runs stay bounded */
    uint64_t mm_bytes;         /* max of each memory-manager mode */
    bool json;
    const char *report; /* HTML file or NULL */
    const char *tmpdir; /* parent of the run's temporary directory */
} stress_opts;

typedef _Atomic uint64_t counter;

typedef struct stress_counters {
    counter ops, buf_ops, pool_ops, mm_ops, block_ops, map_ops;
    counter handoffs, local_consumes;
    counter integrity_errors, api_errors;
    counter faults_survived; /* ENOMEM (an injected map failure) seen and handled by a worker */
    counter spills, spill_bytes, spill_failures, restores;
    counter evictions, blocks_put, blocks_refused, mm_limited, mm_timeouts;
    counter tasks_started, tasks_ended;
    counter maps;
    counter leaks_injected, leaks_untracked;
    counter log_warnings;
} stress_counters;

/* One handed-off buffer: the receiver verifies [0, len) of b against pattern pid at offset off. */
typedef enum handoff_kind { HANDOFF_WHOLE = 0, HANDOFF_SLICE, HANDOFF_DUPLICATE, HANDOFF_RETAINED_SLICE } handoff_kind;
typedef struct handoff {
    ohm_buf *b;
    uint64_t id;  /* ohm_buf_id of the handle sent */
    uint64_t pid; /* pattern id */
    size_t off, len;
    handoff_kind kind;
} handoff;

typedef struct page_slot {
    ohm_buf *page; /* NULL when spilled or unused */
    size_t size;   /* bytes carrying the pattern */
    uint64_t pid;
    bool spilled;
    uint64_t file_off;
} page_slot;

struct worker;
typedef struct consumer_state {
    struct worker *w;
    ohm_consumer *c;
    int fd; /* spill file (unlinked at creation) */
    uint64_t file_end;
    page_slot slots[STRESS_PAGES];
} consumer_state;

typedef struct block_slot {
    struct worker *w;
    _Atomic int state; /* BLOCK_FREE, BLOCK_CACHED, BLOCK_EVICTED (set by the evict callback) */
    char id[40];
    uint64_t pid;
    size_t size;
    ohm_mem_mode mode;
} block_slot;
enum { BLOCK_FREE = 0, BLOCK_CACHED, BLOCK_EVICTED };

typedef struct leaked_buf {
    ohm_buf *b;
    uint64_t id;
} leaked_buf;

typedef struct raw_slot {
    void *p;
    size_t size;
    uint64_t pid;
} raw_slot;

struct stress;
typedef struct worker {
    struct stress *s;
    unsigned index;
    pthread_t thread;
    uint64_t rng;
    uint64_t next_pid;
    /* inbox: mutex-protected ring, filled by other workers */
    pthread_mutex_t inbox_lock;
    handoff inbox[STRESS_INBOX_CAP];
    unsigned inbox_head, inbox_count;
    raw_slot raw[STRESS_RAW_SLOTS];
    /* memory manager */
    ohm_task *task;
    uint64_t task_seq, task_ops_left, heap_held;
    consumer_state cons[STRESS_CONSUMERS];
    block_slot blocks[STRESS_BLOCKS];
    uint64_t block_seq;
    char map_path[PATH_MAX];
    leaked_buf *leaked;
    size_t nleaked, leaked_cap;
    uint64_t leak_budget;
    /* published for the monitor */
    _Atomic uint64_t task_used[OHM_MM_MODES];
} worker;

typedef struct sample {
    double t;
    uint64_t ops, rss, live;
    uint64_t exec_used[OHM_MM_MODES], storage_used[OHM_MM_MODES];
    uint64_t spills, evictions;
    uint64_t *task_used; /* per worker, OFF_HEAP + ON_HEAP */
} sample;

typedef struct stress {
    stress_opts o;
    stress_counters c;
    ohm_pool *pool;
    ohm_mm *mm;
    char dir[1024]; /* the run's temporary directory (spill files, mapped files) */
    worker *workers;
    atomic_bool stop;
    pthread_barrier_t done; /* every worker stopped sending before any drains its inbox */
    double t0;
    /* monitor */
    pthread_t monitor;
    atomic_bool monitor_stop;
    bool progress;
    sample *samples;
    size_t nsamples, samples_cap;
    pthread_mutex_t samples_lock;
    uint64_t peak_live;
    double share_min, share_max; /* task share of the OFF_HEAP max, over samples with used > 0 */
    /* results */
    double elapsed;
    uint64_t faults_injected, leaks_reported, leaks_false, leaks_missed, leaks_no_site, leak_reports;
    uint64_t map_faults;  /* OS maps failed on purpose (faults_injected without the spill callbacks) */
    bool leaks_unchecked; /* fewer chosen buffers were tracked than the level and fail rate allow */
    char leaks_unchecked_why[256];
    int64_t drift;
    uint64_t mm_left;   /* manager bytes still accounted after cleanup */
    uint64_t pool_left; /* private pool active bytes after everything was released */
    uint64_t peak_rss, rss_after_trim;
} stress;

/* util.c */
uint64_t rng_next(uint64_t *state);
uint64_t rng_seed(uint64_t seed, unsigned index);
uint64_t rng_range(uint64_t *state, uint64_t lo, uint64_t hi); /* uniform in [lo, hi] */
bool rng_chance(uint64_t *state, double p);
void pattern_fill(void *dst, size_t len, uint64_t pid, size_t off);
/* The first offset (relative to src) whose byte differs from the pattern, or SIZE_MAX if none. */
size_t pattern_find_mismatch(const void *src, size_t len, uint64_t pid, size_t off);
/* Seconds on the monotonic clock. */
static inline double now_s(void) { return (double)harness_now_ns() * 1e-9; }
/* Counts an error of a kind (integrity or API) and keeps the first few messages for the summary. */
void stress_error(stress *s, counter *kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void stress_print_errors(void);
/* A number option's value: the whole text, in [lo, hi]; false otherwise. */
bool parse_double(const char *s, double lo, double hi, double *out);
bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);
/* "off", "simple", "advanced" or "paranoid". */
const char *leak_level_name(ohm_leak_level level);

/* workers.c */
int workers_init(stress *s);
void *worker_main(void *arg);
void workers_fini(stress *s);

/* monitor.c */
int monitor_start(stress *s);
void monitor_stop(stress *s);

/* report.c */
void report_summary(const stress *s);
void report_json(const stress *s);
int report_html(const stress *s, const char *path);
bool stress_failed(const stress *s);

#endif /* OHM_STRESS_H */
