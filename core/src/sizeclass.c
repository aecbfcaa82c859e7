/* The size-class table (see sizeclass.h). */
#include "sizeclass.h"

sc_info sc_table[SC_COUNT];
uint8_t sc_lut[(SC_LUT_MAX >> 4) + 1];

/* The arithmetic form of sc_index, used to build the table and for sizes above it. */
static unsigned sc_index_arith(size_t size)
{
    if (size <= 128) return size ? (unsigned)((size + 15) >> 4) - 1 : 0;
    unsigned lg = 63u - (unsigned)__builtin_clzll((unsigned long long)(size - 1));
    return 8 + (lg - 7) * 4 + (unsigned)((size - 1 - ((size_t)1 << lg)) >> (lg - 2));
}

/* Slab geometry: the fewest pages (1..32) that hold at least min_objs blocks (4 from 4 KiB on, so that a slab
 * serves several allocations per run operation), at most SC_SLAB_MAX_OBJS, and waste at most 1/16 of the slab
 * to the tail that no block fits in; if none qualifies, the page count with the least waste. */
static void sc_slab_geometry(sc_info *c)
{
    unsigned best_pages = 1, min_objs = c->size >= 4096 ? 4 : 1;
    double best_waste = 1.0;
    for (unsigned pages = 1; pages <= 32; pages++) {
        size_t bytes = pages * OHM_PAGE, objs = bytes / c->size;
        if (objs < min_objs || objs > SC_SLAB_MAX_OBJS) continue;
        double waste = (double)(bytes - objs * c->size) / (double)bytes;
        if (waste <= 1.0 / 16) {
            best_pages = pages;
            break;
        }
        if (waste < best_waste) {
            best_waste = waste;
            best_pages = pages;
        }
    }
    c->slab_pages = (uint16_t)best_pages;
    c->slab_objs = (uint16_t)(best_pages * OHM_PAGE / c->size);
    c->slab_limit = c->slab_objs * c->size;
}

void sc_init(void)
{
    unsigned n = 0;
    for (uint32_t s = 16; s <= 128; s += 16) sc_table[n++].size = s;
    for (unsigned lg = 7; n < SC_COUNT; lg++)
        for (uint32_t k = 1; k <= 4 && n < SC_COUNT; k++) sc_table[n++].size = (1u << lg) + k * (1u << (lg - 2));
    for (unsigned i = 0; i < SC_COUNT; i++) {
        sc_info *c = &sc_table[i];
        c->div_magic = UINT64_MAX / c->size + 1;
        if (i < SC_NSMALL) sc_slab_geometry(c);
    }
    for (size_t g = 0; g <= SC_LUT_MAX >> 4; g++) sc_lut[g] = (uint8_t)sc_index_arith(g << 4);
}

unsigned sc_count_for_chunk(size_t chunk_size)
{
    unsigned n = 0;
    while (n < SC_COUNT && sc_table[n].size <= chunk_size) n++;
    return n;
}

unsigned ohm_size_class_count(size_t chunk_size)
{
    ohm__init();
    return sc_count_for_chunk(chunk_size);
}

size_t ohm_size_class_size(unsigned cls)
{
    ohm__init();
    return cls < SC_COUNT ? sc_table[cls].size : 0;
}
