/* The size-class table (sizeclass.h): its shape, sc_index, the public class queries, slab geometry, and the
 * multiply-based divisibility and division the free path relies on. */
#include "../check.h"
#include "ohm.h"
#include "sizeclass.h"

/* The table from its definition: 16-byte steps to 128 B, then 2^k + j * 2^(k-2) for j = 1..4. */
static size_t expected_class_size(unsigned cls)
{
    if (cls < 8) return 16 * (size_t)(cls + 1);
    unsigned lg = 7 + (cls - 8) / 4, j = 1 + (cls - 8) % 4;
    return ((size_t)1 << lg) + j * ((size_t)1 << (lg - 2));
}

static void test_table_is_16_byte_steps_then_four_classes_per_doubling(void)
{
    CHECK_EQ_INT(SC_COUNT, OHM_MAX_CLASSES);
    CHECK_EQ_INT(SC_COUNT, 84);
    for (unsigned c = 0; c < SC_COUNT; c++)
        if (!CHECK_EQ_U64(sc_size(c), expected_class_size(c))) return;
    CHECK_EQ_U64(sc_size(0), 16);
    CHECK_EQ_U64(sc_size(7), 128);
    CHECK_EQ_U64(sc_size(SC_COUNT - 1), SC_MAX_SIZE);
    CHECK_EQ_U64(sc_size(SC_COUNT - 1), (size_t)64 << 20);
    /* exactly four classes in every (2^k, 2^(k+1)] from 128 on, the last of them 2^(k+1) */
    for (unsigned lg = 7; lg < 26; lg++) {
        unsigned n = 0;
        for (unsigned c = 0; c < SC_COUNT; c++)
            if (sc_size(c) > ((size_t)1 << lg) && sc_size(c) <= ((size_t)2 << lg)) n++;
        if (!CHECK_EQ_INT(n, 4)) return;
    }
}

static void test_table_is_strictly_monotone_and_16_byte_aligned(void)
{
    for (unsigned c = 0; c < SC_COUNT; c++) {
        CHECK_EQ_U64(sc_size(c) % 16, 0);
        if (c > 0 && !CHECK(sc_size(c) > sc_size(c - 1))) return;
    }
}

static void test_small_and_run_classes_split_above_32k(void)
{
    CHECK_EQ_U64(sc_size(SC_NSMALL - 1), SC_SMALL_MAX);
    CHECK_EQ_U64(SC_SMALL_MAX, 32768);
    CHECK_EQ_U64(sc_size(SC_NSMALL), 40960);
    for (unsigned c = 0; c < SC_COUNT; c++) {
        CHECK_EQ_INT(sc_is_small(c), sc_size(c) <= 32768);
        if (!sc_is_small(c)) CHECK_EQ_U64(sc_size(c) % OHM_PAGE, 0); /* run classes are page multiples */
    }
}

/* sc_index(size) must be the smallest class whose size is at least size. */
static bool index_is_smallest_fit(size_t size)
{
    unsigned c = sc_index(size);
    if (!CHECK(c < SC_COUNT)) return false;
    if (!CHECK(sc_size(c) >= size)) {
        fprintf(stderr, "  size %zu -> class %u (%zu)\n", size, c, sc_size(c));
        return false;
    }
    if (c > 0 && !CHECK(sc_size(c - 1) < size)) {
        fprintf(stderr, "  size %zu -> class %u (%zu), but class %u (%zu) fits\n", size, c, sc_size(c), c - 1,
                sc_size(c - 1));
        return false;
    }
    return true;
}

static void test_index_is_smallest_fitting_class_for_every_size_to_64k(void)
{
    CHECK_EQ_INT(sc_index(0), 0);
    for (size_t s = 0; s <= ((size_t)64 << 10); s++)
        if (!index_is_smallest_fit(s)) return;
}

static void test_index_is_smallest_fitting_class_at_boundaries_to_64m(void)
{
    for (unsigned k = 4; k <= 26; k++) {
        size_t p = (size_t)1 << k;
        size_t sizes[] = {p - 1, p, p + 1};
        for (unsigned i = 0; i < 3; i++)
            if (sizes[i] <= SC_MAX_SIZE && !index_is_smallest_fit(sizes[i])) return;
    }
    for (unsigned c = 0; c < SC_COUNT; c++) {
        size_t s = sc_size(c);
        if (!CHECK_EQ_INT(sc_index(s), c)) return;
        if (!index_is_smallest_fit(s - 1) || (s < SC_MAX_SIZE && !index_is_smallest_fit(s + 1))) return;
    }
}

static void test_public_class_queries_match_the_table(void)
{
    for (unsigned c = 0; c < SC_COUNT; c++) CHECK_EQ_U64(ohm_size_class_size(c), sc_size(c));
    CHECK_EQ_U64(ohm_size_class_size(SC_COUNT), 0);
    CHECK_EQ_U64(ohm_size_class_size(~0u), 0);
    for (unsigned k = 20; k <= 26; k++) {
        size_t chunk = (size_t)1 << k;
        unsigned n = ohm_size_class_count(chunk);
        if (!CHECK(n >= 1 && n <= SC_COUNT)) continue;
        CHECK_EQ_U64(ohm_size_class_size(n - 1), chunk); /* the chunk size is itself a class */
        if (n < SC_COUNT) CHECK(ohm_size_class_size(n) > chunk);
        CHECK_EQ_INT(n, sc_count_for_chunk(chunk));
    }
    CHECK_EQ_INT(ohm_size_class_count((size_t)64 << 20), OHM_MAX_CLASSES);
    CHECK_EQ_INT(ohm_size_class_count((size_t)4 << 20), 68);
    CHECK_EQ_INT(ohm_size_class_count(15), 0);
    CHECK_EQ_INT(ohm_size_class_count(16), 1);
}

