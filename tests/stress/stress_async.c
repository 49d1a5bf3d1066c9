/* SPDX-License-Identifier: MIT */
/*
 * Multi-process stress for asynchronous waits: two forked processes, each
 * running a poller (libclient/poller.c), exchange messages and semaphore
 * tokens through MAP_SHARED memfd segments, so that every hand-off is a
 * wake-up delivered through io_uring (or, with SHMQ_URING_FUTEX=0, through
 * the helper thread and an eventfd).
 *
 * The parent keeps one message in flight per lane: it sends a ping, and a
 * receive future on the lane's pong queue delivers the echo.  The child
 * echoes from level-triggered queue watches.  A semaphore lane passes one
 * token back and forth with acquire futures on both sides.  With one lane
 * every hand-off sleeps; with several, wake-ups race arms on other lanes of
 * the same ring.  Each future has a deadline of STALL_MS: one lost wake-up,
 * or one that arrives only "late forever", fails the run, as does a message
 * out of order or a duplicate.  Queues alternate between SPSC and MPMC.
 *
 * Every message carries the time its sender published it.  The parent
 * records, for each echo it receives, the time from the child's publish to
 * the parent's callback: the latency of one wake-up through the whole
 * stack.  The percentiles are printed (and kept in the README).
 *
 * Each test stops after ROUND_TRIPS_MAX (10^7) round trips or its share
 * of SHMQ_STRESS_SECONDS (a quarter for the one-lane test, twice it for
 * the pipelined one), whichever comes first; the default `make
 * test-stress` (30 s) gives the pipelined test room for all 10^7: see
 * README.md for the times measured.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "libclient/handle.h"
#include "shm/atomic.h"
#include "shm/futex.h"
#include "tests/helpers.h"

#define STRESS_SECONDS_DEFAULT 30
#define BUDGET_SECONDS_MAX     600
#define ROUND_TRIPS_MAX	       UINT64_C(10000000)
#define STALL_MS	       2000 /* any wait this long is a lost wake-up */
#define LANES_MAX	       16
#define N_SLOTS		       8
#define HIST_BUCKETS	       (1u << 20) /* 100 ns each: exact to 104 ms */
#define HIST_NS		       100

TestSuite(stress_async, .timeout = BUDGET_SECONDS_MAX + 60);

struct msg {
	uint64_t seq;
	uint64_t sent_ns; /* CLOCK_MONOTONIC at the sender's publish */
	uint32_t lane;
	uint32_t stop;
};

/* Everything both processes map: segments and the child's report. */
struct shared {
	_Atomic int child_err;
	_Atomic uint64_t child_sleeps; /* waits the child armed */
};

struct lane {
	struct t_seg ping, pong;    /* parent -> child, child -> parent */
	struct shmq_queue *tx, *rx; /* this process's ends */
	struct shmq_future *f;
	struct msg in;
	uint64_t seq; /* the next pong expected; pings run `window` ahead */
	struct run *run;
};

struct run {
	struct lane lanes[LANES_MAX];
	unsigned int n_lanes;
	unsigned int window; /* pings in flight per lane */
	bool sem_lane;
	struct t_seg sem_a, sem_b; /* parent posts a, child posts b */
	struct shmq_sem *take, *give;
	struct shmq_future *sem_f;
	uint64_t sem_seq;
	struct shmq_poller *p;
	uint64_t round_trips;
	uint64_t stop_ns;
	uint64_t target;
	bool done;
	int err;
	char what[160];
	uint32_t *hist; /* parent: publish-to-callback latency */
	uint64_t max_ns;
	uint64_t n_samples;
	struct shared *sh;
};

static struct run run;

static uint64_t budget_ns(void)
{
	uint64_t s = t_stress_seconds(STRESS_SECONDS_DEFAULT);

	return (s < BUDGET_SECONDS_MAX ? s : BUDGET_SECONDS_MAX) * UINT64_C(1000000000);
}

static int fail(struct run *r, int err, const char *what)
{
	if (!r->err) {
		r->err = err;
		snprintf(r->what, sizeof(r->what), "%s", what);
	}
	return err;
}

static void hist_add(struct run *r, uint64_t ns)
{
	uint64_t b = ns / HIST_NS;

	r->hist[b < HIST_BUCKETS ? b : HIST_BUCKETS - 1]++;
	if (ns > r->max_ns)
		r->max_ns = ns;
	r->n_samples++;
}

static double hist_pct(const struct run *r, double q)
{
	uint64_t want = (uint64_t)(q * (double)r->n_samples), seen = 0;

	for (uint32_t b = 0; b < HIST_BUCKETS; b++) {
		seen += r->hist[b];
		if (seen > want)
			return (double)(b + 1) * HIST_NS / 1000.0;
	}
	return (double)r->max_ns / 1000.0;
}

