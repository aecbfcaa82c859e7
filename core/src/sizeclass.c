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

#ifdef OHM_DEBUG
/* What the header promises of the table, checked once when it is built: sizes grow, the slab/run split and
 * the page-multiple run classes, the class <-> size round trip (table and arithmetic alike), slab geometry, and
 * the division by a multiply on every block offset of a slab. */
static void sc_check(void)
{
    ohm_assert(sc_table[SC_NSMALL - 1].size == SC_SMALL_MAX && sc_table[SC_COUNT - 1].size == SC_MAX_SIZE &&
               "size classes: the last slab class is SC_SMALL_MAX and the last class SC_MAX_SIZE");
    ohm_assert(sc_index(0) == 0 && "size classes: size 0 maps to the 16-byte class");
    for (unsigned i = 0; i < SC_COUNT; i++) {
        const sc_info *c = &sc_table[i];
        ohm_assert(c->size % 16 == 0 && (i == 0 || c->size > sc_table[i - 1].size) &&
                   "size classes: sizes are 16-byte multiples and grow with the index");
        ohm_assert((sc_is_small(i) || c->size % OHM_PAGE == 0) && "size classes: every run class is a page multiple");
        ohm_assert(sc_index(c->size) == i && sc_index_arith(c->size) == i && "size classes: sc_index(sc_size(i)) == i");
        ohm_assert((i == 0 || sc_index(sc_table[i - 1].size + 1) == i) &&
                   "size classes: one byte above a class size is the next class");
        if (!sc_is_small(i)) continue;
        ohm_assert(c->slab_pages >= 1 && c->slab_pages <= 32 && c->slab_objs >= 1 && c->slab_objs <= SC_SLAB_MAX_OBJS &&
                   "slab geometry: 1..32 pages, 1..SC_SLAB_MAX_OBJS blocks");
        ohm_assert(c->slab_limit == c->slab_objs * c->size && c->slab_limit <= (size_t)c->slab_pages * OHM_PAGE &&
                   "slab geometry: the blocks fit the slab's pages");
        ohm_assert((c->size < 4096 || c->slab_objs >= 4) && "slab geometry: from 4 KiB on a slab holds 4 blocks");
        for (uint32_t k = 0; k <= c->slab_objs; k++)
            ohm_assert(sc_divides(i, (size_t)k * c->size) && !sc_divides(i, (size_t)k * c->size + 8) &&
                       sc_div(i, (size_t)k * c->size + c->size - 1) == k &&
                       "sc_divides / sc_div: exact on every block offset of a slab");
        for (size_t off = 0; off < (size_t)c->slab_pages * OHM_PAGE; off += 8)
            ohm_assert(sc_slab_block(i, off) == (off % c->size == 0 && off < c->slab_limit) &&
                       "sc_slab_block: exactly the slab's block starts");
    }
    for (size_t s = 0; s <= SC_LUT_MAX; s++)
        ohm_assert(sc_index(s) == sc_index_arith(s) && "size classes: the lookup table agrees with the arithmetic");
}
#endif

void sc_init(void)
{
    unsigned n = 0;
    for (uint32_t s = 16; s <= 128; s += 16) sc_table[n++].size = s;
    for (unsigned lg = 7; n < SC_COUNT; lg++)
        for (uint32_t k = 1; k <= 4 && n < SC_COUNT; k++) sc_table[n++].size = (1u << lg) + k * (1u << (lg - 2));
    for (unsigned i = 0; i < SC_COUNT; i++) {
        sc_info *c = &sc_table[i];
        c->div_magic = UINT64_MAX / c->size + 1;
        if (i < SC_NSMALL) {
            sc_slab_geometry(c);
            c->block_magic = c->div_magic + 1;
            c->block_key_limit = (uint32_t)(c->slab_objs * (c->size * c->block_magic));
        }
    }
    for (size_t g = 0; g <= SC_LUT_MAX >> 4; g++) sc_lut[g] = (uint8_t)sc_index_arith(g << 4);
    ohm_debug_only(sc_check());
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
