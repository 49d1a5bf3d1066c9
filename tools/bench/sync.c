/* SPDX-License-Identifier: MIT */
/* shmq-bench's sync group: shmq's sync kinds against their pthread counterparts.  See sync.h. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "shm/futex.h"
#include "tools/bench/cpu.h"
#include "tools/bench/sync.h"

#define DEADLINE_NS (UINT64_C(30) * 1000000000) /* any one sample; longer is a failure */

const char *const bench_sync_names[BENCH_SYNC_COUNT] = {
	[BENCH_SYNC_LOCK_UNCONTENDED] = "lock-uncontended",
	[BENCH_SYNC_LOCK_CONTENDED] = "lock-contended",
	[BENCH_SYNC_EVENT_WAKE] = "event-wake",
	[BENCH_SYNC_COND_HANDOFF] = "cond-handoff",
	[BENCH_SYNC_BARRIER_CYCLE] = "barrier-cycle",
};

const char *const bench_sync_about[BENCH_SYNC_COUNT] = {
	[BENCH_SYNC_LOCK_UNCONTENDED] = "acquire + release, one process",
	[BENCH_SYNC_LOCK_CONTENDED] = "acquire + bump + release, two processes on two CPUs",
	[BENCH_SYNC_EVENT_WAKE] = "set -> the other process wakes, clears, sets back (per wake)",
	[BENCH_SYNC_COND_HANDOFF] = "wait for my turn, pass it, notify (per turn)",
	[BENCH_SYNC_BARRIER_CYCLE] = "two processes, one cycle",
};

/* Python's Event from pthread parts: a flag under a mutex, and a condition for it. */
struct pevent {
	pthread_mutex_t m;
	pthread_cond_t cv;
	int flag;
};

/* The page both processes share: the pthread objects, the counter, the start line. */
struct page {
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	pthread_barrier_t barrier;
	struct pevent ev[2];
	int32_t turn;		/* cond-handoff: whose turn, under the mutex */
	_Atomic uint32_t ready; /* children at the start line */
	_Atomic uint32_t go;
	_Atomic uint32_t failed;
	uint64_t counter; /* under the lock */
	int32_t last;	  /* under the lock: who bumped it last */
	uint64_t handoffs;
};

/* One implementation's lock, opened in the process that uses it. */
struct lk {
	enum bench_sync_impl impl;
	struct page *pg;
	struct shmq_client *c;
	struct shmq_lock *l;
	struct shmq_cond *cv;
	struct shmq_event *ev[2];
	struct shmq_barrier *b;
};

/* The shmq objects a case uses, by name stem (created by bench_sync_sample()). */
#define NAME_LOCK    "bench-lock-%d"
#define NAME_COND    "bench-cond-%d"
#define NAME_EVENT   "bench-event%d-%d"
#define NAME_BARRIER "bench-barrier-%d"

static int fail(char *what, size_t size, int r, const char *step)
{
	snprintf(what, size, "%s: %s", step, strerror(r < 0 ? -r : EPROTO));
	return r < 0 ? r : -EPROTO;
}

/* Open, in the calling process, the shmq objects case @c uses (created by the parent). */
static int lk_open(struct lk *k, enum bench_sync_case c, enum bench_sync_impl impl, struct page *pg,
		   const char *socket, pid_t owner)
{
	char name[64];
	int r;

	*k = (struct lk){.impl = impl, .pg = pg};
	if (impl == BENCH_SYNC_PTHREAD)
		return 0;
	r = shmq_client_connect(socket, &k->c);
	if (r < 0)
		return r;
	switch (c) {
	case BENCH_SYNC_COND_HANDOFF:
	case BENCH_SYNC_LOCK_UNCONTENDED:
	case BENCH_SYNC_LOCK_CONTENDED:
		snprintf(name, sizeof(name), NAME_LOCK, (int)owner);
		r = shmq_lock_open(k->c, name, 0, NULL, &k->l);
		if (r == 0 && c == BENCH_SYNC_COND_HANDOFF) {
			snprintf(name, sizeof(name), NAME_COND, (int)owner);
			r = shmq_cond_open(k->c, name, 0, k->l, NULL, &k->cv);
		}
		return r;
	case BENCH_SYNC_EVENT_WAKE:
		for (int i = 0; i < 2 && r == 0; i++) {
			snprintf(name, sizeof(name), NAME_EVENT, i, (int)owner);
			r = shmq_event_open(k->c, name, 0, NULL, &k->ev[i]);
		}
		return r;
	case BENCH_SYNC_BARRIER_CYCLE:
		snprintf(name, sizeof(name), NAME_BARRIER, (int)owner);
		return shmq_barrier_open(k->c, name, 0, NULL, &k->b);
	case BENCH_SYNC_COUNT:
		break;
	}
	return -EINVAL;
}

