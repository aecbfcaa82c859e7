/* Typed access at checked offsets, one implementation for every host. Hosts pass signed 64-bit offsets and
 * lengths; negative ones are range errors here, then the core's checked access (ohm_buf_span / ohm_buf_write:
 * liveness, overflow, bounds, seal) does the rest, so the messages are the core's ("offset 12 + length 8
 * exceeds buffer size 16"). */
#define _GNU_SOURCE /* memmem */
#include "bind_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define unlikely(x) __builtin_expect(!!(x), 0)

static const struct {
    unsigned size;
    const char *name;
} types[OHM_BT_COUNT] = {
    {1, "i8"},  {1, "u8"},  {2, "i16"}, {2, "u16"}, {4, "i32"},
    {4, "u32"}, {8, "i64"}, {8, "u64"}, {4, "f32"}, {8, "f64"},
};

unsigned ohm_bind_type_size(ohm_bind_type t) { return (unsigned)t < OHM_BT_COUNT ? types[t].size : 0; }
const char *ohm_bind_type_name(ohm_bind_type t) { return (unsigned)t < OHM_BT_COUNT ? types[t].name : "?"; }

/* ---- checked host integers ---- */

static int negative(const char *what, int64_t v)
{
    char msg[96];
    snprintf(msg, sizeof msg, "%s %" PRId64 " is negative", what, v);
    return ohm_set_error(OHM_ERANGE, msg);
}

int ohm_bind_size(int64_t value, uint64_t max, const char *what, size_t *out)
{
    char msg[128];
    if (!what) what = "size";
    if (value < 0) {
        snprintf(msg, sizeof msg, "%s %" PRId64 " is negative", what, value);
        return ohm_set_error(OHM_EINVAL, msg);
    }
    if ((max && (uint64_t)value > max) || (uint64_t)value > SIZE_MAX) {
        snprintf(msg, sizeof msg, "%s %" PRId64 " is too large (at most %" PRIu64 ")", what, value,
                 max ? max : (uint64_t)SIZE_MAX);
        return ohm_set_error(OHM_EINVAL, msg);
    }
    *out = (size_t)value;
    return 0;
}

int ohm_bind_range(uint64_t size, int64_t off, int64_t len)
{
    if (off < 0) return negative("offset", off);
    if (len < 0) return negative("length", len);
    return ohm_range_check((size_t)size, (size_t)off, (size_t)len);
}

/* The pointer to [off, off+len) of a live b, for reading. */
static int span(const ohm_buf *b, int64_t off, int64_t len, void **p)
{
    if (unlikely(off < 0)) return negative("offset", off);
    if (unlikely(len < 0)) return negative("length", len);
    return ohm_buf_span(b, (size_t)off, (size_t)len, p);
}

int ohm_bind_span(const ohm_buf *b, int64_t off, int64_t len, void **ptr) { return span(b, off, len, ptr); }

int ohm_bind_read(const ohm_buf *b, int64_t off, void *dst, int64_t len)
{
    void *p;
    int rc = span(b, off, len, &p);
    if (rc) return rc;
    if (len) memcpy(dst, p, (size_t)len);
    return 0;
}

int ohm_bind_write(ohm_buf *b, int64_t off, const void *src, int64_t len)
{
    if (unlikely(off < 0)) return negative("offset", off);
    if (unlikely(len < 0)) return negative("length", len);
    return ohm_buf_write(b, (size_t)off, src, (size_t)len); /* the core also refuses a sealed buffer */
}

/* ---- typed values ---- */

/* Loads and stores of each width with constant-size copies (one mov each, and a bswap for big-endian), not a
 * memcpy of a variable length: that call was 13% of a typed-read loop in a binding. ohm builds for little-endian
 * targets only (x86-64, aarch64). */
static inline uint64_t load(const unsigned char *p, unsigned n, int order)
{
    uint8_t b1;
    uint16_t b2;
    uint32_t b4;
    uint64_t b8;
    switch (n) {
    case 1: memcpy(&b1, p, 1); return b1;
    case 2: memcpy(&b2, p, 2); return order == OHM_BIND_BE ? __builtin_bswap16(b2) : b2;
    case 4: memcpy(&b4, p, 4); return order == OHM_BIND_BE ? __builtin_bswap32(b4) : b4;
    default: memcpy(&b8, p, 8); return order == OHM_BIND_BE ? __builtin_bswap64(b8) : b8;
    }
}

