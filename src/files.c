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
#include <sys/random.h>
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

/* Six characters for a temporary file's name: a per-thread generator seeded
 * once from the kernel, so creating a file costs one open() (mkstemp would
 * also need an fchmod, since it makes files 0600). */
static void random_name(char out[6])
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static _Thread_local uint64_t state;
    if (!state) {
        if (getrandom(&state, sizeof state, 0) != (ssize_t)sizeof state)
            state = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
        state |= 1;
    }
    for (int i = 0; i < 6; i++) {
        state ^= state << 13; /* xorshift64 */
        state ^= state >> 7;
        state ^= state << 17;
        out[i] = chars[state % (sizeof chars - 1)];
    }
}

int cf_tmpfile_create(cf_tmpfile *f, const char *target, char *err, size_t errlen)
{
    f->fd = -1;
    f->path = NULL;
    char *dir = dir_of(target);
    if (!dir) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t n = strlen(dir) + sizeof "/.cloudfetch-XXXXXX.tmp";
    char *path = malloc(n);
    if (!path) {
        free(dir);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        char name[6];
        random_name(name);
        snprintf(path, n, "%s/.cloudfetch-%.6s.tmp", dir, name);
        /* 0666 & ~umask, as any new file gets */
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    free(dir);
    if (fd < 0) {
        set_err(err, errlen, "cannot create a temporary file beside", target);
        free(path);
        return -1;
    }
    f->fd = fd;
    f->path = path;
    return 0;
}

/* Writes all of data, at offset (pwrite) or, when offset < 0, at the file
 * position (write, which honours O_APPEND). */
static int write_all(cf_tmpfile *f, const char *p, size_t len, int64_t offset, char *err, size_t errlen)
{
    while (len > 0) {
        ssize_t w = offset < 0 ? write(f->fd, p, len) : pwrite(f->fd, p, len, (off_t)offset);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            set_err(err, errlen, "cannot write", f->path);
            return -1;
        }
        p += w;
        len -= (size_t)w;
        if (offset >= 0)
            offset += w;
    }
    return 0;
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
    if (close(f->fd) != 0) {
        f->fd = -1;
        set_err(err, errlen, "cannot close", f->path);
        cf_tmpfile_discard(f);
        return CF_EIO;
    }
    f->fd = -1;
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
    if (sync && sync_dir(target) != 0) {
        set_err(err, errlen, "cannot sync the directory of", target);
        return CF_EIO; /* the file is in place; only its durability is in doubt */
    }
    return CF_OK;
}

void cf_tmpfile_discard(cf_tmpfile *f)
{
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
    if (f->path) {
        unlink(f->path);
        free(f->path);
        f->path = NULL;
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
