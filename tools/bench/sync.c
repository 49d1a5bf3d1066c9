/* SPDX-License-Identifier: MIT */
/* shmq-bench's sync group: shmq locks against robust pthread mutexes.  See sync.h. */
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
#include "tools/bench/sync.h"

#define DEADLINE_NS (UINT64_C(30) * 1000000000) /* any one sample; longer is a failure */

const char *const bench_sync_names[BENCH_SYNC_COUNT] = {
	[BENCH_SYNC_LOCK_UNCONTENDED] = "lock-uncontended",
	[BENCH_SYNC_LOCK_CONTENDED] = "lock-contended",
};

const char *const bench_sync_about[BENCH_SYNC_COUNT] = {
	[BENCH_SYNC_LOCK_UNCONTENDED] = "acquire + release, one process",
	[BENCH_SYNC_LOCK_CONTENDED] = "acquire + bump + release, two processes on two CPUs",
};

/* The page both processes share: the pthread mutex, the counter, the start line. */
struct page {
	pthread_mutex_t mutex;
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
};

static int fail(char *what, size_t size, int r, const char *step)
{
	snprintf(what, size, "%s: %s", step, strerror(r < 0 ? -r : EPROTO));
	return r < 0 ? r : -EPROTO;
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	(void)sched_setaffinity(0, sizeof(set), &set); /* best effort, as the other groups */
}

static int lk_open(struct lk *k, enum bench_sync_impl impl, struct page *pg, const char *socket,
		   const char *name)
{
	int r;

	*k = (struct lk){.impl = impl, .pg = pg};
	if (impl == BENCH_SYNC_PTHREAD)
		return 0;
	r = shmq_client_connect(socket, &k->c);
	if (r == 0)
		r = shmq_lock_open(k->c, name, 0, NULL, &k->l);
	return r;
}

static void lk_close(struct lk *k)
{
	if (k->l)
		shmq_lock_close(k->l);
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

static int page_new(struct page **ret)
{
	pthread_mutexattr_t a;
	struct page *pg = mmap(NULL, sizeof(*pg), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			       -1, 0);
	int r;

	if (pg == MAP_FAILED)
		return -errno;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	r = -pthread_mutex_init(&pg->mutex, &a);
	pthread_mutexattr_destroy(&a);
	if (r < 0) {
		munmap(pg, sizeof(*pg));
		return r;
	}
	*ret = pg;
	return 0;
}

static void page_free(struct page *pg)
{
	pthread_mutex_destroy(&pg->mutex);
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

static void contender(enum bench_sync_impl impl, struct page *pg, const char *socket,
		      const char *name, uint32_t iters, int cpu, int32_t me)
{
	struct lk k;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	pin(cpu);
	if (lk_open(&k, impl, pg, socket, name) < 0) {
		atomic_store(&pg->failed, 1);
		_exit(1);
	}
	atomic_fetch_add(&pg->ready, 1);
	while (!atomic_load_explicit(&pg->go, memory_order_acquire))
		if (atomic_load(&pg->failed))
			_exit(1);
	for (uint32_t i = 0; i < iters; i++) {
		if (lk_acquire(&k) < 0) {
			atomic_store(&pg->failed, 1);
			_exit(1);
		}
		pg->counter++;
		pg->handoffs += pg->last != me;
		pg->last = me;
		lk_release(&k);
	}
	lk_close(&k);
	_exit(0);
}

static int contended(enum bench_sync_impl impl, struct page *pg, const char *socket,
		     const char *name, uint32_t iters, const int cpus[2],
		     struct bench_sync_sample *ret)
{
	uint64_t t0, give_up = shmq__now_ns() + DEADLINE_NS;
	pid_t pid[2];
	int bad = 0;

	for (int i = 0; i < 2; i++) {
		pid[i] = fork();
		if (pid[i] < 0)
			return -errno;
		if (pid[i] == 0)
			contender(impl, pg, socket, name, iters, cpus[i], i + 1);
	}
	while (atomic_load(&pg->ready) < 2 && !atomic_load(&pg->failed) &&
	       shmq__now_ns() < give_up)
		usleep(100);
	t0 = shmq__now_ns();
	atomic_store_explicit(&pg->go, 1, memory_order_release);
	for (int i = 0; i < 2; i++) {
		int st;

		while (waitpid(pid[i], &st, 0) < 0 && errno == EINTR)
			;
		bad |= !WIFEXITED(st) || WEXITSTATUS(st);
	}
	if (bad || pg->counter != (uint64_t)iters * 2)
		return -EPROTO;
	ret->ns = (double)(shmq__now_ns() - t0) / ((double)iters * 2);
	ret->handoff = (double)pg->handoffs / ((double)iters * 2);
	return 0;
}

int bench_sync_sample(enum bench_sync_case c, enum bench_sync_impl impl, const char *socket,
		      uint32_t iters, const int cpus[2], struct bench_sync_sample *ret, char *what,
		      size_t what_size)
{
	char name[64];
	struct page *pg = NULL;
	struct lk k = {0};
	struct shmq_lock *owner = NULL;
	int r;

	*ret = (struct bench_sync_sample){.ns = NAN, .handoff = NAN};
	r = page_new(&pg);
	if (r < 0)
		return fail(what, what_size, r, "shared page");
	snprintf(name, sizeof(name), "bench-lock-%d", (int)getpid());
	if (impl == BENCH_SYNC_SHMQ) {
		/* created by a connection of its own, which unlinks it at the end */
		r = shmq_client_connect(socket, &k.c);
		if (r == 0)
			r = shmq_lock_open(k.c, name, SHMQ_CREATE | SHMQ_EXCL, NULL, &owner);
		if (r == 0)
			shmq_lock_close(owner);
		if (r < 0) {
			shmq_client_close(k.c);
			page_free(pg);
			return fail(what, what_size, r, "creating the lock");
		}
	}
	if (c == BENCH_SYNC_LOCK_UNCONTENDED) {
		struct lk u;

		pin(cpus[0]);
		r = lk_open(&u, impl, pg, socket, name);
		if (r == 0)
			r = uncontended(&u, iters, &ret->ns);
		lk_close(&u);
	} else {
		r = contended(impl, pg, socket, name, iters, cpus, ret);
	}
	if (k.c) {
		(void)shmq_unlink(k.c, name);
		shmq_client_close(k.c);
	}
	page_free(pg);
	return r < 0 ? fail(what, what_size, r, bench_sync_names[c]) : 0;
}