static inline void store(unsigned char *p, uint64_t v, unsigned n, int order)
{
    uint8_t b1 = (uint8_t)v;
    uint16_t b2 = (uint16_t)v;
    uint32_t b4 = (uint32_t)v;
    switch (n) {
    case 1: memcpy(p, &b1, 1); break;
    case 2:
        if (order == OHM_BIND_BE) b2 = __builtin_bswap16(b2);
        memcpy(p, &b2, 2);
        break;
    case 4:
        if (order == OHM_BIND_BE) b4 = __builtin_bswap32(b4);
        memcpy(p, &b4, 4);
        break;
    default:
        if (order == OHM_BIND_BE) v = __builtin_bswap64(v);
        memcpy(p, &v, 8);
        break;
    }
}

static int bad_type(int t)
{
    char msg[64];
    snprintf(msg, sizeof msg, "unknown value type %d", t);
    return ohm_set_error(OHM_EINVAL, msg);
}

int ohm_bind_get(const ohm_buf *b, int64_t off, ohm_bind_type t, int order, ohm_bind_value *out)
{
    if (unlikely((unsigned)t >= OHM_BT_COUNT)) return bad_type((int)t);
    unsigned n = types[t].size;
    void *p;
    int rc = span(b, off, n, &p);
    if (rc) return rc;
    uint64_t raw = load(p, n, order);
    switch (t) {
    case OHM_BT_I8: out->i = (int8_t)raw; break;
    case OHM_BT_I16: out->i = (int16_t)raw; break;
    case OHM_BT_I32: out->i = (int32_t)raw; break;
    case OHM_BT_F32: {
        float f;
        uint32_t w = (uint32_t)raw;
        memcpy(&f, &w, 4);
        out->f = f;
        break;
    }
    case OHM_BT_F64: memcpy(&out->f, &raw, 8); break;
    default: out->u = raw; break; /* unsigned types zero-extended; i64 shares u64's bits */
    }
    return 0;
}

int ohm_bind_set(ohm_buf *b, int64_t off, ohm_bind_type t, int order, ohm_bind_value v)
{
    if (unlikely((unsigned)t >= OHM_BT_COUNT)) return bad_type((int)t);
    unsigned n = types[t].size;
    uint64_t raw;
    if (t == OHM_BT_F32) {
        float f = (float)v.f;
        uint32_t w;
        memcpy(&w, &f, 4);
        raw = w;
    } else {
        raw = v.u; /* f64 and every integer: the low n bytes, i.e. two's-complement truncation */
    }
    unsigned char tmp[8];
    store(tmp, raw, n, order);
    return ohm_bind_write(b, off, tmp, n);
}

/* ---- bits ---- */

static int bit_range(const ohm_buf *b, int64_t bit_off, int count, int64_t *byte_off, int64_t *nbytes)
{
    char msg[160];
    if (count < 0 || count > 64) {
        snprintf(msg, sizeof msg, "bit count %d is outside [0, 64]", count);
        return ohm_set_error(OHM_EINVAL, msg);
    }
    if (bit_off < 0) return negative("bit offset", bit_off);
    int rc = ohm_buf_check(b, ohm_buf_id(b));
    if (rc) return rc;
    uint64_t bits = (uint64_t)ohm_buf_size(b) * 8; /* buffers are far below 2^61 bytes */
    if ((uint64_t)bit_off > bits || (uint64_t)count > bits - (uint64_t)bit_off) {
        snprintf(msg, sizeof msg, "bit offset %" PRId64 " + count %d exceeds %" PRIu64 " bits", bit_off, count, bits);
        return ohm_set_error(OHM_ERANGE, msg);
    }
    *byte_off = bit_off / 8;
    *nbytes = count ? (bit_off % 8 + count + 7) / 8 : 0; /* at most 9 bytes */
    return 0;
}