static void lk_close(struct lk *k)
{
	shmq_cond_close(k->cv);
	shmq_lock_close(k->l);
	for (int i = 0; i < 2; i++)
		shmq_event_close(k->ev[i]);
	shmq_barrier_close(k->b);
	if (k->c)
		shmq_client_close(k->c);
}

static inline int lk_acquire(struct lk *k)
{
	if (k->impl == BENCH_SYNC_SHMQ)
		return shmq_lock_acquire(k->l, SHMQ_FOREVER);
	return -pthread_mutex_lock(&k->pg->mutex);
}

static inline int lk_release(struct lk *k)
{
	if (k->impl == BENCH_SYNC_SHMQ)
		return shmq_lock_release(k->l);
	return -pthread_mutex_unlock(&k->pg->mutex);
}

static int pev_set(struct pevent *e)
{
	int r = -pthread_mutex_lock(&e->m);

	if (r < 0)
		return r;
	e->flag = 1;
	pthread_cond_broadcast(&e->cv);
	return -pthread_mutex_unlock(&e->m);
}

static int pev_wait_clear(struct pevent *e)
{
	int r = -pthread_mutex_lock(&e->m);

	while (r == 0 && !e->flag)
		r = -pthread_cond_wait(&e->cv, &e->m);
	e->flag = 0;
	return r < 0 ? r : -pthread_mutex_unlock(&e->m);
}

/* Event ping-pong: party 1 sets ev[0] and waits for ev[1]; party 2 the other way round. */
static int event_round(struct lk *k, int32_t me)
{
	int set = me == 1 ? 0 : 1, wait = 1 - set, r;

	if (k->impl == BENCH_SYNC_PTHREAD) {
		if (me == 1 && (r = pev_set(&k->pg->ev[set])) < 0)
			return r;
		r = pev_wait_clear(&k->pg->ev[wait]);
		if (r == 0 && me == 2)
			r = pev_set(&k->pg->ev[set]);
		return r;
	}
	if (me == 1 && (r = shmq_event_set(k->ev[set])) < 0)
		return r;
	r = shmq_event_wait(k->ev[wait], SHMQ_FOREVER);
	if (r == 0)
		r = shmq_event_clear(k->ev[wait]) < 0 ? -EPROTO : 0;
	if (r == 0 && me == 2)
		r = shmq_event_set(k->ev[set]) < 0 ? -EPROTO : 0;
	return r;
}

/* One turn: wait until it is mine, give it to the other, notify. */
static int cond_turn(struct lk *k, int32_t me)
{
	struct page *pg = k->pg;
	int r = lk_acquire(k);

	while (r == 0 && pg->turn != me)
		r = k->impl == BENCH_SYNC_SHMQ ? shmq_cond_wait(k->cv, SHMQ_FOREVER)
					       : -pthread_cond_wait(&pg->cond, &pg->mutex);
	if (r < 0)
		return r;
	pg->turn = 3 - me;
	pg->counter++;
	r = k->impl == BENCH_SYNC_SHMQ ? (shmq_cond_notify(k->cv, 1) < 0 ? -EPROTO : 0)
				       : -pthread_cond_signal(&pg->cond);
	return r < 0 ? r : lk_release(k);
}

static int barrier_cycle(struct lk *k)
{
	int r;

	if (k->impl == BENCH_SYNC_SHMQ)
		return shmq_barrier_wait(k->b, SHMQ_FOREVER) < 0 ? -EPROTO : 0;
	r = pthread_barrier_wait(&k->pg->barrier);
	return r == 0 || r == PTHREAD_BARRIER_SERIAL_THREAD ? 0 : -r;
}

