/* SPDX-License-Identifier: MIT */
/*
 * Thread versions of the ring algorithms in shm/ring.c, for every queue mode:
 * producers and consumers on their own handles (as separate processes would
 * have), small rings so that full, empty and sleeping happen all the time,
 * and every ring started just below UINT32_MAX so that every run crosses the
 * index wrap.  `make test SAN=thread` runs these under TSan, which sees the
 * orderings between threads; tests/stress/stress_ring.c runs the process
 * versions, which TSan cannot see.
 *
 * What each run proves, per message {producer, seq, len, checksum, payload}:
 *   - no torn message: the length and checksum match;
 *   - FIFO per producer: within one consumer, the seqs of one producer
 *     strictly increase (and, with a single consumer, have no gaps);
 *   - exactly once: an atomic bitmap of (producer, seq) catches a duplicate
 *     when it happens and a loss at the end;
 *   - no lost wake-up: every blocking call has a 10 s deadline; a call that
 *     fails it, or succeeds only at it (the last look after a missed wake),
 *     fails the run.
 *
 * Termination: the last producer to finish sends STOP messages until every
 * consumer has taken one, so no consumer is left asleep on an empty ring.
 * Worker threads never call cr_assert; they record the first failure for the
 * main thread to report.
 *
 * The last tests replay single interleavings step by step: a sender asleep
 * on a ring that a receiver empties of tombstones, handles resuming with a
 * stale index hint, and a receiver meeting a slot still read for the
 * previous lap.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/ring.h"
#include "tests/helpers.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define T_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define T_SANITIZED 1
#endif
#endif

/* Sanitizers slow a hand-off down ~10x; the interleavings, not the count, matter there. */
#ifdef T_SANITIZED
#define MSGS_PER_PRODUCER 30000
#else
#define MSGS_PER_PRODUCER 100000
#endif

#define WAIT_TIMEOUT_MS 10000 /* a blocking call in a passing run never gets near this */
#define STOP_POLL_MS	20
#define MAX_WORKERS	4
#define SLOT_SIZE_MAX	256
#define BATCH_MAX	8
#define STOP_PRODUCER	UINT32_MAX
#define CANCEL_ONE_IN	8

enum io_style {
	IO_COPY,	 /* send_wait / recv_wait */
	IO_BATCH,	 /* send_batch / recv_batch, falling back to the blocking forms */
	IO_ZERO_COPY,	 /* reserve_wait + commit / peek_wait + release */
	IO_MIXED,	 /* a random choice among the three, per message */
	IO_MIXED_CANCEL, /* IO_MIXED, and some reservations cancelled (tombstones) */
};

struct mt_cfg {
	uint32_t mode;
	unsigned int n_prod;
	unsigned int n_cons;
	uint32_t n_slots;
	uint32_t slot_size;
	uint64_t spin_ns; /* UINT64_MAX: a random choice per worker */
	enum io_style io;
};

struct msg_hdr {
	uint32_t producer;
	uint32_t seq;
	uint32_t len; /* whole message, header included */
	uint32_t sum; /* msg_sum() */
};

#define MSG_HDR_SIZE sizeof(struct msg_hdr)

struct mt_worker {
	pthread_t th;
	struct mt_run *run;
	unsigned int id;
	bool consumer;
	struct shmq_ring r;
	uint64_t rng;
	uint64_t n_msgs;	       /* data messages sent or received */
	int64_t last_seq[MAX_WORKERS]; /* consumer: per producer, -1 before the first */
	unsigned char bufs[BATCH_MAX][SLOT_SIZE_MAX];
};

struct mt_run {
	struct mt_cfg cfg;
	uint64_t seed;
	uint32_t k; /* messages per producer */
	struct t_seg seg;
	_Atomic uint64_t *seen; /* bit producer * k + seq */
	_Atomic uint32_t prod_done;
	_Atomic uint32_t cons_done;
	_Atomic uint32_t failed;
	char err[1024]; /* first failure; read by the main thread after join */
	struct mt_worker prod[MAX_WORKERS];
	struct mt_worker cons[MAX_WORKERS];
};

static struct mt_run run;

static void teardown(void)
{
	free(run.seen);
	run.seen = NULL;
	t_seg_free(&run.seg);
}

TestSuite(ring_mt, .fini = teardown, .timeout = 60);

/* --- Messages --- */

static uint32_t msg_sum(const struct msg_hdr *h, const unsigned char *payload, uint32_t n)
{
	return (t_checksum(h, offsetof(struct msg_hdr, sum)) * UINT32_C(16777619)) ^
	       t_checksum(payload, n);
}

static void msg_fill(unsigned char *buf, uint32_t producer, uint32_t seq, uint32_t len)
{
	struct msg_hdr h = {.producer = producer, .seq = seq, .len = len};

	for (uint32_t i = MSG_HDR_SIZE; i < len; i++)
		buf[i] = (unsigned char)(seq * 131u + producer * 17u + i);
	h.sum = msg_sum(&h, buf + MSG_HDR_SIZE, len - (uint32_t)MSG_HDR_SIZE);
	memcpy(buf, &h, sizeof(h));
}