int ohm_bind_get_bits(const ohm_buf *b, int64_t bit_off, int count, uint64_t *out)
{
    int64_t at, n;
    int rc = bit_range(b, bit_off, count, &at, &n);
    if (rc) return rc;
    unsigned char tmp[9] = {0};
    if (n && (rc = ohm_bind_read(b, at, tmp, n))) return rc;
    unsigned shift = (unsigned)(bit_off % 8);
    uint64_t v = 0;
    for (int64_t i = n; i-- > 0;) v = v << 8 | tmp[i]; /* low 64 bits of the little-endian window */
    v >>= shift;
    if (shift && n == 9) v |= (uint64_t)tmp[8] << (64 - shift);
    *out = count == 64 ? v : v & ((UINT64_C(1) << count) - 1);
    return 0;
}

int ohm_bind_set_bits(ohm_buf *b, int64_t bit_off, int count, uint64_t value)
{
    int64_t at, n;
    int rc = bit_range(b, bit_off, count, &at, &n);
    if (rc || !n) return rc;
    unsigned char tmp[9];
    if ((rc = ohm_bind_read(b, at, tmp, n))) return rc;
    unsigned shift = (unsigned)(bit_off % 8);
    for (int i = 0; i < count; i++) {
        unsigned bit = shift + (unsigned)i;
        unsigned char m = (unsigned char)(1u << (bit % 8));
        if (value >> i & 1) tmp[bit / 8] |= m;
        else tmp[bit / 8] &= (unsigned char)~m;
    }
    return ohm_bind_write(b, at, tmp, n);
}

/* ---- bulk ---- */

int ohm_bind_copy(ohm_buf *dst, int64_t dst_off, const ohm_buf *src, int64_t src_off, int64_t len)
{
    if (unlikely(dst_off < 0)) return negative("destination offset", dst_off);
    if (unlikely(src_off < 0)) return negative("source offset", src_off);
    if (unlikely(len < 0)) return negative("length", len);
    return ohm_buf_copy(dst, (size_t)dst_off, src, (size_t)src_off, (size_t)len);
}

int ohm_bind_fill(ohm_buf *b, int64_t off, uint8_t byte, int64_t len)
{
    if (unlikely(off < 0)) return negative("offset", off);
    if (unlikely(len < 0)) return negative("length", len);
    return ohm_buf_fill(b, (size_t)off, byte, (size_t)len);
}

int64_t ohm_bind_find(const ohm_buf *b, int64_t off, int64_t len, const void *needle, size_t nlen)
{
    void *p;
    int rc = span(b, off, len, &p);
    if (rc) return rc;
    if (nlen == 0) return off;
    if (!needle) return ohm_set_error(OHM_EINVAL, "needle is NULL");
    if ((uint64_t)len < nlen) return -1;
    const unsigned char *hay = p, *hit = memmem(hay, (size_t)len, needle, nlen);
    return hit ? off + (int64_t)(hit - hay) : -1;
}

int ohm_bind_compare(const ohm_buf *a, int64_t a_off, const ohm_buf *b, int64_t b_off, int64_t len, int *cmp)
{
    void *pa, *pb;
    int rc = span(a, a_off, len, &pa);
    if (!rc) rc = span(b, b_off, len, &pb);
    if (rc) return rc;
    int c = len ? memcmp(pa, pb, (size_t)len) : 0;
    *cmp = (c > 0) - (c < 0);
    return 0;
}

int ohm_bind_compare_all(const ohm_buf *a, const ohm_buf *b, int *cmp)
{
    void *pa, *pb;
    size_t na = ohm_buf_size(a), nb = ohm_buf_size(b);
    int rc = ohm_buf_span(a, 0, na, &pa);
    if (!rc) rc = ohm_buf_span(b, 0, nb, &pb);
    if (rc) return rc;
    size_t n = na < nb ? na : nb;
    int c = n ? memcmp(pa, pb, n) : 0;
    if (!c) c = (na > nb) - (na < nb);
    *cmp = (c > 0) - (c < 0);
    return 0;
}
