/* SPDX-License-Identifier: MIT */
/*
 * Integration: locks between processes through a real shmqd -- hand-off
 * from one process to another, a holder SIGKILLed with the lock (the
 * daemon takes it back and the next holder is told), RLock recursion,
 * refusals, views and permissions, the generic async entry points, and a
 * waiter killed asleep.
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

#include "shm/layout.h"
#include "tests/helpers.h"
#include "tests/integration/daemon.h"

#define WAIT_MS 10000

static struct t_daemon d;

static void setup(void)
{
	t_daemon_start(&d, NULL, NULL);
}

TestSuite(lock, .init = setup, .fini = t_daemon_cleanup_all, .timeout = 60);

static struct shmq_lock *lock_new(struct shmq_client *c, const char *name, uint32_t flags,
				  uint32_t perm)
{
	struct shmq_lock_attr a = {.size = sizeof(a), .flags = flags, .perm = perm};
	struct shmq_lock *l;

	T_OK(shmq_lock_open(c, name, SHMQ_CREATE | SHMQ_EXCL, &a, &l));
	return l;
}

struct peer {
	const char *sock;
	const char *name;
	_Atomic int state; /* 1: holding (or asleep trying), set by the child */
	int result;
	uint64_t in_ns;	     /* when the child got the lock */
	_Atomic int counter; /* touched only under the lock */
};

/* Child: take the lock (sleeping at once), note when, give it back. */
static int peer_take(void *arg)
{
	struct peer *p = arg;
	struct shmq_client *c;
	struct shmq_lock *l;

	if (shmq_client_connect(p->sock, &c) || shmq_lock_open(c, p->name, 0, NULL, &l))
		return 1;
	shmq_lock_set_spin(l, 0);
	atomic_store(&p->state, 1);
	p->result = shmq_lock_acquire(l, shmq_deadline_after(UINT64_C(20) * 1000000000));
	if (p->result != 0 && p->result != -EOWNERDEAD)
		return 2;
	p->in_ns = t_now_ns();
	atomic_fetch_add(&p->counter, 1);
	if (p->result == -EOWNERDEAD && shmq_lock_consistent(l) != 0)
		return 3;
	return shmq_lock_release(l) == 0 && shmq_lock_close(l) == 0 ? 0 : 4;
}

/* Child: take the lock, say so, and wait to be killed holding it. */
static int peer_hold(void *arg)
{
	struct peer *p = arg;
	struct shmq_client *c;
	struct shmq_lock *l;

	if (shmq_client_connect(p->sock, &c) || shmq_lock_open(c, p->name, 0, NULL, &l))
		return 1;
	p->result = shmq_lock_acquire(l, SHMQ_FOREVER);
	atomic_store(&p->state, 1);
	for (;;)
		pause();
}

static void wait_state(struct peer *p)
{
	uint64_t deadline = t_now_ns() + UINT64_C(5) * 1000000000;

	while (!atomic_load(&p->state) && t_now_ns() < deadline)
		t_sleep_ms(1);
	cr_assert(atomic_load(&p->state), "the child never got there");
}

