/* SPDX-License-Identifier: MIT */
/*
 * Integration: client processes exchanging messages through queues that
 * shmqd created, and the example programs run against a private daemon.
 *
 * Each producer and consumer is a forked process that connects to the
 * daemon itself and opens the queue by name.  Messages carry {producer,
 * seq, checksum} and a payload whose length and bytes follow from them.
 * Consumers check the checksum (no torn message), FIFO per producer (and
 * no gap when there is one consumer), and count each message in a shared
 * table (a duplicate is caught when it happens, a loss at the end).  Every
 * producer and consumer cycles through the copy, batch and zero-copy calls,
 * so each path of the library carries part of the traffic.  Workers never
 * call cr_assert: they record the first failure, the test checks.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <shmq/shmq.h>

#include "tests/helpers.h"
#include "tests/integration/daemon.h"

#define N_MESSAGES  1000000
#define PAYLOAD_MAX 40
#define SLOT_SIZE   64
#define N_SLOTS	    1024
#define CHUNK	    64 /* messages per API flavour before switching */
#define BATCH	    16
#define SLICE_MS    100	  /* a consumer re-checks the global count this often */
#define RUN_MS	    60000 /* the whole exchange; far above any healthy run */
#define EXAMPLE_MS  30000

struct msg {
	uint32_t producer;
	uint32_t sum; /* t_checksum of the whole message with sum = 0 */
	uint64_t seq;
	unsigned char payload[PAYLOAD_MAX];
};

#define MSG_HDR offsetof(struct msg, payload)

struct shared {
	_Atomic uint64_t received;
	_Atomic uint32_t failed;
	char error[256];
	_Atomic unsigned char seen[]; /* [producer * per_producer + seq] */
};

struct worker {
	const char *sock;
	const char *queue;
	struct shared *sh;
	uint32_t index; /* producer or consumer number */
	uint32_t n_producers;
	uint32_t n_consumers;
	uint64_t per_producer;
	uint64_t deadline_ns;
};

static struct t_daemon d;

static void setup(void)
{
	t_daemon_start(&d, NULL, NULL);
}

TestSuite(exchange, .init = setup, .fini = t_daemon_cleanup_all, .timeout = 90);

__attribute__((format(printf, 2, 3))) static int fail(struct shared *sh, const char *fmt, ...)
{
	va_list ap;

	if (atomic_fetch_add(&sh->failed, 1) == 0) {
		va_start(ap, fmt);
		vsnprintf(sh->error, sizeof(sh->error), fmt, ap);
		va_end(ap);
	}
	return 1;
}

static size_t msg_fill(struct msg *m, uint32_t producer, uint64_t seq)
{
	size_t n = (size_t)(seq % (PAYLOAD_MAX + 1));

	m->producer = producer;
	m->seq = seq;
	m->sum = 0;
	for (size_t i = 0; i < n; i++)
		m->payload[i] = (unsigned char)(seq * 31 + producer * 7 + i);
	m->sum = t_checksum(m, MSG_HDR + n);
	return MSG_HDR + n;
}

