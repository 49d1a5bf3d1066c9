/* SPDX-License-Identifier: MIT */
/*
 * async_server: one thread serving many queues and a timer through the
 * poller.  It creates --queues request queues "<prefix>-req-<i>" and as many
 * reply queues "<prefix>-rep-<i>", echoes every request on the reply queue of
 * the same index with "ok:" in front, and prints a line of statistics from a
 * periodic timer.  It stops after --count requests, or with exit status 1
 * when --timeout seconds pass first; its queues are unlinked on the way out.
 *
 * There is no thread per queue and no busy loop: every queue is a watch on
 * the poller, which sleeps in one io_uring_enter() until a request arrives
 * or the timer is due.  A reply queue that is full (a client that does not
 * read) makes the server wait for room on that queue alone, with a watch
 * for SHMQ_POLL_SEND, while it goes on serving the others.
 *
 * Exit status: 0 served --count requests, 1 failure or timeout, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "connect.h"

#define QUEUES_MAX 1024
#define MSG_MAX	   256
#define NS_PER_MS  UINT64_C(1000000)

static const char *prog = "async_server";

struct lane {
	struct server *sv;
	struct shmq_queue *req, *rep;
	struct shmq_watch *on_req;  /* always registered */
	struct shmq_watch *on_room; /* only while a reply is held back */
	char held[MSG_MAX + 3];	    /* "ok:" + request, waiting for room */
	int held_len;		    /* -1: nothing held */
};

struct server {
	struct shmq_client *c;
	struct shmq_poller *p;
	struct shmq_watch *tick;
	struct lane lanes[QUEUES_MAX];
	unsigned int n_queues;
	uint64_t count; /* stop after this many requests */
	uint64_t served;
	uint64_t ticks;
	uint64_t held_back; /* replies that had to wait for room */
	char prefix[32];
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [--socket PATH] [--queues N] [--count N] [--prefix NAME]\n"
		"          [--tick-ms MS] [--timeout SECONDS]\n"
		"Serve N request queues and a timer from one thread with the shmq poller.\n"
		"  -s, --socket PATH    shmqd control socket (default: $SHMQ_SOCKET, else the\n"
		"                       library's default path)\n"
		"  -n, --queues N       request queues to serve, 1..%d (default 100)\n"
		"  -c, --count N        stop after N requests (default 1000)\n"
		"  -p, --prefix NAME    queue names are NAME-req-I and NAME-rep-I\n"
		"                       (default: async-PID)\n"
		"  -k, --tick-ms MS     statistics line period (default 1000)\n"
		"  -t, --timeout SECS   give up (exit 1) after this long (default 60)\n"
		"  -h, --help           this text\n",
		prog, QUEUES_MAX);
}

