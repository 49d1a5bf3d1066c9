/* SPDX-License-Identifier: MIT */
/*
 * Stress for shm/event.c across processes: waiters asleep in the kernel, a
 * setter that raises the flag and lowers it again at once, round after
 * round.  Every waiter must come back from every round: a set cleared
 * before a waiter could look is exactly the race that loses wake-ups in a
 * flag-only event, and the generation must make it harmless.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "shm/atomic.h"
#include "shm/event.h"
#include "shm/futex.h"
#include "tests/helpers.h"

#define STRESS_SECONDS_DEFAULT 30
#define N_WAITERS	       3
#define WAIT_TIMEOUT_MS	       5000 /* a wait this long is a lost wake-up */
#define ROUNDS_MAX	       200000

TestSuite(stress_event, .timeout = 180);

struct shared {
	_Atomic uint32_t round;		  /* the setter's round, published when all returned */
	_Atomic uint32_t done[N_WAITERS]; /* rounds each waiter came back from */
	_Atomic uint32_t failed;	  /* a waiter's wait returned an error */
	_Atomic uint32_t stop;		  /* no more rounds */
};

static struct t_seg seg;
static struct shared *sh;

static int waiter(void *arg)
{
	uint32_t me = (uint32_t)(uintptr_t)arg;
	struct shmq_event ev;

	/* A session record of its own: its sleeps counter is the setter's signal. */
	if (shmq__event_attach(&ev, &seg.seg, me) < 0)
		return 1;
	ev.spin_ns = 0;
	for (uint32_t r = 1; !load_acquire(&sh->stop); r++) {
		int rc = shmq__event_wait(&ev, t_deadline_ms(WAIT_TIMEOUT_MS));

		if (rc < 0) {
			store_release(&sh->failed, r);
			return 2;
		}
		store_release(&sh->done[me], r);
		/* The next round starts when the setter has seen everybody back. */
		while (load_acquire(&sh->round) < r && !load_acquire(&sh->stop))
			cpu_relax();
	}
	return 0;
}

/* Until every waiter has gone to sleep @r times (it read the state of round @r). */
static bool all_asleep(uint32_t r, uint64_t deadline_ns)
{
	for (uint32_t i = 0; i < N_WAITERS; i++)
		while (load_relaxed(&shmq__session_at(&seg.seg, i)->c.sleeps) < r)
			if (shmq__now_ns() > deadline_ns || load_acquire(&sh->failed))
				return false;
	return true;
}

static bool all_back(uint32_t r, uint64_t deadline_ns)
{
	for (uint32_t i = 0; i < N_WAITERS; i++)
		while (load_acquire(&sh->done[i]) < r)
			if (shmq__now_ns() > deadline_ns || load_acquire(&sh->failed))
				return false;
	return true;
}

Test(stress_event, waiters_come_back_from_every_set_even_when_it_is_cleared_at_once)
{
	uint64_t end = shmq__deadline_after_ns(t_stress_seconds(STRESS_SECONDS_DEFAULT) *
					       UINT64_C(1000000000));
	struct shmq_event ev;
	pid_t pid[N_WAITERS];
	uint32_t r;

	t_seg_new_event(&seg, 0); /* records 0..N_WAITERS-1 are the waiters' */
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert(sh != MAP_FAILED);
	for (uint32_t i = 0; i < N_WAITERS; i++) {
		uint32_t idx;

		cr_assert(eq(int, shmq__session_claim(&seg.seg, SHMQ_ROLE_USER, 1, 0, &idx), 0));
		cr_assert(eq(u32, idx, i));
	}
	cr_assert(eq(int, shmq__event_attach(&ev, &seg.seg, UINT32_MAX), 0));
	for (uint32_t i = 0; i < N_WAITERS; i++)
		pid[i] = t_fork_peer(waiter, (void *)(uintptr_t)i);
	for (r = 1; r <= ROUNDS_MAX && shmq__now_ns() < end; r++) {
		uint64_t deadline = t_deadline_ms(WAIT_TIMEOUT_MS);

		cr_assert(all_asleep(r, deadline), "round %" PRIu32 ": waiters never slept", r);
		shmq__event_set(&ev);
		shmq__event_clear(&ev); /* before any waiter can have looked */
		cr_assert(all_back(r, deadline), "round %" PRIu32 ": a waiter missed the set", r);
		store_release(&sh->round, r);
	}
	store_release(&sh->stop, 1);
	shmq__event_set(&ev); /* whoever sleeps in the last round */
	for (uint32_t i = 0; i < N_WAITERS; i++)
		cr_assert(eq(int, t_wait_peer(pid[i]), 0), "waiter %" PRIu32, i);
	cr_assert(eq(u32, load_relaxed(&sh->failed), 0));
	printf("event set/clear: %" PRIu32 " rounds, %d sleeping waiters each, none lost\n", r - 1,
	       N_WAITERS);
	t_seg_free(&seg);
}
