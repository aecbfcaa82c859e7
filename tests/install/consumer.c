/* A program built against an installed ohm (tests/install): allocates from the default pool, writes, reads back. */
#include <ohm.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    char *p = ohm_alloc(64);
    if (!p) {
        fprintf(stderr, "ohm_alloc: %s\n", ohm_last_error());
        return 1;
    }
    strcpy(p, "installed ohm works");
    puts(p);
    ohm_free(p);
    return 0;
}
