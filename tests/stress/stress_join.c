/* SPDX-License-Identifier: MIT */
/*
 * Kill storm for joinable queues (shm/ring.c, "Joinable"): producers send,
 * consumers take tasks, hold a few, and mark them done, while this process
 * -- standing in for the daemon -- SIGKILLs them at random instructions,
 * settles and repairs each dead record as shmqd does, and starts a
 * replacement.
 *
 * Judged per round, once everyone is dead and settled: this process
 * drains what is left and marks it done, and then the count must be
 * exactly zero and join() must return at once.  A count left one too high
 * (a put counted but never delivered, a dead consumer's task never
 * settled) would make join() wait forever; one too low would have made it
 * return early; either fails the round.  Every wait has a deadline.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/kind.h"
#include "shm/ring.h"
#include "tests/helpers.h"

#define STRESS_SECONDS_DEFAULT 20
#define RUN_CAP_SECONDS	       120
#define WAIT_MS		       5000
#define N_PROCS		       3 /* one producer, two consumers */
#define KILLS_PER_ROUND	       12

TestSuite(stress_join, .timeout = 240);

static struct t_seg seg;

struct child_arg {
	uint32_t idx;
	bool producer;
};

static int producer(uint32_t idx)
{
	struct shmq_ring r;
	uint64_t rng = (uint64_t)getpid() * 0x9e3779b97f4a7c15u;

	if (shmq__ring_attach(&r, &seg.seg, idx) < 0)
		return 1;
	r.spin_ns = (rng & 1) ? 0 : 2000;
	for (uint64_t seq = 0;; seq++) {
		int rc = shmq__ring_send_wait(&r, &seq, sizeof(seq), t_deadline_ms(WAIT_MS));

		if (rc != 0 && rc != -ETIMEDOUT)
			return 2;
	}
}

static int consumer(uint32_t idx)
{
	uint64_t rng = (uint64_t)getpid() * 0xbf58476d1ce4e5b9u;
	unsigned int held = 0;
	struct shmq_ring r;

	if (shmq__ring_attach(&r, &seg.seg, idx) < 0)
		return 1;
	r.spin_ns = (rng & 1) ? 0 : 2000;
	for (;;) {
		uint64_t v;
		int rc = shmq__ring_recv_wait(&r, &v, sizeof(v), t_deadline_ms(WAIT_MS));

		if (rc == (int)sizeof(v))
			held++;
		else if (rc != -ETIMEDOUT)
			return 2;
		/* hold up to three tasks, then finish them */
		while (held && (held > 3 || t_rand(&rng) % 2)) {
			if (shmq__ring_task_done(&r) != 0)
				return 3;
			held--;
		}
	}
}

static int child(void *arg)
{
	const struct child_arg *a = arg;

	return a->producer ? producer(a->idx) : consumer(a->idx);
}

static pid_t spawn(struct child_arg *a, bool producer)
{
	uint32_t role = producer ? SHMQ_ROLE_PRODUCER : SHMQ_ROLE_CONSUMER;

	cr_assert(eq(int, shmq__session_claim(&seg.seg, role, 1, 0, &a->idx), 0));
	a->producer = producer;
	return t_fork_peer(child, a);
}

/* The daemon's part for a dead record: repair (settle, then the slots), then release. */
static uint32_t reap(uint32_t idx)
{
	struct shmq_kind_repair rep = {0};

	cr_assert(ge(int, shmq__kind_queue.repair(&seg.seg, idx, &rep), 0));
	shmq__session_release(&seg.seg, idx);
	return rep.settled;
}

Test(stress_join, deaths_anywhere_leave_an_exact_count_and_join_returns)
{
	static const uint32_t modes[] = {SHMQ_QMODE_MPMC, SHMQ_QMODE_SPSC, SHMQ_QMODE_MPSC,
					 SHMQ_QMODE_SPMC};
	uint64_t seconds = t_stress_seconds(STRESS_SECONDS_DEFAULT);
	uint64_t end = shmq__deadline_after_ns(seconds * UINT64_C(1000000000));
	uint64_t cap = shmq__deadline_after_ns(RUN_CAP_SECONDS * UINT64_C(1000000000));
	uint64_t rng = t_seed(), rounds = 0, kills = 0, settled = 0, drained = 0;

	while ((rounds < 8 || shmq__now_ns() < end) && shmq__now_ns() < cap) {
		uint32_t mode = modes[rounds % 4];
		struct child_arg args[N_PROCS];
		pid_t pid[N_PROCS];
		struct shmq_ring me;
		uint32_t mine;
		uint64_t v;
		int rc;

		t_seg_new_queue_flags(&seg, 16, 16, mode, SHMQ_QUEUE_F_JOINABLE);
		/* single-consumer modes: one consumer at a time, so the second waits its turn */
		for (int i = 0; i < N_PROCS; i++)
			pid[i] = i == 2 && (mode == SHMQ_QMODE_SPSC || mode == SHMQ_QMODE_MPSC)
					 ? 0
					 : spawn(&args[i], i == 0);
		for (int k = 0; k < KILLS_PER_ROUND; k++) {
			int w = (int)(t_rand(&rng) % N_PROCS);

			if (!pid[w])
				continue;
			t_sleep_ms((unsigned int)(t_rand(&rng) % 3));
			kill(pid[w], SIGKILL);
			cr_assert(eq(int, t_wait_peer(pid[w]), 128 + SIGKILL), "child %d failed",
				  w);
			settled += reap(args[w].idx);
			kills++;
			pid[w] = spawn(&args[w], w == 0);
		}
		/* consumers first, so the producer fills the ring for the drain */
		for (int i = N_PROCS - 1; i >= 0; i--) {
			if (!pid[i])
				continue;
			if (i == 0)
				t_sleep_ms(1);
			kill(pid[i], SIGKILL);
			t_wait_peer(pid[i]);
			settled += reap(args[i].idx);
		}
		/* everyone gone: drain what is queued, mark it done, and the count is exact */
		cr_assert(
			eq(int, shmq__session_claim(&seg.seg, SHMQ_ROLE_CONSUMER, 1, 0, &mine), 0));
		cr_assert(eq(int, shmq__ring_attach(&me, &seg.seg, mine), 0));
		while ((rc = shmq__ring_try_recv(&me, &v, sizeof(v))) == (int)sizeof(v)) {
			cr_assert(eq(int, shmq__ring_task_done(&me), 0));
			drained++;
		}
		cr_assert(eq(int, rc, -EAGAIN), "drain: %d", rc);
		cr_assert(eq(u32, shmq__ring_unfinished(&me), 0),
			  "round %" PRIu64 " (mode %" PRIu32 "): %" PRIu32 " unfinished", rounds,
			  mode, shmq__ring_unfinished(&me));
		cr_assert(eq(int, shmq__ring_join(&me, t_deadline_ms(WAIT_MS)), 0));
		cr_assert(eq(int, shmq__kind_queue.check(&seg.seg, true), 0));
		rounds++;
		t_seg_free(&seg);
	}
	printf("joinable kill storm: %" PRIu64 " rounds, %" PRIu64 " kills, %" PRIu64
	       " tasks settled for the dead, %" PRIu64 " drained; every count exact\n",
	       rounds, kills, settled, drained);
}
