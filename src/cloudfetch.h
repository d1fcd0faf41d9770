/*
 * cloudfetch core: a small C library that streams HTTP(S) bodies with libcurl,
 * parses response headers and hashes bytes as they arrive.  Nothing here knows
 * about Lua; the binding (lbinding.c) is the only file that includes lua.h.
 */
#ifndef CLOUDFETCH_H
#define CLOUDFETCH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- headers.c: response header store and header-value parsers ---------- */

typedef struct cf_header {
    char *name;  /* as received (case kept), NUL-terminated */
    char *value; /* trimmed of surrounding blanks, NUL-terminated */
} cf_header;

typedef struct cf_headers {
    cf_header *items;
    size_t n, cap;
    int status;      /* from the last status line, 0 before one arrived */
    int http_major;  /* 1 or 2 (HTTP/1.x or HTTP/2) */
    int complete;    /* the blank line after the last status line arrived */
} cf_headers;

void cf_headers_init(cf_headers *h);
void cf_headers_free(cf_headers *h);       /* frees items; h can be re-initialised */
/* Feeds one raw header line as libcurl delivers it (with CRLF).  A status
 * line ("HTTP/...") clears earlier headers (redirects, 100-continue); the
 * blank line sets complete.  Folded continuation lines are appended to the
 * previous value; a NUL, CR or LF inside a line is read as SP.  Returns 0,
 * or -1 on a malformed status line or no memory. */
int cf_headers_feed(cf_headers *h, const char *line, size_t len);
/* First value of `name` (case-insensitive), or NULL. */
const char *cf_headers_get(const cf_headers *h, const char *name);

/* Parsers of single header values.  Each returns 0 on success, -1 when the
 * value is malformed (outputs untouched). */
int cf_parse_status_line(const char *line, size_t len, int *major, int *status);
int cf_parse_content_length(const char *v, int64_t *out);
/* "bytes first-last/total" or "bytes first-last/ *" (total = -1) or
 * "bytes * /total" (unsatisfied: first = last = -1). */
int cf_parse_content_range(const char *v, int64_t *first, int64_t *last, int64_t *total);
/* delta-seconds or an HTTP-date relative to `now`; past dates give 0. */
int cf_parse_retry_after(const char *v, time_t now, double *seconds);

/* ---- disposition.c: Content-Disposition and safe file names ------------ */

/* The file name a Content-Disposition value names, read strictly as RFC 6266
 * and RFC 8187 say: a value outside RFC 6266's grammar (no disposition type,
 * a missing or trailing ';', a token with spaces, commas or non-ASCII, an
 * unterminated quote, a parameter given twice...) names nothing.  filename*
 * (charset UTF-8 or ISO-8859-1, well-formed %XX, decoding cleanly) is
 * preferred; an unusable one is ignored and filename (token or
 * quoted-string; raw octets above 0x7f as UTF-8 when valid, else
 * ISO-8859-1) used instead.  The result has passed cf_sanitize_filename.
 * malloc'd, or NULL when none. */
char *cf_disposition_filename(const char *value);
/* A name safe to create inside a directory: the last path component after
 * '/' and '\\', valid UTF-8 (other bytes become '_'), no control characters
 * (C0, DEL, C1), no bidi controls, zero-width or other invisible format
 * characters, no line/paragraph separators (all removed, not replaced), no
 * leading/trailing blanks or trailing dots, never "." or "..", at most 255
 * bytes (shortened keeping the extension and valid UTF-8).  malloc'd, or
 * NULL if nothing is left. */
char *cf_sanitize_filename(const char *name, size_t len);

/* ---- digest.c: incremental digests through OpenSSL EVP ------------------ */

enum { CF_SHA1 = 1, CF_SHA256 = 2, CF_MD5 = 4 };
#define CF_HEX_MAX 65 /* 64 hex digits of SHA-256 + NUL */

