/* SPDX-License-Identifier: MIT */
/*
 * The optional metrics endpoint: with `metrics-socket = PATH`, shmqd
 * answers HTTP GET on a Unix stream socket with OpenMetrics text, for a
 * local scraper or a reverse proxy (the unit keeps the daemon off the
 * network: RestrictAddressFamilies).  The figures are the daemon's own:
 * clients, objects, memory, and per object its handles, memory and the
 * counters summed over its session records.  shmqctl metrics gives more
 * (live depths, per-user use) from a client's views.
 *
 * The daemon never blocks on a scraper: each connection is read and
 * written as epoll says it can be, the request is at most METRICS_REQ_MAX
 * bytes, at most METRICS_CONNS are open at once (more are closed at
 * accept), and one that has not finished within METRICS_IDLE_NS is
 * dropped on the tick.  The body is made once the request is complete.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/kind.h"
#include "daemon/log.h"
#include "daemon/shmqd.h"
#include "shm/layout.h"

#define METRICS_REQ_MAX 4096
#define METRICS_CONNS	8
#define METRICS_IDLE_NS (UINT64_C(5) * 1000000000)

struct metrics_conn {
	struct shmqd_watch watch; /* first: dispatch() finds the connection from it */
	struct shmqd_list link;
	int fd;
	uint64_t opened_ns;
	char req[METRICS_REQ_MAX + 1];
	size_t req_len;
	char *out; /* the reply, once the request is complete */
	size_t out_len, out_off;
};

static void conn_close(struct shmqd *d, struct metrics_conn *m)
{
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, m->fd, NULL);
	close(m->fd);
	list_del(&m->link);
	d->n_metrics_conns--;
	free(m->out);
	free(m);
}

/* --- The body --- */

struct buf {
	char *p;
	size_t len, cap;
	bool failed;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (int tries = 0; tries < 2 && !b->failed; tries++) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if (b->p && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap ? b->cap : 8192) * 2 + (size_t)n;
		char *p = realloc(b->p, cap);

		if (!p) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
	put(b, "# TYPE %s %s\n# HELP %s %s\n", name, type, name, help);
}

/*
 * One family over every object, @totals[i] the i-th object's counters.
 * Object names are [A-Za-z0-9._-]: nothing in a label value needs escaping.
 */
static void per_object(struct shmqd *d, struct buf *b, const struct shmq_counter_totals *totals,
		       const char *name, const char *type, const char *help, int which)
{
	bool counter = !strcmp(type, "counter");
	struct shmqd_list *pos, *tmp;
	size_t i = 0;

	family(b, name, type, help);
	list_for_each_safe(pos, tmp, &d->objects)
	{
		const struct shmqd_object *o = container_of(pos, struct shmqd_object, link);
		const struct shmq_counter_totals t = totals[i++];
		uint64_t v;

		v = which == 0	 ? t.sent
		    : which == 1 ? t.received
		    : which == 2 ? t.full
		    : which == 3 ? t.empty
		    : which == 4 ? t.sleeps
		    : which == 5 ? t.wakes
		    : which == 6 ? o->n_attached
				 : o->size;
		put(b, "%s%s{name=\"%s\",kind=\"%s\"} %" PRIu64 "\n", name, counter ? "_total" : "",
		    o->name, shmqd_kind_name(o->kind), v);
	}
}