/* --- Setup --- */

static void open_lane(struct lane *l, bool parent)
{
	struct t_seg *out = parent ? &l->ping : &l->pong, *in = parent ? &l->pong : &l->ping;
	int r1 = shmq__queue_wrap(&out->seg, SHMQ_SEND, &l->tx);
	int r2 = shmq__queue_wrap(&in->seg, SHMQ_RECV, &l->rx);

	cr_assert(r1 == 0 && r2 == 0, "wrap: %d %d", r1, r2);
}

static void close_lane(struct lane *l)
{
	shmq_future_free(l->f);
	l->f = NULL;
	cr_assert(eq(int, shmq_queue_close(l->tx), 0));
	cr_assert(eq(int, shmq_queue_close(l->rx), 0));
}

static int send_msg(struct shmq_queue *q, uint64_t seq, uint32_t lane, bool stop)
{
	struct msg m = {.seq = seq, .lane = lane, .stop = stop};

	/* The ring has room for every message in flight: a full ring is a bug. */
	m.sent_ns = shmq__now_ns();
	return shmq_queue_send(q, &m, sizeof(m));
}

/* --- Parent --- */

static int arm_lane(struct run *r, struct lane *l, uint64_t seq);

static int on_pong(struct shmq_future *f, int result, void *arg)
{
	struct lane *l = arg;
	struct run *r = l->run;
	uint64_t now = shmq__now_ns();

	(void)f;
	if (result == -ETIMEDOUT)
		return fail(r, result, "a pong did not arrive within STALL_MS: lost wake-up");
	if (result != (int)sizeof(struct msg))
		return fail(r, result < 0 ? result : -EBADMSG, "pong future failed");
	if (l->in.seq != l->seq || l->in.lane != (uint32_t)(l - r->lanes))
		return fail(r, -EBADMSG, "pong out of order or on the wrong lane");
	hist_add(r, now - l->in.sent_ns);
	r->round_trips++;
	l->seq++;
	shmq_future_free(l->f);
	l->f = NULL;
	if (r->round_trips >= r->target || now >= r->stop_ns) {
		r->done = true;
		return 0;
	}
	return arm_lane(r, l, l->seq + r->window - 1);
}

/* Send ping @seq, then wait for the next pong with a future. */
static int arm_lane(struct run *r, struct lane *l, uint64_t seq)
{
	int e = send_msg(l->tx, seq, (uint32_t)(l - r->lanes), false);

	if (e < 0)
		return fail(r, e, "ping send");
	e = shmq_poller_recv(r->p, l->rx, &l->in, sizeof(l->in), t_deadline_ms(STALL_MS), on_pong,
			     l, &l->f);
	return e < 0 ? fail(r, e, "recv future") : 0;
}

static int arm_sem(struct run *r);

static int on_token(struct shmq_future *f, int result, void *arg)
{
	struct run *r = arg;

	(void)f;
	if (result == -ETIMEDOUT)
		return fail(r, result, "a token did not arrive within STALL_MS: lost wake-up");
	if (result != 0)
		return fail(r, result, "acquire future failed");
	r->round_trips++;
	r->sem_seq++;
	shmq_future_free(r->sem_f);
	r->sem_f = NULL;
	if (r->done)
		return 0;
	return arm_sem(r);
}

static int arm_sem(struct run *r)
{
	int e = shmq_sem_post(r->give, 1);

	if (e < 0)
		return fail(r, e, "post");
	e = shmq_poller_acquire(r->p, r->take, t_deadline_ms(STALL_MS), on_token, r, &r->sem_f);
	return e < 0 ? fail(r, e, "acquire future") : 0;
}

/* --- Child: echo every ping, pass every token back --- */

struct echo {
	struct run *r;
	struct lane *l;
	bool stopped;
};

static int on_ping(struct shmq_watch *w, int events, void *arg)
{
	struct echo *e = arg;
	struct msg m;
	int n;

	(void)w;
	if (events < 0)
		return events;
	while ((n = shmq_queue_recv(e->l->rx, &m, sizeof(m))) == (int)sizeof(m)) {
		if (m.stop) {
			e->stopped = true;
			shmq_poller_stop(e->r->p);
			return 0;
		}
		n = send_msg(e->l->tx, m.seq, m.lane, false);
		if (n < 0)
			return n;
	}
	return n == -EAGAIN ? 0 : (n < 0 ? n : -EBADMSG);
}