typedef struct cf_digests cf_digests;
int cf_digest_alg(const char *name);            /* "sha1" -> CF_SHA1; 0 if unknown */
const char *cf_digest_name(int alg);
cf_digests *cf_digests_new(unsigned mask);      /* NULL on failure */
unsigned cf_digests_mask(const cf_digests *d);
int cf_digests_update(cf_digests *d, const void *data, size_t len); /* 0 / -1 */
/* Lowercase hex of everything fed so far (does not end the digest). 0 / -1 */
int cf_digests_hex(const cf_digests *d, int alg, char out[CF_HEX_MAX]);
void cf_digests_free(cf_digests *d);

/* ---- error kinds, shared by every part of the core ---------------------- */

typedef enum cf_kind {
    CF_OK = 0,
    CF_ENETWORK,  /* connection failed or dropped */
    CF_ETIMEOUT,  /* connect, whole-transfer or stall timeout */
    CF_ETLS,      /* certificate or handshake failure */
    CF_EPROTOCOL, /* malformed answer, refused scheme, too many redirects */
    CF_ECANCELED, /* closed by the caller */
    CF_EIO,       /* disk */
    CF_ENOMEM,
    CF_EEXISTS,   /* target exists and must not be replaced */
    CF_ERESOLVE,  /* the host name does not resolve (a network error not worth retrying) */
    CF_EREFUSED,  /* the connection was refused (a network error worth only quick retries) */
    CF_ENOFILE    /* no descriptor for a socket: the process (ulimit -n) or the system is out of them */
} cf_kind;
const char *cf_kind_name(cf_kind k); /* "network", "timeout", ... */

#define CF_ERRLEN 256

/* ---- session.c: the event engine ----------------------------------------- */

/* One engine per Lua state (or C program): a curl multi handle driven
 * through its socket interface, an epoll descriptor holding the transfers'
 * sockets, curl's timer, and the stall clocks of the transfers.  Transfers
 * of one session share connections (keep-alive, TLS sessions) and DNS.
 * Nothing here blocks except cf_session_run with a timeout. */
typedef struct cf_session cf_session;
cf_session *cf_session_new(void);
void cf_session_free(cf_session *s); /* aborts and forgets what still runs */
/* A descriptor that becomes readable when the engine has work: socket I/O
 * of a transfer, or a finished background job (cf_commit). */
int cf_session_fd(const cf_session *s);
/* Milliseconds until cf_session_run is due even without I/O (curl's timer,
 * a stall clock running out); 0: due now; -1: only I/O can wake it. */
long cf_session_timeout(cf_session *s);
/* Waits at most timeout_ms (-1: no limit) for I/O or a timer, then lets
 * libcurl act on what is ready, collects finished transfers and fails
 * stalled ones.  Returns 0, or -1 if the engine itself broke. */
int cf_session_run(cf_session *s, long timeout_ms);
/* Ids (cf_transfer_id) of transfers that had news (headers, body bytes,
 * their end or failure) since the last call, at most max of them; returns
 * how many.  A scheduler wakes exactly the tasks waiting on these instead
 * of asking every transfer. */
size_t cf_session_take_ready(cf_session *s, int64_t *ids, size_t max);

/* ---- transfer.c: one HTTP(S) request and its body ------------------------ */

typedef struct cf_request {
    const char *url;
    const char *method;            /* "GET", "POST", "HEAD", "PUT", "DELETE" */
    const char *const *headers;    /* "Name: value" strings, NULL-terminated, or NULL */
    const char *body;              /* request body or NULL */
    size_t body_len;
    int64_t range_first;           /* < 0: no Range header */
    int64_t range_last;            /* < 0: to the end */
    long connect_timeout_ms;       /* 0: libcurl's default */
    long timeout_ms;               /* 0: none */
    long stall_timeout_ms;         /* no byte for that long: timeout; 0: none */
    size_t buffer_size;            /* bytes held before the transfer pauses */
    int verify_tls;
    const char *ca_file, *ca_path, *proxy, *user_agent; /* NULL: default */
    int follow_redirects;
    long max_redirects;
    unsigned hash_mask;            /* CF_SHA1 | CF_SHA256 | CF_MD5 */
    int hash_thread;               /* big bodies may be hashed on the session's hasher thread */
} cf_request;

