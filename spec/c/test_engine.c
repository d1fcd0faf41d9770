/*
 * Test of the cloudfetch engine without Lua: the session's event loop,
 * non-blocking transfers, the ready list, stall clocks, ranged files hashed
 * in order, and commit jobs on worker threads, against the project's real
 * loopback test server (spec/support/testserver.py, started here).
 * Prints one line per failed check and ends with "N passed, M failed".
 */
#include "../../src/cloudfetch.h"

#include <curl/curl.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static char base_url[128];
static char tmpdir[64];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Starts the test server; returns its pid and fills base_url. */
static pid_t start_server(void)
{
    char ready[96];
    snprintf(ready, sizeof ready, "%s/ready.json", tmpdir);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/usr/bin/python3", "python3", "spec/support/testserver.py", "--ready-file", ready, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        FILE *f = fopen(ready, "r");
        if (f) {
            char buf[512] = {0};
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            const char *u = n ? strstr(buf, "\"url\": \"") : NULL;
            if (u && strchr(u + 8, '"')) {
                u += 8;
                size_t len = (size_t)(strchr(u, '"') - u);
                if (len < sizeof base_url) {
                    memcpy(base_url, u, len);
                    base_url[len] = '\0';
                    return pid;
                }
            }
        }
        usleep(50 * 1000);
    }
    fprintf(stderr, "test server did not start\n");
    kill(pid, SIGTERM);
    exit(1);
}

static cf_request request(const char *url)
{
    cf_request r;
    memset(&r, 0, sizeof r);
    r.url = url;
    r.range_first = r.range_last = -1;
    r.connect_timeout_ms = 5000;
    r.stall_timeout_ms = 10000;
    r.buffer_size = 1 << 20;
    r.verify_tls = 1;
    r.max_redirects = 5;
    return r;
}

static char *url_of(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *url_of(const char *fmt, ...)
{
    static char urls[8][256];
    static int next;
    char *u = urls[next++ % 8];
    int n = snprintf(u, 256, "%s", base_url);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u + n, (size_t)(256 - n), fmt, ap);
    va_end(ap);
    return u;
}

/* The whole body of t (waiting as needed), malloc'd; *len bytes. */
static char *read_body(cf_transfer *t, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *out = malloc(cap);
    for (;;) {
        const char *data;
        long k = cf_transfer_peek_wait(t, &data);
        if (k <= 0) {
            if (k < 0) {
                free(out);
                return NULL;
            }
            break;
        }
        if (n + (size_t)k + 1 > cap) {
            while (n + (size_t)k + 1 > cap)
                cap *= 2;
            out = realloc(out, cap);
        }
        memcpy(out + n, data, (size_t)k);
        n += (size_t)k;
        cf_transfer_consume(t, (size_t)k);
    }
    out[n] = '\0';
    *len = n;
    return out;
}

/* The server's SHA-1 of body n/seed, bytes first..last (-1: all). */
static void server_sha1(cf_session *s, long n, int seed, long first, long last, char out[CF_HEX_MAX])
{
    char *u = first < 0 ? url_of("/meta?n=%ld&seed=%d", n, seed)
                        : url_of("/meta?n=%ld&seed=%d&first=%ld&last=%ld", n, seed, first, last);
    cf_request r = request(u);
    cf_transfer *t = cf_transfer_open(s, &r);
    size_t len;
    char *body = read_body(t, &len);
    const char *p = body ? strstr(body, "\"sha1\": \"") : NULL;
    out[0] = '\0';
    if (p) {
        memcpy(out, p + 9, 40);
        out[40] = '\0';
    }
    free(body);
    cf_transfer_free(t);
}

/* ---- the engine ------------------------------------------------------------ */

