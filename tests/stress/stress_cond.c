/* SPDX-License-Identifier: MIT */
/*
 * Kill storm for shm/cond.c across processes: a producer puts items into
 * a counter under the lock and notifies one waiter per item; consumers
 * wait for items with a predicate and take them.  This process -- standing
 * in for the daemon -- SIGKILLs consumers, mostly asleep in their wait and
 * now and then holding the lock, repairs each dead record as shmqd does
 * (the lock's and the condition's), and starts a replacement.
 *
 * A lost wake-up shows as a consumer whose wait reaches its deadline while
 * items are waiting for it: every wait has WAIT_TIMEOUT_MS, and the
 * producer never lets items pile up past a bound without a consumer
 * taking one, so a timeout with items present fails the run.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/atomic.h"
#include "shm/cond.h"
#include "shm/futex.h"
#include "shm/kind.h"
#include "shm/lock.h"
#include "tests/helpers.h"

#define STRESS_SECONDS_DEFAULT 30
#define N_CONSUMERS	       3
#define WAIT_TIMEOUT_MS	       5000 /* a wait this long with items present is a lost wake-up */
#define KILLS_DEFAULT	       1000
#define RUN_CAP_SECONDS	       120

TestSuite(stress_cond, .timeout = 240);

struct ledger {
	uint64_t items;		/* under the lock */
	_Atomic int32_t inside; /* the lock holder's pid, while it holds it */
	_Atomic uint64_t produced, consumed, told;
	_Atomic uint32_t lost;	 /* a wait timed out with items present */
	_Atomic uint32_t errors; /* any other unexpected result */
	_Atomic int stop;
};

static struct t_seg seg_lock, seg_cond;
static struct ledger *lg;

struct rec {
	uint32_t lock, cond; /* the worker's records */
};

static int attach(struct shmq_lock *lk, struct shmq_cond *cv, const struct rec *r)
{
	if (shmq__lock_attach(lk, &seg_lock.seg, r->lock) < 0)
		return -1;
	cv->lk = lk;
	return shmq__cond_attach(cv, &seg_cond.seg, r->cond);
}

/* Take the lock; after a dead holder, the ledger's word is ours to trust (items only grow). */
static int take(struct shmq_lock *lk)
{
	int r = shmq__lock_acquire(lk, t_deadline_ms(WAIT_TIMEOUT_MS));

	if (r == -EOWNERDEAD) {
		fetch_add_relaxed(&lg->told, 1);
		r = shmq__lock_consistent(lk);
	}
	if (r == 0)
		store_relaxed(&lg->inside, (int32_t)getpid());
	return r;
}

static void give(struct shmq_lock *lk)
{
	store_relaxed(&lg->inside, 0);
	if (shmq__lock_release(lk) != 0)
		fetch_add_relaxed(&lg->errors, 1);
}

static int consumer(void *arg)
{
	struct shmq_lock lk;
	struct shmq_cond cv;

	if (attach(&lk, &cv, arg) < 0)
		return 1;
	for (;;) {
		int r = take(&lk);

		if (r < 0) {
			fetch_add_relaxed(&lg->errors, 1);
			return 2;
		}
		store_relaxed(&lg->inside, 0); /* the wait gives it up */
		for (;;) {
			if (lg->items > 0)
				break;
			r = shmq__cond_wait(&cv, t_deadline_ms(WAIT_TIMEOUT_MS));
			if (r == -EOWNERDEAD) {
				fetch_add_relaxed(&lg->told, 1);
				r = shmq__lock_consistent(&lk);
			}
			if (r == -ETIMEDOUT) {
				if (lg->items > 0)
					fetch_add_relaxed(&lg->lost, 1);
				continue;
			}
			if (r < 0) {
				fetch_add_relaxed(&lg->errors, 1);
				return 3;
			}
		}
		store_relaxed(&lg->inside, (int32_t)getpid());
		lg->items--;
		fetch_add_relaxed(&lg->consumed, 1);
		for (int i = 0; i < 50; i++)
			cpu_relax(); /* a window for the killer */
		give(&lk);
	}
}

static int producer(void *arg)
{
	struct shmq_lock lk;
	struct shmq_cond cv;

	if (attach(&lk, &cv, arg) < 0)
		return 1;
	while (!load_relaxed(&lg->stop)) {
		if (take(&lk) < 0) {
			fetch_add_relaxed(&lg->errors, 1);
			return 2;
		}
		if (lg->items < 4 * N_CONSUMERS) { /* bounded: consumers must keep up */
			lg->items++;
			fetch_add_relaxed(&lg->produced, 1);
			if (shmq__cond_notify(&cv, 1) < 0)
				fetch_add_relaxed(&lg->errors, 1);
		}
		give(&lk);
		usleep(50);
	}
	return 0;
}

