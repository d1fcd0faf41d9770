/*
 * Files: atomic saves (the body goes to a temporary file created beside the
 * target, which is fsynced and renamed onto the target only after every
 * check passed; without `overwrite` the rename refuses to replace an
 * existing file, so a file that appeared meanwhile is not clobbered either),
 * part files of resumable saves, and hashing files in steps.
 */
#include "cloudfetch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#define ENTITY_XATTR "user.cloudfetch.entity"

static void set_err(char *err, size_t errlen, const char *what, const char *path)
{
    snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
}

/* The directory part of `path` ("." when there is none), malloc'd. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/*
 * Temporary files are named after their target, in numbered slots:
 *
 *     <dir>/.cloudfetch-<name>.<slot>.tmp      (slot 0, 1, 2, ...)
 *
 * and their writer holds flock(LOCK_EX) on the file from creation until the
 * file is renamed onto the target or removed; the kernel drops the lock
 * when the writer's process dies, however it dies.  So a later save of the
 * same target tells a stale file (nobody holds its lock: a save that was
 * killed) from one in use (a live save in this or another process), and
 * removes the stale ones before it takes a slot.  Looking at a few known
 * names costs a few lstat() calls: no directory is listed, so saving into a
 * directory of 100,000 files costs what it costs into an empty one.
 *
 * Only names that are exactly a slot of this target are looked at; a
 * symbolic link, directory or anything else but a regular file in a slot is
 * never opened, followed or removed.  Names keep the ".cloudfetch-" prefix
 * (mirrors skip such files); a target name too long for the 255-byte limit
 * is cut at a UTF-8 character boundary and completed with a hash of the
 * whole name, so two long names that share a beginning keep apart.
 */
#define TMP_PREFIX ".cloudfetch-"
#define TMP_SLOTS 1000                 /* slot numbers are 0..999 */
#define TMP_SCANNED 8                  /* slots checked for stale files at every save */
#define TMP_NAME_ROOM (255 - (sizeof TMP_PREFIX - 1) - (sizeof ".999.tmp" - 1))
#define TMP_LOCK_TRIES 200             /* x 1 ms: a cleaner holds a lock for microseconds */

/* FNV-1a, 32 bits: tells shortened names apart (not a security measure). */
static uint32_t name_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

/* "<dir>/.cloudfetch-<name>" for target, with room for ".<slot>.tmp" after
 * it; malloc'd (NULL with errno ENOMEM). */
