/* SPDX-License-Identifier: MIT */
/*
 * Barriers between processes: one 64-bit word, changed only by CAS.
 *
 * DESIGN
 *
 * The word is generation (32 bits, the futex word) | count (15) | BROKEN |
 * history (16) (shm/layout.h).  An arrival adds one to count; the one that
 * makes it `parties` ends the cycle instead: generation + 1, count 0, a 0
 * shifted into history, and a FUTEX_WAKE of everyone.  A break (a timeout,
 * abort(), a reset with waiters, a party's death) ends the cycle the same
 * way with a 1 shifted in, and sets BROKEN unless it is a reset; while
 * BROKEN, arrivals fail at once.  A waiter remembers the generation it
 * arrived in, g, sleeps while the futex word is g, and when it has moved
 * on by d reads the cycle's fate from history bit d - 1.  Because the
 * word changes in the same CAS that ends the cycle, no wake-up is lost:
 * the kernel compares the word under its bucket lock, so a waiter about to
 * sleep on g finds it moved.
 *
 * History holds 16 cycles.  A waiter whose cycle ended more than 16
 * generations ago (16 resets, or more threads than parties cycling while
 * it was not scheduled) can no longer tell and is told the barrier broke:
 * a spurious -EPIPE is an error the caller handles, a spurious success
 * would let it run ahead of parties that never arrived.  pthread and
 * CPython barriers block new arrivals while a cycle drains instead; that
 * would let a dead waiter stall every live one.
 *
 * Ordering -- read before changing:
 *
 *   party (not last)                        last party
 *   ------------------------------------    ------------------------------------
 *   (work before the barrier)               (work before the barrier)
 *   A1 cas_acq_rel(&state, count + 1)       A2 cas_acq_rel(&state, next cycle)
 *   S1 futex_wait(gen, g)                   S2 futex_wake(gen, all)
 *   A3 load_acquire(&state): gen != g
 *   (work after the barrier)
 *
 *   Every change is a read-modify-write, so the arrivals form a release
 *   sequence: A2 acquires every A1 of its cycle and releases them with its
 *   own work; A3 acquires A2.  So every party's work before its wait()
 *   happens-before every party's work after.  A break is the same CAS and
 *   publishes nothing anyone relies on.
 *
 * Asynchronous waits split a wait at A1: arrive() counts the arrival and
 * keeps g in the handle, the io_uring or helper-thread wait sleeps on the
 * futex word with key g (the kernel compares it at issue, so a cycle that
 * ended in between completes it at once), and arrival() is A3 and the
 * fate.
 *
 * Invariants: count < parties; count is 0 while BROKEN.
 *
 * Untrusted peers: a scribbled word can release or break a cycle early (a
 * wrong answer for that cycle, as any scribble on shared data), never
 * make a waiter loop: every CAS loop is bounded by CAS_TRIES, every sleep
 * by the deadline.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "shm/atomic.h"
#include "shm/barrier.h"
#include "shm/futex.h"
#include "shm/kind.h"

#define GEN_MASK     UINT64_C(0xffffffff)
#define HISTORY_MASK UINT64_C(0xffff)

/* Consecutive failed CASes before a loop gives up: each is another party's write. */
#define CAS_TRIES (UINT32_C(1) << 16)

/* Polls of the word between clock reads while spinning. */
#define SPIN_CLOCK_EVERY 64

static uint32_t gen_of(uint64_t s)
{
	return (uint32_t)(s & GEN_MASK);
}

static uint32_t count_of(uint64_t s)
{
	return (uint32_t)((s & SHMQ_BARRIER_COUNT_MASK) >> SHMQ_BARRIER_COUNT_SHIFT);
}

/* The word after the cycle of @s ends, released (@broke false) or broken. */
static uint64_t next_cycle(uint64_t s, bool broke)
{
	uint64_t hist = ((s >> SHMQ_BARRIER_HISTORY_SHIFT) << 1 | broke) & HISTORY_MASK;

	return (uint64_t)(gen_of(s) + 1) | hist << SHMQ_BARRIER_HISTORY_SHIFT;
}

/* The futex word: the generation, the low half of state (little-endian, shm/layout.h). */
static _Atomic uint32_t *gen_word(struct shmq_barrier_shm *b)
{
	return (_Atomic uint32_t *)(void *)&b->state;
}