static int page_new(struct page **ret)
{
	pthread_mutexattr_t ma;
	pthread_condattr_t ca;
	pthread_barrierattr_t ba;
	struct page *pg =
		mmap(NULL, sizeof(*pg), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int r;

	if (pg == MAP_FAILED)
		return -errno;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	pthread_condattr_init(&ca);
	pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
	pthread_barrierattr_init(&ba);
	pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED);
	r = -pthread_mutex_init(&pg->mutex, &ma);
	if (r == 0)
		r = -pthread_cond_init(&pg->cond, &ca);
	if (r == 0)
		r = -pthread_barrier_init(&pg->barrier, &ba, 2);
	for (int i = 0; i < 2 && r == 0; i++) {
		r = -pthread_mutex_init(&pg->ev[i].m, &ma);
		if (r == 0)
			r = -pthread_cond_init(&pg->ev[i].cv, &ca);
	}
	pthread_mutexattr_destroy(&ma);
	pthread_condattr_destroy(&ca);
	pthread_barrierattr_destroy(&ba);
	if (r < 0) {
		munmap(pg, sizeof(*pg));
		return r;
	}
	pg->turn = 1;
	*ret = pg;
	return 0;
}

static void page_free(struct page *pg)
{
	pthread_mutex_destroy(&pg->mutex);
	pthread_cond_destroy(&pg->cond);
	pthread_barrier_destroy(&pg->barrier);
	for (int i = 0; i < 2; i++) {
		pthread_mutex_destroy(&pg->ev[i].m);
		pthread_cond_destroy(&pg->ev[i].cv);
	}
	munmap(pg, sizeof(*pg));
}

static int uncontended(struct lk *k, uint32_t iters, double *ret_ns)
{
	uint64_t t0;

	for (uint32_t i = 0; i < iters / 10 + 1; i++) /* warm: the lines, the branch predictors */
		if (lk_acquire(k) < 0 || lk_release(k) < 0)
			return -EPROTO;
	t0 = shmq__now_ns();
	for (uint32_t i = 0; i < iters; i++) {
		lk_acquire(k);
		lk_release(k);
	}
	*ret_ns = (double)(shmq__now_ns() - t0) / iters;
	return 0;
}

/* One of the two processes of a two-process case: @iters steps, then exit. */
static void party(enum bench_sync_case c, enum bench_sync_impl impl, struct page *pg,
		  const char *socket, pid_t owner, uint32_t iters, int cpu, int32_t me)
{
	struct lk k;
	int r = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	bench_pin(cpu);
	if (lk_open(&k, c, impl, pg, socket, owner) < 0) {
		atomic_store(&pg->failed, 1);
		_exit(1);
	}
	atomic_fetch_add(&pg->ready, 1);
	while (!atomic_load_explicit(&pg->go, memory_order_acquire))
		if (atomic_load(&pg->failed))
			_exit(1);
	for (uint32_t i = 0; i < iters && r == 0; i++) {
		switch (c) {
		case BENCH_SYNC_LOCK_CONTENDED:
			r = lk_acquire(&k);
			if (r < 0)
				break;
			pg->counter++;
			pg->handoffs += pg->last != me;
			pg->last = me;
			r = lk_release(&k);
			break;
		case BENCH_SYNC_EVENT_WAKE:
			r = event_round(&k, me);
			if (me == 1)
				pg->counter += 2; /* two wakes per round */
			break;
		case BENCH_SYNC_COND_HANDOFF:
			r = cond_turn(&k, me);
			break;
		case BENCH_SYNC_BARRIER_CYCLE:
			r = barrier_cycle(&k);
			if (me == 1)
				pg->counter++;
			break;
		default:
			r = -EINVAL;
		}
	}
	if (r < 0) {
		atomic_store(&pg->failed, 1);
		_exit(1);
	}
	lk_close(&k);
	_exit(0);
}

/* Operations a two-process sample of @c counts, for @iters steps per process. */
static uint64_t ops_of(enum bench_sync_case c, uint32_t iters)
{
	return c == BENCH_SYNC_BARRIER_CYCLE ? iters : (uint64_t)iters * 2;
}

static int pair(enum bench_sync_case c, enum bench_sync_impl impl, struct page *pg,
		const char *socket, uint32_t iters, const int cpus[2],
		struct bench_sync_sample *ret)
{
	uint64_t t0, give_up = shmq__now_ns() + DEADLINE_NS;
	pid_t owner = getpid(), pid[2];
	int bad = 0;