static char *tmp_stem(const char *target, size_t *cap)
{
    char *dir = dir_of(target);
    if (!dir)
        return NULL;
    const char *slash = strrchr(target, '/');
    const char *name = slash ? slash + 1 : target;
    size_t len = strlen(name), keep = len;
    char tail[16] = "";
    if (len > TMP_NAME_ROOM) {
        keep = TMP_NAME_ROOM - 9; /* "~" and 8 hex digits follow */
        while (keep > 0 && ((unsigned char)name[keep] & 0xC0) == 0x80)
            keep--; /* never split a UTF-8 sequence */
        snprintf(tail, sizeof tail, "~%08x", (unsigned)name_hash(name, len));
    }
    *cap = strlen(dir) + 1 + sizeof TMP_PREFIX + keep + strlen(tail) + sizeof ".999.tmp";
    char *stem = malloc(*cap);
    if (stem)
        snprintf(stem, *cap, "%s/%s%.*s%s", dir, TMP_PREFIX, (int)keep, name, tail);
    free(dir);
    if (!stem)
        errno = ENOMEM;
    return stem;
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Removes the file at path when it is a stale temporary file: a regular
 * file whose lock nobody holds.  Returns 1 when the slot is free now
 * (nothing there, or removed), 0 when something stays. */
static int clear_stale(const char *path)
{
    struct stat st, fst, now;
    if (lstat(path, &st) != 0)
        return errno == ENOENT;
    if (!S_ISREG(st.st_mode))
        return 0; /* a link, a directory, a FIFO...: not ours, not touched */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT;
    int free_now = 0;
    if (fstat(fd, &fst) == 0 && S_ISREG(fst.st_mode) && same_file(&st, &fst) &&
        flock(fd, LOCK_EX | LOCK_NB) == 0) {
        /* Stale: its writer is gone.  A writer renames its file away while
         * it still holds the lock, so the name is still this file unless
         * someone else than a save moved it; look again all the same. */
        if (lstat(path, &now) != 0)
            free_now = errno == ENOENT;
        else if (same_file(&now, &fst))
            free_now = unlink(path) == 0;
    }
    close(fd);
    return free_now;
}

/* Creates path (O_EXCL) and takes its lock.  Returns the descriptor, or -1
 * with errno: EEXIST (taken meanwhile), EAGAIN (a cleaner removed it
 * between creation and locking: try the slot again), EBUSY (the lock could
 * not be had), anything else from open(). */
static int create_locked(const char *path)
{
    /* 0666 & ~umask, as any new file gets */
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0)
        return -1;
    for (int tries = 0;; tries++) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK)
            return fd; /* no locks on this file system: in use or not cannot be told */
        if (tries == TMP_LOCK_TRIES) {
            /* Someone else holds a lock on our new file: leave the slot. */
            struct stat a, b;
            if (fstat(fd, &a) == 0 && lstat(path, &b) == 0 && same_file(&a, &b))
                unlink(path);
            close(fd);
            errno = EBUSY;
            return -1;
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_nlink == 0) {
        /* A cleaner found it before it was locked and removed it. */
        close(fd);
        errno = EAGAIN;
        return -1;
    }
    return fd;
}

int cf_tmpfile_create(cf_tmpfile *f, const char *target, char *err, size_t errlen)
{
    f->fd = -1;
    f->path = NULL;
    size_t cap;
    char *stem = tmp_stem(target, &cap);
    char *path = stem ? malloc(cap) : NULL;
    if (!path) {
        free(stem);
        snprintf(err, errlen, "out of memory");
        errno = ENOMEM;
        return -1;
    }
    int fd = -1, failure = 0;
    for (int slot = 0; slot < TMP_SLOTS && !failure; slot++) {
        snprintf(path, cap, "%s.%d.tmp", stem, slot);
        int free_slot = clear_stale(path); /* 0: in use, or something that is not ours */
        if (fd < 0 && free_slot) {
            for (int again = 0; again < 3; again++) {
                fd = create_locked(path);
                if (fd >= 0 || errno != EAGAIN)
                    break;
            }
            if (fd >= 0 && !(f->path = strdup(path))) {
                unlink(path);
                close(fd);
                fd = -1;
                failure = ENOMEM;
            } else if (fd < 0 && errno != EEXIST && errno != EBUSY && errno != EAGAIN) {
                failure = errno;
            }
        }
        if (fd >= 0 && slot >= TMP_SCANNED - 1)
            break; /* one slot is ours and the first ones were looked at */
    }
    if (fd < 0 && !failure)
        failure = EBUSY; /* every slot in use */
    free(stem);
    free(path);
    if (fd < 0) {
        errno = failure; /* for set_err */
        if (failure == EBUSY)
            snprintf(err, errlen, "cannot create a temporary file beside %s: all %d names are in use", target,
                     TMP_SLOTS);
        else
            set_err(err, errlen, "cannot create a temporary file beside", target);
        errno = failure;
        return -1;
    }
    f->fd = fd;
    return 0;
}

int cf_write_full(int fd, const void *data, size_t len, int64_t offset)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = offset < 0 ? write(fd, p, len) : pwrite(fd, p, len, (off_t)offset);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
        if (offset >= 0)
            offset += w;
    }
    return 0;
}

