/* SPDX-License-Identifier: MIT */
/*
 * Conditions between processes: a futex word and two counts, all changed
 * under the condition's lock.
 *
 * DESIGN
 *
 * A waiter, holding the lock, joins: waiting++.  notify(n), holding the
 * lock, counts k = min(n, waiting) of the waiters as notified: waiting -=
 * k, pending += k, seq++, then wakes k sleepers on seq.  A waiter that
 * wakes takes the lock back and leaves notified if seq moved since it
 * joined and a notification is pending (pending--); otherwise the wake
 * was spare and it sleeps again.  So waiting + pending is the number of
 * threads inside wait(), notify(n) lets exactly min(n, waiting) more of
 * them leave notified than would otherwise, and a thread that joins after
 * a notify is never taken for one of its waiters: it sees seq unmoved, and
 * a later notify that moves seq also adds its own pending count.  Which of
 * the eligible waiters leave first is the kernel's wake order (not FIFO,
 * as multiprocessing.Condition's is not).  A notify with nobody waiting
 * changes nothing, and costs no system call.
 *
 * Ordering -- read before changing:
 *
 *   waiter                                  notifier
 *   ------------------------------------    ------------------------------------
 *   (holds the lock)                        (holds the lock)
 *   W1 waiting++; entry = key = seq         N1 k = min(n, waiting); waiting -= k;
 *   L1 lock release (its R1) ---------->       pending += k; seq++
 *   W2 futex_wait(&seq, key)                N2 futex_wake(&seq, k)
 *   L2 lock take back (its A1) <--------    L1 lock release (its R1)
 *   W3 seq != entry && pending?  pending--
 *
 *   Every change to the counts and to seq is made while holding the lock,
 *   so the lock's release/acquire pairs order them and the loads can be
 *   relaxed: a notifier sees every waiter that joined before it took the
 *   lock, and a woken waiter, having taken the lock back, sees every
 *   notify that released it before.  No lost wake-up: W1 reads seq under
 *   the lock; a notify that counted this waiter moved seq after that (N1
 *   comes later in the lock's order), so W2's futex_wait either finds the
 *   word moved (-EAGAIN) or is queued before N2 and woken by it.  N2 may
 *   wake a sleeper that then finds pending taken by a waiter that was not
 *   yet asleep (it found seq moved at W2); the sleeper re-sleeps on the
 *   new seq, and the taker was eligible too.  A timeout first looks for a
 *   pending notification (a notify that raced the deadline wins), then
 *   withdraws from waiting.
 *
 * Deaths.  The counts live in the segment, so a waiter killed inside
 * wait() would stay counted and take a future notification.  Each session
 * counts its threads inside wait() in its record (k.cond.waiting); the
 * daemon's repair takes that many from waiting (or, when waiting is
 * zero, from pending) and wakes every sleeper, so a wake the dead waiter
 * swallowed is passed on.  The repair runs without the lock, so every
 * change to the counts is an atomic read-modify-write.  The record and the
 * counts cannot change in one step; they are ordered so that a death
 * between the two steps leaves the counts too high, never too low: join
 * counts waiting before the record, leaving lowers the record before the
 * counts.  Counts too high cost a spare wake-up (a notification for a
 * waiter that is gone, taken by a later one), never a lost one.  Once no
 * user is attached, the daemon resets both counts (daemon/cond.c).
 *
 * Asynchronous waits cut W1..W3 at the sleep: begin() is W1 and L1, the
 * io_uring or helper-thread wait is W2 on a key read with acquire (A4,
 * pairing with the release of N1's seq step, so a moved seq comes with its
 * pending count), and end() is W3 once the caller holds the lock again.
 * The lost-wake-up argument is unchanged: the key is read after joining,
 * and a notify that counts the wait moves seq after that.
 *
 * Invariants: none on the words (every value is a count or a sequence);
 * waiting + pending is at least the threads inside wait(), exactly that
 * when no process died inside it.
 *
 * Untrusted peers: a scribbled seq wakes every sleeper (they re-check); a
 * scribbled count can make a notify count phantom waiters (spare
 * wake-ups later) or find none (a waiter sleeps until its deadline or the
 * next notify).  Every loop is bounded by CAS_TRIES or by the deadline.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "shm/atomic.h"
#include "shm/cond.h"
#include "shm/futex.h"
#include "shm/kind.h"

/* Consecutive failed CASes before a count update gives up: each is another party's write. */
#define CAS_TRIES (UINT32_C(1) << 16)

/* More threads than one process can have (the kernel's PID_MAX_LIMIT): a scribbled record. */
#define THREADS_MAX (UINT32_C(1) << 22)

int shmq__cond_attach(struct shmq_cond *cv, const struct shmq_segment *seg, uint32_t session)
{
	struct shmq_session_shm *rec = NULL;
	struct shmq_lock *lk;

	if (!cv || !seg || seg->kind != SHMQ_KIND_COND || !seg->object)
		return -EINVAL;
	if (session != UINT32_MAX) {
		rec = shmq__session_at(seg, session);
		if (!rec)
			return -EINVAL;
	}
	lk = cv->lk;
	memset(cv, 0, sizeof(*cv));
	cv->cv = seg->object;
	cv->lk = lk;
	cv->c = rec ? &rec->c : &cv->private_counters;
	cv->mine = rec ? &rec->k.cond.waiting : NULL;
	cv->lock_id = seg->geom.cond.lock_id;
	return 0;
}