static uint32_t msg_len(struct mt_worker *w)
{
	uint32_t span = w->run->cfg.slot_size - (uint32_t)MSG_HDR_SIZE + 1;

	return (uint32_t)MSG_HDR_SIZE + (uint32_t)(t_rand(&w->rng) % span);
}

/*
 * A blocking call whose wake-up was lost still succeeds if its last look at
 * the deadline finds the ring ready, so a success at or past the deadline
 * is reported as the lost wake-up it is.
 */
static int promptly(int rc, uint64_t deadline_ns)
{
	return rc >= 0 && shmq__now_ns() >= deadline_ns ? -ETIMEDOUT : rc;
}

static const char *lost(int rc)
{
	return rc == -ETIMEDOUT ? " (lost wake-up?)" : "";
}

/* --- Failure reporting --- */

static void ring_state(const struct shmq_ring *r, char *buf, size_t size)
{
	snprintf(buf, size, "depth=%u head=%u tail=%u ec_recv=%#x ec_send=%#x", shmq__ring_depth(r),
		 load_relaxed(&r->q->head), load_relaxed(&r->q->tail), load_relaxed(&r->q->ec_recv),
		 load_relaxed(&r->q->ec_send)); /* snapshot */
}

__attribute__((format(printf, 2, 3))) static void fail(struct mt_worker *w, const char *fmt, ...)
{
	struct mt_run *run_ = w->run;
	char what[512], state[160];
	va_list ap;

	if (atomic_exchange(&run_->failed, 1))
		return; /* report the first failure only */
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	ring_state(&w->r, state, sizeof(state));
	snprintf(run_->err, sizeof(run_->err), "%s %u: %s [%s]",
		 w->consumer ? "consumer" : "producer", w->id, what, state);
}

static bool failed(const struct mt_run *run_)
{
	return load_relaxed(&run_->failed); /* a hint to stop early; err is read after join */
}

/* --- Producers --- */

static int send_copy(struct mt_worker *w, uint32_t seq)
{
	uint64_t deadline = t_deadline_ms(WAIT_TIMEOUT_MS);
	uint32_t len = msg_len(w);
	int rc;

	msg_fill(w->bufs[0], w->id, seq, len);
	rc = promptly(shmq__ring_send_wait(&w->r, w->bufs[0], len, deadline), deadline);
	if (rc < 0) {
		fail(w, "send_wait of seq %u: %s%s", seq, strerror(-rc), lost(rc));
		return rc;
	}
	return 1;
}

static int send_batch(struct mt_worker *w, uint32_t seq, uint32_t left)
{
	struct iovec iov[BATCH_MAX];
	unsigned int n = 1 + (unsigned int)(t_rand(&w->rng) % BATCH_MAX), done = 0;

	if (n > left)
		n = left;
	for (unsigned int i = 0; i < n; i++) {
		uint32_t len = msg_len(w);

		msg_fill(w->bufs[i], w->id, seq + i, len);
		iov[i] = (struct iovec){.iov_base = w->bufs[i], .iov_len = len};
	}
	while (done < n) {
		int rc = shmq__ring_send_batch(&w->r, iov + done, n - done);

		if (rc == 0) { /* full: block for one, then batch again */
			uint64_t deadline = t_deadline_ms(WAIT_TIMEOUT_MS);

			rc = promptly(shmq__ring_send_wait(&w->r, iov[done].iov_base,
							   iov[done].iov_len, deadline),
				      deadline);
			if (rc == 0)
				rc = 1;
		}
		if (rc < 0) {
			fail(w, "batch send of seq %u: %s%s", seq + done, strerror(-rc), lost(rc));
			return rc;
		}
		done += (unsigned int)rc;
	}
	return (int)n;
}

static int send_zero_copy(struct mt_worker *w, uint32_t seq, bool may_cancel)
{
	uint64_t deadline = t_deadline_ms(WAIT_TIMEOUT_MS);
	uint32_t len = msg_len(w);
	void *p;
	int rc;

	rc = promptly(shmq__ring_reserve_wait(&w->r, &p, deadline), deadline);
	if (rc < 0) {
		fail(w, "reserve_wait for seq %u: %s%s", seq, strerror(-rc), lost(rc));
		return rc;
	}
	if (may_cancel && t_rand(&w->rng) % CANCEL_ONE_IN == 0) {
		msg_fill(p, w->id, seq, len); /* scribble, then withdraw: never delivered */
		rc = shmq__ring_cancel(&w->r);
		if (rc < 0) {
			fail(w, "cancel: %s", strerror(-rc));
			return rc;
		}
		return 0;
	}
	msg_fill(p, w->id, seq, len);
	rc = shmq__ring_commit(&w->r, len);
	if (rc < 0) {
		fail(w, "commit of seq %u: %s", seq, strerror(-rc));
		return rc;
	}
	return 1;
}

