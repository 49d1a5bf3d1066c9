/* SPDX-License-Identifier: MIT */
/*
 * Event (threading.Event / multiprocessing.Event) in a shared-memory
 * segment: a flag that set() raises and clear() lowers, and wait(), which
 * returns once the flag is set.  One segment of kind SHMQ_KIND_EVENT holds
 * one struct shmq_event_shm (shm/layout.h).
 *
 * Every function returns >= 0 on success or a negative errno: -EAGAIN (a
 * try), -ETIMEDOUT (the absolute CLOCK_MONOTONIC deadline passed), -EINVAL
 * (misuse).  Waits never return -EINTR.  The shared word is untrusted:
 * any value is a valid flag and generation, so a peer that scribbles on it
 * can make the event look set or clear, never make a call here loop or
 * sleep past its deadline.
 *
 * The ordering and the lost-wake-up argument are at the top of shm/event.c.
 */
#ifndef SHMQ_SHM_EVENT_H
#define SHMQ_SHM_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/fence.h"
#include "shm/layout.h"

#define SHMQ_EVENT_SET		   UINT32_C(1) /* state bit 0 */
#define SHMQ_EVENT_SPIN_NS_DEFAULT 20000

/* Process-local handle, filled by shmq__event_attach(); must not be copied after. */
struct shmq_event {
	struct shmq_event_shm *e;
	struct shmq_counters *c;      /* this session's counters, or &private_counters */
	uint64_t spin_ns;	      /* spin budget before sleeping; 0: sleep at once */
	struct shmq_fence_user fence; /* light barrier on set (shm/fence.h) */
	struct shmq_counters private_counters;
};

/**
 * shmq__event_attach() - bind a handle to the event in a validated segment.
 * @ev:		handle to fill
 * @seg:	segment from shmq__segment_attach(), of kind SHMQ_KIND_EVENT
 * @session:	the caller's record index (counters), or UINT32_MAX for none
 * Return: 0; -EINVAL not an event, or a bad record index.
 */
int shmq__event_attach(struct shmq_event *ev, const struct shmq_segment *seg, uint32_t session);

/**
 * shmq__event_set() - raise the flag and wake every waiter.
 *
 * A set happens-before every wait that returns because of it.  Setting a
 * set event does nothing (and wakes nobody).
 * Context: any thread; never blocks (one FUTEX_WAKE at most).
 * Return: 1 the flag was raised now; 0 it was already set.
 */
int shmq__event_set(struct shmq_event *ev);

/**
 * shmq__event_clear() - lower the flag.
 *
 * A waiter that started waiting before the set that this clear undoes still
 * returns 0: the generation tells it a set happened.
 * Return: 1 the flag was lowered now; 0 it was already clear.
 */
int shmq__event_clear(struct shmq_event *ev);

/* Is the flag set now?  A snapshot (acquire: pairs with the set's release). */
bool shmq__event_is_set(const struct shmq_event *ev);

/**
 * shmq__event_wait() - wait until the flag is set, or a set happened.
 * @ev:		handle
 * @deadline_ns: absolute CLOCK_MONOTONIC (a past one: look once)
 *
 * Returns at once when the flag is set.  Otherwise spins for spin_ns, then
 * sleeps on the eventcount; it returns 0 as soon as the flag is set or its
 * generation has moved since the call began -- a set followed at once by a
 * clear is never missed.
 * Return: 0; -ETIMEDOUT.
 */
int shmq__event_wait(struct shmq_event *ev, uint64_t deadline_ns);

#endif /* SHMQ_SHM_EVENT_H */
