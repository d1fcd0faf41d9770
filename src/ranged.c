/*
 * A file filled by ranged parts over several connections (parallel saves),
 * with whole-file digests computed while it fills, in order, as the
 * contiguous prefix grows.  Inline (small files, one core, hash_thread =
 * false): bytes that arrive at the end of the prefix are hashed from memory
 * as they are written; bytes written further on are remembered as
 * intervals and read back (from the page cache) once the prefix reaches
 * them.  With a hasher thread (hasher.h): the writer only writes and moves
 * the prefix; the thread reads the prefix back and hashes it, so the
 * thread that drives the parts does no hashing at all.  Either way the
 * digest is ready about when the last byte is, and a save that wants no
 * digest reads nothing back.
 */
#include "cloudfetch.h"
#include "hasher.h"

#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_BACK (256 * 1024)
#define CATCH_UP_MAX (8 * 1024 * 1024) /* bytes read back per pump, so no call runs long */

typedef struct interval {
    int64_t start, end; /* [start, end) */
} interval;

struct cf_ranged {
    cf_tmpfile *file;
    int64_t total;
    cf_digests *digests; /* NULL: nothing to hash */
    int64_t hashed;      /* bytes [0, hashed) went into the digests */
    interval *iv;        /* written beyond the prefix; sorted, disjoint, not adjacent */
    size_t niv, capiv;
    char *rbuf;
    /* With a hasher thread (NULL: inline): */
    cf_hasher *hasher;
    cf_hjob job;         /* bytes [0, job.h) are hashed (on the thread) */
    int64_t prefix;      /* bytes [0, prefix) are written */
    int tfd;             /* the thread's own descriptor of the file (a duplicate) */
    char *tbuf;          /* the thread's read-back buffer */
    int terr;            /* the thread's read-back failure: errno, or 0 (short file) */
};

/* On the hasher thread: reads [from, to) back and hashes it. */
static int prefix_work(cf_hjob *j, uint64_t from, uint64_t to)
{
    cf_ranged *r = (cf_ranged *)(void *)((char *)j - offsetof(cf_ranged, job));
    return cf_hash_range(r->digests, r->tfd, r->tbuf, READ_BACK, (int64_t)from, (int64_t)to, &r->terr);
}

cf_ranged *cf_ranged_new(cf_tmpfile *f, int64_t total, unsigned hash_mask, int hash_thread)
{
    cf_ranged *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->file = f;
    r->total = total;
    if (hash_mask && !(r->digests = cf_digests_new(hash_mask))) {
        free(r);
        return NULL;
    }
    /* The thread reads through a descriptor of its own: whatever becomes
     * of f's (a failed save discards the file), it reads the same file. */
    r->tfd = -1;
    if (r->digests && hash_thread && total >= CF_HASH_THREAD_MIN && cf_hash_cores() >= 2 &&
        (r->tbuf = malloc(READ_BACK)) && (r->tfd = fcntl(f->fd, F_DUPFD_CLOEXEC, 0)) >= 0 &&
        !(r->hasher = cf_hasher_new())) {
        close(r->tfd); /* no thread: inline */
        r->tfd = -1;
    }
    if (!r->hasher) {
        free(r->tbuf);
        r->tbuf = NULL;
    }
    r->job.work = prefix_work;
    return r;
}

void cf_ranged_free(cf_ranged *r)
{
    if (!r)
        return;
    if (r->hasher) {
        __atomic_store_n(&r->job.failed, 1, __ATOMIC_RELAXED); /* what is left is not read back */
        cf_hasher_free(r->hasher);
        close(r->tfd);
        free(r->tbuf);
    }
    cf_digests_free(r->digests);
    free(r->iv);
    free(r->rbuf);
    free(r);
}

int64_t cf_ranged_hashed(const cf_ranged *r)
{
    if (!r->digests)
        return 0;
    return r->hasher ? (int64_t)cf_hjob_mark(&r->job) : r->hashed;
}

