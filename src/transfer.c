/*
 * One transfer: a libcurl easy handle in the session's multi handle.  Body
 * bytes are hashed as they arrive and kept in a bounded buffer; when it is
 * full the write callback pauses the transfer, and the consumer's next peek
 * resumes it.  Nothing here waits except the *_wait conveniences, which run
 * the session's engine.  No callback of ours ever calls out of C, so nothing
 * can unwind through curl.
 */
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECV_BUFFER (256L * 1024) /* CURLOPT_BUFFERSIZE: fast hashing in the write path */
#define BUFFER_START (64 * 1024)  /* the body buffer's first size; it grows up to buffer_size */

const char *cf_kind_name(cf_kind k)
{
    switch (k) {
    case CF_OK: return "ok";
    case CF_ENETWORK: return "network";
    case CF_ERESOLVE: return "network";
    case CF_EREFUSED: return "network";
    case CF_ENOFILE: return "network";
    case CF_ETIMEOUT: return "timeout";
    case CF_ETLS: return "tls";
    case CF_EPROTOCOL: return "protocol";
    case CF_ECANCELED: return "canceled";
    case CF_EIO: return "io";
    case CF_ENOMEM: return "memory";
    case CF_EEXISTS: return "io";
    }
    return "network";
}

static void fail(cf_transfer *t, cf_kind kind, const char *message)
{
    if (t->kind)
        return; /* the first failure is the one that explains */
    t->kind = kind;
    snprintf(t->message, sizeof t->message, "%s", message);
}

static cf_kind kind_of(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return CF_ETIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
        return CF_ETLS;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_RANGE_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return CF_EPROTOCOL;
    case CURLE_ABORTED_BY_CALLBACK:
        return CF_ECANCELED;
    case CURLE_OUT_OF_MEMORY:
        return CF_ENOMEM;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return CF_ERESOLVE;
    case CURLE_COULDNT_CONNECT:
        return CF_EREFUSED;
    default:
        return CF_ENETWORK;
    }
}

static void fail_curl(cf_transfer *t, CURLcode rc)
{
    /* curl reports a socket it could not open as "Couldn't connect to
     * server", which reads as the server's fault and worth retrying. */
    int e = t->sock_errno;
    if (rc == CURLE_COULDNT_CONNECT && (e == EMFILE || e == ENFILE)) {
        char msg[CF_ERRLEN];
        snprintf(msg, sizeof msg, "cannot open a connection: %s (%s)", strerror(e),
                 e == EMFILE ? "the process's descriptor limit, ulimit -n" : "the system's limit");
        fail(t, CF_ENOFILE, msg);
        return;
    }
    if (rc == CURLE_COULDNT_CONNECT && (e == ENOBUFS || e == ENOMEM)) {
        fail(t, CF_ENOMEM, "cannot open a connection: out of memory");
        return;
    }
    fail(t, kind_of(rc), t->curl_error[0] ? t->curl_error : curl_easy_strerror(rc));
}

static size_t on_header(char *line, size_t size, size_t n, void *ud)
{
    cf_transfer *t = ud;
    size_t len = size * n;
    t->last_activity = cf_now_ms();
    if (cf_headers_feed(&t->headers, line, len) != 0) {
        fail(t, CF_EPROTOCOL, "malformed response header");
        return 0;
    }
    if (t->headers.complete)
        cf_session_notify(t->session, t);
    return len;
}

/* Every byte written is in the digests, and the hasher thread leaves t
 * alone (see hasher.c). */
static void settle(cf_transfer *t)
{
    cf_hash_settle(t);
    if (t->hj.failed && t->sink_fd >= 0) {
        char m[CF_ERRLEN];
        snprintf(m, sizeof m, "cannot read %s back to hash it", t->sink_path);
        fail(t, CF_EIO, m);
    } else if (t->hj.failed) {
        fail(t, CF_ENOMEM, "digest update failed");
    }
}

/* A body buffer from the session's pool (the last one returned), if any. */
static void take_buffer(cf_transfer *t)
{
    cf_session *s = t->session;
    if (s->nbufs == 0)
        return;
    s->nbufs--;
    t->buf = s->bufs[s->nbufs];
    t->cap = s->bufcaps[s->nbufs];
    s->buf_bytes -= t->cap;
}