static int on_child_token(struct shmq_future *f, int result, void *arg)
{
	struct run *r = arg;
	int e;

	(void)f;
	shmq_future_free(r->sem_f);
	r->sem_f = NULL;
	if (result == -ECANCELED)
		return 0;
	if (result != 0)
		return result;
	e = shmq_sem_post(r->give, 1);
	if (e < 0)
		return e;
	return shmq_poller_acquire(r->p, r->take, SHMQ_FOREVER, on_child_token, r, &r->sem_f);
}

static int on_child_deadline(struct shmq_watch *w, int events, void *arg)
{
	(void)w;
	(void)events;
	(void)arg;
	return -ETIMEDOUT; /* the parent vanished without a stop message */
}

static int child_main(void *arg)
{
	struct run *r = arg;
	struct echo e[LANES_MAX];
	struct shmq_watch *w[LANES_MAX], *deadline;
	int err;

	err = shmq_poller_new(0, &r->p);
	for (unsigned int i = 0; err == 0 && i < r->n_lanes; i++) {
		struct lane *l = &r->lanes[i];

		if (shmq__queue_wrap(&l->ping.seg, SHMQ_RECV, &l->rx) ||
		    shmq__queue_wrap(&l->pong.seg, SHMQ_SEND, &l->tx))
			return 2;
		e[i] = (struct echo){.r = r, .l = l};
		err = shmq_poller_add_queue(r->p, l->rx, SHMQ_POLL_RECV, on_ping, &e[i], &w[i]);
	}
	if (err == 0 && r->sem_lane) {
		if (shmq__sem_wrap(&r->sem_a.seg, &r->take) ||
		    shmq__sem_wrap(&r->sem_b.seg, &r->give))
			return 3;
		err = shmq_poller_acquire(r->p, r->take, SHMQ_FOREVER, on_child_token, r,
					  &r->sem_f);
	}
	if (err == 0)
		err = shmq_poller_add_timer(
			r->p, r->stop_ns + UINT64_C(5000000000) + STALL_MS * UINT64_C(1000000), 0,
			on_child_deadline, NULL, &deadline);
	if (err == 0)
		err = shmq_poller_run(r->p);
	for (unsigned int i = 0; i < r->n_lanes; i++)
		/* R: read after the parent reaps us */
		store_release(&r->sh->child_sleeps,
			      load_relaxed(&r->sh->child_sleeps) +
				      load_relaxed(&r->lanes[i].rx->ring.c->sleeps));
	if (err < 0) {
		store_release(&r->sh->child_err, err); /* R: read after the parent reaps us */
		return 1;
	}
	return 0;
}

/* --- The test --- */

