/*
 * libFuzzer target: what src/files.c does with names and bytes a server
 * chose.  Part files and their entity tags (an ETag or B2 file id kept in
 * an extended attribute), directories created for mirrored names
 * (cf_mkdirs), and directory listings in B2's order (cf_listdir), all
 * inside a scratch directory under /tmp:
 *
 *   <scratch>/base/            where everything happens
 *     file  dir/  fifo  link -> ../outside  dangling -> ../nowhere
 *   <scratch>/outside/         must stay empty
 *
 * Input: one byte of flags, then NUL-separated fields: the entity tag, a
 * part file's name, a relative path for cf_mkdirs.  Checked (abort() when
 * broken):
 *   - cf_tmpfile_open_part opens a regular file (new or existing; truncated
 *     unless appending) and refuses a symbolic link, FIFO or directory in
 *     its place, never creating anything through a link;
 *   - a tag set on a part file reads back byte for byte (cf_file_tag), a
 *     buffer too small for it gives -1 and no overrun, a file without one
 *     gives -1;
 *   - cf_mkdirs (not following links) refuses "." and ".." components and
 *     any way through the planted link; when it succeeds every component
 *     is a real directory below base; nothing ever appears in outside/ or
 *     beside base/;
 *   - cf_listdir lists every entry of base once, never "." or "..", with
 *     the right kind (links and FIFOs 'o'), sorted in B2's order (bytes,
 *     a directory compared as "name/").
 *
 *   make fuzz                              (see mk/fuzz.mk)
 *   build/fuzz/fuzz_files CRASH_FILE       (replays one input)
 */
#include "../../src/cloudfetch.h"

#define FUZZ_NAME "fuzz_files"
#include "fuzz_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[64], base[96], outside[96];
static int xattrs = 1; /* the file system under /tmp keeps user.* attributes */

static const char *const FIXTURES[] = {"dangling", "dir", "fifo", "file", "link"};
#define NFIXTURES 5

static void make_fixtures(void)
{
    char p[160];
    snprintf(p, sizeof p, "%s/file", base);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, "kept", 4) != 4 || close(fd) != 0)
        abort();
    snprintf(p, sizeof p, "%s/dir", base);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/fifo", base);
    mkfifo(p, 0644);
    snprintf(p, sizeof p, "%s/link", base);
    if (symlink("../outside", p) != 0 && errno != EEXIST)
        abort();
    snprintf(p, sizeof p, "%s/dangling", base);
    if (symlink("../nowhere", p) != 0 && errno != EEXIST)
        abort();
}

/* Removes everything below dir fd except (at the top) the fixtures. */
static void clean(int dfd, int top)
{
    DIR *d = fdopendir(dup(dfd));
    if (!d)
        abort();
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int fixture = 0;
        for (int i = 0; top && i < NFIXTURES; i++)
            fixture |= strcmp(e->d_name, FIXTURES[i]) == 0;
        struct stat st;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
            if (sub >= 0) {
                clean(sub, 0);
                close(sub);
            }
            if (!fixture) /* base/dir stays, emptied */
                unlinkat(dfd, e->d_name, AT_REMOVEDIR);
        } else if (!fixture) {
            unlinkat(dfd, e->d_name, 0);
        }
    }
    closedir(d);
}