typedef struct cf_transfer cf_transfer;

/* Sets the request up and hands it to the engine; nothing waits.  Returns
 * NULL only when out of memory; check cf_transfer_failed().  The transfer
 * is "ready" (cf_transfer_ready) once the final response's headers are in,
 * or it failed or ended. */
cf_transfer *cf_transfer_start(cf_session *s, const cf_request *req);
/* Non-zero when a consumer waiting on t can go on: before the body was
 * asked for (first peek), once the headers are in; after it, once bytes are
 * buffered, or the body ended, or the transfer failed. */
int cf_transfer_ready(const cf_transfer *t);
/* Runs the engine until one of the transfers (all of one session) is ready
 * or timeout_ms passed (-1: no limit).  Returns 1 when one is ready, 0 on
 * timeout, -1 if the engine broke. */
int cf_transfers_wait(cf_session *s, cf_transfer *const *ts, size_t n, long timeout_ms);
/* cf_transfer_start, then waits for the headers (a blocking convenience). */
cf_transfer *cf_transfer_open(cf_session *s, const cf_request *req);
/* Non-zero kind when the transfer failed; the message is kept. */
cf_kind cf_transfer_failed(const cf_transfer *t, const char **message);
int64_t cf_transfer_id(const cf_transfer *t);
const cf_headers *cf_transfer_headers(const cf_transfer *t);
const char *cf_transfer_url(const cf_transfer *t); /* effective URL or NULL */
/* Adds digests; only before the first body byte was taken. 0 / -1 */
int cf_transfer_add_hash(cf_transfer *t, unsigned mask);
/* Stops computing digests (someone else hashes the body: a parallel
 * save's ranged file); only before the first body byte was taken. 0 / -1 */
int cf_transfer_drop_hash(cf_transfer *t);
/* Body bytes buffered now; *data points at them.  Never waits: returns the
 * number of bytes ready, 0 at the clean end of the body, -1 on failure
 * (cf_transfer_failed tells), or CF_AGAIN when nothing is there yet.  The
 * first call releases the body (bytes are taken from the network only from
 * then on).  Bytes stay until consumed. */
#define CF_AGAIN (-2)
long cf_transfer_peek(cf_transfer *t, const char **data);
/* cf_transfer_peek that waits (runs the engine) instead of CF_AGAIN. */
long cf_transfer_peek_wait(cf_transfer *t, const char **data);
void cf_transfer_consume(cf_transfer *t, size_t n);
/* Counts bytes the caller already holds (a part file from an earlier run)
 * as received and hashes them, before the body of a ranged resume. */
void cf_transfer_prefeed(cf_transfer *t, const void *data, size_t len);
/* After a failure: the same request again on a new connection, normally
 * with a Range for the bytes not yet accepted.  Buffer, digests and counts
 * carry on; no body byte is taken before the next peek, so the caller can
 * check the new headers first.  Like cf_transfer_start it does not wait:
 * the transfer is ready again once the new headers are in.  0 / -1 */
int cf_transfer_resume(cf_transfer *t, const cf_request *req);
int64_t cf_transfer_accepted(const cf_transfer *t); /* bytes taken (network and prefeed) */
int64_t cf_transfer_received(const cf_transfer *t); /* bytes consumed so far */
const cf_digests *cf_transfer_digests(cf_transfer *t); /* waits for the hasher thread */
/* Aborts the transfer if running and releases the connection and buffer;
 * headers, digests and counts stay readable.  Idempotent. */
void cf_transfer_close(cf_transfer *t);
void cf_transfer_free(cf_transfer *t);

/* ---- files.c: atomic saves, part files, hashing files --------------------- */

/* A temporary file created (O_EXCL) in the target's directory. */
typedef struct cf_tmpfile {
    int fd;          /* -1 once closed */
    char *path;      /* NULL once committed or discarded */
} cf_tmpfile;

