/* chain_pool: the blocks libevent takes for output chains, kept for reuse.
 *
 * A push to a session with empty output makes libevent allocate a chain (1 KiB, or 2, 4 or
 * 8 KiB for larger frames and for the chains that follow a full one), and the write at the end
 * of the loop pass frees it again: a broadcast to 1,000 sessions cost 1,000 malloc/free pairs
 * per pass, and glibc merged the freed blocks only to split them again on the next pass. This
 * pool keeps blocks of those four sizes instead, up to CHAIN_POOL_BYTES in all, and gives them
 * all back when the broker is idle. It has no lock: only the loop thread calls libevent (the
 * hashing threads never do; the base is EVENT_BASE_FLAG_NOLOCK). */
#ifndef MOONPOST_CHAIN_POOL_H
#define MOONPOST_CHAIN_POOL_H

#include <stddef.h>

#define CHAIN_POOL_BYTES (16u << 20) /* kept at most, all sizes together */

/* Routes libevent's allocations through the pool. Call it before any other libevent call. */
void chain_pool_install(void);

/* Frees every kept block (the idle trim, shutdown). */
void chain_pool_trim(void);

/* How many blocks, and how many bytes of blocks, the pool holds now. */
size_t chain_pool_count(void);
size_t chain_pool_bytes(void);

#endif