static void give_buffer(cf_transfer *t)
{
    cf_session *s = t->session;
    settle(t);
    if (t->buf && !s->closed && s->nbufs < CF_BUF_POOL && s->buf_bytes + t->cap <= CF_BUF_POOL_BYTES) {
        s->bufs[s->nbufs] = t->buf;
        s->bufcaps[s->nbufs] = t->cap;
        s->nbufs++;
        s->buf_bytes += t->cap;
    } else {
        free(t->buf);
    }
    t->buf = NULL;
    t->cap = 0;
    t->r = t->w; /* nothing left to read */
}

size_t cf_ring_span(const cf_transfer *t, uint64_t p, uint64_t end, size_t *at)
{
    *at = (size_t)((p - t->origin) % t->cap);
    size_t n = t->cap - *at;
    return (uint64_t)n > end - p ? (size_t)(end - p) : n;
}

/* Room for `need` bytes: a buffer from the session's pool, grown as the
 * body needs (doubling from BUFFER_START up to buffer_size; one write
 * larger than that is held anyway), so a small body never costs a big
 * allocation.  The unread bytes move to the front of the new buffer. */
static int grow(cf_transfer *t, size_t need)
{
    settle(t); /* the hasher thread must not be reading the old buffer */
    if (!t->buf)
        take_buffer(t);
    if (t->cap >= need)
        return 0;
    size_t cap = t->cap ? 2 * t->cap : BUFFER_START;
    if (cap > t->limit)
        cap = t->limit;
    if (cap < need)
        cap = need;
    char *p = malloc(cap);
    if (!p)
        return -1;
    size_t n = 0;
    for (uint64_t pos = t->r; pos < t->w;) {
        size_t at, k = cf_ring_span(t, pos, t->w, &at);
        memcpy(p + n, t->buf + at, k);
        n += k;
        pos += k;
    }
    free(t->buf);
    t->buf = p;
    t->cap = cap;
    t->origin = t->r;
    return 0;
}

/* Copies len bytes in at position w (in two pieces where the ring wraps). */
static void ring_put(cf_transfer *t, const char *data, size_t len)
{
    size_t at, k = cf_ring_span(t, t->w, t->w + len, &at);
    memcpy(t->buf + at, data, k);
    memcpy(t->buf, data + k, len - k);
    t->w += len;
}

/* Writes the bytes up to the sink's end to its file (see
 * cf_transfer_sink); returns how many, or -1 when the write failed. */
