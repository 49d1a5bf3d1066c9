/* SPDX-License-Identifier: MIT */
/*
 * Barriers (threading.Barrier / multiprocessing.Barrier) in a shared-memory
 * segment: wait() returns once `parties` threads have called it, each with
 * its own arrival index; a timeout, an abort() or the death of a party
 * breaks the barrier, and every wait in the broken cycle and after it
 * fails (-EPIPE, Python's BrokenBarrierError) until reset().  One segment
 * of kind SHMQ_KIND_BARRIER holds one struct shmq_barrier_shm
 * (shm/layout.h).
 *
 * Every function returns >= 0 on success or a negative errno: -EPIPE
 * (broken), -ETIMEDOUT (this wait's absolute CLOCK_MONOTONIC deadline
 * passed: the barrier is now broken for the others), -EINVAL (misuse).
 * Waits never return -EINTR.  The state word is untrusted: a peer that
 * scribbles on it can release or break a cycle, never make a call here
 * loop or sleep past its deadline.
 *
 * The state word, the ordering and the history argument are at the top of
 * shm/barrier.c.
 */
#ifndef SHMQ_SHM_BARRIER_H
#define SHMQ_SHM_BARRIER_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/layout.h"

/*
 * Spin 20 us before sleeping, as an event does: two processes on two CPUs
 * cycled in 0.49-0.59 us with it and 33 us without (a FUTEX_WAKE and a
 * wake-up per cycle; a pthread_barrier_t took 31-39 us), shmq-bench --only
 * sync.  With more parties than CPUs a spinner can hold back the last
 * arrival, by at most the budget; shmq_barrier_set_spin(b, 0) sleeps at once.
 */
#define SHMQ_BARRIER_SPIN_NS_DEFAULT 20000

/* Process-local handle, filled by shmq__barrier_attach(); must not be copied after. */
struct shmq_barrier {
	struct shmq_barrier_shm *b;
	struct shmq_counters *c; /* this session's counters, or &private_counters */
	uint32_t parties;	 /* from the geometry, validated */
	bool can_wait;		 /* a session record: not a view */
	uint64_t spin_ns;	 /* spin budget before sleeping; 0: sleep at once */
	/* An asynchronous arrival (shmq__barrier_arrive()): at most one per handle. */
	_Atomic bool pending;
	uint32_t pending_gen, pending_idx;
	struct shmq_counters private_counters;
};

/**
 * shmq__barrier_attach() - bind a handle to the barrier in a validated segment.
 * @bar:	handle to fill
 * @seg:	segment from shmq__segment_attach(), of kind SHMQ_KIND_BARRIER
 * @session:	the caller's record index, or UINT32_MAX for none (a view:
 *		it may look, never wait)
 * Return: 0; -EINVAL not a barrier, or a bad record index.
 */
int shmq__barrier_attach(struct shmq_barrier *bar, const struct shmq_segment *seg,
			 uint32_t session);

/**
 * shmq__barrier_wait() - arrive, and wait for the cycle's other parties.
 * @bar:	handle (with a record)
 * @deadline_ns: absolute CLOCK_MONOTONIC
 *
 * Everything every party did before its wait() of a cycle happens-before
 * everything each of them does after it returns.
 * Return: the arrival index, 0 for the first to arrive .. parties - 1 for
 *         the one that released the cycle; -EPIPE broken (before the call,
 *         or while waiting); -ETIMEDOUT the deadline passed first, and this
 *         call broke the barrier; -EINVAL no record.
 */
int shmq__barrier_wait(struct shmq_barrier *bar, uint64_t deadline_ns);

/**
 * shmq__barrier_arrive() - arrive without waiting, for an asynchronous wait.
 * @bar:	handle (with a record)
 *
 * The arrival counts as a wait's.  When it does not end the cycle, the
 * handle remembers it: an asynchronous wait on the barrier (the kind's
 * arm) reports when the cycle has ended, and shmq__barrier_arrival() says
 * how.  One arrival may be pending per handle.
 * Return: the arrival index, when this arrival ended the cycle;
 *         -EINPROGRESS arrived, the cycle goes on; -EPIPE broken;
 *         -EBUSY an arrival of this handle is pending; -EINVAL no record.
 */
int shmq__barrier_arrive(struct shmq_barrier *bar);

/**
 * shmq__barrier_arrival() - the fate of the handle's pending arrival.
 * Return: its index, the cycle released; -EPIPE it broke; -EAGAIN not yet
 *         ended; -EINVAL no arrival pending.  Once it returns an index or
 *         -EPIPE, nothing is pending any more.
 */
int shmq__barrier_arrival(struct shmq_barrier *bar);

/**
 * shmq__barrier_await() - wait for the pending arrival's cycle to end.
 * @bar:	handle
 * @deadline_ns: absolute CLOCK_MONOTONIC; 0 is shmq__barrier_arrival()
 *
 * Unlike a wait, a deadline that passes breaks nothing: the arrival stays
 * pending, so a caller may wait in slices (and give up with an abort).
 * Return: as shmq__barrier_arrival(), or -ETIMEDOUT the deadline passed
 *         and the arrival is still pending.
 */
int shmq__barrier_await(struct shmq_barrier *bar, uint64_t deadline_ns);

/**
 * shmq__barrier_cancel() - give the pending arrival up.
 * Its cycle breaks if it has not ended (only that cycle: one that ended
 * meanwhile is left alone, and so is the next), and nothing is pending
 * after.  Return: the index, the cycle was released first; -EPIPE it is
 * broken; -EINVAL no arrival pending.
 */
int shmq__barrier_cancel(struct shmq_barrier *bar);

/* Break the barrier: waiters now and later get -EPIPE until a reset.  Return: 0; -EINVAL. */
int shmq__barrier_abort(struct shmq_barrier *bar);

/*
 * Back to an empty cycle: a broken barrier is mended; one with waiters
 * breaks that cycle for them (-EPIPE) and starts a fresh one.
 * Return: 0; -EINVAL.
 */
int shmq__barrier_reset(struct shmq_barrier *bar);

/* Parties waiting in the current cycle (0 when broken): a snapshot. */
uint32_t shmq__barrier_n_waiting(const struct shmq_barrier *bar);

/* Broken now?  A snapshot. */
bool shmq__barrier_is_broken(const struct shmq_barrier *bar);

#endif /* SHMQ_SHM_BARRIER_H */
