/* SPDX-License-Identifier: MIT */
/*
 * Kill storm for shm/barrier.c across processes: parties cycle through the
 * barrier while this process -- standing in for the daemon -- SIGKILLs
 * one at random (mostly while it waits), repairs the dead record as shmqd
 * does (which breaks the barrier), starts a replacement, and resets the
 * barrier.  Survivors see -EPIPE, wait for the reset, and carry on.
 *
 * No wedge: every wait has a deadline, and one that passes fails the run;
 * a party that sees an index out of range fails it too.  Between kills
 * the parties keep completing cycles, which the run counts.
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
#include "shm/barrier.h"
#include "shm/futex.h"
#include "shm/kind.h"
#include "tests/helpers.h"

#define STRESS_SECONDS_DEFAULT 30
#define N_PARTIES	       3
/*
 * A wait this long is a wedge.  Under a sanitizer on two loaded CPUs a
 * party can be starved for seconds (seen under TSan with other tests
 * running), hence the slowdown.  A real wedge waits forever.
 */
#define WAIT_TIMEOUT_MS (5000 * T_SANITIZER_SLOWDOWN)
#define KILLS_DEFAULT	1000
#define RUN_CAP_SECONDS 120

TestSuite(stress_barrier, .timeout = 240);

struct ledger {
	_Atomic uint64_t passed; /* waits that returned an index */
	_Atomic uint64_t broken; /* waits that returned -EPIPE */
	_Atomic uint32_t wedged, bad_index, errors;
};

static struct t_seg seg;
static struct ledger *lg;

static int party(void *arg)
{
	uint32_t idx = (uint32_t)(uintptr_t)arg;
	struct shmq_barrier b;

	if (shmq__barrier_attach(&b, &seg.seg, idx) < 0)
		return 1;
	b.spin_ns = (idx & 1) ? 0 : 2000; /* some sleep at once, some spin first */
	for (;;) {
		int r = shmq__barrier_wait(&b, t_deadline_ms(WAIT_TIMEOUT_MS));

		if (r >= N_PARTIES) {
			fetch_add_relaxed(&lg->bad_index, 1);
		} else if (r >= 0) {
			fetch_add_relaxed(&lg->passed, 1);
		} else if (r == -EPIPE) {
			uint64_t until =
				shmq__deadline_after_ns(WAIT_TIMEOUT_MS * UINT64_C(1000000));

			fetch_add_relaxed(&lg->broken, 1);
			while (shmq__barrier_is_broken(&b) && shmq__now_ns() < until)
				usleep(20); /* until the killer's reset */
			if (shmq__barrier_is_broken(&b)) {
				fetch_add_relaxed(&lg->wedged, 1);
				return 2;
			}
		} else if (r == -ETIMEDOUT) {
			fetch_add_relaxed(&lg->wedged, 1);
			return 3;
		} else {
			fetch_add_relaxed(&lg->errors, 1);
			return 4;
		}
	}
}

static pid_t spawn(uint32_t *idx)
{
	cr_assert(eq(int, shmq__session_claim(&seg.seg, SHMQ_ROLE_USER, 1, 0, idx), 0));
	return t_fork_peer(party, (void *)(uintptr_t)*idx);
}

Test(stress_barrier, a_party_killed_at_any_point_breaks_it_and_nobody_wedges)
{
	uint64_t seconds = t_stress_seconds(STRESS_SECONDS_DEFAULT);
	uint64_t end = shmq__deadline_after_ns(seconds * UINT64_C(1000000000));
	uint64_t cap = shmq__deadline_after_ns(RUN_CAP_SECONDS * UINT64_C(1000000000));
	const char *env = getenv("SHMQ_BARRIER_KILLS");
	uint64_t want = env ? strtoull(env, NULL, 10) : KILLS_DEFAULT;
	uint64_t rng = t_seed(), kills = 0, breaks = 0, last_passed = 0;
	pid_t pid[N_PARTIES];
	uint32_t idx[N_PARTIES];
	struct shmq_barrier ctl;
	uint32_t ctl_idx;

	t_seg_new_barrier(&seg, N_PARTIES);
	lg = mmap(NULL, sizeof(*lg), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert(lg != MAP_FAILED);
	cr_assert(eq(int, shmq__session_claim(&seg.seg, SHMQ_ROLE_USER, 1, 0, &ctl_idx), 0));
	cr_assert(eq(int, shmq__barrier_attach(&ctl, &seg.seg, ctl_idx), 0));
	for (int i = 0; i < N_PARTIES; i++)
		pid[i] = spawn(&idx[i]);
	while ((kills < want || shmq__now_ns() < end) && shmq__now_ns() < cap &&
	       !load_relaxed(&lg->wedged) && !load_relaxed(&lg->bad_index) &&
	       !load_relaxed(&lg->errors)) {
		int w = (int)(t_rand(&rng) % N_PARTIES);
		struct shmq_kind_repair rep = {0};
		uint64_t until = shmq__deadline_after_ns(WAIT_TIMEOUT_MS * UINT64_C(1000000));

		/* let a few cycles pass between kills, so cycling is exercised too */
		while (load_relaxed(&lg->passed) < last_passed + N_PARTIES * (t_rand(&rng) % 4) &&
		       shmq__now_ns() < until)
			usleep(10);
		if (t_rand(&rng) % 4) /* mostly while somebody waits */
			for (int i = 0; i < 200 && !shmq__barrier_n_waiting(&ctl); i++)
				cpu_relax();
		kill(pid[w], SIGKILL);
		cr_assert(eq(int, t_wait_peer(pid[w]), 128 + SIGKILL), "party %d", w);
		kills++;
		/* the daemon's part: repair the dead record (breaks it), then free it */
		cr_assert(ge(int, shmq__kind_barrier.repair(&seg.seg, idx[w], &rep), 0));
		breaks += rep.broken;
		shmq__session_release(&seg.seg, idx[w]);
		pid[w] = spawn(&idx[w]);
		cr_assert(eq(int, shmq__kind_barrier.check(&seg.seg, false), 0));
		cr_assert(eq(int, shmq__barrier_reset(&ctl), 0));
		last_passed = load_relaxed(&lg->passed);
	}
	for (int i = 0; i < N_PARTIES; i++) {
		kill(pid[i], SIGKILL);
		t_wait_peer(pid[i]);
	}
	cr_assert(eq(u32, load_relaxed(&lg->wedged), 0), "a wait waited %d ms", WAIT_TIMEOUT_MS);
	cr_assert(eq(u32, load_relaxed(&lg->bad_index), 0));
	cr_assert(eq(u32, load_relaxed(&lg->errors), 0));
	cr_assert(ge(u64, kills, want), "only %" PRIu64 " kills", kills);
	cr_assert(eq(u64, breaks, kills), "every death broke it (it was reset after each)");
	printf("barrier kill storm: %" PRIu64 " kills, %" PRIu64 " waits passed, %" PRIu64
	       " told broken, no wedge\n",
	       kills, load_relaxed(&lg->passed), load_relaxed(&lg->broken));
	t_seg_free(&seg);
}
