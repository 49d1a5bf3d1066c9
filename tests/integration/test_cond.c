/* SPDX-License-Identifier: MIT */
/*
 * Integration: conditions between processes through a real shmqd -- a
 * predicate handed from one process to another, the binding to one lock
 * and its refusals, a waiter SIGKILLed while waiting (the daemon uncounts
 * it and the next notify reaches a live waiter), a lock holder killed
 * while a waiter needs the lock back (-EOWNERDEAD), and the asynchronous
 * wait through the poller.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "tests/helpers.h"
#include "tests/integration/daemon.h"

#define WAIT_MS 10000

static struct t_daemon d;

static void setup(void)
{
	t_daemon_start(&d, NULL, NULL);
}

TestSuite(cond, .init = setup, .fini = t_daemon_cleanup_all, .timeout = 60);

struct shared {
	const char *sock;
	_Atomic int state; /* set by a child: 1 waiting (or about to), 2 done */
	int result;	   /* the child's last shmq_* result */
	int value;	   /* the predicate's data: touched only under the lock */
	_Atomic int woken; /* children whose wait returned 0 */
};

static void wait_for_state(struct shared *s, int want)
{
	uint64_t deadline = t_now_ns() + UINT64_C(5) * 1000000000;

	while (atomic_load(&s->state) < want && t_now_ns() < deadline)
		t_sleep_ms(1);
	cr_assert(atomic_load(&s->state) >= want, "the child never got there");
}

/* Open the pair as a user: the lock, then the condition bound to it. */
static int open_pair(struct shmq_client *c, struct shmq_lock **l, struct shmq_cond **cv)
{
	int r = shmq_lock_open(c, "m", 0, NULL, l);

	return r < 0 ? r : shmq_cond_open(c, "cv", 0, *l, NULL, cv);
}

static int value_is_positive(void *arg)
{
	return ((struct shared *)arg)->value > 0;
}

/* Child: wait (holding the lock) until value > 0, then consume it. */
static int child_wait_for(void *arg)
{
	struct shared *s = arg;
	struct shmq_client *c;
	struct shmq_lock *l;
	struct shmq_cond *cv;

	if (shmq_client_connect(s->sock, &c) || open_pair(c, &l, &cv))
		return 1;
	if (shmq_lock_acquire(l, SHMQ_FOREVER))
		return 2;
	atomic_store(&s->state, 1);
	s->result = shmq_cond_wait_for(cv, value_is_positive, s,
				       shmq_deadline_after((uint64_t)(WAIT_MS)*1000000));
	if (s->result)
		return 3;
	s->value--;
	atomic_fetch_add(&s->woken, 1);
	if (shmq_lock_release(l) || shmq_cond_close(cv) || shmq_lock_close(l))
		return 4;
	atomic_store(&s->state, 2);
	return shmq_client_close(c) ? 5 : 0;
}

static void create_pair(struct shmq_client *c, struct shmq_lock **l, struct shmq_cond **cv)
{
	struct shmq_lock_attr la = {.size = sizeof(la)};

	T_OK(shmq_lock_open(c, "m", SHMQ_CREATE | SHMQ_EXCL, &la, l));
	T_OK(shmq_cond_open(c, "cv", SHMQ_CREATE | SHMQ_EXCL, *l, NULL, cv));
}

