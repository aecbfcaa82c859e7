/* The OS layer: the only file that talks to the kernel about memory.
 *
 * Feature macros come from CMake (OHM_HAVE_MADV_HUGEPAGE, ...), not from OS names. The fault-injection switch
 * lives here because this is where memory enters the process: tests make the Nth or a random share of maps
 * fail and drive every out-of-memory path above. */
#define _GNU_SOURCE
#include "os.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#ifdef OHM_HAVE_GETRANDOM
#include <sys/random.h>
#endif

/* ---- fault injection ---- */

static _Atomic uint64_t fi_every;     /* fail every nth map; 0 = off */
static _Atomic uint64_t fi_threshold; /* fail when a random 32-bit draw is below it */
static _Atomic uint64_t fi_rng;
static _Atomic uint64_t fi_count; /* maps seen since injection was armed */
static _Atomic uint64_t fi_injected;

void ohm_fault_inject(uint64_t every_nth, double fraction, uint64_t seed)
{
    uint64_t threshold = 0;
    if (fraction > 0) threshold = fraction >= 1 ? ((uint64_t)1 << 32) : (uint64_t)(fraction * 4294967296.0);
    atomic_store(&fi_rng, seed ? seed : 0x9e3779b97f4a7c15ull);
    atomic_store(&fi_count, 0);
    atomic_store(&fi_threshold, threshold);
    atomic_store(&fi_every, every_nth);
}

uint64_t ohm_fault_injected(void) { return atomic_load(&fi_injected); }

/* splitmix64 step over a shared state; contention here only matters while a test injects faults. */
static uint64_t fi_next_random(void)
{
    uint64_t z = atomic_fetch_add(&fi_rng, 0x9e3779b97f4a7c15ull) + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* True when this map should fail. Two relaxed loads when injection is off. */
int os_fault_now(void)
{
    uint64_t every = atomic_load_explicit(&fi_every, memory_order_relaxed);
    uint64_t threshold = atomic_load_explicit(&fi_threshold, memory_order_relaxed);
    if (ohm_likely(!every && !threshold)) return 0;
    int fail = 0;
    if (every && (atomic_fetch_add(&fi_count, 1) + 1) % every == 0) fail = 1;
    if (threshold && (fi_next_random() & 0xffffffffu) < threshold) fail = 1;
    if (fail) atomic_fetch_add(&fi_injected, 1);
    return fail;
}

/* ---- mapping ---- */

static int map_raw(size_t size, int extra_flags, void **out)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
    if (p == MAP_FAILED) return errno;
    *out = p;
    return 0;
}

/* Maps size bytes aligned to align: directly when the kernel's placement happens to be aligned, else by
 * over-mapping align more bytes and trimming both ends. Returns errno. */
static int map_aligned(size_t size, size_t align, int extra_flags, void **out)
{
    ohm_assert(ohm_is_pow2(align) && align >= OHM_PAGE && size % OHM_PAGE == 0 &&
               "os_map: align is a power of two >= page, size a page multiple");
    void *p = NULL;
    int err = map_raw(size, extra_flags, &p);
    if (err) return err;
    if (((uintptr_t)p & (align - 1)) == 0) {
        *out = p;
        return 0;
    }
    munmap(p, size);
    size_t total = size + align;
    if (total < size) return EINVAL;
    err = map_raw(total, extra_flags, &p);
    if (err) return err;
    uintptr_t base = (uintptr_t)p, aligned = (base + align - 1) & ~(uintptr_t)(align - 1);
    if (aligned > base) munmap(p, aligned - base);
    size_t tail = (base + total) - (aligned + size);
    if (tail) munmap((void *)(aligned + size), tail);
    ohm_assert(aligned + size <= base + total && "os_map: the trimmed mapping lies inside the over-map");
    *out = (void *)aligned;
    return 0;
}

#define HUGETLB_PAGE ((size_t)2 << 20)