Test(lock, a_release_in_one_process_hands_the_lock_to_a_sleeper_in_another)
{
	struct peer *p = t_shared_alloc(sizeof(*p));
	struct shmq_client *c = t_connect(&d);
	struct shmq_lock *l = lock_new(c, "baton", 0, 0600);
	uint64_t released;
	pid_t pid;

	T_OK(shmq_lock_acquire(l, SHMQ_FOREVER));
	*p = (struct peer){.sock = d.sock, .name = "baton", .result = -1};
	pid = t_fork_child(peer_take, p);
	wait_state(p);
	t_sleep_ms(50); /* into FUTEX_WAIT */
	cr_assert(eq(int, atomic_load(&p->counter), 0), "the child took a held lock");
	released = t_now_ns();
	T_OK(shmq_lock_release(l));
	cr_assert(eq(int, t_wait_peer_ms(pid, WAIT_MS), 0), "child: %d", p->result);
	cr_assert(eq(int, p->result, 0));
	cr_assert(p->in_ns >= released);
	T_OK(shmq_lock_try_acquire(l)); /* the child gave it back */
	T_OK(shmq_lock_release(l));
	T_OK(shmq_lock_close(l));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(lock, a_holder_killed_holding_it_loses_it_and_the_next_holder_is_told)
{
	struct peer *p = t_shared_alloc(2 * sizeof(*p));
	struct shmq_client *c = t_connect(&d);
	struct shmq_lock *l = lock_new(c, "robust", 0, 0600);
	char log[16384];
	pid_t pid, waiter;

	p[0] = (struct peer){.sock = d.sock, .name = "robust", .result = -1};
	p[1] = (struct peer){.sock = d.sock, .name = "robust", .result = -1};
	pid = t_fork_child(peer_hold, &p[0]);
	wait_state(&p[0]);
	cr_assert(eq(int, p[0].result, 0));
	cr_assert(eq(int, shmq_lock_is_locked(l), 1));
	T_ERR(shmq_lock_try_acquire(l), -EAGAIN);
	T_ERR(shmq_lock_release(l), -EPERM);	 /* not ours */
	waiter = t_fork_child(peer_take, &p[1]); /* asleep on the doomed holder */
	wait_state(&p[1]);
	t_sleep_ms(50);
	kill(pid, SIGKILL);
	cr_assert(eq(int, t_wait_peer(pid), 128 + SIGKILL));
	/* the sleeper is woken by the daemon's repair, told, and makes it consistent */
	cr_assert(eq(int, t_wait_peer_ms(waiter, WAIT_MS), 0), "waiter: %d", p[1].result);
	cr_assert(eq(int, p[1].result, -EOWNERDEAD));
	T_OK(shmq_lock_acquire(l, t_deadline_ms(WAIT_MS)));
	T_OK(shmq_lock_release(l));
	t_daemon_read_log(&d, log, sizeof(log));
	cr_assert(strstr(log, "lock 'robust': pid") && strstr(log, "taken back"), "%s", log);
	T_OK(shmq_lock_close(l));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(lock, an_rlock_through_the_public_calls_and_the_refusals)
{
	struct shmq_lock_attr bad = {.size = sizeof(bad), .flags = 4};
	struct shmq_client *c = t_connect(&d);
	struct shmq_lock *r = lock_new(c, "rl", SHMQ_LOCK_ATTR_RECURSIVE, 0600);
	struct shmq_lock *l = lock_new(c, "pl", 0, 0600), *x = NULL;
	struct shmq_object_info o = {.size = sizeof(o)};

	T_OK(shmq_lock_acquire(r, SHMQ_FOREVER));
	T_OK(shmq_lock_acquire(r, SHMQ_FOREVER));
	T_OK(shmq_lock_try_acquire(r));
	cr_assert(eq(int, shmq_lock_is_mine(r), 1));
	T_ERR(shmq_lock_close(r), -EBUSY); /* held: closing would keep it held */
	for (int i = 0; i < 3; i++)
		T_OK(shmq_lock_release(r));
	cr_assert(eq(int, shmq_lock_is_locked(r), 0));
	T_ERR(shmq_lock_release(r), -EPERM);
	T_OK(shmq_lock_acquire(l, SHMQ_FOREVER));
	T_ERR(shmq_lock_acquire(l, SHMQ_FOREVER), -EDEADLK);
	T_ERR(shmq_lock_try_acquire(l), -EDEADLK);
	T_ERR(shmq_lock_consistent(l), -EINVAL);
	T_OK(shmq_lock_release(l));
	T_OK(shmq_object_stat(c, "rl", &o));
	cr_assert(eq(u32, o.kind, SHMQ_OBJECT_LOCK));
	cr_assert(eq(u32, o.lock_flags, SHMQ_LOCK_ATTR_RECURSIVE));
	T_ERR(shmq_lock_open(c, "bad", SHMQ_CREATE, &bad, &x), -EINVAL);
	T_ERR(shmq_lock_open(c, "rl", SHMQ_EXCL, NULL, &x), -EINVAL);
	T_ERR(shmq_lock_open(c, "no-such", 0, NULL, &x), -ENOENT);
	cr_assert(x == NULL);
	T_ERR(shmq_lock_acquire(NULL, SHMQ_FOREVER), -EINVAL);
	T_ERR(shmq_lock_release(NULL), -EINVAL);
	T_ERR(shmq_lock_is_locked(NULL), -EINVAL);
	T_OK(shmq_lock_close(NULL));
	T_OK(shmq_lock_close(r));
	T_OK(shmq_lock_close(l));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(lock, a_name_of_another_kind_is_not_a_lock_and_a_view_only_looks)
{
	struct shmq_event_attr ea = {.size = sizeof(ea)};
	struct shmq_client *c = t_connect(&d);
	struct shmq_lock *l = lock_new(c, "door", 0, 0644), *v, *x = NULL;
	struct shmq_event *e, *y = NULL;

	T_OK(shmq_event_open(c, "flag", SHMQ_CREATE, &ea, &e));
	T_ERR(shmq_lock_open(c, "flag", 0, NULL, &x), -EINVAL);
	T_ERR(shmq_event_open(c, "door", 0, NULL, &y), -EINVAL);
	cr_assert(x == NULL && y == NULL);
	T_OK(shmq_event_close(e));
	T_OK(shmq_lock_acquire(l, SHMQ_FOREVER));
	T_OK(shmq_lock_open(c, "door", SHMQ_VIEW, NULL, &v));
	cr_assert(eq(int, shmq_lock_is_locked(v), 1));
	T_ERR(shmq_lock_acquire(v, SHMQ_FOREVER), -EBADF);
	T_ERR(shmq_lock_try_acquire(v), -EBADF);
	T_ERR(shmq_lock_release(v), -EBADF);
	T_OK(shmq_lock_close(v));
	T_OK(shmq_lock_release(l));
	T_OK(shmq_lock_close(l));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

struct other {
	const char *sock;
	int open_rw, open_view, locked;
};

static int as_other(void *arg)
{
	struct other *o = arg;
	struct shmq_client *c;
	struct shmq_lock *l;

	if (shmq_client_connect(o->sock, &c))
		return 1;
	o->open_rw = shmq_lock_open(c, "mine", 0, NULL, &l);
	if (o->open_rw == 0)
		shmq_lock_close(l);
	o->open_view = shmq_lock_open(c, "mine", SHMQ_VIEW, NULL, &l);
	if (o->open_view == 0) {
		o->locked = shmq_lock_is_locked(l);
		shmq_lock_close(l);
	}
	shmq_client_close(c);
	return 0;
}

Test(lock, another_user_needs_write_to_take_it_and_read_to_view_it)
{
	struct other *o = t_shared_alloc(sizeof(*o));
	struct shmq_client *c = t_connect(&d);
	struct shmq_lock *l = lock_new(c, "mine", 0, 0604);

	T_OK(shmq_lock_acquire(l, SHMQ_FOREVER));
	o->sock = d.sock;
	cr_assert(eq(int,
		     t_wait_peer_ms(t_fork_as(T_UNPRIVILEGED_ID, T_UNPRIVILEGED_ID, as_other, o),
				    WAIT_MS),
		     0));
	cr_assert(eq(int, o->open_rw, -EACCES));
	cr_assert(eq(int, o->open_view, 0));
	cr_assert(eq(int, o->locked, 1));
	T_OK(shmq_lock_release(l));
	T_OK(shmq_lock_close(l));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

static int on_free(struct shmq_watch *w, int events, void *arg)
{
	int *seen = arg;

	(void)w;
	*seen = events;
	return -ECANCELED; /* once is enough */
}

/* Child: take the lock, hold it a moment, give it back. */
static int peer_blip(void *arg)
{
	struct peer *p = arg;
	struct shmq_client *c;
	struct shmq_lock *l;

	if (shmq_client_connect(p->sock, &c) || shmq_lock_open(c, p->name, 0, NULL, &l))
		return 1;
	if (shmq_lock_acquire(l, SHMQ_FOREVER) != 0)
		return 2;
	atomic_store(&p->state, 1);
	t_sleep_ms(50);
	return shmq_lock_release(l) == 0 ? 0 : 3;
}

Test(lock, the_poller_and_a_waiter_report_a_released_lock)
{
	struct peer *p = t_shared_alloc(sizeof(*p));
	struct shmq_client *c = t_connect(&d);
	struct shmq_lock *l = lock_new(c, "async", 0, 0600);
	struct shmq_waiter *w = NULL;
	struct shmq_poller *pl;
	struct shmq_watch *wt;
	int seen = 0;
	pid_t pid;

	T_ERR(shmq_waiter_new(shmq_lock_object(l), SHMQ_POLL_SEND, &w), -EINVAL);
	T_OK(shmq_waiter_new(shmq_lock_object(l), SHMQ_POLL_RECV, &w));
	cr_assert(eq(int, shmq_waiter_is_ready(w), 1)); /* free */
	T_ERR(shmq_lock_close(l), -EBUSY);
	T_OK(shmq_waiter_free(w));

	*p = (struct peer){.sock = d.sock, .name = "async"};
	pid = t_fork_child(peer_blip, p);
	wait_state(p);
	T_OK(shmq_poller_new(0, &pl));
	T_OK(shmq_poller_add(pl, shmq_lock_object(l), SHMQ_POLL_RECV, on_free, &seen, &wt));
	T_ERR(shmq_poller_run(pl), -ECANCELED);
	cr_assert(eq(int, seen, SHMQ_POLL_RECV));
	T_OK(shmq_lock_try_acquire(l));
	T_OK(shmq_lock_release(l));
	cr_assert(eq(int, t_wait_peer_ms(pid, WAIT_MS), 0));
	shmq_watch_free(wt);
	shmq_poller_free(pl);
	T_OK(shmq_lock_close(l));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(lock, a_waiter_killed_asleep_leaves_the_lock_working)
{
	struct peer *p = t_shared_alloc(2 * sizeof(*p));
	struct shmq_client *c = t_connect(&d);
	struct shmq_lock *l = lock_new(c, "dead", 0, 0600);
	pid_t pid;

	T_OK(shmq_lock_acquire(l, SHMQ_FOREVER));
	p[0] = (struct peer){.sock = d.sock, .name = "dead", .result = -1};
	pid = t_fork_child(peer_take, &p[0]);
	wait_state(&p[0]);
	t_sleep_ms(50);
	kill(pid, SIGKILL);
	cr_assert(eq(int, t_wait_peer(pid), 128 + SIGKILL));
	t_sleep_ms(50); /* the daemon's repair of the dead waiter */
	T_OK(shmq_lock_release(l));
	p[1] = (struct peer){.sock = d.sock, .name = "dead", .result = -1};
	cr_assert(eq(int, t_wait_peer_ms(t_fork_child(peer_take, &p[1]), WAIT_MS), 0), "%d",
		  p[1].result);
	cr_assert(eq(int, p[1].result, 0)); /* a dead waiter is not a dead holder */
	T_OK(shmq_lock_close(l));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}