int shmq__barrier_attach(struct shmq_barrier *bar, const struct shmq_segment *seg, uint32_t session)
{
	struct shmq_session_shm *rec = NULL;

	if (!bar || !seg || seg->kind != SHMQ_KIND_BARRIER || !seg->object)
		return -EINVAL;
	if (session != UINT32_MAX) {
		rec = shmq__session_at(seg, session);
		if (!rec)
			return -EINVAL;
	}
	memset(bar, 0, sizeof(*bar));
	bar->b = seg->object;
	bar->c = rec ? &rec->c : &bar->private_counters;
	bar->parties = seg->geom.barrier.parties;
	bar->can_wait = rec != NULL;
	bar->spin_ns = SHMQ_BARRIER_SPIN_NS_DEFAULT;
	return 0;
}

/*
 * End the cycle of generation @g as broken (@set_broken: and stay broken).
 * Return: 1 this call ended it; 0 it had ended already (see *@ret_s).
 */
static int break_cycle(struct shmq_barrier_shm *b, uint32_t g, bool set_broken, uint64_t *ret_s)
{
	uint64_t s = load_relaxed(&b->state);

	for (uint32_t i = 0; i < CAS_TRIES; i++) {
		if (gen_of(s) != g || (s & SHMQ_BARRIER_BROKEN))
			break;
		if (cas_acq_rel(&b->state, &s,
				next_cycle(s, true) | (set_broken ? SHMQ_BARRIER_BROKEN : 0))) {
			(void)shmq__futex_wake(gen_word(b), INT_MAX);
			return 1;
		}
	}
	*ret_s = s;
	return 0;
}

/* The fate of the cycle of generation @g, from @s where it has ended: 0 released, or -EPIPE. */
static int fate(uint64_t s, uint32_t g)
{
	uint32_t d = gen_of(s) - g; /* generations run free */

	if (d == 0 || d > SHMQ_BARRIER_HISTORY_BITS)
		return -EPIPE; /* out of history: see DESIGN */
	return (s >> (SHMQ_BARRIER_HISTORY_SHIFT + d - 1)) & 1 ? -EPIPE : 0;
}

/*
 * A3 after A1: wait, spinning then sleeping, for cycle @g, in which this
 * party arrived @idx-th, to end.  A wait
 * whose deadline passes breaks the cycle when @break_late (a wait's
 * timeout), or leaves the arrival as it is (an await slice).
 */
static int await_cycle(struct shmq_barrier *bar, uint32_t g, uint32_t idx, uint64_t deadline_ns,
		       bool break_late)
{
	_Atomic uint32_t *word = gen_word(bar->b);
	uint64_t s;
	int r;

	if (bar->spin_ns && shmq__now_ns() < deadline_ns) {
		uint64_t end = shmq__deadline_after_ns(bar->spin_ns);

		if (end > deadline_ns)
			end = deadline_ns;
		for (uint32_t i = 1;; i++) {
			cpu_relax();
			s = load_acquire(&bar->b->state); /* A3: pairs with A2 */
			if (gen_of(s) != g)
				goto ended;
			if (i % SPIN_CLOCK_EVERY == 0 && shmq__now_ns() >= end)
				break;
		}
	}
	for (;;) {
		counter_inc(&bar->c->sleeps, 1);
		r = shmq__futex_wait(word, g, deadline_ns); /* S1 */
		s = load_acquire(&bar->b->state);	    /* A3: pairs with A2 */
		if (gen_of(s) != g)
			goto ended;
		if (r == -ETIMEDOUT) {
			if (!break_late)
				return -ETIMEDOUT;
			if (break_cycle(bar->b, g, true, &s)) {
				counter_inc(&bar->c->empty, 1);
				return -ETIMEDOUT;
			}
			s = load_acquire(&bar->b->state); /* A3: it ended as we timed out */
			if (gen_of(s) != g)
				goto ended;
			return -ETIMEDOUT; /* a peer rewrites the word on every try */
		}
		if (r < 0 && r != -EAGAIN)
			return r;
	}
ended:
	r = fate(s, g);
	if (r < 0)
		return r;
	counter_inc(&bar->c->received, 1);
	return (int)idx;
}

/*
 * A1/A2: count one arrival.  Return: the index, when it ended the cycle;
 * -EINPROGRESS with the cycle's generation and the index; -EPIPE broken.
 */
