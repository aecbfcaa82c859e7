/* ohm-bench: side-by-side benchmarks of ohm and its peers.
 *
 *   ohm-bench <bench> [options]      run one benchmark (ohm-bench <bench> --help for its options)
 *
 * Each benchmark is a row of the table below and a file bench_<name>.c.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "bench_util.h"

#ifdef OHM_BENCH_LUA
int bench_lua_main(int argc, char **argv); /* benchmarks/lua/bench_lua.c, built with the Lua module */
#endif

typedef struct bench_command {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *summary;
} bench_command;

static const bench_command commands[] = {
    {"alloc", bench_alloc_main,
     "the pool allocator against glibc malloc, jemalloc, mimalloc and tcmalloc (throughput and RSS)"},
    {"buf", bench_buf_main, "reference-counted buffers at each leak level against the raw pool"},
    {"mm", bench_mm_main, "the memory manager: acquire/release, spill storms, eviction storms"},
    {"ffi", bench_ffi_main, "a call through the libffi bridge (ohm_ffi_call) against a direct C call"},
#ifdef OHM_BENCH_LUA
    {"lua", bench_lua_main, "ohm buffers from Lua against string.pack, string.rep and tables; typed access"},
#endif
};

static void usage(FILE *out)
{
    fputs("usage: ohm-bench <bench> [options]   (ohm-bench <bench> --help for the options)\n\nbenches:\n", out);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
#ifndef __OPTIMIZE__
    /* The harness loops are part of every measured op; unoptimized, they blur the ratios. Said once, by the
     * parent, not by every child. */
    bool child = false;
    for (int i = 2; i < argc; i++) child |= strcmp(argv[i], "--child") == 0;
    if (!child) bench_warn("built without optimization: numbers are not representative");
#endif
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].main(argc - 1, argv + 1);
    bench_warn("unknown bench '%s'", argv[1]);
    usage(stderr);
    return 2;
}