/* Validate one received message; returns 0 or records a failure. */
static int msg_check(const struct worker *w, const void *buf, int len, int64_t *last)
{
	struct msg m;
	uint32_t sum;

	if (len < (int)MSG_HDR || len > (int)sizeof(m))
		return fail(w->sh, "consumer %u: message of %d bytes", w->index, len);
	memcpy(&m, buf, (size_t)len);
	sum = m.sum;
	m.sum = 0;
	if (m.producer >= w->n_producers || m.seq >= w->per_producer)
		return fail(w->sh, "consumer %u: bad producer %u or seq %llu", w->index, m.producer,
			    (unsigned long long)m.seq);
	if (len != (int)(MSG_HDR + m.seq % (PAYLOAD_MAX + 1)) || t_checksum(&m, (size_t)len) != sum)
		return fail(w->sh, "consumer %u: torn message producer %u seq %llu len %d",
			    w->index, m.producer, (unsigned long long)m.seq, len);
	if ((int64_t)m.seq <= last[m.producer])
		return fail(w->sh, "consumer %u: producer %u seq %llu after %lld (not FIFO)",
			    w->index, m.producer, (unsigned long long)m.seq,
			    (long long)last[m.producer]);
	if (w->n_consumers == 1 && (int64_t)m.seq != last[m.producer] + 1)
		return fail(w->sh, "consumer %u: producer %u seq %llu after %lld (gap)", w->index,
			    m.producer, (unsigned long long)m.seq, (long long)last[m.producer]);
	last[m.producer] = (int64_t)m.seq;
	if (atomic_fetch_add(&w->sh->seen[m.producer * w->per_producer + m.seq], 1) != 0)
		return fail(w->sh, "consumer %u: producer %u seq %llu received twice", w->index,
			    m.producer, (unsigned long long)m.seq);
	atomic_fetch_add(&w->sh->received, 1);
	return 0;
}

static int open_queue(const struct worker *w, unsigned int flags, struct shmq_client **c,
		      struct shmq_queue **q)
{
	int r = shmq_client_connect(w->sock, c);

	if (r < 0)
		return fail(w->sh, "worker %u: connect: %s", w->index, strerror(-r));
	r = shmq_queue_open(*c, w->queue, flags, NULL, q);
	if (r < 0)
		return fail(w->sh, "worker %u: open: %s", w->index, strerror(-r));
	return 0;
}

static void close_queue(struct shmq_client *c, struct shmq_queue *q)
{
	shmq_queue_close(q);
	shmq_client_close(c);
}

static int produce(void *arg)
{
	const struct worker *w = arg;
	struct shmq_client *c;
	struct shmq_queue *q;
	struct msg m[BATCH];
	struct iovec iov[BATCH];
	uint64_t seq = 0;
	int r = 0;

	if (open_queue(w, SHMQ_SEND, &c, &q))
		return 1;
	while (seq < w->per_producer && r >= 0) {
		uint64_t end = seq + CHUNK < w->per_producer ? seq + CHUNK : w->per_producer;

		switch ((seq / CHUNK + w->index) % 3) {
		case 0: /* copy */
			for (; seq < end && r >= 0; seq++) {
				size_t n = msg_fill(&m[0], w->index, seq);

				r = shmq_queue_send_wait(q, &m[0], n, w->deadline_ns);
			}
			break;
		case 1: /* batch; a full ring waits for room with one blocking send */
			while (seq < end && r >= 0) {
				unsigned int k =
					end - seq < BATCH ? (unsigned int)(end - seq) : BATCH;

				for (unsigned int i = 0; i < k; i++) {
					iov[i].iov_base = &m[i];
					iov[i].iov_len = msg_fill(&m[i], w->index, seq + i);
				}
				r = shmq_queue_send_batch(q, iov, k);
				if (r == 0) {
					r = shmq_queue_send_wait(q, iov[0].iov_base, iov[0].iov_len,
								 w->deadline_ns);
					if (r == 0)
						r = 1;
				}
				if (r > 0)
					seq += (unsigned int)r;
			}
			break;
		default: /* zero-copy */
			for (; seq < end && r >= 0; seq++) {
				void *buf;

				r = shmq_queue_reserve(q, w->deadline_ns, &buf);
				if (r == 0)
					r = shmq_queue_commit(q, msg_fill(buf, w->index, seq));
			}
			break;
		}
	}
	if (r < 0)
		fail(w->sh, "producer %u: send of seq %llu: %s", w->index, (unsigned long long)seq,
		     strerror(-r));
	close_queue(c, q);
	return r < 0;
}

static bool all_received(const struct worker *w)
{
	return atomic_load(&w->sh->received) >= w->n_producers * w->per_producer ||
	       atomic_load(&w->sh->failed);
}