const cf_digests *cf_ranged_digests(cf_ranged *r)
{
    if (r->hasher) /* the thread no longer touches them */
        cf_hjob_wait(r->hasher, &r->job, UINT64_MAX);
    return r->digests;
}

/* Records [start, end) as written, merging with neighbours. */
static int remember(cf_ranged *r, int64_t start, int64_t end)
{
    size_t i = 0;
    while (i < r->niv && r->iv[i].end < start)
        i++;
    if (i < r->niv && r->iv[i].start <= end) { /* overlaps or touches iv[i] */
        if (start < r->iv[i].start)
            r->iv[i].start = start;
        if (end > r->iv[i].end)
            r->iv[i].end = end;
        while (i + 1 < r->niv && r->iv[i + 1].start <= r->iv[i].end) {
            if (r->iv[i + 1].end > r->iv[i].end)
                r->iv[i].end = r->iv[i + 1].end;
            memmove(&r->iv[i + 1], &r->iv[i + 2], (r->niv - i - 2) * sizeof *r->iv);
            r->niv--;
        }
        return 0;
    }
    if (r->niv == r->capiv) {
        size_t cap = r->capiv ? 2 * r->capiv : 16;
        interval *grown = realloc(r->iv, cap * sizeof *grown);
        if (!grown)
            return -1;
        r->iv = grown;
        r->capiv = cap;
    }
    memmove(&r->iv[i + 1], &r->iv[i], (r->niv - i) * sizeof *r->iv);
    r->iv[i].start = start;
    r->iv[i].end = end;
    r->niv++;
    return 0;
}

static int read_back_failed(cf_ranged *r, int errnum, char *err, size_t errlen)
{
    snprintf(err, errlen, "cannot read back %s: %s", r->file->path ? r->file->path : "the file",
             errnum ? strerror(errnum) : "short file");
    return -1;
}

/* Hashes bytes the prefix has reached that were written earlier, reading
 * at most max of them back.  1 while more is waiting, 0 when caught up. */
