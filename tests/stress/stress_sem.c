/* SPDX-License-Identifier: MIT */
/*
 * Multi-process stress for shm/sem.c: forked processes sharing semaphores in
 * MAP_SHARED memfds, the process version of the thread tests in
 * tests/unit/test_sem.c.
 *
 * The ping-pong hunts lost wake-ups: two processes hand one token back and
 * forth through two semaphores, so every wait depends on exactly one post,
 * and a single lost wake-up stalls the pair until the wait's deadline.  Each
 * side changes its spin budget every block of round trips at random,
 * including 0 (announce and FUTEX_WAIT at once), so the race between a
 * waiter announcing itself and a poster checking for waiters is run through
 * the kernel hundreds of thousands of times, from both sides.
 *
 * The counting test has processes take and return tokens of a bounded
 * semaphore at random; tokens are conserved, so a count that drifts, a post
 * that overflows, or a wait that times out is a bug.
 *
 * Durations scale with SHMQ_STRESS_SECONDS; SHMQ_SEED replays a run.  A
 * failing child prints the seed and iteration to stderr and exits non-zero.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/sem.h"
#include "tests/helpers.h"

#define STRESS_SECONDS_DEFAULT 30
#define WAIT_TIMEOUT_MS	       5000 /* any wait this long is a lost wake-up */

/*
 * Each test stops at whichever comes first, its round-trip or iteration count
 * or its time budget, and no budget exceeds BUDGET_SECONDS_MAX, so a long
 * SHMQ_STRESS_SECONDS never runs into the suite's .timeout.
 */
#define BUDGET_SECONDS_MAX 90

/* Ping-pong: round trips per stress second, in blocks that share one spin budget. */
#define PP_TRIPS_PER_SECOND (1000000 / STRESS_SECONDS_DEFAULT)
#define PP_BLOCK	    256

/* Counting: processes, tokens (initial == max), most tokens one process holds. */
#define CNT_PROCS    4
#define CNT_TOKENS   6
#define CNT_HOLD_MAX 3

TestSuite(stress_sem, .timeout = 120);

/* --- Helpers --- */

static uint64_t budget_ns(uint64_t seconds)
{
	return (seconds < BUDGET_SECONDS_MAX ? seconds : BUDGET_SECONDS_MAX) * UINT64_C(1000000000);
}

/* Spin budgets a block may use: 0 sleeps at once; the rest race the poster. */
static const uint64_t spin_choices_ns[] = {0, 0, 0, 200, 2000, SHMQ_SEM_SPIN_NS_DEFAULT};

static uint64_t pick_spin_ns(uint64_t *rng)
{
	return spin_choices_ns[t_rand(rng) %
			       (sizeof(spin_choices_ns) / sizeof(spin_choices_ns[0]))];
}

/*
 * Take a token within WAIT_TIMEOUT_MS.  A waiter whose wake-up was lost
 * still takes its token when its deadline passes (shmq__sem_wait() takes a
 * token that is there when it times out), so a return at or after the
 * deadline is a failure too, reported as -ETIMEDOUT.
 */
static int wait_promptly(struct shmq_sem *sem)
{
	uint64_t deadline = t_deadline_ms(WAIT_TIMEOUT_MS);
	int r = shmq__sem_wait(sem, deadline);

	if (r == 0 && shmq__now_ns() >= deadline)
		return -ETIMEDOUT;
	return r;
}

static const char *why(int r)
{
	return r == -ETIMEDOUT ? "no token before the deadline (lost wake-up?)" : strerror(-r);
}

/* A short random pause, so the two sides drift against each other. */
static void jitter(uint64_t *rng)
{
	uint64_t n = t_rand(rng) % 8 == 0 ? t_rand(rng) % 512 : 0;

	for (uint64_t i = 0; i < n; i++)
		cpu_relax();
}

/* --- Ping-pong --- */

struct pingpong {
	struct t_seg a;		/* ping: side 0 posts, side 1 waits */
	struct t_seg b;		/* pong: side 1 posts, side 0 waits */
	_Atomic uint32_t *stop; /* MAP_SHARED: side 0 ran out of time */
	uint64_t trips;		/* at most this many round trips */
	uint64_t end_ns;	/* CLOCK_MONOTONIC: side 0 stops after this */
	uint64_t seed;
};

