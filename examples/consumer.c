/* SPDX-License-Identifier: MIT */
/*
 * consumer: the receiving half of the classic multiprocessing producer /
 * consumer (see examples/producer.c).  Waits for the queue to appear,
 * receives until it has an end marker from each of --producers producers,
 * and checks every message: intact (checksum), and in order per producer
 * (FIFO per producer holds even with several consumers, which each see a
 * subsequence).  Prints "received N messages, E errors" and exits 0 only if
 * E is 0.
 *
 * The data path needs no daemon: if shmqd dies meanwhile, messages keep
 * flowing, and only the final unlink (a control call) reports that the
 * daemon is gone.
 *
 * Exit status: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <shmq/shmq.h>

#include "connect.h"

#include "message.h"

static const char *prog = "consumer";

struct options {
	const char *socket_path;
	const char *queue;
	uint32_t producers;
	uint64_t expect; /* UINT64_MAX: not checked */
	uint64_t timeout_ns;
	int keep;
	int zero_copy;
	int verbose;
};

/* What we know of one producer: it is identified by its pid. */
struct producer {
	uint32_t id;
	uint64_t next_seq; /* lowest seq still acceptable */
	uint64_t received;
	int ended;
};

struct tally {
	struct producer *p;
	size_t n, cap;
	uint64_t received; /* DATA messages */
	uint64_t errors;
	uint32_t ends;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s --queue NAME [options]\n"
		"Receive and verify messages from examples/producer until every producer's\n"
		"end marker has arrived; print \"received N messages, E errors\".\n"
		"  -q, --queue NAME     queue to receive from; waited for if missing\n"
		"  -p, --producers P    end markers to wait for (default 1)\n"
		"  -e, --expect N       also fail unless exactly N messages arrive\n"
		"      --zero-copy      receive with peek/release instead of copying\n"
		"      --keep           do not unlink the queue at the end\n"
		"  -t, --timeout SEC    give up after SEC without a message (default 30)\n"
		"  -v, --verbose        report every bad message\n"
		"  -s, --socket PATH    shmqd control socket (default: $SHMQ_SOCKET, else the\n"
		"                       library's default path)\n"
		"  -h, --help           this text\n",
		prog);
}