static void remove_scratch(void)
{
    int fd = open(base, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        clean(fd, 0);
        close(fd);
    }
    rmdir(base);
    rmdir(outside);
    rmdir(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(root, sizeof root, "/tmp/cloudfetch-fuzz-files-XXXXXX");
    if (!mkdtemp(root)) {
        perror("fuzz_files: mkdtemp");
        exit(1);
    }
    snprintf(base, sizeof base, "%s/base", root);
    snprintf(outside, sizeof outside, "%s/outside", root);
    if (mkdir(base, 0755) != 0 || mkdir(outside, 0755) != 0) {
        perror("fuzz_files: scratch");
        exit(1);
    }
    make_fixtures();
    atexit(remove_scratch); /* a crash leaves it for a look */
    char p[160];
    snprintf(p, sizeof p, "%s/file", base);
    if (setxattr(p, "user.cloudfetch.probe", "x", 1, 0) != 0) {
        xattrs = 0;
        fprintf(stderr, "fuzz_files: no user xattrs under /tmp (%s): tags not checked\n", strerror(errno));
    }
    removexattr(p, "user.cloudfetch.probe");
    return 0;
}

static size_t count_entries(const char *path)
{
    DIR *d = opendir(path);
    size_t n = 0;
    struct dirent *e;
    if (!d)
        broken("cannot read %s: %s", path, strerror(errno));
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* Nothing escaped: outside/ is empty, root holds base/ and outside/ only,
 * the planted files are what they were. */
static void check_contained(const char *after)
{
    if (count_entries(outside) != 0)
        broken("%s: something was created in outside/ (through the planted link)", after);
    if (count_entries(root) != 2)
        broken("%s: something was created beside base/", after);
    char p[160];
    struct stat st;
    snprintf(p, sizeof p, "%s/file", base);
    if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != 4)
        broken("%s: base/file changed", after);
    snprintf(p, sizeof p, "%s/link", base);
    if (lstat(p, &st) != 0 || !S_ISLNK(st.st_mode))
        broken("%s: base/link changed", after);
    snprintf(p, sizeof p, "%s/fifo", base);
    if (lstat(p, &st) != 0 || !S_ISFIFO(st.st_mode))
        broken("%s: base/fifo changed", after);
}

/* B2's order, written independently of files.c's. */
static int b2_before(const cf_dirent *a, const cf_dirent *b)
{
    size_t la = strlen(a->name), lb = strlen(b->name);
    size_t ea = la + (a->kind == 'd'), eb = lb + (b->kind == 'd');
    for (size_t i = 0;; i++) {
        if (i == ea || i == eb)
            return ea < eb;
        unsigned char x = i < la ? (unsigned char)a->name[i] : '/';
        unsigned char y = i < lb ? (unsigned char)b->name[i] : '/';
        if (x != y)
            return x < y;
    }
}

static void check_listing(void)
{
    char err[CF_ERRLEN];
    size_t n = 0;
    cf_dirent *list = cf_listdir(base, &n, err, sizeof err);
    if (!list)
        broken("cf_listdir(base): %s", err);
    if (n != count_entries(base))
        broken("cf_listdir gave %zu entries, the directory has %zu", n, count_entries(base));
    for (size_t i = 0; i < n; i++) {
        const cf_dirent *e = &list[i];
        struct stat st;
        char p[4096];
        if (strcmp(e->name, ".") == 0 || strcmp(e->name, "..") == 0)
            broken("cf_listdir listed \"%s\"", e->name);
        snprintf(p, sizeof p, "%s/%s", base, e->name);
        if (lstat(p, &st) != 0)
            broken("cf_listdir listed \"%s\", which is not there", e->name);
        char kind = S_ISREG(st.st_mode) ? 'f' : S_ISDIR(st.st_mode) ? 'd' : 'o';
        if (e->kind != kind)
            broken("cf_listdir: \"%s\" is '%c', it says '%c'", e->name, kind, e->kind);
        if (kind == 'f' && e->size != (int64_t)st.st_size)
            broken("cf_listdir: \"%s\" has %lld bytes, it says %lld", e->name, (long long)st.st_size,
                   (long long)e->size);
        if (i > 0 && !b2_before(&list[i - 1], e))
            broken("cf_listdir: \"%s\" (%c) listed before \"%s\" (%c)", list[i - 1].name, list[i - 1].kind, e->name,
                   e->kind);
    }
    cf_dirents_free(list, n);
}

/* The next NUL-separated field of the input. */
static const uint8_t *field(const uint8_t **p, const uint8_t *end, size_t *len)
{
    const uint8_t *start = *p;
    const uint8_t *nul = start < end ? memchr(start, 0, (size_t)(end - start)) : NULL;
    *len = nul ? (size_t)(nul - start) : (size_t)(end - start);
    *p = nul ? nul + 1 : end;
    return start;
}

static void check_part(unsigned flags, const uint8_t *name, size_t nlen, const uint8_t *tag, size_t tlen)
{
    /* the part file's name: a fixture's (planted link, FIFO, directory,
     * existing file) or one made of the input's bytes by the sanitiser */
    char path[512], err[CF_ERRLEN];
    char *clean_name = NULL;
    const char *leaf;
    int planted = flags & 7;
    if (planted < NFIXTURES) {
        leaf = FIXTURES[planted];
    } else {
        clean_name = cf_sanitize_filename((const char *)name, nlen);
        leaf = clean_name ? clean_name : "part";
        for (int i = 0; i < NFIXTURES; i++)
            if (strcmp(leaf, FIXTURES[i]) == 0)
                leaf = "part"; /* the fixtures are tried by their index */
    }
    snprintf(path, sizeof path, "%s/%s", base, leaf);
    struct stat before;
    int existed = lstat(path, &before) == 0;
    int append = (flags >> 3) & 1;
    cf_tmpfile f;
    int rc = cf_tmpfile_open_part(&f, path, append, err, sizeof err);
    int regular = !existed || S_ISREG(before.st_mode);
    if (regular && rc != 0)
        broken("open_part(%s) refused a regular file: %s", leaf, err);
    if (!regular && rc == 0)
        broken("open_part(%s) opened a %s", leaf, S_ISLNK(before.st_mode) ? "symbolic link" : "non-regular file");
    if (rc != 0) {
        if (f.fd != -1 || f.path != NULL)
            broken("open_part failed but left fd %d / path", f.fd);
        free(clean_name);
        return;
    }
    struct stat st;
    if (fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode))
        broken("open_part gave a descriptor that is not a regular file");
    if (st.st_size != (append && existed ? before.st_size : 0))
        broken("open_part(append=%d) left %lld bytes of %lld", append, (long long)st.st_size,
               (long long)(existed ? before.st_size : 0));
    char buf[300];
    if (cf_file_tag(path, buf, sizeof buf) >= 0 && !existed)
        broken("a new part file has a tag");
    if (xattrs && tlen > 0) {
        if (cf_tmpfile_set_tag(&f, (const char *)tag, tlen) != 0) {
            if (tlen < 1024)
                broken("set_tag of %zu bytes failed: %s", tlen, strerror(errno));
        } else {
            char *back = malloc(tlen);
            long n = cf_file_tag(path, back, tlen);
            if (n != (long)tlen || memcmp(back, tag, tlen) != 0)
                broken("the tag of %zu bytes read back as %ld bytes", tlen, n);
            char small[8];
            size_t cap = tlen > 1 ? 1 + (tlen - 2) % (sizeof small - 1) : 0; /* 1..7, < tlen */
            if (tlen > 1 && cf_file_tag(path, small, cap) >= 0)
                broken("a tag of %zu bytes fit in %zu", tlen, cap);
            free(back);
        }
    }
    if (cf_tmpfile_write(&f, tag, tlen, err, sizeof err) != 0)
        broken("writing the part file: %s", err);
    if (planted == 3) { /* base/file is a fixture: leave it as it was */
        cf_tmpfile_discard(&f);
        make_fixtures();
    } else if (flags & 16) {
        cf_tmpfile_keep(&f);
    } else {
        cf_tmpfile_discard(&f);
    }
    free(clean_name);
}