int os_map(size_t size, size_t align, int flags, void **out, int *huge_out)
{
    if (huge_out) *huge_out = 0;
    if (os_fault_now()) return ohm__error(OHM_ENOMEM, "mmap of %zu bytes failed (injected fault)", size);
#ifdef OHM_HAVE_MAP_HUGETLB
    /* Huge pages need 2 MiB multiples; trimming an over-map keeps 2 MiB boundaries because align is one too. */
    if ((flags & OS_MAP_HUGETLB) && size % HUGETLB_PAGE == 0) {
        size_t a = align < HUGETLB_PAGE ? HUGETLB_PAGE : align;
        if (map_aligned(size, a, MAP_HUGETLB, out) == 0) {
            if (huge_out) *huge_out = 1;
            return 0;
        }
        /* No reserved huge pages (the common case): fall back to normal pages. */
    }
#else
    (void)flags;
#endif
    int err = map_aligned(size, align, 0, out);
    if (err) return ohm__error_sys(OHM_ENOMEM, err, "mmap of %zu bytes (aligned to %zu) failed", size, align);
    ohm_assert(((uintptr_t)*out & (align - 1)) == 0 && "os_map: the mapping is aligned to align");
    return 0;
}

int os_unmap(void *p, size_t size)
{
    ohm_assert(((uintptr_t)p | size) % OHM_PAGE == 0 && "os_unmap: whole pages");
    if (munmap(p, size) != 0) return ohm__error_sys(OHM_ESYS, errno, "munmap(%p, %zu) failed", p, size);
    return 0;
}

int os_purge(void *p, size_t size)
{
    ohm_assert(((uintptr_t)p | size) % OHM_PAGE == 0 && size && "os_purge: whole pages, at least one");
    if (madvise(p, size, MADV_DONTNEED) != 0)
        return ohm__error_sys(OHM_ESYS, errno, "madvise(MADV_DONTNEED, %p, %zu) failed", p, size);
    return 0;
}

/* An advice this build may lack (advice < 0): then OHM_EINVAL, naming what is unsupported. */
static int os_advise(void *p, size_t size, int advice, const char *name, const char *unsupported)
{
    if (advice < 0) return ohm__error(OHM_EINVAL, "%s not supported by this build", unsupported);
    if (madvise(p, size, advice) != 0) return ohm__error_sys(OHM_ESYS, errno, "madvise(%s) failed", name);
    return 0;
}

#ifdef OHM_HAVE_MADV_HUGEPAGE
#define OS_MADV_HUGEPAGE MADV_HUGEPAGE
#else
#define OS_MADV_HUGEPAGE (-1)
#endif
#ifdef OHM_HAVE_MADV_MERGEABLE
#define OS_MADV_MERGEABLE MADV_MERGEABLE
#else
#define OS_MADV_MERGEABLE (-1)
#endif

int os_cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

int os_advise_hugepage(void *p, size_t size)
{
    return os_advise(p, size, OS_MADV_HUGEPAGE, "MADV_HUGEPAGE", "transparent huge pages are");
}

int os_advise_mergeable(void *p, size_t size)
{
    return os_advise(p, size, OS_MADV_MERGEABLE, "MADV_MERGEABLE", "MADV_MERGEABLE is");
}

int os_protect(void *p, size_t size, int mode)
{
    ohm_assert(((uintptr_t)p | size) % OHM_PAGE == 0 && "os_protect: whole pages");
    int prot = mode == OS_PROT_RW ? PROT_READ | PROT_WRITE : mode == OS_PROT_READ ? PROT_READ : PROT_NONE;
    if (mprotect(p, size, prot) != 0) return ohm__error_sys(OHM_ESYS, errno, "mprotect(%p, %zu) failed", p, size);
    return 0;
}

int os_lock(void *p, size_t size)
{
    if (mlock(p, size) != 0)
        return ohm__error_sys(OHM_ENOMEM, errno, "mlock of %zu bytes failed (see ulimit -l / CAP_IPC_LOCK)", size);
    return 0;
}

