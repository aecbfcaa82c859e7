/* Arenas: page runs, slabs, decay purging and remote frees (see arena.h).
 *
 * Free runs carry boundary tags in the page entries: a free run's first and last entries both name its head
 * page, whose run record holds the length, so freeing a run finds and merges its neighbours in O(1). The tags
 * are in the dense page-entry array, not in the run records: a tail record would be one more cold cache line
 * per free (measured: most of the time in run_make_free).
 * A free run merges with every free neighbour, resident or purged, so free runs are maximal and a wholly free
 * chunk is one run that serves any request that fits. Which of a run's pages are dirty (freed since they were
 * last purged) is in its chunk's dirty map, one bit per page: a piece split off takes exactly its own dirty
 * pages along, purging advises only the stretch that holds them, and dirty_pages stays exact. */
#include "arena.h"

#include "list.h"
#include "os.h"
#include "poison.h"

#include <string.h>

/* ---- the dirty map ---- */

/* The bits of map word w that fall in pages [h, end), a range that overlaps the word; *nbits says how many. */
static uint64_t range_mask(size_t w, size_t h, size_t end, unsigned *nbits)
{
    unsigned lo = h > w * 64 ? (unsigned)(h - w * 64) : 0, hi = end < w * 64 + 64 ? (unsigned)(end - w * 64) : 64;
    *nbits = hi - lo;
    return (~0ull >> (64 - (hi - lo))) << lo;
}

enum { MAP_COUNT, MAP_SET, MAP_CLEAR };

/* Counts the set bits of pages [h, h+n), then clears them (MAP_CLEAR) or leaves them (MAP_COUNT); MAP_SET sets
 * them all and returns 0, as its callers know they were clear. Words wholly clear or wholly set, the usual case,
 * are counted without a popcount (a libgcc call on a baseline x86-64 build). */
static uint32_t map_apply(uint64_t *map, size_t h, size_t n, int op)
{
    uint32_t set = 0;
    unsigned nbits;
    for (size_t w = h / 64, end = h + n; w * 64 < end; w++) {
        uint64_t m = range_mask(w, h, end, &nbits), bits = map[w] & m;
        if (op == MAP_SET) {
            map[w] |= m;
            continue;
        }
        set += bits == 0 ? 0 : bits == m ? nbits : (uint32_t)__builtin_popcountll(bits);
        if (op == MAP_CLEAR) map[w] &= ~m;
    }
    return set;
}

/* The stretch [*lo, *hi) from the first to the last dirty page of [h, h+n); empty (*lo == *hi) if none. */
static void map_span(const uint64_t *map, size_t h, size_t n, size_t *lo, size_t *hi)
{
    size_t end = h + n, first = h / 64, last = (end - 1) / 64, w;
    unsigned nbits;
    *lo = *hi = h;
    for (w = first; w <= last && !(map[w] & range_mask(w, h, end, &nbits)); w++) {}
    if (w > last) return;
    *lo = w * 64 + (size_t)__builtin_ctzll(map[w] & range_mask(w, h, end, &nbits));
    for (w = last; !(map[w] & range_mask(w, h, end, &nbits)); w--) {}
    *hi = w * 64 + 64 - (size_t)__builtin_clzll(map[w] & range_mask(w, h, end, &nbits));
}

/* Pages [h, h+n) were just freed: all dirty (their bits were clear, as they were allocated). */
static void pages_dirtied(arena_t *a, chunk_t *c, size_t h, uint32_t n)
{
    ohm_assert(map_apply(c->dirty, h, n, MAP_COUNT) == 0 && "no dirty bit on an allocated page");
    map_apply(c->dirty, h, n, MAP_SET);
    a->dirty_pages += n;
}

/* Pages [h, h+n) are allocated or purged: none is dirty any more. Returns how many were. */
static uint32_t pages_cleaned(arena_t *a, chunk_t *c, size_t h, size_t n)
{
    uint32_t was = map_apply(c->dirty, h, n, MAP_CLEAR);
    ohm_assert(a->dirty_pages >= was && "arena: dirty_pages counts every set bit of the dirty maps");
    a->dirty_pages -= was;
    return was;
}

/* ---- bins of free runs ----
 * A bin holds the free runs of one size (1 to 64 pages), then of a quarter of a doubling, as a pairing heap
 * ordered by address. A run is filed under the largest bin size it reaches, and a request looks from the
 * smallest bin size that is not below it, so every run there fits: the first non-empty bin's minimum is the
 * best-fitting size class at its lowest address. Reusing low addresses first packs live memory into few
 * chunks and leaves the high ends free to go back whole (jemalloc and Netty do the same).
 * Heap links: child is the first child, next the next sibling, prev the previous sibling or, for a first child,
 * the parent. Read as a binary tree, child is the left edge, next the right one and prev the parent. */

/* Runs of bin b have at least this many pages (and fewer than bin b+1's size). */
static uint32_t bin_size(unsigned b)
{
    if (b < ARENA_EXACT_BINS) return b + 1;
    unsigned k = b - ARENA_EXACT_BINS, lg = 6 + k / 4;
    return (1u << lg) + (k % 4 + 1) * (1u << (lg - 2));
}

/* The smallest bin whose size is at least npages. */
static unsigned bin_ceil(uint32_t npages)
{
    if (npages <= ARENA_EXACT_BINS) return npages - 1;
    unsigned lg = 31u - (unsigned)__builtin_clz(npages - 1); /* 2^lg < npages <= 2^(lg+1) */
    return ARENA_EXACT_BINS + (lg - 6) * 4 + ((npages - 1 - (1u << lg)) >> (lg - 2));
}

/* The bin a free run of npages is filed in: the largest whose size it reaches. */
static unsigned bin_floor(uint32_t npages)
{
    if (npages <= ARENA_EXACT_BINS) return npages - 1;
    unsigned lg = 31u - (unsigned)__builtin_clz(npages); /* 2^lg <= npages < 2^(lg+1) */
    return ARENA_EXACT_BINS - 1 + (lg - 6) * 4 + ((npages - (1u << lg)) >> (lg - 2));
}

