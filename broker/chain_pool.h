/* chain_pool: the 1 KiB blocks libevent takes for a buffer's first chain, kept for reuse.
 *
 * A push to a session with empty output makes libevent allocate a 1 KiB chain, and the write
 * at the end of the loop pass frees it again: a broadcast to 1,000 sessions cost 1,000
 * malloc/free pairs per pass, and glibc merged the freed blocks only to split them again on
 * the next pass. This pool keeps up to CHAIN_POOL_MAX such blocks instead (bounded), and
 * gives them all back when the broker is idle. It has no lock: only the loop thread calls
 * libevent (the hashing threads never do; the base is EVENT_BASE_FLAG_NOLOCK). */
#ifndef MOONPOST_CHAIN_POOL_H
#define MOONPOST_CHAIN_POOL_H

#include <stddef.h>

#define CHAIN_POOL_MAX 16384 /* blocks kept at most: 16 MiB */

/* Routes libevent's allocations through the pool. Call it before any other libevent call. */
void chain_pool_install(void);

/* Frees every kept block (the idle trim, shutdown). */
void chain_pool_trim(void);

/* How many blocks the pool holds now. */
size_t chain_pool_count(void);

#endif