static enum io_style pick_style(struct mt_worker *w)
{
	enum io_style io = w->run->cfg.io;

	if (io == IO_MIXED || io == IO_MIXED_CANCEL)
		return (enum io_style)(t_rand(&w->rng) % 3);
	return io;
}

/* The last producer: STOPs until every consumer has taken one (leftovers are drained). */
static void send_stops(struct mt_worker *w)
{
	struct mt_run *run_ = w->run;
	uint64_t deadline = t_deadline_ms(WAIT_TIMEOUT_MS);
	struct msg_hdr stop = {.producer = STOP_PRODUCER, .len = MSG_HDR_SIZE};

	while (load_acquire(&run_->cons_done) < run_->cfg.n_cons && !failed(run_)) {
		int rc = shmq__ring_send_wait(&w->r, &stop, sizeof(stop),
					      t_deadline_ms(STOP_POLL_MS));

		if (rc < 0 && rc != -ETIMEDOUT) {
			fail(w, "sending STOP: %s", strerror(-rc));
			return;
		}
		if (shmq__now_ns() > deadline) {
			fail(w, "consumers still running %d ms after the last message",
			     WAIT_TIMEOUT_MS);
			return;
		}
	}
}

static void *producer_main(void *arg)
{
	struct mt_worker *w = arg;
	struct mt_run *run_ = w->run;
	uint32_t seq = 0;

	while (seq < run_->k && !failed(run_)) {
		int rc;

		switch (pick_style(w)) {
		case IO_BATCH:
			rc = send_batch(w, seq, run_->k - seq);
			break;
		case IO_ZERO_COPY:
			rc = send_zero_copy(w, seq, run_->cfg.io == IO_MIXED_CANCEL);
			break;
		default:
			rc = send_copy(w, seq);
			break;
		}
		if (rc < 0)
			break;
		seq += (uint32_t)rc;
	}
	w->n_msgs = seq;
	/* acq_rel: the last producer sees every other producer's sends completed. */
	if (atomic_fetch_add(&run_->prod_done, 1) + 1 == run_->cfg.n_prod)
		send_stops(w);
	return NULL;
}

/* --- Consumers --- */

/* Check one received message.  Return: 1 data, 0 STOP, -1 failure (recorded). */
static int consume(struct mt_worker *w, const unsigned char *msg, int len)
{
	struct mt_run *run_ = w->run;
	struct msg_hdr h;
	uint64_t bit, old;

	if (len < (int)MSG_HDR_SIZE) {
		fail(w, "message of %d bytes, shorter than its header", len);
		return -1;
	}
	memcpy(&h, msg, sizeof(h));
	if (h.producer == STOP_PRODUCER && len == (int)MSG_HDR_SIZE)
		return 0;
	if (h.len != (uint32_t)len || h.producer >= run_->cfg.n_prod || h.seq >= run_->k) {
		fail(w, "torn header: producer %u seq %u len %u, received %d bytes", h.producer,
		     h.seq, h.len, len);
		return -1;
	}
	if (h.sum != msg_sum(&h, msg + MSG_HDR_SIZE, (uint32_t)len - (uint32_t)MSG_HDR_SIZE)) {
		fail(w, "torn message: producer %u seq %u: checksum mismatch", h.producer, h.seq);
		return -1;
	}
	if ((int64_t)h.seq <= w->last_seq[h.producer]) {
		fail(w, "FIFO broken: producer %u seq %u after seq %" PRId64, h.producer, h.seq,
		     w->last_seq[h.producer]);
		return -1;
	}
	if (run_->cfg.n_cons == 1 && (int64_t)h.seq != w->last_seq[h.producer] + 1) {
		fail(w, "lost message: producer %u seq %u after seq %" PRId64, h.producer, h.seq,
		     w->last_seq[h.producer]);
		return -1;
	}
	w->last_seq[h.producer] = h.seq;

	bit = (uint64_t)h.producer * run_->k + h.seq;
	old = atomic_fetch_or_explicit(&run_->seen[bit / 64], UINT64_C(1) << (bit % 64),
				       memory_order_relaxed); /* exactly-once record only */
	if (old & (UINT64_C(1) << (bit % 64))) {
		fail(w, "duplicate: producer %u seq %u received twice", h.producer, h.seq);
		return -1;
	}
	w->n_msgs++;
	return 1;
}

static int recv_copy(struct mt_worker *w)
{
	uint64_t deadline = t_deadline_ms(WAIT_TIMEOUT_MS);
	int rc = promptly(shmq__ring_recv_wait(&w->r, w->bufs[0], SLOT_SIZE_MAX, deadline),
			  deadline);

	if (rc < 0) {
		fail(w, "recv_wait: %s%s", strerror(-rc), lost(rc));
		return -1;
	}
	return consume(w, w->bufs[0], rc);
}

