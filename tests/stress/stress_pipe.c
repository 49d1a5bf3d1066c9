/* SPDX-License-Identifier: MIT */
/*
 * Kill storm for shm/pipe.c across processes: a child holds end 1 of a
 * fresh pipe each round and streams numbered, checksummed messages of
 * random length to end 0, while this process -- end 0, and standing in
 * for the daemon -- receives them, fills the child's inbox now and then
 * (so the child may die with unread messages, or asleep on a full
 * direction), SIGKILLs it at a random moment, and repairs its record as
 * shmqd does.
 *
 * Judged per round: every message received is the next in sequence and
 * intact (no loss, no duplicate, nothing torn), everything the child's
 * send acknowledged before it died is received before the end-of-file (at
 * most one more: a send the kill interrupted after its publish), the
 * end-of-file comes, and sends to the dead end fail with -EPIPE.  Nothing
 * waits without a deadline, so a lost wake-up fails the run.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/kind.h"
#include "shm/pipe.h"
#include "tests/helpers.h"

#define STRESS_SECONDS_DEFAULT 20
#define RUN_CAP_SECONDS	       120
#define WAIT_MS		       5000 /* a wait this long is a wedge */
#define SLOT_SIZE	       256
#define N_SLOTS		       16

TestSuite(stress_pipe, .timeout = 240);

struct msg {
	uint64_t seq;
	uint32_t len; /* of fill[] */
	uint32_t sum; /* t_checksum(fill, len) */
	unsigned char fill[SLOT_SIZE - 16];
};

struct shared {
	_Atomic uint64_t acked; /* messages whose send returned 0 */
	_Atomic int started;
};

static struct t_seg seg;
static struct shared *sh;

static int child(void *arg)
{
	uint32_t idx = (uint32_t)(uintptr_t)arg;
	uint64_t rng = (uint64_t)getpid() * 0x9e3779b97f4a7c15u;
	struct shmq_pipe e;
	struct msg m;

	if (shmq__pipe_attach(&e, &seg.seg, idx, 1) < 0)
		return 1;
	e.out.spin_ns = (idx & 1) ? 0 : 2000; /* some sleep at once when full */
	store_relaxed(&sh->started, 1);
	for (uint64_t seq = 0;; seq++) {
		int r;

		m.seq = seq;
		m.len = (uint32_t)(t_rand(&rng) % sizeof(m.fill));
		for (uint32_t i = 0; i < m.len; i++)
			m.fill[i] = (unsigned char)(seq + i);
		m.sum = t_checksum(m.fill, m.len);
		r = shmq__ring_send_wait(&e.out, &m, 16 + m.len, t_deadline_ms(WAIT_MS));
		if (r != 0)
			return r == -EPIPE ? 0 : 2;
		store_relaxed(&sh->acked, seq + 1);
		/* now and then, asleep on its own (maybe full) inbox */
		if (t_rand(&rng) % 64 == 0) {
			struct msg in;

			(void)shmq__ring_recv_wait(&e.in, &in, sizeof(in), t_deadline_ms(2));
		}
	}
}

/* Receive and judge one message; -EAGAIN, -EPIPE, or the failure. */
static int take(struct shmq_pipe *a, uint64_t *next, uint64_t deadline)
{
	struct msg m;
	int r = deadline ? shmq__ring_recv_wait(&a->in, &m, sizeof(m), deadline)
			 : shmq__ring_try_recv(&a->in, &m, sizeof(m));

	if (r < 0)
		return r;
	cr_assert(eq(u64, m.seq, *next), "lost or duplicated: got %" PRIu64, m.seq);
	cr_assert(eq(int, r, (int)(16 + m.len)), "torn length at %" PRIu64, m.seq);
	cr_assert(eq(u32, t_checksum(m.fill, m.len), m.sum), "torn body at %" PRIu64, m.seq);
	(*next)++;
	return 0;
}

Test(stress_pipe, holders_killed_mid_stream_leave_a_clean_end_of_file)
{
	uint64_t seconds = t_stress_seconds(STRESS_SECONDS_DEFAULT);
	uint64_t end = shmq__deadline_after_ns(seconds * UINT64_C(1000000000));
	uint64_t cap = shmq__deadline_after_ns(RUN_CAP_SECONDS * UINT64_C(1000000000));
	uint64_t rng = t_seed(), rounds = 0, total = 0, filled = 0;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert(sh != MAP_FAILED);
	while ((rounds < 50 || shmq__now_ns() < end) && shmq__now_ns() < cap) {
		struct shmq_kind_repair rep = {0};
		uint64_t next = 0, acked, run_ns;
		struct shmq_pipe a;
		uint32_t i0, i1;
		pid_t pid;
		int r;

		t_seg_new_pipe(&seg, N_SLOTS, SLOT_SIZE, 0);
		store_relaxed(&sh->acked, 0);
		store_relaxed(&sh->started, 0);
		cr_assert(eq(int, shmq__session_claim(&seg.seg, SHMQ_ROLE_USER, 1, 0, &i0), 0));
		cr_assert(eq(
			int,
			shmq__session_claim(&seg.seg, SHMQ_ROLE_USER | SHMQ_ROLE_END1, 1, 0, &i1),
			0));
		cr_assert(eq(int, shmq__pipe_attach(&a, &seg.seg, i0, 0), 0));
		pid = t_fork_peer(child, (void *)(uintptr_t)i1);
		if (t_rand(&rng) % 3 == 0) { /* its inbox full: it dies with unread mail */
			while (shmq__ring_try_send(&a.out, "x", 1) == 0)
				;
			filled++;
		}
		/* receive for a random while, then the kill lands wherever the child is */
		run_ns = t_rand(&rng) % 3000000;
		for (uint64_t stop = shmq__now_ns() + run_ns; shmq__now_ns() < stop;) {
			r = take(&a, &next, 0);
			cr_assert(r == 0 || r == -EAGAIN, "receive: %d", r);
		}
		kill(pid, SIGKILL);
		cr_assert(eq(int, t_wait_peer(pid), 128 + SIGKILL), "the child failed");
		acked = load_relaxed(&sh->acked);
		/* the daemon's part, once the death is certain */
		cr_assert(ge(int, shmq__kind_pipe.repair(&seg.seg, i1, &rep), 0));
		cr_assert(eq(u32, rep.closed, 1));
		shmq__session_release(&seg.seg, i1);
		while ((r = take(&a, &next, t_deadline_ms(WAIT_MS))) == 0)
			;
		cr_assert(eq(int, r, -EPIPE), "the end-of-file never came (%d)", r);
		cr_assert(next == acked || next == acked + 1,
			  "acknowledged %" PRIu64 ", received %" PRIu64, acked, next);
		cr_assert(eq(int, shmq__ring_try_send(&a.out, "y", 1), -EPIPE));
		cr_assert(eq(int, shmq__kind_pipe.check(&seg.seg, false), 0));
		total += next;
		rounds++;
		t_seg_free(&seg);
	}
	printf("pipe kill storm: %" PRIu64 " holders killed (%" PRIu64
	       " with a full inbox), %" PRIu64 " messages, none lost, duplicated or torn\n",
	       rounds, filled, total);
}
