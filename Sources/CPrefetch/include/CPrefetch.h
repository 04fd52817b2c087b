#ifndef C_PREFETCH_H
#define C_PREFETCH_H

// The one compiler intrinsic the pure data-path modules need and Swift does not expose: a
// prefetch, so that the cache miss of the next frame's table slot overlaps the work on this one.

static inline void director_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }

#endif