static int recv_batch(struct mt_worker *w)
{
	struct iovec iov[BATCH_MAX];
	unsigned int n = 1 + (unsigned int)(t_rand(&w->rng) % BATCH_MAX);
	int rc, more = 1;

	for (unsigned int i = 0; i < n; i++)
		iov[i] = (struct iovec){.iov_base = w->bufs[i], .iov_len = SLOT_SIZE_MAX};
	rc = shmq__ring_recv_batch(&w->r, iov, n);
	if (rc == 0) /* empty: block for one */
		return recv_copy(w);
	if (rc < 0) {
		fail(w, "recv_batch: %s", strerror(-rc));
		return -1;
	}
	for (int i = 0; i < rc; i++) {
		int c = consume(w, iov[i].iov_base, (int)iov[i].iov_len);

		if (c < 0)
			return -1;
		if (c == 0)
			more = 0; /* everything after a STOP is a STOP */
	}
	return more;
}

static int recv_zero_copy(struct mt_worker *w)
{
	uint64_t deadline = t_deadline_ms(WAIT_TIMEOUT_MS);
	const void *p;
	int rc, c;

	rc = promptly(shmq__ring_peek_wait(&w->r, &p, deadline), deadline);
	if (rc < 0) {
		fail(w, "peek_wait: %s%s", strerror(-rc), lost(rc));
		if (w->r.peek_active)
			(void)shmq__ring_release(&w->r); /* the late peek succeeded */
		return -1;
	}
	c = consume(w, p, rc); /* validated in place, before the slot is released */
	rc = shmq__ring_release(&w->r);
	if (rc < 0) {
		fail(w, "release: %s", strerror(-rc));
		return -1;
	}
	return c;
}

static void *consumer_main(void *arg)
{
	struct mt_worker *w = arg;
	struct mt_run *run_ = w->run;
	int c = 1;

	while (c > 0 && !failed(run_)) {
		switch (pick_style(w)) {
		case IO_BATCH:
			c = recv_batch(w);
			break;
		case IO_ZERO_COPY:
			c = recv_zero_copy(w);
			break;
		default:
			c = recv_copy(w);
			break;
		}
	}
	atomic_fetch_add(&run_->cons_done, 1); /* acq_rel; pairs with send_stops() */
	return NULL;
}

/* --- Running a configuration --- */

static void worker_init(struct mt_worker *w, unsigned int id, bool consumer)
{
	uint32_t role = consumer ? SHMQ_ROLE_CONSUMER : SHMQ_ROLE_PRODUCER;
	uint32_t session;
	int rc;

	memset(w, 0, sizeof(*w));
	w->run = &run;
	w->id = id;
	w->consumer = consumer;
	w->rng = run.seed ^ ((uint64_t)(id + 1) << (consumer ? 48 : 32));
	for (unsigned int p = 0; p < MAX_WORKERS; p++)
		w->last_seq[p] = -1;

	rc = shmq__session_claim(&run.seg.seg, role, (int32_t)getpid(), 0, &session);
	cr_assert(eq(int, rc, 0), "session_claim: %s", strerror(-rc));
	rc = shmq__ring_attach(&w->r, &run.seg.seg, session);
	cr_assert(eq(int, rc, 0), "ring_attach: %s", strerror(-rc));
	if (run.cfg.spin_ns == UINT64_MAX) {
		uint64_t choice[] = {0, 1000, SHMQ_SPIN_NS_DEFAULT};

		w->r.spin_ns = choice[t_rand(&w->rng) % 3];
	} else {
		w->r.spin_ns = run.cfg.spin_ns;
	}
}

/* After the run: leftover messages must all be STOPs; returns how many. */
static uint64_t drain_stops(struct shmq_ring *r)
{
	unsigned char buf[SLOT_SIZE_MAX];
	struct msg_hdr h;
	uint64_t n = 0;
	int rc;

	while ((rc = shmq__ring_try_recv(r, buf, sizeof(buf))) >= 0) {
		memcpy(&h, buf, sizeof(h));
		cr_assert(eq(int, rc, (int)MSG_HDR_SIZE), "leftover message of %d bytes", rc);
		cr_assert(eq(u32, h.producer, STOP_PRODUCER), "leftover data message");
		n++;
	}
	cr_assert(eq(int, rc, -EAGAIN), "draining: %s", strerror(-rc));
	return n;
}

struct totals {
	uint64_t sent, received, sleeps, wakes;
};

static void counters_sum(struct totals *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (uint32_t i = 0; i < run.seg.seg.n_sessions; i++) {
		struct shmq_counters *c = &run.seg.seg.sessions[i].c;

		/* after join: the workers' writes are visible */
		sum->sent += load_relaxed(&c->sent);
		sum->received += load_relaxed(&c->received);
		sum->sleeps += load_relaxed(&c->sleeps);
		sum->wakes += load_relaxed(&c->wakes);
	}
}