static long sink_body(cf_transfer *t, const char *data, size_t len)
{
    size_t n = t->sink_end - t->w < len ? (size_t)(t->sink_end - t->w) : len;
    if (cf_write_full(t->sink_fd, data, n, (int64_t)(t->w - t->sink_base)) != 0) {
        char m[CF_ERRLEN];
        snprintf(m, sizeof m, "cannot write %s: %s", t->sink_path, strerror(errno));
        fail(t, CF_EIO, m);
        return -1;
    }
    t->w += n;
    t->r = t->w; /* nothing is buffered */
    t->accepted += (int64_t)n;
    t->received += (int64_t)n;
    cf_hash_written(t, data, n);
    return (long)n;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    cf_transfer *t = ud;
    size_t len = size * n;
    t->body_seen = 1;
    t->last_activity = cf_now_ms();
    cf_session_notify(t->session, t);
    if (!t->released || len == 0) {
        /* Nothing is taken (or hashed) before the consumer asks: the caller
         * may still add digests after the headers arrived. */
        if (len == 0)
            return 0;
        t->paused = 1;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (t->hmode == CF_HASH_UNDECIDED) {
        int64_t cl = -1;
        const char *v = cf_headers_get(&t->headers, "content-length");
        if (!v || cf_parse_content_length(v, &cl) != 0)
            cl = -1;
        cf_hash_decide(t, cl);
    }
    size_t sunk = 0;
    if (t->sink_fd >= 0 && t->w < t->sink_end) {
        long k = sink_body(t, data, len);
        if (k < 0)
            return 0;
        if ((size_t)k == len)
            return len;
        /* Past the sink's end (a part's last byte): the rest waits in the
         * buffer, as it would for a reader, and holds the transfer once
         * that is full.  The buffer is empty here, so nothing pauses now
         * (a pause would have curl hand the written bytes again). */
        sunk = (size_t)k;
        data += sunk;
        len -= sunk;
    }
    uint64_t r = t->r, h = cf_hash_mark(t);
    if (r == t->w && h == r)
        t->origin = r; /* empty: start at the front, so small bodies stay in one piece */
    size_t used = (size_t)(t->w - (h < r ? h : r));
    if (!t->buf || t->cap - used < len) {
        size_t need = used + len;
        if (need > t->limit && used > 0) {
            t->paused = 1; /* full: resume once the consumer drained it */
            return CURL_WRITEFUNC_PAUSE;
        }
        if (grow(t, need) != 0) {
            fail(t, CF_ENOMEM, "out of memory");
            return 0;
        }
    }
    ring_put(t, data, len);
    t->accepted += (int64_t)len;
    cf_hash_written(t, data, len);
    return sunk + len;
}

static void remember_url(cf_transfer *t)
{
    char *url = NULL;
    if (t->easy && curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK && url) {
        if (t->url && strcmp(t->url, url) == 0)
            return;
        char *copy = strdup(url);
        if (copy) {
            free(t->url);
            t->url = copy;
        }
    }
}

/* Takes t's easy handle out of the multi handle; a handle whose transfer
 * finished cleanly goes back to the session's pool (reset) for the next
 * transfer.  (Reusing one after a failed name resolution made libcurl
 * 7.88 refuse the next request with "bad argument".) */
static void detach(cf_transfer *t)
{
    cf_session *s = t->session;
    if (t->easy) {
        remember_url(t);
        if (t->in_multi)
            curl_multi_remove_handle(s->multi, t->easy);
        if (t->done && t->result == CURLE_OK && s->npool < CF_EASY_POOL) {
            curl_easy_reset(t->easy);
            s->pool[s->npool++] = t->easy;
        } else {
            curl_easy_cleanup(t->easy);
        }
        t->easy = NULL;
    }
    if (t->prev || s->transfers == t) {
        if (t->prev)
            t->prev->next = t->next;
        else
            s->transfers = t->next;
        if (t->next)
            t->next->prev = t->prev;
    }
    t->prev = t->next = NULL;
    t->in_multi = 0;
    curl_slist_free_all(t->req_headers);
    t->req_headers = NULL;
}

void cf_transfer_finished(cf_transfer *t, CURLcode result)
{
    cf_session_notify(t->session, t);
    t->done = 1;
    t->result = result;
    if (result != CURLE_OK)
        fail_curl(t, result);
    detach(t);
}

long cf_transfer_stall_left(const cf_transfer *t, long now)
{
    if (t->stall_ms <= 0 || !t->easy || t->paused || t->done || t->kind)
        return -1;
    long left = t->last_activity + t->stall_ms - now;
    return left < 0 ? 0 : left;
}

void cf_transfer_check_stall(cf_transfer *t, long now)
{
    if (cf_transfer_stall_left(t, now) != 0)
        return;
    char msg[96];
    snprintf(msg, sizeof msg, "no data received for %.1f s (stall_timeout)", t->stall_ms / 1000.0);
    fail(t, CF_ETIMEOUT, msg);
    cf_session_notify(t->session, t);
    detach(t);
}

static int is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* The final response's headers are in: not a 1xx, not a redirect curl is
 * about to follow. */
static int headers_ready(const cf_transfer *t)
{
    const cf_headers *h = &t->headers;
    if (!h->complete || h->status < 200)
        return 0;
    if (t->follow && is_redirect(h->status) && cf_headers_get(h, "location"))
        return 0;
    return 1;
}

int cf_transfer_ready(const cf_transfer *t)
{
    if (t->kind || t->done || !t->easy)
        return 1;
    if (!t->released)
        return t->body_seen || headers_ready(t);
    /* Paused with nothing unread: the hasher held the room; the next peek
     * waits for it and lets curl go on. */
    return t->w > t->r || t->paused || (t->sink_fd >= 0 && t->w > t->sink_told); /* or written in place */
}

/* Opens a connection's socket as curl would (close-on-exec too, so a
 * host's child processes do not inherit it), and keeps the reason when it
 * cannot: curl itself keeps none. */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    cf_transfer *t = ud;
    (void)purpose;
    int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd < 0) {
        t->sock_errno = errno;
        return CURL_SOCKET_BAD;
    }
    return fd;
}

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)