/* Whether free run r starts below free run s. */
static bool run_below(const run_t *r, const run_t *s)
{
    return r->chunk == s->chunk ? r < s : r->chunk->base < s->chunk->base;
}

/* Joins two heap roots (neither with siblings) into one; returns the new root, the lower run. */
static run_t *heap_link(run_t *x, run_t *y)
{
    if (run_below(y, x)) {
        run_t *t = x;
        x = y;
        y = t;
    }
    y->prev = x;
    y->next = x->child;
    if (x->child) x->child->prev = y;
    x->child = y;
    return x;
}

/* Melds a list of siblings into one heap in two passes, pairs left to right and then the pairs right to left,
 * the pass that keeps a pairing heap's removals O(log n) amortized. NULL for an empty list. */
static run_t *heap_meld(run_t *first)
{
    run_t *pairs = NULL; /* the melded pairs, last first, through next */
    while (first) {
        run_t *x = first, *y = x->next;
        first = y ? y->next : NULL;
        x->prev = x->next = NULL;
        if (y) {
            y->prev = y->next = NULL;
            x = heap_link(x, y);
        }
        x->next = pairs;
        pairs = x;
    }
    run_t *root = pairs;
    if (!root) return NULL;
    pairs = root->next;
    root->next = NULL;
    while (pairs) {
        run_t *x = pairs;
        pairs = x->next;
        x->next = NULL;
        root = heap_link(root, x);
    }
    return root;
}

static void bin_insert(arena_t *a, run_t *r)
{
    unsigned b = bin_floor(r->npages);
    r->child = r->next = r->prev = NULL;
    a->bins[b] = a->bins[b] ? heap_link(a->bins[b], r) : r;
    a->nonempty[b / 64] |= 1ull << (b % 64);
}

/* Takes r out of its bin: its children, melded, take its place. */
static void bin_remove(arena_t *a, run_t *r)
{
    unsigned b = bin_floor(r->npages);
    run_t *sub = heap_meld(r->child);
    if (r == a->bins[b]) {
        a->bins[b] = sub;
    } else {
        if (r->prev->child == r) r->prev->child = r->next; /* a first child: prev is the parent */
        else r->prev->next = r->next;
        if (r->next) r->next->prev = r->prev;
        if (sub) a->bins[b] = heap_link(a->bins[b], sub);
    }
    if (!a->bins[b]) a->nonempty[b / 64] &= ~(1ull << (b % 64));
}

/* The run after r in a preorder walk of its heap (the binary-tree reading of the links), or NULL. */
static run_t *heap_walk_next(run_t *r)
{
    if (r->child) return r->child;
    for (;;) {
        if (r->next) return r->next;
        run_t *from;
        do { /* climb to the nearest ancestor entered by its left (child) edge */
            from = r;
            r = r->prev;
        } while (r && r->child != from);
        if (!r) return NULL;
    }
}

/* The lowest run of bin b with at least npages pages, or NULL: a walk of the whole heap, for a request that is
 * not a bin size (an aligned one) when no larger bin has a run. */
static run_t *bin_scan(arena_t *a, unsigned b, uint32_t npages)
{
    run_t *best = NULL;
    for (run_t *r = a->bins[b]; r; r = heap_walk_next(r))
        if (r->npages >= npages && (!best || run_below(r, best))) best = r;
    return best;
}

/* The lowest free run of the smallest size class that holds npages, else of the bin just below if one of its
 * runs is large enough; NULL if no free run of the arena fits. npages is at most a chunk. */
static run_t *bins_find(arena_t *a, uint32_t npages)
{
    unsigned b = bin_ceil(npages);
    for (unsigned w = b / 64; w < ARENA_BINS / 64; w++) {
        uint64_t bits = a->nonempty[w];
        if (w == b / 64) bits &= ~0ull << (b % 64);
        if (bits) return a->bins[w * 64 + (unsigned)__builtin_ctzll(bits)];
    }
    return bin_size(b) != npages ? bin_scan(a, b - 1, npages) : NULL;
}

/* ---- the purge (time) list ---- */

static void timed_append(arena_t *a, run_t *r)
{
    r->timed = 1;
    LIST_PUSH_BACK(a->timed_head, a->timed_tail, r, tnext, tprev);
}

static void timed_remove(arena_t *a, run_t *r)
{
    LIST_UNLINK_TAIL(a->timed_head, a->timed_tail, r, tnext, tprev);
    r->timed = 0;
}

/* The bits of a slab's bitmap word w that stand for blocks, of objs blocks in all. */
static uint64_t slab_word_bits(unsigned objs, unsigned w)
{
    unsigned n = objs > w * 64 ? objs - w * 64 : 0;
    return n >= 64 ? ~0ull : (1ull << n) - 1;
}

/* Marks every block of slab s free in bitmap words [from, RUN_SLAB_WORDS). */
static void slab_fill_bits(run_t *s, unsigned from)
{
    unsigned objs = sc_table[s->cls].slab_objs;
    for (unsigned w = from; w < RUN_SLAB_WORDS; w++) s->bitmap[w] = slab_word_bits(objs, w);
}

/* ---- O(1) checks at each run operation (OHM_DEBUG) ----
 * The tags of the run an operation touches and of its neighbours, and its dirty bits (a few words of the map).
 * Whole-chunk and whole-arena walks are at the end of this file. */
#ifdef OHM_DEBUG
static uint32_t map_count(const chunk_t *c, size_t h, size_t n) { return map_apply(c->dirty, h, n, MAP_COUNT); }

/* Whether a free run of n pages in c must be on the purge list (run_make_free's rule). */
static bool run_should_be_timed(const chunk_t *c, uint32_t n, uint32_t ndirty)
{
    return ndirty && (!c->pinned || n == c->npages);
}

