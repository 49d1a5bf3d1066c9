/* SPDX-License-Identifier: MIT */
/*
 * Kill storm for shm/lock.c across processes: workers take the lock and
 * change a two-word ledger under it, while this process -- standing in for
 * the daemon -- SIGKILLs holders in the middle of their critical section
 * (and sleepers in the middle of their sleep), repairs each dead record as
 * shmqd does, and starts a replacement.
 *
 * Mutual exclusion is judged independently of the lock: the ledger has an
 * `inside` word each holder sets to its pid and clears, and two counters a
 * and b it bumps one after the other.  A holder that finds inside != 0 or
 * a != b must have been told -EOWNERDEAD (the previous holder died there),
 * and then repairs the ledger and calls consistent(); found without that
 * warning, it is a failure of exclusion.  No wedge: every acquire has a
 * deadline, and one that passes fails the run.
 *
 * Every holder's death is answered by one -EOWNERDEAD to the next holder.
 * That holder counts it in `told` before it sets `inside`; if it is killed
 * between the two (only a random kill can hit it there, never one aimed
 * at `inside`), its own death is a holder's death too and the warning it
 * took goes uncounted.  So told >= holder kills - such edge kills - 1
 * (the last warning may still be pending when the storm stops).
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/kind.h"
#include "shm/lock.h"
#include "tests/helpers.h"

#define STRESS_SECONDS_DEFAULT 30
#define N_WORKERS	       3
#define WAIT_TIMEOUT_MS	       5000 /* an acquire this long is a wedge */
#define HOLDER_KILLS_DEFAULT   1000
#define RUN_CAP_SECONDS	       120

TestSuite(stress_lock, .timeout = 240);

struct ledger {
	_Atomic int32_t inside; /* the holder's pid while it is in the critical section */
	_Atomic uint64_t a, b;	/* a then b, one each per critical section */
	_Atomic uint64_t told;	/* -EOWNERDEAD seen */
	_Atomic uint32_t violations;
	_Atomic uint32_t wedged;
};

static struct t_seg seg;
static struct ledger *lg;

static int worker(void *arg)
{
	uint32_t idx = (uint32_t)(uintptr_t)arg;
	int32_t me = (int32_t)getpid();
	struct shmq_lock lk;

	if (shmq__lock_attach(&lk, &seg.seg, idx) < 0)
		return 1;
	lk.spin_ns = (idx & 1) ? 0 : 2000; /* some sleep at once, some spin first */
	for (;;) {
		int r = shmq__lock_acquire(&lk, t_deadline_ms(WAIT_TIMEOUT_MS));

		if (r == -EOWNERDEAD) {
			fetch_add_relaxed(&lg->told, 1);
			store_relaxed(&lg->inside, 0); /* the dead holder's half-done work */
			store_relaxed(&lg->b, load_relaxed(&lg->a));
			if (shmq__lock_consistent(&lk) != 0)
				fetch_add_relaxed(&lg->violations, 1);
		} else if (r != 0) {
			fetch_add_relaxed(&lg->wedged, 1);
			return 2;
		}
		if (load_relaxed(&lg->inside) != 0 || load_relaxed(&lg->a) != load_relaxed(&lg->b))
			fetch_add_relaxed(&lg->violations, 1);
		store_relaxed(&lg->inside, me);
		store_relaxed(&lg->a, load_relaxed(&lg->a) + 1);
		for (int i = 0; i < 50; i++)
			cpu_relax(); /* a window for the killer */
		store_relaxed(&lg->b, load_relaxed(&lg->b) + 1);
		store_relaxed(&lg->inside, 0);
		if (shmq__lock_release(&lk) != 0)
			fetch_add_relaxed(&lg->violations, 1);
	}
}

static pid_t spawn(uint32_t *idx)
{
	cr_assert(eq(int, shmq__session_claim(&seg.seg, SHMQ_ROLE_USER, 1, 0, idx), 0));
	return t_fork_peer(worker, (void *)(uintptr_t)*idx);
}

