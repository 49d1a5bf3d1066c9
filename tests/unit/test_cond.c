/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for shm/cond.c: the refusals; notify(n) counting exactly n of
 * the waiters and never a later one; a bounded buffer between threads (TSan
 * checks the ordering the lock gives); an RLock's depth across a wait;
 * timeouts; a waiter killed while waiting, and one that swallowed a wake
 * before dying.  With a daemon: tests/integration/test_cond.c.
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
#include "shm/cond.h"
#include "shm/futex.h"
#include "shm/kind.h"
#include "shm/lock.h"
#include "tests/helpers.h"

#define WAIT_MS	  5000 /* the deadline of every wait that should succeed */
#define N_WAITERS 4

static struct t_seg fl, fc;

static void teardown(void)
{
	t_seg_free(&fc);
	t_seg_free(&fl);
}

TestSuite(cond, .fini = teardown, .timeout = 30);

/* A lock and a condition bound to it, each on its own fresh record: one client's handles. */
static void handles(struct shmq_lock *lk, struct shmq_cond *cv, uint32_t *ret_index)
{
	uint32_t li, ci;

	cr_assert(
		eq(int, shmq__session_claim(&fl.seg, SHMQ_ROLE_USER, getpid(), getuid(), &li), 0));
	cr_assert(eq(int, shmq__lock_attach(lk, &fl.seg, li), 0));
	cr_assert(
		eq(int, shmq__session_claim(&fc.seg, SHMQ_ROLE_USER, getpid(), getuid(), &ci), 0));
	cv->lk = lk;
	cr_assert(eq(int, shmq__cond_attach(cv, &fc.seg, ci), 0));
	cr_assert(cv->lk == lk);
	if (ret_index)
		*ret_index = ci;
}

static void setup_objects(uint32_t lock_flags)
{
	t_seg_new_lock(&fl, lock_flags);
	t_seg_new_cond(&fc, fl.seg.hdr->object_id);
}

