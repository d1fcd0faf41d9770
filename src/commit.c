/*
 * Commit jobs: the last step of a save (fsync, rename, directory fsync) on
 * worker threads, so the thread that runs the event loop never waits for
 * the disk.  Several workers let the file system batch concurrent fsyncs
 * into one journal commit.  A worker touches only the job: no Lua, no curl.
 * It signals the session's eventfd when a job finished, which makes the
 * session's descriptor readable and wakes whoever waits on it.
 */
#include "engine.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WORKERS 4

enum { QUEUED, RUNNING, DONE };

struct cf_commit {
    cf_tmpfile file;
    char *target;
    int overwrite, sync;
    atomic_int state;
    atomic_int canceled;
    atomic_int refs;           /* the caller and the queue */
    cf_kind result;
    char message[CF_ERRLEN];
    struct cf_commit *next;
};

struct cf_workers {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t threads[WORKERS];
    int nthreads;
    int stop;
    int wakefd;
    cf_commit *head, *tail;
};

static void release(cf_commit *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1) {
        cf_tmpfile_discard(&c->file);
        free(c->target);
        free(c);
    }
}

static void run_job(cf_commit *c)
{
    if (atomic_load(&c->canceled)) {
        cf_tmpfile_discard(&c->file);
        c->result = CF_ECANCELED;
        snprintf(c->message, sizeof c->message, "the save was canceled");
        return;
    }
    c->result = cf_tmpfile_commit(&c->file, c->target, c->overwrite, c->sync, c->message, sizeof c->message);
}

static void *worker(void *arg)
{
    struct cf_workers *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        cf_commit *c = w->head;
        if (!c)
            break; /* stopping, and nothing queued is left */
        w->head = c->next;
        if (!w->head)
            w->tail = NULL;
        atomic_store(&c->state, RUNNING);
        pthread_mutex_unlock(&w->mu);
        run_job(c);
        atomic_store(&c->state, DONE);
        release(c);
        uint64_t one = 1;
        if (write(w->wakefd, &one, sizeof one) < 0) { /* the counter is full: it is readable anyway */ }
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static struct cf_workers *workers_new(int wakefd)
{
    struct cf_workers *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->wakefd = wakefd;
    for (int i = 0; i < WORKERS; i++) {
        if (pthread_create(&w->threads[w->nthreads], NULL, worker, w) == 0)
            w->nthreads++;
    }
    if (w->nthreads == 0) {
        cf_workers_free(w);
        return NULL;
    }
    return w;
}

void cf_workers_free(struct cf_workers *w)
{
    pthread_mutex_lock(&w->mu);
    w->stop = 1; /* the workers finish what is queued, then leave */
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static cf_commit *new_job(const char *target, int overwrite, int sync)
{
    cf_commit *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->target = strdup(target);
    if (!c->target) {
        free(c);
        return NULL;
    }
    c->file.fd = -1;
    c->overwrite = overwrite;
    c->sync = sync;
    atomic_init(&c->refs, 2);
    atomic_init(&c->state, QUEUED);
    atomic_init(&c->canceled, 0);
    return c;
}

static cf_commit *submit(cf_session *s, cf_commit *c)
{
    if (s->closed || (!s->workers && !(s->workers = workers_new(s->wakefd)))) {
        /* No thread to hand it to: do it here. */
        run_job(c);
        atomic_store(&c->state, DONE);
        atomic_store(&c->refs, 1);
        return c;
    }
    struct cf_workers *w = s->workers;
    pthread_mutex_lock(&w->mu);
    if (w->tail)
        w->tail->next = c;
    else
        w->head = c;
    w->tail = c;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return c;
}

cf_commit *cf_commit_start(cf_session *s, cf_tmpfile *f, const char *target, int overwrite, int sync)
{
    cf_commit *c = new_job(target, overwrite, sync);
    if (!c)
        return NULL;
    c->file = *f; /* taken over: the caller's handle no longer owns it */
    f->fd = -1;
    f->path = NULL;
    return submit(s, c);
}

int cf_commit_done(cf_commit *c)
{
    return atomic_load(&c->state) == DONE;
}

cf_kind cf_commit_result(cf_commit *c, const char **message)
{
    if (atomic_load(&c->state) != DONE) {
        if (message)
            *message = "the save is still being finished";
        return CF_EIO;
    }
    if (message)
        *message = c->message;
    return c->result;
}

void cf_commit_cancel(cf_commit *c)
{
    atomic_store(&c->canceled, 1);
}

void cf_commit_free(cf_commit *c)
{
    if (c)
        release(c);
}