static int body(struct shmqd *d, struct buf *b)
{
	static const struct {
		const char *name, *type, *help;
	} fams[] = {
		{"shmq_object_sent", "counter", "Messages sent, posts, sets or releases."},
		{"shmq_object_received", "counter",
		 "Messages received, tokens taken, acquisitions."},
		{"shmq_object_full", "counter", "Sends that found the queue full."},
		{"shmq_object_empty", "counter", "Receives that found it empty."},
		{"shmq_object_sleeps", "counter", "Futex waits entered."},
		{"shmq_object_wakes", "counter", "Futex wakes issued."},
		{"shmq_object_handles", "gauge", "Handles open on it, views included."},
		{"shmq_object_memory_bytes", "gauge", "Bytes of its segment."},
	};

	struct shmq_counter_totals *totals;
	struct shmqd_list *pos, *tmp;
	size_t n = 0;

	list_for_each_safe(pos, tmp, &d->objects) n++;
	totals = calloc(n ? n : 1, sizeof(*totals));
	if (!totals)
		return -ENOMEM;
	/* each object's sum once, for the six counter families */
	n = 0;
	list_for_each_safe(pos, tmp, &d->objects) shmq__segment_counters(
		&container_of(pos, struct shmqd_object, link)->seg, &totals[n++]);
	family(b, "shmq_daemon_up", "gauge", "1: shmqd answered.");
	put(b, "shmq_daemon_up 1\n");
	family(b, "shmq_daemon_uptime_seconds", "gauge", "Seconds since shmqd started.");
	put(b, "shmq_daemon_uptime_seconds %.3f\n", (double)(shmqd_now_ns() - d->started_ns) / 1e9);
	family(b, "shmq_daemon_clients", "gauge", "Connected clients.");
	put(b, "shmq_daemon_clients %" PRIu32 "\n", d->n_sessions);
	family(b, "shmq_daemon_clients_max", "gauge", "max-clients.");
	put(b, "shmq_daemon_clients_max %" PRIu32 "\n", d->cfg.max_clients);
	family(b, "shmq_daemon_objects", "gauge",
	       "Objects, unlinked ones still attached included.");
	put(b, "shmq_daemon_objects %" PRIu32 "\n", d->n_objects);
	family(b, "shmq_daemon_memory_bytes", "gauge", "Bytes of every segment.");
	put(b, "shmq_daemon_memory_bytes %" PRIu64 "\n", d->memory_bytes);
	for (int i = 0; i < (int)(sizeof(fams) / sizeof(fams[0])); i++)
		per_object(d, b, totals, fams[i].name, fams[i].type, fams[i].help, i);
	put(b, "# EOF\n");
	free(totals);
	return b->failed ? -ENOMEM : 0;
}

/* The whole reply for @m's request, into m->out.  Return: 0; -ENOMEM. */
static int reply(struct shmqd *d, struct metrics_conn *m)
{
	static const char ct[] = "application/openmetrics-text; version=1.0.0; charset=utf-8";
	struct buf b = {0}, r = {0};
	bool get = !strncmp(m->req, "GET ", 4), ok;
	const char *path = m->req + 4;

	ok = get && (!strncmp(path, "/metrics ", 9) || !strncmp(path, "/ ", 2));
	if (ok && body(d, &b) < 0) {
		free(b.p);
		return -ENOMEM;
	}
	if (ok)
		put(&r, "HTTP/1.0 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", ct,
		    b.len);
	else {
		const char *text = get ? "GET /metrics instead\n" : "only GET /metrics here\n";

		put(&r, "HTTP/1.0 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s",
		    get ? "404 Not Found" : "405 Method Not Allowed", strlen(text), text);
	}
	if (ok)
		put(&r, "%.*s", (int)b.len, b.p ? b.p : "");
	free(b.p);
	if (r.failed) {
		free(r.p);
		return -ENOMEM;
	}
	m->out = r.p;
	m->out_len = r.len;
	return 0;
}

/* --- Events --- */

static void on_readable(struct shmqd *d, struct metrics_conn *m)
{
	ssize_t n = recv(m->fd, m->req + m->req_len, METRICS_REQ_MAX - m->req_len, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(d, m);
		return;
	}
	m->req_len += (size_t)n;
	m->req[m->req_len] = '\0';
	if (!strstr(m->req, "\r\n\r\n") && !strstr(m->req, "\n\n")) {
		if (m->req_len == METRICS_REQ_MAX)
			conn_close(d, m); /* no end of headers in 4 KiB: not a scraper */
		return;
	}
	if (reply(d, m) < 0) {
		log_warning("metrics: out of memory for a reply");
		conn_close(d, m);
		return;
	}
	struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = &m->watch};

	if (epoll_ctl(d->epfd, EPOLL_CTL_MOD, m->fd, &ev) < 0)
		conn_close(d, m);
}

