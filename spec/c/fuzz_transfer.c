/*
 * libFuzzer target: the transfer engine (cf_session + cf_transfer, the real
 * src/session.c and src/transfer.c) reading a fuzzed HTTP response.
 *
 * A loopback listener thread in this process plays the server: for each
 * connection it reads the request and writes the answer in pieces of
 * random sizes, then closes.  The consumer drives only the public API
 * (cloudfetch.h): start, wait, peek, consume with random sizes, a small
 * buffer_size so the pause/resume paths run, prefeed, add_hash, close,
 * resume after a cut.
 *
 * Two shapes of input (first byte, bit 0):
 *   raw     the payload is written as it is: anything libcurl and our
 *           header store may see from a hostile server;
 *   framed  a well-formed answer built here (status line, fuzzed but
 *           well-formed header lines, Content-Length or chunked framing)
 *           around a fuzz-chosen body of up to 128 KiB, optionally cut
 *           short at fuzz-chosen offsets; the consumer resumes with a Range
 *           for the bytes not yet accepted and the server answers 206 from
 *           there.  Here the exact body is known.
 *
 * Invariants checked (abort() with a message when broken):
 *   - a peek never shows more than max(buffer_size, CURL_MAX_WRITE_SIZE)
 *     unread bytes (README: "a download holds at most buffer_size unread
 *     bytes"; libcurl hands over up to CURL_MAX_WRITE_SIZE at once, and the
 *     engine never bounds below that);
 *   - cf_transfer_received == prefeed + bytes consumed, at every step;
 *     accepted >= received, and equal at the end;
 *   - the digests cf_transfer_digests reports equal OpenSSL's over the
 *     prefeed plus the bytes handed out, at the clean end and after a
 *     failure (every buffered byte is handed out before the failure shows);
 *   - framed: the transfer ends cleanly (after at most one resume per cut),
 *     a cut fails as a network error, and the bytes handed out are exactly
 *     the body;
 *   - raw: a clean 200 with one Content-Length our parser accepts (and no
 *     Transfer-Encoding) handed out exactly that many bytes;
 *   - after cf_transfer_close no byte is handed out any more;
 *   - nothing hangs: every run ends within a bounded time.
 *
 *   make fuzz                 (all targets; see mk/fuzz.mk)
 *   build/fuzz/fuzz_transfer CRASH_FILE    (replays one input)
 */
#include "../../src/cloudfetch.h"

#define FUZZ_NAME "fuzz_transfer"
#include "fuzz_util.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BODY (128 * 1024)
#define MAX_CUTS 3
#define RUN_LIMIT_MS 15000 /* one input never takes longer (the transfer's own timeout is 10 s) */

/* ---- the plan of one run, shared with the server thread ------------------ */

typedef struct plan {
    int framed;
    const uint8_t *raw;      /* raw: the whole answer */
    size_t raw_len;
    const char *extra;       /* framed: header lines ("Name: value\r\n"...) */
    size_t extra_len;
    const uint8_t *body;     /* framed: the whole entity */
    size_t body_len;
    int chunked;
    size_t cuts[MAX_CUTS];   /* absolute body offsets where an answer stops short */
    int ncuts;
    uint32_t seed;           /* write sizes */
} plan;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const plan *current; /* NULL between runs: connections then get nothing */
    int busy;
    int port;
} server = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0};