/* Take one from *@w unless it is zero.  Return: true one was taken. */
static bool take_one(_Atomic uint32_t *w)
{
	uint32_t v = load_relaxed(w);

	for (uint32_t i = 0; i < CAS_TRIES; i++) {
		if (!v)
			return false;
		if (cas_relaxed(w, &v, v - 1))
			return true;
	}
	return false;
}

/* W3: notified?  Takes the pending notification; the record first (see Deaths). */
static bool take_notification(struct shmq_cond *cv, uint32_t entry)
{
	if (load_acquire(&cv->cv->seq) == entry || !load_relaxed(&cv->cv->pending))
		return false;
	fetch_sub_relaxed(cv->mine, 1);
	if (take_one(&cv->cv->pending))
		return true;
	fetch_add_relaxed(cv->mine, 1); /* the daemon's repair took it first: still waiting */
	return false;
}

/* W1, holding the lock: join, the counts before the record (see Deaths).  Return: the entry seq. */
static uint32_t join(struct shmq_cond *cv)
{
	fetch_add_relaxed(&cv->cv->waiting, 1);
	fetch_add_relaxed(cv->mine, 1);
	return load_relaxed(&cv->cv->seq); /* stable: notifies hold the lock */
}

/* Leave without a notification: the record first, then the counts (see Deaths). */
static void withdraw(struct shmq_cond *cv)
{
	fetch_sub_relaxed(cv->mine, 1);
	if (!take_one(&cv->cv->waiting))
		(void)take_one(&cv->cv->pending); /* counted as notified, the notification taken */
}

int shmq__cond_wait(struct shmq_cond *cv, uint64_t deadline_ns)
{
	uint32_t entry, key, depth;
	int r, lr;

	if (!cv->mine || !cv->lk)
		return -EINVAL;
	if (!shmq__lock_is_mine(cv->lk))
		return -EPERM;
	if (shmq__now_ns() >= deadline_ns) {
		counter_inc(&cv->c->empty, 1);
		return -ETIMEDOUT; /* a past deadline: nobody could notify us in time */
	}
	entry = key = join(cv); /* W1 */
	for (;;) {
		r = shmq__lock_save(cv->lk, &depth); /* L1: publishes W1 */
		if (r < 0) {
			withdraw(cv);
			return r;
		}
		counter_inc(&cv->c->sleeps, 1);
		r = shmq__futex_wait(&cv->cv->seq, key, deadline_ns);	     /* W2 */
		lr = shmq__lock_restore(cv->lk, depth, SHMQ_DEADLINE_NEVER); /* L2 */
		if (lr < 0 && lr != -EOWNERDEAD) {
			withdraw(cv); /* cannot happen with a valid handle: we do not hold it */
			return lr;
		}
		if (take_notification(cv, entry)) { /* W3 */
			counter_inc(&cv->c->received, 1);
			return lr;
		}
		if (lr == -EOWNERDEAD || r == -ETIMEDOUT || (r < 0 && r != -EAGAIN)) {
			withdraw(cv);
			if (r == -ETIMEDOUT)
				counter_inc(&cv->c->empty, 1);
			return lr == -EOWNERDEAD ? lr : r;
		}
		key = load_relaxed(&cv->cv->seq); /* a spare wake: sleep until seq moves again */
	}
}

int shmq__cond_notify(struct shmq_cond *cv, uint32_t n)
{
	_Atomic uint32_t *waiting = &cv->cv->waiting;
	uint32_t w, k = 0;

	if (!cv->lk || !shmq__lock_is_mine(cv->lk))
		return -EPERM;
	w = load_relaxed(waiting);
	for (uint32_t i = 0; i < CAS_TRIES; i++) {
		if (!w || !n)
			return 0; /* nobody to count: no seq move, no system call */
		k = n < w ? n : w;
		if (cas_relaxed(waiting, &w, w - k)) /* N1 */
			break;
		k = 0;
	}
	if (!k)
		return 0; /* a peer rewrote the count on every try */
	fetch_add_relaxed(&cv->cv->pending, k);
	/*
	 * N1's last step.  Release: an asynchronous waiter's arm reads seq
	 * without the lock (acquire, A4) and must then see pending.
	 */
	atomic_fetch_add_explicit(&cv->cv->seq, 1, memory_order_release);
	counter_inc(&cv->c->sent, k);
	counter_inc(&cv->c->wakes, 1);
	(void)shmq__futex_wake(&cv->cv->seq, k > INT_MAX ? INT_MAX : (int)k); /* N2 */
	return k > INT_MAX ? INT_MAX : (int)k;
}