/* Free run r of c: its record, both boundary tags, its dirty count and its purge-list membership. */
static void check_free_run(const chunk_t *c, const run_t *r)
{
    size_t h = chunk_run_index(c, r);
    ohm_assert(r->state == RUN_FREE && r->chunk == c && "free run: the record says free and names its chunk");
    ohm_assert(r->npages >= 1 && h + r->npages <= c->npages && "free run: lies inside its chunk");
    uint32_t head = pg_get(c, h), tail = pg_get(c, h + r->npages - 1);
    ohm_assert(pg_kind(head) == PG_FREE && pg_head(head) == h && "free run: the head tag names the head page");
    ohm_assert(pg_kind(tail) == PG_FREE && pg_head(tail) == h && "free run: the tail tag names the head page");
    ohm_assert(r->ndirty == map_count(c, h, r->npages) && "free run: ndirty equals its set bits in the dirty map");
    ohm_assert(r->timed == run_should_be_timed(c, r->npages, r->ndirty) &&
               "free run: on the purge list exactly when dirty (unpinned chunk, or the whole chunk)");
}

/* Allocated run [h, h+n) of c, about to be freed: its record and tags agree with n, and no page is dirty. */
static void check_alloc_run(const chunk_t *c, size_t h, uint32_t n)
{
    const run_t *r = &c->runs[h];
    uint32_t head = pg_get(c, h), tail = pg_get(c, h + n - 1);
    ohm_assert(r->chunk == c && r->npages == n && n >= 1 && h + n <= c->npages &&
               "allocated run: the record's length is the run's, inside its chunk");
    if (r->state == RUN_LARGE) {
        ohm_assert(pg_kind(head) == PG_RUN && pg_head(head) == h && pg_cls(head) == r->cls &&
                   "large run: the head entry is PG_RUN of its class naming itself");
        ohm_assert(!sc_is_small(r->cls) && sc_size(r->cls) == (size_t)n << OHM_PAGE_SHIFT &&
                   "large run: its length is its run class's size");
        ohm_assert((n == 1 || (pg_kind(tail) == PG_RUN_TAIL && pg_head(tail) == h && pg_cls(tail) == r->cls)) &&
                   "large run: the tail entry is PG_RUN_TAIL naming the head");
    } else {
        ohm_assert(r->state == RUN_SLAB && "allocated run: a slab or a large run");
        ohm_assert(pg_kind(head) == PG_SLAB && pg_head(head) == h && pg_kind(tail) == PG_SLAB && pg_head(tail) == h &&
                   pg_cls(head) == r->cls && pg_cls(tail) == r->cls &&
                   "slab: its first and last entries are PG_SLAB of its class naming the head");
        ohm_assert(sc_is_small(r->cls) && n == sc_table[r->cls].slab_pages && "slab: its length is its class's");
    }
    ohm_assert(map_count(c, h, n) == 0 && "allocated run: no dirty bit on an allocated page");
}

/* A slab's free count against its bitmap (four popcounts), and no bit past its last block. An empty slab's
 * bitmap holds its list links past the first word: its count says every block is free. */
static void check_slab_bits(const run_t *s)
{
    unsigned objs = sc_table[s->cls].slab_objs, set = 0;
    if (s->timed) {
        ohm_assert(s->nfree == objs && s->bitmap[0] == slab_word_bits(objs, 0) &&
                   "empty slab: every block is free, and its first bitmap word (not a list link) says so");
        return;
    }
    for (unsigned w = 0; w < RUN_SLAB_WORDS; w++) {
        uint64_t valid = slab_word_bits(objs, w);
        ohm_assert(!(s->bitmap[w] & ~valid) && "slab: no free bit past its last block");
        set += (unsigned)__builtin_popcountll(s->bitmap[w]);
    }
    ohm_assert(s->nfree == set && s->nfree <= objs && "slab: nfree equals its bitmap's set bits");
}

static void arena_check_after(arena_t *a);
#endif

/* ---- free runs ---- */

/* Makes [h, h+n) one free run holding ndirty dirty pages (already in the map). Its interior page entries must be
 * PG_FREE, or PG_RUN_TAIL left over from a large run freed there (run_free does not rewrite a large run's tails:
 * 256 stores for 1 MiB were most of its cost); readers of a PG_RUN_TAIL entry check it against its head
 * (chunk.h: pg_tail_live). A run with dirty pages joins the purge list unless its chunk is pinned, in which case
 * only a wholly free chunk does (to be unmapped whole). */
static void run_make_free(arena_t *a, chunk_t *c, size_t h, uint32_t n, uint32_t ndirty, uint64_t freed_ms)
{
    run_t *r = &c->runs[h];
    r->chunk = c;
    r->npages = n;
    r->state = RUN_FREE;
    r->ndirty = ndirty;
    r->freed_ms = freed_ms;
    r->timed = 0;
    pg_set(c, h, pg_make(PG_FREE, 0, (unsigned)h));
    pg_set(c, h + n - 1, pg_make(PG_FREE, 0, (unsigned)h));
    bin_insert(a, r);
    if (ndirty && (!c->pinned || n == c->npages)) timed_append(a, r);
    ohm_debug_only(check_free_run(c, r)); /* catches a caller's wrong ndirty (the pieces of a split) */
}

static void run_unlink(arena_t *a, run_t *r)
{
    bin_remove(a, r);
    if (r->timed) timed_remove(a, r);
}

/* The free run that ends just before page h (its boundary tag), or NULL. */
static run_t *free_run_before(chunk_t *c, size_t h)
{
    if (h == 0) return NULL;
    uint32_t e = pg_get(c, h - 1);
    return pg_kind(e) == PG_FREE ? &c->runs[pg_head(e)] : NULL;
}