static double slab_waste(size_t size, unsigned pages)
{
    size_t bytes = pages * OHM_PAGE;
    return (double)(bytes - bytes / size * size) / (double)bytes;
}

/* The geometry rule: 1..32 pages holding at least 4 blocks from 4 KiB on (else at least 1), at most
 * SC_SLAB_MAX_OBJS. */
static bool slab_geometry_allowed(size_t size, unsigned pages)
{
    size_t objs = pages * OHM_PAGE / size, min_objs = size >= 4096 ? 4 : 1;
    return objs >= min_objs && objs <= SC_SLAB_MAX_OBJS;
}

static void test_slab_geometry_bounds_objects_and_waste(void)
{
    for (unsigned c = 0; c < SC_NSMALL; c++) {
        const sc_info *ci = &sc_table[c];
        size_t size = ci->size, bytes = (size_t)ci->slab_pages * OHM_PAGE;
        CHECK(ci->slab_pages >= 1 && ci->slab_pages <= 32);
        CHECK(ci->slab_objs >= (size >= 4096 ? 4u : 1u));
        CHECK(ci->slab_objs <= SC_SLAB_MAX_OBJS);
        CHECK_EQ_U64(ci->slab_objs, bytes / size); /* as many blocks as fit */
        double waste = slab_waste(size, ci->slab_pages);
        if (waste <= 1.0 / 16) {
            /* and no fewer pages would have done */
            for (unsigned p = 1; p < ci->slab_pages; p++)
                if (slab_geometry_allowed(size, p) && !CHECK(slab_waste(size, p) > 1.0 / 16))
                    fprintf(stderr, "  class %zu: %u pages would waste %.4f, slab has %u\n", size, p,
                            slab_waste(size, p), ci->slab_pages);
        } else {
            /* no page count qualifies: this one must waste the least */
            for (unsigned p = 1; p <= 32; p++)
                if (slab_geometry_allowed(size, p) && !CHECK(slab_waste(size, p) >= waste))
                    fprintf(stderr, "  class %zu: %u pages waste %.4f < %.4f\n", size, p, slab_waste(size, p), waste);
        }
    }
}

static void test_divides_and_div_agree_with_modulo_for_every_slab_offset(void)
{
    for (unsigned c = 0; c < SC_NSMALL; c++) {
        size_t size = sc_size(c), bytes = (size_t)sc_table[c].slab_pages * OHM_PAGE;
        for (size_t off = 0; off <= bytes; off++) {
            if (sc_divides(c, off) != (off % size == 0)) {
                CHECK_EQ_U64(sc_divides(c, off), off % size == 0);
                fprintf(stderr, "  class %zu offset %zu\n", size, off);
                return;
            }
            if (sc_div(c, off) != off / size) {
                CHECK_EQ_U64(sc_div(c, off), off / size);
                fprintf(stderr, "  class %zu offset %zu\n", size, off);
                return;
            }
        }
    }
}

/* The comment promises exactness for every 32-bit offset; sample the far end for every class too. */
static void test_divides_and_div_are_exact_for_large_offsets(void)
{
    uint64_t x = 0x243f6a8885a308d3ull;
    for (unsigned c = 0; c < SC_COUNT; c++) {
        size_t size = sc_size(c);
        for (unsigned i = 0; i < 20000; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t off = i < 64 ? (size_t)UINT32_MAX - i : (size_t)(x & UINT32_MAX);
            if (i % 2) off -= off % size; /* half of them exact multiples */
            if (sc_divides(c, off) != (off % size == 0) || sc_div(c, off) != off / size) {
                CHECK_EQ_U64(sc_div(c, off), off / size);
                CHECK_EQ_U64(sc_divides(c, off), off % size == 0);
                fprintf(stderr, "  class %zu offset %zu\n", size, off);
                return;
            }
        }
    }
}

int main(void)
{
    ohm__init(); /* white-box checks read the class tables before any pool exists */
    RUN(test_table_is_16_byte_steps_then_four_classes_per_doubling);
    RUN(test_table_is_strictly_monotone_and_16_byte_aligned);
    RUN(test_small_and_run_classes_split_above_32k);
    RUN(test_index_is_smallest_fitting_class_for_every_size_to_64k);
    RUN(test_index_is_smallest_fitting_class_at_boundaries_to_64m);
    RUN(test_public_class_queries_match_the_table);
    RUN(test_slab_geometry_bounds_objects_and_waste);
    RUN(test_divides_and_div_agree_with_modulo_for_every_slab_offset);
    RUN(test_divides_and_div_are_exact_for_large_offsets);
    return check_summary();
}
