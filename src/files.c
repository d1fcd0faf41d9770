/*
 * Atomic saves: the body goes to a temporary file created beside the target,
 * which is fsynced and renamed onto the target only after every check passed.
 * Without `overwrite` the rename refuses to replace an existing file, so a
 * file that appeared meanwhile is not clobbered either.
 */
#include "cloudfetch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    snprintf(path, n, "%s/.cloudfetch-XXXXXX.tmp", dir);
    free(dir);
    int fd = mkostemps(path, 4, O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, "cannot create a temporary file beside", target);
        free(path);
        return -1;
    }
    /* mkstemp makes 0600; the saved file gets the usual 0666 & ~umask. */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0) {
        set_err(err, errlen, "cannot set the mode of", path);
        close(fd);
        unlink(path);
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

cf_kind cf_tmpfile_commit(cf_tmpfile *f, const char *target, int overwrite, char *err, size_t errlen)
{
    if (fsync(f->fd) != 0) {
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
    if (sync_dir(target) != 0) {
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
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);
    f->fd = open(path, flags, 0666);
    if (f->fd < 0) {
        set_err(err, errlen, "cannot open", path);
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