static int pingpong_side(struct pingpong *pp, int side)
{
	struct shmq_sem a, b;
	struct shmq_sem *give, *take;
	uint64_t rng = pp->seed ^ (UINT64_C(0x9e3779b97f4a7c15) * (uint64_t)(side + 1));
	int r;

	/* Session record = side: counters land where the parent can read them. */
	if (shmq__sem_attach(&a, &pp->a.seg, (uint32_t)side) < 0 ||
	    shmq__sem_attach(&b, &pp->b.seg, (uint32_t)side) < 0)
		return 2;
	give = side == 0 ? &a : &b;
	take = side == 0 ? &b : &a;

	for (uint64_t i = 0; i < pp->trips; i++) {
		if (i % PP_BLOCK == 0)
			take->spin_ns = pick_spin_ns(&rng);
		if (side == 0) {
			bool last = i % PP_BLOCK == 0 && shmq__now_ns() >= pp->end_ns;

			/* ordered by the post below: it happens-before side 1's take */
			if (last)
				store_relaxed(pp->stop, 1);
			r = shmq__sem_post(give, 1);
			if (r < 0)
				goto fail;
			if (last)
				return 0;
		}
		r = wait_promptly(take);
		if (r < 0)
			goto fail;
		jitter(&rng);
		if (side == 1) {
			/* ordered by the take above: side 0 stored it before posting */
			if (load_relaxed(pp->stop))
				return 0;
			r = shmq__sem_post(give, 1);
			if (r < 0)
				goto fail;
		}
		continue;
	fail:
		fprintf(stderr,
			"stress_sem ping-pong: side %d, round trip %" PRIu64 " of %" PRIu64
			", spin_ns %" PRIu64 ": %s (SHMQ_SEED=%" PRIu64 ")\n",
			side, i, pp->trips, take->spin_ns, why(r), pp->seed);
		return 1;
	}
	return 0;
}

static int pingpong_side0(void *arg)
{
	return pingpong_side(arg, 0);
}

static int pingpong_side1(void *arg)
{
	return pingpong_side(arg, 1);
}

Test(stress_sem, ping_pong_between_two_processes_never_loses_a_wake_up)
{
	static struct pingpong pp;
	struct shmq_sem a, b;
	uint64_t seconds = t_stress_seconds(STRESS_SECONDS_DEFAULT);
	uint64_t sleeps = 0, wakes = 0;
	pid_t p0, p1;
	int st0, st1;

	pp.seed = t_seed();
	pp.trips = PP_TRIPS_PER_SECOND * seconds;
	pp.end_ns = shmq__deadline_after_ns(budget_ns(seconds));
	pp.stop = mmap(NULL, sizeof(*pp.stop), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);
	cr_assert(pp.stop != MAP_FAILED, "mmap: %s", strerror(errno));
	t_seg_new_sem(&pp.a, 0, 1, SHMQ_SEM_BOUNDED);
	t_seg_new_sem(&pp.b, 0, 1, SHMQ_SEM_BOUNDED);

	p0 = t_fork_peer(pingpong_side0, &pp);
	p1 = t_fork_peer(pingpong_side1, &pp);
	st0 = t_wait_peer(p0);
	st1 = t_wait_peer(p1);

	cr_assert(eq(int, st0, 0), "side 0 failed (SHMQ_SEED=%" PRIu64 ")", pp.seed);
	cr_assert(eq(int, st1, 0), "side 1 failed (SHMQ_SEED=%" PRIu64 ")", pp.seed);

	cr_assert(eq(int, shmq__sem_attach(&a, &pp.a.seg, UINT32_MAX), 0));
	cr_assert(eq(int, shmq__sem_attach(&b, &pp.b.seg, UINT32_MAX), 0));
	cr_assert(eq(u32, shmq__sem_value(&a), 0));
	cr_assert(eq(u32, shmq__sem_value(&b), 0));
	cr_assert(eq(int, shmq__sem_check(&a), 0));
	cr_assert(eq(int, shmq__sem_check(&b), 0));
	/* Children are gone: the counters are quiescent. */
	for (int side = 0; side < 2; side++) {
		sleeps += load_relaxed(&pp.a.seg.sessions[side].c.sleeps) +
			  load_relaxed(&pp.b.seg.sessions[side].c.sleeps);
		wakes += load_relaxed(&pp.a.seg.sessions[side].c.wakes) +
			 load_relaxed(&pp.b.seg.sessions[side].c.wakes);
	}
	cr_assert(gt(u64, sleeps, 0), "the futex path was never exercised");
	cr_assert(gt(u64, wakes, 0), "the futex path was never exercised");
	cr_assert(eq(u32, load_relaxed(&((struct shmq_sem_shm *)pp.a.seg.object)->n_waiters), 0),
		  "waiter count leaked"); /* children are gone: quiescent */
	cr_assert(eq(u32, load_relaxed(&((struct shmq_sem_shm *)pp.b.seg.object)->n_waiters), 0),
		  "waiter count leaked");

	t_seg_free(&pp.a);
	t_seg_free(&pp.b);
	munmap((void *)pp.stop, sizeof(*pp.stop));
}

