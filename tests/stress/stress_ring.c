/* SPDX-License-Identifier: MIT */
/*
 * Multi-process stress for shm/ring.c: forked producers and consumers
 * sharing a queue in a MAP_SHARED memfd, the process versions of the thread
 * tests in tests/unit/test_ring_mt.c (TSan cannot see ordering between
 * processes; these see what only separate address spaces and real deaths
 * show).
 *
 * Throughput runs, one per mode: N producers and M consumers for
 * SHMQ_STRESS_SECONDS, every process choosing at random per message among
 * copy, batch and zero-copy calls, and per process among spin budgets
 * (0 = sleep in the kernel at once).  Messages carry {producer, seq, len,
 * checksum}; consumers check the checksum (no torn message), FIFO per
 * producer (and no gaps when there is one consumer), and set the message's
 * bit in a shared bitmap (a duplicate is caught when it happens, a loss at
 * the end: every bit below each producer's count is set, and no other).
 *
 * Lost-wake-up hunt: ping-pong through a request and a response ring with a
 * spin budget of 0, so every hand-off is an eventcount sleep and a
 * FUTEX_WAKE; SPSC, MPMC, and MPMC with two clients and two servers sleeping
 * on the same words.
 *
 * Repair: children claim slots and SIGKILL themselves mid-write or mid-read
 * (and, replaying a death at one exact instruction, between the claim CAS
 * and the index hint advance); the parent, acting as shmqd, repairs their
 * sessions and checks that the half-written slot is skipped, the half-read
 * message is delivered again, the ring validates, and traffic continues.
 *
 * Every blocking call has a deadline; a call that fails it, or succeeds
 * only at it (its last look), is a lost wake-up: the failing process
 * records the seed, mode, iteration and ring state, and the test fails.
 * Workers never call cr_assert; the parent checks what they recorded.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/ring.h"
#include "tests/helpers.h"

#define STRESS_SECONDS_DEFAULT 2
#define BUDGET_SECONDS_MAX     120   /* a long SHMQ_STRESS_SECONDS stays inside .timeout */
#define WAIT_TIMEOUT_MS	       10000 /* throughput runs: any wait this long is a bug */
#define PP_TIMEOUT_MS	       5000  /* ping-pong: one hand-off this long is a lost wake-up */
#define STOP_POLL_MS	       20
/*
 * Lost-wake-up hunt: 10^6 round trips over the three ping-pong tests of a
 * 30 s run, scaled to SHMQ_STRESS_SECONDS.  A test that has not reached its
 * share when its time is up goes on, up to PP_STRETCH times its time.
 */
#define PP_TRIPS_PER_TEST_SECOND (1000000 / 3 / 30)
#define PP_STRETCH		 4
#define WATCHDOG_GRACE_MS	 30000 /* beyond the budget, before children are killed */
#define MAX_SIDE		 3
#define SLOT_SIZE_MAX		 256
#define BATCH_MAX		 8
#define SEQ_CAP			 (UINT32_C(1) << 26) /* per producer: 8 MiB of bitmap */
#define STOP_PRODUCER		 UINT32_MAX
#define ERR_SIZE		 1024

/* --- Messages --- */

struct msg_hdr {
	uint32_t producer;
	uint32_t seq;
	uint32_t len; /* whole message, header included */
	uint32_t sum; /* msg_sum() */
};

#define MSG_HDR_SIZE sizeof(struct msg_hdr)

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

static bool msg_is_intact(const unsigned char *buf, int len)
{
	struct msg_hdr h;

	if (len < (int)MSG_HDR_SIZE)
		return false;
	memcpy(&h, buf, sizeof(h));
	return h.len == (uint32_t)len &&
	       h.sum == msg_sum(&h, buf + MSG_HDR_SIZE, (uint32_t)len - (uint32_t)MSG_HDR_SIZE);
}

/* --- Shared results and child processes --- */

/* Results area: MAP_SHARED anonymous, so every forked child writes the same copy. */
struct results {
	_Atomic uint32_t failed;
	_Atomic uint32_t prod_done;
	_Atomic uint32_t cons_done;
	_Atomic uint64_t sent[MAX_SIDE];     /* per producer / client: data messages */
	_Atomic uint64_t received[MAX_SIDE]; /* per consumer / server */
	_Atomic uint64_t round_trips;
	char err[ERR_SIZE];	 /* first failure; read after the children exit */
	_Atomic uint64_t seen[]; /* bit producer * SEQ_CAP + seq */
};

static struct results *res;
static size_t res_size;
static uint64_t seed;