static int fail(const char *what, int r)
{
	/* the daemon's (or libshmq's) reason, when there is one: it says why */
	if (shmq_last_error()[0])
		fprintf(stderr, "%s: %s: %s: %s\n", prog, what, shmq_strerror(r),
			shmq_last_error());
	else
		fprintf(stderr, "%s: %s: %s\n", prog, what, shmq_strerror(r));
	return EXIT_FAILURE;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return -1;
	*ret = v;
	return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	enum { OPT_KEEP = 256, OPT_ZERO_COPY };
	static const struct option opts[] = {
		{"queue", required_argument, NULL, 'q'},
		{"producers", required_argument, NULL, 'p'},
		{"expect", required_argument, NULL, 'e'},
		{"zero-copy", no_argument, NULL, OPT_ZERO_COPY},
		{"keep", no_argument, NULL, OPT_KEEP},
		{"timeout", required_argument, NULL, 't'},
		{"verbose", no_argument, NULL, 'v'},
		{"socket", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint64_t v;
	int opt;

	while ((opt = getopt_long(argc, argv, "q:p:e:t:vs:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			o->queue = optarg;
			break;
		case 'p':
			if (parse_u64(optarg, 1, 1 << 16, &v) < 0)
				goto bad;
			o->producers = (uint32_t)v;
			break;
		case 'e':
			if (parse_u64(optarg, 0, UINT64_MAX - 1, &o->expect) < 0)
				goto bad;
			break;
		case OPT_ZERO_COPY:
			o->zero_copy = 1;
			break;
		case OPT_KEEP:
			o->keep = 1;
			break;
		case 't':
			if (parse_u64(optarg, 1, 86400, &v) < 0)
				goto bad;
			o->timeout_ns = v * 1000000000;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 's':
			o->socket_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc || !o->queue) {
		fprintf(stderr, "%s: --queue is required\n", prog);
		usage(stderr);
		return -1;
	}
	return 1;

bad:
	fprintf(stderr, "%s: bad value '%s'\n", prog, optarg);
	usage(stderr);
	return -1;
}

static struct producer *producer_find(struct tally *t, uint32_t id)
{
	struct producer *p;

	for (size_t i = 0; i < t->n; i++)
		if (t->p[i].id == id)
			return &t->p[i];
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 8;

		p = realloc(t->p, cap * sizeof(*p));
		if (!p)
			return NULL;
		t->p = p;
		t->cap = cap;
	}
	p = &t->p[t->n++];
	*p = (struct producer){.id = id};
	return p;
}

__attribute__((format(printf, 3, 4))) static void bad(struct tally *t, const struct options *o,
						      const char *fmt, ...)
{
	va_list ap;

	t->errors++;
	if (!o->verbose && t->errors > 10)
		return; /* the summary line still counts them */
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Check one received message and account for it. */
static void account(struct tally *t, const struct options *o, const void *msg, size_t len)
{
	struct msg_hdr h;
	struct producer *p;

	if (msg_check(msg, len, &h) < 0) {
		bad(t, o, "corrupt message of %zu bytes (after %" PRIu64 " good ones)", len,
		    t->received);
		return;
	}
	p = producer_find(t, h.producer);
	if (!p) {
		bad(t, o, "out of memory tracking producer %" PRIu32, h.producer);
		return;
	}
	if (h.type == MSG_END) {
		t->ends++;
		p->ended = 1;
		return;
	}
	t->received++;
	p->received++;
	if (p->ended)
		bad(t, o, "producer %" PRIu32 " sent seq %" PRIu64 " after its end marker",
		    h.producer, h.seq);
	else if (h.seq < p->next_seq)
		bad(t, o, "producer %" PRIu32 ": seq %" PRIu64 " out of order or duplicated",
		    h.producer, h.seq);
	else
		p->next_seq = h.seq + 1;
}

static struct shmq_queue *open_when_there(struct shmq_client *c, const struct options *o)
{
	uint64_t deadline_ns = shmq_deadline_after(o->timeout_ns);
	struct shmq_queue *q;
	int r;

	/* Producers create the queue; starting first is fine. */
	while ((r = shmq_queue_open(c, o->queue, SHMQ_RECV, NULL, &q)) == -ENOENT &&
	       shmq_deadline_after(0) < deadline_ns) {
		struct timespec ts = {.tv_nsec = 10000000};

		nanosleep(&ts, NULL);
	}
	if (r < 0) {
		fail("opening the queue", r);
		return NULL;
	}
	return q;
}

static int receive_one(struct shmq_queue *q, struct tally *t, const struct options *o, void *buf,
		       size_t size)
{
	uint64_t deadline_ns = shmq_deadline_after(o->timeout_ns);
	const void *msg;
	int n;

	if (!o->zero_copy) {
		n = shmq_queue_recv_wait(q, buf, size, deadline_ns);
		if (n >= 0)
			account(t, o, buf, (size_t)n);
	} else {
		n = shmq_queue_peek(q, deadline_ns, &msg);
		if (n >= 0) {
			account(t, o, msg, (size_t)n);
			shmq_queue_release(q);
		}
	}
	return n;
}

int main(int argc, char **argv)
{
	struct options o = {
		.producers = 1,
		.expect = UINT64_MAX,
		.timeout_ns = UINT64_C(30) * 1000000000,
	};
	struct tally t = {.p = NULL};
	struct shmq_client *c;
	struct shmq_queue *q;
	uint64_t t0 = 0;
	double secs;
	void *buf = NULL;
	size_t size;
	int r, status = EXIT_FAILURE;

	r = parse_args(argc, argv, &o);
	if (r <= 0)
		return r == 0 ? EXIT_SUCCESS : 2;

	r = example_connect(prog, o.socket_path, &c);
	if (r < 0)
		return EXIT_FAILURE;
	q = open_when_there(c, &o);
	if (!q)
		goto out_client;
	size = (size_t)shmq_queue_max_msg(q);
	buf = malloc(size);
	if (!buf) {
		fail("allocating a receive buffer", -ENOMEM);
		goto out_queue;
	}

	while (t.ends < o.producers) {
		r = receive_one(q, &t, &o, buf, size);
		if (r == -ETIMEDOUT) {
			fprintf(stderr,
				"%s: no message for %" PRIu64 " s; %" PRIu32 " of %" PRIu32
				" producers finished\n",
				prog, o.timeout_ns / 1000000000, t.ends, o.producers);
			t.errors++;
			break;
		}
		if (r == -EBADMSG || r == -EMSGSIZE) {
			/* The library consumed the bad slot; the queue moves on. */
			bad(&t, &o, "receive: %s", shmq_strerror(r));
			continue;
		}
		if (r < 0) {
			fail("receive", r);
			t.errors++;
			break;
		}
		if (!t0)
			t0 = shmq_deadline_after(0); /* rate from the first message on */
	}
	secs = t0 ? (double)(shmq_deadline_after(0) - t0) / 1e9 : 0.0;

	if (o.expect != UINT64_MAX && t.received != o.expect)
		bad(&t, &o, "expected %" PRIu64 " messages, got %" PRIu64, o.expect, t.received);

	printf("received %" PRIu64 " messages, %" PRIu64 " errors\n", t.received, t.errors);
	printf("%s: %zu producers, %" PRIu32 " end markers, %.3f s, %.0f msg/s\n", prog, t.n,
	       t.ends, secs, secs > 0 ? (double)t.received / secs : 0.0);
	status = t.errors ? EXIT_FAILURE : EXIT_SUCCESS;

	if (!o.keep) {
		/* Another consumer may have unlinked it first (-ENOENT): that is fine. */
		r = shmq_unlink(c, o.queue);
		if (r < 0 && r != -ENOENT)
			fprintf(stderr, "%s: note: unlinking %s: %s%s\n", prog, o.queue,
				shmq_strerror(r),
				r == -ECONNRESET ? " (shmqd is gone; the data path did not need it)"
						 : "");
	}

out_queue:
	shmq_queue_close(q);
out_client:
	shmq_client_close(c);
	free(buf);
	free(t.p);
	return status;
}
