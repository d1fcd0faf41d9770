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
 * previous value.  Returns 0, or -1 on a malformed status line or no memory. */
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

/* The file name a Content-Disposition value names (RFC 6266): filename*
 * (RFC 8187, UTF-8 or ISO-8859-1, percent-decoded) preferred over filename
 * (quoted-string or token; also the lenient unquoted forms seen in the wild),
 * then passed through cf_sanitize_filename.  malloc'd, or NULL when none. */
char *cf_disposition_filename(const char *value);
/* A name safe to create inside a directory: the last path component after
 * '/' and '\\', no NUL or control bytes (< 0x20, 0x7f), no leading/trailing
 * blanks or trailing dots, never "." or "..", at most 255 bytes (shortened
 * keeping the extension and valid UTF-8).  malloc'd, or NULL if nothing is
 * left. */
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

/* ---- transfer.c: the pull-driven transfer engine on curl multi ---------- */

/* Error kinds, shared by the engine and the file helpers. */
typedef enum cf_kind {
    CF_OK = 0,
    CF_ENETWORK,  /* connection failed or dropped */
    CF_ETIMEOUT,  /* connect, whole-transfer or stall timeout */
    CF_ETLS,      /* certificate or handshake failure */
    CF_EPROTOCOL, /* malformed answer, refused scheme, too many redirects */
    CF_ECANCELED, /* closed by the caller */
    CF_EIO,       /* disk */
    CF_ENOMEM,
    CF_EEXISTS    /* target exists and must not be replaced */
} cf_kind;
const char *cf_kind_name(cf_kind k); /* "network", "timeout", ... */

#define CF_ERRLEN 256

/* One connection cache (and DNS cache) shared by every transfer made with
 * it, so sequential requests to one host reuse the connection. */
typedef struct cf_session cf_session;
cf_session *cf_session_new(void);
void cf_session_free(cf_session *s); /* only once no transfer uses it */

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
} cf_request;

typedef struct cf_transfer cf_transfer;

/* Sets the transfer up and runs it until the final response's headers
 * arrived (or it ended or failed).  Returns NULL only when out of memory.
 * Check cf_transfer_failed() afterwards. */
cf_transfer *cf_transfer_open(cf_session *s, const cf_request *req);
/* Non-zero kind when the transfer failed; the message is kept. */
cf_kind cf_transfer_failed(const cf_transfer *t, const char **message);
const cf_headers *cf_transfer_headers(const cf_transfer *t);
const char *cf_transfer_url(const cf_transfer *t); /* effective URL or NULL */
/* Adds digests; only before the first body byte was taken. 0 / -1 */
int cf_transfer_add_hash(cf_transfer *t, unsigned mask);
/* Runs the transfer until body bytes are buffered; *data points at them.
 * Returns the number of bytes ready, 0 at the clean end of the body, or -1
 * on failure (cf_transfer_failed tells).  Bytes stay until consumed. */
long cf_transfer_peek(cf_transfer *t, const char **data);
/* The same without waiting: CF_AGAIN when no byte is ready yet. */
#define CF_AGAIN (-2)
long cf_transfer_peek_nowait(cf_transfer *t, const char **data);
/* Waits for any of the transfers (all of one session) to make progress, and
 * fails those whose stall timeout ran out.  0 / -1 */
int cf_transfers_wait(cf_transfer *const *ts, size_t n);
/* Counts bytes the caller already holds (a part file from an earlier run)
 * as received and hashes them, before the body of a ranged resume. */
void cf_transfer_prefeed(cf_transfer *t, const void *data, size_t len);
void cf_transfer_consume(cf_transfer *t, size_t n);
/* After a failure: the same request again on a new connection, normally
 * with a Range for the bytes not yet accepted.  Buffer, digests and counts
 * carry on; no body byte is taken before the next peek, so the caller can
 * check the new headers first.  0 / -1 (cf_transfer_failed tells). */
int cf_transfer_resume(cf_transfer *t, const cf_request *req);
int64_t cf_transfer_accepted(const cf_transfer *t); /* bytes taken from the network */
int64_t cf_transfer_received(const cf_transfer *t); /* bytes consumed so far */
const cf_digests *cf_transfer_digests(const cf_transfer *t);
/* Aborts the transfer if running and releases the connection and buffer;
 * headers, digests and counts stay readable.  Idempotent. */
void cf_transfer_close(cf_transfer *t);
void cf_transfer_free(cf_transfer *t);

/* ---- files.c: atomic saves ------------------------------------------------ */

/* A temporary file created (O_EXCL) in the target's directory. */
typedef struct cf_tmpfile {
    int fd;          /* -1 once closed */
    char *path;      /* NULL once committed or discarded */
} cf_tmpfile;

int cf_tmpfile_create(cf_tmpfile *f, const char *target, char *err, size_t errlen);
int cf_tmpfile_write(cf_tmpfile *f, const void *data, size_t len, char *err, size_t errlen);
/* fsyncs, then renames onto target (refusing to replace it unless
 * overwrite) and fsyncs the directory.  Returns CF_OK, CF_EEXISTS or CF_EIO;
 * on failure the temporary file is removed. */
cf_kind cf_tmpfile_commit(cf_tmpfile *f, const char *target, int overwrite, char *err, size_t errlen);
void cf_tmpfile_discard(cf_tmpfile *f); /* closes and unlinks; idempotent */
/* `<target>.part` for resumable saves: opened for appending (continue) or
 * truncated; kept on transport failures. */
int cf_tmpfile_open_part(cf_tmpfile *f, const char *path, int append, char *err, size_t errlen);
int cf_tmpfile_pwrite(cf_tmpfile *f, const void *data, size_t len, int64_t offset, char *err, size_t errlen);
void cf_tmpfile_keep(cf_tmpfile *f); /* closes, leaves the file in place */

#endif