int cf_hash_range(cf_digests *d, int fd, char *buf, size_t bufsize, int64_t from, int64_t to, int *errnum)
{
    while (from < to) {
        size_t want = (uint64_t)(to - from) > bufsize ? bufsize : (size_t)(to - from);
        ssize_t n = pread(fd, buf, want, (off_t)from);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *errnum = n < 0 ? errno : 0;
            return -1;
        }
        if (cf_digests_update(d, buf, (size_t)n) != 0) {
            *errnum = ENOMEM;
            return -1;
        }
        from += n;
    }
    return 0;
}

static int write_all(cf_tmpfile *f, const char *p, size_t len, int64_t offset, char *err, size_t errlen)
{
    if (cf_write_full(f->fd, p, len, offset) == 0)
        return 0;
    set_err(err, errlen, "cannot write", f->path);
    return -1;
}

int cf_tmpfile_write(cf_tmpfile *f, const void *data, size_t len, char *err, size_t errlen)
{
    return write_all(f, data, len, -1, err, errlen);
}

static int sync_dir(const char *target)
{
    char *dir = dir_of(target);
    if (!dir)
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* rename() that never replaces: renameat2(RENAME_NOREPLACE) where the file
 * system has it, else link() + unlink(), which fails with EEXIST too. */
static int rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return -1;
    if (link(from, to) != 0)
        return -1;
    unlink(from);
    return 0;
}

cf_kind cf_tmpfile_commit(cf_tmpfile *f, const char *target, int overwrite, int sync, char *err, size_t errlen)
{
    if (sync && fsync(f->fd) != 0) {
        set_err(err, errlen, "cannot sync", f->path);
        cf_tmpfile_discard(f);
        return CF_EIO;
    }
    /* The file's lock (see cf_tmpfile_create) must outlive the rename, or a
     * save of the same target starting meanwhile would take the closed file
     * for a stale one; a second descriptor keeps it while close() reports
     * what it has to report (NFS writes back on close), and before the
     * rename, so a failure still leaves the target untouched. */
    int lockfd = fcntl(f->fd, F_DUPFD_CLOEXEC, 0);
    if (close(f->fd) != 0) {
        f->fd = lockfd;
        set_err(err, errlen, "cannot close", f->path);
        cf_tmpfile_discard(f);
        return CF_EIO;
    }
    f->fd = lockfd; /* -1 when no descriptor was left to duplicate: then unlocked */
    int rc = overwrite ? rename(f->path, target) : rename_noreplace(f->path, target);
    if (rc != 0) {
        cf_kind kind = errno == EEXIST ? CF_EEXISTS : CF_EIO;
        if (kind == CF_EEXISTS)
            snprintf(err, errlen, "%s exists already (pass overwrite = true to replace it)", target);
        else
            set_err(err, errlen, "cannot rename the temporary file to", target);
        cf_tmpfile_discard(f);
        return kind;
    }
    free(f->path);
    f->path = NULL;
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
    if (sync && sync_dir(target) != 0) {
        set_err(err, errlen, "cannot sync the directory of", target);
        return CF_EIO; /* the file is in place; only its durability is in doubt */
    }
    return CF_OK;
}

void cf_tmpfile_discard(cf_tmpfile *f)
{
    /* Unlinked before it is closed: its lock goes last. */
    if (f->path) {
        unlink(f->path);
        free(f->path);
        f->path = NULL;
    }
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
}

int cf_tmpfile_open_part(cf_tmpfile *f, const char *path, int append, char *err, size_t errlen)
{
    f->fd = -1;
    f->path = strdup(path);
    if (!f->path) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* A planted symbolic link must not redirect the write elsewhere, nor a
     * FIFO or device stand in for the part file. */
    int flags = O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | (append ? O_APPEND : 0);
    f->fd = open(path, flags, 0666);
    struct stat st;
    if (f->fd < 0 || fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (!append && ftruncate(f->fd, 0) != 0)) {
        if (f->fd >= 0 && !S_ISREG(st.st_mode))
            snprintf(err, errlen, "cannot open %s: not a regular file", path);
        else if (errno == ELOOP)
            snprintf(err, errlen, "cannot open %s: it is a symbolic link", path);
        else
            set_err(err, errlen, "cannot open", path);
        if (f->fd >= 0)
            close(f->fd);
        f->fd = -1;
        free(f->path);
        f->path = NULL;
        return -1;
    }
    return 0;
}