static void run_config(struct mt_cfg cfg)
{
	uint64_t total, received = 0, bits_set = 0;
	struct totals sum;
	struct shmq_ring drain;
	uint32_t origin, session;
	int rc;

	cr_assert(cfg.n_prod <= MAX_WORKERS && cfg.n_cons <= MAX_WORKERS);
	cr_assert(cfg.slot_size <= SLOT_SIZE_MAX && cfg.slot_size >= MSG_HDR_SIZE);

	memset(&run, 0, sizeof(run));
	run.cfg = cfg;
	run.seed = t_seed();
	run.k = MSGS_PER_PRODUCER;
	total = (uint64_t)run.k * cfg.n_prod;
	run.seen = calloc((size_t)(total + 63) / 64, sizeof(uint64_t));
	cr_assert(run.seen != NULL);

	t_seg_new_queue(&run.seg, cfg.n_slots, cfg.slot_size, cfg.mode);
	/* Start a few laps below the wrap: every run crosses UINT32_MAX -> 0. */
	origin = UINT32_MAX - cfg.n_slots * 3 - (uint32_t)(run.seed % cfg.n_slots);
	shmq__queue_reset_origin(&run.seg.seg, origin);

	for (unsigned int i = 0; i < cfg.n_prod; i++)
		worker_init(&run.prod[i], i, false);
	for (unsigned int i = 0; i < cfg.n_cons; i++)
		worker_init(&run.cons[i], i, true);
	for (unsigned int i = 0; i < cfg.n_cons; i++)
		cr_assert(eq(int,
			     pthread_create(&run.cons[i].th, NULL, consumer_main, &run.cons[i]),
			     0));
	for (unsigned int i = 0; i < cfg.n_prod; i++)
		cr_assert(eq(int,
			     pthread_create(&run.prod[i].th, NULL, producer_main, &run.prod[i]),
			     0));
	for (unsigned int i = 0; i < cfg.n_prod; i++)
		pthread_join(run.prod[i].th, NULL);
	for (unsigned int i = 0; i < cfg.n_cons; i++)
		pthread_join(run.cons[i].th, NULL);

	cr_assert(eq(u32, load_relaxed(&run.failed), 0), "SHMQ_SEED=%" PRIu64 " mode %u, %ux%u: %s",
		  run.seed, cfg.mode, cfg.n_prod, cfg.n_cons, run.err);

	for (unsigned int i = 0; i < cfg.n_cons; i++)
		received += run.cons[i].n_msgs;
	for (uint64_t i = 0; i < (total + 63) / 64; i++)
		bits_set += (uint64_t)__builtin_popcountll(load_relaxed(&run.seen[i]));
	cr_assert(eq(u64, received, total),
		  "SHMQ_SEED=%" PRIu64 ": received %" PRIu64 " of %" PRIu64, run.seed, received,
		  total);
	cr_assert(eq(u64, bits_set, total),
		  "SHMQ_SEED=%" PRIu64 ": %" PRIu64 " distinct of %" PRIu64, run.seed, bits_set,
		  total);

	rc = shmq__session_claim(&run.seg.seg, SHMQ_ROLE_CONSUMER, (int32_t)getpid(), 0, &session);
	cr_assert(eq(int, rc, 0));
	cr_assert(eq(int, shmq__ring_attach(&drain, &run.seg.seg, session), 0));
	drain_stops(&drain);
	cr_assert(eq(u32, shmq__ring_depth(&drain), 0));
	cr_assert(eq(int, shmq__ring_check(&drain), 0), "ring invariants after the run");

	counters_sum(&sum);
	cr_assert(eq(u64, sum.sent, sum.received),
		  "session counters: sent %" PRIu64 ", received %" PRIu64, sum.sent, sum.received);
	cr_assert(sum.received >= total);
	fprintf(stderr,
		"SHMQ_SEED=%" PRIu64 " mode %u %ux%u: %" PRIu64 " messages, %" PRIu64
		" sleeps, %" PRIu64 " wakes\n",
		run.seed, cfg.mode, cfg.n_prod, cfg.n_cons, total, sum.sleeps, sum.wakes);
}

/* --- One configuration per mode --- */

Test(ring_mt, spsc_one_to_one_delivers_every_message_once_and_in_order)
{
	run_config((struct mt_cfg){.mode = SHMQ_QMODE_SPSC,
				   .n_prod = 1,
				   .n_cons = 1,
				   .n_slots = 16,
				   .slot_size = 64,
				   .spin_ns = SHMQ_SPIN_NS_DEFAULT,
				   .io = IO_COPY});
}

Test(ring_mt, spsc_one_to_one_delivers_every_message_when_every_wait_sleeps_in_the_kernel)
{
	run_config((struct mt_cfg){.mode = SHMQ_QMODE_SPSC,
				   .n_prod = 1,
				   .n_cons = 1,
				   .n_slots = 8,
				   .slot_size = 100,
				   .spin_ns = 0,
				   .io = IO_COPY});
}