Test(cond, a_predicate_set_in_one_process_releases_a_waiter_in_another)
{
	struct shared *s = t_shared_alloc(sizeof(*s));
	struct shmq_client *c = t_connect(&d);
	struct shmq_lock *l;
	struct shmq_cond *cv;
	pid_t pid;

	create_pair(c, &l, &cv);
	*s = (struct shared){.sock = d.sock, .result = -1};
	pid = t_fork_child(child_wait_for, s);
	wait_for_state(s, 1);
	t_sleep_ms(50); /* into its wait */
	T_OK(shmq_lock_acquire(l, SHMQ_FOREVER));
	cr_assert(eq(int, s->value, 0));
	s->value = 1;
	cr_assert(eq(int, shmq_cond_notify(cv, 1), 1));
	T_OK(shmq_lock_release(l));
	cr_assert(eq(int, t_wait_peer_ms(pid, WAIT_MS), 0), "child: %d", s->result);
	cr_assert(eq(int, atomic_load(&s->woken), 1));
	T_OK(shmq_lock_acquire(l, SHMQ_FOREVER));
	cr_assert(eq(int, s->value, 0)); /* the child consumed it, under the lock */
	/* nobody waits now: a notify counts nobody */
	cr_assert(eq(int, shmq_cond_notify_all(cv), 0));
	T_OK(shmq_lock_release(l));
	T_OK(shmq_cond_close(cv));
	T_OK(shmq_lock_close(l));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(cond, it_is_bound_to_one_lock_which_it_pins)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_lock_attr la = {.size = sizeof(la)};
	struct shmq_lock *l, *other, *lview;
	struct shmq_cond *cv, *cv2, *view;
	struct shmq_object_info info = {.size = sizeof(info)};
	struct shmq_waiter *w;

	create_pair(c, &l, &cv);
	T_OK(shmq_lock_open(c, "other", SHMQ_CREATE | SHMQ_EXCL, &la, &other));
	T_ERR(shmq_cond_open(c, "cv", 0, other, NULL, &cv2), -EXDEV);
	T_ERR(shmq_cond_open(c, "cv", 0, NULL, NULL, &cv2), -EINVAL);
	T_ERR(shmq_cond_open(c, "cv2", SHMQ_CREATE, NULL, NULL, &cv2), -EINVAL);
	T_OK(shmq_lock_open(c, "m", SHMQ_VIEW, NULL, &lview));
	T_ERR(shmq_cond_open(c, "cv", 0, lview, NULL, &cv2), -EINVAL); /* a view cannot wait */
	T_ERR(shmq_cond_open(c, "m", 0, l, NULL, &cv2), -EINVAL);      /* a lock, not a condition */
	/* a view needs no lock, and may not wait */
	T_OK(shmq_cond_open(c, "cv", SHMQ_VIEW, NULL, NULL, &view));
	T_ERR(shmq_cond_wait(view, shmq_deadline_after((uint64_t)(10) * 1000000)), -EBADF);
	T_ERR(shmq_cond_notify(view, 1), -EBADF);
	T_OK(shmq_cond_close(view));
	/* the binding, as the daemon reports it */
	T_OK(shmq_object_stat(c, "cv", &info));
	cr_assert(eq(u32, info.kind, SHMQ_OBJECT_COND));
	{
		struct shmq_object_info li = {.size = sizeof(li)};

		T_OK(shmq_object_stat(c, "m", &li));
		cr_assert(eq(u64, info.cond_lock_id, li.object_id));
	}
	/* waits, notifies and the lock */
	T_ERR(shmq_cond_wait(cv, SHMQ_FOREVER), -EPERM);
	T_ERR(shmq_cond_notify(cv, 1), -EPERM);
	T_ERR(shmq_cond_wait_for(cv, value_is_positive, NULL, SHMQ_FOREVER), -EPERM);
	T_OK(shmq_lock_acquire(l, SHMQ_FOREVER));
	T_ERR(shmq_cond_wait(cv, shmq_deadline_after((uint64_t)(20) * 1000000)), -ETIMEDOUT);
	cr_assert(eq(int, shmq_lock_is_mine(l), 1));
	T_ERR(shmq_cond_wait_for(cv, NULL, NULL, SHMQ_FOREVER), -EINVAL);
	T_OK(shmq_lock_release(l));
	/* asynchronous waits: receive only, and not on a view */
	T_ERR(shmq_waiter_new(shmq_cond_object(cv), SHMQ_POLL_SEND, &w), -EINVAL);
	/* the lock outlives its condition's handle */
	T_ERR(shmq_lock_close(l), -EBUSY);
	T_OK(shmq_cond_close(cv));
	T_OK(shmq_lock_close(l));
	T_OK(shmq_lock_close(lview));
	T_OK(shmq_lock_close(other));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* Child: wait forever on the condition; it will be killed asleep. */
static int child_wait_forever(void *arg)
{
	struct shared *s = arg;
	struct shmq_client *c;
	struct shmq_lock *l;
	struct shmq_cond *cv;

	if (shmq_client_connect(s->sock, &c) || open_pair(c, &l, &cv))
		return 1;
	if (shmq_lock_acquire(l, SHMQ_FOREVER))
		return 2;
	atomic_store(&s->state, 1);
	s->result = shmq_cond_wait(cv, SHMQ_FOREVER);
	return 3;
}

Test(cond, a_waiter_killed_waiting_never_takes_a_live_waiters_notify)
{
	struct shared *s = t_shared_alloc(2 * sizeof(*s));
	struct shmq_client *c = t_connect(&d);
	struct shmq_lock *l;
	struct shmq_cond *cv;
	char log[16384];
	pid_t dead, live;

	create_pair(c, &l, &cv);
	s[0] = (struct shared){.sock = d.sock, .result = -1};
	s[1] = (struct shared){.sock = d.sock, .result = -1};
	dead = t_fork_child(child_wait_forever, &s[0]);
	wait_for_state(&s[0], 1);
	t_sleep_ms(50);
	kill(dead, SIGKILL);
	cr_assert(eq(int, t_wait_peer_ms(dead, WAIT_MS), 128 + SIGKILL));
	live = t_fork_child(child_wait_for, &s[1]);
	wait_for_state(&s[1], 1);
	t_sleep_ms(100); /* the daemon's repair of the dead waiter; the live one asleep */
	T_OK(shmq_lock_acquire(l, SHMQ_FOREVER));
	s[1].value = 1;
	/* one notify: had the dead waiter stayed counted, it could have taken it */
	cr_assert(eq(int, shmq_cond_notify(cv, 1), 1));
	T_OK(shmq_lock_release(l));
	cr_assert(eq(int, t_wait_peer_ms(live, WAIT_MS), 0), "live: %d", s[1].result);
	t_daemon_read_log(&d, log, sizeof(log));
	cr_assert(strstr(log, "uncounted them") != NULL, "%s", log);
	T_OK(shmq_cond_close(cv));
	T_OK(shmq_lock_close(l));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* Child: take the lock, notify, and die holding it. */
static int child_notify_and_die(void *arg)
{
	struct shared *s = arg;
	struct shmq_client *c;
	struct shmq_lock *l;
	struct shmq_cond *cv;

	if (shmq_client_connect(s->sock, &c) || open_pair(c, &l, &cv))
		return 1;
	if (shmq_lock_acquire(l, SHMQ_FOREVER))
		return 2;
	if (shmq_cond_notify_all(cv) < 1)
		return 3;
	atomic_store(&s->state, 1);
	kill(getpid(), SIGKILL);
	return 4;
}

Test(cond, a_waiter_that_gets_the_lock_back_from_a_dead_holder_is_told)
{
	struct shmq_client *c = t_connect(&d);
	struct shared *s = t_shared_alloc(sizeof(*s));
	struct shmq_lock *l;
	struct shmq_cond *cv;
	pid_t pid;

	create_pair(c, &l, &cv);
	*s = (struct shared){.sock = d.sock, .result = -1};
	T_OK(shmq_lock_acquire(l, SHMQ_FOREVER));
	pid = t_fork_child(child_notify_and_die, s);
	/* the child notifies us holding the lock, then dies with it */
	{
		int r = shmq_cond_wait(cv, shmq_deadline_after((uint64_t)(WAIT_MS)*1000000));

		cr_assert(eq(int, atomic_load(&s->state), 1));
		cr_assert(eq(int, r, -EOWNERDEAD), "%d", r);
	}
	cr_assert(eq(int, shmq_lock_is_mine(l), 1));
	T_OK(shmq_lock_consistent(l));
	T_OK(shmq_lock_release(l));
	cr_assert(eq(int, t_wait_peer_ms(pid, WAIT_MS), 128 + SIGKILL));
	T_OK(shmq_cond_close(cv));
	T_OK(shmq_lock_close(l));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* Child: take the lock, set the predicate, notify, give the lock back. */
static int child_notify(void *arg)
{
	struct shared *s = arg;
	struct shmq_client *c;
	struct shmq_lock *l;
	struct shmq_cond *cv;

	if (shmq_client_connect(s->sock, &c) || open_pair(c, &l, &cv))
		return 1;
	t_sleep_ms(50); /* the parent's poller is asleep by now */
	if (shmq_lock_acquire(l, SHMQ_FOREVER))
		return 2;
	s->value = 1;
	s->result = shmq_cond_notify(cv, 1);
	if (shmq_lock_release(l) || s->result != 1)
		return 3;
	return shmq_cond_close(cv) || shmq_lock_close(l) || shmq_client_close(c) ? 4 : 0;
}

static int on_ready(struct shmq_watch *w, int events, void *arg)
{
	int *seen = arg;

	(void)w;
	*seen = events;
	return -ECANCELED; /* once is enough */
}

Test(cond, an_asynchronous_wait_through_the_poller_gets_a_notify_from_another_process)
{
	struct shared *s = t_shared_alloc(sizeof(*s));
	struct shmq_client *c = t_connect(&d);
	struct shmq_poller *pl;
	struct shmq_watch *wt;
	struct shmq_lock *l;
	struct shmq_cond *cv, *view;
	struct shmq_waiter *w;
	int seen = 0, r;
	pid_t pid;

	create_pair(c, &l, &cv);
	T_OK(shmq_cond_open(c, "cv", SHMQ_VIEW, NULL, NULL, &view));
	T_ERR(shmq_waiter_new(shmq_cond_object(view), SHMQ_POLL_RECV, &w), -EBADF);
	T_OK(shmq_cond_close(view));
	*s = (struct shared){.sock = d.sock, .result = -1};
	T_OK(shmq_lock_acquire(l, SHMQ_FOREVER));
	T_OK(shmq_cond_wait_begin(cv));
	cr_assert(eq(int, shmq_lock_is_locked(l), 0)); /* given up */
	T_ERR(shmq_cond_wait_begin(cv), -EPERM);       /* not the holder now */
	pid = t_fork_child(child_notify, s);
	T_OK(shmq_poller_new(0, &pl));
	T_OK(shmq_poller_add(pl, shmq_cond_object(cv), SHMQ_POLL_RECV, on_ready, &seen, &wt));
	T_ERR(shmq_poller_run(pl), -ECANCELED);
	cr_assert(eq(int, seen, SHMQ_POLL_RECV));
	T_OK(shmq_lock_acquire(l, SHMQ_FOREVER));
	r = shmq_cond_wait_end(cv);
	cr_assert(eq(int, r, 0), "%d", r);
	cr_assert(eq(int, s->value, 1));
	T_OK(shmq_lock_release(l));
	cr_assert(eq(int, t_wait_peer_ms(pid, WAIT_MS), 0), "child: %d", s->result);
	shmq_watch_free(wt);
	shmq_poller_free(pl);
	T_OK(shmq_cond_close(cv));
	T_OK(shmq_lock_close(l));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}