/* The free run that starts at page h, or NULL. */
static run_t *free_run_at(chunk_t *c, size_t h)
{
    return h < c->npages && pg_kind(pg_get(c, h)) == PG_FREE ? &c->runs[h] : NULL;
}

/* Frees the allocated run [h, h+n): its pages become dirty, it merges with its free neighbours, and the result
 * is filed, its decay starting now. A slab's interior entries are cleared (a stale PG_SLAB would let a free
 * through); a large run's tails may stay (see run_make_free), so only its head changes, and the end if it stays
 * a boundary. */
static void run_free(arena_t *a, chunk_t *c, size_t h, uint32_t n)
{
#ifdef OHM_DEBUG
    check_alloc_run(c, h, n);
    a->dbg_touched = c;
#endif
    if (c->runs[h].state == RUN_LARGE) pg_set(c, h, pg_make(PG_FREE, 0, (unsigned)h));
    else
        for (size_t i = h; i < h + n; i++) pg_set(c, i, pg_make(PG_FREE, 0, (unsigned)h));
    c->free_pages += n;
    a->active_pages -= n;
    pages_dirtied(a, c, h, n);
    uint32_t ndirty = n;
    run_t *left = free_run_before(c, h), *right = free_run_at(c, h + n);
#ifdef OHM_DEBUG
    if (left) {
        check_free_run(c, left);
        ohm_assert(chunk_run_index(c, left) + left->npages == h && "left neighbour: its tail tag's run ends here");
    }
    if (right) check_free_run(c, right);
#endif
    if (left) {
        run_unlink(a, left);
        h = chunk_run_index(c, left);
        n += left->npages;
        ndirty += left->ndirty;
    }
    if (right) {
        run_unlink(a, right);
        n += right->npages;
        ndirty += right->ndirty;
    }
    run_make_free(a, c, h, n, ndirty, os_now_coarse_ms());
    ohm_assert(!free_run_before(c, h) && !free_run_at(c, h + n) && "no two free runs are adjacent");
}

/* Adds a fresh chunk as one clean free run. Lock held. */
static void arena_adopt_chunk(arena_t *a, chunk_t *c)
{
    LIST_PUSH_FRONT(a->chunks, c, next, prev);
    a->nchunks++;
    a->chunks_mapped++;
    c->free_pages = c->npages;
    run_make_free(a, c, 0, c->npages, 0, os_now_coarse_ms());
}

/* Removes a wholly free chunk from the arena (its one free run already unlinked). Lock held; the caller
 * destroys it after unlocking. */
static void arena_detach_chunk(arena_t *a, chunk_t *c, chunk_t **detached)
{
    pages_cleaned(a, c, 0, c->npages); /* unmapped, its dirty pages are gone */
    LIST_UNLINK(a->chunks, c, next, prev);
    a->nchunks--;
    a->chunks_unmapped++;
    ohm_debug_only(if (a->dbg_touched == c) a->dbg_touched = NULL;)
    c->next = *detached;
    *detached = c;
}

static void destroy_detached(arena_t *a, chunk_t *list)
{
    while (list) {
        chunk_t *next = list->next;
        chunk_destroy(a->space, list);
        list = next;
    }
}

/* Takes npages of free run r, from its first page aligned to align_pages pages; what is left before and after
 * stays free, each piece with its own dirty pages and r's age. Lock held; returns r's chunk. */
static chunk_t *run_take(arena_t *a, run_t *r, uint32_t npages, uint32_t align_pages, size_t *head_out)
{
    chunk_t *c = r->chunk;
    size_t h = chunk_run_index(c, r);
    uint32_t total = r->npages, ndirty = r->ndirty;
    uint64_t freed = r->freed_ms;
#ifdef OHM_DEBUG
    check_free_run(c, r);
    ohm_assert(r->npages >= npages && "run_take: the run found fits the request");
    a->dbg_touched = c;
#endif
    run_unlink(a, r);
    if (align_pages > 1) {
        uintptr_t addr = (uintptr_t)chunk_page_addr(c, h), align = (uintptr_t)align_pages << OHM_PAGE_SHIFT;
        uint32_t lead = (uint32_t)((((addr + align - 1) & ~(align - 1)) - addr) >> OHM_PAGE_SHIFT);
        if (lead) {
            uint32_t lead_dirty = ndirty == 0 ? 0 : ndirty == total ? lead : map_apply(c->dirty, h, lead, MAP_COUNT);
            run_make_free(a, c, h, lead, lead_dirty, freed);
            ndirty -= lead_dirty;
        }
        h += lead;
        total -= lead;
    }
    ohm_assert(total >= npages && "run_take: the aligned start leaves room for the run");
    if (ndirty) ndirty -= pages_cleaned(a, c, h, npages); /* a clean run has no bit to clear */
    ohm_assert(map_count(c, h, npages) == 0 && "no dirty bit on an allocated page");
    if (total > npages) run_make_free(a, c, h + npages, total - npages, ndirty, freed);
    c->free_pages -= npages;
    a->active_pages += npages;
    *head_out = h;
    return c;
}

/* Takes a run of npages whose start is aligned to align_pages pages. Maps a new chunk when nothing fits,
 * releasing the lock meanwhile. Lock held; returns the chunk and head page, or NULL with the error set. */
static chunk_t *run_alloc(arena_t *a, uint32_t npages, uint32_t align_pages, size_t *head_out)
{
    uint32_t want = npages + (align_pages > 1 ? align_pages - 1 : 0);
    if (want > a->space->chunk_pages) {
        ohm__error(OHM_EINVAL, "a run of %u pages does not fit in a chunk", want);
        return NULL;
    }
    run_t *r;
    while (!(r = bins_find(a, want))) {
        ohm_debug_only(arena_check_after(a)); /* other threads see the arena while the lock is dropped */
        pthread_mutex_unlock(&a->lock);
        chunk_t *c = chunk_create(a->space, a);
        pthread_mutex_lock(&a->lock);
        if (!c) return NULL;
        arena_adopt_chunk(a, c);
    }
    return run_take(a, r, npages, align_pages, head_out);
}

