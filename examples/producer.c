/* SPDX-License-Identifier: MIT */
/*
 * producer: the sending half of the classic multiprocessing producer /
 * consumer, between unrelated processes.  Opens (creating if missing) a
 * queue, sends --count sequenced, checksummed messages, then one end marker
 * per consumer, so each of --consumers consumers (examples/consumer.c) knows
 * when this producer is done.
 *
 * Sends block (spin, then futex) while the queue is full: the data path
 * needs no daemon, so a producer keeps going even if shmqd dies meanwhile.
 *
 * Exit status: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "connect.h"

#include "message.h"

static const char *prog = "producer";

struct options {
	const char *socket_path;
	const char *queue;
	uint64_t count;
	uint32_t size;
	uint32_t consumers;
	uint32_t slots;
	uint32_t slot_size;
	uint32_t mode;
	uint64_t timeout_ns;
	int zero_copy;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s --queue NAME --count N [options]\n"
		"Send N sequenced, checksummed messages, then one end marker per consumer.\n"
		"  -q, --queue NAME     queue to send to; created if missing\n"
		"  -n, --count N        messages to send\n"
		"  -b, --size B         bytes per message, %zu..slot size (default 64)\n"
		"  -k, --consumers K    consumers to send end markers for (default 1)\n"
		"      --slots N        create: capacity, a power of two (default 1024)\n"
		"      --slot-size B    create: largest message (default: max(B, 256))\n"
		"      --mode MODE      create: mpmc (default), spsc, mpsc or spmc\n"
		"      --zero-copy      send with reserve/commit instead of copying\n"
		"  -t, --timeout SEC    give up when the queue stays full this long (default 30)\n"
		"  -s, --socket PATH    shmqd control socket (default: $SHMQ_SOCKET, else the\n"
		"                       library's default path)\n"
		"  -h, --help           this text\n",
		prog, sizeof(struct msg_hdr));
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
	enum { OPT_SLOTS = 256, OPT_SLOT_SIZE, OPT_MODE, OPT_ZERO_COPY };
	static const struct option opts[] = {
		{"queue", required_argument, NULL, 'q'},
		{"count", required_argument, NULL, 'n'},
		{"size", required_argument, NULL, 'b'},
		{"consumers", required_argument, NULL, 'k'},
		{"slots", required_argument, NULL, OPT_SLOTS},
		{"slot-size", required_argument, NULL, OPT_SLOT_SIZE},
		{"mode", required_argument, NULL, OPT_MODE},
		{"zero-copy", no_argument, NULL, OPT_ZERO_COPY},
		{"timeout", required_argument, NULL, 't'},
		{"socket", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static const char *const modes[] = {"mpmc", "spsc", "mpsc", "spmc"};
	static const uint32_t mode_val[] = {SHMQ_MPMC, SHMQ_SPSC, SHMQ_MPSC, SHMQ_SPMC};
	uint64_t v;
	int opt, have_count = 0;

	while ((opt = getopt_long(argc, argv, "q:n:b:k:t:s:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			o->queue = optarg;
			break;
		case 'n':
			if (parse_u64(optarg, 0, UINT64_MAX - 1, &o->count) < 0)
				goto bad;
			have_count = 1;
			break;
		case 'b':
			if (parse_u64(optarg, sizeof(struct msg_hdr), 1 << 24, &v) < 0)
				goto bad;
			o->size = (uint32_t)v;
			break;
		case 'k':
			if (parse_u64(optarg, 1, 1 << 16, &v) < 0)
				goto bad;
			o->consumers = (uint32_t)v;
			break;
		case OPT_SLOTS:
			if (parse_u64(optarg, 2, 1 << 24, &v) < 0 || (v & (v - 1)))
				goto bad;
			o->slots = (uint32_t)v;
			break;
		case OPT_SLOT_SIZE:
			if (parse_u64(optarg, 1, 1 << 24, &v) < 0)
				goto bad;
			o->slot_size = (uint32_t)v;
			break;
		case OPT_MODE:
			o->mode = UINT32_MAX;
			for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
				if (!strcmp(optarg, modes[i]))
					o->mode = mode_val[i];
			if (o->mode == UINT32_MAX)
				goto bad;
			break;
		case OPT_ZERO_COPY:
			o->zero_copy = 1;
			break;
		case 't':
			if (parse_u64(optarg, 1, 86400, &v) < 0)
				goto bad;
			o->timeout_ns = v * 1000000000;
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
	if (optind != argc || !o->queue || !have_count) {
		fprintf(stderr, "%s: --queue and --count are required\n", prog);
		usage(stderr);
		return -1;
	}
	if (!o->slot_size)
		o->slot_size = o->size > 256 ? o->size : 256;
	return 1;

bad:
	fprintf(stderr, "%s: bad value '%s'\n", prog, optarg);
	usage(stderr);
	return -1;
}

static int send_one(struct shmq_queue *q, const struct options *o, void *buf, uint32_t type,
		    uint64_t seq)
{
	uint64_t deadline_ns = shmq_deadline_after(o->timeout_ns);
	uint32_t id = (uint32_t)getpid();
	void *slot;
	int r;

	if (!o->zero_copy) {
		msg_build(buf, o->size, type, id, seq);
		return shmq_queue_send_wait(q, buf, o->size, deadline_ns);
	}
	r = shmq_queue_reserve(q, deadline_ns, &slot);
	if (r < 0)
		return r;
	msg_build(slot, o->size, type, id, seq);
	return shmq_queue_commit(q, o->size);
}

int main(int argc, char **argv)
{
	struct options o = {
		.count = 0,
		.size = 64,
		.consumers = 1,
		.slots = 1024,
		.mode = SHMQ_MPMC,
		.timeout_ns = UINT64_C(30) * 1000000000,
	};
	struct shmq_queue_attr attr = {.size = sizeof(attr)};
	struct shmq_client *c;
	struct shmq_queue *q;
	uint64_t t0, sent = 0;
	double secs;
	void *buf;
	int r, status = EXIT_FAILURE;

	r = parse_args(argc, argv, &o);
	if (r <= 0)
		return r == 0 ? EXIT_SUCCESS : 2;

	buf = malloc(o.size);
	if (!buf)
		return fail("allocating a message buffer", -ENOMEM);
	r = example_connect(prog, o.socket_path, &c);
	if (r < 0) {
		free(buf);
		return EXIT_FAILURE;
	}
	attr.n_slots = o.slots;
	attr.slot_size = o.slot_size;
	attr.mode = o.mode;
	attr.numa_node = -1;
	r = shmq_queue_open(c, o.queue, SHMQ_CREATE | SHMQ_SEND, &attr, &q);
	if (r < 0) {
		fail("opening the queue", r);
		goto out_client;
	}
	if (o.size > (uint32_t)shmq_queue_max_msg(q)) {
		fprintf(stderr, "%s: --size %" PRIu32 " exceeds the queue's slot size %d\n", prog,
			o.size, shmq_queue_max_msg(q));
		goto out_queue;
	}

	t0 = shmq_deadline_after(0);
	for (; sent < o.count; sent++) {
		r = send_one(q, &o, buf, MSG_DATA, sent);
		if (r < 0) {
			fprintf(stderr, "%s: send #%" PRIu64 ": %s\n", prog, sent,
				shmq_strerror(r));
			goto out_queue;
		}
	}
	for (uint32_t i = 0; i < o.consumers; i++) {
		r = send_one(q, &o, buf, MSG_END, sent);
		if (r < 0) {
			fail("sending an end marker", r);
			goto out_queue;
		}
	}
	secs = (double)(shmq_deadline_after(0) - t0) / 1e9;
	printf("producer %d: sent %" PRIu64 " messages of %" PRIu32 " bytes to %s (+%" PRIu32
	       " end markers) in %.3f s, %.0f msg/s\n",
	       (int)getpid(), sent, o.size, o.queue, o.consumers, secs,
	       secs > 0 ? (double)sent / secs : 0.0);
	status = EXIT_SUCCESS;

out_queue:
	shmq_queue_close(q);
out_client:
	shmq_client_close(c);
	free(buf);
	return status;
}