Test(ring_mt, mpsc_three_to_one_delivers_every_message_once_in_producer_order)
{
	run_config((struct mt_cfg){.mode = SHMQ_QMODE_MPSC,
				   .n_prod = 3,
				   .n_cons = 1,
				   .n_slots = 8,
				   .slot_size = 64,
				   .spin_ns = SHMQ_SPIN_NS_DEFAULT,
				   .io = IO_COPY});
}

Test(ring_mt, mpsc_three_to_one_delivers_every_message_when_every_wait_sleeps_in_the_kernel)
{
	run_config((struct mt_cfg){.mode = SHMQ_QMODE_MPSC,
				   .n_prod = 3,
				   .n_cons = 1,
				   .n_slots = 8,
				   .slot_size = 64,
				   .spin_ns = 0,
				   .io = IO_COPY});
}

Test(ring_mt, spmc_one_to_three_delivers_every_message_once_in_producer_order)
{
	run_config((struct mt_cfg){.mode = SHMQ_QMODE_SPMC,
				   .n_prod = 1,
				   .n_cons = 3,
				   .n_slots = 8,
				   .slot_size = 64,
				   .spin_ns = SHMQ_SPIN_NS_DEFAULT,
				   .io = IO_COPY});
}

Test(ring_mt, spmc_one_to_three_delivers_every_message_when_every_wait_sleeps_in_the_kernel)
{
	run_config((struct mt_cfg){.mode = SHMQ_QMODE_SPMC,
				   .n_prod = 1,
				   .n_cons = 3,
				   .n_slots = 8,
				   .slot_size = 64,
				   .spin_ns = 0,
				   .io = IO_COPY});
}

Test(ring_mt, mpmc_two_to_two_delivers_every_message_once_in_producer_order)
{
	run_config((struct mt_cfg){.mode = SHMQ_QMODE_MPMC,
				   .n_prod = 2,
				   .n_cons = 2,
				   .n_slots = 16,
				   .slot_size = 64,
				   .spin_ns = SHMQ_SPIN_NS_DEFAULT,
				   .io = IO_COPY});
}

Test(ring_mt, mpmc_three_to_three_delivers_every_message_once_in_producer_order)
{
	run_config((struct mt_cfg){.mode = SHMQ_QMODE_MPMC,
				   .n_prod = 3,
				   .n_cons = 3,
				   .n_slots = 8,
				   .slot_size = 64,
				   .spin_ns = SHMQ_SPIN_NS_DEFAULT,
				   .io = IO_COPY});
}

Test(ring_mt, mpmc_three_to_three_delivers_every_message_when_every_wait_sleeps_in_the_kernel)
{
	run_config((struct mt_cfg){.mode = SHMQ_QMODE_MPMC,
				   .n_prod = 3,
				   .n_cons = 3,
				   .n_slots = 8,
				   .slot_size = 64,
				   .spin_ns = 0,
				   .io = IO_COPY});
}

/* --- Batches and zero copy --- */

Test(ring_mt, spsc_batches_deliver_every_message_once_and_in_order)
{
	run_config((struct mt_cfg){.mode = SHMQ_QMODE_SPSC,
				   .n_prod = 1,
				   .n_cons = 1,
				   .n_slots = 16,
				   .slot_size = 100,
				   .spin_ns = SHMQ_SPIN_NS_DEFAULT,
				   .io = IO_BATCH});
}

Test(ring_mt, mpmc_batches_deliver_every_message_once_in_producer_order)
{
	run_config((struct mt_cfg){.mode = SHMQ_QMODE_MPMC,
				   .n_prod = 2,
				   .n_cons = 2,
				   .n_slots = 16,
				   .slot_size = 100,
				   .spin_ns = 0,
				   .io = IO_BATCH});
}

Test(ring_mt, spsc_zero_copy_delivers_every_message_once_and_in_order)
{
	run_config((struct mt_cfg){.mode = SHMQ_QMODE_SPSC,
				   .n_prod = 1,
				   .n_cons = 1,
				   .n_slots = 8,
				   .slot_size = 256,
				   .spin_ns = SHMQ_SPIN_NS_DEFAULT,
				   .io = IO_ZERO_COPY});
}

Test(ring_mt, mpmc_zero_copy_delivers_every_message_once_in_producer_order)
{
	run_config((struct mt_cfg){.mode = SHMQ_QMODE_MPMC,
				   .n_prod = 2,
				   .n_cons = 2,
				   .n_slots = 8,
				   .slot_size = 256,
				   .spin_ns = SHMQ_SPIN_NS_DEFAULT,
				   .io = IO_ZERO_COPY});
}

Test(ring_mt, mpmc_random_mix_of_copy_batch_and_zero_copy_delivers_every_message_once)
{
	run_config((struct mt_cfg){.mode = SHMQ_QMODE_MPMC,
				   .n_prod = 3,
				   .n_cons = 3,
				   .n_slots = 8,
				   .slot_size = 100,
				   .spin_ns = UINT64_MAX,
				   .io = IO_MIXED});
}