int cf_tmpfile_pwrite(cf_tmpfile *f, const void *data, size_t len, int64_t offset, char *err, size_t errlen)
{
    return write_all(f, data, len, offset, err, errlen);
}

void cf_tmpfile_keep(cf_tmpfile *f)
{
    if (f->fd >= 0) {
        fsync(f->fd);
        close(f->fd);
        f->fd = -1;
    }
    free(f->path);
    f->path = NULL;
}

int cf_tmpfile_set_tag(cf_tmpfile *f, const char *tag, size_t len)
{
    return f->fd >= 0 && fsetxattr(f->fd, ENTITY_XATTR, tag, len, 0) == 0 ? 0 : -1;
}

long cf_file_tag(const char *path, char *buf, size_t buflen)
{
    ssize_t n = lgetxattr(path, ENTITY_XATTR, buf, buflen);
    return n < 0 ? -1 : (long)n;
}

long cf_tmpfile_pump(cf_tmpfile *f, cf_transfer *t, char *err, size_t errlen)
{
    long total = 0;
    for (;;) {
        const char *data;
        long n = cf_transfer_peek(t, &data);
        if (n == CF_AGAIN || n <= 0) {
            /* Nothing buffered: from now on the write callback writes to f
             * itself; what it wrote counts here. */
            if (n == CF_AGAIN)
                cf_transfer_sink(t, f, -1, -1);
            total += (long)cf_transfer_sunk(t);
        }
        if (n == CF_AGAIN)
            return total > 0 ? total : CF_AGAIN;
        if (n <= 0)
            return total > 0 ? total : n; /* the end or the failure shows on the next call */
        if (cf_tmpfile_write(f, data, (size_t)n, err, errlen) != 0)
            return CF_EWRITE;
        cf_transfer_consume(t, (size_t)n);
        total += n;
    }
}

int cf_transfer_prefeed_file(cf_transfer *t, int fd, int64_t n, int64_t *done, size_t max, char *err, size_t errlen)
{
    char buf[64 * 1024];
    size_t budget = max;
    while (*done < n && budget > 0) {
        size_t want = sizeof buf;
        if ((int64_t)want > n - *done)
            want = (size_t)(n - *done);
        if (want > budget)
            want = budget;
        ssize_t r = pread(fd, buf, want, (off_t)*done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(err, errlen, "cannot read the part file: %s",
                     r < 0 ? strerror(errno) : "it is shorter than expected");
            return -1;
        }
        cf_transfer_prefeed(t, buf, (size_t)r);
        *done += r;
        budget -= (size_t)r;
    }
    return *done < n ? 1 : 0;
}

#define HASH_READ (256 * 1024)

struct cf_filehash {
    int fd;
    cf_digests *digests;
    char buf[HASH_READ];
};

cf_filehash *cf_filehash_open(const char *path, unsigned mask, char *err, size_t errlen)
{
    cf_filehash *h = malloc(sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (h->fd < 0) {
        set_err(err, errlen, "cannot open", path);
        free(h);
        return NULL;
    }
    h->digests = cf_digests_new(mask);
    if (!h->digests) {
        snprintf(err, errlen, "out of memory");
        cf_filehash_free(h);
        return NULL;
    }
    return h;
}

int cf_filehash_step(cf_filehash *h, size_t max, char *err, size_t errlen)
{
    size_t left = max;
    while (left > 0) {
        ssize_t r = read(h->fd, h->buf, left < HASH_READ ? left : HASH_READ);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read: %s", strerror(errno));
            return -1;
        }
        if (r == 0)
            return 0;
        if (cf_digests_update(h->digests, h->buf, (size_t)r) != 0) {
            snprintf(err, errlen, "digest update failed");
            return -1;
        }
        left -= (size_t)r;
    }
    return 1;
}

