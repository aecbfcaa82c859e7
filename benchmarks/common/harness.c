/* The clock and RSS readings of harness.h, with plain syscalls only (see there why). */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

uint64_t harness_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Reads a whole /proc file into buf (NUL-terminated); returns the length or -1. */
static ssize_t read_proc(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

uint64_t harness_rss_bytes(void)
{
    char buf[128];
    if (read_proc("/proc/self/statm", buf, sizeof buf) <= 0) return 0;
    char *end;
    strtoull(buf, &end, 10); /* total program size; the second field is the resident one */
    uint64_t pages = strtoull(end, NULL, 10);
    return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

bool harness_reset_peak_rss(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = write(fd, "5", 1) == 1;
    close(fd);
    return ok;
}

uint64_t harness_peak_rss_bytes(void)
{
    char buf[8192];
    if (read_proc("/proc/self/status", buf, sizeof buf) > 0) {
        const char *p = strstr(buf, "\nVmHWM:");
        if (p) return strtoull(p + 7, NULL, 10) * 1024u;
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) return (uint64_t)ru.ru_maxrss * 1024u;
    return 0;
}