int os_unlock(void *p, size_t size)
{
    if (munlock(p, size) != 0) return ohm__error_sys(OHM_ESYS, errno, "munlock failed");
    return 0;
}

void *os_meta_alloc(size_t size)
{
    void *p = NULL;
    size = ohm_align_up(size, OHM_PAGE);
    if (os_fault_now()) {
        ohm__error(OHM_ENOMEM, "metadata allocation of %zu bytes failed (injected fault)", size);
        return NULL;
    }
    int err = map_raw(size, 0, &p);
    if (err) {
        ohm__error_sys(OHM_ENOMEM, err, "metadata mmap of %zu bytes failed", size);
        return NULL;
    }
    ohm_assert((uintptr_t)p % OHM_PAGE == 0 && "os_meta_alloc: page-aligned");
    return p;
}

void os_meta_free(void *p, size_t size)
{
    if (p) munmap(p, ohm_align_up(size, OHM_PAGE));
}

/* ---- system facts ---- */

unsigned os_ncpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

uint64_t os_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void os_wait_on(_Atomic uint32_t *word, uint32_t val)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0); /* EAGAIN, EINTR: the caller looks */
}

void os_wake_one(_Atomic uint32_t *word) { syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0); }

uint64_t os_now_coarse_ms(void) { return os_now_coarse_ns() / 1000000ull; }

uint64_t os_thread_id(void) { return (uint64_t)gettid(); }

uint64_t os_random64(void)
{
    uint64_t v = 0;
#ifdef OHM_HAVE_GETRANDOM
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v) return v;
#endif
    v = os_now_ns() ^ ((uint64_t)(uintptr_t)&v << 16) ^ (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
    return v;
}

size_t os_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (!f) return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* /proc/self/pagemap has one 64-bit entry per virtual page: bit 63 = present, bits 0-54 = frame number, which
 * the kernel reports as 0 to processes without CAP_SYS_ADMIN (since Linux 4.2). */
int ohm_virt_to_phys(const void *addr, uint64_t *phys)
{
    if (!phys) return ohm__error(OHM_EINVAL, "phys must not be NULL");
    long psize = sysconf(_SC_PAGESIZE);
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ohm__error_sys(OHM_ESYS, errno, "cannot open /proc/self/pagemap");
    uint64_t entry = 0;
    off_t off = (off_t)((uintptr_t)addr / (uintptr_t)psize) * (off_t)sizeof entry;
    ssize_t n = pread(fd, &entry, sizeof entry, off);
    int err = errno;
    close(fd);
    if (n != (ssize_t)sizeof entry)
        return ohm__error_sys(OHM_ESYS, n < 0 ? err : EIO, "cannot read /proc/self/pagemap");
    if (!(entry >> 63 & 1)) return ohm__error(OHM_EINVAL, "page at %p is not resident (touch it first)", addr);
    uint64_t pfn = entry & ((1ull << 55) - 1);
    if (pfn == 0)
        return ohm__error_sys(OHM_EPERM, EPERM,
                              "frame numbers in /proc/self/pagemap are hidden from this "
                              "process (needs CAP_SYS_ADMIN)");
    *phys = pfn * (uint64_t)psize + ((uintptr_t)addr % (uintptr_t)psize);
    return 0;
}

/* ---- stack walking (the walk itself is inline, in os.h) ---- */

OHM_TLS uintptr_t os__stack_lo, os__stack_hi;

/* This thread's stack, found once (pthread_getattr_np reads /proc for the main thread). */
static int stack_bounds(void)
{
    pthread_attr_t attr;
    void *addr;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return 0;
    int ok = pthread_attr_getstack(&attr, &addr, &size) == 0;
    pthread_attr_destroy(&attr);
    if (!ok) return 0;
    os__stack_lo = (uintptr_t)addr;
    os__stack_hi = (uintptr_t)addr + size;
    return 1;
}

int os_backtrace_first(const void *start, const void *anchor, void **frames, int max)
{
    return stack_bounds() ? os_backtrace(start, anchor, frames, max) : 0;
}
