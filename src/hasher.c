/*
 * Digests off the receive path.  Hashing a big body on the thread that
 * receives it leaves the second core idle: SHA-1 runs at about the speed
 * loopback delivers, so the two halve each other.  Here a hasher thread
 * hashes jobs (hasher.h) behind their writer: for a transfer, the write
 * callback only copies bytes into the ring (or writes them to a save's
 * file) and, every HAND_OVER bytes, moves the job's fill mark and wakes the
 * thread when it sleeps; a byte's room in the ring is reused only once it
 * was read and hashed, so memory stays bounded by buffer_size and
 * back-pressure is unchanged.  Each session
 * has one such thread for its transfers; a parallel save's ranged file has
 * its own for its in-order prefix (ranged.c).
 *
 * Small bodies, one-core machines and requests with hash_thread = false
 * hash inline (the handover would cost more than it saves).  The thread
 * touches no Lua state and nothing of a job but what its work function
 * reads (a transfer: its ring bytes, or its sink file read back into its
 * sink buffer, and its digests) and the fields hasher.h marks as shared.
 */
#include "engine.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

/* Bytes gathered before the thread is told, and a sink's bytes read back
 * at a time.  The fuzz build makes them small (mk/fuzz.mk), so its small
 * bodies go through the thread in many pieces. */
#ifndef CF_HAND_OVER
#define CF_HAND_OVER (128 * 1024)
#endif
#define HAND_OVER CF_HAND_OVER
#define READ_BACK CF_HAND_OVER

enum { IDLE = 0, QUEUED, BUSY };

struct cf_hasher {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work;     /* the thread waits for a queued job */
    pthread_cond_t progress; /* cf_hjob_wait waits for a job to move on */
    cf_hjob *head, *tail;
    int waiters;             /* threads in cf_hjob_wait (atomic) */
    int stop;
};

/* Puts j at the back of the queue (under the mutex). */
static void enqueue(cf_hasher *hs, cf_hjob *j)
{
    j->state = QUEUED;
    if (hs->tail)
        hs->tail->next = j;
    else
        hs->head = j;
    hs->tail = j;
}

static void *run(void *arg)
{
    cf_hasher *hs = arg;
    pthread_mutex_lock(&hs->mu);
    for (;;) {
        while (!hs->head && !hs->stop)
            pthread_cond_wait(&hs->work, &hs->mu);
        cf_hjob *j = hs->head;
        if (!j)
            break; /* stopping, and nothing is left to hash */
        hs->head = j->next;
        if (!hs->head)
            hs->tail = NULL;
        j->next = NULL;
        j->state = BUSY;
        uint64_t from = j->h, to = j->fill;
        pthread_mutex_unlock(&hs->mu);
        while (from < to) {
            /* In pieces, each published as it is done: a waiter for part
             * of the range goes on before the whole of it is hashed. */
            uint64_t end = to - from > HAND_OVER ? from + HAND_OVER : to;
            if (!__atomic_load_n(&j->failed, __ATOMIC_RELAXED) && j->work(j, from, end) != 0)
                __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
            __atomic_store_n(&j->h, end, __ATOMIC_SEQ_CST);
            from = end;
            if (from < to && __atomic_load_n(&hs->waiters, __ATOMIC_SEQ_CST)) {
                pthread_mutex_lock(&hs->mu);
                pthread_cond_broadcast(&hs->progress);
                pthread_mutex_unlock(&hs->mu);
            }
        }
        pthread_mutex_lock(&hs->mu);
        if (j->fill > j->h) { /* more came meanwhile: to the back of the queue */
            enqueue(hs, j);
        } else {
            j->state = IDLE;
        }
        if (hs->waiters)
            pthread_cond_broadcast(&hs->progress);
    }
    pthread_mutex_unlock(&hs->mu);
    return NULL;
}

cf_hasher *cf_hasher_new(void)
{
    cf_hasher *hs = calloc(1, sizeof *hs);
    if (hs && pthread_mutex_init(&hs->mu, NULL) == 0) {
        if (pthread_cond_init(&hs->work, NULL) == 0) {
            if (pthread_cond_init(&hs->progress, NULL) == 0) {
                if (pthread_create(&hs->thread, NULL, run, hs) == 0)
                    return hs;
                pthread_cond_destroy(&hs->progress);
            }
            pthread_cond_destroy(&hs->work);
        }
        pthread_mutex_destroy(&hs->mu);
    }
    free(hs);
    return NULL;
}

void cf_hasher_free(cf_hasher *hs)
{
    if (!hs)
        return;
    pthread_mutex_lock(&hs->mu);
    hs->stop = 1;
    pthread_cond_signal(&hs->work);
    pthread_mutex_unlock(&hs->mu);
    pthread_join(hs->thread, NULL);
    pthread_cond_destroy(&hs->work);
    pthread_cond_destroy(&hs->progress);
    pthread_mutex_destroy(&hs->mu);
    free(hs);
}

