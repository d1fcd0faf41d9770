/*
 * Private to the engine (session.c, transfer.c, commit.c): the session and
 * transfer structures.  Nothing outside the core includes this.
 */
#ifndef CLOUDFETCH_ENGINE_H
#define CLOUDFETCH_ENGINE_H

#include "cloudfetch.h"
#include "hasher.h"

#include <curl/curl.h>

#define CF_EASY_POOL 32               /* idle easy handles kept for reuse */
#define CF_BUF_POOL 32                /* body buffers kept for reuse ... */
#define CF_BUF_POOL_BYTES (4 << 20)   /* ... holding at most this much memory */

struct cf_transfer {
    cf_session *session;
    cf_transfer *prev, *next;  /* the session's list of transfers in its multi handle */
    int64_t id;                /* unique in the session, for cf_session_take_ready */
    size_t ready_index;        /* where it is in the session's ready list ... */
    int in_ready;              /* ... when it is there */
    CURL *easy;                /* NULL once detached */
    struct curl_slist *req_headers;
    cf_headers headers;
    cf_digests *digests;
    /* The body buffer: a ring of cap bytes (allocated on the first byte).
     * Positions count body bytes since the start; byte p lives at
     * buf[(p - origin) % cap].  [r, w) is unread; [h, w) not yet hashed.
     * A byte's room is reused once it was both read and hashed. */
    char *buf;
    size_t cap;
    uint64_t r, w, origin;
    size_t limit;              /* buffer_size: cap grows up to it, as the body needs */
    /* Hashing (hasher.c): inline in the write callback, or on the
     * session's hasher thread for big bodies. */
    int hmode;                 /* CF_HASH_UNDECIDED, _INLINE or _THREAD */
    int hash_thread;           /* the request allows the hasher thread */
    cf_hjob hj;                /* hashed up to hj.h, handed over up to hj.fill (hasher.h) */
    /* A save's file (cf_transfer_sink): the write callback writes the body
     * there itself, no copy into the ring; the hasher thread reads it back. */
    int sink_fd;               /* -1: none; else a duplicate of the file's descriptor */
    char *sink_path;           /* the file's name, for messages */
    uint64_t sink_base;        /* body position p is at file offset p - sink_base */
    uint64_t sink_end;         /* positions from here on are dropped */
    uint64_t sink_told;        /* w when cf_transfer_sunk last reported */
    char *sink_buf;            /* the hasher's read-back buffer */
    int closed;                /* cf_transfer_close ran */
    int64_t received;
    int64_t accepted;          /* bytes taken (network and prefeed), all hashed */
    int in_multi;
    int released;              /* the consumer asked for the body */
    int body_seen;             /* the write callback was called at least once */
    int paused;                /* we paused it: buffer full, or body not yet asked for */
    int done;                  /* curl reported the transfer finished */
    int follow;
    long stall_ms;             /* 0: no stall timeout */
    long last_activity;        /* monotonic ms of the last byte, or of a (re)start or unpause */
    CURLcode result;
    cf_kind kind;
    char message[CF_ERRLEN];
    char curl_error[CURL_ERROR_SIZE];
    int sock_errno; /* why the last socket could not be opened (open_socket) */
    char *url;                 /* effective URL */
};

struct cf_session {
    CURLM *multi;
    int epfd;                  /* the transfers' sockets, and the commit workers' eventfd */
    int wakefd;                /* eventfd written by commit workers */
    long timer_due;            /* monotonic ms when curl wants its timeout action; -1 none */
    cf_transfer *transfers;    /* in the multi handle (stall clocks) */
    CURL *pool[CF_EASY_POOL];  /* reset easy handles ready for reuse */
    int npool;
    /* Body buffers of finished transfers: many small downloads would
     * otherwise make glibc trim and regrow the heap for every one. */
    char *bufs[CF_BUF_POOL];
    size_t bufcaps[CF_BUF_POOL];
    int nbufs;
    size_t buf_bytes;
    struct cf_workers *workers; /* commit.c; NULL until the first background commit */
    cf_hasher *hasher;         /* hasher.c; NULL until a big body is hashed */
    int no_hasher;             /* one core, or the thread could not start: hash inline */
    cf_transfer **ready;       /* transfers with news since the last cf_session_take_ready */
    size_t nready, capready;
    int64_t next_id;
    int refs;                  /* transfers and commits that point here */
    int closed;                /* cf_session_free ran; freed when refs drops to 0 */
};

/* A transfer or commit job let go of the session (frees it once closed). */
void cf_session_unref(cf_session *s);

long cf_now_ms(void);
/* session.c: t has news for whoever waits on it (headers, bytes, its end). */
void cf_session_notify(cf_session *s, cf_transfer *t);
/* session.c: t goes away: out of the ready list. */
void cf_session_forget(cf_session *s, cf_transfer *t);
/* transfer.c: curl reported the transfer finished (from cf_session_run). */
void cf_transfer_finished(cf_transfer *t, CURLcode result);
/* transfer.c: ms left on t's stall clock at `now` (0: ran out), -1 when no
 * clock runs (no stall timeout, paused by us, ended). */
long cf_transfer_stall_left(const cf_transfer *t, long now);
/* transfer.c: fails t when its stall clock ran out. */
void cf_transfer_check_stall(cf_transfer *t, long now);
/* commit.c: stops and joins the workers (from cf_session_free). */
void cf_workers_free(struct cf_workers *w);

/* hasher.c: digests computed off the receive path.  Only the thread that
 * drives the session calls these; the hasher thread touches nothing but
 * the bytes it was handed (in the ring, or read back through sink_fd into
 * sink_buf), the digests and t->hj. */
enum { CF_HASH_UNDECIDED = 0, CF_HASH_INLINE, CF_HASH_THREAD };
/* Picks inline or thread hashing for t's body (at its first byte). */
void cf_hash_decide(cf_transfer *t, int64_t content_length);
/* Bytes [h, w) were written: hash them (inline), or hand them to the
 * hasher thread once enough gathered. */
void cf_hash_written(cf_transfer *t, const char *data, size_t len);
/* How far hashing got (h), without waiting. */
uint64_t cf_hash_mark(cf_transfer *t);
/* Returns once every written byte is in the digests and the hasher thread
 * no longer touches t (its buffer may move, its digests be read). */
void cf_hash_settle(cf_transfer *t);
/* transfer.c: where position p lives in t's ring (*at), and how many of
 * the bytes [p, end) lie there in one piece. */
size_t cf_ring_span(const cf_transfer *t, uint64_t p, uint64_t end, size_t *at);
/* hasher.c: how a transfer's bytes [from, to) are hashed when not inline
 * from the write callback's data: from its ring, or read back from its
 * sink file. */
int cf_hash_work(cf_hjob *j, uint64_t from, uint64_t to);

#endif