static int fail(const char *what, int r)
{
	/* the daemon's (or libshmq's) reason, when there is one: it says why */
	if (shmq_last_error()[0])
		fprintf(stderr, "%s: %s: %s: %s\n", prog, what, shmq_strerror(r),
			shmq_last_error());
	else
		fprintf(stderr, "%s: %s: %s\n", prog, what, shmq_strerror(r));
	return r;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || !*s || *end || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int on_room(struct shmq_watch *w, int events, void *arg);

/* Send the reply, or hold it and wait for room on this reply queue alone. */
static int reply(struct lane *l, const char *msg, int len)
{
	int r = shmq_queue_send(l->rep, msg, (size_t)len);

	if (r != -EAGAIN)
		return r < 0 ? fail("sending a reply", r) : 0;
	memcpy(l->held, msg, (size_t)len);
	l->held_len = len;
	l->sv->held_back++;
	r = shmq_poller_add_queue(l->sv->p, l->rep, SHMQ_POLL_SEND, on_room, l, &l->on_room);
	return r < 0 ? fail("watching a reply queue for room", r) : 0;
}

static int on_room(struct shmq_watch *w, int events, void *arg)
{
	struct lane *l = arg;
	int r;

	if (events < 0)
		return fail("waiting for room", events);
	r = shmq_queue_send(l->rep, l->held, (size_t)l->held_len);
	if (r == -EAGAIN)
		return 0; /* another sender took the room: stay registered */
	shmq_watch_free(w);
	l->on_room = NULL;
	l->held_len = -1;
	return r < 0 ? fail("sending a held reply", r) : 0;
}

static int on_request(struct shmq_watch *w, int events, void *arg)
{
	struct lane *l = arg;
	struct server *sv = l->sv;
	char out[MSG_MAX + 3] = "ok:";
	int n, r;

	(void)w;
	if (events < 0)
		return fail("waiting for requests", events);
	/* A held reply keeps this lane's order: serve its next request after it. */
	while (l->held_len < 0 && (n = shmq_queue_recv(l->req, out + 3, MSG_MAX)) != -EAGAIN) {
		if (n < 0)
			return fail("receiving a request", n);
		r = reply(l, out, n + 3);
		if (r < 0)
			return r;
		if (++sv->served == sv->count) {
			shmq_poller_stop(sv->p);
			break;
		}
	}
	return 0;
}

static int on_tick(struct shmq_watch *w, int events, void *arg)
{
	struct server *sv = arg;

	(void)w;
	sv->ticks += (uint64_t)events;
	printf("tick %" PRIu64 ": served %" PRIu64 " of %" PRIu64 " requests\n", sv->ticks,
	       sv->served, sv->count);
	fflush(stdout);
	return 0;
}

static int on_timeout(struct shmq_watch *w, int events, void *arg)
{
	struct server *sv = arg;

	(void)w;
	(void)events;
	fprintf(stderr, "%s: timed out after %" PRIu64 " of %" PRIu64 " requests\n", prog,
		sv->served, sv->count);
	return -ETIMEDOUT;
}

static int open_lanes(struct server *sv)
{
	const unsigned int f = SHMQ_CREATE | SHMQ_EXCL;
	char name[64];
	int r;

	for (unsigned int i = 0; i < sv->n_queues; i++) {
		struct lane *l = &sv->lanes[i];

		*l = (struct lane){.sv = sv, .held_len = -1};
		snprintf(name, sizeof(name), "%s-rep-%u", sv->prefix, i);
		r = shmq_queue_open(sv->c, name, f | SHMQ_SEND, NULL, &l->rep);
		if (r < 0)
			return fail(name, r);
		/* Request queues last: a client that can open one finds its reply queue. */
		snprintf(name, sizeof(name), "%s-req-%u", sv->prefix, i);
		r = shmq_queue_open(sv->c, name, f | SHMQ_RECV, NULL, &l->req);
		if (r < 0)
			return fail(name, r);
		r = shmq_poller_add_queue(sv->p, l->req, SHMQ_POLL_RECV, on_request, l, &l->on_req);
		if (r < 0)
			return fail("watching a request queue", r);
	}
	return 0;
}

static void close_lanes(struct server *sv)
{
	char name[64];

	for (unsigned int i = 0; i < sv->n_queues; i++) {
		struct lane *l = &sv->lanes[i];

		shmq_watch_free(l->on_req);
		shmq_watch_free(l->on_room);
		if (l->req) {
			snprintf(name, sizeof(name), "%s-req-%u", sv->prefix, i);
			shmq_unlink(sv->c, name);
			shmq_queue_close(l->req);
		}
		if (l->rep) {
			snprintf(name, sizeof(name), "%s-rep-%u", sv->prefix, i);
			shmq_unlink(sv->c, name);
			shmq_queue_close(l->rep);
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"queues", required_argument, NULL, 'n'},
		{"count", required_argument, NULL, 'c'},
		{"prefix", required_argument, NULL, 'p'},
		{"tick-ms", required_argument, NULL, 'k'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct server sv;
	const char *socket_path = NULL;
	struct shmq_watch *deadline = NULL;
	uint64_t n_queues = 100, tick_ms = 1000, timeout_s = 60;
	int opt, r;

	sv.count = 1000;
	snprintf(sv.prefix, sizeof(sv.prefix), "async-%d", (int)getpid());
	while ((opt = getopt_long(argc, argv, "s:n:c:p:k:t:h", opts, NULL)) != -1) {
		r = 0;
		switch (opt) {
		case 's':
			socket_path = optarg;
			break;
		case 'n':
			r = parse_u64(optarg, 1, QUEUES_MAX, &n_queues);
			break;
		case 'c':
			r = parse_u64(optarg, 1, UINT64_MAX, &sv.count);
			break;
		case 'p':
			r = strlen(optarg) < sizeof(sv.prefix) - 1 ? 0 : -EINVAL;
			snprintf(sv.prefix, sizeof(sv.prefix), "%s", optarg);
			break;
		case 'k':
			r = parse_u64(optarg, 1, 3600000, &tick_ms);
			break;
		case 't':
			r = parse_u64(optarg, 1, 86400, &timeout_s);
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		default:
			usage(stderr);
			return 2;
		}
		if (r < 0) {
			fprintf(stderr, "%s: bad value for -%c: '%s'\n", prog, opt, optarg);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	sv.n_queues = (unsigned int)n_queues;

	r = example_connect(prog, socket_path, &sv.c);
	if (r < 0)
		return EXIT_FAILURE;
	r = shmq_poller_new(0, &sv.p);
	if (r < 0) {
		fail("creating the poller", r);
		shmq_client_close(sv.c);
		return EXIT_FAILURE;
	}
	r = open_lanes(&sv);
	if (r == 0)
		r = shmq_poller_add_timer(sv.p, shmq_deadline_after(tick_ms * NS_PER_MS),
					  tick_ms * NS_PER_MS, on_tick, &sv, &sv.tick);
	if (r == 0)
		r = shmq_poller_add_timer(sv.p, shmq_deadline_after(timeout_s * 1000 * NS_PER_MS),
					  0, on_timeout, &sv, &deadline);
	if (r == 0) {
		printf("serving %u queues %s-req-0..%u\n", sv.n_queues, sv.prefix, sv.n_queues - 1);
		fflush(stdout);
		r = shmq_poller_run(sv.p);
		if (r < 0 && r != -ETIMEDOUT)
			fail("running the poller", r);
	}
	if (r == 0)
		printf("served %" PRIu64 " requests on %u queues from one thread "
		       "(%" PRIu64 " timer ticks, %" PRIu64
		       " replies waited for room, backend %s)\n",
		       sv.served, sv.n_queues, sv.ticks, sv.held_back,
		       shmq_poller_backend(sv.p) == SHMQ_BACKEND_URING_FUTEX ? "io_uring futex"
									     : "helper thread");

	shmq_watch_free(sv.tick);
	shmq_watch_free(deadline);
	close_lanes(&sv);
	shmq_poller_free(sv.p);
	shmq_client_close(sv.c);
	return r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
