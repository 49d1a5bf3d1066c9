/* SPDX-License-Identifier: MIT */
/*
 * Events between processes: a flag word and an eventcount (shm/eventcount.h).
 *
 * DESIGN
 *
 * state is bit 0 SET and bits 1..31 a generation.  set() turns a clear
 * state into (generation + 1, SET) with one CAS; clear() drops SET and keeps
 * the generation.  A waiter remembers the state it began with, g, and is
 * done when the flag is set or the generation is no longer g's: a set it
 * slept through and a clear that followed it at once still leave the
 * generation moved, so the waiter is never left behind (Python's
 * Event.wait() returns True in the same race).  Generations run free and
 * are compared only for equality; after 2^31 sets they wrap, which would
 * need 2^31 set/clear pairs during one wait to be mistaken.
 *
 * Ordering -- read before changing:
 *
 *   setter                                  waiter
 *   ------------------------------------    ------------------------------------
 *   (data the waiter will read)             A1 g = load_acquire(&state)
 *   R1 cas_seq_cst(&state, v,               (a) key = prepare(&ec)   (eventcount)
 *        (v + 2) | SET)         --------->  (b) A1 again: set, or generation moved?
 *   (d) notify(&ec)                         (e) sleep(&ec, key)
 *
 *   R1/A1: the set's release half publishes what the setter wrote before
 *   it; the waiter's acquire load sees it when it sees the new state.  The
 *   sleep is the eventcount's (a)..(f), whose store-buffering argument is
 *   in shm/eventcount.h with (c) = R1: either the setter's notify sees the
 *   waiter announced, or the waiter's re-check (b) sees R1.  clear() needs no
 *   wake: nobody waits for a clear.
 *
 * Invariants: none on the word (every value is a flag and a generation);
 * the eventcount's own (shm/eventcount.h).
 */
#include <errno.h>
#include <string.h>

#include "shm/atomic.h"
#include "shm/fence.h"
#include "shm/event.h"
#include "shm/eventcount.h"
#include "shm/futex.h"
#include "shm/kind.h"

/* Consecutive failed CASes before set()/clear() give up: each is another party's write. */
#define CAS_TRIES (UINT32_C(1) << 16)

/* Polls of state between clock reads while spinning. */
#define SPIN_CLOCK_EVERY 64

int shmq__event_attach(struct shmq_event *ev, const struct shmq_segment *seg, uint32_t session)
{
	struct shmq_session_shm *rec = NULL;

	if (!ev || !seg || seg->kind != SHMQ_KIND_EVENT || !seg->object)
		return -EINVAL;
	if (session != UINT32_MAX) {
		rec = shmq__session_at(seg, session);
		if (!rec)
			return -EINVAL;
	}
	memset(ev, 0, sizeof(*ev));
	ev->e = seg->object;
	ev->c = rec ? &rec->c : &ev->private_counters;
	ev->spin_ns = SHMQ_EVENT_SPIN_NS_DEFAULT;
	shmq__fence_user_init(&ev->fence, shmq__segment_asym_flag(seg));
	return 0;
}

int shmq__event_set(struct shmq_event *ev)
{
	uint32_t v = load_relaxed(&ev->e->state); /* a first guess; the CAS validates it */

	for (uint32_t i = 0; i < CAS_TRIES; i++) {
		if (v & SHMQ_EVENT_SET)
			return 0;
		/* R1: pairs with A1 in the waiters; (c) of the eventcount */
		if (cas_seq_cst(&ev->e->state, &v, (v + 2) | SHMQ_EVENT_SET)) {
			counter_inc(&ev->c->sent, 1);
			if (shmq__ec_notify(&ev->e->ec, &ev->fence)) /* (d)..(f) */
				counter_inc(&ev->c->wakes, 1);
			return 1;
		}
	}
	return 0; /* a peer rewrote the word on every try: as good as set by it */
}

int shmq__event_clear(struct shmq_event *ev)
{
	uint32_t v = load_relaxed(&ev->e->state); /* a first guess; the CAS validates it */

	for (uint32_t i = 0; i < CAS_TRIES; i++) {
		if (!(v & SHMQ_EVENT_SET))
			return 0;
		/* relaxed: a clear publishes nothing and nobody waits for it */
		if (cas_relaxed(&ev->e->state, &v, v & ~SHMQ_EVENT_SET))
			return 1;
	}
	return 0;
}

bool shmq__event_is_set(const struct shmq_event *ev)
{
	return load_acquire(&ev->e->state) & SHMQ_EVENT_SET; /* A1: pairs with R1 */
}

