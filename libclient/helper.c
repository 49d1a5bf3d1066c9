/* SPDX-License-Identifier: MIT */
/*
 * Helper threads: the fallback for kernels and policies that refuse
 * IORING_OP_FUTEX_WAIT.
 *
 * DESIGN
 *
 * A waiter on the helper backend owns an eventfd; its io_uring request is a
 * POLL_ADD on that eventfd.  A helper thread sleeps in futex_waitv(2) on
 * the armed words of up to SLOTS_PER_THREAD waiters plus one control word
 * of its own, and writes 1 to a waiter's eventfd when that waiter's word
 * was woken or no longer holds its key.  A process that never falls back
 * never has one.
 *
 * Why no wake-up is lost.  The waiter arms (announce, barrier, re-check)
 * before it registers its word and key here, exactly as it would before an
 * io_uring FUTEX_WAIT; futex_waitv then compares every word with its key
 * under the kernel's bucket locks, as FUTEX_WAIT does.  Registering bumps
 * the control word and wakes the thread, so a thread asleep on an older set
 * returns (-EAGAIN or woken on the control word) and rebuilds its set
 * before it sleeps again.  A word that changed in between makes that
 * futex_waitv return -EAGAIN at once, and the scan after every return fires
 * each armed entry whose word differs from its key or which was the one
 * woken.  The eventfd is level-triggered: a write that lands before the
 * ring's POLL_ADD is issued makes the POLL_ADD complete at once.  Spurious
 * fires only cost the caller a re-check.
 *
 * Threads are started when every existing one is full and then kept until
 * the process exits; an empty one sleeps on its control word and costs
 * nothing.  Stopping them when their last entry left made every wait of a
 * one-future-at-a-time loop create and join a thread (tens of
 * microseconds), and it did worse: a process whose threads keep exiting
 * loses wake-ups of the asymmetric fence (shm/fence.h).  On the 6.18
 * kernel here, a stress test that joined a helper thread before each
 * publish lost one wake-up in every ~30,000 round trips, and none with real
 * fences (SHMQ_ASYM_FENCE=0) or with threads kept.  The probable cause:
 * exit_mm() clears the CPU's membarrier state, and switching to another
 * thread of the same mm does not restore it, so membarrier(GLOBAL_EXPEDITED)
 * skips that CPU while the process's next thread publishes there.
 *
 * Locking: `helpers_lock` guards the list of threads and their counts;
 * each thread's `lock` guards its entries.  Order: helpers_lock, then a
 * thread's lock.  Words are read only for armed entries and only under the
 * lock, so a disarmed entry's memory may be unmapped at once; the kernel
 * may still hold an older futex_waitv on it, which is harmless (a shared
 * futex key pins nothing) and which the next control bump replaces.  If
 * the mapping went away between building the set and the system call,
 * futex_waitv returns -EFAULT, and the thread simply rebuilds.
 *
 * A forked child gets no threads: fork() copies only the calling thread.
 * The atfork handler forgets the parent's threads in the child (their
 * memory stays allocated there, unused), so a child that waits
 * asynchronously on its own handles starts threads of its own.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "libclient/async.h"
#include "shm/atomic.h"
#include "shm/fence.h"
#include "shm/futex.h"

/* One futex_waitv entry is the thread's control word. */
#define SLOTS_PER_THREAD (SHMQ_FUTEX_WAITV_MAX - 1)

struct helper_thread;

struct shmq_helper_slot {
	struct helper_thread *t;
	_Atomic uint32_t *word; /* armed: the word to watch */
	uint32_t key;		/* armed: fire once *word != key */
	int efd;		/* written when the entry fires */
	bool used;
	bool armed;
	bool bounded; /* fire after a slice even if nothing moved */
};

struct helper_thread {
	pthread_t tid;
	pthread_mutex_t lock;
	_Atomic uint32_t ctl; /* bumped (then woken) whenever the set changes */
	unsigned int n_used;  /* under helpers_lock */
	struct helper_thread *next;
	struct shmq_helper_slot slots[SLOTS_PER_THREAD];
};

static pthread_mutex_t helpers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct helper_thread *helpers;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_prepare(void)
{
	pthread_mutex_lock(&helpers_lock);
}

static void on_fork_parent(void)
{
	pthread_mutex_unlock(&helpers_lock);
}

static void on_fork_child(void)
{
	/* The threads did not come along: forget them (see DESIGN). */
	helpers = NULL;
	pthread_mutex_unlock(&helpers_lock);
}

static void atfork_register(void)
{
	(void)pthread_atfork(on_fork_prepare, on_fork_parent, on_fork_child);
}

static void fire(struct shmq_helper_slot *s)
{
	uint64_t one = 1;

	s->armed = false;
	/* Cannot block (the counter would need 2^64 - 1 writes) nor fail on a live eventfd. */
	(void)!write(s->efd, &one, sizeof(one));
}