static int consume(void *arg)
{
	const struct worker *w = arg;
	struct shmq_client *c;
	struct shmq_queue *q;
	int64_t last[8];
	unsigned char bufs[BATCH][SLOT_SIZE];
	struct iovec iov[BATCH];
	uint64_t n = 0;

	for (int i = 0; i < 8; i++)
		last[i] = -1;
	if (open_queue(w, SHMQ_RECV, &c, &q))
		return 1;
	while (!all_received(w)) {
		uint64_t now = t_now_ns(), slice = now + SLICE_MS * 1000000ull;
		int r;

		if (now >= w->deadline_ns) {
			fail(w->sh, "consumer %u: deadline with %llu of %llu received", w->index,
			     (unsigned long long)atomic_load(&w->sh->received),
			     (unsigned long long)(w->n_producers * w->per_producer));
			break;
		}
		switch ((n / CHUNK + w->index) % 3) {
		case 0:
			r = shmq_queue_recv_wait(q, bufs[0], SLOT_SIZE, slice);
			if (r >= 0 && msg_check(w, bufs[0], r, last) == 0)
				n++;
			break;
		case 1:
			for (int i = 0; i < BATCH; i++)
				iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = SLOT_SIZE};
			r = shmq_queue_recv_batch(q, iov, BATCH);
			if (r == 0) { /* empty: wait for one, then keep batching */
				r = shmq_queue_recv_wait(q, bufs[0], SLOT_SIZE, slice);
				if (r >= 0 && msg_check(w, bufs[0], r, last) == 0)
					n++;
				break;
			}
			for (int i = 0; i < r; i++)
				if (msg_check(w, bufs[i], (int)iov[i].iov_len, last) == 0)
					n++;
			break;
		default: {
			const void *p;

			r = shmq_queue_peek(q, slice, &p);
			if (r >= 0) {
				if (msg_check(w, p, r, last) == 0)
					n++;
				r = shmq_queue_release(q);
			}
			break;
		}
		}
		if (r < 0 && r != -ETIMEDOUT) {
			fail(w->sh, "consumer %u: receive: %s", w->index, strerror(-r));
			break;
		}
	}
	close_queue(c, q);
	return atomic_load(&w->sh->failed) != 0;
}