static int catch_up(cf_ranged *r, size_t max, char *err, size_t errlen)
{
    while (r->niv > 0 && r->iv[0].start <= r->hashed) {
        if (r->iv[0].end <= r->hashed) {
            memmove(&r->iv[0], &r->iv[1], (r->niv - 1) * sizeof *r->iv);
            r->niv--;
            continue;
        }
        if (max == 0)
            return 1;
        if (!r->rbuf && !(r->rbuf = malloc(READ_BACK))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        int64_t end = r->iv[0].end;
        if (end - r->hashed > (int64_t)max)
            end = r->hashed + (int64_t)max;
        int errnum;
        if (cf_hash_range(r->digests, r->file->fd, r->rbuf, READ_BACK, r->hashed, end, &errnum) != 0)
            return read_back_failed(r, errnum, err, errlen);
        max -= (size_t)(end - r->hashed);
        r->hashed = end;
    }
    return 0;
}

/* With a thread: hands the prefix over, and waits until the thread hashed
 * at most max more of it.  1 while more is waiting, 0 when caught up (the
 * thread idle). */
static int thread_catch_up(cf_ranged *r, size_t max, char *err, size_t errlen)
{
    uint64_t given = (uint64_t)r->prefix; /* job.fill: written by this thread only */
    if (r->job.fill < given)
        cf_hjob_give(r->hasher, &r->job, given);
    uint64_t h = cf_hjob_mark(&r->job);
    if (h < given && max > 0)
        cf_hjob_wait(r->hasher, &r->job, given - h > max ? h + max : given);
    if (cf_hjob_mark(&r->job) < given)
        return 1;
    cf_hjob_wait(r->hasher, &r->job, UINT64_MAX); /* idle: failed is settled */
    if (r->job.failed)
        return read_back_failed(r, r->terr, err, errlen);
    return 0;
}

int cf_ranged_catch_up(cf_ranged *r, size_t max, char *err, size_t errlen)
{
    if (r->hasher)
        return thread_catch_up(r, max, err, errlen);
    return r->digests ? catch_up(r, max, err, errlen) : 0;
}

/* With a thread: bytes [start, end) were written; moves the prefix over
 * them and what they join, and hands it over every READ_BACK bytes. */
static int grow_prefix(cf_ranged *r, int64_t start, int64_t end)
{
    if (start > r->prefix)
        return remember(r, start, end);
    if (end > r->prefix)
        r->prefix = end;
    while (r->niv > 0 && r->iv[0].start <= r->prefix) {
        if (r->iv[0].end > r->prefix)
            r->prefix = r->iv[0].end;
        memmove(&r->iv[0], &r->iv[1], (r->niv - 1) * sizeof *r->iv);
        r->niv--;
    }
    uint64_t fill = r->job.fill;
    if (fill < (uint64_t)r->prefix && ((uint64_t)r->prefix - fill >= READ_BACK || r->prefix == r->total))
        cf_hjob_give(r->hasher, &r->job, (uint64_t)r->prefix);
    return 0;
}

static int write_at(cf_ranged *r, int64_t offset, const char *data, size_t len, char *err, size_t errlen)
{
    if (cf_tmpfile_pwrite(r->file, data, len, offset, err, errlen) != 0)
        return -1;
    if (!r->digests)
        return 0;
    int64_t end = offset + (int64_t)len;
    if (r->hasher) {
        if (grow_prefix(r, offset, end) != 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return 0;
    }
    if (offset <= r->hashed && end > r->hashed) { /* extends the prefix: hash from memory */
        size_t skip = (size_t)(r->hashed - offset);
        if (cf_digests_update(r->digests, data + skip, len - skip) != 0) {
            snprintf(err, errlen, "digest update failed");
            return -1;
        }
        r->hashed = end;
        return 0;
    }
    if (offset > r->hashed && remember(r, offset, end) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* Bytes [start, end) were written by t's write callback itself. */
static int sunk(cf_ranged *r, int64_t start, int64_t end)
{
    return r->hasher ? grow_prefix(r, start, end) : 0;
}

long cf_ranged_pump(cf_ranged *r, cf_transfer *t, int64_t *pos, int64_t last, char *err, size_t errlen)
{
    long total = 0;
    while (*pos <= last) {
        const char *data;
        long n = cf_transfer_peek(t, &data);
        /* What the write callback wrote in place comes first: bytes are
         * buffered only before it did, or past the part's last byte. */
        int64_t sk = cf_transfer_sunk(t);
        if (sk > 0) {
            if (sunk(r, *pos, *pos + sk) != 0) {
                snprintf(err, errlen, "out of memory");
                return CF_EWRITE;
            }
            *pos += sk;
            total += (long)sk;
            if (*pos > last)
                break;
        }
        if (n == CF_AGAIN) {
            /* Nothing buffered: unless its bytes must be hashed from memory
             * (inline), the write callback writes this part in place itself. */
            if (r->hasher || !r->digests)
                cf_transfer_sink(t, r->file, *pos, last + 1);
            break;
        }
        if (n < 0)
            return total > 0 ? total : n;
        if (n == 0) {
            if (total > 0)
                return total;
            snprintf(err, errlen, "the part ended at byte %lld, before its last byte %lld", (long long)*pos,
                     (long long)last);
            return CF_ESHORT;
        }
        size_t k = (size_t)n;
        if ((int64_t)k > last - *pos + 1)
            k = (size_t)(last - *pos + 1);
        if (write_at(r, *pos, data, k, err, errlen) != 0)
            return CF_EWRITE;
        cf_transfer_consume(t, k);
        *pos += (int64_t)k;
        total += (long)k;
    }
    if (r->digests && !r->hasher && catch_up(r, CATCH_UP_MAX, err, errlen) < 0)
        return CF_EWRITE;
    if (total == 0 && *pos <= last)
        return CF_AGAIN;
    return total;
}