static void test_concurrent(cf_session *s)
{
    cf_transfer *ts[4];
    double t0 = now();
    for (int i = 0; i < 4; i++) {
        cf_request r = request(url_of("/bytes?n=%d&delay=0.5", 1000 * (i + 1)));
        ts[i] = cf_transfer_start(s, &r);
        CHECK(ts[i] && !cf_transfer_ready(ts[i]), "a started transfer is not ready at once");
    }
    CHECK(now() - t0 < 0.1, "starting does not wait (%.3f s)", now() - t0);
    CHECK(cf_session_timeout(s) >= 0, "the engine has a deadline while transfers start");
    int64_t seen[4] = {0};
    int ready = 0;
    while (ready < 4 && now() - t0 < 10) {
        cf_session_run(s, 1000);
        int64_t ids[16];
        size_t n = cf_session_take_ready(s, ids, 16);
        for (size_t k = 0; k < n; k++)
            for (int i = 0; i < 4; i++)
                if (ids[k] == cf_transfer_id(ts[i]) && !seen[i])
                    seen[i] = 1;
        ready = 0;
        for (int i = 0; i < 4; i++)
            ready += cf_transfer_ready(ts[i]);
    }
    double elapsed = now() - t0;
    CHECK(ready == 4, "all four answered");
    CHECK(elapsed < 1.5, "four 0.5 s answers at once took %.2f s", elapsed);
    CHECK(seen[0] && seen[1] && seen[2] && seen[3], "the ready list named each of them");
    for (int i = 0; i < 4; i++) {
        size_t len = 0;
        char *body = read_body(ts[i], &len);
        CHECK(body && len == (size_t)(1000 * (i + 1)) && cf_transfer_headers(ts[i])->status == 200,
              "body %d: %zu bytes", i, len);
        free(body);
        cf_transfer_free(ts[i]);
    }
}

static void test_nonblocking_peek(cf_session *s)
{
    cf_request r = request(url_of("/stall?n=50000&seed=3&stall=0.5&after=1000"));
    r.hash_mask = CF_SHA1;
    cf_transfer *t = cf_transfer_open(s, &r);
    CHECK(t && !cf_transfer_failed(t, NULL), "opened");
    size_t got = 0;
    int agains = 0;
    double t0 = now();
    for (;;) {
        const char *data;
        double p0 = now();
        long n = cf_transfer_peek(t, &data);
        CHECK(now() - p0 < 0.05, "peek never waits");
        if (n == CF_AGAIN) {
            agains++;
            cf_session_run(s, 20);
            continue;
        }
        if (n <= 0)
            break;
        got += (size_t)n;
        cf_transfer_consume(t, (size_t)n);
        if (now() - t0 > 10)
            break;
    }
    CHECK(got == 50000, "every byte arrived (%zu)", got);
    CHECK(agains > 3, "peek said 'not yet' while the server stalled (%d)", agains);
    char hex[CF_HEX_MAX], want[CF_HEX_MAX];
    cf_digests_hex(cf_transfer_digests(t), CF_SHA1, hex);
    server_sha1(s, 50000, 3, -1, -1, want);
    CHECK(strcmp(hex, want) == 0, "SHA-1 %s, server says %s", hex, want);
    cf_transfer_free(t);
}

static void test_stall(cf_session *s)
{
    cf_request r = request(url_of("/stall?n=1000&stall=5&after=100"));
    r.stall_timeout_ms = 400;
    cf_transfer *t = cf_transfer_open(s, &r);
    double t0 = now();
    size_t len;
    char *body = read_body(t, &len);
    const char *msg;
    CHECK(!body && cf_transfer_failed(t, &msg) == CF_ETIMEOUT, "a stalled body fails with a timeout");
    CHECK(now() - t0 < 2, "after its stall_timeout (%.2f s)", now() - t0);
    free(body);
    cf_transfer_free(t);
}

static void test_session_fd(cf_session *s)
{
    cf_request r = request(url_of("/bytes?n=10&delay=0.2"));
    cf_transfer *t = cf_transfer_start(s, &r);
    struct pollfd p = {.fd = cf_session_fd(s), .events = POLLIN};
    int woke = 0;
    double t0 = now();
    while (!cf_transfer_ready(t) && now() - t0 < 5) {
        long timeout = cf_session_timeout(s);
        if (poll(&p, 1, timeout < 0 ? 1000 : (int)timeout) > 0)
            woke++;
        cf_session_run(s, 0);
    }
    CHECK(cf_transfer_ready(t) && woke > 0, "a host loop polling the session's descriptor is woken");
    cf_transfer_free(t);
}

/* ---- ranged files ------------------------------------------------------------ */

/* Inline, and (thread = 1) with the prefix hashed on a hasher thread.
 * With cut = 1 the file loses the parts written ahead before the prefix
 * reaches them: the read-back fails, and says so. */