Test(ring_mt, spmc_random_mix_of_copy_batch_and_zero_copy_delivers_every_message_once)
{
	run_config((struct mt_cfg){.mode = SHMQ_QMODE_SPMC,
				   .n_prod = 1,
				   .n_cons = 3,
				   .n_slots = 8,
				   .slot_size = 100,
				   .spin_ns = UINT64_MAX,
				   .io = IO_MIXED});
}

Test(ring_mt, mpsc_random_mix_of_copy_batch_and_zero_copy_delivers_every_message_once)
{
	run_config((struct mt_cfg){.mode = SHMQ_QMODE_MPSC,
				   .n_prod = 3,
				   .n_cons = 1,
				   .n_slots = 8,
				   .slot_size = 100,
				   .spin_ns = UINT64_MAX,
				   .io = IO_MIXED});
}

Test(ring_mt, mpmc_cancelled_reservations_are_never_delivered_to_any_consumer)
{
	run_config((struct mt_cfg){.mode = SHMQ_QMODE_MPMC,
				   .n_prod = 2,
				   .n_cons = 2,
				   .n_slots = 8,
				   .slot_size = 64,
				   .spin_ns = UINT64_MAX,
				   .io = IO_MIXED_CANCEL});
}

/* --- Wake-ups around tombstones --- */

struct sleeper {
	struct shmq_ring r;
	int rc;
	uint64_t returned_ns;
	_Atomic uint32_t done;
};