static struct shmq_cond_shm *shm(void)
{
	return fc.seg.object;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

Test(cond, the_refusals)
{
	struct shmq_lock lk;
	struct shmq_cond cv, view = {0};

	setup_objects(0);
	handles(&lk, &cv, NULL);
	cr_assert(eq(int, shmq__cond_wait(&cv, t_deadline_ms(WAIT_MS)), -EPERM));
	cr_assert(eq(int, shmq__cond_notify(&cv, 1), -EPERM));
	cr_assert(eq(int, shmq__lock_acquire(&lk, 0), 0));
	/* a past deadline: at once, and the lock never given up */
	cr_assert(eq(int, shmq__cond_wait(&cv, 0), -ETIMEDOUT));
	cr_assert(shmq__lock_is_mine(&lk));
	/* nobody waits: nothing counted, seq unmoved, no system call needed */
	cr_assert(eq(int, shmq__cond_notify(&cv, 3), 0));
	cr_assert(eq(u32, load_relaxed(&shm()->seq), 0));
	cr_assert(eq(int, shmq__lock_release(&lk), 0));
	/* a view has no record: it may not wait */
	view.lk = &lk;
	cr_assert(eq(int, shmq__cond_attach(&view, &fc.seg, UINT32_MAX), 0));
	cr_assert(eq(int, shmq__cond_wait(&view, t_deadline_ms(10)), -EINVAL));
}

Test(cond, geometry_needs_a_lock)
{
	union shmq_geom g = {0};

	cr_assert(eq(int, shmq__kind_cond.geom_check(&g, false), -EINVAL));
	g.cond.lock_id = 7;
	cr_assert(eq(int, shmq__kind_cond.geom_check(&g, false), 0));
	g.cond.reserved[2] = 1;
	cr_assert(eq(int, shmq__kind_cond.geom_check(&g, false), -EINVAL));
}

Test(cond, a_timed_wait_gives_the_lock_up_and_takes_it_back)
{
	struct shmq_lock lk, other;
	struct shmq_cond cv, cv2;
	uint64_t t0 = shmq__now_ns();

	setup_objects(0);
	handles(&lk, &cv, NULL);
	handles(&other, &cv2, NULL);
	cr_assert(eq(int, shmq__lock_acquire(&lk, 0), 0));
	cr_assert(eq(int, shmq__cond_wait(&cv, t_deadline_ms(30)), -ETIMEDOUT));
	cr_assert(ge(u64, shmq__now_ns() - t0, 30000000));
	cr_assert(shmq__lock_is_mine(&lk));
	cr_assert(eq(u32, load_relaxed(&shm()->waiting), 0));
	cr_assert(eq(u32, load_relaxed(cv.mine), 0));
	cr_assert(eq(int, shmq__lock_release(&lk), 0));
}

struct waiter_arg {
	struct shmq_lock lk;
	struct shmq_cond cv;
	_Atomic int *woken;   /* written under the lock */
	unsigned int wait_ms; /* the wait's deadline; 0: WAIT_MS */
	int r;
};

static void *wait_thread(void *p)
{
	struct waiter_arg *a = p;

	a->r = shmq__lock_acquire(&a->lk, t_deadline_ms(WAIT_MS));
	if (a->r == 0) {
		a->r = shmq__cond_wait(&a->cv, t_deadline_ms(a->wait_ms ? a->wait_ms : WAIT_MS));
		if (a->r == 0)
			fetch_add_relaxed(a->woken, 1);
		(void)shmq__lock_release(&a->lk);
	}
	return NULL;
}

/* Wait (bounded) until *@v reaches @want. */
static void await_value(_Atomic int *v, int want)
{
	for (int i = 0; i < 5000 && load_relaxed(v) < want; i++)
		sleep_ms(1);
}

static void await_waiting(uint32_t want)
{
	for (int i = 0; i < 5000 && load_relaxed(&shm()->waiting) < want; i++)
		sleep_ms(1);
	cr_assert(eq(u32, load_relaxed(&shm()->waiting), want));
}

Test(cond, notify_counts_exactly_n_waiters)
{
	struct waiter_arg w[N_WAITERS] = {0};
	pthread_t t[N_WAITERS];
	struct shmq_lock lk;
	struct shmq_cond cv;
	_Atomic int woken = 0;

	setup_objects(0);
	handles(&lk, &cv, NULL);
	for (int i = 0; i < N_WAITERS; i++) {
		handles(&w[i].lk, &w[i].cv, NULL);
		w[i].woken = &woken;
		cr_assert(eq(int, pthread_create(&t[i], NULL, wait_thread, &w[i]), 0));
	}
	await_waiting(N_WAITERS);
	cr_assert(eq(int, shmq__lock_acquire(&lk, t_deadline_ms(WAIT_MS)), 0));
	cr_assert(eq(int, shmq__cond_notify(&cv, 1), 1));
	cr_assert(eq(int, shmq__lock_release(&lk), 0));
	await_value(&woken, 1);
	sleep_ms(50); /* a second one would have left by now */
	cr_assert(eq(int, load_relaxed(&woken), 1));
	cr_assert(eq(u32, load_relaxed(&shm()->waiting), N_WAITERS - 1));

	cr_assert(eq(int, shmq__lock_acquire(&lk, t_deadline_ms(WAIT_MS)), 0));
	cr_assert(eq(int, shmq__cond_notify(&cv, 2), 2));
	cr_assert(eq(int, shmq__lock_release(&lk), 0));
	await_value(&woken, 3);
	sleep_ms(50);
	cr_assert(eq(int, load_relaxed(&woken), 3));

	cr_assert(eq(int, shmq__lock_acquire(&lk, t_deadline_ms(WAIT_MS)), 0));
	cr_assert(eq(int, shmq__cond_notify(&cv, UINT32_MAX), N_WAITERS - 3));
	cr_assert(eq(int, shmq__lock_release(&lk), 0));
	for (int i = 0; i < N_WAITERS; i++) {
		pthread_join(t[i], NULL);
		cr_assert(eq(int, w[i].r, 0));
	}
	cr_assert(eq(int, load_relaxed(&woken), N_WAITERS));
	cr_assert(eq(u32, load_relaxed(&shm()->waiting), 0));
	cr_assert(eq(u32, load_relaxed(&shm()->pending), 0));
}

/*
 * A waiter that begins after a notify is not one of its waiters: the
 * notify's count went to the one waiting before, and the late one sleeps
 * until a notify of its own.
 */
Test(cond, a_later_waiter_never_takes_an_earlier_notify)
{
	struct waiter_arg early = {0}, late = {0};
	pthread_t te, tl;
	struct shmq_lock lk;
	struct shmq_cond cv;
	_Atomic int woken = 0;

	setup_objects(0);
	handles(&lk, &cv, NULL);
	handles(&early.lk, &early.cv, NULL);
	handles(&late.lk, &late.cv, NULL);
	early.woken = late.woken = &woken;
	cr_assert(eq(int, pthread_create(&te, NULL, wait_thread, &early), 0));
	await_waiting(1);
	/* notify, and hold the lock so the early waiter cannot leave yet */
	cr_assert(eq(int, shmq__lock_acquire(&lk, t_deadline_ms(WAIT_MS)), 0));
	cr_assert(eq(int, shmq__cond_notify(&cv, 1), 1));
	cr_assert(eq(int, shmq__lock_release(&lk), 0));
	pthread_join(te, NULL);
	cr_assert(eq(int, early.r, 0));
	cr_assert(eq(int, pthread_create(&tl, NULL, wait_thread, &late), 0));
	await_waiting(1);
	sleep_ms(50);
	cr_assert(eq(int, load_relaxed(&woken), 1));
	cr_assert(eq(int, shmq__lock_acquire(&lk, t_deadline_ms(WAIT_MS)), 0));
	cr_assert(eq(int, shmq__cond_notify(&cv, 1), 1));
	cr_assert(eq(int, shmq__lock_release(&lk), 0));
	pthread_join(tl, NULL);
	cr_assert(eq(int, late.r, 0));
}

/* A bounded buffer of ints guarded by the lock: two conditions, as in every textbook. */
#define BUF_CAP	  4
#define BUF_ITEMS 20000

struct buffer {
	int items[BUF_CAP];
	unsigned int head, count; /* under the lock */
};

struct bb_arg {
	struct shmq_lock lk;
	struct shmq_cond not_empty, not_full;
	struct buffer *b;
	uint64_t sum;
	int r;
};

static struct t_seg fc2;

static void bb_handles(struct bb_arg *a)
{
	uint32_t ci;

	handles(&a->lk, &a->not_empty, NULL);
	cr_assert(
		eq(int, shmq__session_claim(&fc2.seg, SHMQ_ROLE_USER, getpid(), getuid(), &ci), 0));
	a->not_full.lk = &a->lk;
	cr_assert(eq(int, shmq__cond_attach(&a->not_full, &fc2.seg, ci), 0));
}

static void *producer(void *p)
{
	struct bb_arg *a = p;

	for (int i = 1; i <= BUF_ITEMS && !a->r; i++) {
		a->r = shmq__lock_acquire(&a->lk, t_deadline_ms(WAIT_MS));
		while (!a->r && a->b->count == BUF_CAP)
			a->r = shmq__cond_wait(&a->not_full, t_deadline_ms(WAIT_MS));
		if (a->r)
			break;
		a->b->items[(a->b->head + a->b->count++) % BUF_CAP] = i;
		(void)shmq__cond_notify(&a->not_empty, 1);
		(void)shmq__lock_release(&a->lk);
	}
	return NULL;
}

static void *consumer(void *p)
{
	struct bb_arg *a = p;

	for (int i = 1; i <= BUF_ITEMS && !a->r; i++) {
		a->r = shmq__lock_acquire(&a->lk, t_deadline_ms(WAIT_MS));
		while (!a->r && a->b->count == 0)
			a->r = shmq__cond_wait(&a->not_empty, t_deadline_ms(WAIT_MS));
		if (a->r)
			break;
		a->sum += (uint64_t)a->b->items[a->b->head];
		a->b->head = (a->b->head + 1) % BUF_CAP;
		a->b->count--;
		(void)shmq__cond_notify(&a->not_full, 1);
		(void)shmq__lock_release(&a->lk);
	}
	return NULL;
}

Test(cond, a_bounded_buffer_between_threads_loses_nothing)
{
	struct buffer b = {0};
	struct bb_arg pa = {.b = &b}, ca = {.b = &b};
	pthread_t tp, tc;

	setup_objects(0);
	t_seg_new_cond(&fc2, fl.seg.hdr->object_id);
	bb_handles(&pa);
	bb_handles(&ca);
	cr_assert(eq(int, pthread_create(&tc, NULL, consumer, &ca), 0));
	cr_assert(eq(int, pthread_create(&tp, NULL, producer, &pa), 0));
	pthread_join(tp, NULL);
	pthread_join(tc, NULL);
	t_seg_free(&fc2);
	cr_assert(eq(int, pa.r, 0));
	cr_assert(eq(int, ca.r, 0));
	cr_assert(eq(u64, ca.sum, (uint64_t)BUF_ITEMS * (BUF_ITEMS + 1) / 2));
}

struct rwait_arg {
	struct shmq_lock lk;
	struct shmq_cond cv;
	uint32_t depth_after;
	int r;
};

static void *rlock_waiter(void *p)
{
	struct rwait_arg *a = p;

	for (int i = 0; i < 3; i++)
		(void)shmq__lock_acquire(&a->lk, t_deadline_ms(WAIT_MS));
	a->r = shmq__cond_wait(&a->cv, t_deadline_ms(WAIT_MS));
	a->depth_after = load_relaxed(&((struct shmq_lock_shm *)fl.seg.object)->depth);
	for (int i = 0; i < 3; i++)
		(void)shmq__lock_release(&a->lk);
	return NULL;
}

Test(cond, an_rlock_is_given_up_whole_and_restored_at_its_depth)
{
	struct rwait_arg a;
	struct shmq_lock lk;
	struct shmq_cond cv;
	pthread_t t;

	setup_objects(SHMQ_LOCK_RECURSIVE);
	handles(&lk, &cv, NULL);
	handles(&a.lk, &a.cv, NULL);
	cr_assert(eq(int, pthread_create(&t, NULL, rlock_waiter, &a), 0));
	await_waiting(1);
	/* held three times by the waiter, yet free while it waits */
	cr_assert(eq(int, shmq__lock_acquire(&lk, t_deadline_ms(WAIT_MS)), 0));
	cr_assert(eq(int, shmq__cond_notify(&cv, 1), 1));
	cr_assert(eq(int, shmq__lock_release(&lk), 0));
	pthread_join(t, NULL);
	cr_assert(eq(int, a.r, 0));
	cr_assert(eq(u32, a.depth_after, 3));
	cr_assert(not(shmq__lock_is_locked(&lk)));
}

/* The child waits on the condition with its own records, and is killed asleep. */
static int wait_forever(void *arg)
{
	struct waiter_arg *a = arg;

	if (shmq__lock_acquire(&a->lk, t_deadline_ms(WAIT_MS)) != 0)
		return 1;
	(void)shmq__cond_wait(&a->cv, SHMQ_DEADLINE_NEVER);
	return 2;
}

Test(cond, a_waiter_killed_waiting_is_uncounted_and_never_takes_a_notify)
{
	struct waiter_arg dead = {0}, live = {0};
	struct shmq_kind_repair rep = {0};
	struct shmq_lock lk;
	struct shmq_cond cv;
	_Atomic int woken = 0;
	uint32_t idx;
	pthread_t t;
	pid_t pid;

	setup_objects(0);
	handles(&lk, &cv, NULL);
	handles(&dead.lk, &dead.cv, &idx);
	handles(&live.lk, &live.cv, NULL);
	live.woken = &woken;
	pid = t_fork_peer(wait_forever, &dead);
	await_waiting(1);
	sleep_ms(20); /* asleep in the kernel */
	kill(pid, SIGKILL);
	cr_assert(eq(int, t_wait_peer(pid), 128 + SIGKILL));
	cr_assert(eq(u32, load_relaxed(dead.cv.mine), 1));
	/* the daemon, once the death is certain */
	cr_assert(eq(int, shmq__kind_cond.repair(&fc.seg, idx, &rep), 1));
	cr_assert(eq(u32, rep.waiters, 1));
	cr_assert(eq(u32, load_relaxed(&shm()->waiting), 0));
	cr_assert(eq(u32, load_relaxed(&shm()->deaths), 1));
	cr_assert(eq(u32, load_relaxed(dead.cv.mine), 0));
	/* the live waiter gets the next notify: none is spent on the dead */
	cr_assert(eq(int, pthread_create(&t, NULL, wait_thread, &live), 0));
	await_waiting(1);
	cr_assert(eq(int, shmq__lock_acquire(&lk, t_deadline_ms(WAIT_MS)), 0));
	cr_assert(eq(int, shmq__cond_notify(&cv, 1), 1));
	cr_assert(eq(int, shmq__lock_release(&lk), 0));
	pthread_join(t, NULL);
	cr_assert(eq(int, live.r, 0));
	/* a second repair of the record finds nothing */
	rep = (struct shmq_kind_repair){0};
	cr_assert(eq(int, shmq__kind_cond.repair(&fc.seg, idx, &rep), 0));
}

/*
 * A notify counted a ghost (it had joined, its record says so) and its one
 * wake reached the ghost, which died before taking the notification: the
 * live waiter still sleeps with the notification pending.  The ghost's
 * repair wakes it, and it takes the notification.
 */
Test(cond, a_wake_swallowed_by_a_dead_waiter_is_passed_on)
{
	struct waiter_arg live = {0};
	struct shmq_kind_repair rep = {0};
	struct shmq_lock ghost_lk;
	struct shmq_cond ghost;
	_Atomic int woken = 0;
	uint32_t idx;
	pthread_t t;

	setup_objects(0);
	handles(&ghost_lk, &ghost, &idx);
	handles(&live.lk, &live.cv, NULL);
	live.woken = &woken;
	cr_assert(eq(int, pthread_create(&t, NULL, wait_thread, &live), 0));
	await_waiting(1);
	sleep_ms(20);
	/* the ghost joins (W1), a notify counts one (N1) and its wake goes to the ghost */
	fetch_add_relaxed(&shm()->waiting, 1);
	fetch_add_relaxed(ghost.mine, 1);
	fetch_sub_relaxed(&shm()->waiting, 1);
	fetch_add_relaxed(&shm()->pending, 1);
	fetch_add_relaxed(&shm()->seq, 1);
	sleep_ms(50);
	cr_assert(eq(int, load_relaxed(&woken), 0)); /* nobody woke the live one */
	cr_assert(eq(int, shmq__kind_cond.repair(&fc.seg, idx, &rep), 1));
	pthread_join(t, NULL);
	cr_assert(eq(int, live.r, 0));
	cr_assert(eq(int, load_relaxed(&woken), 1));
	cr_assert(eq(u32, load_relaxed(&shm()->waiting) + load_relaxed(&shm()->pending), 0));
}

/* The waiter's sleep times out while the notifier holds the lock: the notify still counts. */
Test(cond, a_notify_that_races_the_deadline_wins)
{
	struct waiter_arg w = {.wait_ms = 50};
	struct shmq_lock lk;
	struct shmq_cond cv;
	_Atomic int woken = 0;
	pthread_t t;

	setup_objects(0);
	handles(&lk, &cv, NULL);
	handles(&w.lk, &w.cv, NULL);
	w.woken = &woken;
	cr_assert(eq(int, pthread_create(&t, NULL, wait_thread, &w), 0));
	await_waiting(1);
	cr_assert(eq(int, shmq__lock_acquire(&lk, t_deadline_ms(WAIT_MS)), 0));
	sleep_ms(100); /* its futex wait times out; it waits for the lock */
	cr_assert(eq(int, shmq__cond_notify(&cv, 1), 1));
	cr_assert(eq(int, shmq__lock_release(&lk), 0));
	pthread_join(t, NULL);
	cr_assert(eq(int, w.r, 0));
	cr_assert(eq(u32, load_relaxed(&shm()->waiting) + load_relaxed(&shm()->pending), 0));
}

/* The asynchronous wait's steps, as a completion drives them (shm/cond.h). */
Test(cond, an_asynchronous_wait_joins_gives_the_lock_up_and_takes_its_notify)
{
	struct shmq_lock lk, other;
	struct shmq_cond cv, cv2;
	struct shmq_kind_arm arm;

	setup_objects(0);
	handles(&lk, &cv, NULL);
	handles(&other, &cv2, NULL);
	cr_assert(eq(int, shmq__cond_wait_begin(&cv), -EPERM));
	cr_assert(eq(int, shmq__cond_wait_end(&cv), -EPERM));
	cr_assert(eq(int, shmq__cond_wait_cancel(&cv), -EINVAL));
	cr_assert(
		shmq__kind_cond.is_ready(&cv, SHMQ_KIND_EV_RECV)); /* nothing joined: end() says */
	cr_assert(eq(int, shmq__lock_acquire(&lk, 0), 0));
	cr_assert(eq(int, shmq__cond_wait_begin(&cv), 0));
	cr_assert(not(shmq__lock_is_locked(&lk))); /* given up */
	cr_assert(eq(u32, load_relaxed(&shm()->waiting), 1));
	cr_assert(not(shmq__kind_cond.is_ready(&cv, SHMQ_KIND_EV_RECV)));
	cr_assert(eq(int, shmq__kind_cond.arm(&cv, SHMQ_KIND_EV_RECV, &arm), 0));
	cr_assert(arm.word == &shm()->seq);
	cr_assert(eq(u32, arm.key, load_relaxed(&shm()->seq)));
	/* not notified yet: end() says so, and begin() gives the lock up again */
	cr_assert(eq(int, shmq__lock_acquire(&lk, 0), 0));
	cr_assert(eq(int, shmq__cond_wait_end(&cv), -EAGAIN));
	cr_assert(eq(int, shmq__cond_wait_begin(&cv), 0));
	cr_assert(eq(u32, load_relaxed(&shm()->waiting), 1)); /* joined once */
	/* another holder notifies: the key moved, the wait is ready */
	cr_assert(eq(int, shmq__lock_acquire(&other, 0), 0));
	cr_assert(eq(int, shmq__cond_notify(&cv2, 1), 1));
	cr_assert(eq(int, shmq__lock_release(&other), 0));
	cr_assert(load_relaxed(&shm()->seq) != arm.key);
	cr_assert(shmq__kind_cond.is_ready(&cv, SHMQ_KIND_EV_RECV));
	cr_assert(eq(int, shmq__kind_cond.arm(&cv, SHMQ_KIND_EV_RECV, &arm), 1));
	cr_assert(eq(int, shmq__lock_acquire(&lk, 0), 0));
	cr_assert(eq(int, shmq__cond_wait_end(&cv), 0));
	cr_assert(eq(int, shmq__cond_wait_end(&cv), -EINVAL)); /* over */
	cr_assert(eq(u32, load_relaxed(&shm()->waiting) + load_relaxed(&shm()->pending), 0));
	cr_assert(eq(u32, load_relaxed(cv.mine), 0));
	cr_assert(eq(int, shmq__lock_release(&lk), 0));
}

Test(cond, cancel_takes_a_notification_that_came_and_else_leaves)
{
	struct shmq_lock lk, other;
	struct shmq_cond cv, cv2;

	setup_objects(SHMQ_LOCK_RECURSIVE);
	handles(&lk, &cv, NULL);
	handles(&other, &cv2, NULL);
	/* an RLock held twice cannot be given back whole by a completion */
	cr_assert(eq(int, shmq__lock_acquire(&lk, 0), 0));
	cr_assert(eq(int, shmq__lock_acquire(&lk, 0), 0));
	cr_assert(eq(int, shmq__cond_wait_begin(&cv), -EDEADLK));
	cr_assert(eq(int, shmq__lock_release(&lk), 0));
	cr_assert(eq(int, shmq__cond_wait_begin(&cv), 0));
	cr_assert(eq(int, shmq__cond_wait_cancel(&cv), 0)); /* without the lock */
	cr_assert(eq(u32, load_relaxed(&shm()->waiting), 0));
	cr_assert(eq(int, shmq__lock_acquire(&lk, 0), 0));
	cr_assert(eq(int, shmq__cond_wait_begin(&cv), 0));
	cr_assert(eq(int, shmq__lock_acquire(&other, 0), 0));
	cr_assert(eq(int, shmq__cond_notify(&cv2, UINT32_MAX), 1));
	cr_assert(eq(int, shmq__lock_release(&other), 0));
	cr_assert(eq(int, shmq__cond_wait_cancel(&cv), 1)); /* it came: taken, not lost */
	cr_assert(eq(u32, load_relaxed(&shm()->waiting) + load_relaxed(&shm()->pending), 0));
	cr_assert(eq(u32, load_relaxed(cv.mine), 0));
}