/* Sends all of p[0..n) in pieces of random sizes; -1 once the peer is gone. */
static int send_pieces(int fd, const void *p, size_t n, uint32_t *seed)
{
    const char *c = p;
    int tiny = 64; /* a few tiny pieces per call: headers split anywhere, without a syscall per body byte */
    while (n > 0) {
        uint32_t r = next_rand(seed);
        size_t piece;
        switch (r & 3) {
        case 0: piece = tiny-- > 0 ? 1 + (r >> 8) % 16 : n; break;
        case 1: piece = 1 + (r >> 8) % 4096; break;
        default: piece = n; break;
        }
        if (piece > n)
            piece = n;
        ssize_t w = send(fd, c, piece, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1; /* the client gave up (closed, failed, timed out) */
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_text(int fd, uint32_t *seed, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return send_pieces(fd, buf, (size_t)n, seed);
}

/* The request, up to its blank line; the first byte asked for by its
 * Range header (0 without one), or -1 when the client went away. */
static long read_request(int fd)
{
    char req[16384];
    size_t n = 0;
    while (n < sizeof req - 1) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 5000) <= 0)
            return -1;
        ssize_t r = recv(fd, req + n, sizeof req - 1 - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        n += (size_t)r;
        req[n] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    for (char *line = strstr(req, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "Range: bytes=", 13) == 0)
            return strtol(line + 15, NULL, 10);
    }
    return 0;
}

/* The framed answer for a request starting at `from`: 200 or 206, the
 * extra headers, framing, and the body from `from` up to the first cut
 * after it (or the end). */
static void answer_framed(int fd, const plan *p, size_t from, uint32_t *seed)
{
    size_t end = p->body_len;
    for (int i = 0; i < p->ncuts; i++)
        if (p->cuts[i] > from && p->cuts[i] < end)
            end = p->cuts[i];
    if (from > p->body_len)
        from = p->body_len;
    if (from > 0) {
        if (send_text(fd, seed, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %zu-%zu/%zu\r\n", from,
                      p->body_len - 1, p->body_len) != 0)
            return;
    } else if (send_text(fd, seed, "HTTP/1.1 200 OK\r\n") != 0) {
        return;
    }
    if (send_pieces(fd, p->extra, p->extra_len, seed) != 0)
        return;
    if (!p->chunked) {
        if (send_text(fd, seed, "Content-Length: %zu\r\n\r\n", p->body_len - from) != 0)
            return;
        send_pieces(fd, p->body + from, end - from, seed);
        return;
    }
    if (send_text(fd, seed, "Transfer-Encoding: chunked\r\n\r\n") != 0)
        return;
    size_t pos = from;
    while (pos < end) {
        size_t chunk = 1 + next_rand(seed) % 8192;
        if (chunk > end - pos)
            chunk = end - pos;
        if (send_text(fd, seed, "%zx\r\n", chunk) != 0 || send_pieces(fd, p->body + pos, chunk, seed) != 0 ||
            send_text(fd, seed, "\r\n") != 0)
            return;
        pos += chunk;
    }
    if (end == p->body_len)
        send_text(fd, seed, "0\r\n\r\n");
}

static void *serve(void *arg)
{
    int lfd = *(int *)arg;
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue;
        int one = 1; /* pieces go out as they are written (no Nagle wait for the client's delayed ACK) */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pthread_mutex_lock(&server.mu);
        const plan *p = server.current;
        if (p)
            server.busy = 1;
        pthread_mutex_unlock(&server.mu);
        if (p) {
            uint32_t seed = p->seed;
            long from = read_request(fd);
            if (from >= 0) {
                if (p->framed)
                    answer_framed(fd, p, (size_t)from, &seed);
                else
                    send_pieces(fd, p->raw, p->raw_len, &seed);
            }
        }
        close(fd);
        pthread_mutex_lock(&server.mu);
        server.busy = 0;
        pthread_cond_broadcast(&server.cv);
        pthread_mutex_unlock(&server.mu);
    }
    return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static int lfd;
    static pthread_t thread;
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 64) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
        perror("fuzz_transfer: loopback listener");
        exit(1);
    }
    server.port = ntohs(a.sin_port);
    if (pthread_create(&thread, NULL, serve, &lfd) != 0) {
        perror("fuzz_transfer: server thread");
        exit(1);
    }
    pthread_detach(thread);
    return 0;
}

/* ---- the consumer ---------------------------------------------------------- */

static const int ALGS[] = {CF_SHA1, CF_SHA256, CF_MD5};

typedef struct consumer {
    EVP_MD_CTX *md[3];
    unsigned mask;     /* the digests the transfer computes */
    int64_t fed;       /* prefeed + consumed */
    uint8_t *copy;     /* framed: everything handed out, to compare with the body */
    size_t copied, copy_cap;
} consumer;

static const EVP_MD *md_of(int i)
{
    return i == 0 ? EVP_sha1() : i == 1 ? EVP_sha256() : EVP_md5();
}

static void take(consumer *c, const void *p, size_t n)
{
    for (int i = 0; i < 3; i++)
        EVP_DigestUpdate(c->md[i], p, n);
    c->fed += (int64_t)n;
    if (c->copy) {
        if (c->copied + n > c->copy_cap)
            broken("more bytes handed out (%zu) than the body has (%zu)", c->copied + n, c->copy_cap);
        memcpy(c->copy + c->copied, p, n);
        c->copied += n;
    }
}

