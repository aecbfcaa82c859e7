/* The allocators of ohm-bench alloc: where a peer's library is (parent), and which malloc a child really runs
 * and how to call and trim it (child).
 *
 * ohm-bench never links a peer: a peer replaces malloc only in the child that runs it, through LD_PRELOAD, so
 * every allocator runs in a fresh process of the same binary, with the same code around it.
 */
#define _GNU_SOURCE
#include "bench_alloc.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "ohm.h"

/* Sanitizer runtimes interpose malloc themselves and must come first in the library list, so a sanitized
 * ohm-bench can run ohm only. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BENCH_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define BENCH_SANITIZED 1
#endif
#endif
#ifndef BENCH_SANITIZED
#define BENCH_SANITIZED 0
#endif

typedef struct impl_info {
    const char *name;
    const char *env;       /* overrides the library path */
    const char *files[2];  /* library names to look for, best first */
    const char *marker;    /* a symbol only this peer's library defines */
    const char *trim_name; /* its "give memory back now" entry point */
} impl_info;

static const impl_info impls[ALLOC_IMPL_COUNT] = {
    [ALLOC_OHM] = {"ohm", NULL, {NULL, NULL}, NULL, NULL},
    [ALLOC_GLIBC] = {"glibc", NULL, {NULL, NULL}, NULL, "malloc_trim"},
    [ALLOC_JEMALLOC] = {"jemalloc", "OHM_BENCH_JEMALLOC", {"libjemalloc.so.2", "libjemalloc.so"}, "mallctl", "mallctl"},
    [ALLOC_MIMALLOC] =
        {"mimalloc", "OHM_BENCH_MIMALLOC", {"libmimalloc.so.2", "libmimalloc.so"}, "mi_version", "mi_collect"},
    /* The minimal tcmalloc: no heap profiler or checker, which would add their own work to every call. */
    [ALLOC_TCMALLOC] = {"tcmalloc",
                        "OHM_BENCH_TCMALLOC",
                        {"libtcmalloc_minimal.so.4", "libtcmalloc_minimal.so"},
                        "tc_version",
                        "MallocExtension_ReleaseFreeMemory"},
};

const char *alloc_impl_name(alloc_impl impl) { return impl < ALLOC_IMPL_COUNT ? impls[impl].name : "?"; }

int alloc_impl_parse(const char *name)
{
    for (int i = 0; i < ALLOC_IMPL_COUNT; i++)
        if (strcmp(name, impls[i].name) == 0) return i;
    return -1;
}

/* ---- parent: finding a peer's library ---------------------------------------------------------------------- */

/* The file that defines symbol in this process, or NULL. */
static const char *symbol_file(const char *symbol)
{
    void *p = dlsym(RTLD_DEFAULT, symbol);
    Dl_info info;
    if (!p || !dladdr(p, &info) || !info.dli_fname) return NULL;
    return info.dli_fname;
}

/* Copies the directory part of file into dir ("" if none). */
static void dir_of(const char *file, char *dir, size_t cap)
{
    const char *slash = file ? strrchr(file, '/') : NULL;
    size_t len = slash ? (size_t)(slash - file) : 0;
    if (len >= cap) len = 0;
    memcpy(dir, file ? file : "", len);
    dir[len] = '\0';
}

/* Looks for file in the directories where Debian and others keep shared libraries: the directory libc was
 * loaded from (the multiarch one on Debian, found at run time), the multiarch directory CMake saw, then the
 * generic ones. */
static bool find_library(const char *file, char *path, size_t cap)
{
    char libc_dir[512];
    dir_of(symbol_file("gnu_get_libc_version"), libc_dir, sizeof libc_dir);
    const char *dirs[] = {
        libc_dir,
#ifdef OHM_BENCH_MULTIARCH_LIBDIR
        OHM_BENCH_MULTIARCH_LIBDIR,
#endif
        "/usr/local/lib",
        "/usr/lib64",
        "/usr/lib",
        "/lib64",
        "/lib",
    };
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (!dirs[i][0]) continue;
        snprintf(path, cap, "%s/%s", dirs[i], file);
        if (access(path, R_OK) == 0) return true;
    }
    return false;
}

bool alloc_impl_preload(alloc_impl impl, char *path, size_t cap, char *why, size_t why_cap)
{
    const impl_info *info = &impls[impl];
    path[0] = '\0';
    if (BENCH_SANITIZED && impl != ALLOC_OHM) {
        snprintf(why, why_cap, "%s skipped: a sanitized build can only measure ohm", info->name);
        return false;
    }
    if (!info->env) return true;
    const char *override = getenv(info->env);
    if (override && *override) {
        snprintf(path, cap, "%s", override);
        if (access(path, R_OK) != 0) {
            snprintf(why, why_cap, "%s skipped: %s=%s is not a readable file", info->name, info->env, override);
            return false;
        }
    } else if (!find_library(info->files[0], path, cap) && !find_library(info->files[1], path, cap)) {
        snprintf(why, why_cap, "%s skipped: %s not found (install it, or set %s=/path/to/it)", info->name,
                 info->files[0], info->env);
        return false;
    }
    /* ld.so splits LD_PRELOAD at spaces and colons. */
    if (strpbrk(path, " :")) {
        snprintf(why, why_cap, "%s skipped: LD_PRELOAD cannot carry the path '%s'", info->name, path);
        return false;
    }
    return true;
}

