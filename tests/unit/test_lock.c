/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for shm/lock.c: holders, recursion and refusals in one
 * process; threads for mutual exclusion and hand-off (TSan checks the
 * release -> acquire ordering); forked holders that die, and the repair
 * that takes the lock back; a sleeper whose wake was swallowed; a peer that
 * scribbles on the word.  Across processes with a daemon:
 * tests/integration/test_lock.c.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/kind.h"
#include "shm/lock.h"
#include "shm/owner.h"
#include "tests/helpers.h"

#define WAIT_MS	  5000 /* the deadline of every wait that should succeed */
#define N_THREADS 4

static struct t_seg fx;

/* A handle on its own session record, as a client's open gives. */
static void lock_handle(struct shmq_lock *lk, uint32_t *ret_index)
{
	uint32_t idx;

	cr_assert(
		eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_USER, getpid(), getuid(), &idx), 0));
	cr_assert(eq(int, shmq__lock_attach(lk, &fx.seg, idx), 0));
	if (ret_index)
		*ret_index = idx;
}

static void teardown(void)
{
	t_seg_free(&fx);
}

TestSuite(lock, .fini = teardown, .timeout = 30);

static struct shmq_lock_shm *shm(void)
{
	return fx.seg.object;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

Test(lock, acquire_release_and_the_refusals_of_a_plain_lock)
{
	struct shmq_lock a, b;

	t_seg_new_lock(&fx, 0);
	lock_handle(&a, NULL);
	lock_handle(&b, NULL);
	cr_assert(eq(int, shmq__lock_release(&a), -EPERM)); /* free: nobody's to release */
	cr_assert(eq(int, shmq__lock_acquire(&a, 0), 0));
	cr_assert(shmq__lock_is_locked(&a) && shmq__lock_is_mine(&a));
	cr_assert(not(shmq__lock_is_mine(&b)));
	cr_assert(eq(int, shmq__lock_acquire(&a, SHMQ_DEADLINE_NEVER), -EDEADLK));
	cr_assert(eq(int, shmq__lock_acquire(&b, 0), -ETIMEDOUT));
	cr_assert(eq(int, shmq__lock_acquire(&b, t_deadline_ms(20)), -ETIMEDOUT));
	cr_assert(eq(int, shmq__lock_release(&b), -EPERM));	/* another session */
	cr_assert(eq(int, shmq__lock_consistent(&a), -EINVAL)); /* nobody died */
	cr_assert(eq(int, shmq__lock_release(&a), 0));
	cr_assert(not(shmq__lock_is_locked(&a)));
	cr_assert(eq(u32, load_relaxed(&shm()->depth), 0));
	cr_assert(eq(int, shmq__lock_acquire(&b, 0), 0));
	cr_assert(eq(int, shmq__lock_release(&b), 0));
	cr_assert(eq(int, shmq__kind_lock.check(&fx.seg, true), 0));
}

Test(lock, a_view_cannot_acquire)
{
	struct shmq_lock v;

	t_seg_new_lock(&fx, 0);
	cr_assert(eq(int, shmq__lock_attach(&v, &fx.seg, UINT32_MAX), 0));
	cr_assert(eq(int, shmq__lock_acquire(&v, 0), -EINVAL));
	cr_assert(eq(int, shmq__lock_release(&v), -EPERM));
}

Test(lock, an_rlock_counts_its_holders_acquisitions)
{
	struct shmq_lock a, b;
	uint32_t depth;

	t_seg_new_lock(&fx, SHMQ_LOCK_RECURSIVE);
	lock_handle(&a, NULL);
	lock_handle(&b, NULL);
	for (int i = 0; i < 3; i++)
		cr_assert(eq(int, shmq__lock_acquire(&a, 0), 0));
	cr_assert(eq(u32, load_relaxed(&shm()->depth), 3));
	cr_assert(eq(int, shmq__lock_acquire(&b, 0), -ETIMEDOUT));
	cr_assert(eq(int, shmq__lock_release(&a), 0));
	cr_assert(eq(int, shmq__lock_release(&a), 0));
	cr_assert(shmq__lock_is_locked(&a));
	/* a condition's wait gives up every acquisition and takes them back */
	cr_assert(eq(int, shmq__lock_acquire(&a, 0), 0));
	cr_assert(eq(int, shmq__lock_save(&a, &depth), 0));
	cr_assert(eq(u32, depth, 2));
	cr_assert(not(shmq__lock_is_locked(&a)));
	cr_assert(eq(int, shmq__lock_restore(&a, depth, 0), 0));
	cr_assert(eq(u32, load_relaxed(&shm()->depth), 2));
	cr_assert(eq(int, shmq__lock_release(&a), 0));
	cr_assert(eq(int, shmq__lock_release(&a), 0));
	cr_assert(not(shmq__lock_is_locked(&a)));
	cr_assert(eq(int, shmq__lock_release(&a), -EPERM));
	store_relaxed(&shm()->depth, SHMQ_LOCK_DEPTH_MAX); /* as after 2^31 - 1 acquisitions */
	cr_assert(eq(int, shmq__lock_acquire(&a, 0), 0));
	store_relaxed(&shm()->depth, SHMQ_LOCK_DEPTH_MAX);
	cr_assert(eq(int, shmq__lock_acquire(&a, 0), -EAGAIN));
}

struct share {
	struct shmq_lock *lk; /* shared by the threads, or NULL: each its own handle */
	uint64_t inside;      /* only touched under the lock */
	uint64_t total;
	int errors;
};

static void *count_under_lock(void *arg)
{
	struct share *sh = arg;
	struct shmq_lock own, *lk = sh->lk;

	if (!lk) {
		lock_handle(&own, NULL);
		lk = &own;
	}
	for (int i = 0; i < 20000; i++) {
		if (shmq__lock_acquire(lk, t_deadline_ms(WAIT_MS)) != 0) {
			__atomic_add_fetch(&sh->errors, 1, __ATOMIC_RELAXED);
			continue;
		}
		if (sh->inside++) /* plain accesses: TSan reports a race if exclusion fails */
			__atomic_add_fetch(&sh->errors, 1, __ATOMIC_RELAXED);
		sh->total++;
		sh->inside--;
		if (shmq__lock_release(lk) != 0)
			__atomic_add_fetch(&sh->errors, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void exclusion(bool shared_handle, uint64_t spin_ns)
{
	struct shmq_lock one;
	struct share sh = {.lk = shared_handle ? &one : NULL};
	pthread_t t[N_THREADS];

	t_seg_new_lock(&fx, 0);
	if (shared_handle) {
		lock_handle(&one, NULL);
		one.spin_ns = spin_ns;
	}
	for (int i = 0; i < N_THREADS; i++)
		cr_assert(eq(int, pthread_create(&t[i], NULL, count_under_lock, &sh), 0));
	for (int i = 0; i < N_THREADS; i++)
		pthread_join(t[i], NULL);
	cr_assert(eq(int, sh.errors, 0));
	cr_assert(eq(u64, sh.total, (uint64_t)N_THREADS * 20000));
	if (shared_handle)
		cr_assert(not(shmq__lock_is_locked(&one)));
	/* the end of a contended episode leaves at most the WAITERS bit */
	cr_assert(eq(u32, load_relaxed(&shm()->word) & ~SHMQ_LOCK_WAITERS, 0));
}

Test(lock, threads_with_their_own_handles_exclude_each_other)
{
	exclusion(false, SHMQ_LOCK_SPIN_NS_DEFAULT);
}

Test(lock, threads_sharing_a_handle_are_each_their_own_holder)
{
	exclusion(true, 0); /* no spin: every contended acquire sleeps */
}

struct holder_arg {
	struct shmq_lock *lk;
	int r;
	_Atomic uint64_t took_ns; /* read by the main thread while this one may run */
};

static void *acquire_thread(void *arg)
{
	struct holder_arg *h = arg;

	h->r = shmq__lock_acquire(h->lk, t_deadline_ms(WAIT_MS));
	store_relaxed(&h->took_ns, shmq__now_ns());
	if (h->r == 0 || h->r == -EOWNERDEAD)
		(void)shmq__lock_release(h->lk);
	return NULL;
}

Test(lock, a_sleeper_is_woken_by_the_release)
{
	struct shmq_lock a, b;
	struct holder_arg h = {.lk = &b};
	pthread_t t;
	uint64_t released;

	t_seg_new_lock(&fx, 0);
	lock_handle(&a, NULL);
	lock_handle(&b, NULL);
	b.spin_ns = 0;
	cr_assert(eq(int, shmq__lock_acquire(&a, 0), 0));
	cr_assert(eq(int, pthread_create(&t, NULL, acquire_thread, &h), 0));
	sleep_ms(50);
	cr_assert(load_relaxed(&shm()->word) & SHMQ_LOCK_WAITERS);
	released = shmq__now_ns();
	cr_assert(eq(int, shmq__lock_release(&a), 0));
	pthread_join(t, NULL);
	cr_assert(eq(int, h.r, 0));
	cr_assert(load_relaxed(&h.took_ns) >= released);
	cr_assert(ge(u64, load_relaxed(&b.c->sleeps), 1));
}

/* The child takes the lock with its own record and dies holding it. */
static int die_holding(void *arg)
{
	struct shmq_lock *lk = arg;

	if (shmq__lock_acquire(lk, t_deadline_ms(WAIT_MS)) != 0)
		return 1;
	kill(getpid(), SIGKILL);
	return 2;
}

Test(lock, a_dead_holders_lock_is_taken_back_and_the_next_holder_told)
{
	struct shmq_lock a, dead;
	struct shmq_kind_repair rep = {0};
	uint32_t idx;

	t_seg_new_lock(&fx, 0);
	lock_handle(&a, NULL);
	lock_handle(&dead, &idx);
	cr_assert(eq(int, t_wait_peer(t_fork_peer(die_holding, &dead)), 128 + SIGKILL));
	cr_assert(shmq__lock_is_locked(&a));
	cr_assert(eq(int, shmq__lock_acquire(&a, t_deadline_ms(20)), -ETIMEDOUT));
	/* the daemon, once the death is certain */
	cr_assert(eq(int, shmq__kind_lock.repair(&fx.seg, idx, &rep), 1));
	cr_assert(eq(u32, rep.recovered, 1));
	cr_assert(eq(u32, load_relaxed(&shm()->recoveries), 1));
	cr_assert(not(shmq__lock_is_locked(&a)));
	cr_assert(eq(int, shmq__lock_acquire(&a, 0), -EOWNERDEAD));
	cr_assert(shmq__lock_is_mine(&a));
	/* released without repairing: the next holder is told too */
	cr_assert(eq(int, shmq__lock_release(&a), 0));
	cr_assert(eq(int, shmq__lock_acquire(&a, 0), -EOWNERDEAD));
	cr_assert(eq(int, shmq__lock_consistent(&a), 0));
	cr_assert(eq(int, shmq__lock_release(&a), 0));
	cr_assert(eq(int, shmq__lock_acquire(&a, 0), 0));
	cr_assert(eq(int, shmq__lock_release(&a), 0));
	/* a second repair of the same record finds nothing */
	rep = (struct shmq_kind_repair){0};
	cr_assert(eq(int, shmq__kind_lock.repair(&fx.seg, idx, &rep), 0));
}

Test(lock, a_sleeper_is_woken_when_its_holder_dies)
{
	struct shmq_lock a, dead;
	struct holder_arg h = {.lk = &a};
	struct shmq_kind_repair rep = {0};
	pthread_t t;
	uint32_t idx;

	t_seg_new_lock(&fx, 0);
	lock_handle(&a, NULL);
	lock_handle(&dead, &idx);
	a.spin_ns = 0;
	cr_assert(eq(int, t_wait_peer(t_fork_peer(die_holding, &dead)), 128 + SIGKILL));
	cr_assert(eq(int, pthread_create(&t, NULL, acquire_thread, &h), 0));
	sleep_ms(50); /* asleep on the dead holder's word */
	cr_assert(eq(int, shmq__kind_lock.repair(&fx.seg, idx, &rep), 1));
	pthread_join(t, NULL);
	cr_assert(eq(int, h.r, -EOWNERDEAD));
}

/*
 * The release's one wake went to a waiter that then died: the word is free,
 * WAITERS gone, and another sleeper still queued.  The dead waiter's record
 * counts it asleep, so its repair passes the wake on.
 */
Test(lock, a_wake_swallowed_by_a_dead_waiter_is_passed_on)
{
	struct shmq_lock a, b, ghost;
	struct holder_arg h = {.lk = &b};
	struct shmq_kind_repair rep = {0};
	pthread_t t;
	uint32_t idx;

	t_seg_new_lock(&fx, 0);
	lock_handle(&a, NULL);
	lock_handle(&b, NULL);
	lock_handle(&ghost, &idx);
	b.spin_ns = 0;
	cr_assert(eq(int, shmq__lock_acquire(&a, 0), 0));
	cr_assert(eq(int, pthread_create(&t, NULL, acquire_thread, &h), 0));
	sleep_ms(50);
	/* a's release, with its wake spent on the ghost: R0, R1 and no R2 */
	store_relaxed(&shm()->owner_tid, 0);
	store_relaxed(&shm()->depth, 0);
	store_release(&shm()->word, 0);
	store_relaxed(ghost.waiting, 1);
	sleep_ms(50);
	cr_assert(eq(u64, load_relaxed(&h.took_ns), 0)); /* nobody woke the sleeper */
	cr_assert(eq(int, shmq__kind_lock.repair(&fx.seg, idx, &rep), 1));
	cr_assert(eq(u32, rep.waiters, 1));
	pthread_join(t, NULL);
	cr_assert(eq(int, h.r, 0));
}

Test(lock, a_forged_holder_is_taken_back_like_a_dead_one)
{
	struct shmq_lock a;

	t_seg_new_lock(&fx, 0);
	lock_handle(&a, NULL);
	store_relaxed(&shm()->word, shmq__owner_field(40)); /* record 40 is free */
	cr_assert(shmq__owner_is_forged(&fx.seg, shmq__owner_of(load_relaxed(&shm()->word))));
	cr_assert(eq(int, shmq__lock_acquire(&a, t_deadline_ms(10)), -ETIMEDOUT));
	cr_assert(shmq__lock_take_back(&fx.seg, shmq__owner_field(40)));
	cr_assert(eq(int, shmq__lock_acquire(&a, 0), -EOWNERDEAD));
}

Test(lock, junk_bits_fail_the_check_and_the_next_take_clears_them)
{
	struct shmq_lock a;

	t_seg_new_lock(&fx, 0);
	lock_handle(&a, NULL);
	store_relaxed(&shm()->word, UINT32_C(0x80000004));
	cr_assert(eq(int, shmq__kind_lock.check(&fx.seg, false), -EBADMSG));
	cr_assert(eq(int, shmq__lock_acquire(&a, 0), 0));
	cr_assert(eq(int, shmq__lock_release(&a), 0));
	cr_assert(eq(u32, load_relaxed(&shm()->word), 0));
	cr_assert(eq(int, shmq__kind_lock.check(&fx.seg, true), 0));
	store_relaxed(&shm()->depth, 3); /* a plain lock is never held twice */
	cr_assert(eq(int, shmq__kind_lock.check(&fx.seg, false), -EBADMSG));
}

Test(lock, async_arm_marks_a_held_lock_and_disarm_passes_the_wake_on)
{
	struct shmq_lock a, b;
	struct shmq_kind_arm arm;

	t_seg_new_lock(&fx, 0);
	lock_handle(&a, NULL);
	lock_handle(&b, NULL);
	cr_assert(shmq__kind_lock.is_ready(&b, SHMQ_KIND_EV_RECV));
	cr_assert(eq(int, shmq__kind_lock.arm(&b, SHMQ_KIND_EV_RECV, &arm), 1));
	cr_assert(eq(int, shmq__lock_acquire(&a, 0), 0));
	cr_assert(not(shmq__kind_lock.is_ready(&b, SHMQ_KIND_EV_RECV)));
	cr_assert(eq(int, shmq__kind_lock.arm(&b, SHMQ_KIND_EV_RECV, &arm), 0));
	cr_assert(eq(ptr, (void *)arm.word, (void *)&shm()->word));
	cr_assert(eq(u32, arm.key, load_relaxed(&shm()->word)));
	cr_assert(arm.key & SHMQ_LOCK_WAITERS);
	cr_assert(eq(u32, load_relaxed(b.waiting), 1));
	cr_assert(eq(int, shmq__lock_release(&a), 0));
	cr_assert(ne(u32, load_relaxed(&shm()->word), arm.key)); /* the wait completes */
	shmq__kind_lock.disarm(&b);
	cr_assert(eq(u32, load_relaxed(b.waiting), 0));
	cr_assert(eq(int, shmq__lock_acquire(&b, 0), 0));
}

Test(lock, geometry_takes_only_known_flags)
{
	union shmq_geom g = {.lock = {.flags = SHMQ_LOCK_RECURSIVE}};

	cr_assert(eq(int, shmq__kind_lock.geom_check(&g, false), 0));
	g.lock.flags = 2;
	cr_assert(eq(int, shmq__kind_lock.geom_check(&g, false), -EINVAL));
	g.lock.flags = 0;
	g.lock.reserved[3] = 1;
	cr_assert(eq(int, shmq__kind_lock.geom_check(&g, true), -EINVAL));
}

Test(lock, a_forked_child_is_another_thread)
{
	int32_t mine = shmq__tid();
	pid_t pid = fork();

	if (pid == 0)
		_exit(shmq__tid() == mine || shmq__tid() != (int32_t)getpid() ? 1 : 0);
	cr_assert(eq(int, t_wait_peer(pid), 0));
	cr_assert(eq(i32, shmq__tid(), mine));
}