static void compare_digests(consumer *c, cf_transfer *t, const char *when)
{
    const cf_digests *d = cf_transfer_digests(t);
    for (int i = 0; i < 3; i++) {
        if (!(c->mask & (unsigned)ALGS[i]))
            continue;
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        char want[CF_HEX_MAX], got[CF_HEX_MAX];
        EVP_MD_CTX *copy = EVP_MD_CTX_new();
        if (!copy || EVP_MD_CTX_copy_ex(copy, c->md[i]) != 1 || EVP_DigestFinal_ex(copy, md, &mdlen) != 1)
            abort();
        EVP_MD_CTX_free(copy);
        for (unsigned k = 0; k < mdlen; k++)
            snprintf(want + 2 * k, 3, "%02x", md[k]);
        if (!d || cf_digests_hex(d, ALGS[i], got) != 0)
            broken("%s: no %s digest although it was asked for", when, cf_digest_name(ALGS[i]));
        if (strcmp(want, got) != 0)
            broken("%s: %s of the %lld bytes handed out is %s, the transfer says %s", when,
                   cf_digest_name(ALGS[i]), (long long)c->fed, want, got);
    }
}

static void check_counts(const consumer *c, const cf_transfer *t)
{
    if (cf_transfer_received(t) != c->fed)
        broken("received = %lld but %lld bytes were prefed and consumed", (long long)cf_transfer_received(t),
               (long long)c->fed);
    if (cf_transfer_accepted(t) < cf_transfer_received(t))
        broken("accepted %lld < received %lld", (long long)cf_transfer_accepted(t),
               (long long)cf_transfer_received(t));
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the engine until t is ready or `ms` passed. */
static void wait_ready(cf_session *s, cf_transfer *t, long ms, long deadline)
{
    if (now_ms() > deadline)
        broken("no end after %d ms: the transfer hangs", RUN_LIMIT_MS);
    cf_transfer *ts[1] = {t};
    if (cf_transfers_wait(s, ts, 1, ms) < 0)
        broken("the event engine failed");
}

/* The value of the header `name` when the answer has exactly one such
 * line, else NULL.  With two Content-Length lines libcurl goes by the last
 * and cf_headers_get gives the first; the Lua layer refuses the answer
 * before it takes a byte when they disagree (download.lua, framing_problem;
 * spec/hostile_spec.lua), so the engine's count is no invariant then. */
static const char *only_one(const cf_headers *h, const char *name)
{
    const char *value = NULL;
    for (size_t i = 0; i < h->n; i++) {
        if (strcasecmp(h->items[i].name, name) != 0)
            continue;
        if (value)
            return NULL;
        value = h->items[i].value;
    }
    return value;
}

/* Header lines for the framed answer from fuzz bytes: one line per '\n',
 * kept when it is "token: printable", framing headers left out (the
 * answer's framing is ours). */
static size_t extra_headers(const uint8_t *p, size_t n, char *out, size_t cap)
{
    static const char *const ours[] = {"content-length", "transfer-encoding", "content-range",
                                       "connection", "content-encoding", "trailer", "te"};
    size_t len = 0, lines = 0;
    while (n > 0 && lines < 40) {
        const uint8_t *nl = memchr(p, '\n', n);
        size_t ln = nl ? (size_t)(nl - p) : n;
        const uint8_t *colon = memchr(p, ':', ln);
        size_t name = colon ? (size_t)(colon - p) : 0;
        int ok = name > 0 && name < 64 && len + ln + 3 < cap;
        for (size_t i = 0; ok && i < name; i++)
            ok = (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= '0' && p[i] <= '9') ||
                 p[i] == '-' || p[i] == '_';
        for (size_t k = 0; ok && k < sizeof ours / sizeof *ours; k++)
            ok = !(strlen(ours[k]) == name && strncasecmp((const char *)p, ours[k], name) == 0);
        if (ok) {
            for (size_t i = 0; i < ln; i++)
                out[len++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '_';
            out[len++] = '\r';
            out[len++] = '\n';
            lines++;
        }
        if (!nl)
            break;
        n -= ln + 1;
        p += ln + 1;
    }
    return len;
}

/*
 * Input: flags, mask/buffer, two bytes of body length, four bytes of seed,
 * then the payload (raw: the answer; framed: header lines, a NUL, the
 * stuff the body is made of).
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t buffer_sizes[8] = {1, 100, 4096, 16384, 16385, 65536, 200000, 1 << 20};
    if (size < 8)
        return 0;
    unsigned flags = data[0];
    int framed = flags & 1;
    unsigned mask = data[1] & 7;
    size_t buffer_size = buffer_sizes[(data[1] >> 3) & 7];
    uint32_t seed = (uint32_t)data[4] << 24 | (uint32_t)data[5] << 16 | (uint32_t)data[6] << 8 | data[7];
    const uint8_t *payload = data + 8;
    size_t plen = size - 8;
    if (seed == 0)
        seed = 1;

    plan p;
    memset(&p, 0, sizeof p);
    p.framed = framed;
    p.seed = seed;
    char extra[4096];
    uint8_t *body = NULL;
    int64_t prefeed = 0;
    if (framed) {
        const uint8_t *nul = memchr(payload, 0, plen);
        size_t hlen = nul ? (size_t)(nul - payload) : 0;
        const uint8_t *stuff = nul ? nul + 1 : payload;
        size_t slen = plen - (size_t)(stuff - payload);
        p.extra = extra;
        p.extra_len = extra_headers(payload, hlen, extra, sizeof extra);
        p.body_len = ((size_t)data[2] << 8 | data[3]) * 2;
        if (p.body_len > MAX_BODY)
            p.body_len = MAX_BODY;
        body = malloc(p.body_len + 1);
        if (!body)
            return 0;
        uint32_t r = seed;
        for (size_t i = 0; i < p.body_len; i++)
            body[i] = slen ? stuff[i % slen] ^ (uint8_t)(i / slen) : (uint8_t)next_rand(&r);
        p.body = body;
        p.chunked = (flags >> 1) & 1;
        if ((flags & 4) && p.body_len > 0)
            prefeed = (int64_t)(next_rand(&r) % p.body_len);
        p.ncuts = (flags >> 6) & 3;
        for (int i = 0; i < p.ncuts; i++)
            p.cuts[i] = (size_t)prefeed + (p.body_len > (size_t)prefeed ? next_rand(&r) % (p.body_len - (size_t)prefeed) : 0);
    } else {
        p.raw = payload;
        p.raw_len = plen;
    }

    pthread_mutex_lock(&server.mu);
    server.current = &p;
    pthread_mutex_unlock(&server.mu);

    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/fuzz", server.port);
    cf_request req;
    memset(&req, 0, sizeof req);
    req.url = url;
    req.method = "GET";
    req.range_first = prefeed > 0 ? prefeed : -1;
    req.range_last = -1;
    req.connect_timeout_ms = 5000;
    req.timeout_ms = 10000;
    req.buffer_size = buffer_size;
    req.hash_mask = (flags & 8) ? 0 : mask; /* bit 3: the digests are added after the headers */
    /* Bodies from CF_HASH_THREAD_MIN (or of unknown length) are hashed on
     * the hasher thread; the fuzz build lowers it to 4 KiB and hands the
     * thread 1 KiB at a time (mk/fuzz.mk). */
    req.hash_thread = (seed >> 17) & 1;

    consumer c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < 3; i++) {
        c.md[i] = EVP_MD_CTX_new();
        if (!c.md[i] || EVP_DigestInit_ex(c.md[i], md_of(i), NULL) != 1)
            abort();
    }
    c.mask = req.hash_mask;
    if (framed) {
        c.copy = malloc(p.body_len + 1);
        c.copy_cap = p.body_len;
    }

    long deadline = now_ms() + RUN_LIMIT_MS;
    cf_session *s = cf_session_new();
    if (!s)
        abort();
    cf_transfer *t = cf_transfer_start(s, &req);
    if (!t)
        abort();
    if (!(flags & 32)) /* bit 5 clear: wait for the headers before the first peek */
        while (!cf_transfer_ready(t))
            wait_ready(s, t, 200, deadline);
    if (flags & 8) {
        if (cf_transfer_add_hash(t, mask) != 0)
            broken("add_hash before the first peek failed");
        c.mask = mask;
    }
    if (prefeed > 0) {
        cf_transfer_prefeed(t, body, (size_t)prefeed);
        take(&c, body, (size_t)prefeed);
    } else if (!framed && (seed & 0x10000)) {
        cf_transfer_prefeed(t, "prefeed", 7);
        take(&c, "prefeed", 7);
    }
    check_counts(&c, t);

    size_t bound = buffer_size > CURL_MAX_WRITE_SIZE ? buffer_size : CURL_MAX_WRITE_SIZE;
    uint32_t r = seed ^ 0x5bd1e995u;
    int resumes = 0, closed = 0, end = 0, stalls = 0;
    long close_after = (flags & 16) ? (long)(next_rand(&r) % 64) : -1;
    for (long step = 0;; step++) {
        if (step == close_after) {
            cf_transfer_close(t);
            closed = 1;
        }
        const char *bytes;
        long n = cf_transfer_peek(t, &bytes);
        if (n == CF_AGAIN) {
            if (closed)
                broken("peek said 'again' after close");
            wait_ready(s, t, 200, deadline);
            continue;
        }
        if (n > 0) {
            if (closed)
                broken("peek handed out %ld bytes after close", n);
            if ((size_t)n > bound)
                broken("%ld unread bytes held with buffer_size %zu", n, buffer_size);
            uint32_t x = next_rand(&r);
            if ((x & 7) == 0 && stalls < 8) {
                /* let the engine run without consuming: the buffer fills
                 * up to its bound and the transfer pauses */
                stalls++;
                cf_session_run(s, 0);
                continue;
            }
            size_t k = (x & 8) ? (size_t)n : 1 + (x >> 4) % (size_t)n;
            take(&c, bytes, k);
            cf_transfer_consume(t, k);
            check_counts(&c, t);
            const char *msg;
            if (framed && resumes < p.ncuts && (x & 0x30000) == 0 && cf_transfer_failed(t, &msg) == CF_ENETWORK) {
                /* failed with bytes still buffered: resume before draining */
                cf_request again = req;
                again.range_first = cf_transfer_accepted(t);
                resumes++;
                if (cf_transfer_resume(t, &again) != 0)
                    broken("resume failed: %s", msg);
            }
            continue;
        }
        if (n == 0) {
            end = 1;
            break;
        }
        /* n == -1: failed */
        const char *msg = "";
        cf_kind kind = cf_transfer_failed(t, &msg);
        if (kind == CF_OK)
            broken("peek returned -1 but the transfer did not fail");
        if (closed)
            break;
        if (framed) {
            if (kind != CF_ENETWORK || resumes >= p.ncuts)
                broken("a framed answer failed (%s: %s) after %d resumes, %d cuts", cf_kind_name(kind), msg,
                       resumes, p.ncuts);
            compare_digests(&c, t, "before a resume");
            cf_request again = req;
            again.range_first = cf_transfer_accepted(t);
            resumes++;
            if (cf_transfer_resume(t, &again) != 0)
                broken("resume failed");
            continue;
        }
        break;
    }
    if (!closed) {
        check_counts(&c, t);
        const char *msg = "";
        cf_kind kind = cf_transfer_failed(t, &msg);
        if (cf_transfer_accepted(t) != cf_transfer_received(t))
            broken("the %s came with %lld bytes accepted but %lld handed out (%s: %s)", end ? "end" : "failure",
                   (long long)cf_transfer_accepted(t), (long long)cf_transfer_received(t), cf_kind_name(kind), msg);
        compare_digests(&c, t, end ? "at the end" : "after the failure");
    }
    if (framed && !closed) {
        if (!end)
            broken("a framed answer did not end cleanly");
        if (c.copied != p.body_len || memcmp(c.copy, p.body, p.body_len) != 0)
            broken("the bytes handed out (%zu) are not the body (%zu)", c.copied, p.body_len);
    }
    if (!framed && !closed && end) {
        const cf_headers *h = cf_transfer_headers(t);
        const char *cl = only_one(h, "content-length");
        int64_t want;
        if (h->status == 200 && cl && !cf_headers_get(h, "transfer-encoding") &&
            cf_parse_content_length(cl, &want) == 0 && c.fed - (seed & 0x10000 ? 7 : 0) != want)
            broken("a 200 with Content-Length %lld ended cleanly after %lld bytes", (long long)want,
                   (long long)(c.fed - (seed & 0x10000 ? 7 : 0)));
    }

    cf_transfer_free(t);
    cf_session_free(s);
    pthread_mutex_lock(&server.mu);
    server.current = NULL;
    while (server.busy) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        if (pthread_cond_timedwait(&server.cv, &server.mu, &until) == ETIMEDOUT)
            broken("the server thread is stuck");
    }
    pthread_mutex_unlock(&server.mu);
    for (int i = 0; i < 3; i++)
        EVP_MD_CTX_free(c.md[i]);
    free(c.copy);
    free(body);
    return 0;
}