/* ---- large runs (run classes) ---- */

static void *large_alloc(arena_t *a, unsigned cls, uint32_t align_pages)
{
    ohm_assert(!sc_is_small(cls) && "large runs are of run classes (the free path's block check relies on it)");
    uint32_t npages = (uint32_t)(sc_size(cls) >> OHM_PAGE_SHIFT);
    size_t h;
    chunk_t *c = run_alloc(a, npages, align_pages, &h);
    if (!c) return NULL;
    run_t *r = &c->runs[h];
    r->chunk = c;
    r->npages = npages;
    r->state = RUN_LARGE;
    r->cls = (uint8_t)cls;
    pg_fill(c, h + 1, npages - 1, pg_make(PG_RUN_TAIL, cls, (unsigned)h));
    /* The head entry last: a concurrent lookup that sees PG_RUN sees a complete record. */
    pg_set(c, h, pg_make(PG_RUN, cls, (unsigned)h));
    return chunk_page_addr(c, h);
}

/* ---- slabs ---- */

static void partial_push(arena_t *a, run_t *s) { LIST_PUSH_FRONT(a->partial[s->cls], s, next, prev); }

static void partial_remove(arena_t *a, run_t *s) { LIST_UNLINK(a->partial[s->cls], s, next, prev); }

/* Empty slabs: a slab whose last block came back stays a slab, on the partial list and on this FIFO (through
 * the purge-list links and freed_ms, which take its bitmap's place: chunk.h). A workload that empties and refills
 * its slabs in rounds (batch-*) then reuses them instead of rebuilding them from pages every round (measured:
 * run bookkeeping was the largest part of ohm's own time there). Purging returns them to pages after the
 * decay delay, under dirty-memory pressure, or at trim. */
static void empty_append(arena_t *a, run_t *s)
{
    s->timed = 1;
    s->freed_ms = os_now_coarse_ms();
    LIST_PUSH_BACK(a->empty_head, a->empty_tail, s, tnext, tprev);
    a->empty_pages += s->npages;
}

static void empty_remove(arena_t *a, run_t *s)
{
    LIST_UNLINK_TAIL(a->empty_head, a->empty_tail, s, tnext, tprev);
    s->timed = 0;
    a->empty_pages -= s->npages;
}

static run_t *slab_new(arena_t *a, unsigned cls)
{
    const sc_info *ci = &sc_table[cls];
    size_t h;
    chunk_t *c = run_alloc(a, ci->slab_pages, 1, &h);
    if (!c) return NULL;
    run_t *s = &c->runs[h];
    s->chunk = c;
    s->npages = ci->slab_pages;
    s->state = RUN_SLAB;
    s->cls = (uint8_t)cls;
    s->timed = 0;
    s->nfree = ci->slab_objs;
    slab_fill_bits(s, 0);
    for (size_t i = h; i < h + ci->slab_pages; i++) pg_set(c, i, pg_make(PG_SLAB, cls, (unsigned)h));
    poison_new_slab(a->cfg, chunk_page_addr(c, h), (size_t)ci->slab_pages << OHM_PAGE_SHIFT);
    partial_push(a, s);
    return s;
}

/* Takes up to want blocks from slab s, lowest addresses first (they share pages and cache lines). */
static unsigned slab_take(arena_t *a, run_t *s, void **out, unsigned want)
{
    chunk_t *c = s->chunk;
    uintptr_t base = (uintptr_t)chunk_page_addr(c, chunk_run_index(c, s));
    size_t size = sc_size(s->cls);
    unsigned got = 0;
    if (s->timed && want) { /* an empty slab in use again */
        empty_remove(a, s);
        /* The empty list's links took the bitmap's words from the second on (chunk.h); the first, in the
         * free-run heap's child slot, kept its bits, and is the only word of a slab of up to 64 blocks. */
        if (sc_table[s->cls].slab_objs > 64) slab_fill_bits(s, 1);
        else memset(&s->bitmap[1], 0, (RUN_SLAB_WORDS - 1) * sizeof s->bitmap[0]);
    }
    /* A word's bits stay in a register while its blocks are taken: out[] is written in the loop. */
    unsigned take = want < s->nfree ? want : s->nfree;
    for (unsigned w = 0; w < RUN_SLAB_WORDS && got < take; w++) {
        uint64_t bits = s->bitmap[w];
        uintptr_t first = base + (uintptr_t)w * 64 * size;
        for (; bits && got < take; bits &= bits - 1)
            out[got++] = (void *)(first + (size_t)__builtin_ctzll(bits) * size);
        s->bitmap[w] = bits;
    }
    s->nfree = (uint16_t)(s->nfree - got);
    if (!s->nfree) partial_remove(a, s);
#ifdef OHM_DEBUG
    check_slab_bits(s);
    a->dbg_touched = c;
#endif
    return got;
}

/* Returns a block to its slab; frees the slab's run when it becomes empty. Lock held. OHM_EINVAL (and
 * nothing changes) if the block is already free. */
static int slab_free(arena_t *a, chunk_t *c, size_t h, void *p)
{
    run_t *s = &c->runs[h];
    size_t idx = sc_div(s->cls, (uintptr_t)p - (uintptr_t)chunk_page_addr(c, h));
    ohm_assert(s->state == RUN_SLAB && idx < sc_table[s->cls].slab_objs && "slab_free: a block of a live slab");
    uint64_t old = s->bitmap[idx / 64], bit = 1ull << (idx % 64);
    if (old & bit) goto double_free;
    s->bitmap[idx / 64] = old | bit;
    if (++s->nfree == 1) {
        partial_push(a, s);
    } else if (ohm_unlikely(s->nfree >= sc_table[s->cls].slab_objs)) {
        /* A free into a slab that was empty already: its bitmap words past the first hold list links (chunk.h),
         * so the bit may have read clear. The count tells; the word is put back. Checked here, where the count
         * is compared anyway, rather than on every free. */
        if (s->nfree > sc_table[s->cls].slab_objs) {
            s->bitmap[idx / 64] = old;
            s->nfree--;
            goto double_free;
        }
        /* An empty slab is kept for reuse (see empty_append); a poisoning pool keeps it for good (poison.h). */
        if (!poison_on(a->cfg)) empty_append(a, s);
    }
#ifdef OHM_DEBUG
    check_slab_bits(s);
    a->dbg_touched = c;
#endif
    return 0;
double_free:
    return ohm__error(OHM_EINVAL, "pool '%s': double free of %p (the block is already free)", a->cfg->name, p);
}