static void *sleeper_send(void *arg)
{
	struct sleeper *s = arg;
	uint64_t v = 42;

	s->rc = shmq__ring_send_wait(&s->r, &v, sizeof(v), t_deadline_ms(5000));
	s->returned_ns = shmq__now_ns();
	store_release(&s->done, 1); /* R: publishes rc and returned_ns; pairs with A below */
	return NULL;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * A receiver that finds only tombstones frees every slot and reports empty;
 * a sender asleep on the full ring must be woken by those frees, not left to
 * sleep until its deadline.
 */
Test(ring_mt, receiver_that_frees_only_tombstones_wakes_a_sender_asleep_on_the_full_ring)
{
	static struct sleeper s;
	unsigned char buf[64];
	struct shmq_ring r;
	uint64_t t0, deadline;
	pthread_t th;
	void *p;
	int rc;

	t_seg_new_queue(&run.seg, 4, 64, SHMQ_QMODE_MPMC);
	cr_assert(eq(int, shmq__ring_attach(&r, &run.seg.seg, UINT32_MAX), 0));
	for (int i = 0; i < 4; i++) {
		cr_assert(eq(int, shmq__ring_reserve(&r, &p), 0));
		cr_assert(eq(int, shmq__ring_cancel(&r), 0));
	}
	cr_assert(eq(int, shmq__ring_try_send(&r, buf, 8), -EAGAIN), "4 tombstones fill the ring");

	cr_assert(eq(int, shmq__ring_attach(&s.r, &run.seg.seg, UINT32_MAX), 0));
	s.r.spin_ns = 0;
	cr_assert(eq(int, pthread_create(&th, NULL, sleeper_send, &s), 0));
	deadline = t_deadline_ms(2000);
	while (load_relaxed(&s.r.c->sleeps) == 0) { /* polled: the sender's own counter */
		cr_assert(shmq__now_ns() < deadline, "the sender never went to sleep");
		sleep_ms(1);
	}
	sleep_ms(20); /* let it reach FUTEX_WAIT */

	/* Skips the tombstones; finds the sender's message only if the frees woke it. */
	rc = shmq__ring_try_recv(&r, buf, sizeof(buf));
	cr_assert(rc == -EAGAIN || rc == (int)sizeof(uint64_t),
		  "tombstones are skipped, never delivered: try_recv returned %d", rc);
	t0 = shmq__now_ns();
	deadline = t_deadline_ms(1000);
	while (!load_acquire(&s.done) && shmq__now_ns() < deadline) /* A: pairs with R */
		sleep_ms(1);
	pthread_join(th, NULL);

	cr_assert(eq(int, s.rc, 0));
	cr_assert(s.returned_ns < deadline,
		  "the sender slept %.3f s on a ring with free slots: freeing tombstones in take() "
		  "does not notify ec_send (lost wake-up until the sender's deadline)",
		  (double)(s.returned_ns - t0) / 1e9);
}

/* --- Scripted interleavings --- */

/*
 * These replay, step by step on one thread, an interleaving the thread runs
 * above hit at random: a handle reads the shared tail (head) hint, is
 * descheduled while another handle claims, publishes and frees that very
 * position, and then resumes with the stale hint.  Holding the hint back in
 * shared memory gives the resumed handle exactly the value it read before
 * it was descheduled; the other handle's late hint advance is then the same
 * CAS that hint_advance() performs.
 */

static struct shmq_queue_shm *queue_shm(void)
{
	return run.seg.seg.object;
}

static void send_byte(struct shmq_ring *r, char v)
{
	cr_assert(eq(int, shmq__ring_try_send(r, &v, 1), 0), "send '%c'", v);
}

static char recv_byte(struct shmq_ring *r)
{
	char buf[64];
	int rc = shmq__ring_try_recv(r, buf, sizeof(buf));

	cr_assert(eq(int, rc, 1), "try_recv: %d", rc);
	return buf[0];
}

static void late_hint_advance(_Atomic uint32_t *hint, uint32_t pos)
{
	uint32_t expected = pos;

	(void)cas_relaxed(hint, &expected, pos + 1); /* as hint_advance(): relaxed */
}

Test(ring_mt, producer_resuming_with_a_stale_tail_never_claims_a_slot_a_lap_ahead)
{
	struct shmq_ring a, b, c;

	t_seg_new_queue(&run.seg, 4, 64, SHMQ_QMODE_MPSC);
	cr_assert(eq(int, shmq__ring_attach(&a, &run.seg.seg, UINT32_MAX), 0));
	cr_assert(eq(int, shmq__ring_attach(&b, &run.seg.seg, UINT32_MAX), 0));
	cr_assert(eq(int, shmq__ring_attach(&c, &run.seg.seg, UINT32_MAX), 0));

	/* B reads tail == 0 and is descheduled; A sends at 0; C takes it. */
	send_byte(&a, '0');
	cr_assert(eq(int, recv_byte(&c), '0'));
	store_relaxed(&queue_shm()->tail, 0); /* B's stale read of the hint */

	send_byte(&b, '1'); /* B resumes: position 1 is free */
	late_hint_advance(&queue_shm()->tail, 0);
	send_byte(&b, '2');

	cr_assert(eq(int, recv_byte(&c), '1'),
		  "B's first message must come before its second (claim_write jumped a lap "
		  "ahead of the tail on a slot freed for pos + n)");
	cr_assert(eq(int, recv_byte(&c), '2'));
	cr_assert(eq(u32, shmq__ring_depth(&c), 0));
	cr_assert(eq(int, shmq__ring_check(&c), 0));
}

Test(ring_mt, consumer_resuming_with_a_stale_head_never_takes_a_message_a_lap_ahead)
{
	struct shmq_ring p, c1, c2;

	t_seg_new_queue(&run.seg, 4, 64, SHMQ_QMODE_SPMC);
	cr_assert(eq(int, shmq__ring_attach(&p, &run.seg.seg, UINT32_MAX), 0));
	cr_assert(eq(int, shmq__ring_attach(&c1, &run.seg.seg, UINT32_MAX), 0));
	cr_assert(eq(int, shmq__ring_attach(&c2, &run.seg.seg, UINT32_MAX), 0));

	/* C2 reads head == 0 and is descheduled; C1 takes 0; the producer refills the ring. */
	send_byte(&p, '0');
	cr_assert(eq(int, recv_byte(&c1), '0'));
	for (char v = '1'; v <= '4'; v++)
		send_byte(&p, v);
	store_relaxed(&queue_shm()->head, 0); /* C2's stale read of the hint */

	cr_assert(eq(int, recv_byte(&c2), '1'),
		  "the oldest message first (claim_read jumped a lap ahead of the head on a "
		  "slot republished for pos + n)");
	late_hint_advance(&queue_shm()->head, 0);
	for (char v = '2'; v <= '4'; v++)
		cr_assert(eq(int, recv_byte(&c2), v));
	cr_assert(eq(u32, shmq__ring_depth(&c2), 0));
	cr_assert(eq(int, shmq__ring_check(&c2), 0));
}

Test(ring_mt, consumer_finds_the_ring_empty_while_a_slow_consumer_still_reads_the_last_lap)
{
	struct shmq_ring p, slow, c;
	const void *msg;

	t_seg_new_queue(&run.seg, 4, 64, SHMQ_QMODE_SPMC);
	cr_assert(eq(int, shmq__ring_attach(&p, &run.seg.seg, UINT32_MAX), 0));
	cr_assert(eq(int, shmq__ring_attach(&slow, &run.seg.seg, UINT32_MAX), 0));
	cr_assert(eq(int, shmq__ring_attach(&c, &run.seg.seg, UINT32_MAX), 0));
	for (char v = '0'; v <= '3'; v++)
		send_byte(&p, v);

	cr_assert(eq(int, shmq__ring_peek(&slow, &msg), 1)); /* holds position 0 */
	for (char v = '1'; v <= '3'; v++)
		cr_assert(eq(int, recv_byte(&c), v));

	/* Position 4 maps to the slot still being read for position 0: not written yet. */
	cr_assert(eq(int, shmq__ring_try_recv(&c, (char[64]){0}, 64), -EAGAIN),
		  "an empty ring whose next slot is still being read is empty, not corrupt");
	cr_assert(eq(int, shmq__ring_check(&c), 0));

	cr_assert(eq(int, shmq__ring_release(&slow), 0));
	send_byte(&p, '4');
	cr_assert(eq(int, recv_byte(&c), '4'));
}