/* Wake the thread so that it rebuilds its set. */
static void poke(struct helper_thread *t)
{
	/* seq_cst: ordered after the caller's unlock like any other store; the kernel compares */
	fetch_add_seq_cst(&t->ctl, 1);
	(void)shmq__futex_wake(&t->ctl, 1);
}

static void *helper_main(void *arg)
{
	struct helper_thread *t = arg;
	struct shmq_futex_waiter v[SHMQ_FUTEX_WAITV_MAX];
	unsigned int map[SHMQ_FUTEX_WAITV_MAX];

	for (;;) {
		uint64_t deadline = SHMQ_DEADLINE_NEVER;
		bool bounded = false;
		unsigned int n = 1;
		int r;

		pthread_mutex_lock(&t->lock);
		/* seq_cst: pairs with poke(); a bump after this read makes the wait fail at once */
		v[0] = (struct shmq_futex_waiter){.word = &t->ctl,
						  .expected = load_seq_cst(&t->ctl)};
		for (unsigned int i = 0; i < SLOTS_PER_THREAD; i++) {
			struct shmq_helper_slot *s = &t->slots[i];

			if (!s->used || !s->armed)
				continue;
			v[n] = (struct shmq_futex_waiter){.word = s->word, .expected = s->key};
			map[n++] = i;
			bounded |= s->bounded;
		}
		pthread_mutex_unlock(&t->lock);

		if (bounded)
			deadline = shmq__deadline_after_ns(SHMQ_FENCE_FALLBACK_SLICE_NS);
		r = shmq__futex_waitv(v, n, deadline);

		pthread_mutex_lock(&t->lock);
		for (unsigned int k = 1; k < n; k++) {
			struct shmq_helper_slot *s = &t->slots[map[k]];

			if (!s->used || !s->armed)
				continue;
			/* The entry may have been re-armed since: then this is a spare fire. */
			if ((int)k == r || (r == -ETIMEDOUT && s->bounded) ||
			    load_acquire(s->word) != s->key) /* compared only; the kernel orders */
				fire(s);
		}
		pthread_mutex_unlock(&t->lock);
	}
	return NULL; /* not reached: the thread lives as long as the process */
}

static int thread_start(struct helper_thread **ret)
{
	struct helper_thread *t = calloc(1, sizeof(*t));
	sigset_t all, old;
	int r;

	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	/* The application's signals must go to its own threads, never to ours. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&t->tid, NULL, helper_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		pthread_mutex_destroy(&t->lock);
		free(t);
		return r == EAGAIN ? -ENOMEM : -r; /* -EAGAIN means "not ready" here */
	}
	pthread_detach(t->tid); /* never joined: it lives as long as the process */
	*ret = t;
	return 0;
}

int shmq__helper_attach(int efd, struct shmq_helper_slot **ret)
{
	struct helper_thread *t;
	int r = 0;

	pthread_once(&atfork_once, atfork_register);
	pthread_mutex_lock(&helpers_lock);
	for (t = helpers; t; t = t->next)
		if (t->n_used < SLOTS_PER_THREAD)
			break;
	if (!t) {
		r = thread_start(&t);
		if (r == 0) {
			t->next = helpers;
			helpers = t;
		}
	}
	if (r == 0) {
		pthread_mutex_lock(&t->lock);
		for (unsigned int i = 0; i < SLOTS_PER_THREAD; i++) {
			struct shmq_helper_slot *s = &t->slots[i];

			if (s->used)
				continue;
			*s = (struct shmq_helper_slot){.t = t, .efd = efd, .used = true};
			t->n_used++;
			*ret = s;
			break;
		}
		pthread_mutex_unlock(&t->lock);
	}
	pthread_mutex_unlock(&helpers_lock);
	return r;
}

void shmq__helper_arm(struct shmq_helper_slot *s, _Atomic uint32_t *word, uint32_t key,
		      bool bounded)
{
	struct helper_thread *t = s->t;

	pthread_mutex_lock(&t->lock);
	s->word = word;
	s->key = key;
	s->bounded = bounded;
	s->armed = true;
	pthread_mutex_unlock(&t->lock);
	poke(t);
}

void shmq__helper_disarm(struct shmq_helper_slot *s)
{
	struct helper_thread *t = s->t;

	/* No poke: the thread may sleep on the old word a while; it never reads it again. */
	pthread_mutex_lock(&t->lock);
	s->armed = false;
	pthread_mutex_unlock(&t->lock);
}

void shmq__helper_detach(struct shmq_helper_slot *s)
{
	struct helper_thread *t = s->t;

	/* The thread stays, asleep on its control word: see DESIGN for why. */
	pthread_mutex_lock(&helpers_lock);
	pthread_mutex_lock(&t->lock);
	s->used = false;
	s->armed = false;
	t->n_used--;
	pthread_mutex_unlock(&t->lock);
	pthread_mutex_unlock(&helpers_lock);
}