const cf_digests *cf_filehash_digests(const cf_filehash *h)
{
    return h->digests;
}

void cf_filehash_free(cf_filehash *h)
{
    if (!h)
        return;
    if (h->fd >= 0)
        close(h->fd);
    cf_digests_free(h->digests);
    free(h);
}

int cf_tmpfile_set_mtime(cf_tmpfile *f, double seconds)
{
    struct timespec ts[2];
    ts[0].tv_sec = 0;
    ts[0].tv_nsec = UTIME_OMIT; /* access time: as it is */
    ts[1].tv_sec = (time_t)seconds;
    ts[1].tv_nsec = (long)((seconds - (double)ts[1].tv_sec) * 1e9);
    if (ts[1].tv_nsec < 0 || ts[1].tv_nsec >= 1000000000)
        ts[1].tv_nsec = 0;
    return f->fd >= 0 && futimens(f->fd, ts) == 0 ? 0 : -1;
}

int cf_mkdirs(const char *base, const char *rel, int follow, char *err, size_t errlen)
{
    int fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, "cannot open the directory", base);
        return -1;
    }
    char *copy = strdup(rel);
    if (!copy) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    char *save = NULL;
    for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (!follow && (strcmp(c, ".") == 0 || strcmp(c, "..") == 0)) {
            snprintf(err, errlen, "refusing the path component '%s' in %s", c, rel);
            rc = -1;
            break;
        }
        if (mkdirat(fd, c, 0777) != 0 && errno != EEXIST) {
            set_err(err, errlen, "cannot create the directory", c);
            rc = -1;
            break;
        }
        int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
        if (next < 0) {
            snprintf(err, errlen, "%s/%s is not a directory%s", base, rel,
                     errno == ELOOP ? " (a symbolic link is in the way)" : "");
            rc = -1;
            break;
        }
        close(fd);
        fd = next;
    }
    close(fd);
    free(copy);
    return rc;
}

/* B2's order: bytes, with a directory compared as "name/". */
static int b2_order(const void *pa, const void *pb)
{
    const cf_dirent *a = pa, *b = pb;
    size_t la = strlen(a->name), lb = strlen(b->name);
    size_t ea = la + (a->kind == 'd'), eb = lb + (b->kind == 'd');
    for (size_t i = 0; i < ea && i < eb; i++) {
        int cx = i < la ? (unsigned char)a->name[i] : '/';
        int cy = i < lb ? (unsigned char)b->name[i] : '/';
        if (cx != cy)
            return cx - cy;
    }
    return (ea > eb) - (ea < eb);
}

void cf_dirents_free(cf_dirent *e, size_t n)
{
    if (!e)
        return;
    for (size_t i = 0; i < n; i++)
        free(e[i].name);
    free(e);
}

cf_dirent *cf_listdir(const char *path, size_t *n, char *err, size_t errlen)
{
    *n = 0;
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        set_err(err, errlen, "cannot read the directory", path);
        return NULL;
    }
    size_t cap = 64, count = 0;
    cf_dirent *list = malloc(cap * sizeof *list);
    struct dirent *de;
    while (list && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* gone meanwhile */
        if (count == cap) {
            cap *= 2;
            cf_dirent *grown = realloc(list, cap * sizeof *grown);
            if (!grown) {
                cf_dirents_free(list, count);
                list = NULL;
                break;
            }
            list = grown;
        }
        cf_dirent *e = &list[count];
        e->name = strdup(de->d_name);
        if (!e->name) {
            cf_dirents_free(list, count);
            list = NULL;
            break;
        }
        e->kind = S_ISREG(st.st_mode) ? 'f' : S_ISDIR(st.st_mode) ? 'd' : 'o';
        e->size = (int64_t)st.st_size;
        e->mtime = (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9;
        count++;
    }
    closedir(d);
    if (!list) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    qsort(list, count, sizeof *list, b2_order);
    *n = count;
    return list;
}
