/* Size classes: 16-byte steps up to 128 B, then 4 classes per doubling up to 64 MiB (the largest chunk).
 * Classes up to 32 KiB (the first 40) are carved from slabs; above, every class is a page multiple and is
 * served as a page run. Slabs reach 32 KiB, as tcmalloc's spans and mimalloc's pages do, because a slab block
 * is freed with a bitmap flip while a run is split, coalesced and binned: with half of a 16 B..32 KiB workload
 * in runs, run bookkeeping was most of ohm's time in batch-*. From 4 KiB on a slab holds at least 4 blocks.
 * The table is built once (ohm__init) and never written again. */
#ifndef OHM_SIZECLASS_H
#define OHM_SIZECLASS_H

#include "internal.h"

#pragma GCC visibility push(hidden)

#define SC_COUNT         84    /* == OHM_MAX_CLASSES */
#define SC_NSMALL        40    /* classes 0..39 live in slabs */
#define SC_SMALL_MAX     32768 /* largest slab class */
#define SC_MAX_SIZE      ((size_t)64 << 20)
#define SC_SLAB_MAX_OBJS 256 /* bitmap bound: 4 x 64 bits (chunk.h: RUN_SLAB_WORDS) */
#define SC_SLAB_WORDS    (SC_SLAB_MAX_OBJS / 64)

typedef struct sc_info {
    uint64_t div_magic;   /* UINT64_MAX / size + 1: divisibility and division by a multiply (Lemire) */
    uint64_t block_magic; /* div_magic + 1, see sc_slab_block */
    uint32_t size;
    uint32_t slab_limit;      /* small classes: slab_objs * size, the first offset past the last block */
    uint32_t block_key_limit; /* small classes: slab_objs * (size * block_magic mod 2^64), see sc_slab_block */
    uint16_t slab_pages;      /* small classes: pages per slab */
    uint16_t slab_objs;       /* small classes: blocks per slab */
} sc_info;
_Static_assert(sizeof(sc_info) == 32, "sc_info is indexed with a shift");

extern sc_info sc_table[SC_COUNT];
#define SC_LUT_MAX 4096
extern uint8_t sc_lut[(SC_LUT_MAX >> 4) + 1]; /* class by 16-byte granule, for sizes up to 4 KiB */

/* The class of a size in [0, SC_MAX_SIZE]; 0 maps to the 16-byte class. A table load up to 4 KiB, about eight
 * instructions above. */
static inline unsigned sc_index(size_t size)
{
    ohm_assert(size <= SC_MAX_SIZE && "sc_index: sizes above the largest class are huge blocks, not classes");
    if (ohm_likely(size <= SC_LUT_MAX)) return sc_lut[(size + 15) >> 4];
    unsigned lg = 63u - (unsigned)__builtin_clzll((unsigned long long)(size - 1)); /* 2^lg < size <= 2^(lg+1) */
    return 8 + (lg - 7) * 4 + (unsigned)((size - 1 - ((size_t)1 << lg)) >> (lg - 2));
}

static inline size_t sc_size(unsigned cls) { return sc_table[cls].size; }
static inline int sc_is_small(unsigned cls) { return cls < SC_NSMALL; }

/* Whether offset (< 2^32) is a multiple of the class size: one multiply and a compare, exact for every 32-bit
 * offset (Lemire, Kaser, Kurz: "Faster remainder by direct computation", 2019). */
static inline int sc_divides(unsigned cls, size_t offset)
{
    return (uint64_t)offset * sc_table[cls].div_magic <= sc_table[cls].div_magic - 1;
}
/* Whether offset (< 2^32) from a slab's start is the start of one of its blocks (a multiple of the class size
 * below slab_limit) with one multiply and one compare. block_magic is 2^64 / size + e with 1 < e <= 2, so
 * offset = k * size + r gives offset * block_magic = r * 2^64 / size + offset * e (mod 2^64, no wrap for offsets
 * below 2^32): at least 2^64 / size > 2^49 when r > 0, and exactly k * (size * block_magic mod 2^64), a
 * number in [k * size, 2 * k * size), when r = 0; below block_key_limit just when k < slab_objs. */
static inline int sc_slab_block(unsigned cls, size_t offset)
{
    return (uint64_t)offset * sc_table[cls].block_magic < sc_table[cls].block_key_limit;
}
/* offset / size for offset < 2^32: the high half of the 128-bit product. */
static inline size_t sc_div(unsigned cls, size_t offset)
{
    return (size_t)(((unsigned __int128)sc_table[cls].div_magic * (uint64_t)offset) >> 64);
}

/* Builds the tables; called once by ohm__init. */
void sc_init(void);
/* Number of classes whose size is at most chunk_size. */
unsigned sc_count_for_chunk(size_t chunk_size);

#pragma GCC visibility pop

#endif