static CURLcode configure(cf_transfer *t, const cf_request *req)
{
    CURL *e = t->easy;
    CURLcode rc = CURLE_OK;
    const char *method = req->method ? req->method : "GET";

    SETOPT(CURLOPT_URL, req->url);
    SETOPT(CURLOPT_PRIVATE, (void *)t);
    SETOPT(CURLOPT_ERRORBUFFER, t->curl_error);
    SETOPT(CURLOPT_OPENSOCKETFUNCTION, open_socket);
    SETOPT(CURLOPT_OPENSOCKETDATA, (void *)t);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    /* The path goes out as given: B2 names may hold "." and ".." segments,
     * which must not be collapsed into another file's name. */
    SETOPT(CURLOPT_PATH_AS_IS, 1L);
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_FOLLOWLOCATION, req->follow_redirects ? 1L : 0L);
    SETOPT(CURLOPT_MAXREDIRS, req->max_redirects);
    SETOPT(CURLOPT_UNRESTRICTED_AUTH, 0L);
    /* HTTP/1.1: a paused HTTP/2 stream makes libcurl buffer up to ~10 MB
     * of its own, which would break the buffer_size bound. */
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    /* Bytes on disk are the bytes the server stored, so digests match. */
    SETOPT(CURLOPT_HTTP_CONTENT_DECODING, 0L);
    SETOPT(CURLOPT_BUFFERSIZE, RECV_BUFFER);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_SSL_VERIFYPEER, req->verify_tls ? 1L : 0L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, req->verify_tls ? 2L : 0L);
    if (req->ca_file)
        SETOPT(CURLOPT_CAINFO, req->ca_file);
    if (req->ca_path)
        SETOPT(CURLOPT_CAPATH, req->ca_path);
    if (req->proxy)
        SETOPT(CURLOPT_PROXY, req->proxy);
    if (req->user_agent)
        SETOPT(CURLOPT_USERAGENT, req->user_agent);
    if (req->connect_timeout_ms > 0)
        SETOPT(CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
    if (req->timeout_ms > 0)
        SETOPT(CURLOPT_TIMEOUT_MS, req->timeout_ms);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, (void *)t);
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, (void *)t);

    if (strcmp(method, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else if (req->body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req->body ? req->body_len : 0));
        SETOPT(CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
        if (strcmp(method, "POST") != 0)
            SETOPT(CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") != 0) {
        SETOPT(CURLOPT_CUSTOMREQUEST, method);
    }

    if (req->range_first >= 0) {
        char range[64];
        if (req->range_last >= 0)
            snprintf(range, sizeof range, "%lld-%lld", (long long)req->range_first,
                     (long long)req->range_last);
        else
            snprintf(range, sizeof range, "%lld-", (long long)req->range_first);
        SETOPT(CURLOPT_RANGE, range);
    }

    /* "Expect:" stops curl from waiting for 100-continue on larger bodies. */
    struct curl_slist *list = curl_slist_append(NULL, "Expect:");
    for (const char *const *h = req->headers; list && h && *h; h++) {
        struct curl_slist *next = curl_slist_append(list, *h);
        if (!next) {
            curl_slist_free_all(list);
            list = NULL;
        }
        list = next;
    }
    if (!list)
        return CURLE_OUT_OF_MEMORY;
    t->req_headers = list;
    SETOPT(CURLOPT_HTTPHEADER, list);
    return rc;
}

/* Starts (or restarts) the request on an easy handle from the session's
 * pool (or a new one) and adds it to the multi handle; the engine does the
 * rest when it runs. */
static void start(cf_transfer *t, const cf_request *req)
{
    cf_session *s = t->session;
    t->follow = req->follow_redirects;
    t->stall_ms = req->stall_timeout_ms;
    t->last_activity = cf_now_ms();
    if (s->closed) {
        fail(t, CF_ECANCELED, "the session was closed");
        return;
    }
    t->easy = s->npool > 0 ? s->pool[--s->npool] : curl_easy_init();
    if (!t->easy) {
        fail(t, CF_ENOMEM, "out of memory");
        return;
    }
    t->next = s->transfers;
    if (t->next)
        t->next->prev = t;
    t->prev = NULL;
    s->transfers = t;
    CURLcode rc = configure(t, req);
    if (rc != CURLE_OK) {
        fail_curl(t, rc);
        detach(t);
        return;
    }
    if (curl_multi_add_handle(s->multi, t->easy) != CURLM_OK) {
        fail(t, CF_ENETWORK, "could not start the transfer");
        detach(t);
        return;
    }
    t->in_multi = 1;
}

cf_transfer *cf_transfer_start(cf_session *s, const cf_request *req)
{
    cf_transfer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->session = s;
    t->id = ++s->next_id;
    s->refs++;
    cf_headers_init(&t->headers);
    t->hash_thread = req->hash_thread;
    t->sink_fd = -1;
    t->hj.work = cf_hash_work;
    t->limit = req->buffer_size < CURL_MAX_WRITE_SIZE ? CURL_MAX_WRITE_SIZE : req->buffer_size;
    if (req->hash_mask && !(t->digests = cf_digests_new(req->hash_mask))) {
        cf_transfer_free(t);
        return NULL;
    }
    start(t, req);
    return t;
}

int cf_transfers_wait(cf_session *s, cf_transfer *const *ts, size_t n, long timeout_ms)
{
    if (s->closed)
        return -1;
    long deadline = timeout_ms < 0 ? -1 : cf_now_ms() + timeout_ms;
    for (int ran = 0;; ran = 1) {
        for (size_t i = 0; i < n; i++)
            if (!ts[i] || cf_transfer_ready(ts[i]))
                return 1;
        long left = -1;
        if (deadline >= 0) {
            left = deadline - cf_now_ms();
            if (left <= 0) {
                if (ran)
                    return 0;
                left = 0; /* the engine runs at least once */
            }
        }
        if (cf_session_run(s, left) != 0)
            return -1;
    }
}

cf_transfer *cf_transfer_open(cf_session *s, const cf_request *req)
{
    cf_transfer *t = cf_transfer_start(s, req);
    if (t && cf_transfers_wait(s, &t, 1, -1) < 0)
        fail(t, CF_ENETWORK, "the event engine failed");
    return t;
}

int cf_transfer_resume(cf_transfer *t, const cf_request *req)
{
    if (t->closed)
        return -1; /* closed by the caller */
    detach(t);
    cf_headers_free(&t->headers);
    cf_headers_init(&t->headers);
    t->kind = CF_OK;
    t->message[0] = t->curl_error[0] = '\0';
    t->sock_errno = 0;
    t->done = t->paused = t->body_seen = 0;
    t->result = CURLE_OK;
    t->released = 0; /* no byte is taken before the caller checked the answer */
    start(t, req);
    return t->kind ? -1 : 0;
}

int64_t cf_transfer_accepted(const cf_transfer *t)
{
    return t->accepted;
}

int64_t cf_transfer_id(const cf_transfer *t)
{
    return t->id;
}

cf_kind cf_transfer_failed(const cf_transfer *t, const char **message)
{
    if (message)
        *message = t->message;
    return t->kind;
}

const cf_headers *cf_transfer_headers(const cf_transfer *t)
{
    return &t->headers;
}

const char *cf_transfer_url(const cf_transfer *t)
{
    if (t->easy) /* redirects may have moved it since */
        remember_url((cf_transfer *)t);
    return t->url;
}

int cf_transfer_add_hash(cf_transfer *t, unsigned mask)
{
    unsigned have = t->digests ? cf_digests_mask(t->digests) : 0;
    if ((have | mask) == have)
        return 0;
    if (t->accepted > 0)
        return -1; /* bytes already went by unhashed */
    cf_digests *d = cf_digests_new(have | mask);
    if (!d)
        return -1;
    cf_digests_free(t->digests);
    t->digests = d;
    return 0;
}

int cf_transfer_drop_hash(cf_transfer *t)
{
    if (t->accepted > 0)
        return -1;
    cf_digests_free(t->digests);
    t->digests = NULL;
    return 0;
}

long cf_transfer_peek(cf_transfer *t, const char **data)
{
    t->released = 1;
    for (;;) {
        if (t->w > t->r) {
            size_t at, n = cf_ring_span(t, t->r, t->w, &at);
            *data = t->buf + at;
            return (long)n;
        }
        if (t->kind)
            return -1;
        if (t->done)
            return 0;
        if (!t->easy || t->closed) {
            fail(t, CF_ECANCELED, "the download was closed");
            return -1;
        }
        if (!t->paused)
            return CF_AGAIN;
        /* The buffer is empty (or the body was not asked for before): let
         * curl go on once hashing caught up and freed the room.  Unpausing
         * may deliver held bytes right here. */
        settle(t);
        t->paused = 0;
        t->last_activity = cf_now_ms();
        CURLcode rc = curl_easy_pause(t->easy, CURLPAUSE_CONT);
        if (rc != CURLE_OK) {
            fail_curl(t, rc);
            detach(t);
            /* bytes it delivered before failing are handed out first */
        }
    }
}

long cf_transfer_peek_wait(cf_transfer *t, const char **data)
{
    for (;;) {
        long n = cf_transfer_peek(t, data);
        if (n != CF_AGAIN)
            return n;
        if (cf_transfers_wait(t->session, &t, 1, -1) < 0) {
            fail(t, CF_ENETWORK, "the event engine failed");
            return -1;
        }
    }
}

void cf_transfer_prefeed(cf_transfer *t, const void *data, size_t len)
{
    settle(t);
    if (t->digests && cf_digests_update(t->digests, data, len) != 0)
        fail(t, CF_ENOMEM, "digest update failed");
    t->accepted += (int64_t)len;
    t->received += (int64_t)len;
}

void cf_transfer_consume(cf_transfer *t, size_t n)
{
    size_t avail = (size_t)(t->w - t->r);
    if (n > avail)
        n = avail;
    t->r += n;
    t->received += (int64_t)n;
}

int64_t cf_transfer_received(const cf_transfer *t)
{
    return t->received;
}

const cf_digests *cf_transfer_digests(cf_transfer *t)
{
    settle(t);
    return t->digests;
}

int cf_transfer_sink(cf_transfer *t, cf_tmpfile *f, int64_t at, int64_t end)
{
    struct stat st;
    if (t->sink_fd >= 0 || t->w != t->r || t->closed || f->fd < 0 || (at < 0 && fstat(f->fd, &st) != 0))
        return t->sink_fd >= 0;
    if (at < 0) {
        at = (int64_t)st.st_size;
        end = INT64_MAX;
    }
    char *path = strdup(f->path ? f->path : "the file");
    int fd = path ? fcntl(f->fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (fd < 0) {
        free(path);
        return 0; /* it goes on through the buffer */
    }
    settle(t); /* every byte so far is hashed: from here they are read back */
    t->sink_fd = fd;
    t->sink_path = path;
    t->sink_base = t->w - (uint64_t)at; /* mod 2^64: position p lands at p - sink_base */
    t->sink_end = t->w + (uint64_t)(end - at);
    t->sink_told = t->w;
    return 1;
}

int64_t cf_transfer_sunk(cf_transfer *t)
{
    if (t->sink_fd < 0)
        return 0;
    uint64_t upto = t->w < t->sink_end ? t->w : t->sink_end; /* past the end: buffered */
    int64_t n = (int64_t)(upto - t->sink_told);
    t->sink_told = upto;
    return n;
}

void cf_transfer_close(cf_transfer *t)
{
    if (t->easy && !t->done && !t->kind)
        fail(t, CF_ECANCELED, "the download was closed");
    detach(t);
    give_buffer(t); /* settles: the hasher is done with the sink too */
    if (t->sink_fd >= 0) {
        close(t->sink_fd);
        t->sink_fd = -1;
    }
    free(t->sink_path);
    free(t->sink_buf);
    t->sink_path = t->sink_buf = NULL;
    t->closed = 1;
}

void cf_transfer_free(cf_transfer *t)
{
    if (!t)
        return;
    cf_transfer_close(t);
    cf_headers_free(&t->headers);
    cf_digests_free(t->digests);
    free(t->url);
    cf_session_forget(t->session, t);
    cf_session_unref(t->session);
    free(t);
}