/* Turns an empty slab back into free pages. Lock held. */
static void slab_release(arena_t *a, run_t *s)
{
    chunk_t *c = s->chunk;
    ohm_assert(s->nfree == sc_table[s->cls].slab_objs && "slab_release: only an empty slab goes back to pages");
    empty_remove(a, s);
    partial_remove(a, s);
    run_free(a, c, chunk_run_index(c, s), s->npages);
}

/* ---- public arena operations ---- */

int arena_init(arena_t *a, chunk_space *space, unsigned index)
{
    memset(a, 0, sizeof *a);
    a->space = space;
    a->cfg = space->cfg;
    a->index = index;
    if (pthread_mutex_init(&a->lock, NULL) != 0) return ohm__error(OHM_ESYS, "pthread_mutex_init failed");
    return 0;
}

void arena_destroy(arena_t *a)
{
    destroy_detached(a, a->chunks);
    a->chunks = NULL;
    pthread_mutex_destroy(&a->lock);
}

unsigned arena_alloc_batch(arena_t *a, unsigned cls, void **out, unsigned want)
{
    unsigned got = 0;
    pthread_mutex_lock(&a->lock);
    if (sc_is_small(cls)) {
        while (got < want) {
            run_t *s = a->partial[cls];
            if (!s && !(s = slab_new(a, cls))) break;
            got += slab_take(a, s, out + got, want - got);
        }
    } else {
        while (got < want) {
            void *p = large_alloc(a, cls, 1);
            if (!p) break;
            out[got++] = p;
        }
    }
    ohm_debug_only(arena_check_after(a));
    pthread_mutex_unlock(&a->lock);
    return got;
}

void *arena_alloc_aligned_run(arena_t *a, unsigned cls, size_t align)
{
    pthread_mutex_lock(&a->lock);
    void *p = large_alloc(a, cls, (uint32_t)(align >> OHM_PAGE_SHIFT));
    ohm_debug_only(arena_check_after(a));
    pthread_mutex_unlock(&a->lock);
    return p;
}

/* Frees one validated block of this arena. Lock held. */
static int arena_free_locked(arena_t *a, void *p)
{
    chunk_t *c = chunk_of(p);
    size_t page = chunk_page_of(c, p);
    uint32_t e = pg_get(c, page);
    if (pg_kind(e) == PG_SLAB) return slab_free(a, c, pg_head(e), p);
    run_free(a, c, page, c->runs[page].npages);
    return 0;
}

/* When free pages must go back (lock held):
 *  - every dirty run older than purge_delay_ms;
 *  - beyond that, while dirty pages exceed active/dirty_ratio plus one chunk, runs older than a sixteenth of
 *    the delay. Under churn this bounds resident memory near the live size, yet pages freed and reused within
 *    that short age (the rounds of a batch workload) are never given back and faulted in again. */
static bool dirty_excess(const arena_t *a)
{
    unsigned ratio = a->cfg->dirty_ratio;
    uint64_t idle = a->dirty_pages + a->empty_pages, active = a->active_pages - a->empty_pages;
    return ratio && idle > active / ratio + a->space->chunk_pages;
}

/* Whether the oldest entry of a purge list (free runs, or empty slabs) is due. */
static bool entry_due(const arena_t *a, const run_t *oldest, uint64_t now)
{
    uint64_t delay = a->cfg->purge_delay_ms;
    if (!oldest || delay == UINT64_MAX) return false;
    uint64_t age = now - oldest->freed_ms;
    return age >= delay || (age >= delay / 16 && dirty_excess(a));
}

static bool purge_due(arena_t *a, uint64_t now)
{
    return entry_due(a, a->empty_head, now) || entry_due(a, a->timed_head, now);
}

static void purge_locked(arena_t *a, bool force, chunk_t **detached);

void arena_free_batch(arena_t *a, void *const *blocks, unsigned n, bool may_purge)
{
    chunk_t *detached = NULL;
    pthread_mutex_lock(&a->lock);
    for (unsigned i = 0; i < n; i++)
        if (arena_free_locked(a, blocks[i]) != 0) ohm__log(OHM_LOG_ERROR, "%s (ignored)", ohm_last_error());
    if (may_purge && purge_due(a, os_now_coarse_ms())) purge_locked(a, false, &detached);
    ohm_debug_only(arena_check_after(a));
    pthread_mutex_unlock(&a->lock);
    destroy_detached(a, detached);
}

int arena_free_one(arena_t *a, void *p)
{
    chunk_t *detached = NULL;
    pthread_mutex_lock(&a->lock);
    int rc = arena_free_locked(a, p);
    if (purge_due(a, os_now_coarse_ms())) purge_locked(a, false, &detached);
    ohm_debug_only(arena_check_after(a));
    pthread_mutex_unlock(&a->lock);
    destroy_detached(a, detached);
    return rc;
}

void arena_remote_push(arena_t *a, unsigned cls, void *head, void *tail)
{
    void *old = atomic_load_explicit(&a->remote[cls], memory_order_relaxed);
    do {
        *block_link(tail) = old;
    } while (!atomic_compare_exchange_weak_explicit(&a->remote[cls], &old, head, memory_order_release,
                                                    memory_order_relaxed));
}

