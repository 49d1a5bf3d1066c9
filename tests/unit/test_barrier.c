/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for shm/barrier.c: cycles between threads with distinct
 * arrival indices and the happens-before a barrier promises (TSan checks
 * it); timeouts, abort and reset; a party killed while waiting; the
 * history of cycle fates; the validator.  With a daemon:
 * tests/integration/test_barrier.c.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm/atomic.h"
#include "shm/barrier.h"
#include "shm/futex.h"
#include "shm/kind.h"
#include "tests/helpers.h"

#define WAIT_MS	  5000 /* the deadline of every wait that should succeed */
#define N_PARTIES 3
#define N_CYCLES  2000

static struct t_seg fx;

static void teardown(void)
{
	t_seg_free(&fx);
}

TestSuite(barrier, .fini = teardown, .timeout = 60);

static void handle(struct shmq_barrier *b, uint32_t *ret_index)
{
	uint32_t idx;

	cr_assert(
		eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_USER, getpid(), getuid(), &idx), 0));
	cr_assert(eq(int, shmq__barrier_attach(b, &fx.seg, idx), 0));
	if (ret_index)
		*ret_index = idx;
}

static struct shmq_barrier_shm *shm(void)
{
	return fx.seg.object;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void await_arrived(const struct shmq_barrier *b, uint32_t want)
{
	for (int i = 0; i < 5000 && shmq__barrier_n_waiting(b) < want; i++)
		sleep_ms(1);
	cr_assert(eq(u32, shmq__barrier_n_waiting(b), want));
}

Test(barrier, one_party_passes_at_once)
{
	struct shmq_barrier b, view;

	t_seg_new_barrier(&fx, 1);
	handle(&b, NULL);
	for (int i = 0; i < 3; i++)
		cr_assert(eq(int, shmq__barrier_wait(&b, 0), 0));
	cr_assert(eq(u32, (uint32_t)load_relaxed(&shm()->state), 3)); /* three generations */
	cr_assert(eq(int, shmq__barrier_attach(&view, &fx.seg, UINT32_MAX), 0));
	cr_assert(eq(int, shmq__barrier_wait(&view, 0), -EINVAL));
	cr_assert(eq(int, shmq__barrier_abort(&view), -EINVAL));
	cr_assert(eq(int, shmq__barrier_reset(&view), -EINVAL));
}

Test(barrier, geometry_and_the_validator)
{
	union shmq_geom g = {0};
	struct shmq_barrier b;

	cr_assert(eq(int, shmq__kind_barrier.geom_check(&g, false), -EINVAL));
	g.barrier.parties = SHMQ_BARRIER_PARTIES_MAX + 1;
	cr_assert(eq(int, shmq__kind_barrier.geom_check(&g, false), -EINVAL));
	g.barrier.parties = SHMQ_BARRIER_PARTIES_MAX;
	cr_assert(eq(int, shmq__kind_barrier.geom_check(&g, false), 0));

	t_seg_new_barrier(&fx, 2);
	handle(&b, NULL);
	cr_assert(eq(int, shmq__kind_barrier.check(&fx.seg, true), 0));
	store_relaxed(&shm()->state, UINT64_C(2)
					     << SHMQ_BARRIER_COUNT_SHIFT); /* count == parties */
	cr_assert(eq(int, shmq__kind_barrier.check(&fx.seg, false), -EBADMSG));
	/* a scribbled count is a release by whoever arrives next, never a hang */
	cr_assert(eq(int, shmq__barrier_wait(&b, t_deadline_ms(WAIT_MS)), 1));
	store_relaxed(&shm()->state, SHMQ_BARRIER_BROKEN | UINT64_C(1) << SHMQ_BARRIER_COUNT_SHIFT);
	cr_assert(eq(int, shmq__kind_barrier.check(&fx.seg, false), -EBADMSG));
}

struct party {
	struct shmq_barrier b;
	_Atomic uint32_t *slots; /* one per party, the cycle it last finished */
	uint32_t me;
	uint32_t index_seen[N_PARTIES];
	int bad, r;
};

static uint32_t plain_slots[N_PARTIES]; /* non-atomic: the barrier must order them */

static void *party_thread(void *p)
{
	struct party *a = p;

	for (uint32_t cycle = 1; cycle <= N_CYCLES; cycle++) {
		int r;

		plain_slots[a->me] = cycle;
		r = shmq__barrier_wait(&a->b, t_deadline_ms(WAIT_MS));
		if (r < 0 || r >= N_PARTIES) {
			a->r = r < 0 ? r : -ERANGE;
			return NULL;
		}
		a->index_seen[r]++;
		for (uint32_t i = 0; i < N_PARTIES; i++)
			if (plain_slots[i] < cycle)
				a->bad++; /* a party's write before the barrier not seen after it */
		/* a second barrier, so nobody overwrites a slot before all have read */
		r = shmq__barrier_wait(&a->b, t_deadline_ms(WAIT_MS));
		if (r < 0) {
			a->r = r;
			return NULL;
		}
	}
	return NULL;
}

Test(barrier, threads_cycle_with_distinct_indices_and_see_each_others_writes)
{
	struct party p[N_PARTIES];
	pthread_t t[N_PARTIES];
	uint32_t per_index[N_PARTIES] = {0};

	t_seg_new_barrier(&fx, N_PARTIES);
	memset(p, 0, sizeof(p));
	memset(plain_slots, 0, sizeof(plain_slots));
	for (uint32_t i = 0; i < N_PARTIES; i++) {
		handle(&p[i].b, NULL);
		p[i].me = i;
		cr_assert(eq(int, pthread_create(&t[i], NULL, party_thread, &p[i]), 0));
	}
	for (uint32_t i = 0; i < N_PARTIES; i++) {
		pthread_join(t[i], NULL);
		cr_assert(eq(int, p[i].r, 0));
		cr_assert(eq(int, p[i].bad, 0));
		for (uint32_t k = 0; k < N_PARTIES; k++)
			per_index[k] += p[i].index_seen[k];
	}
	/* every cycle handed out each index exactly once */
	for (uint32_t k = 0; k < N_PARTIES; k++)
		cr_assert(eq(u32, per_index[k], N_CYCLES));
	cr_assert(eq(u32, (uint32_t)load_relaxed(&shm()->state), 2 * N_CYCLES));
}

struct waiter {
	struct shmq_barrier b;
	unsigned int wait_ms;
	int r;
};

static void *wait_thread(void *p)
{
	struct waiter *w = p;

	w->r = shmq__barrier_wait(&w->b, t_deadline_ms(w->wait_ms ? w->wait_ms : WAIT_MS));
	return NULL;
}

Test(barrier, a_timeout_breaks_it_for_everyone_until_a_reset)
{
	struct waiter w = {0};
	struct shmq_barrier a, b;
	pthread_t t;

	t_seg_new_barrier(&fx, 3);
	handle(&a, NULL);
	handle(&b, NULL);
	handle(&w.b, NULL);
	w.wait_ms = 0;
	cr_assert(eq(int, pthread_create(&t, NULL, wait_thread, &w), 0));
	await_arrived(&a, 1);
	/* the second arrival times out: it breaks the cycle for the first */
	cr_assert(eq(int, shmq__barrier_wait(&b, t_deadline_ms(30)), -ETIMEDOUT));
	pthread_join(t, NULL);
	cr_assert(eq(int, w.r, -EPIPE));
	cr_assert(shmq__barrier_is_broken(&a));
	cr_assert(eq(int, shmq__barrier_wait(&a, t_deadline_ms(WAIT_MS)), -EPIPE));
	cr_assert(eq(int, shmq__kind_barrier.check(&fx.seg, true), 0));
	cr_assert(eq(int, shmq__barrier_reset(&a), 0));
	cr_assert(not(shmq__barrier_is_broken(&a)));
	/* usable again: a full cycle */
	{
		struct waiter wb = {.b = b};
		pthread_t tb;

		cr_assert(eq(int, pthread_create(&t, NULL, wait_thread, &w), 0));
		await_arrived(&a, 1);
		cr_assert(eq(int, pthread_create(&tb, NULL, wait_thread, &wb), 0));
		await_arrived(&a, 2);
		cr_assert(eq(int, shmq__barrier_wait(&a, t_deadline_ms(WAIT_MS)), 2));
		pthread_join(t, NULL);
		pthread_join(tb, NULL);
		cr_assert(eq(int, w.r, 0));
		cr_assert(eq(int, wb.r, 1));
	}
}

Test(barrier, abort_and_reset_release_the_waiters_with_epipe)
{
	struct waiter w1 = {0}, w2 = {0};
	struct shmq_barrier a;
	pthread_t t1, t2;

	t_seg_new_barrier(&fx, 3);
	handle(&a, NULL);
	handle(&w1.b, NULL);
	handle(&w2.b, NULL);

	cr_assert(eq(int, pthread_create(&t1, NULL, wait_thread, &w1), 0));
	await_arrived(&a, 1);
	cr_assert(eq(int, shmq__barrier_abort(&a), 0));
	pthread_join(t1, NULL);
	cr_assert(eq(int, w1.r, -EPIPE));
	cr_assert(shmq__barrier_is_broken(&a));
	cr_assert(eq(int, shmq__barrier_abort(&a), 0)); /* already broken: nothing */
	cr_assert(eq(int, shmq__barrier_reset(&a), 0));

	/* a reset with waiters breaks their cycle only: the barrier stays usable */
	cr_assert(eq(int, pthread_create(&t1, NULL, wait_thread, &w1), 0));
	await_arrived(&a, 1);
	cr_assert(eq(int, shmq__barrier_reset(&a), 0));
	pthread_join(t1, NULL);
	cr_assert(eq(int, w1.r, -EPIPE));
	cr_assert(not(shmq__barrier_is_broken(&a)));
	cr_assert(eq(u32, shmq__barrier_n_waiting(&a), 0));

	cr_assert(eq(int, pthread_create(&t1, NULL, wait_thread, &w1), 0));
	await_arrived(&a, 1);
	cr_assert(eq(int, pthread_create(&t2, NULL, wait_thread, &w2), 0));
	await_arrived(&a, 2);
	cr_assert(eq(int, shmq__barrier_wait(&a, t_deadline_ms(WAIT_MS)), 2)); /* the last */
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	cr_assert(eq(int, w1.r + w2.r, 0 + 1)); /* indices 0 and 1, in arrival order */
}

static int arrive_forever(void *arg)
{
	(void)shmq__barrier_wait(arg, SHMQ_DEADLINE_NEVER);
	return 2;
}

Test(barrier, a_party_killed_waiting_breaks_it_instead_of_hanging_the_others)
{
	struct shmq_kind_repair rep = {0};
	struct shmq_barrier a, dead;
	struct waiter w = {0};
	uint32_t idx;
	pthread_t t;
	pid_t pid;

	t_seg_new_barrier(&fx, 3);
	handle(&a, NULL);
	handle(&dead, &idx);
	handle(&w.b, NULL);
	cr_assert(eq(int, pthread_create(&t, NULL, wait_thread, &w), 0));
	await_arrived(&a, 1);
	pid = t_fork_peer(arrive_forever, &dead);
	await_arrived(&a, 2);
	kill(pid, SIGKILL);
	cr_assert(eq(int, t_wait_peer(pid), 128 + SIGKILL));
	/* the daemon, once the death is certain */
	cr_assert(eq(int, shmq__kind_barrier.repair(&fx.seg, idx, &rep), 1));
	cr_assert(eq(u32, rep.broken, 1));
	pthread_join(t, NULL);
	cr_assert(eq(int, w.r, -EPIPE));
	cr_assert(shmq__barrier_is_broken(&a));
	cr_assert(eq(u32, load_relaxed(&shm()->breaks), 1));
	/* a broken barrier is not broken twice */
	rep = (struct shmq_kind_repair){0};
	cr_assert(eq(int, shmq__kind_barrier.repair(&fx.seg, idx, &rep), 0));
	cr_assert(eq(int, shmq__kind_barrier.check(&fx.seg, true), 0));
}

/*
 * A waiter reads its cycle's fate from the history; one that fell more
 * than 16 generations behind is told the barrier broke, never that it
 * passed.
 */
Test(barrier, the_history_tells_a_late_waiter_its_cycles_fate)
{
	struct waiter w = {0};
	struct shmq_barrier a;
	pthread_t t;

	t_seg_new_barrier(&fx, 2);
	handle(&a, NULL);
	handle(&w.b, NULL);

	/* released 3 generations ago, two breaks since: passed */
	cr_assert(eq(int, pthread_create(&t, NULL, wait_thread, &w), 0));
	await_arrived(&a, 1);
	store_relaxed(&shm()->state, UINT64_C(3) | UINT64_C(0x3) << SHMQ_BARRIER_HISTORY_SHIFT);
	(void)shmq__futex_wake((_Atomic uint32_t *)(void *)&shm()->state, 8);
	pthread_join(t, NULL);
	cr_assert(eq(int, w.r, 0));

	/* 17 generations on, whatever the history says: broken */
	store_relaxed(&shm()->state, UINT64_C(3));
	cr_assert(eq(int, pthread_create(&t, NULL, wait_thread, &w), 0));
	await_arrived(&a, 1);
	store_relaxed(&shm()->state, UINT64_C(3 + 17));
	(void)shmq__futex_wake((_Atomic uint32_t *)(void *)&shm()->state, 8);
	pthread_join(t, NULL);
	cr_assert(eq(int, w.r, -EPIPE));
}

/* The asynchronous wait's steps (shm/barrier.h). */
Test(barrier, an_asynchronous_arrival_is_told_its_cycles_fate)
{
	struct shmq_barrier a, b, view;
	struct shmq_kind_arm arm;

	t_seg_new_barrier(&fx, 2);
	handle(&a, NULL);
	handle(&b, NULL);
	cr_assert(eq(int, shmq__barrier_arrival(&a), -EINVAL)); /* nothing pending */
	cr_assert(shmq__kind_barrier.is_ready(&a, SHMQ_KIND_EV_RECV));
	cr_assert(eq(int, shmq__barrier_arrive(&a), -EINPROGRESS));
	cr_assert(eq(int, shmq__barrier_arrive(&a), -EBUSY));
	cr_assert(eq(u32, shmq__barrier_n_waiting(&a), 1));
	cr_assert(eq(int, shmq__barrier_arrival(&a), -EAGAIN));
	cr_assert(not(shmq__kind_barrier.is_ready(&a, SHMQ_KIND_EV_RECV)));
	cr_assert(eq(int, shmq__kind_barrier.arm(&a, SHMQ_KIND_EV_RECV, &arm), 0));
	cr_assert(eq(u32, arm.key, (uint32_t)load_relaxed(&shm()->state)));
	cr_assert(eq(int, shmq__barrier_wait(&b, t_deadline_ms(WAIT_MS)), 1)); /* the last */
	cr_assert(shmq__kind_barrier.is_ready(&a, SHMQ_KIND_EV_RECV));
	cr_assert(eq(int, shmq__barrier_arrival(&a), 0));
	cr_assert(eq(int, shmq__barrier_arrival(&a), -EINVAL)); /* told once */

	/* the last arrival ends the cycle at once, asynchronous or not */
	cr_assert(eq(int, shmq__barrier_arrive(&b), -EINPROGRESS));
	cr_assert(eq(int, shmq__barrier_arrive(&a), 1));
	cr_assert(eq(int, shmq__barrier_arrival(&b), 0));

	/* a broken cycle */
	cr_assert(eq(int, shmq__barrier_arrive(&a), -EINPROGRESS));
	cr_assert(eq(int, shmq__barrier_abort(&b), 0));
	cr_assert(shmq__kind_barrier.is_ready(&a, SHMQ_KIND_EV_RECV));
	cr_assert(eq(int, shmq__barrier_arrival(&a), -EPIPE));
	cr_assert(eq(int, shmq__barrier_arrive(&a), -EPIPE)); /* until a reset */
	cr_assert(eq(int, shmq__barrier_arrival(&a), -EINVAL));
	cr_assert(eq(int, shmq__barrier_attach(&view, &fx.seg, UINT32_MAX), 0));
	cr_assert(eq(int, shmq__barrier_arrive(&view), -EINVAL));
}
