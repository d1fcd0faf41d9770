/*
 * The event engine: libcurl's multi socket interface on an epoll
 * descriptor.  libcurl tells us which sockets to watch (socket callback)
 * and when it wants to be called without I/O (timer callback); we only
 * record both.  cf_session_run waits on the epoll descriptor, then calls
 * curl_multi_socket_action for what is ready.  Nothing blocks anywhere
 * else, so one thread can drive many transfers, and a host's event loop can
 * watch the one descriptor (cf_session_fd) instead of calling us blindly.
 */
#include "engine.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 64
#define MAX_IDLE_CONNECTIONS 64

long cf_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Idle kept-alive connections.  When a transfer ends, libcurl keeps its
 * connection for the next request to that host, and nobody watches the
 * socket.  A server may still send bytes nobody asked for (more than its
 * Content-Length said, arriving after the answer); libcurl 7.88 takes such
 * a socket for alive and reads those bytes as the next request's answer
 * ("Received HTTP/0.9").  So we watch an idle socket ourselves (its epoll
 * entry marked IDLE), and when it turns readable (stray bytes, or EOF) the
 * connection is killed — what came is discarded, then it is shut down both
 * ways — so that libcurl finds it dead and connects afresh.  Idle events are
 * handled before curl runs, so a new request never picks such a socket. */
#define IDLE_MARK ((uint64_t)1 << 32)
#define DRAIN_MAX (256 * 1024) /* stray bytes discarded at most (more make the kernel reset it) */

static uint64_t fd_key(curl_socket_t fd, int idle)
{
    return (uint64_t)(uint32_t)fd | (idle ? IDLE_MARK : 0);
}

/* The transfer on `easy` ended: if libcurl kept its connection, watch it.
 * Only a socket nobody watches is taken (EPOLL_CTL_ADD): when curl already
 * watches it, another request is using the connection again. */
static void watch_idle(cf_session *s, CURL *easy)
{
    curl_socket_t fd = CURL_SOCKET_BAD;
    if (curl_easy_getinfo(easy, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd == CURL_SOCKET_BAD)
        return;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = fd_key(fd, 1);
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev); /* EEXIST: in use again */
}

/* An idle socket turned readable: if there really is something (bytes, EOF
 * or an error), the connection must not carry another request. */
static void check_idle(cf_session *s, int fd)
{
    char buf[4096];
    ssize_t n = recv(fd, buf, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return; /* nothing after all: keep watching */
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
    /* Discard what came, so that a peek finds the end of the stream rather
     * than data (libcurl takes a socket with data waiting for alive). */
    size_t drained = 0;
    while (n > 0 && drained < DRAIN_MAX) {
        n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0)
            drained += (size_t)n;
    }
    shutdown(fd, SHUT_RDWR);
}

/* CURLMOPT_SOCKETFUNCTION: watch (or stop watching) one socket. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    cf_session *s = userp;
    (void)easy;
    (void)socketp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL); /* fails harmlessly if already closed */
        return 0;
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    ev.data.u64 = fd_key(fd, 0); /* an idle socket that is used again loses its mark */
    if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev) != 0 && errno == ENOENT)
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: remember when curl wants its timeout action. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    cf_session *s = userp;
    (void)multi;
    s->timer_due = timeout_ms < 0 ? -1 : cf_now_ms() + timeout_ms;
    return 0;
}

cf_session *cf_session_new(void)
{
    cf_session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->timer_due = -1;
    s->epfd = s->wakefd = -1;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    s->multi = curl_multi_init();
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.u64 = fd_key(s->wakefd, 0);
    if (s->epfd < 0 || s->wakefd < 0 || !s->multi ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wakefd, &ev) != 0) {
        cf_session_free(s);
        return NULL;
    }
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, (void *)s);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, (void *)s);
    /* Idle connections kept for reuse, at most: a long-running host should
     * not run out of descriptors because of connections nobody will reuse. */
    curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, (long)MAX_IDLE_CONNECTIONS);
    return s;
}

