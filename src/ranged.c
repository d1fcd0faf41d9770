/*
 * A file filled by ranged parts over several connections (parallel saves),
 * with whole-file digests computed while it fills: bytes that arrive at the
 * end of the contiguous prefix are hashed from memory as they are written;
 * bytes written further on are remembered as intervals and read back (from
 * the page cache) once the prefix reaches them.  So the digest is ready when
 * the last byte is, and a save that wants no digest reads nothing back.
 */
#include "cloudfetch.h"

#include <errno.h>
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
};

cf_ranged *cf_ranged_new(cf_tmpfile *f, int64_t total, unsigned hash_mask)
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
    return r;
}

void cf_ranged_free(cf_ranged *r)
{
    if (!r)
        return;
    cf_digests_free(r->digests);
    free(r->iv);
    free(r->rbuf);
    free(r);
}

int64_t cf_ranged_hashed(const cf_ranged *r)
{
    return r->digests ? r->hashed : 0;
}

const cf_digests *cf_ranged_digests(const cf_ranged *r)
{
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
        int64_t want = r->iv[0].end - r->hashed;
        if (want > READ_BACK)
            want = READ_BACK;
        if (want > (int64_t)max)
            want = (int64_t)max;
        ssize_t n = pread(r->file->fd, r->rbuf, (size_t)want, (off_t)r->hashed);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "cannot read back %s: %s", r->file->path ? r->file->path : "the file",
                     n < 0 ? strerror(errno) : "short file");
            return -1;
        }
        cf_digests_update(r->digests, r->rbuf, (size_t)n);
        r->hashed += n;
        max -= (size_t)n;
    }
    return 0;
}

int cf_ranged_catch_up(cf_ranged *r, size_t max, char *err, size_t errlen)
{
    return r->digests ? catch_up(r, max, err, errlen) : 0;
}

static int write_at(cf_ranged *r, int64_t offset, const char *data, size_t len, char *err, size_t errlen)
{
    if (cf_tmpfile_pwrite(r->file, data, len, offset, err, errlen) != 0)
        return -1;
    if (!r->digests)
        return 0;
    int64_t end = offset + (int64_t)len;
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

long cf_ranged_pump(cf_ranged *r, cf_transfer *t, int64_t *pos, int64_t last, char *err, size_t errlen)
{
    long total = 0;
    while (*pos <= last) {
        const char *data;
        long n = cf_transfer_peek(t, &data);
        if (n == CF_AGAIN)
            break;
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
    if (r->digests && catch_up(r, CATCH_UP_MAX, err, errlen) < 0)
        return CF_EWRITE;
    if (total == 0 && *pos <= last)
        return CF_AGAIN;
    return total;
}