static void results_new(size_t n_bitmap_words)
{
	res_size = sizeof(*res) + n_bitmap_words * sizeof(uint64_t);
	res = mmap(NULL, res_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert(res != MAP_FAILED, "mmap results: %s", strerror(errno));
}

static void ring_state(const struct shmq_ring *r, char *buf, size_t size)
{
	snprintf(buf, size, "depth=%u head=%u tail=%u ec_recv=%#x ec_send=%#x", shmq__ring_depth(r),
		 load_relaxed(&r->q->head), load_relaxed(&r->q->tail), load_relaxed(&r->q->ec_recv),
		 load_relaxed(&r->q->ec_send)); /* snapshot */
}

/* Record the first failure of any process (with the ring's state); return -1. */
__attribute__((format(printf, 3, 4))) static int fail(const struct shmq_ring *r, const char *who,
						      const char *fmt, ...)
{
	char what[600], state[160] = "";
	va_list ap;

	if (atomic_exchange(&res->failed, 1))
		return -1; /* someone else's failure is the one reported */
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (r)
		ring_state(r, state, sizeof(state));
	snprintf(res->err, sizeof(res->err), "SHMQ_SEED=%" PRIu64 " %s: %s [%s]", seed, who, what,
		 state);
	fprintf(stderr, "%s\n", res->err);
	return -1;
}

static bool failed(void)
{
	return load_relaxed(&res->failed); /* a hint to stop early */
}

/* First thing in every child: die with the test process, never outlive it. */
static void child_init(pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(99);
}

static uint64_t budget_ns(void)
{
	uint64_t s = t_stress_seconds(STRESS_SECONDS_DEFAULT);

	return (s < BUDGET_SECONDS_MAX ? s : BUDGET_SECONDS_MAX) * UINT64_C(1000000000);
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * Reap @n children by @deadline_ns; past it, kill the rest and fail with
 * the ring's state: a hung child is a stall, never a hung test.
 */
static void reap_all(pid_t *pids, int n, uint64_t deadline_ns, const struct shmq_ring *r,
		     const char *what)
{
	int status[2 * MAX_SIDE + 2] = {0};
	bool done[2 * MAX_SIDE + 2] = {false};
	int left = n;

	while (left > 0) {
		for (int i = 0; i < n; i++) {
			int st;

			if (done[i] || waitpid(pids[i], &st, WNOHANG) != pids[i])
				continue;
			status[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			done[i] = true;
			left--;
		}
		if (left > 0 && shmq__now_ns() > deadline_ns) {
			char state[160] = "";

			if (r)
				ring_state(r, state, sizeof(state));
			for (int i = 0; i < n; i++)
				if (!done[i])
					kill(pids[i], SIGKILL);
			for (int i = 0; i < n; i++)
				if (!done[i])
					(void)t_wait_peer(pids[i]);
			cr_fail("SHMQ_SEED=%" PRIu64 " %s: %d processes stalled past the watchdog "
				"[%s]; first failure: %s",
				seed, what, left, state, res->err);
		}
		if (left > 0)
			sleep_ms(5);
	}
	for (int i = 0; i < n; i++)
		cr_assert(eq(int, status[i], 0),
			  "SHMQ_SEED=%" PRIu64 " %s: process %d exited %d: %s", seed, what, i,
			  status[i], res->err);
}

/* --- Throughput: N producers x M consumers --- */

struct tp_cfg {
	const char *name;
	uint32_t mode;
	unsigned int n_prod;
	unsigned int n_cons;
	uint32_t n_slots;
	uint32_t slot_size;
};

/* What a forked worker needs; a copy lives in every child after fork(). */
struct worker {
	const struct tp_cfg *cfg;
	struct t_seg *seg;
	uint32_t session;
	unsigned int id;
	bool consumer;
	pid_t parent;
	uint64_t end_ns;
	struct shmq_ring r;
	uint64_t rng;
	char who[128];
	int64_t last_seq[MAX_SIDE];
	unsigned char bufs[BATCH_MAX][SLOT_SIZE_MAX];
};

static struct t_seg seg_a, seg_b;
static struct tp_cfg tp;
static struct worker workers[2 * MAX_SIDE];

static void teardown(void)
{
	t_seg_free(&seg_a);
	t_seg_free(&seg_b);
	if (res)
		munmap(res, res_size);
	res = NULL;
}

TestSuite(stress_ring, .fini = teardown, .timeout = 300);

/* A success at or after the deadline came from the last look: the wake-up was lost. */
static int promptly(int rc, uint64_t deadline_ns)
{
	return rc >= 0 && shmq__now_ns() >= deadline_ns ? -ETIMEDOUT : rc;
}

static const char *lost(int rc)
{
	return rc == -ETIMEDOUT ? " (lost wake-up?)" : "";
}

static uint32_t msg_len(struct worker *w)
{
	uint32_t span = w->cfg->slot_size - (uint32_t)MSG_HDR_SIZE + 1;

	return (uint32_t)MSG_HDR_SIZE + (uint32_t)(t_rand(&w->rng) % span);
}

static void worker_attach(struct worker *w)
{
	static const uint64_t spins[] = {0, 0, 1000, SHMQ_SPIN_NS_DEFAULT};

	if (shmq__ring_attach(&w->r, &w->seg->seg, w->session) < 0)
		_exit(98);
	w->r.spin_ns = spins[t_rand(&w->rng) % (sizeof(spins) / sizeof(spins[0]))];
}

/* Send messages seq.. (1..BATCH_MAX of them).  Return: how many, or -1 (recorded). */
static int tp_send(struct worker *w, uint32_t seq)
{
	uint64_t deadline = t_deadline_ms(WAIT_TIMEOUT_MS);
	unsigned int pick = (unsigned int)(t_rand(&w->rng) % 3);
	int rc;

	if (pick == 1) { /* batch; block for one message when full */
		struct iovec iov[BATCH_MAX];
		unsigned int n = 1 + (unsigned int)(t_rand(&w->rng) % BATCH_MAX);

		for (unsigned int i = 0; i < n; i++) {
			uint32_t len = msg_len(w);

			msg_fill(w->bufs[i], w->id, seq + i, len);
			iov[i] = (struct iovec){.iov_base = w->bufs[i], .iov_len = len};
		}
		rc = shmq__ring_send_batch(&w->r, iov, n);
		if (rc == 0) {
			rc = promptly(shmq__ring_send_wait(&w->r, iov[0].iov_base, iov[0].iov_len,
							   deadline),
				      deadline);
			if (rc == 0)
				rc = 1;
		}
		if (rc < 0)
			return fail(&w->r, w->who, "batch send at seq %u: %s%s", seq, strerror(-rc),
				    lost(rc));
		return rc;
	}

	if (pick == 2) { /* zero copy */
		uint32_t len = msg_len(w);
		void *p;

		rc = promptly(shmq__ring_reserve_wait(&w->r, &p, deadline), deadline);
		if (rc < 0)
			return fail(&w->r, w->who, "reserve_wait at seq %u: %s%s", seq,
				    strerror(-rc), lost(rc));
		msg_fill(p, w->id, seq, len);
		rc = shmq__ring_commit(&w->r, len);
		if (rc < 0)
			return fail(&w->r, w->who, "commit: %s", strerror(-rc));
		return 1;
	}

	{
		uint32_t len = msg_len(w);

		msg_fill(w->bufs[0], w->id, seq, len);
		rc = promptly(shmq__ring_send_wait(&w->r, w->bufs[0], len, deadline), deadline);
		if (rc < 0)
			return fail(&w->r, w->who, "send_wait at seq %u: %s%s", seq, strerror(-rc),
				    lost(rc));
		return 1;
	}
}

/* The last producer: STOPs until every consumer has taken one (leftovers are drained). */
static int tp_send_stops(struct worker *w)
{
	struct msg_hdr stop = {.producer = STOP_PRODUCER, .len = MSG_HDR_SIZE};
	uint64_t deadline = t_deadline_ms(WAIT_TIMEOUT_MS);

	while (load_acquire(&res->cons_done) < w->cfg->n_cons && !failed()) {
		int rc = shmq__ring_send_wait(&w->r, &stop, sizeof(stop),
					      t_deadline_ms(STOP_POLL_MS));

		if (rc < 0 && rc != -ETIMEDOUT)
			return fail(&w->r, w->who, "sending STOP: %s", strerror(-rc));
		if (shmq__now_ns() > deadline)
			return fail(&w->r, w->who, "consumers still running %d ms after the end",
				    WAIT_TIMEOUT_MS);
	}
	return 0;
}

static int producer_main(void *arg)
{
	struct worker *w = arg;
	uint32_t seq = 0;
	int rc = 0;

	child_init(w->parent);
	worker_attach(w);
	while (seq + BATCH_MAX <= SEQ_CAP && shmq__now_ns() < w->end_ns && !failed()) {
		int n = tp_send(w, seq);

		if (n < 0) {
			rc = 1;
			break;
		}
		seq += (uint32_t)n;
	}
	store_relaxed(&res->sent[w->id], seq); /* read by the parent after exit */
	/* seq_cst RMW: the last producer sees every other producer's sends done. */
	if (atomic_fetch_add(&res->prod_done, 1) + 1 == w->cfg->n_prod && tp_send_stops(w) < 0)
		rc = 1;
	return rc;
}

/* Check one message.  Return: 1 data, 0 STOP, -1 failure (recorded). */
static int tp_consume(struct worker *w, const unsigned char *msg, int len)
{
	struct msg_hdr h;
	uint64_t bit, old;

	if (len >= (int)MSG_HDR_SIZE)
		memcpy(&h, msg, sizeof(h));
	if (len == (int)MSG_HDR_SIZE && h.producer == STOP_PRODUCER)
		return 0;
	if (!msg_is_intact(msg, len) || h.producer >= w->cfg->n_prod || h.seq >= SEQ_CAP)
		return fail(&w->r, w->who, "torn message of %d bytes (producer %u seq %u)", len,
			    len >= (int)MSG_HDR_SIZE ? h.producer : 0,
			    len >= (int)MSG_HDR_SIZE ? h.seq : 0);
	if ((int64_t)h.seq <= w->last_seq[h.producer])
		return fail(&w->r, w->who, "FIFO broken: producer %u seq %u after %" PRId64,
			    h.producer, h.seq, w->last_seq[h.producer]);
	if (w->cfg->n_cons == 1 && (int64_t)h.seq != w->last_seq[h.producer] + 1)
		return fail(&w->r, w->who, "lost: producer %u seq %u after %" PRId64, h.producer,
			    h.seq, w->last_seq[h.producer]);
	w->last_seq[h.producer] = h.seq;

	bit = (uint64_t)h.producer * SEQ_CAP + h.seq;
	old = atomic_fetch_or_explicit(&res->seen[bit / 64], UINT64_C(1) << (bit % 64),
				       memory_order_relaxed); /* the record only */
	if (old & (UINT64_C(1) << (bit % 64)))
		return fail(&w->r, w->who, "duplicate: producer %u seq %u", h.producer, h.seq);
	return 1;
}

/* Receive 1..BATCH_MAX messages.  Return: data count, 0 after a STOP, -1 failure. */
static int tp_recv(struct worker *w, uint64_t *count)
{
	uint64_t deadline = t_deadline_ms(WAIT_TIMEOUT_MS);
	unsigned int pick = (unsigned int)(t_rand(&w->rng) % 3);
	int rc, c;

	if (pick == 1) { /* batch; block for one message when empty */
		struct iovec iov[BATCH_MAX];
		unsigned int n = 1 + (unsigned int)(t_rand(&w->rng) % BATCH_MAX);
		bool stop = false;

		for (unsigned int i = 0; i < n; i++)
			iov[i] = (struct iovec){.iov_base = w->bufs[i], .iov_len = SLOT_SIZE_MAX};
		rc = shmq__ring_recv_batch(&w->r, iov, n);
		if (rc == 0) {
			rc = promptly(
				shmq__ring_recv_wait(&w->r, w->bufs[0], SLOT_SIZE_MAX, deadline),
				deadline);
			if (rc >= 0) {
				iov[0].iov_len = (size_t)rc;
				rc = 1;
			}
		}
		if (rc < 0)
			return fail(&w->r, w->who, "batch receive: %s%s", strerror(-rc), lost(rc));
		for (int i = 0; i < rc; i++) {
			c = tp_consume(w, iov[i].iov_base, (int)iov[i].iov_len);
			if (c < 0)
				return -1;
			if (c == 0)
				stop = true; /* everything after a STOP is a STOP */
			*count += (uint64_t)c;
		}
		return stop ? 0 : 1;
	}

	if (pick == 2) { /* zero copy: validated in place */
		const void *p;

		rc = promptly(shmq__ring_peek_wait(&w->r, &p, deadline), deadline);
		if (rc < 0)
			return fail(&w->r, w->who, "peek_wait: %s%s", strerror(-rc), lost(rc));
		c = tp_consume(w, p, rc);
		rc = shmq__ring_release(&w->r);
		if (rc < 0)
			return fail(&w->r, w->who, "release: %s", strerror(-rc));
		if (c > 0)
			*count += 1;
		return c;
	}

	rc = promptly(shmq__ring_recv_wait(&w->r, w->bufs[0], SLOT_SIZE_MAX, deadline), deadline);
	if (rc < 0)
		return fail(&w->r, w->who, "recv_wait: %s%s", strerror(-rc), lost(rc));
	c = tp_consume(w, w->bufs[0], rc);
	if (c > 0)
		*count += 1;
	return c;
}

static int consumer_main(void *arg)
{
	struct worker *w = arg;
	uint64_t count = 0;
	int c = 1;

	child_init(w->parent);
	worker_attach(w);
	for (unsigned int p = 0; p < MAX_SIDE; p++)
		w->last_seq[p] = -1;
	while (c > 0 && !failed())
		c = tp_recv(w, &count);
	store_relaxed(&res->received[w->id], count); /* read by the parent after exit */
	atomic_fetch_add(&res->cons_done, 1);	     /* seq_cst; pairs with tp_send_stops() */
	return c < 0;
}

static void tp_run(struct tp_cfg cfg)
{
	uint64_t budget = budget_ns(), t0, total_sent = 0, total_recv = 0, bits = 0;
	uint64_t sleeps = 0, wakes = 0;
	pid_t pids[2 * MAX_SIDE];
	struct shmq_ring view, drain;
	unsigned char buf[SLOT_SIZE_MAX];
	char what[96];
	int n = 0, rc;

	tp = cfg;
	seed = t_seed();
	snprintf(what, sizeof(what), "%s (mode %u, %ux%u)", cfg.name, cfg.mode, cfg.n_prod,
		 cfg.n_cons);
	results_new((size_t)cfg.n_prod * SEQ_CAP / 64);
	t_seg_new_queue(&seg_a, cfg.n_slots, cfg.slot_size, cfg.mode);
	shmq__queue_reset_origin(&seg_a.seg, UINT32_MAX - cfg.n_slots * 2 -
						     (uint32_t)(seed % 1024)); /* cross the wrap */
	/* Only for snapshots: an SPSC handle keeps its own index, so no second consumer yet. */
	cr_assert(eq(int, shmq__ring_attach(&view, &seg_a.seg, UINT32_MAX), 0));

	t0 = shmq__now_ns();
	for (unsigned int i = 0; i < cfg.n_prod + cfg.n_cons; i++) {
		struct worker *w = &workers[i];

		memset(w, 0, sizeof(*w));
		w->cfg = &tp;
		w->seg = &seg_a;
		w->consumer = i >= cfg.n_prod;
		w->id = w->consumer ? i - cfg.n_prod : i;
		w->parent = getpid();
		w->end_ns = t0 + budget;
		w->rng = seed ^ (UINT64_C(0x9e3779b97f4a7c15) * (i + 1));
		snprintf(w->who, sizeof(w->who), "%s %s %u", what,
			 w->consumer ? "consumer" : "producer", w->id);
		rc = shmq__session_claim(&seg_a.seg,
					 w->consumer ? SHMQ_ROLE_CONSUMER : SHMQ_ROLE_PRODUCER,
					 getpid(), 0, &w->session);
		cr_assert(eq(int, rc, 0), "session_claim: %s", strerror(-rc));
	}
	for (unsigned int i = 0; i < cfg.n_prod + cfg.n_cons; i++)
		pids[n++] = t_fork_peer(workers[i].consumer ? consumer_main : producer_main,
					&workers[i]);
	reap_all(pids, n, t0 + budget + WATCHDOG_GRACE_MS * UINT64_C(1000000), &view, what);
	cr_assert(eq(u32, load_relaxed(&res->failed), 0), "%s", res->err);

	for (unsigned int p = 0; p < cfg.n_prod; p++) {
		uint64_t sent = load_relaxed(&res->sent[p]); /* children have exited */

		total_sent += sent;
		for (uint64_t s = 0; s < sent; s++) {
			uint64_t bit = p * (uint64_t)SEQ_CAP + s;

			if (!(load_relaxed(&res->seen[bit / 64]) & (UINT64_C(1) << (bit % 64))))
				cr_fail("SHMQ_SEED=%" PRIu64 " %s: producer %u seq %" PRIu64
					" was never received",
					seed, what, p, s);
		}
	}
	for (unsigned int c = 0; c < cfg.n_cons; c++)
		total_recv += load_relaxed(&res->received[c]);
	for (size_t i = 0; i < (size_t)cfg.n_prod * SEQ_CAP / 64; i++)
		bits += (uint64_t)__builtin_popcountll(load_relaxed(&res->seen[i]));
	cr_assert(eq(u64, total_recv, total_sent), "SHMQ_SEED=%" PRIu64 " %s", seed, what);
	cr_assert(eq(u64, bits, total_sent), "SHMQ_SEED=%" PRIu64 " %s: stray bits", seed, what);
	cr_assert(total_sent > 0);

	/* The consumers are gone: the parent takes over as the one consumer. */
	cr_assert(eq(int, shmq__ring_attach(&drain, &seg_a.seg, UINT32_MAX), 0));
	while ((rc = shmq__ring_try_recv(&drain, buf, sizeof(buf))) >= 0) {
		struct msg_hdr h;

		memcpy(&h, buf, sizeof(h));
		cr_assert(rc == (int)MSG_HDR_SIZE && h.producer == STOP_PRODUCER,
			  "SHMQ_SEED=%" PRIu64 " %s: a data message was left in the ring", seed,
			  what);
	}
	cr_assert(eq(int, rc, -EAGAIN));
	cr_assert(eq(u32, shmq__ring_depth(&drain), 0));
	cr_assert(eq(int, shmq__ring_check(&drain), 0), "SHMQ_SEED=%" PRIu64 " %s", seed, what);

	for (unsigned int i = 0; i < cfg.n_prod + cfg.n_cons; i++) {
		sleeps += load_relaxed(&seg_a.seg.sessions[workers[i].session].c.sleeps);
		wakes += load_relaxed(&seg_a.seg.sessions[workers[i].session].c.wakes);
	}
	fprintf(stderr,
		"%s: %" PRIu64 " messages in %.1f s (%.2f M/s), %" PRIu64 " sleeps, %" PRIu64
		" wakes\n",
		what, total_sent, (double)(shmq__now_ns() - t0) / 1e9,
		(double)total_sent / ((double)(shmq__now_ns() - t0) / 1e3), sleeps, wakes);
}

Test(stress_ring, spsc_processes_deliver_every_message_once_in_order_without_tearing)
{
	tp_run((struct tp_cfg){.name = "spsc",
			       .mode = SHMQ_QMODE_SPSC,
			       .n_prod = 1,
			       .n_cons = 1,
			       .n_slots = 16,
			       .slot_size = 100});
}

Test(stress_ring, mpsc_processes_deliver_every_message_once_in_producer_order)
{
	tp_run((struct tp_cfg){.name = "mpsc",
			       .mode = SHMQ_QMODE_MPSC,
			       .n_prod = 3,
			       .n_cons = 1,
			       .n_slots = 8,
			       .slot_size = 64});
}

Test(stress_ring, spmc_processes_deliver_every_message_exactly_once)
{
	tp_run((struct tp_cfg){.name = "spmc",
			       .mode = SHMQ_QMODE_SPMC,
			       .n_prod = 1,
			       .n_cons = 3,
			       .n_slots = 8,
			       .slot_size = 64});
}

Test(stress_ring, mpmc_two_by_two_processes_deliver_every_message_exactly_once)
{
	tp_run((struct tp_cfg){.name = "mpmc",
			       .mode = SHMQ_QMODE_MPMC,
			       .n_prod = 2,
			       .n_cons = 2,
			       .n_slots = 16,
			       .slot_size = 256});
}

Test(stress_ring, mpmc_three_by_three_processes_deliver_every_message_exactly_once)
{
	tp_run((struct tp_cfg){.name = "mpmc",
			       .mode = SHMQ_QMODE_MPMC,
			       .n_prod = 3,
			       .n_cons = 3,
			       .n_slots = 8,
			       .slot_size = 64});
}

/* --- Lost-wake-up hunt: ping-pong with every hand-off through the futex --- */

struct pp_msg {
	uint32_t client;
	uint32_t reply; /* 0 request, 1 response */
	uint64_t iter;
	uint32_t sum;
	uint32_t pad;
};

struct pp_worker {
	unsigned int id;
	unsigned int n_clients;
	unsigned int n_servers;
	bool server;
	pid_t parent;
	uint64_t end_ns;      /* stop here once the round-trip target is met */
	uint64_t hard_end_ns; /* stop here regardless */
	uint64_t target_trips;
	uint32_t req_session;
	uint32_t resp_session;
	char who[128];
};

static struct pp_worker pp_workers[4];

static uint32_t pp_sum(const struct pp_msg *m)
{
	return t_checksum(m, offsetof(struct pp_msg, sum));
}

static void pp_attach(const struct pp_worker *w, struct shmq_ring *req, struct shmq_ring *resp)
{
	if (shmq__ring_attach(req, &seg_a.seg, w->req_session) < 0 ||
	    shmq__ring_attach(resp, &seg_b.seg, w->resp_session) < 0)
		_exit(98);
	req->spin_ns = 0; /* announce and FUTEX_WAIT at once: every hand-off sleeps */
	resp->spin_ns = 0;
}

static int pp_client(void *arg)
{
	struct pp_worker *w = arg;
	struct shmq_ring req, resp;
	uint64_t iter = 0;
	int rc = 0;

	child_init(w->parent);
	pp_attach(w, &req, &resp);
	for (; !failed(); iter++) {
		struct pp_msg m = {.client = w->id, .iter = iter}, back;
		uint64_t now = shmq__now_ns(), deadline;

		if (now >= w->hard_end_ns ||
		    (now >= w->end_ns && load_relaxed(&res->round_trips) >= w->target_trips))
			break; /* a count shared by the clients: relaxed */
		m.sum = pp_sum(&m);
		deadline = t_deadline_ms(PP_TIMEOUT_MS);
		rc = promptly(shmq__ring_send_wait(&req, &m, sizeof(m), deadline), deadline);
		if (rc < 0) {
			rc = fail(&req, w->who, "iteration %" PRIu64 ": request send_wait: %s%s",
				  iter, strerror(-rc), lost(rc));
			break;
		}
		deadline = t_deadline_ms(PP_TIMEOUT_MS);
		rc = promptly(shmq__ring_recv_wait(&resp, &back, sizeof(back), deadline), deadline);
		if (rc < 0) {
			rc = fail(&resp, w->who, "iteration %" PRIu64 ": response recv_wait: %s%s",
				  iter, strerror(-rc), lost(rc));
			break;
		}
		if (rc != (int)sizeof(back) || back.sum != pp_sum(&back) || back.reply != 1 ||
		    (w->n_clients == 1 && back.iter != iter)) {
			rc = fail(&resp, w->who, "iteration %" PRIu64 ": bad response (%d bytes)",
				  iter, rc);
			break;
		}
		fetch_add_relaxed(&res->round_trips, 1); /* a count: no ordering */
		rc = 0;
	}
	if (atomic_fetch_add(&res->prod_done, 1) + 1 == w->n_clients) {
		struct pp_msg stop = {.client = STOP_PRODUCER};
		uint64_t deadline = t_deadline_ms(PP_TIMEOUT_MS);

		stop.sum = pp_sum(&stop);
		while (load_acquire(&res->cons_done) < w->n_servers && !failed()) {
			int r = shmq__ring_send_wait(&req, &stop, sizeof(stop),
						     t_deadline_ms(STOP_POLL_MS));

			if ((r < 0 && r != -ETIMEDOUT) || shmq__now_ns() > deadline) {
				rc = fail(&req, w->who, "sending STOP: %s", strerror(-r));
				break;
			}
		}
	}
	return rc < 0;
}

static int pp_server(void *arg)
{
	struct pp_worker *w = arg;
	struct shmq_ring req, resp;
	uint64_t served = 0;
	int rc = 0;

	child_init(w->parent);
	pp_attach(w, &req, &resp);
	while (!failed()) {
		uint64_t deadline = t_deadline_ms(PP_TIMEOUT_MS);
		struct pp_msg m;

		rc = promptly(shmq__ring_recv_wait(&req, &m, sizeof(m), deadline), deadline);
		if (rc < 0) {
			rc = fail(&req, w->who, "after %" PRIu64 " requests: recv_wait: %s%s",
				  served, strerror(-rc), lost(rc));
			break;
		}
		if (rc != (int)sizeof(m) || m.sum != pp_sum(&m)) {
			rc = fail(&req, w->who, "torn request (%d bytes)", rc);
			break;
		}
		if (m.client == STOP_PRODUCER) {
			rc = 0;
			break;
		}
		m.reply = 1;
		m.sum = pp_sum(&m);
		deadline = t_deadline_ms(PP_TIMEOUT_MS);
		rc = promptly(shmq__ring_send_wait(&resp, &m, sizeof(m), deadline), deadline);
		if (rc < 0) {
			rc = fail(&resp, w->who, "request %" PRIu64 ": response send_wait: %s%s",
				  served, strerror(-rc), lost(rc));
			break;
		}
		served++;
	}
	atomic_fetch_add(&res->cons_done, 1); /* seq_cst; pairs with the STOP loop */
	return rc < 0;
}

static void pp_run(const char *name, uint32_t mode, unsigned int n_clients, unsigned int n_servers)
{
	uint64_t budget = budget_ns(), t0, trips, sleeps = 0, wakes = 0;
	pid_t pids[4];
	struct shmq_ring view;
	char what[96];
	int n = 0, rc;

	seed = t_seed();
	snprintf(what, sizeof(what), "ping-pong %s (mode %u, %u clients x %u servers)", name, mode,
		 n_clients, n_servers);
	results_new(0);
	t_seg_new_queue(&seg_a, 4, sizeof(struct pp_msg), mode); /* requests */
	t_seg_new_queue(&seg_b, 4, sizeof(struct pp_msg), mode); /* responses */
	cr_assert(eq(int, shmq__ring_attach(&view, &seg_a.seg, UINT32_MAX), 0));

	t0 = shmq__now_ns();
	for (unsigned int i = 0; i < n_clients + n_servers; i++) {
		struct pp_worker *w = &pp_workers[i];

		memset(w, 0, sizeof(*w));
		w->server = i >= n_clients;
		w->id = w->server ? i - n_clients : i;
		w->n_clients = n_clients;
		w->n_servers = n_servers;
		w->parent = getpid();
		w->end_ns = t0 + budget;
		w->hard_end_ns = t0 + budget * PP_STRETCH;
		w->target_trips = PP_TRIPS_PER_TEST_SECOND * (budget / UINT64_C(1000000000));
		snprintf(w->who, sizeof(w->who), "%s %s %u", what, w->server ? "server" : "client",
			 w->id);
		rc = shmq__session_claim(&seg_a.seg,
					 w->server ? SHMQ_ROLE_CONSUMER : SHMQ_ROLE_PRODUCER,
					 getpid(), 0, &w->req_session);
		cr_assert(eq(int, rc, 0));
		rc = shmq__session_claim(&seg_b.seg,
					 w->server ? SHMQ_ROLE_PRODUCER : SHMQ_ROLE_CONSUMER,
					 getpid(), 0, &w->resp_session);
		cr_assert(eq(int, rc, 0));
	}
	for (unsigned int i = 0; i < n_clients + n_servers; i++)
		pids[n++] =
			t_fork_peer(pp_workers[i].server ? pp_server : pp_client, &pp_workers[i]);
	reap_all(pids, n, t0 + budget * PP_STRETCH + WATCHDOG_GRACE_MS * UINT64_C(1000000), &view,
		 what);
	cr_assert(eq(u32, load_relaxed(&res->failed), 0), "%s", res->err);

	trips = load_relaxed(&res->round_trips); /* children have exited */
	cr_assert(trips > 0);
	for (unsigned int i = 0; i < n_clients + n_servers; i++) {
		const struct pp_worker *w = &pp_workers[i];

		sleeps += load_relaxed(&seg_a.seg.sessions[w->req_session].c.sleeps) +
			  load_relaxed(&seg_b.seg.sessions[w->resp_session].c.sleeps);
		wakes += load_relaxed(&seg_a.seg.sessions[w->req_session].c.wakes) +
			 load_relaxed(&seg_b.seg.sessions[w->resp_session].c.wakes);
	}
	fprintf(stderr,
		"%s: %" PRIu64 " blocking round trips in %.1f s (%.1f us each), %" PRIu64
		" futex sleeps, %" PRIu64 " wakes\n",
		what, trips, (double)(shmq__now_ns() - t0) / 1e9,
		(double)(shmq__now_ns() - t0) / 1e3 / (double)trips, sleeps, wakes);
}

Test(stress_ring, spsc_ping_pong_never_loses_a_wake_up_when_every_hand_off_sleeps)
{
	pp_run("spsc", SHMQ_QMODE_SPSC, 1, 1);
}

Test(stress_ring, mpmc_ping_pong_never_loses_a_wake_up_when_every_hand_off_sleeps)
{
	pp_run("mpmc", SHMQ_QMODE_MPMC, 1, 1);
}

Test(stress_ring, mpmc_ping_pong_never_loses_a_wake_up_with_two_sleepers_on_each_word)
{
	pp_run("mpmc", SHMQ_QMODE_MPMC, 2, 2);
}

/* --- Repair after a death --- */

#define RP_SLOTS      8
#define RP_SLOT_SIZE  64
#define RP_MSG_LEN    48
#define RP_AFTER_MSGS 20000

struct rp_child {
	pid_t parent;
	uint32_t session;
	uint32_t expect_seq; /* reader: the message it must find */
};

static struct rp_child rp;
static struct shmq_ring rp_prod, rp_cons; /* the parent's own handles */
static uint32_t rp_prod_session, rp_cons_session;

static void rp_msg(unsigned char *buf, uint32_t seq)
{
	msg_fill(buf, 0, seq, RP_MSG_LEN);
}

static void rp_setup(void)
{
	seed = t_seed();
	results_new(0);
	t_seg_new_queue(&seg_a, RP_SLOTS, RP_SLOT_SIZE, SHMQ_QMODE_MPMC);
	cr_assert(eq(
		int,
		shmq__session_claim(&seg_a.seg, SHMQ_ROLE_PRODUCER, getpid(), 0, &rp_prod_session),
		0));
	cr_assert(eq(
		int,
		shmq__session_claim(&seg_a.seg, SHMQ_ROLE_CONSUMER, getpid(), 0, &rp_cons_session),
		0));
	cr_assert(eq(int, shmq__ring_attach(&rp_prod, &seg_a.seg, rp_prod_session), 0));
	cr_assert(eq(int, shmq__ring_attach(&rp_cons, &seg_a.seg, rp_cons_session), 0));
}

static void rp_send(uint32_t seq)
{
	unsigned char buf[RP_MSG_LEN];

	rp_msg(buf, seq);
	cr_assert(eq(int, shmq__ring_try_send(&rp_prod, buf, sizeof(buf)), 0), "send seq %u", seq);
}

/* Receive one message; return its seq (its content checked). */
static uint32_t rp_recv(void)
{
	unsigned char buf[RP_SLOT_SIZE];
	struct msg_hdr h;
	int rc = shmq__ring_try_recv(&rp_cons, buf, sizeof(buf));

	cr_assert(eq(int, rc, RP_MSG_LEN), "try_recv: %d (%s)", rc, rc < 0 ? strerror(-rc) : "");
	cr_assert(msg_is_intact(buf, rc), "the message is torn");
	memcpy(&h, buf, sizeof(h));
	return h.seq;
}

/* The daemon's side: a dead session is repaired, then its record released. */
static struct shmq_ring_repair rp_repair(uint32_t session)
{
	struct shmq_ring_repair rep = {0};
	struct shmq_ring daemon;
	int rc;

	cr_assert(eq(int, shmq__ring_attach(&daemon, &seg_a.seg, UINT32_MAX), 0));
	store_relaxed(&seg_a.seg.sessions[session].state, SHMQ_SESSION_DEAD); /* daemon only */
	rc = shmq__ring_repair_session(&daemon, session + 1, &rep);
	cr_assert(rc >= 0, "repair_session: %s", strerror(-rc));
	shmq__session_release(&seg_a.seg, session);
	return rep;
}

static uint32_t rp_claim_session(uint32_t role)
{
	uint32_t idx;

	cr_assert(eq(int, shmq__session_claim(&seg_a.seg, role, getpid(), 0, &idx), 0));
	return idx;
}

/* Child: reserve a slot, write half a message into it, die. */
static int rp_die_mid_write(void *arg)
{
	struct rp_child *c = arg;
	struct shmq_ring r;
	unsigned char full[RP_MSG_LEN];
	void *p;

	child_init(c->parent);
	if (shmq__ring_attach(&r, &seg_a.seg, c->session) < 0 || shmq__ring_reserve(&r, &p) < 0)
		return 2;
	rp_msg(full, 999);
	memcpy(p, full, RP_MSG_LEN / 2);
	raise(SIGKILL);
	return 3;
}

/* Child: peek at the next message (it must be the expected one), die holding it. */
static int rp_die_mid_read(void *arg)
{
	struct rp_child *c = arg;
	struct shmq_ring r;
	struct msg_hdr h;
	const void *p;
	int len;

	child_init(c->parent);
	if (shmq__ring_attach(&r, &seg_a.seg, c->session) < 0)
		return 2;
	len = shmq__ring_peek(&r, &p);
	if (len != RP_MSG_LEN || !msg_is_intact(p, len))
		return 3;
	memcpy(&h, p, sizeof(h));
	if (h.seq != c->expect_seq)
		return 4;
	raise(SIGKILL);
	return 5;
}

static struct shmq_slot_hdr *rp_slot(uint32_t pos)
{
	return (struct shmq_slot_hdr *)(seg_a.seg.slots + (size_t)(pos & (RP_SLOTS - 1)) *
								  seg_a.seg.geom.queue.slot_stride);
}

/*
 * Child: die at one exact instruction -- right after the claim CAS that
 * claim_read() (or claim_write()) performs, before the index hint advance
 * that follows it.  The CAS is the one the ring code does, tag and all.
 */
static int rp_die_after_read_claim(void *arg)
{
	struct rp_child *c = arg;
	uint32_t pos;
	uint64_t t;

	child_init(c->parent);
	pos = load_relaxed(&((struct shmq_queue_shm *)seg_a.seg.object)->head);
	t = load_acquire(&rp_slot(pos)->state);
	if (t != (uint64_t)(pos + 1) << 32)
		return 2; /* not a published, unclaimed message */
	if (!cas_acq_rel(&rp_slot(pos)->state, &t, t | SHMQ_OWNER_READING | (c->session + 1)))
		return 3;
	raise(SIGKILL);
	return 4;
}

static int rp_die_after_write_claim(void *arg)
{
	struct rp_child *c = arg;
	uint32_t pos;
	uint64_t t;

	child_init(c->parent);
	pos = load_relaxed(&((struct shmq_queue_shm *)seg_a.seg.object)->tail);
	t = load_acquire(&rp_slot(pos)->state);
	if (t != (uint64_t)pos << 32)
		return 2; /* not an empty slot for this position */
	if (!cas_acq_rel(&rp_slot(pos)->state, &t, t | SHMQ_OWNER_WRITING | (c->session + 1)))
		return 3;
	raise(SIGKILL);
	return 4;
}

static void rp_kill_child(int (*fn)(void *), uint32_t role, uint32_t expect_seq)
{
	pid_t pid;

	rp.parent = getpid();
	rp.session = rp_claim_session(role);
	rp.expect_seq = expect_seq;
	pid = t_fork_peer(fn, &rp);
	cr_assert(eq(int, t_wait_peer(pid), 128 + SIGKILL), "the child must die by SIGKILL");
}

/* Producer child for the traffic after a repair: RP_AFTER_MSGS blocking sends. */
static int rp_after_producer(void *arg)
{
	struct rp_child *c = arg;
	unsigned char buf[RP_MSG_LEN];
	struct shmq_ring r;

	child_init(c->parent);
	if (shmq__ring_attach(&r, &seg_a.seg, c->session) < 0)
		return 2;
	r.spin_ns = 0;
	for (uint32_t seq = 0; seq < RP_AFTER_MSGS; seq++) {
		uint64_t deadline = t_deadline_ms(PP_TIMEOUT_MS);
		int rc;

		msg_fill(buf, 1, seq, RP_MSG_LEN);
		rc = promptly(shmq__ring_send_wait(&r, buf, sizeof(buf), deadline), deadline);
		if (rc < 0) {
			fail(&r, "producer after repair", "seq %u: %s%s", seq, strerror(-rc),
			     lost(rc));
			return 1;
		}
	}
	return 0;
}

/* After a repair, the ring must carry traffic between processes as if nothing happened. */
static void rp_assert_not_wedged(void)
{
	struct rp_child prod = {.parent = getpid()};
	unsigned char buf[RP_SLOT_SIZE];
	pid_t pid;

	prod.session = rp_claim_session(SHMQ_ROLE_PRODUCER);
	pid = t_fork_peer(rp_after_producer, &prod);
	rp_cons.spin_ns = 0;
	for (uint32_t seq = 0; seq < RP_AFTER_MSGS; seq++) {
		uint64_t deadline = t_deadline_ms(PP_TIMEOUT_MS);
		struct msg_hdr h;
		int rc = promptly(shmq__ring_recv_wait(&rp_cons, buf, sizeof(buf), deadline),
				  deadline);

		if (rc < 0) {
			kill(pid, SIGKILL);
			(void)t_wait_peer(pid);
			cr_fail("SHMQ_SEED=%" PRIu64 " after repair, message %u: %s%s", seed, seq,
				strerror(-rc), lost(rc));
		}
		cr_assert(msg_is_intact(buf, rc), "message %u torn", seq);
		memcpy(&h, buf, sizeof(h));
		cr_assert(eq(u32, h.seq, seq), "in order after the repair");
	}
	cr_assert(eq(int, t_wait_peer(pid), 0), "%s", res->err);
	cr_assert(eq(int, shmq__ring_check(&rp_cons), 0));
	cr_assert(eq(u32, shmq__ring_depth(&rp_cons), 0));
}

Test(stress_ring, repair_skips_a_half_written_slot_and_redelivers_a_half_read_message)
{
	struct shmq_queue_shm *q;
	struct shmq_ring_repair rep;
	uint32_t writer, reader;

	rp_setup();
	q = seg_a.seg.object;
	rp_send(0);
	rp_send(1);
	rp_kill_child(rp_die_mid_write, SHMQ_ROLE_PRODUCER, 0); /* position 2 */
	writer = rp.session;
	rp_send(2);
	rp_send(3);
	rp_kill_child(rp_die_mid_read, SHMQ_ROLE_CONSUMER, 0); /* holds seq 0 */
	reader = rp.session;

	cr_assert(eq(u32, rp_recv(), 1));
	cr_assert(eq(int,
		     shmq__ring_try_recv(&rp_cons, (unsigned char[RP_SLOT_SIZE]){0}, RP_SLOT_SIZE),
		     -EAGAIN),
		  "receivers wait behind the dead writer's slot until the repair");
	cr_assert(eq(int, shmq__ring_check(&rp_cons), 0), "claims by the dead are consistent");

	rep = rp_repair(writer);
	cr_assert(eq(u32, rep.tombstoned, 1));
	cr_assert(eq(u32, rep.redelivered, 0));
	rep = rp_repair(reader);
	cr_assert(eq(u32, rep.tombstoned, 0));
	cr_assert(eq(u32, rep.redelivered, 1));
	cr_assert(eq(int, shmq__ring_check(&rp_cons), 0));

	cr_assert(eq(u32, rp_recv(), 2), "the half-written slot is skipped");
	cr_assert(eq(u32, rp_recv(), 3));
	cr_assert(eq(u32, rp_recv(), 0), "the half-read message is delivered again, intact");
	cr_assert(eq(int,
		     shmq__ring_try_recv(&rp_cons, (unsigned char[RP_SLOT_SIZE]){0}, RP_SLOT_SIZE),
		     -EAGAIN),
		  "nothing else: the tombstone is never delivered");
	cr_assert(eq(u32, load_relaxed(&q->repairs), 2));
	cr_assert(load_relaxed(&q->tombstones) >= 1);
	cr_assert(eq(int, shmq__ring_check(&rp_cons), 0));

	rp_assert_not_wedged();
}

/* Fill the ring, let a reader die holding the oldest slot, and receive all of it. */
static void rp_full_ring_reader_death(int (*die)(void *))
{
	bool seen[RP_SLOTS] = {false};
	struct shmq_ring_repair rep;
	uint32_t reader, prev = 0;
	unsigned char buf[RP_MSG_LEN];

	rp_setup();
	for (uint32_t seq = 0; seq < RP_SLOTS; seq++)
		rp_send(seq);
	rp_msg(buf, RP_SLOTS);
	cr_assert(eq(int, shmq__ring_try_send(&rp_prod, buf, sizeof(buf)), -EAGAIN), "full");

	rp_kill_child(die, SHMQ_ROLE_CONSUMER, 0);
	reader = rp.session;
	cr_assert(eq(int, shmq__ring_try_send(&rp_prod, buf, sizeof(buf)), -EAGAIN),
		  "still full: the dead reader holds the oldest slot");

	rep = rp_repair(reader);
	cr_assert(eq(u32, rep.redelivered, 1));
	cr_assert(eq(int, shmq__ring_check(&rp_cons), 0), "ring invariants right after the repair");

	for (uint32_t i = 0; i < RP_SLOTS; i++) {
		uint32_t seq = rp_recv();

		cr_assert(seq < RP_SLOTS && !seen[seq], "seq %u delivered twice or out of range",
			  seq);
		seen[seq] = true;
		if (seq != 0) { /* the redelivered seq 0 may come anywhere */
			cr_assert(seq > prev, "FIFO among the others: %u after %u", seq, prev);
			prev = seq;
		}
	}
	cr_assert(eq(int, shmq__ring_try_recv(&rp_cons, buf, sizeof(buf)), -EAGAIN));
	cr_assert(eq(u32, shmq__ring_depth(&rp_cons), 0));
	cr_assert(eq(int, shmq__ring_check(&rp_cons), 0));

	rp_assert_not_wedged();
}

Test(stress_ring, repair_of_a_full_ring_redelivers_the_message_a_dead_reader_held)
{
	rp_full_ring_reader_death(rp_die_mid_read);
}

Test(stress_ring, repair_of_a_full_ring_redelivers_when_the_reader_died_before_advancing_head)
{
	rp_full_ring_reader_death(rp_die_after_read_claim);
}

Test(stress_ring, repair_tombstones_a_slot_whose_writer_died_before_advancing_tail)
{
	struct shmq_ring_repair rep;
	uint32_t writer;

	rp_setup();
	rp_send(0);
	rp_kill_child(rp_die_after_write_claim, SHMQ_ROLE_PRODUCER, 0); /* position 1 */
	writer = rp.session;
	rp_send(2); /* other producers step over the claimed slot */
	rp_send(3);

	cr_assert(eq(u32, rp_recv(), 0));
	cr_assert(eq(int,
		     shmq__ring_try_recv(&rp_cons, (unsigned char[RP_SLOT_SIZE]){0}, RP_SLOT_SIZE),
		     -EAGAIN),
		  "receivers wait behind the dead writer's slot until the repair");

	rep = rp_repair(writer);
	cr_assert(eq(u32, rep.tombstoned, 1));
	cr_assert(eq(int, shmq__ring_check(&rp_cons), 0));
	cr_assert(eq(u32, rp_recv(), 2));
	cr_assert(eq(u32, rp_recv(), 3));
	cr_assert(eq(int,
		     shmq__ring_try_recv(&rp_cons, (unsigned char[RP_SLOT_SIZE]){0}, RP_SLOT_SIZE),
		     -EAGAIN));

	rp_assert_not_wedged();
}

Test(stress_ring, repair_of_a_session_that_held_nothing_changes_nothing)
{
	struct shmq_ring_repair rep;
	uint32_t idle;

	rp_setup();
	rp_send(0);
	idle = rp_claim_session(SHMQ_ROLE_CONSUMER);

	rep = rp_repair(idle);
	cr_assert(eq(u32, rep.tombstoned + rep.redelivered, 0));
	cr_assert(eq(u32, rp_recv(), 0));
	cr_assert(eq(int, shmq__ring_check(&rp_cons), 0));
}