/* --- Counting --- */

struct counting {
	struct t_seg s;
	uint64_t seed;
	uint64_t end_ns; /* CLOCK_MONOTONIC: stop taking new tokens */
	int index;	 /* set in the parent before each fork */
};

static int counting_proc(void *arg)
{
	struct counting *cn = arg;
	struct shmq_sem sem;
	uint64_t rng = cn->seed ^ (UINT64_C(0xbf58476d1ce4e5b9) * (uint64_t)(cn->index + 1));
	uint32_t held = 0;
	uint64_t i;
	int r = 0;

	/* Session record = process index: counters land where the parent can sum them. */
	if (shmq__sem_attach(&sem, &cn->s.seg, (uint32_t)cn->index) < 0)
		return 2;

	for (i = 0; shmq__now_ns() < cn->end_ns; i++) {
		uint64_t dice = t_rand(&rng);

		if (held == CNT_HOLD_MAX || (held > 0 && dice % 2 == 0)) {
			uint32_t n = 1 + (uint32_t)((dice >> 8) % held);

			r = shmq__sem_post(&sem, n);
			if (r < 0)
				break;
			held -= n;
		} else if (held > 0) {
			/* A holder never blocks, so some holder always makes progress. */
			r = shmq__sem_try_wait(&sem);
			if (r == 0)
				held++;
			else if (r != -EAGAIN)
				break;
			r = 0;
		} else {
			sem.spin_ns = pick_spin_ns(&rng);
			r = wait_promptly(&sem);
			if (r < 0)
				break;
			held++;
		}
		jitter(&rng);
	}
	if (r == 0 && held > 0)
		r = shmq__sem_post(&sem, held);
	if (r < 0) {
		fprintf(stderr,
			"stress_sem counting: process %d, iteration %" PRIu64
			", holding %u: %s (SHMQ_SEED=%" PRIu64 ")\n",
			cn->index, i, held, why(r), cn->seed);
		return 1;
	}
	return 0;
}

Test(stress_sem, processes_taking_and_returning_tokens_at_random_conserve_the_count)
{
	static struct counting cn;
	struct shmq_sem sem;
	pid_t pid[CNT_PROCS];
	uint64_t sent = 0, received = 0;
	uint64_t seconds = t_stress_seconds(STRESS_SECONDS_DEFAULT);

	cn.seed = t_seed();
	/* Half the stress budget: the ping-pong above takes the rest. */
	cn.end_ns = shmq__deadline_after_ns(budget_ns(seconds) / 2);
	t_seg_new_sem(&cn.s, CNT_TOKENS, CNT_TOKENS, SHMQ_SEM_BOUNDED);
	cr_assert(ge(u32, cn.s.seg.n_sessions, CNT_PROCS));

	for (int i = 0; i < CNT_PROCS; i++) {
		cn.index = i; /* the child gets its own copy at fork */
		pid[i] = t_fork_peer(counting_proc, &cn);
	}
	for (int i = 0; i < CNT_PROCS; i++) {
		int st = t_wait_peer(pid[i]);

		cr_assert(eq(int, st, 0), "process %d failed (SHMQ_SEED=%" PRIu64 ")", i, cn.seed);
	}

	cr_assert(eq(int, shmq__sem_attach(&sem, &cn.s.seg, UINT32_MAX), 0));
	cr_assert(eq(u32, shmq__sem_value(&sem), CNT_TOKENS), "tokens not conserved");
	cr_assert(eq(int, shmq__sem_check(&sem), 0));
	cr_assert(eq(u32, load_relaxed(&sem.s->n_waiters), 0), "waiter count leaked");

	/* Children are gone: the counters are quiescent. */
	for (int i = 0; i < CNT_PROCS; i++) {
		sent += load_relaxed(&cn.s.seg.sessions[i].c.sent);
		received += load_relaxed(&cn.s.seg.sessions[i].c.received);
	}
	cr_assert(gt(u64, received, 0), "no token ever changed hands");
	cr_assert(eq(u64, sent, received), "every token taken was posted back");

	t_seg_free(&cn.s);
}
