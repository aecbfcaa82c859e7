/* replay_main.c — runs inputs through fuzz_api's LLVMFuzzerTestOneInput without libFuzzer, so the regression
 * inputs run in every build (gcc, ASan+UBSan, TSan) as the ctest test fuzz_regressions.
 *
 *   fuzz_replay [PATH...]   each PATH is a file or a directory (its regular files, not recursing, in name order)
 *
 * Without arguments it runs the directory it was built for (tests/fuzz/regressions). An invariant broken by an
 * input traps inside LLVMFuzzerTestOneInput; the name of the input being run is printed first, so the log says
 * which one it was. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef FUZZ_REGRESSIONS_DIR
#define FUZZ_REGRESSIONS_DIR "tests/fuzz/regressions"
#endif

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "%s: out of memory\n", path);
        return -1;
    }
    printf("run %s (%zu bytes)\n", path, len);
    fflush(stdout);
    /* a copy of exactly len bytes, so ASan sees reads past the input's end */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int run_path(const char *path, int *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return run_file(path);
    }
    DIR *d = opendir(path);
    if (!d) {
        perror(path);
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) break;
            names = nn;
        }
        size_t l = strlen(path) + strlen(e->d_name) + 2;
        names[n] = malloc(l);
        if (!names[n]) break;
        snprintf(names[n], l, "%s/%s", path, e->d_name);
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat fs;
        if (stat(names[i], &fs) == 0 && S_ISREG(fs.st_mode)) {
            (*count)++;
            if (run_file(names[i]) != 0) rc = -1;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    int count = 0, rc = 0;
    if (argc < 2) {
        rc = run_path(FUZZ_REGRESSIONS_DIR, &count);
        if (count == 0) {
            fprintf(stderr, "fuzz_replay: no inputs in %s\n", FUZZ_REGRESSIONS_DIR);
            return 1;
        }
    }
    for (int i = 1; i < argc; i++)
        if (run_path(argv[i], &count) != 0) rc = -1;
    printf("%d inputs passed\n", count);
    return rc ? 1 : 0;
}
