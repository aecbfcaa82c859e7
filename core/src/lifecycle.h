/* The runtime's life cycle (lifecycle.c): the one module that knows every subsystem, and so the one place that
 * orders them when the process starts, when it forks, when a thread ends and when a pool is destroyed.
 *
 * Layers (each calls only the ones below it; lifecycle.c sits above all of them):
 *
 *     lifecycle
 *     leak, mm             leak detector, memory manager
 *     buf                  buffers, reference counts, the header allocator
 *     pool                 pools, the pool list, the background purger
 *     tcache               thread caches
 *     arena                runs and slabs inside chunks
 *     chunk                chunks and the address -> chunk map
 *     os                   the only file that talks to the kernel
 *
 * Subsystems expose steps (sc_init, pool_init, buf_init, leak_init; *_prefork / *_postfork*; *_thread_exit;
 * pool_destroy_begin/end and buf_pool_destroyed) and register nothing themselves: no pthread_atfork, no thread
 * key, outside lifecycle.c. Lower layers reach it only through the two doors below, which internal.h makes
 * visible everywhere. */
#ifndef OHM_LIFECYCLE_H
#define OHM_LIFECYCLE_H

#pragma GCC visibility push(hidden)

/* Process-wide one-time setup, in this order: size classes, the free-block key, buffer and leak settings, the
 * thread-exit key, the fork handler. Every entry point that does not go through an existing pool calls it;
 * a pthread_once after the first call. A subsystem's init step must not call it (it would wait for itself). */
void ohm__init(void);

/* The calling thread will run every subsystem's thread-exit step when it ends. A subsystem calls it when the
 * thread first holds something of its own (cached headers, a thread cache); a TLS test after that. Called again
 * during the thread's exit (a later step freed into a cache), the exit steps run once more. */
void ohm__thread_init(void);

#pragma GCC visibility pop

#endif