/* ---- child: which malloc runs, and the api over it --------------------------------------------------------- */

void alloc_free_failed(const alloc_api *a, void *p)
{
    /* ohm_free reports a pointer it does not own instead of corrupting memory; a harness must not ignore it. */
    bench_die(4, "%s: ohm_free(%p) failed: %s", alloc_impl_name(a->impl), p, ohm_last_error());
}

static void ohm_trim(const alloc_api *api)
{
    (void)api;
    ohm_pool *pool = ohm_pool_default();
    int rc = pool ? ohm_pool_trim(pool) : OHM_ENOMEM;
    if (rc != 0) bench_warn("ohm_pool_trim failed: %s (%s)", ohm_strerror(rc), ohm_last_error());
}

static void glibc_trim(const alloc_api *api)
{
    int (*malloc_trim_fn)(size_t) = (int (*)(size_t))api->trim_fn;
    malloc_trim_fn(0);
}

static void jemalloc_trim(const alloc_api *api)
{
    int (*mallctl)(const char *, void *, size_t *, void *, size_t) =
        (int (*)(const char *, void *, size_t *, void *, size_t))api->trim_fn;
    /* The calling thread's cache first, so its blocks are in the arenas when they are purged. 4096 is
     * MALLCTL_ARENAS_ALL: purge every arena (dirty and muzzy pages). */
    int rc = mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
    if (rc != 0) bench_warn("jemalloc: mallctl(\"thread.tcache.flush\") failed (%d)", rc);
    rc = mallctl("arena.4096.purge", NULL, NULL, NULL, 0);
    if (rc != 0) bench_warn("jemalloc: mallctl(\"arena.4096.purge\") failed (%d)", rc);
}

static void mimalloc_trim(const alloc_api *api)
{
    void (*mi_collect)(bool) = (void (*)(bool))api->trim_fn;
    mi_collect(true);
}

static void tcmalloc_trim(const alloc_api *api)
{
    api->trim_fn(); /* MallocExtension_ReleaseFreeMemory takes nothing and returns nothing */
}

/* The peer whose marker symbol is defined in this process, or ALLOC_GLIBC if none is. */
static alloc_impl loaded_peer(void)
{
    for (int i = ALLOC_JEMALLOC; i < ALLOC_IMPL_COUNT; i++)
        if (dlsym(RTLD_DEFAULT, impls[i].marker)) return (alloc_impl)i;
    return ALLOC_GLIBC;
}

/* Dies unless malloc in this process comes from the library that impl names. */
static void check_active(alloc_impl impl)
{
    const char *preload = getenv("LD_PRELOAD");
    const char *malloc_file = symbol_file("malloc");
    alloc_impl want = impl == ALLOC_OHM ? ALLOC_GLIBC : impl; /* ohm runs beside an untouched glibc malloc */
    alloc_impl found = loaded_peer();
    const char *owner = found == ALLOC_GLIBC ? symbol_file("gnu_get_libc_version") : symbol_file(impls[found].marker);
    bool ok = found == want && malloc_file && owner && strcmp(malloc_file, owner) == 0;
    if (!ok)
        bench_die(3, "child for %s: malloc comes from %s (%s loaded), not from %s; LD_PRELOAD=%s", impls[impl].name,
                  malloc_file ? malloc_file : "an unknown object", impls[found].name, impls[want].name,
                  preload ? preload : "(unset)");
}

void alloc_impl_bind(alloc_impl impl, alloc_api *api)
{
    if (impl >= ALLOC_IMPL_COUNT) bench_die(2, "no such allocator (%d)", (int)impl);
    if (!BENCH_SANITIZED) check_active(impl);
    memset(api, 0, sizeof *api);
    api->impl = impl;
    if (impl == ALLOC_OHM) {
        api->alloc = ohm_alloc;
        api->free_rc = ohm_free;
        api->trim = ohm_trim;
        return;
    }
    api->alloc = malloc;
    api->free = free;
    void *sym = dlsym(RTLD_DEFAULT, impls[impl].trim_name);
    if (!sym) bench_die(3, "%s: %s not found, cannot trim", impls[impl].name, impls[impl].trim_name);
    /* POSIX guarantees a function's address survives dlsym's void *; copying the bits says so without the
     * cast ISO C frowns on. */
    _Static_assert(sizeof sym == sizeof api->trim_fn, "function and object pointers differ in size");
    memcpy(&api->trim_fn, &sym, sizeof sym);
    static void (*const trims[ALLOC_IMPL_COUNT])(const alloc_api *) = {
        [ALLOC_GLIBC] = glibc_trim,
        [ALLOC_JEMALLOC] = jemalloc_trim,
        [ALLOC_MIMALLOC] = mimalloc_trim,
        [ALLOC_TCMALLOC] = tcmalloc_trim,
    };
    api->trim = trims[impl];
}