static int arrive(struct shmq_barrier *bar, uint32_t *ret_gen, uint32_t *ret_idx)
{
	struct shmq_barrier_shm *b = bar->b;
	uint64_t s;

	counter_inc(&bar->c->sent, 1); /* arrivals */
	s = load_relaxed(&b->state);   /* a first guess; the CAS validates it */
	for (uint32_t i = 0; i < CAS_TRIES; i++) {
		uint32_t count = count_of(s);

		if (s & SHMQ_BARRIER_BROKEN)
			return -EPIPE;
		if (count + 1 >= bar->parties) {
			/* A2: this arrival ends the cycle */
			if (!cas_acq_rel(&b->state, &s, next_cycle(s, false)))
				continue;
			if (bar->parties > 1) {
				counter_inc(&bar->c->wakes, 1);
				(void)shmq__futex_wake(gen_word(b), INT_MAX); /* S2 */
			}
			counter_inc(&bar->c->received, 1);
			return (int)(bar->parties -
				     1); /* a scribbled count past parties: the last */
		}
		/* A1 */
		if (cas_acq_rel(&b->state, &s, s + (UINT64_C(1) << SHMQ_BARRIER_COUNT_SHIFT))) {
			*ret_gen = gen_of(s);
			*ret_idx = count;
			return -EINPROGRESS;
		}
	}
	return -EPIPE; /* a peer rewrote the word on every try: as good as broken by it */
}

int shmq__barrier_wait(struct shmq_barrier *bar, uint64_t deadline_ns)
{
	uint32_t g, idx;
	int r;

	if (!bar->can_wait)
		return -EINVAL;
	r = arrive(bar, &g, &idx);
	return r == -EINPROGRESS ? await_cycle(bar, g, idx, deadline_ns, true) : r;
}

int shmq__barrier_arrive(struct shmq_barrier *bar)
{
	bool idle = false;
	int r;

	if (!bar->can_wait)
		return -EINVAL;
	if (!atomic_compare_exchange_strong(&bar->pending, &idle, true))
		return -EBUSY;
	r = arrive(bar, &bar->pending_gen, &bar->pending_idx);
	if (r != -EINPROGRESS)
		store_release(&bar->pending, false);
	return r;
}

int shmq__barrier_arrival(struct shmq_barrier *bar)
{
	uint64_t s;
	int r;

	if (!load_acquire(&bar->pending))
		return -EINVAL;
	s = load_acquire(&bar->b->state); /* A3: pairs with A2 */
	if (gen_of(s) == bar->pending_gen)
		return -EAGAIN;
	r = fate(s, bar->pending_gen);
	if (r == 0) {
		counter_inc(&bar->c->received, 1);
		r = (int)bar->pending_idx;
	}
	store_release(&bar->pending, false);
	return r;
}

int shmq__barrier_await(struct shmq_barrier *bar, uint64_t deadline_ns)
{
	int r;

	if (deadline_ns == 0)
		return shmq__barrier_arrival(bar);
	if (!load_acquire(&bar->pending))
		return -EINVAL;
	r = await_cycle(bar, bar->pending_gen, bar->pending_idx, deadline_ns, false);
	if (r != -ETIMEDOUT)
		store_release(&bar->pending, false);
	return r;
}

int shmq__barrier_cancel(struct shmq_barrier *bar)
{
	uint64_t s;
	int r;

	if (!load_acquire(&bar->pending))
		return -EINVAL;
	(void)break_cycle(bar->b, bar->pending_gen, true, &s); /* only its own cycle */
	r = shmq__barrier_arrival(bar);
	if (r == -EAGAIN) {
		store_release(&bar->pending, false); /* a peer rewrites the word on every try */
		r = -EPIPE;
	}
	return r;
}

/* Break whatever cycle is current, and stay broken.  Return: true this call broke it. */
static bool break_now(struct shmq_barrier_shm *b)
{
	uint64_t s = load_relaxed(&b->state);

	for (uint32_t i = 0; i < CAS_TRIES; i++) {
		if (s & SHMQ_BARRIER_BROKEN)
			return false;
		if (break_cycle(b, gen_of(s), true, &s))
			return true;
	}
	return false; /* a peer rewrites the word on every try */
}

int shmq__barrier_abort(struct shmq_barrier *bar)
{
	if (!bar->can_wait)
		return -EINVAL;
	(void)break_now(bar->b);
	return 0;
}