/* ---- purging ---- */

/* Purges the dirty pages of free run r, which stays where it is, clean and off the purge list. One madvise
 * covers the stretch from its first dirty page to its last: clean pages in between cost the kernel little to
 * advise again, less than a call for each dirty stretch. Nonzero if madvise failed (r stays dirty, at the end
 * of the purge list). */
static int purge_run(arena_t *a, run_t *r)
{
    chunk_t *c = r->chunk;
    size_t lo, hi;
    map_span(c->dirty, chunk_run_index(c, r), r->npages, &lo, &hi);
    timed_remove(a, r);
    if (lo < hi && os_purge(chunk_page_addr(c, lo), (hi - lo) << OHM_PAGE_SHIFT) != 0) {
        ohm__log(OHM_LOG_WARN, "pool '%s': %s", a->cfg->name, ohm_last_error());
        timed_append(a, r);
        return -1;
    }
    a->purged_pages += pages_cleaned(a, c, lo, hi - lo);
    r->ndirty = 0;
    ohm_assert(map_count(c, chunk_run_index(c, r), r->npages) == 0 && "purge_run: a purged run has no dirty page");
    return 0;
}

static void drain_remote_locked(arena_t *a)
{
    for (unsigned cls = 0; cls < SC_COUNT; cls++) {
        void *p = arena_remote_take(a, cls);
        while (p) {
            void *next = *block_link(p);
            if (arena_free_locked(a, p) != 0) ohm__log(OHM_LOG_ERROR, "%s (ignored)", ohm_last_error());
            p = next;
        }
    }
}

static void purge_locked(arena_t *a, bool force, chunk_t **detached)
{
    uint64_t now = os_now_coarse_ms();
    /* Blocks other threads pushed here wait for a refill of their class; one that never comes would keep their
     * slabs, and so their chunks, alive. Purging is the moment to take them back. */
    drain_remote_locked(a);
    run_t *r;
    while ((r = a->empty_head) && (force || entry_due(a, r, now))) slab_release(a, r);
    while ((r = a->timed_head) && (force || entry_due(a, r, now))) {
        chunk_t *c = r->chunk;
        if (r->npages == c->npages) { /* wholly free: unmap rather than purge */
            run_unlink(a, r);
            arena_detach_chunk(a, c, detached);
        } else if (purge_run(a, r) != 0) {
            break;
        }
    }
    if (!force) return;
    /* Trim also unmaps wholly free chunks that have no dirty page (fresh ones), which are not on the purge list.
     * Free runs being maximal, such a chunk is one run. */
    for (chunk_t *c = a->chunks, *next; c; c = next) {
        next = c->next;
        if (c->free_pages != c->npages) continue;
        run_unlink(a, &c->runs[0]);
        arena_detach_chunk(a, c, detached);
    }
}

void arena_purge(arena_t *a, bool force)
{
    chunk_t *detached = NULL;
    pthread_mutex_lock(&a->lock);
    purge_locked(a, force, &detached);
    ohm_debug_only(arena_check(a)); /* purging is rare and touches any chunk: walk them all */
    pthread_mutex_unlock(&a->lock);
    destroy_detached(a, detached);
}

/* ---- walks (OHM_DEBUG) ----
 * What arena.h and the comments above promise, checked over whole chunks and the whole arena: runs tile each
 * chunk; their tags, records and dirty bits agree; no two free runs touch; every free run is in the heap of its
 * bin, in address order, and on the purge list exactly when it should be; slabs are on the partial and empty
 * lists exactly when their counts say; and the arena's page counts are the sums of what the walk found. */
#ifdef OHM_DEBUG
#define ARENA_CHECK_EVERY \
    8 /* operations between whole-arena walks (each op walks its own chunk): the C suite
                             * then costs about 1.4x the CPU time of a normal build, against 1.9x walking every time */

typedef struct walk_tally {
    uint64_t free_runs, timed_runs, dirty, active, empty_slabs, empty_pages, partial_slabs;
} walk_tally;

static void check_chunk(arena_t *a, chunk_t *c, walk_tally *t)
{
    ohm_assert(c->arena == a && c->kind == CHUNK_ARENA && c->npages == a->space->chunk_pages &&
               "chunk: an arena chunk of this arena, of the pool's chunk size");
    ohm_assert((c->base & (c->size - 1)) == 0 && "chunk: aligned to its size");
    uint32_t free_pages = 0;
    int prev_free = 0;
    size_t p = 0;
    while (p < c->npages) {
        uint32_t e = pg_get(c, p);
        run_t *r = &c->runs[p];
        ohm_assert(pg_head(e) == p && r->chunk == c && r->npages >= 1 && p + r->npages <= c->npages &&
                   "chunk: runs tile the chunk, each head entry naming itself");
        uint32_t n = r->npages;
        switch (pg_kind(e)) {
        case PG_FREE:
            check_free_run(c, r);
            ohm_assert(!prev_free && "no two free runs are adjacent");
            for (size_t i = p + 1; i + 1 < p + n; i++) {
                uint32_t ie = pg_get(c, i);
                ohm_assert((pg_kind(ie) == PG_FREE || (pg_kind(ie) == PG_RUN_TAIL && !pg_tail_live(c, i, ie))) &&
                           "free run: interior entries are free or dead tails of a freed large run");
            }
            free_pages += n;
            t->free_runs++;
            t->timed_runs += r->timed;
            t->dirty += r->ndirty;
            prev_free = 1;
            break;
        case PG_SLAB:
            check_alloc_run(c, p, n);
            for (size_t i = p + 1; i + 1 < p + n; i++)
                ohm_assert(pg_get(c, i) == e && "slab: every page entry is PG_SLAB of its class naming its head");
            check_slab_bits(r);
            if (r->timed) {
                t->empty_slabs++;
                t->empty_pages += n;
            }
            ohm_assert((!r->timed || r->nfree == sc_table[r->cls].slab_objs) &&
                       "slab: on the empty list only when empty");
            ohm_assert((r->timed || r->nfree < sc_table[r->cls].slab_objs || poison_on(a->cfg)) &&
                       "slab: an empty slab is on the empty list (unless the pool poisons)");
            t->partial_slabs += r->nfree > 0;
            t->active += n;
            prev_free = 0;
            break;
        case PG_RUN:
            check_alloc_run(c, p, n);
            for (size_t i = p + 1; i < p + n; i++)
                ohm_assert(pg_get(c, i) == pg_make(PG_RUN_TAIL, r->cls, (unsigned)p) &&
                           "large run: every tail entry is PG_RUN_TAIL of its class naming its head");
            t->active += n;
            prev_free = 0;
            break;
        default: ohm_assert(0 && "chunk: a run starts with a PG_FREE, PG_SLAB or PG_RUN entry");
        }
        p += n;
    }
    ohm_assert(c->free_pages == free_pages && "chunk: free_pages is the sum of its free runs");
    if (c->npages % 64)
        ohm_assert(!(c->dirty[c->npages / 64] >> (c->npages % 64)) && "chunk: no dirty bit past its last page");
}

