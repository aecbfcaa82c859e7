/* The poison option (poison.h): filling freed blocks and finding writes after free. */
#include "poison.h"

#include "pool.h"

#include <string.h>

void poison_fill(void *p, size_t size)
{
    if (size > POISON_FROM) memset((char *)p + POISON_FROM, POISON_BYTE, size - POISON_FROM);
}

/* A changed byte is a write after free: logged at ERROR (with the buffer that last owned the block, when it
 * was one) and counted; the block is handed out all the same. */
void poison_verify(ohm_pool *pool, void *p, size_t size)
{
    const unsigned char *b = p;
    size_t off = POISON_FROM;
    while (off < size && b[off] == POISON_BYTE) off++;
    if (off >= size) return;
    atomic_fetch_add_explicit(&pool->poison_violations, 1, memory_order_relaxed);
    uint64_t tag, check;
    memcpy(&tag, b + 8, sizeof tag);
    memcpy(&check, b + 16, sizeof check);
    uint64_t id = tag ^ POISON_ID_MAGIC;
    if (check == ~tag)
        ohm__log(OHM_LOG_ERROR,
                 "pool '%s': block %p (%zu bytes) was written after it was freed: first changed byte "
                 "at offset %zu; it was buffer id %llu (0x%llx)",
                 pool->name, p, size, off, (unsigned long long)id, (unsigned long long)id);
    else
        ohm__log(OHM_LOG_ERROR,
                 "pool '%s': block %p (%zu bytes) was written after it was freed: first changed byte "
                 "at offset %zu",
                 pool->name, p, size, off);
}

void poison_name_block(ohm_pool *pool, void *p, uint64_t id)
{
    if (!poison_on(&pool->cfg) || ohm_usable_size(p) < POISON_FROM) return;
    uint64_t tag = id ^ POISON_ID_MAGIC, check = ~tag;
    memcpy((char *)p + 8, &tag, sizeof tag);
    memcpy((char *)p + 16, &check, sizeof check);
}