void cf_session_free(cf_session *s)
{
    if (!s || s->closed)
        return;
    s->closed = 1;
    if (s->workers)
        cf_workers_free(s->workers);
    s->workers = NULL;
    cf_hasher_free(s->hasher); /* after hashing what it was given */
    s->hasher = NULL;
    /* Transfers still running are aborted; their owners may still read
     * what they received, and free them later. */
    while (s->transfers) {
        cf_transfer *t = s->transfers;
        s->transfers = t->next;
        curl_multi_remove_handle(s->multi, t->easy);
        curl_easy_cleanup(t->easy);
        t->easy = NULL;
        t->in_multi = 0;
        t->prev = t->next = NULL;
        if (!t->kind && !t->done) {
            t->kind = CF_ECANCELED;
            snprintf(t->message, sizeof t->message, "the session was closed");
        }
    }
    for (int i = 0; i < s->npool; i++)
        curl_easy_cleanup(s->pool[i]);
    s->npool = 0;
    for (int i = 0; i < s->nbufs; i++)
        free(s->bufs[i]);
    s->nbufs = 0;
    if (s->multi)
        curl_multi_cleanup(s->multi);
    s->multi = NULL;
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->wakefd >= 0)
        close(s->wakefd);
    s->epfd = s->wakefd = -1;
    if (s->refs == 0) {
        free(s->ready);
        free(s);
    }
}

void cf_session_unref(cf_session *s)
{
    if (--s->refs == 0 && s->closed) {
        free(s->ready);
        free(s);
    }
}

void cf_session_notify(cf_session *s, cf_transfer *t)
{
    if (t->in_ready || s->closed)
        return;
    if (s->nready == s->capready) {
        size_t cap = s->capready ? 2 * s->capready : 64;
        cf_transfer **grown = realloc(s->ready, cap * sizeof *grown);
        if (!grown)
            return; /* the waiter will find out at its next look */
        s->ready = grown;
        s->capready = cap;
    }
    t->ready_index = s->nready;
    t->in_ready = 1;
    s->ready[s->nready++] = t;
}

void cf_session_forget(cf_session *s, cf_transfer *t)
{
    if (!t->in_ready)
        return;
    cf_transfer *last = s->ready[--s->nready];
    s->ready[t->ready_index] = last;
    last->ready_index = t->ready_index;
    t->in_ready = 0;
}

size_t cf_session_take_ready(cf_session *s, int64_t *ids, size_t max)
{
    size_t n = 0;
    while (n < max && s->nready > 0) {
        cf_transfer *t = s->ready[--s->nready];
        t->in_ready = 0;
        ids[n++] = t->id;
    }
    return n;
}

int cf_session_fd(const cf_session *s)
{
    return s->epfd;
}

long cf_session_timeout(cf_session *s)
{
    long now = cf_now_ms(), due = -1;
    if (s->timer_due >= 0)
        due = s->timer_due <= now ? 0 : s->timer_due - now;
    for (cf_transfer *t = s->transfers; t && due != 0; t = t->next) {
        long left = cf_transfer_stall_left(t, now);
        if (left >= 0 && (due < 0 || left < due))
            due = left;
    }
    return due;
}

/* Records every finished transfer. */
static void collect_done(cf_session *s)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        watch_idle(s, m->easy_handle);
        cf_transfer *t = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        if (t)
            cf_transfer_finished(t, m->data.result);
    }
}

int cf_session_run(cf_session *s, long timeout_ms)
{
    if (s->closed)
        return -1;
    long due = cf_session_timeout(s);
    long wait = timeout_ms;
    if (due >= 0 && (wait < 0 || due < wait))
        wait = due;
    if (wait > INT32_MAX)
        wait = INT32_MAX;
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(s->epfd, evs, MAX_EVENTS, (int)wait);
    if (n < 0) {
        if (errno != EINTR)
            return -1;
        n = 0;
    }
    int running;
    /* Idle connections first: curl may start a waiting request on any
     * socket_action call below, and must not find a poisoned one. */
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 & IDLE_MARK) {
            check_idle(s, (int)(uint32_t)evs[i].data.u64);
            evs[i].data.u64 = fd_key(-1, 0);
        }
    }
    for (int i = 0; i < n; i++) {
        int fd = (int)(uint32_t)evs[i].data.u64;
        if (fd < 0)
            continue;
        if (fd == s->wakefd) {
            uint64_t v;
            if (read(fd, &v, sizeof v) < 0) { /* EAGAIN: another run took it */ }
            continue;
        }
        int mask = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                   ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                   ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(s->multi, fd, mask, &running);
    }
    if (s->timer_due >= 0 && s->timer_due <= cf_now_ms()) {
        s->timer_due = -1;
        curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    collect_done(s);
    /* Stall clocks are checked after the I/O above, so bytes that waited in
     * the kernel while nobody ran the engine count as arrived. */
    long now = cf_now_ms();
    for (cf_transfer *t = s->transfers, *next; t; t = next) {
        next = t->next;
        cf_transfer_check_stall(t, now);
    }
    return 0;
}