int cf_tmpfile_create(cf_tmpfile *f, const char *target, char *err, size_t errlen);
int cf_tmpfile_write(cf_tmpfile *f, const void *data, size_t len, char *err, size_t errlen);
int cf_tmpfile_pwrite(cf_tmpfile *f, const void *data, size_t len, int64_t offset, char *err, size_t errlen);
/* Writes all of data to fd, at offset (pwrite) or, when offset < 0, at the
 * file position (write, which honours O_APPEND); 0, or -1 with errno. */
int cf_write_full(int fd, const void *data, size_t len, int64_t offset);
/* Reads bytes [from, to) of fd back through buf (bufsize at a time) into
 * d; 0, or -1 with *errnum: errno, 0 when the file is shorter, ENOMEM when
 * the digest update failed. */
int cf_hash_range(cf_digests *d, int fd, char *buf, size_t bufsize, int64_t from, int64_t to, int *errnum);
/* Optionally fsyncs (sync), then renames onto target (refusing to replace
 * it unless overwrite) and, when sync, fsyncs the directory.  Returns CF_OK,
 * CF_EEXISTS or CF_EIO; on failure the temporary file is removed. */
cf_kind cf_tmpfile_commit(cf_tmpfile *f, const char *target, int overwrite, int sync, char *err, size_t errlen);
void cf_tmpfile_discard(cf_tmpfile *f); /* closes and unlinks; idempotent */
/* `<target>.part` for resumable saves: opened for appending (continue) or
 * truncated; kept on transport failures.  Never follows a symbolic link and
 * opens only a regular file. */
int cf_tmpfile_open_part(cf_tmpfile *f, const char *path, int append, char *err, size_t errlen);
void cf_tmpfile_keep(cf_tmpfile *f); /* closes, leaves the file in place */
/* Sets f's modification time (seconds since the epoch) before it is
 * committed, so the saved file appears with it.  0 / -1 */
int cf_tmpfile_set_mtime(cf_tmpfile *f, double seconds);
/* The entity a part file holds (an extended attribute): set on f, read by path. */
int cf_tmpfile_set_tag(cf_tmpfile *f, const char *tag, size_t len);
/* Copies the tag into buf (at most buflen bytes); its length, or -1 when none. */
long cf_file_tag(const char *path, char *buf, size_t buflen);
/* Streams what t has buffered into f (appending).  Never waits: returns
 * the bytes written (> 0), 0 at the clean end of the body, CF_AGAIN when
 * nothing is buffered, -1 when the transfer failed (cf_transfer_failed
 * tells) or -3 when the write failed (err says why). */
#define CF_EWRITE (-3)
long cf_tmpfile_pump(cf_tmpfile *f, cf_transfer *t, char *err, size_t errlen);
/* From now on the write callback writes t's body to f itself (no copy
 * through the buffer), when nothing is buffered: its next byte at file
 * offset `at`, and no more than up to offset `end` (the rest is dropped);
 * at < 0: at the end of the file, with no end.  1 when it does (or already
 * did), 0 when not (yet). */
int cf_transfer_sink(cf_transfer *t, cf_tmpfile *f, int64_t at, int64_t end);
/* Bytes the write callback wrote to the sink since the last call. */
int64_t cf_transfer_sunk(cf_transfer *t);
/* Feeds the first n bytes of the file at path to t (cf_transfer_prefeed),
 * at most max bytes per call from offset *done on: 1 while more is left,
 * 0 when all n were fed, -1 on a read error (err). */
int cf_transfer_prefeed_file(cf_transfer *t, int fd, int64_t n, int64_t *done, size_t max, char *err, size_t errlen);

/* Creates the directories of `rel` ("a/b/c") below `base`, component by
 * component.  Unless `follow`, never through a symbolic link (a link where
 * a directory should be is an error), so nothing lands outside base.
 * 0 / -1 (err). */
int cf_mkdirs(const char *base, const char *rel, int follow, char *err, size_t errlen);