static void stress(unsigned int n_lanes, unsigned int window, bool sem_lane, uint64_t budget)
{
	const char *backend;
	double secs;
	uint64_t t0, sleeps = 0;
	pid_t pid;
	int e;

	memset(&run, 0, sizeof(run));
	run.n_lanes = n_lanes;
	run.window = window;
	run.sem_lane = sem_lane;
	run.target = ROUND_TRIPS_MAX;
	run.sh = mmap(NULL, sizeof(*run.sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		      0);
	cr_assert(run.sh != MAP_FAILED);
	run.hist = calloc(HIST_BUCKETS, sizeof(*run.hist));
	cr_assert(run.hist != NULL);
	for (unsigned int i = 0; i < n_lanes; i++) {
		uint32_t mode = i % 2 ? SHMQ_QMODE_MPMC : SHMQ_QMODE_SPSC;

		t_seg_new_queue(&run.lanes[i].ping, N_SLOTS, sizeof(struct msg), mode);
		t_seg_new_queue(&run.lanes[i].pong, N_SLOTS, sizeof(struct msg), mode);
		run.lanes[i].run = &run;
	}
	if (sem_lane) {
		t_seg_new_sem(&run.sem_a, 0, 0, 0);
		t_seg_new_sem(&run.sem_b, 0, 0, 0);
	}
	run.stop_ns = shmq__now_ns() + budget;

	pid = t_fork_peer(child_main, &run);

	cr_assert(eq(int, shmq_poller_new(0, &run.p), 0));
	backend = shmq_poller_backend(run.p) == SHMQ_BACKEND_URING_FUTEX ? "io_uring futex"
									 : "helper thread";
	for (unsigned int i = 0; i < n_lanes; i++)
		open_lane(&run.lanes[i], true);
	if (sem_lane) {
		cr_assert(eq(int, shmq__sem_wrap(&run.sem_b.seg, &run.take), 0));
		cr_assert(eq(int, shmq__sem_wrap(&run.sem_a.seg, &run.give), 0));
	}
	t0 = shmq__now_ns();
	for (unsigned int i = 0; i < n_lanes; i++) {
		for (unsigned int k = 0; k + 1 < window; k++)
			cr_assert(eq(int, send_msg(run.lanes[i].tx, k, i, false), 0));
		(void)arm_lane(&run, &run.lanes[i], window - 1);
	}
	if (sem_lane)
		(void)arm_sem(&run);
	while (!run.done && !run.err) {
		e = shmq_poller_run_once(run.p, t_deadline_ms(STALL_MS * 2));
		if (e < 0 && !run.err)
			fail(&run, e, "run_once");
	}
	secs = (double)(shmq__now_ns() - t0) / 1e9;

	/*
	 * Stop the child: one stop message on lane 0 (every lane idles
	 * afterwards).  After a failure, a child that is still running was not
	 * the cause; one that already exited tells why.
	 */
	if (!run.err) {
		cr_assert(eq(int, send_msg(run.lanes[0].tx, 0, 0, true), 0));
	} else if (waitpid(pid, &e, WNOHANG) == 0) {
		for (unsigned int i = 0; i < n_lanes; i++) {
			struct shmq_ring *pr = &run.lanes[i].tx->ring, *qr = &run.lanes[i].rx->ring;

			fprintf(stderr,
				"lane %u: ping depth %u ec_recv %#x ec_send %#x; pong depth %u "
				"ec_recv %#x ec_send %#x\n",
				i, shmq__ring_depth(pr), load_seq_cst(&pr->q->ec_recv),
				load_seq_cst(&pr->q->ec_send), shmq__ring_depth(qr),
				load_seq_cst(&qr->q->ec_recv), load_seq_cst(&qr->q->ec_send));
		}
		kill(pid, SIGKILL);
	} else {
		fprintf(stderr, "the child had exited first: status %d, error %d (%s)\n", e,
			load_acquire(&run.sh->child_err), /* A: pairs with R in the child */
			strerror(-load_acquire(&run.sh->child_err)));
		pid = 0;
	}
	e = pid ? t_wait_peer(pid) : 1;
	for (unsigned int i = 0; i < n_lanes; i++)
		sleeps += run.lanes[i].rx->ring.c->sleeps;
	sleeps += load_acquire(&run.sh->child_sleeps); /* A: pairs with R in the child */

	fprintf(stderr,
		"async ping-pong (%s, %u lane%s x %u in flight%s): %" PRIu64
		" round trips in %.1f s "
		"(%.2f us each), %" PRIu64 " waits slept; publish-to-callback latency "
		"p50 %.1f us, p90 %.1f, p99 %.1f, p99.9 %.1f, p99.99 %.1f, max %.1f us\n",
		backend, n_lanes, n_lanes > 1 ? "s" : "", window, sem_lane ? " + a semaphore" : "",
		run.round_trips, secs, secs * 1e6 / (double)(run.round_trips ? run.round_trips : 1),
		sleeps, hist_pct(&run, 0.5), hist_pct(&run, 0.9), hist_pct(&run, 0.99),
		hist_pct(&run, 0.999), hist_pct(&run, 0.9999), (double)run.max_ns / 1000.0);

	cr_assert(eq(int, run.err, 0), "%s: %s (after %" PRIu64 " round trips)", run.what,
		  strerror(-run.err), run.round_trips);
	cr_assert(eq(int, e, 0), "child exited %d: %s", e,
		  strerror(-load_acquire(&run.sh->child_err))); /* A: pairs with R in the child */
	cr_assert(gt(u64, run.round_trips, 0));

	for (unsigned int i = 0; i < n_lanes; i++)
		close_lane(&run.lanes[i]);
	shmq_future_free(run.sem_f);
	if (sem_lane) {
		cr_assert(eq(int, shmq_sem_close(run.take), 0));
		cr_assert(eq(int, shmq_sem_close(run.give), 0));
	}
	shmq_poller_free(run.p);
	for (unsigned int i = 0; i < n_lanes; i++) {
		t_seg_free(&run.lanes[i].ping);
		t_seg_free(&run.lanes[i].pong);
	}
	if (sem_lane) {
		t_seg_free(&run.sem_a);
		t_seg_free(&run.sem_b);
	}
	free(run.hist);
	munmap(run.sh, sizeof(*run.sh));
}

Test(stress_async, one_lane_ping_pong_where_every_hand_off_sleeps_loses_no_wake_up)
{
	stress(1, 1, false, budget_ns() / 4);
}

Test(stress_async, eight_pipelined_lanes_and_a_semaphore_in_one_loop_lose_no_wake_up)
{
	stress(8, 4, true, budget_ns() * 2);
}
