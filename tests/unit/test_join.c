/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for joinable queues (shm/ring.c, "Joinable"): the count in
 * every mode and every receive path, task_done's refusals, join's wake-up
 * and deadline, the overflow limit, shutdown, and the daemon's settle of
 * a session that closed or died at each step of a put, a take and a
 * task_done (the witness and the journal).  A kill storm:
 * tests/stress/stress_join.c; across processes with a daemon:
 * tests/integration/test_join.c.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/kind.h"
#include "shm/owner.h"
#include "shm/ring.h"
#include "tests/helpers.h"

#define WAIT_MS 5000

static struct t_seg fx;

static void teardown(void)
{
	t_seg_free(&fx);
}

TestSuite(join, .fini = teardown, .timeout = 30);

/* A handle on its own session record, as a client's open gives; no spin. */
static uint32_t handle(struct shmq_ring *r, uint32_t role)
{
	return t_ring_handle(&fx, r, role);
}

static struct shmq_queue_shm *shm(void)
{
	return fx.seg.object;
}

static struct shmq_queue_rec *rec(uint32_t idx)
{
	return &shmq__session_at(&fx.seg, idx)->k.queue;
}

/* One mode: the count across sends, receives and task_done. */
static void count_in_mode(uint32_t mode)
{
	struct shmq_ring p, c;
	char buf[16];

	t_seg_new_queue_flags(&fx, 8, 16, mode, SHMQ_QUEUE_F_JOINABLE);
	handle(&p, SHMQ_ROLE_PRODUCER);
	handle(&c, SHMQ_ROLE_CONSUMER);
	cr_assert(shmq__ring_is_joinable(&p));
	cr_assert(eq(int, shmq__ring_join(&p, t_deadline_ms(1)), 0), "nothing sent: joined");
	for (int i = 0; i < 3; i++)
		cr_assert(eq(int, shmq__ring_try_send(&p, "task", 4), 0));
	cr_assert(eq(u32, shmq__ring_unfinished(&p), 3));
	cr_assert(eq(int, shmq__ring_join(&p, t_deadline_ms(10)), -ETIMEDOUT));
	cr_assert(eq(int, shmq__ring_task_done(&c), -EINVAL), "took none yet");
	cr_assert(eq(int, shmq__ring_try_recv(&c, buf, sizeof(buf)), 4));
	cr_assert(eq(int, shmq__ring_recv_wait(&c, buf, sizeof(buf), t_deadline_ms(WAIT_MS)), 4));
	cr_assert(eq(u32, shmq__ring_unfinished(&p), 3), "taken is not done");
	cr_assert(eq(int, shmq__ring_task_done(&p), -EINVAL), "the producer took none");
	cr_assert(eq(int, shmq__ring_task_done(&c), 0));
	cr_assert(eq(int, shmq__ring_task_done(&c), 0));
	cr_assert(eq(int, shmq__ring_task_done(&c), -EINVAL), "one more than it took");
	cr_assert(eq(u32, shmq__ring_unfinished(&p), 1));
	cr_assert(eq(int, shmq__ring_try_recv(&c, buf, sizeof(buf)), 4));
	cr_assert(eq(int, shmq__ring_task_done(&c), 0));
	cr_assert(eq(int, shmq__ring_join(&p, t_deadline_ms(WAIT_MS)), 0));
	cr_assert(eq(u32, load_relaxed(&rec(1)->owed), 0));
	cr_assert(eq(u32, load_relaxed(&shm()->unfinished), 0), "no owner tag left behind");
	t_seg_free(&fx);
}

Test(join, counts_every_message_until_its_taker_says_done_in_every_mode)
{
	count_in_mode(SHMQ_QMODE_MPMC);
	count_in_mode(SHMQ_QMODE_SPSC);
	count_in_mode(SHMQ_QMODE_MPSC);
	count_in_mode(SHMQ_QMODE_SPMC);
}