void cf_hjob_give(cf_hasher *hs, cf_hjob *j, uint64_t fill)
{
    pthread_mutex_lock(&hs->mu);
    j->fill = fill;
    if (j->state == IDLE) {
        enqueue(hs, j);
        pthread_cond_signal(&hs->work);
    }
    pthread_mutex_unlock(&hs->mu);
}

uint64_t cf_hjob_mark(const cf_hjob *j)
{
    return __atomic_load_n(&j->h, __ATOMIC_ACQUIRE);
}

void cf_hjob_wait(cf_hasher *hs, cf_hjob *j, uint64_t upto)
{
    if (upto != UINT64_MAX && cf_hjob_mark(j) >= upto)
        return;
    pthread_mutex_lock(&hs->mu);
    __atomic_add_fetch(&hs->waiters, 1, __ATOMIC_SEQ_CST);
    while (j->state != IDLE && (upto == UINT64_MAX || __atomic_load_n(&j->h, __ATOMIC_SEQ_CST) < upto))
        pthread_cond_wait(&hs->progress, &hs->mu);
    __atomic_sub_fetch(&hs->waiters, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&hs->mu);
}

/* ---- transfers: their ring buffers, or their sink files ------------------ */

/* Feeds ring bytes [from, to) of t to its digests. */
static int hash_ring(cf_transfer *t, uint64_t from, uint64_t to)
{
    while (from < to) {
        size_t at, n = cf_ring_span(t, from, to, &at);
        if (cf_digests_update(t->digests, t->buf + at, n) != 0)
            return -1;
        from += n;
    }
    return 0;
}

/* Reads bytes [from, to) of t's body back from its sink file and hashes
 * them (the file's pages are in memory: they were just written). */
static int hash_sink(cf_transfer *t, uint64_t from, uint64_t to)
{
    int errnum;
    if (!t->sink_buf && !(t->sink_buf = malloc(READ_BACK)))
        return -1;
    return cf_hash_range(t->digests, t->sink_fd, t->sink_buf, READ_BACK, (int64_t)(from - t->sink_base),
                         (int64_t)(to - t->sink_base), &errnum);
}

int cf_hash_work(cf_hjob *j, uint64_t from, uint64_t to)
{
    cf_transfer *t = (cf_transfer *)(void *)((char *)j - offsetof(cf_transfer, hj));
    return t->sink_fd >= 0 ? hash_sink(t, from, to) : hash_ring(t, from, to);
}

static cf_hasher *hasher_of(cf_session *s)
{
    if (s->hasher || s->no_hasher || s->closed)
        return s->hasher;
    if (cf_hash_cores() < 2 || !(s->hasher = cf_hasher_new()))
        s->no_hasher = 1; /* one core (a second thread only adds handovers), or no thread: inline */
    return s->hasher;
}

int cf_hash_cores(void)
{
    static int cores;
    if (!cores) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cores = n > 0 ? (int)n : 1;
    }
    return cores;
}

void cf_hash_decide(cf_transfer *t, int64_t content_length)
{
    t->hmode = CF_HASH_INLINE;
    if (!t->digests || !t->hash_thread || (content_length >= 0 && content_length < CF_HASH_THREAD_MIN))
        return;
    if (hasher_of(t->session))
        t->hmode = CF_HASH_THREAD;
}

void cf_hash_written(cf_transfer *t, const char *data, size_t len)
{
    if (!t->digests) {
        t->hj.h = t->w;
        return;
    }
    cf_hasher *hs = t->session->hasher;
    if (t->hmode != CF_HASH_THREAD || !hs) {
        /* Inline; a thread transfer gets here only once the session
         * closed, after the thread hashed all it was given. */
        if (t->hj.h < t->w - len && cf_hash_work(&t->hj, t->hj.h, t->w - len) != 0)
            t->hj.failed = 1;
        if (cf_digests_update(t->digests, data, len) != 0)
            t->hj.failed = 1;
        t->hj.h = t->w;
        return;
    }
    if (t->w - t->hj.fill >= HAND_OVER) /* fill: written by this thread only */
        cf_hjob_give(hs, &t->hj, t->w);
}

uint64_t cf_hash_mark(cf_transfer *t)
{
    return t->hmode == CF_HASH_THREAD && t->session->hasher ? cf_hjob_mark(&t->hj) : t->hj.h;
}

void cf_hash_settle(cf_transfer *t)
{
    cf_hasher *hs = t->session->hasher;
    if (t->hmode == CF_HASH_THREAD && hs)
        cf_hjob_wait(hs, &t->hj, UINT64_MAX);
    /* Idle: the rest (less than a handover) is hashed here. */
    if (t->digests && t->hj.h < t->w && !t->hj.failed && cf_hash_work(&t->hj, t->hj.h, t->w) != 0)
        t->hj.failed = 1;
    t->hj.h = t->hj.fill = t->w;
}
