/*
 * hasher.c's thread: jobs hashed off the thread that drives the engine.
 * A job is a stream of bytes known by position: the owner hands it over up
 * to a fill mark, the thread calls the job's work function on the new
 * range in pieces and publishes how far it got.  Transfers (their ring
 * buffers) and ranged files (their contiguous prefix, read back) are jobs.
 * Only the owner's thread calls these; work runs on the hasher thread and
 * touches nothing but what its job says.
 */
#ifndef CF_HASHER_H
#define CF_HASHER_H

#include <stdint.h>

typedef struct cf_hasher cf_hasher;
typedef struct cf_hjob cf_hjob;

struct cf_hjob {
    /* Hashes bytes [from, to); 0, or -1 on a failure (kept in failed). */
    int (*work)(cf_hjob *j, uint64_t from, uint64_t to);
    /* Shared with the hasher thread, under its mutex; h is also stored
     * and loaded atomically (cf_hjob_mark reads it without the lock). */
    uint64_t h;    /* bytes [0, h) are hashed */
    uint64_t fill; /* the thread may hash up to here (only the owner writes it) */
    int state;     /* idle, queued, busy */
    int failed;    /* a work call failed: the rest is skipped */
    cf_hjob *next; /* the queue */
};

/* Bodies from this size are hashed on a thread (when there are cores);
 * the fuzz build lowers it (mk/fuzz.mk). */
#ifndef CF_HASH_THREAD_MIN
#define CF_HASH_THREAD_MIN (1L << 20)
#endif
/* Online cores (1 at least). */
int cf_hash_cores(void);
/* A hasher thread (NULL when none could start). */
cf_hasher *cf_hasher_new(void);
/* Hashes what is queued, stops and joins the thread. */
void cf_hasher_free(cf_hasher *hs);
/* Lets the thread hash j up to fill (fill only grows). */
void cf_hjob_give(cf_hasher *hs, cf_hjob *j, uint64_t fill);
/* How far hashing of j got, without waiting. */
uint64_t cf_hjob_mark(const cf_hjob *j);
/* Waits until j is hashed up to at least `upto` (at most its fill), or
 * idle.  With upto = UINT64_MAX: idle, so the thread no longer touches j. */
void cf_hjob_wait(cf_hasher *hs, cf_hjob *j, uint64_t upto);

#endif