Test(join, batches_peeks_reservations_and_dropped_messages_count_right)
{
	struct shmq_ring p, c;
	struct iovec iov[4];
	char bufs[4][16], small[2];
	const void *msg;
	void *rsv;

	t_seg_new_queue_flags(&fx, 8, 16, SHMQ_QMODE_MPMC, SHMQ_QUEUE_F_JOINABLE);
	handle(&p, SHMQ_ROLE_PRODUCER);
	handle(&c, SHMQ_ROLE_CONSUMER);
	for (int i = 0; i < 4; i++)
		iov[i] = (struct iovec){.iov_base = "batch", .iov_len = 5};
	cr_assert(eq(int, shmq__ring_send_batch(&p, iov, 4), 4));
	cr_assert(eq(int, shmq__ring_reserve(&p, &rsv), 0));
	cr_assert(eq(int, shmq__ring_cancel(&p), 0)); /* a tombstone: no task */
	cr_assert(eq(int, shmq__ring_reserve(&p, &rsv), 0));
	memcpy(rsv, "reserved", 8);
	cr_assert(eq(int, shmq__ring_commit(&p, 8), 0));
	cr_assert(eq(u32, shmq__ring_unfinished(&p), 5));
	for (int i = 0; i < 3; i++)
		iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = sizeof(bufs[i])};
	cr_assert(eq(int, shmq__ring_recv_batch(&c, iov, 3), 3));
	cr_assert(eq(u32, load_relaxed(&c.tasks), 3));
	/* too long for the buffer: consumed, and done at once */
	cr_assert(eq(int, shmq__ring_try_recv(&c, small, sizeof(small)), -EMSGSIZE));
	cr_assert(eq(u32, shmq__ring_unfinished(&p), 4));
	cr_assert(eq(u32, load_relaxed(&c.tasks), 3));
	/* a peek is a task at its release, after the tombstone it skips */
	cr_assert(eq(int, shmq__ring_peek(&c, &msg), 8));
	cr_assert(eq(u32, load_relaxed(&c.tasks), 3));
	cr_assert(eq(int, shmq__ring_release(&c), 0));
	cr_assert(eq(u32, load_relaxed(&c.tasks), 4));
	for (int i = 0; i < 4; i++)
		cr_assert(eq(int, shmq__ring_task_done(&c), 0));
	cr_assert(eq(int, shmq__ring_join(&p, t_deadline_ms(WAIT_MS)), 0));
}

struct joiner {
	struct shmq_ring *r;
	int rc;
	uint64_t at;
};

static void *join_thread(void *arg)
{
	struct joiner *j = arg;

	j->rc = shmq__ring_join(j->r, t_deadline_ms(WAIT_MS));
	j->at = t_now_ns();
	return NULL;
}

Test(join, the_last_task_done_wakes_a_sleeping_joiner)
{
	struct joiner j = {0};
	struct shmq_ring p, c, pj;
	char buf[16];
	uint64_t done_at;
	pthread_t t;

	t_seg_new_queue_flags(&fx, 8, 16, SHMQ_QMODE_SPSC, SHMQ_QUEUE_F_JOINABLE);
	handle(&p, SHMQ_ROLE_PRODUCER);
	handle(&c, SHMQ_ROLE_CONSUMER);
	handle(&pj, SHMQ_ROLE_PRODUCER); /* the joiner: its own handle */
	cr_assert(eq(int, shmq__ring_try_send(&p, "a", 1), 0));
	cr_assert(eq(int, shmq__ring_try_send(&p, "b", 1), 0));
	j.r = &pj;
	cr_assert(eq(int, pthread_create(&t, NULL, join_thread, &j), 0));
	for (int i = 0; i < 5000 && !(load_relaxed(&shm()->ec_join) & 1); i++)
		t_sleep_ms(1);
	cr_assert(load_relaxed(&shm()->ec_join) & 1, "the joiner never slept");
	cr_assert(eq(int, shmq__ring_try_recv(&c, buf, sizeof(buf)), 1));
	cr_assert(eq(int, shmq__ring_try_recv(&c, buf, sizeof(buf)), 1));
	cr_assert(eq(int, shmq__ring_task_done(&c), 0));
	t_sleep_ms(20);
	cr_assert(eq(int, j.rc, 0), "woke before the last task was done");
	cr_assert(eq(u64, j.at, 0));
	done_at = t_now_ns();
	cr_assert(eq(int, shmq__ring_task_done(&c), 0));
	pthread_join(t, NULL);
	cr_assert(eq(int, j.rc, 0));
	cr_assert(j.at - done_at < (uint64_t)WAIT_MS * 1000000 / 2, "woken by the last task_done");
}