int shmq__barrier_reset(struct shmq_barrier *bar)
{
	struct shmq_barrier_shm *b = bar->b;
	uint64_t s = load_relaxed(&b->state);

	if (!bar->can_wait)
		return -EINVAL;
	for (uint32_t i = 0; i < CAS_TRIES; i++) {
		if (s & SHMQ_BARRIER_BROKEN) {
			/* mended: its waiters were all released when it broke */
			if (cas_relaxed(&b->state, &s,
					s & ~(SHMQ_BARRIER_BROKEN | SHMQ_BARRIER_COUNT_MASK)))
				return 0;
			continue;
		}
		if (!count_of(s))
			return 0; /* an empty cycle already */
		if (break_cycle(b, gen_of(s), false, &s))
			return 0;
	}
	return 0;
}

uint32_t shmq__barrier_n_waiting(const struct shmq_barrier *bar)
{
	uint64_t s = load_relaxed(&bar->b->state);

	return s & SHMQ_BARRIER_BROKEN ? 0 : count_of(s);
}

bool shmq__barrier_is_broken(const struct shmq_barrier *bar)
{
	return load_relaxed(&bar->b->state) & SHMQ_BARRIER_BROKEN;
}

/* --- The barrier kind (shm/kind.h) --- */

static int barrier_kind_attach(void *handle, const struct shmq_segment *seg, uint32_t session)
{
	return shmq__barrier_attach(handle, seg, session);
}

static int barrier_geom_check(const union shmq_geom *u, bool formatted)
{
	const struct shmq_barrier_geom *g = &u->barrier;

	(void)formatted; /* nothing is derived */
	if (g->parties < 1 || g->parties > SHMQ_BARRIER_PARTIES_MAX)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(g->reserved) / sizeof(g->reserved[0]); i++)
		if (g->reserved[i])
			return -EINVAL;
	return 0;
}

static int barrier_check(const struct shmq_segment *seg, bool quiescent)
{
	const struct shmq_barrier_shm *b = seg->object;
	uint64_t s = load_relaxed(&b->state);

	(void)quiescent;
	if (count_of(s) >= seg->geom.barrier.parties)
		return -EBADMSG;
	if ((s & SHMQ_BARRIER_BROKEN) && count_of(s))
		return -EBADMSG;
	return 0;
}

/*
 * A party died: the others would wait for it forever, in this cycle or the
 * next.  Break the barrier, as Python does for a party that times out.
 */
static int barrier_repair(const struct shmq_segment *seg, uint32_t index,
			  struct shmq_kind_repair *ret)
{
	struct shmq_barrier_shm *b = seg->object;

	(void)index; /* every session is a party */
	if (!break_now(b))
		return 0;
	fetch_add_relaxed(&b->breaks, 1); /* a statistic; the daemon writes it */
	ret->broken++;
	return 1;
}

/* Asynchronous waits: for the cycle of the handle's pending arrival to end. */
static bool barrier_is_ready(const void *handle, uint32_t events)
{
	const struct shmq_barrier *bar = handle;

	(void)events;
	return !load_acquire(&bar->pending) ||
	       gen_of(load_acquire(&bar->b->state)) != bar->pending_gen; /* A3 */
}

static int barrier_arm(void *handle, uint32_t events, struct shmq_kind_arm *ret)
{
	struct shmq_barrier *bar = handle;

	if (barrier_is_ready(handle, events))
		return 1; /* ended, or nothing pending: shmq__barrier_arrival() says which */
	/* the word moves in the CAS that ends the cycle: a wait on it cannot miss that */
	*ret = (struct shmq_kind_arm){.word = gen_word(bar->b), .key = bar->pending_gen};
	counter_inc(&bar->c->sleeps, 1);
	return 0;
}

const struct shmq_kind shmq__kind_barrier = {
	.id = SHMQ_KIND_BARRIER,
	.name = "barrier",
	.short_name = "barrier",
	.events = SHMQ_KIND_EV_RECV, /* the cycle of a pending arrival ended */
	.invariants = "count < parties; a broken barrier counts no arrivals",
	.object_size = sizeof(struct shmq_barrier_shm),
	.retired_off = offsetof(struct shmq_barrier_shm, retired),
	.geom_check = barrier_geom_check,
	.attach = barrier_kind_attach,
	.check = barrier_check,
	.repair = barrier_repair,
	.is_ready = barrier_is_ready,
	.arm = barrier_arm,
};