static pid_t spawn(int (*fn)(void *), struct rec *r)
{
	cr_assert(eq(int, shmq__session_claim(&seg_lock.seg, SHMQ_ROLE_USER, 1, 0, &r->lock), 0));
	cr_assert(eq(int, shmq__session_claim(&seg_cond.seg, SHMQ_ROLE_USER, 1, 0, &r->cond), 0));
	return t_fork_peer(fn, r);
}

/* The daemon's part for a dead worker: both records repaired, then freed. */
static void repair(struct rec *r, struct shmq_kind_repair *rep)
{
	cr_assert(ge(int, shmq__kind_lock.repair(&seg_lock.seg, r->lock, rep), 0));
	cr_assert(ge(int, shmq__kind_cond.repair(&seg_cond.seg, r->cond, rep), 0));
	shmq__session_release(&seg_lock.seg, r->lock);
	shmq__session_release(&seg_cond.seg, r->cond);
}

Test(stress_cond, waiters_killed_waiting_never_lose_a_wake_up)
{
	uint64_t seconds = t_stress_seconds(STRESS_SECONDS_DEFAULT);
	uint64_t end = shmq__deadline_after_ns(seconds * UINT64_C(1000000000));
	uint64_t cap = shmq__deadline_after_ns(RUN_CAP_SECONDS * UINT64_C(1000000000));
	const char *env = getenv("SHMQ_COND_KILLS");
	uint64_t want = env ? strtoull(env, NULL, 10) : KILLS_DEFAULT;
	uint64_t rng = t_seed(), kills = 0, waiter_kills = 0, holder_kills = 0;
	struct rec *recs, prod;
	pid_t pid[N_CONSUMERS], ppid;

	t_seg_new_lock(&seg_lock, 0);
	t_seg_new_cond(&seg_cond, seg_lock.seg.hdr->object_id);
	lg = mmap(NULL, sizeof(*lg), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert(lg != MAP_FAILED);
	recs = mmap(NULL, sizeof(*recs) * N_CONSUMERS, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert(recs != MAP_FAILED);
	for (int i = 0; i < N_CONSUMERS; i++)
		pid[i] = spawn(consumer, &recs[i]);
	ppid = spawn(producer, &prod);
	while ((kills < want || shmq__now_ns() < end) && shmq__now_ns() < cap &&
	       !load_relaxed(&lg->lost) && !load_relaxed(&lg->errors)) {
		int w = (int)(t_rand(&rng) % N_CONSUMERS);
		int32_t holder = load_relaxed(&lg->inside);
		struct shmq_kind_repair rep = {0};

		/* mostly a sleeping waiter; one time in eight the lock's holder, if a consumer */
		if (t_rand(&rng) % 8 == 0 && holder) {
			for (w = 0; w < N_CONSUMERS && pid[w] != holder; w++)
				;
			if (w == N_CONSUMERS)
				continue;
		} else if (!load_relaxed(&shmq__session_at(&seg_cond.seg, recs[w].cond)
						  ->k.cond.waiting)) {
			usleep(100); /* not waiting yet: let it get there */
			continue;
		}
		kill(pid[w], SIGKILL);
		cr_assert(eq(int, t_wait_peer(pid[w]), 128 + SIGKILL), "consumer %d", w);
		kills++;
		repair(&recs[w], &rep);
		if (rep.recovered)
			holder_kills++;
		if (rep.waiters)
			waiter_kills++;
		pid[w] = spawn(consumer, &recs[w]);
	}
	store_relaxed(&lg->stop, 1);
	cr_assert(eq(int, t_wait_peer(ppid), 0), "the producer");
	for (int i = 0; i < N_CONSUMERS; i++) {
		kill(pid[i], SIGKILL);
		t_wait_peer(pid[i]);
	}
	cr_assert(eq(u32, load_relaxed(&lg->lost), 0), "a wait timed out with items present");
	cr_assert(eq(u32, load_relaxed(&lg->errors), 0));
	cr_assert(ge(u64, kills, want), "only %" PRIu64 " kills", kills);
	/* what is left is at most the bound, plus items taken by holders killed before counting */
	cr_assert(ge(u64, load_relaxed(&lg->consumed) + 4 * N_CONSUMERS + holder_kills,
		     load_relaxed(&lg->produced)));
	printf("condition kill storm: %" PRIu64 " kills (%" PRIu64 " waiting, %" PRIu64
	       " holding), %" PRIu64 " items produced, %" PRIu64 " consumed, no wake-up lost\n",
	       kills, waiter_kills, holder_kills, load_relaxed(&lg->produced),
	       load_relaxed(&lg->consumed));
	t_seg_free(&seg_cond);
	t_seg_free(&seg_lock);
}