	for (int i = 0; i < 2; i++) {
		pid[i] = fork();
		if (pid[i] < 0)
			return -errno;
		if (pid[i] == 0)
			party(c, impl, pg, socket, owner, iters, cpus[i], i + 1);
	}
	while (atomic_load(&pg->ready) < 2 && !atomic_load(&pg->failed) && shmq__now_ns() < give_up)
		usleep(100);
	t0 = shmq__now_ns();
	atomic_store_explicit(&pg->go, 1, memory_order_release);
	for (int i = 0; i < 2; i++) {
		int st;

		while (waitpid(pid[i], &st, 0) < 0 && errno == EINTR)
			;
		bad |= !WIFEXITED(st) || WEXITSTATUS(st);
	}
	if (bad || pg->counter != ops_of(c, iters))
		return -EPROTO;
	ret->ns = (double)(shmq__now_ns() - t0) / (double)ops_of(c, iters);
	if (c == BENCH_SYNC_LOCK_CONTENDED)
		ret->handoff = (double)pg->handoffs / (double)ops_of(c, iters);
	return 0;
}

/* Create the shmq objects of case @c (with a connection of its own, which unlinks them). */
static int create_objects(struct shmq_client *c, enum bench_sync_case sc, bool unlink_them)
{
	struct shmq_barrier_attr ba = {.size = sizeof(ba), .parties = 2};
	struct shmq_lock *l = NULL;
	char name[64];
	int r = 0;
	pid_t me = getpid();

	if (sc == BENCH_SYNC_EVENT_WAKE) {
		for (int i = 0; i < 2 && r == 0; i++) {
			struct shmq_event *e;

			snprintf(name, sizeof(name), NAME_EVENT, i, (int)me);
			r = unlink_them
				    ? shmq_unlink(c, name)
				    : shmq_event_open(c, name, SHMQ_CREATE | SHMQ_EXCL, NULL, &e);
			if (r == 0 && !unlink_them)
				shmq_event_close(e);
		}
		return r;
	}
	if (sc == BENCH_SYNC_BARRIER_CYCLE) {
		struct shmq_barrier *b;

		snprintf(name, sizeof(name), NAME_BARRIER, (int)me);
		if (unlink_them)
			return shmq_unlink(c, name);
		r = shmq_barrier_open(c, name, SHMQ_CREATE | SHMQ_EXCL, &ba, &b);
		if (r == 0)
			shmq_barrier_close(b);
		return r;
	}
	snprintf(name, sizeof(name), NAME_LOCK, (int)me);
	if (unlink_them) {
		r = shmq_unlink(c, name);
	} else {
		r = shmq_lock_open(c, name, SHMQ_CREATE | SHMQ_EXCL, NULL, &l);
	}
	if (sc == BENCH_SYNC_COND_HANDOFF && r == 0) {
		struct shmq_cond *cv;

		snprintf(name, sizeof(name), NAME_COND, (int)me);
		if (unlink_them) {
			r = shmq_unlink(c, name);
		} else {
			r = shmq_cond_open(c, name, SHMQ_CREATE | SHMQ_EXCL, l, NULL, &cv);
			if (r == 0)
				shmq_cond_close(cv);
		}
	}
	shmq_lock_close(l);
	return r;
}

int bench_sync_sample(enum bench_sync_case c, enum bench_sync_impl impl, const char *socket,
		      uint32_t iters, const int cpus[2], struct bench_sync_sample *ret, char *what,
		      size_t what_size)
{
	struct shmq_client *owner = NULL;
	struct page *pg = NULL;
	int r;

	*ret = (struct bench_sync_sample){.ns = NAN, .handoff = NAN};
	if ((unsigned int)c >= BENCH_SYNC_COUNT)
		return fail(what, what_size, -EINVAL, "case");
	r = page_new(&pg);
	if (r < 0)
		return fail(what, what_size, r, "shared page");
	if (impl == BENCH_SYNC_SHMQ) {
		r = shmq_client_connect(socket, &owner);
		if (r == 0)
			r = create_objects(owner, c, false);
		if (r < 0) {
			shmq_client_close(owner);
			page_free(pg);
			return fail(what, what_size, r, "creating the objects");
		}
	}
	if (c == BENCH_SYNC_LOCK_UNCONTENDED) {
		struct lk u;

		bench_pin(cpus[0]);
		r = lk_open(&u, c, impl, pg, socket, getpid());
		if (r == 0)
			r = uncontended(&u, iters, &ret->ns);
		lk_close(&u);
	} else {
		r = pair(c, impl, pg, socket, iters, cpus, ret);
	}
	if (owner) {
		(void)create_objects(owner, c, true);
		shmq_client_close(owner);
	}
	page_free(pg);
	return r < 0 ? fail(what, what_size, r, bench_sync_names[c]) : 0;
}