static void test_ranged(cf_session *s, int thread, int cut)
{
    const long total = 3000000, part = 1000000;
    char target[128];
    snprintf(target, sizeof target, "%s/ranged.bin", tmpdir);
    cf_tmpfile f;
    char err[CF_ERRLEN];
    CHECK(cf_tmpfile_create(&f, target, err, sizeof err) == 0, "tmpfile: %s", err);
    cf_ranged *rf = cf_ranged_new(&f, total, CF_SHA1, thread);
    /* The parts arrive last first: the prefix can only grow at the end. */
    for (int i = 2; i >= 0; i--) {
        int64_t first = i * part, last = first + part - 1, pos = first;
        cf_request r = request(url_of("/bytes?n=%ld&seed=7", total));
        r.range_first = first;
        r.range_last = last;
        cf_transfer *t = cf_transfer_open(s, &r);
        while (pos <= last) {
            long n = cf_ranged_pump(rf, t, &pos, last, err, sizeof err);
            if (n == CF_AGAIN)
                cf_transfers_wait(s, &t, 1, 1000);
            else if (n < 0)
                break;
        }
        CHECK(pos == last + 1, "part %d written", i);
        if (cut && i == 1)
            CHECK(ftruncate(f.fd, 0) == 0, "truncate");
        /* Inline, the pump catches up by itself; a thread may still be at it. */
        int64_t hashed = cf_ranged_hashed(rf);
        CHECK(i == 0 ? (thread ? hashed <= total : hashed == total) : hashed == 0,
              "hashed prefix after part %d (thread %d): %lld", i, thread, (long long)hashed);
        cf_transfer_free(t);
    }
    int rc, steps = 0;
    while ((rc = cf_ranged_catch_up(rf, 1 << 20, err, sizeof err)) == 1)
        steps++;
    if (cut) {
        CHECK(rc == -1 && strstr(err, "cannot read back") && strstr(err, "short file"),
              "read-back of a cut file fails (thread %d): %d, %s", thread, rc, rc < 0 ? err : "");
        cf_ranged_free(rf);
        cf_tmpfile_discard(&f);
        return;
    }
    CHECK(rc == 0 && cf_ranged_hashed(rf) == total, "caught up (thread %d) after %d steps: %lld", thread, steps,
          (long long)cf_ranged_hashed(rf));
    char hex[CF_HEX_MAX], want[CF_HEX_MAX];
    cf_digests_hex(cf_ranged_digests(rf), CF_SHA1, hex);
    server_sha1(s, total, 7, -1, -1, want);
    CHECK(strcmp(hex, want) == 0, "whole-file SHA-1 from out-of-order parts (thread %d): %s, want %s", thread,
          hex, want);
    cf_ranged_free(rf);
    cf_tmpfile_discard(&f);
}

/* ---- commit jobs ------------------------------------------------------------- */

static void test_commit(cf_session *s)
{
    char target[128], err[CF_ERRLEN];
    snprintf(target, sizeof target, "%s/committed.txt", tmpdir);
    unlink(target);
    cf_tmpfile f;
    CHECK(cf_tmpfile_create(&f, target, err, sizeof err) == 0, "tmpfile");
    cf_tmpfile_write(&f, "hello", 5, err, sizeof err);
    cf_commit *c = cf_commit_start(s, &f, target, 0, 1);
    CHECK(c && f.fd < 0 && f.path == NULL, "the job takes the file over");
    double t0 = now();
    struct pollfd p = {.fd = cf_session_fd(s), .events = POLLIN};
    while (!cf_commit_done(c) && now() - t0 < 5) {
        poll(&p, 1, 1000);
        cf_session_run(s, 0);
    }
    const char *msg;
    CHECK(cf_commit_done(c) && cf_commit_result(c, &msg) == CF_OK, "committed on a worker thread");
    struct stat st;
    CHECK(stat(target, &st) == 0 && st.st_size == 5, "the target exists with the bytes");
    cf_commit_free(c);

    /* Without overwrite an existing target stays as it is. */
    CHECK(cf_tmpfile_create(&f, target, err, sizeof err) == 0, "tmpfile");
    cf_tmpfile_write(&f, "other!", 6, err, sizeof err);
    c = cf_commit_start(s, &f, target, 0, 1);
    while (!cf_commit_done(c) && now() - t0 < 5)
        cf_session_run(s, 100);
    CHECK(cf_commit_result(c, &msg) == CF_EEXISTS, "no clobbering: %s", msg);
    CHECK(stat(target, &st) == 0 && st.st_size == 5, "the old file is untouched");
    cf_commit_free(c);
    unlink(target);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cf-engine-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pid_t server = start_server();
    cf_session *s = cf_session_new();
    test_concurrent(s);
    test_nonblocking_peek(s);
    test_stall(s);
    test_session_fd(s);
    test_ranged(s, 0, 0);
    test_ranged(s, 1, 0);
    test_ranged(s, 1, 1);
    test_commit(s);
    cf_session_free(s);
    curl_global_cleanup();
    kill(server, SIGTERM);
    waitpid(server, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        printf("could not remove %s\n", tmpdir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