void arena_check_chunk(arena_t *a, chunk_t *c)
{
    walk_tally t = {0};
    check_chunk(a, c, &t);
}

/* Bin b's heap: each run free and filed under its size, each parent below its children, links consistent.
 * Returns how many runs it holds; at most limit are visited, so broken links cannot loop forever. */
static uint64_t check_bin(arena_t *a, unsigned b, uint64_t limit)
{
    run_t *root = a->bins[b];
    ohm_assert(!!root == !!(a->nonempty[b / 64] >> (b % 64) & 1) &&
               "bins: the nonempty bit says whether a bin has runs");
    if (!root) return 0;
    ohm_assert(!root->prev && !root->next && "bin heap: the root has no parent and no siblings");
    uint64_t n = 0;
    for (run_t *r = root; r; r = heap_walk_next(r)) {
        ohm_assert(++n <= limit && "bin heap: holds no more runs than the chunks have free runs (no cycle)");
        check_free_run(r->chunk, r);
        ohm_assert(bin_floor(r->npages) == b && "bin heap: a run is filed under the largest bin size it reaches");
        for (run_t *x = r->child, *before = r; x; before = x, x = x->next) {
            ohm_assert(x->prev == before && "bin heap: prev is the previous sibling, or the parent of a first child");
            ohm_assert(run_below(r, x) && "bin heap: a parent lies below its children (address order)");
        }
    }
    return n;
}

void arena_check(arena_t *a)
{
    walk_tally t = {0};
    uint64_t nchunks = 0;
    for (chunk_t *c = a->chunks, *prev = NULL; c; prev = c, c = c->next) {
        ohm_assert(c->prev == prev && "arena: the chunk list's back links");
        check_chunk(a, c, &t);
        nchunks++;
    }
    ohm_assert(nchunks == a->nchunks && "arena: nchunks counts its chunk list");
    /* check_free_run made ndirty equal each run's bits and check_alloc_run cleared allocated pages' bits, so
     * the sum of ndirty is the sum of all set bits */
    ohm_assert(a->dirty_pages == t.dirty && "arena: dirty_pages equals the set bits of its dirty maps");
    ohm_assert(a->active_pages == t.active && "arena: active_pages is the pages of its slabs and large runs");
    uint64_t binned = 0;
    for (unsigned b = 0; b < ARENA_BINS; b++) binned += check_bin(a, b, t.free_runs);
    ohm_assert(binned == t.free_runs && "bins: every free run is in exactly one bin");
    uint64_t timed = 0;
    for (run_t *r = a->timed_head, *prev = NULL; r; prev = r, r = r->tnext) {
        ohm_assert(++timed <= t.timed_runs && r->state == RUN_FREE && r->timed && r->tprev == prev &&
                   "purge list: free runs marked timed, linked both ways");
        ohm_assert((r->tnext || r == a->timed_tail) && "purge list: the tail is its last run");
    }
    ohm_assert(timed == t.timed_runs && "purge list: holds every free run marked timed");
    uint64_t empty = 0, empty_pages = 0;
    for (run_t *s = a->empty_head, *prev = NULL; s; prev = s, s = s->tnext) {
        ohm_assert(++empty <= t.empty_slabs && s->state == RUN_SLAB && s->timed && s->tprev == prev &&
                   "empty list: empty slabs marked timed, linked both ways");
        ohm_assert((s->tnext || s == a->empty_tail) && "empty list: the tail is its last slab");
        empty_pages += s->npages;
    }
    ohm_assert(empty == t.empty_slabs && "empty list: holds every slab marked timed");
    ohm_assert(a->empty_pages == empty_pages && a->empty_pages == t.empty_pages &&
               "arena: empty_pages is its empty slabs' pages");
    uint64_t partial = 0;
    for (unsigned cls = 0; cls < SC_NSMALL; cls++)
        for (run_t *s = a->partial[cls], *prev = NULL; s; prev = s, s = s->next) {
            ohm_assert(++partial <= t.partial_slabs && s->state == RUN_SLAB && s->cls == cls && s->nfree > 0 &&
                       s->prev == prev && "partial lists: slabs of their class with a free block, linked both ways");
        }
    ohm_assert(partial == t.partial_slabs && "partial lists: hold every slab with a free block");
}

/* The end of a locked arena operation: walks the chunk it changed, and every ARENA_CHECK_EVERY-th time the
 * whole arena. */
static void arena_check_after(arena_t *a)
{
    if (a->dbg_touched) arena_check_chunk(a, a->dbg_touched);
    a->dbg_touched = NULL;
    if (++a->dbg_ops % ARENA_CHECK_EVERY == 0) arena_check(a);
}
#endif