Test(stress_lock, holders_killed_in_their_critical_section_never_break_exclusion)
{
	uint64_t seconds = t_stress_seconds(STRESS_SECONDS_DEFAULT);
	uint64_t end = shmq__deadline_after_ns(seconds * UINT64_C(1000000000));
	uint64_t cap = shmq__deadline_after_ns(RUN_CAP_SECONDS * UINT64_C(1000000000));
	const char *env = getenv("SHMQ_LOCK_KILLS");
	uint64_t want = env ? strtoull(env, NULL, 10) : HOLDER_KILLS_DEFAULT;
	uint64_t rng = t_seed(), holder_kills = 0, edge_kills = 0, sleeper_kills = 0, kills = 0;
	pid_t pid[N_WORKERS];
	uint32_t idx[N_WORKERS];
	struct shmq_lock check;

	t_seg_new_lock(&seg, 0);
	lg = mmap(NULL, sizeof(*lg), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert(lg != MAP_FAILED);
	for (int i = 0; i < N_WORKERS; i++)
		pid[i] = spawn(&idx[i]);
	while ((holder_kills < want || shmq__now_ns() < end) && shmq__now_ns() < cap &&
	       !load_relaxed(&lg->wedged) && !load_relaxed(&lg->violations)) {
		int32_t holder = load_relaxed(&lg->inside);
		int w = (int)(t_rand(&rng) % N_WORKERS);
		struct shmq_kind_repair rep = {0};
		bool in_section;

		/* mostly a holder inside its critical section; now and then anyone */
		if (t_rand(&rng) % 4) {
			if (!holder)
				continue;
			for (w = 0; w < N_WORKERS && pid[w] != holder; w++)
				;
			if (w == N_WORKERS)
				continue;
		}
		in_section = holder != 0 && pid[w] == holder;
		kill(pid[w], SIGKILL);
		cr_assert(eq(int, t_wait_peer(pid[w]), 128 + SIGKILL), "worker %d", w);
		kills++;
		/* the daemon's part: repair the dead record, then free it */
		cr_assert(ge(int, shmq__kind_lock.repair(&seg.seg, idx[w], &rep), 0));
		if (rep.recovered) {
			holder_kills++;
			edge_kills += !in_section;
		} else if (rep.waiters)
			sleeper_kills++;
		shmq__session_release(&seg.seg, idx[w]);
		pid[w] = spawn(&idx[w]);
	}
	for (int i = 0; i < N_WORKERS; i++) {
		kill(pid[i], SIGKILL);
		t_wait_peer(pid[i]);
	}
	cr_assert(eq(u32, load_relaxed(&lg->wedged), 0), "an acquire waited %d ms",
		  WAIT_TIMEOUT_MS);
	cr_assert(eq(u32, load_relaxed(&lg->violations), 0), "mutual exclusion broken");
	cr_assert(ge(u64, holder_kills, want), "only %" PRIu64 " holders killed", holder_kills);
	cr_assert(ge(u64, load_relaxed(&lg->told) + edge_kills + 1, holder_kills),
		  "%" PRIu64 " holders died (%" PRIu64 " between acquire and section), %" PRIu64
		  " -EOWNERDEAD seen",
		  holder_kills, edge_kills, (uint64_t)load_relaxed(&lg->told));
	/* what the storm leaves is a lock that works */
	for (int i = 0; i < N_WORKERS; i++) {
		struct shmq_kind_repair rep = {0};

		shmq__kind_lock.repair(&seg.seg, idx[i], &rep);
		shmq__session_release(&seg.seg, idx[i]);
	}
	cr_assert(eq(int, shmq__session_claim(&seg.seg, SHMQ_ROLE_USER, 1, 0, &idx[0]), 0));
	cr_assert(eq(int, shmq__lock_attach(&check, &seg.seg, idx[0]), 0));
	cr_assert(ge(int, shmq__lock_acquire(&check, t_deadline_ms(WAIT_TIMEOUT_MS)), -EOWNERDEAD));
	cr_assert(shmq__lock_is_mine(&check));
	printf("lock kill storm: %" PRIu64 " kills (%" PRIu64 " holders, %" PRIu64
	       " of them before their section, %" PRIu64 " sleepers), %" PRIu64
	       " critical sections, exclusion held\n",
	       kills, holder_kills, edge_kills, sleeper_kills, (uint64_t)load_relaxed(&lg->a));
	t_seg_free(&seg);
}
