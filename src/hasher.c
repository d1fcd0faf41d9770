/*
 * Digests off the receive path.  Hashing a big body on the thread that
 * receives it leaves the second core idle: SHA-1 runs at about the speed
 * loopback delivers, so the two halve each other.  Here one thread per
 * session hashes the transfers' ring buffers behind the writer: the write
 * callback only copies bytes in and, every HAND_OVER bytes, moves the
 * transfer's fill mark and wakes the thread when it sleeps.  A byte's room
 * in the ring is reused only once it was read and hashed, so memory stays
 * bounded by buffer_size and back-pressure is unchanged.
 *
 * Small bodies, one-core machines and requests with hash_thread = false
 * hash inline (the handover would cost more than it saves).  The thread
 * touches no Lua state and nothing of a transfer but its ring bytes, its
 * digests and the fields engine.h marks as shared.
 */
#include "engine.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define THREAD_MIN (1L << 20)      /* bodies from this size use the thread */
#define HAND_OVER (128 * 1024)     /* bytes gathered before the thread is told */

struct cf_hasher {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work;   /* the thread waits for a queued transfer */
    pthread_cond_t idle;   /* cf_hash_settle waits for a transfer to go idle */
    cf_transfer *head, *tail;
    int waiters;           /* threads in cf_hash_settle */
    int stop;
};

/* Feeds ring bytes [from, to) of t to its digests. */
static int hash_ring(cf_transfer *t, uint64_t from, uint64_t to)
{
    while (from < to) {
        size_t at = cf_ring_index(t, from);
        size_t n = t->cap - at;
        if ((uint64_t)n > to - from)
            n = (size_t)(to - from);
        if (cf_digests_update(t->digests, t->buf + at, n) != 0)
            return -1;
        from += n;
    }
    return 0;
}

/* Puts t at the back of the queue (under the mutex). */
static void enqueue(struct cf_hasher *hs, cf_transfer *t)
{
    t->hstate = CF_HS_QUEUED;
    if (hs->tail)
        hs->tail->hnext = t;
    else
        hs->head = t;
    hs->tail = t;
}

static void *run(void *arg)
{
    struct cf_hasher *hs = arg;
    pthread_mutex_lock(&hs->mu);
    for (;;) {
        while (!hs->head && !hs->stop)
            pthread_cond_wait(&hs->work, &hs->mu);
        cf_transfer *t = hs->head;
        if (!t)
            break; /* stopping, and nothing is left to hash */
        hs->head = t->hnext;
        if (!hs->head)
            hs->tail = NULL;
        t->hnext = NULL;
        t->hstate = CF_HS_BUSY;
        uint64_t from = t->h, to = t->hfill;
        pthread_mutex_unlock(&hs->mu);
        int rc = t->hfailed ? 0 : hash_ring(t, from, to);
        /* Published atomically: the writer reads it without the lock. */
        __atomic_store_n(&t->h, to, __ATOMIC_RELEASE);
        pthread_mutex_lock(&hs->mu);
        if (rc != 0)
            t->hfailed = 1;
        if (t->hfill > t->h) { /* more came meanwhile: to the back of the queue */
            enqueue(hs, t);
        } else {
            t->hstate = CF_HS_IDLE;
            if (hs->waiters)
                pthread_cond_broadcast(&hs->idle);
        }
    }
    pthread_mutex_unlock(&hs->mu);
    return NULL;
}

static struct cf_hasher *hasher_of(cf_session *s)
{
    if (s->hasher || s->no_hasher || s->closed)
        return s->hasher;
    struct cf_hasher *hs = calloc(1, sizeof *hs);
    if (hs && pthread_mutex_init(&hs->mu, NULL) == 0) {
        if (pthread_cond_init(&hs->work, NULL) == 0) {
            if (pthread_cond_init(&hs->idle, NULL) == 0) {
                if (pthread_create(&hs->thread, NULL, run, hs) == 0)
                    return s->hasher = hs;
                pthread_cond_destroy(&hs->idle);
            }
            pthread_cond_destroy(&hs->work);
        }
        pthread_mutex_destroy(&hs->mu);
    }
    free(hs);
    s->no_hasher = 1; /* no thread: hash inline from now on */
    return NULL;
}

void cf_hash_decide(cf_transfer *t, int64_t content_length)
{
    cf_session *s = t->session;
    t->hmode = CF_HASH_INLINE;
    if (!t->digests || !t->hash_thread || (content_length >= 0 && content_length < THREAD_MIN))
        return;
    if (!s->hasher && !s->no_hasher && sysconf(_SC_NPROCESSORS_ONLN) < 2)
        s->no_hasher = 1; /* one core: a second thread only adds handovers */
    if (hasher_of(s))
        t->hmode = CF_HASH_THREAD;
}

void cf_hash_written(cf_transfer *t, const char *data, size_t len)
{
    if (!t->digests) {
        t->h = t->w;
        return;
    }
    struct cf_hasher *hs = t->session->hasher;
    if (t->hmode != CF_HASH_THREAD || !hs) {
        /* Inline; a thread transfer gets here only once the session
         * closed, after the thread hashed all it was given. */
        if (t->h < t->w - len && hash_ring(t, t->h, t->w - len) != 0)
            t->hfailed = 1;
        if (cf_digests_update(t->digests, data, len) != 0)
            t->hfailed = 1;
        t->h = t->w;
        return;
    }
    if (t->w - t->hsub < HAND_OVER)
        return;
    t->hsub = t->w;
    pthread_mutex_lock(&hs->mu);
    t->hfill = t->w;
    if (t->hstate == CF_HS_IDLE) {
        enqueue(hs, t);
        pthread_cond_signal(&hs->work);
    }
    pthread_mutex_unlock(&hs->mu);
}

uint64_t cf_hash_mark(cf_transfer *t)
{
    if (t->hmode != CF_HASH_THREAD || !t->session->hasher)
        return t->h;
    return __atomic_load_n(&t->h, __ATOMIC_ACQUIRE);
}

void cf_hash_settle(cf_transfer *t)
{
    struct cf_hasher *hs = t->session->hasher;
    if (t->hmode == CF_HASH_THREAD && hs) {
        pthread_mutex_lock(&hs->mu);
        hs->waiters++;
        while (t->hstate != CF_HS_IDLE)
            pthread_cond_wait(&hs->idle, &hs->mu);
        hs->waiters--;
        pthread_mutex_unlock(&hs->mu);
    }
    /* Idle: the rest (less than a handover) is hashed here. */
    if (t->digests && t->h < t->w && !t->hfailed && hash_ring(t, t->h, t->w) != 0)
        t->hfailed = 1;
    t->h = t->hsub = t->hfill = t->w;
}

void cf_hasher_free(struct cf_hasher *hs)
{
    if (!hs)
        return;
    pthread_mutex_lock(&hs->mu);
    hs->stop = 1;
    pthread_cond_signal(&hs->work);
    pthread_mutex_unlock(&hs->mu);
    pthread_join(hs->thread, NULL);
    pthread_cond_destroy(&hs->work);
    pthread_cond_destroy(&hs->idle);
    pthread_mutex_destroy(&hs->mu);
    free(hs);
}