/* One entry of a directory listing. */
typedef struct cf_dirent {
    char *name;
    char kind;     /* 'f' regular file, 'd' directory, 'o' anything else (links included) */
    int64_t size;
    double mtime;  /* seconds since the epoch */
} cf_dirent;
/* The entries of a directory (not "." and ".."; links not followed), sorted
 * the way B2 sorts names: by bytes, a directory compared as its name
 * followed by '/', so a depth-first walk yields paths in B2's order.
 * malloc'd (free with cf_dirents_free), or NULL with err. */
cf_dirent *cf_listdir(const char *path, size_t *n, char *err, size_t errlen);
void cf_dirents_free(cf_dirent *e, size_t n);

/* Incremental hashing of a local file, in steps so an event loop can run
 * between them. */
typedef struct cf_filehash cf_filehash;
cf_filehash *cf_filehash_open(const char *path, unsigned mask, char *err, size_t errlen);
/* Hashes up to max bytes: 1 while more is left, 0 at the end, -1 on error. */
int cf_filehash_step(cf_filehash *h, size_t max, char *err, size_t errlen);
const cf_digests *cf_filehash_digests(const cf_filehash *h);
void cf_filehash_free(cf_filehash *h);

/* ---- commit.c: finishing saves off the event loop's thread --------------- */

/* fsync + rename + directory fsync cost ~1 ms each on a journaling file
 * system; a one-thread group would stall on every one.  A commit job takes
 * the temporary file over and runs cf_tmpfile_commit on a worker thread of
 * the session; cf_session_fd becomes readable when one finished. */
typedef struct cf_commit cf_commit;
cf_commit *cf_commit_start(cf_session *s, cf_tmpfile *f, const char *target, int overwrite, int sync);
int cf_commit_done(cf_commit *c);
/* After done: CF_OK, CF_EEXISTS or CF_EIO (with a message). */
cf_kind cf_commit_result(cf_commit *c, const char **message);
/* Before the worker took it: the file is discarded instead of committed. */
void cf_commit_cancel(cf_commit *c);
void cf_commit_free(cf_commit *c); /* also while running: the worker finishes it */

/* ---- ranged.c: a file filled by ranged parts, hashed in order ------------- */

/* The parts of a parallel save land anywhere in the file; the whole-file
 * digests are computed over the contiguous prefix as it grows: inline,
 * bytes that arrive at the prefix's end are hashed from memory, bytes that
 * arrived earlier further on are read back (from the page cache) when the
 * prefix reaches them; with hash_thread (and 2 cores, 1 MiB or more), a
 * hasher thread of its own reads the prefix back and hashes it.  No second
 * pass over the file at the end. */
typedef struct cf_ranged cf_ranged;
cf_ranged *cf_ranged_new(cf_tmpfile *f, int64_t total, unsigned hash_mask, int hash_thread);
/* Writes what t has buffered at *pos (advancing it), never past last.
 * Returns bytes written, 0 when the part is complete (*pos > last),
 * CF_AGAIN, -1 (transfer failed), CF_EWRITE (err), or CF_ESHORT when the
 * body ended before last. */
#define CF_ESHORT (-4)
long cf_ranged_pump(cf_ranged *r, cf_transfer *t, int64_t *pos, int64_t last, char *err, size_t errlen);
/* Reads back and hashes at most max bytes the prefix has reached (with a
 * thread: waits until it did): 1 while more is waiting, 0 when the digests
 * cover every contiguous byte written, -1 on a read error (err).  The pump
 * does this by itself, bounded (with a thread: hands the prefix over). */
int cf_ranged_catch_up(cf_ranged *r, size_t max, char *err, size_t errlen);
int64_t cf_ranged_hashed(const cf_ranged *r); /* length of the hashed prefix */
/* The digests (with a thread: once it is idle). */
const cf_digests *cf_ranged_digests(cf_ranged *r);
void cf_ranged_free(cf_ranged *r);

/* ---- base64.c ------------------------------------------------------------- */
/* Standard base64 of len bytes into out (4 * ((len + 2) / 3) + 1 bytes);
 * returns the length written (without the NUL). */
size_t cf_base64(const void *data, size_t len, char *out);

#endif