Test(join, an_immediate_shutdown_ends_join_and_a_drain_does_not)
{
	struct shmq_ring p, c;
	char buf[16];

	t_seg_new_queue_flags(&fx, 8, 16, SHMQ_QMODE_MPMC, SHMQ_QUEUE_F_JOINABLE);
	handle(&p, SHMQ_ROLE_PRODUCER);
	handle(&c, SHMQ_ROLE_CONSUMER);
	cr_assert(eq(int, shmq__ring_try_send(&p, "a", 1), 0));
	cr_assert(eq(int, shmq__ring_try_send(&p, "b", 1), 0));
	cr_assert(eq(int, shmq__ring_shutdown(&p, false), 0));
	cr_assert(eq(int, shmq__ring_join(&p, t_deadline_ms(10)), -ETIMEDOUT));
	cr_assert(eq(int, shmq__ring_try_recv(&c, buf, sizeof(buf)), 1));
	cr_assert(eq(int, shmq__ring_task_done(&c), 0));
	cr_assert(eq(int, shmq__ring_shutdown(&p, true), 0));
	cr_assert(eq(int, shmq__ring_join(&p, t_deadline_ms(WAIT_MS)), -EPIPE));
}

Test(join, a_send_past_the_limit_overflows_and_leaves_nothing_behind)
{
	struct shmq_ring p, c;
	char buf[16];

	t_seg_new_queue_flags(&fx, 8, 16, SHMQ_QMODE_MPMC, SHMQ_QUEUE_F_JOINABLE);
	handle(&p, SHMQ_ROLE_PRODUCER);
	handle(&c, SHMQ_ROLE_CONSUMER);
	store_relaxed(&shm()->unfinished, SHMQ_QUEUE_UNFINISHED_MAX); /* as if so many were out */
	cr_assert(eq(int, shmq__ring_try_send(&p, "x", 1), -EOVERFLOW));
	cr_assert(eq(u32, load_relaxed(&rec(0)->owed), 0));
	cr_assert(eq(u32, load_relaxed(&rec(0)->put_pos), 0));
	/* the claimed slot became a tombstone: nothing to receive, the ring still works */
	cr_assert(eq(int, shmq__ring_try_recv(&c, buf, sizeof(buf)), -EAGAIN));
	store_relaxed(&shm()->unfinished, 0);
	cr_assert(eq(int, shmq__ring_try_send(&p, "y", 1), 0));
	cr_assert(eq(int, shmq__ring_try_recv(&c, buf, sizeof(buf)), 1));
	cr_assert(eq(int, buf[0], 'y'));
}

Test(join, a_closing_handle_s_unfinished_tasks_are_counted_done)
{
	struct shmq_ring p, c;
	char buf[16];
	uint32_t ci;

	t_seg_new_queue_flags(&fx, 8, 16, SHMQ_QMODE_MPMC, SHMQ_QUEUE_F_JOINABLE);
	handle(&p, SHMQ_ROLE_PRODUCER);
	ci = handle(&c, SHMQ_ROLE_CONSUMER);
	for (int i = 0; i < 3; i++)
		cr_assert(eq(int, shmq__ring_try_send(&p, "t", 1), 0));
	cr_assert(eq(int, shmq__ring_try_recv(&c, buf, sizeof(buf)), 1));
	cr_assert(eq(int, shmq__ring_try_recv(&c, buf, sizeof(buf)), 1));
	cr_assert(eq(int, shmq__ring_task_done(&c), 0));
	/* the daemon, at the handle's CLOSE: one taken and not done */
	cr_assert(eq(u32, shmq__ring_join_settle(&fx.seg, ci), 1));
	cr_assert(eq(u32, shmq__ring_unfinished(&p), 1), "the one still queued");
	cr_assert(eq(u32, shmq__ring_join_settle(&fx.seg, ci), 0), "settled once");
	cr_assert(eq(u32, shmq__ring_join_settle(&fx.seg, 0), 0), "the producer owes nothing");
}