/* Set now, or set since @g was read (the generation moved)? */
static bool happened(const struct shmq_event *ev, uint32_t g)
{
	uint32_t v = load_acquire(&ev->e->state); /* A1: pairs with R1 */

	return (v & SHMQ_EVENT_SET) || (v >> 1) != (g >> 1);
}

int shmq__event_wait(struct shmq_event *ev, uint64_t deadline_ns)
{
	uint32_t g = load_acquire(&ev->e->state); /* A1 */
	int r;

	if (g & SHMQ_EVENT_SET)
		goto done;
	counter_inc(&ev->c->empty, 1);
	if (shmq__now_ns() >= deadline_ns)
		return -ETIMEDOUT; /* a past deadline: one look, as every wait */
	if (ev->spin_ns) {
		uint64_t end = shmq__deadline_after_ns(ev->spin_ns);

		if (end > deadline_ns)
			end = deadline_ns;
		for (uint32_t i = 1;; i++) {
			cpu_relax();
			if (happened(ev, g))
				goto done;
			if (i % SPIN_CLOCK_EVERY == 0 && shmq__now_ns() >= end)
				break;
		}
	}
	for (;;) {
		bool bounded;
		uint32_t key = shmq__ec_prepare(&ev->e->ec, &ev->fence, &bounded); /* (a), H1, F2 */

		if (happened(ev, g)) /* (b) */
			goto done;
		counter_inc(&ev->c->sleeps, 1);
		r = shmq__ec_sleep(&ev->e->ec, key, deadline_ns, bounded); /* (e) */
		if (r == -ETIMEDOUT) {
			if (happened(ev, g)) /* last look: never time out past a set */
				goto done;
			return -ETIMEDOUT;
		}
		if (r < 0)
			return r;
		if (happened(ev, g)) /* woken: look before announcing again (ring.c, wait_loop) */
			goto done;
	}
done:
	counter_inc(&ev->c->received, 1);
	return 0;
}

/* --- The event kind (shm/kind.h) --- */

static int event_kind_attach(void *handle, const struct shmq_segment *seg, uint32_t session)
{
	return shmq__event_attach(handle, seg, session);
}

static int event_geom_check(const union shmq_geom *u, bool formatted)
{
	const struct shmq_event_geom *g = &u->event;

	(void)formatted; /* nothing is derived */
	if (g->initial > 1)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(g->reserved) / sizeof(g->reserved[0]); i++)
		if (g->reserved[i])
			return -EINVAL;
	return 0;
}

static void event_format(void *object, unsigned char *tail, const union shmq_geom *u)
{
	struct shmq_event_shm *e = object;

	(void)tail;
	store_relaxed(&e->state, u->event.initial ? SHMQ_EVENT_SET : 0); /* ordered by R0 */
}

static int event_check(const struct shmq_segment *seg, bool quiescent)
{
	(void)seg, (void)quiescent;
	return 0; /* every word value is a valid flag, generation and eventcount */
}

/* A session killed asleep leaves the sleeper bit: clear it as a waker would. */
static int event_repair(const struct shmq_segment *seg, uint32_t index,
			struct shmq_kind_repair *ret)
{
	struct shmq_event_shm *e = seg->object;

	(void)index; /* any session's death may have left it: the repair is a spare wake */
	ret->woken += shmq__ec_wake_all(&e->ec);
	return ret->woken > 0;
}

static bool event_is_ready(const void *handle, uint32_t events)
{
	(void)events;
	return shmq__event_is_set(handle);
}

static int event_arm(void *handle, uint32_t events, struct shmq_kind_arm *ret)
{
	struct shmq_event *ev = handle;
	uint32_t key;
	bool bounded;

	(void)events;
	if (shmq__event_is_set(ev))
		return 1;
	key = shmq__ec_prepare(&ev->e->ec, &ev->fence, &bounded); /* (a), H1, F2 */
	if (shmq__event_is_set(ev))
		return 1; /* (b); the bit stays set: the next set pays one spare wake */
	counter_inc(&ev->c->sleeps, 1);
	*ret = (struct shmq_kind_arm){.word = &ev->e->ec, .key = key, .bounded = bounded};
	return 0;
}

const struct shmq_kind shmq__kind_event = {
	.id = SHMQ_KIND_EVENT,
	.name = "event",
	.short_name = "event",
	.events = SHMQ_KIND_EV_RECV,
	.invariants = "nothing (every event word is valid)",
	.object_size = sizeof(struct shmq_event_shm),
	.retired_off = offsetof(struct shmq_event_shm, retired),
	.geom_check = event_geom_check,
	.attach = event_kind_attach,
	.format = event_format,
	.check = event_check,
	.repair = event_repair,
	.is_ready = event_is_ready,
	.arm = event_arm,
};