int shmq__cond_wait_begin(struct shmq_cond *cv)
{
	bool idle = false;
	uint32_t depth;
	int r;

	if (!cv->mine || !cv->lk)
		return -EINVAL;
	depth = shmq__lock_depth(cv->lk);
	if (!depth)
		return -EPERM;
	if (depth > 1)
		return -EDEADLK;
	/* Joined already: an end() said not yet, and this only gives the lock up again. */
	if (atomic_compare_exchange_strong(&cv->joined, &idle, true))
		cv->entry = join(cv);	     /* W1 */
	r = shmq__lock_save(cv->lk, &depth); /* L1: publishes W1 */
	if (r < 0)
		(void)shmq__cond_wait_cancel(cv);
	return r;
}

int shmq__cond_wait_end(struct shmq_cond *cv)
{
	if (!cv->lk || !shmq__lock_is_mine(cv->lk))
		return -EPERM;
	if (!load_acquire(&cv->joined))
		return -EINVAL;
	if (!take_notification(cv, cv->entry)) /* W3 */
		return -EAGAIN;
	counter_inc(&cv->c->received, 1);
	store_release(&cv->joined, false);
	return 0;
}

int shmq__cond_wait_cancel(struct shmq_cond *cv)
{
	int r = 0;

	if (!cv->mine || !load_acquire(&cv->joined))
		return -EINVAL;
	if (take_notification(cv, cv->entry))
		r = 1; /* it came: taken, so that no other waiter is counted short */
	else
		withdraw(cv);
	store_release(&cv->joined, false);
	return r;
}

uint32_t shmq__cond_waiting(const struct shmq_cond *cv)
{
	return load_relaxed(&cv->cv->waiting);
}

/* --- The condition kind (shm/kind.h) --- */

static int cond_kind_attach(void *handle, const struct shmq_segment *seg, uint32_t session)
{
	return shmq__cond_attach(handle, seg, session);
}

static int cond_geom_check(const union shmq_geom *u, bool formatted)
{
	const struct shmq_cond_geom *g = &u->cond;

	(void)formatted; /* nothing is derived */
	if (!g->lock_id)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(g->reserved) / sizeof(g->reserved[0]); i++)
		if (g->reserved[i])
			return -EINVAL;
	return 0;
}

static int cond_check(const struct shmq_segment *seg, bool quiescent)
{
	(void)seg, (void)quiescent;
	return 0; /* every value is a count or a sequence; counts are repaired, not checked */
}

static int cond_repair(const struct shmq_segment *seg, uint32_t index, struct shmq_kind_repair *ret)
{
	struct shmq_session_shm *rec = shmq__session_at(seg, index);
	struct shmq_cond_shm *cv = seg->object;
	uint32_t n, taken = 0;

	if (!rec)
		return 0;
	/* after the process is known dead: its own-record stores are all done */
	n = load_relaxed(&rec->k.cond.waiting);
	store_relaxed(&rec->k.cond.waiting, 0);
	if (n > THREADS_MAX)
		n = THREADS_MAX;
	for (uint32_t i = 0; i < n; i++) {
		if (!take_one(&cv->waiting) && !take_one(&cv->pending))
			break; /* the counts hold no more (a scribbled record) */
		taken++;
	}
	if (!n)
		return 0;
	fetch_add_relaxed(&cv->deaths, taken);	   /* a statistic; the daemon writes it */
	(void)shmq__futex_wake(&cv->seq, INT_MAX); /* a wake the dead swallowed, passed on */
	ret->waiters += n;
	return 1;
}

/*
 * Asynchronous waits (shmq__cond_wait_begin()): a notification may be
 * pending for the handle's joined wait.  A4 pairs with the release of N1's
 * seq step, so a moved seq comes with its pending count.
 */
static bool cond_is_ready(const void *handle, uint32_t events)
{
	const struct shmq_cond *cv = handle;

	(void)events;
	if (!load_acquire(&cv->joined))
		return true; /* nothing to wait for: end() says so */
	return load_acquire(&cv->cv->seq) != cv->entry && load_relaxed(&cv->cv->pending);
}

static int cond_arm(void *handle, uint32_t events, struct shmq_kind_arm *ret)
{
	struct shmq_cond *cv = handle;
	uint32_t key;

	(void)events;
	if (!load_acquire(&cv->joined))
		return 1;
	key = load_acquire(&cv->cv->seq); /* A4 */
	if (key != cv->entry && load_relaxed(&cv->cv->pending))
		return 1;
	/* a notify that counts us moves seq after this read: the wait cannot miss it */
	*ret = (struct shmq_kind_arm){.word = &cv->cv->seq, .key = key};
	counter_inc(&cv->c->sleeps, 1);
	return 0;
}

const struct shmq_kind shmq__kind_cond = {
	.id = SHMQ_KIND_COND,
	.name = "condition",
	.short_name = "cond",
	.events = SHMQ_KIND_EV_RECV, /* a joined wait's notification may be pending */
	.invariants = "nothing (counts are repaired on a death, not checked)",
	.object_size = sizeof(struct shmq_cond_shm),
	.retired_off = offsetof(struct shmq_cond_shm, retired),
	.geom_check = cond_geom_check,
	.attach = cond_kind_attach,
	.check = cond_check,
	.repair = cond_repair,
	.is_ready = cond_is_ready,
	.arm = cond_arm,
};