static void on_writable(struct shmqd *d, struct metrics_conn *m)
{
	ssize_t n = send(m->fd, m->out + m->out_off, m->out_len - m->out_off,
			 MSG_DONTWAIT | MSG_NOSIGNAL);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0)
		m->out_off += (size_t)n;
	if (n <= 0 || m->out_off == m->out_len)
		conn_close(d, m); /* HTTP/1.0: the close ends the body */
}

void shmqd_metrics_on_event(struct shmqd *d, struct shmqd_watch *w, uint32_t events)
{
	struct metrics_conn *m;
	int fd;

	if (w == &d->metrics_watch) {
		fd = accept4(d->metrics_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		m = d->n_metrics_conns < METRICS_CONNS ? calloc(1, sizeof(*m)) : NULL;
		if (!m) {
			close(fd); /* too many scrapers at once: this one tries again */
			return;
		}
		m->watch.source = SHMQD_SRC_METRICS_CONN;
		m->fd = fd;
		m->opened_ns = shmqd_now_ns();
		if (shmqd_epoll_add(d, fd, EPOLLIN, &m->watch) < 0) {
			close(fd);
			free(m);
			return;
		}
		list_add_tail(&d->metrics_conns, &m->link);
		d->n_metrics_conns++;
		return;
	}
	m = container_of(w, struct metrics_conn, watch);
	if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLIN)) {
		conn_close(d, m);
		return;
	}
	if (m->out)
		on_writable(d, m);
	else
		on_readable(d, m);
}

void shmqd_metrics_tick(struct shmqd *d, uint64_t now_ns)
{
	struct shmqd_list *pos, *tmp;

	list_for_each_safe(pos, tmp, &d->metrics_conns)
	{
		struct metrics_conn *m = container_of(pos, struct metrics_conn, link);

		if (now_ns - m->opened_ns >= METRICS_IDLE_NS)
			conn_close(d, m); /* a scraper that went quiet holds no slot */
	}
}

/* --- Set-up --- */

int shmqd_metrics_open(struct shmqd *d)
{
	const char *path = d->cfg.metrics_socket;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	mode_t old;
	int r;

	list_init(&d->metrics_conns);
	d->metrics_fd = -1;
	if (!*path)
		return 0;
	if (strlen(path) >= sizeof(sa.sun_path))
		return log_errno(-ENAMETOOLONG, "metrics-socket %s", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	d->metrics_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (d->metrics_fd < 0)
		return log_errno(-errno, "metrics socket");
	/* A stale socket of an earlier run: a live one answers, and is left alone. */
	if (connect(d->metrics_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(d->metrics_fd);
		d->metrics_fd = -1;
		return log_errno(-EADDRINUSE, "metrics-socket %s: something answers there", path);
	}
	close(d->metrics_fd);
	d->metrics_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (d->metrics_fd < 0)
		return log_errno(-errno, "metrics socket");
	(void)unlink(path);
	/* born with the control socket's mode, as the figures are any client's to ask */
	old = umask(~d->cfg.socket_mode & 0777);
	r = bind(d->metrics_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (r == 0 && listen(d->metrics_fd, METRICS_CONNS) < 0)
		r = -errno;
	if (r < 0) {
		close(d->metrics_fd);
		d->metrics_fd = -1;
		return log_errno(r, "metrics-socket %s", path);
	}
	d->metrics_watch.source = SHMQD_SRC_METRICS;
	r = shmqd_epoll_add(d, d->metrics_fd, EPOLLIN, &d->metrics_watch);
	if (r < 0)
		return r;
	log_info("metrics on %s (HTTP GET /metrics, OpenMetrics text)", path);
	return 0;
}

void shmqd_metrics_close(struct shmqd *d)
{
	struct shmqd_list *pos, *tmp;

	if (!d->metrics_conns.next)
		return; /* never opened */
	list_for_each_safe(pos, tmp, &d->metrics_conns)
		conn_close(d, container_of(pos, struct metrics_conn, link));
	if (d->metrics_fd >= 0) {
		close(d->metrics_fd);
		d->metrics_fd = -1;
		(void)unlink(d->cfg.metrics_socket);
	}
}