/*
 * The settle of a session that died at each step of a put, a take and a
 * task_done: its record and the words as the death left them, written
 * here by hand (the witness is the slot's turn, the journal the word's
 * owner field).  Each case: what the count must be afterwards.
 */
Test(join, the_settle_is_exact_whatever_step_a_death_interrupted)
{
	struct shmq_ring p, c;
	uint32_t pi, ci, tagp, tagc;
	char buf[16];

	t_seg_new_queue_flags(&fx, 8, 16, SHMQ_QMODE_MPMC, SHMQ_QUEUE_F_JOINABLE);
	pi = handle(&p, SHMQ_ROLE_PRODUCER);
	ci = handle(&c, SHMQ_ROLE_CONSUMER);
	tagp = shmq__owner_field(pi);
	tagc = shmq__owner_field(ci);
	cr_assert(eq(int, shmq__ring_try_send(&p, "a", 1), 0));
	cr_assert(eq(int, shmq__ring_try_send(&p, "b", 1), 0));
	cr_assert(eq(int, shmq__ring_try_recv(&c, buf, sizeof(buf)), 1)); /* c holds one task */
	cr_assert(eq(u32, shmq__ring_unfinished(&p), 2));

	/* a put killed between U2 and U4: +1 under its tag, owed_pending 1, not published */
	store_relaxed(&rec(pi)->put_pos, 2 + 1);
	store_relaxed(&rec(pi)->owed_pending, 1);
	store_relaxed(&shm()->unfinished, 3 | tagp);
	cr_assert(eq(u32, shmq__ring_join_settle(&fx.seg, pi), 1));
	cr_assert(eq(u32, load_relaxed(&shm()->unfinished), 2), "taken back, tag cleared");

	/* a put killed after its publish, before J3: put_owed says 0 */
	store_relaxed(&rec(pi)->put_pos, 0 + 1); /* slot 0: published ("a") */
	store_relaxed(&rec(pi)->owed, 1);
	store_relaxed(&rec(pi)->put_owed, 0);
	cr_assert(eq(u32, shmq__ring_join_settle(&fx.seg, pi), 0));
	cr_assert(eq(u32, load_relaxed(&shm()->unfinished), 2));

	/* a task_done killed between U2 and U4: -1 applied, owed_pending 0 */
	store_relaxed(&rec(ci)->owed_pending, 0);
	store_relaxed(&shm()->unfinished, 1 | tagc);
	cr_assert(eq(u32, shmq__ring_join_settle(&fx.seg, ci), 0), "its one task was done");
	cr_assert(eq(u32, load_relaxed(&shm()->unfinished), 1));

	/* a take killed after the free, before J7: take_owed 1 */
	store_relaxed(&shm()->unfinished, 2);
	store_relaxed(&rec(ci)->take_pos, 0 + 1); /* slot 0 was freed: consumed */
	store_relaxed(&rec(ci)->owed, 0);
	store_relaxed(&rec(ci)->take_owed, 1);
	cr_assert(eq(u32, shmq__ring_join_settle(&fx.seg, ci), 1));
	cr_assert(eq(u32, load_relaxed(&shm()->unfinished), 1));

	/* a take killed before the free: not consumed, owed as recorded (the slot is redelivered) */
	store_relaxed(&rec(ci)->take_pos, 1 + 1); /* slot 1 ("b") still published */
	store_relaxed(&rec(ci)->owed, 0);
	store_relaxed(&rec(ci)->take_owed, 1);
	cr_assert(eq(u32, shmq__ring_join_settle(&fx.seg, ci), 0));
	cr_assert(eq(u32, load_relaxed(&shm()->unfinished), 1), "b is still unfinished");
	cr_assert(eq(u32, load_relaxed(&rec(ci)->take_pos), 0), "forgotten after the settle");
}