static void run_exchange(const char *name, uint32_t qmode, uint32_t n_producers,
			 uint32_t n_consumers)
{
	uint64_t per = N_MESSAGES / n_producers, total = per * n_producers;
	size_t sh_size = sizeof(struct shared) + total;
	struct shared *sh = t_shared_alloc(sh_size);
	struct shmq_queue_attr a = {
		.size = sizeof(a),
		.n_slots = N_SLOTS,
		.slot_size = SLOT_SIZE,
		.mode = qmode,
		.numa_node = -1,
		.perm = 0600,
	};
	struct worker w[8];
	pid_t pid[8];
	uint32_t n = 0;
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *view;
	struct shmq_queue_stats st = {.size = sizeof(st)};

	T_OK(shmq_queue_open(c, name, SHMQ_CREATE | SHMQ_EXCL | SHMQ_VIEW, &a, &view));
	for (uint32_t i = 0; i < n_consumers + n_producers; i++) {
		bool producer = i >= n_consumers;

		w[i] = (struct worker){
			.sock = d.sock,
			.queue = name,
			.sh = sh,
			.index = producer ? i - n_consumers : i,
			.n_producers = n_producers,
			.n_consumers = n_consumers,
			.per_producer = per,
			.deadline_ns = t_now_ns() + RUN_MS * 1000000ull,
		};
		pid[n++] = t_fork_child(producer ? produce : consume, &w[i]);
	}
	for (uint32_t i = 0; i < n; i++) {
		int st_i = t_wait_peer_ms(pid[i], RUN_MS + 10000);

		cr_assert(st_i == 0, "worker %u exited with %d: %s", i, st_i,
			  sh->failed ? sh->error : "no failure recorded");
	}
	cr_assert(eq(u32, atomic_load(&sh->failed), 0), "%s", sh->error);
	cr_assert(eq(u64, atomic_load(&sh->received), total));
	for (uint64_t i = 0; i < total; i++)
		cr_assert(sh->seen[i] == 1, "producer %llu seq %llu received %u times",
			  (unsigned long long)(i / per), (unsigned long long)(i % per),
			  (unsigned)sh->seen[i]);

	T_OK(shmq_queue_stats(view, &st));
	cr_assert(eq(u64, st.sent, total), "stats.sent %llu", (unsigned long long)st.sent);
	cr_assert(eq(u64, st.received, total), "stats.received %llu",
		  (unsigned long long)st.received);
	cr_assert(eq(u32, st.depth, 0));
	cr_assert(eq(u32, st.capacity, N_SLOTS));
	cr_assert(eq(u32, st.slot_size, SLOT_SIZE));
	T_OK(shmq_queue_close(view));
	T_OK(shmq_unlink(c, name));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(exchange, spsc_processes_exchange_a_million_checked_messages_in_order)
{
	run_exchange("spsc", SHMQ_SPSC, 1, 1);
}

Test(exchange, mpmc_two_producers_two_consumers_deliver_each_message_exactly_once)
{
	run_exchange("mpmc", SHMQ_MPMC, 2, 2);
}

/* --- The example programs --- */

static char out[8][16 * 1024];

Test(exchange, hello_example_round_trips_hello_and_exits_0)
{
	const char *argv[] = {t_example_path("hello"), "--socket", d.sock, NULL};
	int st = t_run(argv, out[0], sizeof(out[0]), EXAMPLE_MS);

	cr_assert(eq(int, st, 0), "hello exited %d:\n%s", st, out[0]);
	cr_assert(strstr(out[0], "received \"hello\" through queue") != NULL, "hello said:\n%s",
		  out[0]);
	t_daemon_fini(&d);
}

/* Run @n_prod producers and @n_cons consumers of the examples on one queue. */
static void run_examples(uint32_t n_prod, uint32_t n_cons, const char *count, bool zero_copy,
			 const char *qmode)
{
	char prod_s[8], cons_s[8];
	const char *bin_p, *bin_c;
	struct t_proc p[8];
	uint64_t total = 0;
	char bp[4096], bc[4096];
	uint32_t n = 0;

	snprintf(prod_s, sizeof(prod_s), "%u", n_prod);
	snprintf(cons_s, sizeof(cons_s), "%u", n_cons);
	snprintf(bp, sizeof(bp), "%s", t_example_path("producer"));
	snprintf(bc, sizeof(bc), "%s", t_example_path("consumer"));
	bin_p = bp;
	bin_c = bc;
	/*
	 * Consumers first: they wait for the queue a producer creates.  --keep:
	 * a consumer that finishes early must not unlink the name before a
	 * slower one (a loaded or sanitized run) has even opened it.
	 */
	for (uint32_t i = 0; i < n_cons; i++) {
		const char *argv[] = {bin_c,
				      "--socket",
				      d.sock,
				      "--queue",
				      "examples",
				      "--producers",
				      prod_s,
				      "--timeout",
				      "20",
				      "--keep",
				      zero_copy ? "--zero-copy" : NULL,
				      NULL};

		t_spawn(&p[n++], argv);
	}
	for (uint32_t i = 0; i < n_prod; i++) {
		const char *argv[] = {bin_p,	  "--socket",
				      d.sock,	  "--queue",
				      "examples", "--count",
				      count,	  "--consumers",
				      cons_s,	  "--mode",
				      qmode,	  "--timeout",
				      "20",	  zero_copy ? "--zero-copy" : NULL,
				      NULL};

		t_spawn(&p[n++], argv);
	}
	for (uint32_t i = 0; i < n; i++) {
		int st = t_finish(&p[i], out[i], sizeof(out[i]), EXAMPLE_MS);

		cr_assert(eq(int, st, 0), "%s %u exited %d:\n%s",
			  i < n_cons ? "consumer" : "producer", i, st, out[i]);
	}
	for (uint32_t i = 0; i < n_cons; i++) {
		unsigned long long got, errors;
		const char *line = strstr(out[i], "received ");

		cr_assert(line && sscanf(line, "received %llu messages, %llu errors", &got,
					 &errors) == 2,
			  "consumer %u printed no summary:\n%s", i, out[i]);
		cr_assert(eq(u64, errors, 0), "consumer %u:\n%s", i, out[i]);
		total += got;
	}
	for (uint32_t i = n_cons; i < n; i++)
		cr_assert(strstr(out[i], "messages of") != NULL,
			  "producer %u printed no summary:\n%s", i - n_cons, out[i]);
	cr_assert(eq(u64, total, n_prod * strtoull(count, NULL, 10)),
		  "the consumers received %llu messages in all", (unsigned long long)total);
	t_daemon_fini(&d);
}

Test(exchange, producer_and_consumer_examples_move_every_message_between_processes)
{
	run_examples(2, 2, "100000", false, "mpmc");
}

Test(exchange, zero_copy_producer_and_consumer_examples_move_every_message_over_spsc)
{
	run_examples(1, 1, "100000", true, "spsc");
}

Test(exchange, worker_pool_example_runs_every_job_within_its_semaphore_limit)
{
	const char *argv[] = {t_example_path("worker_pool"),
			      "--socket",
			      d.sock,
			      "--workers",
			      "4",
			      "--limit",
			      "2",
			      "--jobs",
			      "32",
			      "--job-ms",
			      "1",
			      NULL};
	unsigned int max = 99;
	const char *line;
	int st = t_run(argv, out[0], sizeof(out[0]), EXAMPLE_MS);

	cr_assert(eq(int, st, 0), "worker_pool exited %d:\n%s", st, out[0]);
	cr_assert(strstr(out[0], "worker_pool: OK") != NULL, "%s", out[0]);
	line = strstr(out[0], "max concurrency ");
	cr_assert(line != NULL && sscanf(line, "max concurrency %u", &max) == 1, "%s", out[0]);
	cr_assert(le(uint, max, 2), "%s", out[0]);
	t_daemon_fini(&d);
}

Test(exchange, batches_with_a_null_buffer_of_nonzero_length_are_refused_whole)
{
	struct shmq_queue_attr a = {.size = sizeof(a),
				    .n_slots = 8,
				    .slot_size = 64,
				    .mode = SHMQ_MPMC,
				    .numa_node = -1};
	struct shmq_client *c = t_connect(&d);
	char one[8] = "one", buf[64];
	struct iovec tx[2] = {{one, 3}, {NULL, 5}}, rx[2] = {{buf, sizeof(buf)}, {NULL, 8}};
	struct shmq_queue *q;

	T_OK(shmq_queue_open(c, "iov", SHMQ_CREATE | SHMQ_SEND | SHMQ_RECV, &a, &q));
	/* Used to segfault in the copy; nothing of the batch may go out. */
	T_ERR(shmq_queue_send_batch(q, tx, 2), -EINVAL);
	T_ERR(shmq_queue_recv(q, buf, sizeof(buf)), -EAGAIN);
	tx[1] = (struct iovec){NULL, 0}; /* an empty message needs no buffer */
	cr_assert(eq(int, shmq_queue_send_batch(q, tx, 2), 2));
	T_ERR(shmq_queue_recv_batch(q, rx, 2), -EINVAL);
	rx[1] = (struct iovec){buf + 32, 32};
	cr_assert(eq(int, shmq_queue_recv_batch(q, rx, 2), 2));
	cr_assert(eq(u64, rx[0].iov_len, 3));
	cr_assert(eq(u64, rx[1].iov_len, 0));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}