static int has_dot_component(const char *rel)
{
    const char *p = rel;
    while (*p) {
        while (*p == '/')
            p++;
        size_t n = strcspn(p, "/");
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return 1;
        p += n;
    }
    return 0;
}

static void check_mkdirs(const uint8_t *rel_bytes, size_t len)
{
    char *rel = malloc(len + 1);
    memcpy(rel, rel_bytes, len);
    rel[len] = '\0';
    char err[CF_ERRLEN];
    int rc = cf_mkdirs(base, rel, 0, err, sizeof err);
    if (rc == 0 && has_dot_component(rel))
        broken("cf_mkdirs accepted \"%s\" with a dot component", rel);
    if (rc == 0) {
        /* every component is a directory reached without a link */
        int fd = open(base, O_RDONLY | O_DIRECTORY);
        char *save = NULL;
        for (char *c = strtok_r(rel, "/", &save); c && fd >= 0; c = strtok_r(NULL, "/", &save)) {
            int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
            if (next < 0)
                broken("cf_mkdirs succeeded but \"%s\" is not a directory below base", c);
            close(fd);
            fd = next;
        }
        if (fd >= 0)
            close(fd);
    }
    free(rel);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = data[0];
    const uint8_t *p = data + 1, *end = data + size;
    size_t tlen, nlen, rlen;
    const uint8_t *tag = field(&p, end, &tlen);
    const uint8_t *name = field(&p, end, &nlen);
    const uint8_t *rel = field(&p, end, &rlen);

    check_part(flags, name, nlen, tag, tlen);
    check_contained("after open_part");
    check_mkdirs(rel, rlen);
    check_contained("after cf_mkdirs");
    check_listing();

    int fd = open(base, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        abort();
    clean(fd, 1);
    close(fd);
    check_contained("after cleaning");
    return 0;
}
