/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for shm/ring.c: single-process edge cases.  Each behaviour is
 * tested in both algorithms (SPSC indices and MPMC turns) by looping over
 * the modes inside the test.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/ring.h"

#define N_SLOTS	  4
#define SLOT_SIZE 64

static const uint32_t modes[] = {SHMQ_QMODE_SPSC, SHMQ_QMODE_MPMC, SHMQ_QMODE_MPSC,
				 SHMQ_QMODE_SPMC};
#define N_MODES (sizeof(modes) / sizeof(modes[0]))

struct fx {
	struct t_seg seg;
	struct shmq_ring tx, rx;
};

static void fx_init(struct fx *f, uint32_t mode, uint32_t n_slots, uint32_t slot_size)
{
	t_seg_new_queue(&f->seg, n_slots, slot_size, mode);
	cr_assert(eq(int, shmq__ring_attach(&f->tx, &f->seg.seg, UINT32_MAX), 0));
	cr_assert(eq(int, shmq__ring_attach(&f->rx, &f->seg.seg, UINT32_MAX), 0));
}

static void fx_fini(struct fx *f)
{
	t_seg_free(&f->seg);
}

/* Attach with a claimed session record, so claims carry a repairable tag. */
static void attach_session(struct fx *f, struct shmq_ring *r, uint32_t role, uint32_t *ret_index)
{
	cr_assert(eq(int, shmq__session_claim(&f->seg.seg, role, 1, 0, ret_index), 0));
	cr_assert(eq(int, shmq__ring_attach(r, &f->seg.seg, *ret_index), 0));
}

static void send_u64(struct shmq_ring *r, uint64_t v)
{
	cr_assert(eq(int, shmq__ring_try_send(r, &v, sizeof(v)), 0));
}

static uint64_t recv_u64(struct shmq_ring *r)
{
	uint64_t v = 0;

	cr_assert(eq(int, shmq__ring_try_recv(r, &v, sizeof(v)), (int)sizeof(v)));
	return v;
}

TestSuite(ring, .timeout = 10);

Test(ring, attach_rejects_a_semaphore_segment)
{
	struct t_seg s;
	struct shmq_ring r;

	t_seg_new_sem(&s, 0, 0, 0);
	cr_assert(eq(int, shmq__ring_attach(&r, &s.seg, UINT32_MAX), -EINVAL));
	t_seg_free(&s);
}

Test(ring, recv_from_empty_ring_returns_eagain)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		char buf[SLOT_SIZE];

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		cr_assert(eq(int, shmq__ring_try_recv(&f.rx, buf, sizeof(buf)), -EAGAIN), "mode %u",
			  modes[m]);
		cr_assert(eq(u64, load_relaxed(&f.rx.c->empty), 1));
		fx_fini(&f);
	}
}

Test(ring, send_fails_when_full_and_succeeds_after_one_recv)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		for (uint64_t i = 0; i < N_SLOTS; i++)
			send_u64(&f.tx, i);
		cr_assert(eq(int, shmq__ring_try_send(&f.tx, "x", 1), -EAGAIN), "mode %u",
			  modes[m]);
		cr_assert(eq(u32, shmq__ring_depth(&f.tx), N_SLOTS));
		cr_assert(eq(u64, recv_u64(&f.rx), 0));
		send_u64(&f.tx, 99);
		for (uint64_t i = 1; i < N_SLOTS; i++)
			cr_assert(eq(u64, recv_u64(&f.rx), i));
		cr_assert(eq(u64, recv_u64(&f.rx), 99));
		cr_assert(eq(u64, load_relaxed(&f.tx.c->full), 1));
		cr_assert(eq(int, shmq__ring_check(&f.tx), 0));
		fx_fini(&f);
	}
}

Test(ring, messages_keep_their_length_from_zero_to_exact_fit)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		unsigned char msg[SLOT_SIZE], buf[SLOT_SIZE + 8];
		size_t lens[] = {0, 1, 7, SLOT_SIZE - 1, SLOT_SIZE};

		fx_init(&f, modes[m], 8, SLOT_SIZE);
		for (size_t i = 0; i < sizeof(msg); i++)
			msg[i] = (unsigned char)(i * 7 + 1);
		for (size_t i = 0; i < 5; i++)
			cr_assert(eq(int, shmq__ring_try_send(&f.tx, msg, lens[i]), 0));
		for (size_t i = 0; i < 5; i++) {
			memset(buf, 0xee, sizeof(buf));
			cr_assert(eq(int, shmq__ring_try_recv(&f.rx, buf, sizeof(buf)),
				     (int)lens[i]));
			cr_assert(eq(int, memcmp(buf, msg, lens[i]), 0));
			cr_assert(eq(u8, buf[lens[i]], 0xee), "wrote past the message");
		}
		fx_fini(&f);
	}
}

Test(ring, oversize_message_is_rejected_with_emsgsize_and_nothing_is_queued)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		char big[SLOT_SIZE + 1] = {0};

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		cr_assert(eq(int, shmq__ring_try_send(&f.tx, big, sizeof(big)), -EMSGSIZE));
		cr_assert(eq(u32, shmq__ring_depth(&f.tx), 0));
		cr_assert(eq(int, shmq__ring_try_recv(&f.rx, big, sizeof(big)), -EAGAIN));
		fx_fini(&f);
	}
}

Test(ring, recv_into_too_small_buffer_consumes_the_message_and_returns_emsgsize)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		char buf[4];

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		send_u64(&f.tx, 1);
		send_u64(&f.tx, 2);
		cr_assert(eq(int, shmq__ring_try_recv(&f.rx, buf, sizeof(buf)), -EMSGSIZE));
		cr_assert(eq(u64, recv_u64(&f.rx), 2), "the next message is intact");
		fx_fini(&f);
	}
}

Test(ring, ring_wraps_many_laps_in_fifo_order)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		uint64_t next_send = 0, next_recv = 0;

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		while (next_recv < 1000) {
			while (shmq__ring_depth(&f.tx) < 3)
				send_u64(&f.tx, next_send++);
			cr_assert(eq(u64, recv_u64(&f.rx), next_recv++));
		}
		cr_assert(eq(int, shmq__ring_check(&f.tx), 0));
		fx_fini(&f);
	}
}

Test(ring, indices_wrap_around_uint32_max)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		uint64_t next_send = 0, next_recv = 0;

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		shmq__queue_reset_origin(&f.seg.seg, UINT32_MAX - 5);
		cr_assert(eq(int, shmq__ring_attach(&f.tx, &f.seg.seg, UINT32_MAX), 0));
		cr_assert(eq(int, shmq__ring_attach(&f.rx, &f.seg.seg, UINT32_MAX), 0));
		cr_assert(eq(int, shmq__ring_check(&f.tx), 0));
		for (int i = 0; i < N_SLOTS; i++)
			send_u64(&f.tx, next_send++);
		cr_assert(eq(int, shmq__ring_try_send(&f.tx, "x", 1), -EAGAIN),
			  "full across the wrap");
		while (next_recv < 40) {
			cr_assert(eq(u64, recv_u64(&f.rx), next_recv++));
			cr_assert(eq(int, shmq__ring_check(&f.tx), 0), "mode %u at %lu", modes[m],
				  (unsigned long)next_recv);
			send_u64(&f.tx, next_send++);
		}
		cr_assert(lt(u32, load_relaxed(&((struct shmq_queue_shm *)f.seg.seg.object)->tail),
			     100u),
			  "tail wrapped past zero");
		fx_fini(&f);
	}
}

Test(ring, batch_send_stops_at_full_and_returns_the_count)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		uint64_t v[6] = {10, 11, 12, 13, 14, 15};
		struct iovec iov[6];

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		for (int i = 0; i < 6; i++)
			iov[i] = (struct iovec){&v[i], sizeof(v[i])};
		send_u64(&f.tx, 9);
		cr_assert(eq(int, shmq__ring_send_batch(&f.tx, iov, 6), 3));
		cr_assert(eq(int, shmq__ring_send_batch(&f.tx, iov, 6), 0), "full: zero sent");
		for (uint64_t i = 9; i < 13; i++)
			cr_assert(eq(u64, recv_u64(&f.rx), i));
		fx_fini(&f);
	}
}

Test(ring, batch_recv_returns_what_is_available_with_lengths)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		char bufs[4][SLOT_SIZE];
		struct iovec iov[4];

		fx_init(&f, modes[m], 8, SLOT_SIZE);
		cr_assert(eq(int, shmq__ring_try_send(&f.tx, "a", 1), 0));
		cr_assert(eq(int, shmq__ring_try_send(&f.tx, "bcd", 3), 0));
		for (int i = 0; i < 4; i++)
			iov[i] = (struct iovec){bufs[i], SLOT_SIZE};
		cr_assert(eq(int, shmq__ring_recv_batch(&f.rx, iov, 4), 2));
		cr_assert(eq(sz, iov[0].iov_len, 1));
		cr_assert(eq(sz, iov[1].iov_len, 3));
		cr_assert(eq(int, memcmp(bufs[1], "bcd", 3), 0));
		cr_assert(eq(int, shmq__ring_recv_batch(&f.rx, iov, 4), 0), "empty: zero received");
		fx_fini(&f);
	}
}

Test(ring, batch_send_with_oversize_first_message_returns_emsgsize)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		char big[SLOT_SIZE + 1] = {0};
		uint64_t v = 1;
		struct iovec iov[2] = {{big, sizeof(big)}, {&v, sizeof(v)}};
		struct iovec iov2[2] = {{&v, sizeof(v)}, {big, sizeof(big)}};

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		cr_assert(eq(int, shmq__ring_send_batch(&f.tx, iov, 2), -EMSGSIZE));
		cr_assert(eq(int, shmq__ring_send_batch(&f.tx, iov2, 2), 1),
			  "stops before the bad one");
		fx_fini(&f);
	}
}

Test(ring, reserve_then_commit_delivers_the_bytes_written_in_place)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		void *p;
		char buf[SLOT_SIZE];

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		cr_assert(eq(int, shmq__ring_reserve(&f.tx, &p), 0));
		cr_assert(eq(int, shmq__ring_reserve(&f.tx, &p), -EINVAL),
			  "one reservation at a time");
		cr_assert(eq(int, shmq__ring_try_send(&f.tx, "x", 1), -EINVAL),
			  "no send under a reservation");
		memcpy(p, "zero-copy", 9);
		cr_assert(eq(int, shmq__ring_try_recv(&f.rx, buf, sizeof(buf)), -EAGAIN),
			  "not yet committed");
		cr_assert(eq(int, shmq__ring_commit(&f.tx, SLOT_SIZE + 1), -EMSGSIZE));
		cr_assert(eq(int, shmq__ring_commit(&f.tx, 9), 0));
		cr_assert(eq(int, shmq__ring_commit(&f.tx, 9), -EINVAL), "commit without reserve");
		cr_assert(eq(int, shmq__ring_try_recv(&f.rx, buf, sizeof(buf)), 9));
		cr_assert(eq(int, memcmp(buf, "zero-copy", 9), 0));
		fx_fini(&f);
	}
}

Test(ring, cancelled_reservation_is_never_delivered)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		void *p;

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		cr_assert(eq(int, shmq__ring_cancel(&f.tx), -EINVAL));
		cr_assert(eq(int, shmq__ring_reserve(&f.tx, &p), 0));
		memcpy(p, "junk", 4);
		cr_assert(eq(int, shmq__ring_cancel(&f.tx), 0));
		send_u64(&f.tx, 42);
		cr_assert(eq(u64, recv_u64(&f.rx), 42), "mode %u", modes[m]);
		cr_assert(eq(int, shmq__ring_try_recv(&f.rx, &p, sizeof(p)), -EAGAIN));
		cr_assert(eq(int, shmq__ring_check(&f.tx), 0));
		fx_fini(&f);
	}
}

Test(ring, peeked_slot_is_held_until_release)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		const void *msg;

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		for (uint64_t i = 0; i < N_SLOTS; i++)
			send_u64(&f.tx, i);
		cr_assert(eq(int, shmq__ring_peek(&f.rx, &msg), 8));
		cr_assert(eq(u64, *(const uint64_t *)msg, 0));
		cr_assert(eq(int, shmq__ring_peek(&f.rx, &msg), -EINVAL), "one peek at a time");
		cr_assert(eq(int, shmq__ring_try_send(&f.tx, "x", 1), -EAGAIN),
			  "peeked slot still held");
		cr_assert(eq(int, shmq__ring_release(&f.rx), 0));
		cr_assert(eq(int, shmq__ring_release(&f.rx), -EINVAL));
		cr_assert(eq(int, shmq__ring_try_send(&f.tx, "x", 1), 0));
		cr_assert(eq(u64, recv_u64(&f.rx), 1));
		fx_fini(&f);
	}
}

Test(ring, recv_wait_times_out_at_the_deadline_not_before)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		char buf[SLOT_SIZE];
		uint64_t deadline;

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		f.rx.spin_ns = 1000;
		deadline = t_deadline_ms(30);
		cr_assert(eq(int, shmq__ring_recv_wait(&f.rx, buf, sizeof(buf), deadline),
			     -ETIMEDOUT));
		cr_assert(ge(u64, shmq__now_ns(), deadline));
		cr_assert(ge(u64, load_relaxed(&f.rx.c->sleeps), 1), "slept in the kernel");
		fx_fini(&f);
	}
}

Test(ring, send_wait_on_a_full_ring_times_out_and_a_past_deadline_fails_at_once)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		uint64_t t0;

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		for (uint64_t i = 0; i < N_SLOTS; i++)
			send_u64(&f.tx, i);
		cr_assert(eq(int, shmq__ring_send_wait(&f.tx, "x", 1, t_deadline_ms(20)),
			     -ETIMEDOUT));
		t0 = shmq__now_ns();
		cr_assert(eq(int, shmq__ring_send_wait(&f.tx, "x", 1, t0 - 1), -ETIMEDOUT));
		/*
		 * Far above a spin budget, far below a sleep; wide enough for a
		 * descheduled thread on a loaded machine under TSan.
		 */
		cr_assert(lt(u64, shmq__now_ns() - t0, UINT64_C(100000000)),
			  "no spin past the deadline");
		fx_fini(&f);
	}
}

Test(ring, blocking_calls_return_at_once_when_ready)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		uint64_t v = 5;
		void *p;
		const void *msg;

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		cr_assert(eq(int, shmq__ring_send_wait(&f.tx, &v, sizeof(v), SHMQ_DEADLINE_NEVER),
			     0));
		cr_assert(eq(int, shmq__ring_reserve_wait(&f.tx, &p, SHMQ_DEADLINE_NEVER), 0));
		cr_assert(eq(int, shmq__ring_commit(&f.tx, 0), 0));
		cr_assert(eq(int, shmq__ring_recv_wait(&f.rx, &v, sizeof(v), SHMQ_DEADLINE_NEVER),
			     8));
		cr_assert(eq(int, shmq__ring_peek_wait(&f.rx, &msg, SHMQ_DEADLINE_NEVER), 0));
		cr_assert(eq(int, shmq__ring_release(&f.rx), 0));
		cr_assert(eq(u64, load_relaxed(&f.rx.c->sleeps), 0));
		fx_fini(&f);
	}
}

struct sender_arg {
	struct shmq_ring *r;
	uint64_t delay_ns;
};

/*
 * Send once the receiver has announced itself (the WAITERS bit), so the
 * send must go through the wake path however the threads are scheduled.
 */
static void *late_sender(void *p)
{
	struct sender_arg *a = p;
	uint64_t v = 77, give_up = shmq__now_ns() + UINT64_C(5000000000);
	struct timespec ts = {0, (long)a->delay_ns};

	while (!(load_acquire(&a->r->q->ec_recv) & 1) && shmq__now_ns() < give_up)
		nanosleep(&ts, NULL);
	cr_assert(eq(int, shmq__ring_try_send(a->r, &v, sizeof(v)), 0));
	return NULL;
}

Test(ring, sleeping_receiver_is_woken_by_a_send)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		struct sender_arg a;
		pthread_t th;
		uint64_t v = 0;

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		f.rx.spin_ns = 0;
		a = (struct sender_arg){&f.tx, 1000 * 1000};
		pthread_create(&th, NULL, late_sender, &a);
		cr_assert(eq(int, shmq__ring_recv_wait(&f.rx, &v, sizeof(v), t_deadline_ms(5000)),
			     8));
		cr_assert(eq(u64, v, 77));
		pthread_join(th, NULL);
		cr_assert(eq(u64, load_relaxed(&f.tx.c->wakes), 1), "one wake for one sleeper");
		fx_fini(&f);
	}
}

Test(ring, send_without_sleepers_never_wakes)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		for (int lap = 0; lap < 10; lap++) {
			for (uint64_t i = 0; i < N_SLOTS; i++)
				send_u64(&f.tx, i);
			for (uint64_t i = 0; i < N_SLOTS; i++)
				recv_u64(&f.rx);
		}
		cr_assert(eq(u64, load_relaxed(&f.tx.c->wakes), 0));
		cr_assert(eq(u64, load_relaxed(&f.rx.c->wakes), 0));
		cr_assert(eq(u64, load_relaxed(&f.tx.c->sent), 40));
		cr_assert(eq(u64, load_relaxed(&f.rx.c->received), 40));
		fx_fini(&f);
	}
}

Test(ring, high_water_mark_reaches_capacity_when_the_ring_fills)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		struct shmq_queue_shm *q;

		fx_init(&f, modes[m], 64, SLOT_SIZE);
		q = f.seg.seg.object;
		for (uint64_t i = 0; i < 64; i++)
			send_u64(&f.tx, i);
		cr_assert(eq(int, shmq__ring_try_send(&f.tx, "x", 1), -EAGAIN));
		cr_assert(eq(u32, load_relaxed(&q->hwm), 64), "mode %u", modes[m]);
		fx_fini(&f);
	}
}

Test(ring, counters_land_in_the_session_record)
{
	struct fx f;
	struct shmq_ring tx;
	uint32_t idx;

	fx_init(&f, SHMQ_QMODE_MPMC, N_SLOTS, SLOT_SIZE);
	attach_session(&f, &tx, SHMQ_ROLE_PRODUCER, &idx);
	send_u64(&tx, 1);
	send_u64(&tx, 2);
	cr_assert(eq(u64, load_relaxed(&f.seg.seg.sessions[idx].c.sent), 2));
	fx_fini(&f);
}

/* --- Hostile peers --- */

static struct shmq_slot_hdr *slot_hdr(struct fx *f, uint32_t i)
{
	return (struct shmq_slot_hdr *)(f->seg.seg.slots + (size_t)i * f->tx.slot_stride);
}

Test(ring, corrupt_length_returns_ebadmsg_and_the_queue_moves_on)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		char buf[SLOT_SIZE];

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		send_u64(&f.tx, 1);
		send_u64(&f.tx, 2);
		store_relaxed(&slot_hdr(&f, 0)->len, UINT32_MAX); /* hostile peer */
		cr_assert(eq(int, shmq__ring_try_recv(&f.rx, buf, sizeof(buf)), -EBADMSG));
		cr_assert(eq(u64, recv_u64(&f.rx), 2), "mode %u", modes[m]);
		fx_fini(&f);
	}
}

Test(ring, corrupt_length_in_peek_and_batch_returns_ebadmsg)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		char buf[SLOT_SIZE];
		struct iovec iov = {buf, sizeof(buf)};
		const void *msg;

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		send_u64(&f.tx, 1);
		send_u64(&f.tx, 2);
		send_u64(&f.tx, 3);
		store_relaxed(&slot_hdr(&f, 0)->len, SLOT_SIZE + 1);
		store_relaxed(&slot_hdr(&f, 1)->len, SLOT_SIZE + 1);
		cr_assert(eq(int, shmq__ring_peek(&f.rx, &msg), -EBADMSG));
		cr_assert(eq(int, shmq__ring_recv_batch(&f.rx, &iov, 1), -EBADMSG));
		cr_assert(eq(u64, recv_u64(&f.rx), 3));
		fx_fini(&f);
	}
}

Test(ring, tail_moved_past_capacity_is_caught_by_check_and_delivers_nothing)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		struct shmq_queue_shm *q;
		char buf[SLOT_SIZE];

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		q = f.seg.seg.object;
		store_relaxed(&q->tail, N_SLOTS + 1);
		/* The turns are authoritative: a moved index alone delivers nothing. */
		cr_assert(eq(int, shmq__ring_try_recv(&f.rx, buf, sizeof(buf)), -EAGAIN));
		cr_assert(eq(int, shmq__ring_check(&f.rx), -EBADMSG));
		fx_fini(&f);
	}
}

Test(ring, spsc_turn_with_an_owner_gives_ebadmsg_to_both_sides)
{
	struct fx f;
	char buf[SLOT_SIZE];

	fx_init(&f, SHMQ_QMODE_SPSC, N_SLOTS, SLOT_SIZE);
	send_u64(&f.tx, 1);
	/* SPSC never claims: an owner in a turn is a scribble. */
	store_relaxed(&slot_hdr(&f, 0)->state, ((uint64_t)1 << 32) | SHMQ_OWNER_READING | 3);
	store_relaxed(&slot_hdr(&f, 1)->state, ((uint64_t)1 << 32) | SHMQ_OWNER_WRITING | 3);
	cr_assert(eq(int, shmq__ring_try_recv(&f.rx, buf, sizeof(buf)), -EBADMSG));
	cr_assert(eq(int, shmq__ring_try_send(&f.tx, "x", 1), -EBADMSG));
	cr_assert(eq(int, shmq__ring_check(&f.tx), -EBADMSG));
	fx_fini(&f);
}

Test(ring, spsc_successor_skips_turns_its_dead_predecessor_published_or_freed)
{
	struct fx f;
	struct shmq_queue_shm *q;

	fx_init(&f, SHMQ_QMODE_SPSC, N_SLOTS, SLOT_SIZE);
	q = f.seg.seg.object;
	send_u64(&f.tx, 1);
	send_u64(&f.tx, 2);
	cr_assert(eq(u64, recv_u64(&f.rx), 1));
	/* Both died after their turn store but before their index store. */
	store_relaxed(&q->tail, 1);
	store_relaxed(&q->head, 0);
	cr_assert(eq(int, shmq__ring_check(&f.tx), 0), "one behind is a valid state");
	cr_assert(eq(int, shmq__ring_attach(&f.tx, &f.seg.seg, UINT32_MAX), 0));
	cr_assert(eq(int, shmq__ring_attach(&f.rx, &f.seg.seg, UINT32_MAX), 0));
	send_u64(&f.tx, 3);
	cr_assert(eq(u64, recv_u64(&f.rx), 2), "nothing delivered twice");
	cr_assert(eq(u64, recv_u64(&f.rx), 3), "nothing overwritten");
	cr_assert(eq(int, shmq__ring_check(&f.tx), 0));
	fx_fini(&f);
}

Test(ring, scribbled_turn_words_give_ebadmsg_and_never_hang)
{
	uint64_t seed = t_seed();

	for (int round = 0; round < 2000; round++) {
		struct fx f;
		char buf[SLOT_SIZE];
		int rc;

		fx_init(&f, SHMQ_QMODE_MPMC, N_SLOTS, SLOT_SIZE);
		send_u64(&f.tx, 1);
		for (uint32_t i = 0; i < N_SLOTS; i++)
			if (t_rand(&seed) & 1)
				store_relaxed(&slot_hdr(&f, i)->state, t_rand(&seed));
		store_relaxed(&((struct shmq_queue_shm *)f.seg.seg.object)->head,
			      (uint32_t)t_rand(&seed) & 7);
		/* Every call returns; none reads or writes outside the mapping (ASan). */
		for (int k = 0; k < 8; k++) {
			rc = shmq__ring_try_send(&f.tx, "abc", 3);
			cr_assert(rc == 0 || rc == -EAGAIN || rc == -EBADMSG, "send %d", rc);
			rc = shmq__ring_try_recv(&f.rx, buf, sizeof(buf));
			cr_assert(rc >= 0 || rc == -EAGAIN || rc == -EBADMSG, "recv %d", rc);
		}
		(void)shmq__ring_check(&f.tx);
		fx_fini(&f);
	}
}

Test(ring, check_rejects_a_turn_that_belongs_to_another_slot)
{
	struct fx f;

	fx_init(&f, SHMQ_QMODE_MPMC, N_SLOTS, SLOT_SIZE);
	cr_assert(eq(int, shmq__ring_check(&f.tx), 0));
	store_relaxed(&slot_hdr(&f, 1)->state, (uint64_t)3 << 32); /* slot 1 claims position 3 */
	cr_assert(eq(int, shmq__ring_check(&f.tx), -EBADMSG));
	fx_fini(&f);
}

Test(ring, check_rejects_an_owner_that_is_both_reading_and_writing)
{
	struct fx f;

	fx_init(&f, SHMQ_QMODE_MPMC, N_SLOTS, SLOT_SIZE);
	store_relaxed(&slot_hdr(&f, 0)->state, SHMQ_OWNER_WRITING | SHMQ_OWNER_READING | 1);
	cr_assert(eq(int, shmq__ring_check(&f.tx), -EBADMSG));
	fx_fini(&f);
}

/* --- Repair --- */

Test(ring, repair_turns_a_half_written_slot_into_a_skipped_tombstone)
{
	struct fx f;
	struct shmq_ring dead;
	struct shmq_ring_repair rep;
	uint32_t idx;
	void *p;

	fx_init(&f, SHMQ_QMODE_MPMC, N_SLOTS, SLOT_SIZE);
	attach_session(&f, &dead, SHMQ_ROLE_PRODUCER, &idx);
	send_u64(&f.tx, 1);
	cr_assert(eq(int, shmq__ring_reserve(&dead, &p), 0));
	memcpy(p, "half", 4); /* ... and the producer dies here */
	send_u64(&f.tx, 3);

	cr_assert(eq(u64, recv_u64(&f.rx), 1));
	cr_assert(eq(int, shmq__ring_try_recv(&f.rx, &p, sizeof(p)), -EAGAIN),
		  "wedged before repair");
	cr_assert(eq(int, shmq__ring_check(&f.tx), 0), "a held slot is a valid state");

	cr_assert(eq(int, shmq__ring_repair_session(&f.tx, idx + 1, &rep), 1));
	cr_assert(eq(u32, rep.tombstoned, 1));
	cr_assert(eq(u64, recv_u64(&f.rx), 3), "tombstone skipped");
	cr_assert(eq(int, shmq__ring_check(&f.tx), 0));
	cr_assert(eq(u32, load_relaxed(&((struct shmq_queue_shm *)f.seg.seg.object)->repairs), 1));
	fx_fini(&f);
}

Test(ring, repair_redelivers_a_half_read_message_to_another_receiver)
{
	struct fx f;
	struct shmq_ring dead;
	struct shmq_ring_repair rep;
	uint32_t idx;
	const void *msg;

	fx_init(&f, SHMQ_QMODE_MPMC, N_SLOTS, SLOT_SIZE);
	attach_session(&f, &dead, SHMQ_ROLE_CONSUMER, &idx);
	send_u64(&f.tx, 7);
	send_u64(&f.tx, 8);
	cr_assert(eq(int, shmq__ring_peek(&dead, &msg), 8)); /* ... and the consumer dies */

	cr_assert(eq(int, shmq__ring_repair_session(&f.tx, idx + 1, &rep), 1));
	cr_assert(eq(u32, rep.redelivered, 1));
	cr_assert(eq(u64, recv_u64(&f.rx), 8));
	cr_assert(eq(u64, recv_u64(&f.rx), 7), "the half-read message comes back");
	cr_assert(eq(int, shmq__ring_try_recv(&f.rx, &msg, sizeof(msg)), -EAGAIN), "exactly once");
	cr_assert(eq(int, shmq__ring_check(&f.tx), 0));
	fx_fini(&f);
}

Test(ring, repair_redelivers_in_place_when_the_ring_is_full)
{
	struct fx f;
	struct shmq_ring dead;
	struct shmq_ring_repair rep;
	uint32_t idx;
	const void *msg;

	fx_init(&f, SHMQ_QMODE_MPMC, N_SLOTS, SLOT_SIZE);
	attach_session(&f, &dead, SHMQ_ROLE_CONSUMER, &idx);
	for (uint64_t i = 0; i < N_SLOTS; i++)
		send_u64(&f.tx, i);
	cr_assert(eq(int, shmq__ring_peek(&dead, &msg), 8)); /* holds message 0, then dies */
	cr_assert(eq(int, shmq__ring_try_send(&f.tx, "x", 1), -EAGAIN),
		  "full, blocked on the held slot");

	cr_assert(eq(int, shmq__ring_repair_session(&f.tx, idx + 1, &rep), 1));
	cr_assert(eq(u32, rep.redelivered, 1));
	cr_assert(eq(int, shmq__ring_check(&f.tx), 0));
	for (uint64_t i = 1; i < N_SLOTS; i++)
		cr_assert(eq(u64, recv_u64(&f.rx), i));
	cr_assert(eq(u64, recv_u64(&f.rx), 0), "re-delivered behind the queued messages");
	send_u64(&f.tx, 100);
	cr_assert(eq(u64, recv_u64(&f.rx), 100), "the ring is not wedged");
	cr_assert(eq(int, shmq__ring_check(&f.tx), 0));
	fx_fini(&f);
}

/*
 * The daemon killed in the middle of a redelivery: its next start finishes
 * the repair (shmq__ring_repair_resume()).  Each test builds the ring as
 * redeliver() leaves it at one instruction, by hand, then resumes.
 */
#define T_TURN(seq, owner) (((uint64_t)(seq) << 32) | (uint64_t)(owner))

enum cut {
	CUT_TAKEN_OVER,	    /* the claim is the daemon's; nothing copied yet */
	CUT_COPY_CLAIMED,   /* a fresh slot claimed for the copy, not journaled */
	CUT_COPY_JOURNALED, /* the move journaled in the original, copy not published */
	CUT_COPY_PUBLISHED, /* the copy published, the original not yet freed */
	CUT_COPY_TAKEN,	    /* ... and a receiver took the copy before the restart */
};

static struct shmq_slot_hdr *hdr_at(struct fx *f, uint32_t i)
{
	return (struct shmq_slot_hdr *)(f->seg.seg.slots +
					(size_t)i * f->seg.seg.geom.queue.slot_stride);
}

static void cut_redelivery(enum cut cut)
{
	const uint32_t repair = SHMQ_OWNER_REPAIR;
	struct shmq_slot_hdr *orig, *copy;
	struct shmq_ring_repair rep = {0};
	struct shmq_ring dead;
	struct fx f;
	const void *msg;
	uint32_t idx;
	int n;

	fx_init(&f, SHMQ_QMODE_MPMC, 8, SLOT_SIZE);
	attach_session(&f, &dead, SHMQ_ROLE_CONSUMER, &idx);
	send_u64(&f.tx, 7);				     /* position 0 */
	send_u64(&f.tx, 8);				     /* position 1 */
	cr_assert(eq(int, shmq__ring_peek(&dead, &msg), 8)); /* the reader of 7 dies */
	orig = hdr_at(&f, 0);
	copy = hdr_at(&f, 2);

	/* redeliver(): take the claim over ... */
	store_relaxed(&orig->state, T_TURN(1, SHMQ_OWNER_READING | repair));
	if (cut >= CUT_COPY_CLAIMED) {
		/* ... claim position 2 and copy ... */
		store_relaxed(&copy->state, T_TURN(2, SHMQ_OWNER_WRITING | repair));
		store_relaxed(&((struct shmq_queue_shm *)f.seg.seg.object)->tail, 3);
		memcpy(copy + 1, orig + 1, 8);
	}
	if (cut >= CUT_COPY_JOURNALED)
		store_relaxed(&orig->flags, SHMQ_SLOT_MOVED | (2u << SHMQ_SLOT_MOVED_SHIFT));
	if (cut >= CUT_COPY_PUBLISHED) {
		store_relaxed(&copy->len, 8);
		store_relaxed(&copy->flags, SHMQ_SLOT_REDELIVERED);
		store_release(&copy->state, T_TURN(3, 0));
	}
	if (cut == CUT_COPY_TAKEN) {
		cr_assert(eq(u64, recv_u64(&f.rx), 8));
		cr_assert(eq(u64, recv_u64(&f.rx), 7));
	}

	/* The next daemon starts. */
	n = shmq__ring_repair_resume(&f.tx, &rep);
	cr_assert(ge(int, n, 1), "cut %d: nothing finished (%d)", cut, n);
	cr_assert(eq(int, shmq__ring_check(&f.tx), 0), "cut %d: inconsistent ring", cut);
	if (cut != CUT_COPY_TAKEN) {
		cr_assert(eq(u64, recv_u64(&f.rx), 8), "cut %d", cut);
		cr_assert(eq(u64, recv_u64(&f.rx), 7), "cut %d: the message is lost", cut);
	}
	cr_assert(eq(int, shmq__ring_try_recv(&f.rx, &msg, sizeof(msg)), -EAGAIN),
		  "cut %d: delivered twice", cut);
	/* Two laps: no slot stayed held. */
	for (uint64_t i = 0; i < 16; i++) {
		send_u64(&f.tx, 100 + i);
		cr_assert(eq(u64, recv_u64(&f.rx), 100 + i), "cut %d: wedged", cut);
	}
	cr_assert(eq(int, shmq__ring_check(&f.tx), 0));
	fx_fini(&f);
}

Test(ring, a_redelivery_cut_short_by_the_daemons_death_is_finished_exactly_once)
{
	cut_redelivery(CUT_TAKEN_OVER);
	cut_redelivery(CUT_COPY_CLAIMED);
	cut_redelivery(CUT_COPY_JOURNALED);
	cut_redelivery(CUT_COPY_PUBLISHED);
	cut_redelivery(CUT_COPY_TAKEN);
}

Test(ring, resume_leaves_a_ring_without_repair_leftovers_alone)
{
	struct shmq_ring_repair rep = {0};
	struct fx f;

	fx_init(&f, SHMQ_QMODE_MPMC, 8, SLOT_SIZE);
	send_u64(&f.tx, 1);
	cr_assert(eq(int, shmq__ring_repair_resume(&f.tx, &rep), 0));
	cr_assert(eq(u64, recv_u64(&f.rx), 1));
	fx_fini(&f);
}

Test(ring, repair_ignores_other_sessions_and_rejects_a_bad_tag)
{
	struct fx f;
	struct shmq_ring live;
	uint32_t idx;
	void *p;

	fx_init(&f, SHMQ_QMODE_MPMC, N_SLOTS, SLOT_SIZE);
	attach_session(&f, &live, SHMQ_ROLE_PRODUCER, &idx);
	cr_assert(eq(int, shmq__ring_reserve(&live, &p), 0));
	cr_assert(eq(int, shmq__ring_repair_session(&f.tx, idx + 2, NULL), 0));
	cr_assert(eq(int, shmq__ring_repair_session(&f.tx, 0, NULL), -EINVAL));
	cr_assert(eq(int, shmq__ring_commit(&live, 0), 0), "the live claim is untouched");
	fx_fini(&f);
}

Test(ring, spsc_needs_no_repair_after_a_dead_peer)
{
	struct fx f;
	void *p;
	const void *msg;

	fx_init(&f, SHMQ_QMODE_SPSC, N_SLOTS, SLOT_SIZE);
	cr_assert(eq(int, shmq__ring_reserve(&f.tx, &p), 0)); /* producer dies mid-write */
	cr_assert(eq(int, shmq__ring_attach(&f.tx, &f.seg.seg, UINT32_MAX), 0));
	send_u64(&f.tx, 5);
	cr_assert(eq(int, shmq__ring_peek(&f.rx, &msg), 8)); /* consumer dies holding it */
	cr_assert(eq(int, shmq__ring_attach(&f.rx, &f.seg.seg, UINT32_MAX), 0));
	cr_assert(eq(int, shmq__ring_repair_session(&f.tx, 1, NULL), 0));
	cr_assert(eq(u64, recv_u64(&f.rx), 5), "re-delivered by construction");
	fx_fini(&f);
}

Test(ring, batch_recv_stops_before_a_later_message_that_does_not_fit_and_keeps_it)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		char big[40] = {1}, b0[SLOT_SIZE], b1[8], b2[SLOT_SIZE];
		struct iovec iov[2] = {{b0, sizeof(b0)}, {b1, sizeof(b1)}};

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		cr_assert(eq(int, shmq__ring_try_send(&f.tx, "abc", 3), 0));
		cr_assert(eq(int, shmq__ring_try_send(&f.tx, big, sizeof(big)), 0));
		cr_assert(eq(int, shmq__ring_recv_batch(&f.rx, iov, 2), 1), "mode %u", modes[m]);
		cr_assert(eq(sz, iov[0].iov_len, 3));
		cr_assert(eq(int, shmq__ring_try_recv(&f.rx, b2, sizeof(b2)), (int)sizeof(big)),
			  "the message that did not fit is still queued (mode %u)", modes[m]);
		cr_assert(eq(int, shmq__ring_check(&f.tx), 0));
		fx_fini(&f);
	}
}

Test(ring, blocking_batches_time_out_when_nothing_fits_and_refuse_n_zero)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		uint64_t v[4] = {1, 2, 3, 4};
		char bufs[4][SLOT_SIZE];
		struct iovec in[4], out[4];

		fx_init(&f, modes[m], 4, SLOT_SIZE);
		for (int i = 0; i < 4; i++) {
			in[i] = (struct iovec){&v[i], sizeof(v[i])};
			out[i] = (struct iovec){bufs[i], SLOT_SIZE};
		}
		cr_assert(eq(int, shmq__ring_recv_batch_wait(&f.rx, out, 4, t_deadline_ms(10)),
			     -ETIMEDOUT));
		cr_assert(eq(int, shmq__ring_send_batch_wait(&f.tx, in, 0, 0), -EINVAL));
		cr_assert(eq(int, shmq__ring_recv_batch_wait(&f.rx, out, 0, 0), -EINVAL));
		cr_assert(eq(int, shmq__ring_send_batch_wait(&f.tx, in, 4, 0),
			     4)); /* room: at once */
		cr_assert(eq(int, shmq__ring_send_batch_wait(&f.tx, in, 4, t_deadline_ms(10)),
			     -ETIMEDOUT));
		cr_assert(eq(int, shmq__ring_recv_batch_wait(&f.rx, out, 3, 0), 3));
		cr_assert(eq(sz, out[2].iov_len, sizeof(uint64_t)));
		cr_assert(eq(int, shmq__ring_recv_batch_wait(&f.rx, out, 3, 0), 1));
		fx_fini(&f);
	}
}

#define BURSTS	  2000
#define BURST_MAX 7

struct burst_arg {
	struct shmq_ring r;
	uint64_t sum, n_calls, n_msgs;
	int rc;
};

static void *burst_producer(void *p)
{
	struct burst_arg *a = p;
	uint64_t next = 1;

	for (unsigned int b = 0; b < BURSTS && !a->rc; b++) {
		uint64_t v[BURST_MAX];
		struct iovec iov[BURST_MAX];
		unsigned int n = 1 + b % BURST_MAX, done = 0;

		for (unsigned int i = 0; i < n; i++) {
			v[i] = next++;
			iov[i] = (struct iovec){&v[i], sizeof(v[i])};
		}
		while (done < n) {
			int rc = shmq__ring_send_batch_wait(&a->r, iov + done, n - done,
							    t_deadline_ms(5000));

			if (rc < 0) {
				a->rc = rc;
				break;
			}
			done += (unsigned int)rc;
		}
		a->n_msgs += n;
	}
	return NULL;
}

Test(ring, a_blocking_batch_consumer_drains_bursts_in_order)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		struct burst_arg pa = {0};
		uint64_t expect = 1, total = 0, calls = 0, want = 0;
		pthread_t t;

		for (unsigned int b = 0; b < BURSTS; b++)
			want += 1 + b % BURST_MAX;

		fx_init(&f, modes[m], 8, SLOT_SIZE);
		cr_assert(eq(int, shmq__ring_attach(&pa.r, &f.seg.seg, UINT32_MAX), 0));
		cr_assert(eq(int, pthread_create(&t, NULL, burst_producer, &pa), 0));
		while (total < want) {
			uint64_t v[BURST_MAX + 3];
			struct iovec iov[BURST_MAX + 3];
			int rc;

			for (int i = 0; i < BURST_MAX + 3; i++)
				iov[i] = (struct iovec){&v[i], sizeof(v[i])};
			rc = shmq__ring_recv_batch_wait(&f.rx, iov, BURST_MAX + 3,
							t_deadline_ms(5000));
			cr_assert(gt(int, rc, 0), "mode %zu: %d", m, rc);
			for (int i = 0; i < rc; i++)
				cr_assert(eq(u64, v[i], expect++), "in order, none lost");
			total += (uint64_t)rc;
			calls++;
		}
		pthread_join(t, NULL);
		cr_assert(eq(int, pa.rc, 0));
		cr_assert(le(u64, calls, total));
		fx_fini(&f);
	}
}

Test(ring, a_shut_down_queue_refuses_sends_and_drains_then_ends)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		char buf[SLOT_SIZE];
		const void *msg;
		void *rsv;
		struct iovec iov[2] = {{buf, SLOT_SIZE}, {buf, SLOT_SIZE}};

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		send_u64(&f.tx, 1);
		send_u64(&f.tx, 2);
		send_u64(&f.tx, 3);
		cr_assert(eq(u32, shmq__ring_shutdown_state(&f.rx), 0));
		cr_assert(eq(int, shmq__ring_shutdown(&f.rx, false), 0)); /* any handle may */
		cr_assert(eq(u32, shmq__ring_shutdown_state(&f.tx), SHMQ_QUEUE_SHUTDOWN));
		cr_assert(eq(int, shmq__ring_try_send(&f.tx, "x", 1), -EPIPE));
		cr_assert(
			eq(int, shmq__ring_send_wait(&f.tx, "x", 1, t_deadline_ms(5000)), -EPIPE));
		cr_assert(eq(int, shmq__ring_reserve(&f.tx, &rsv), -EPIPE));
		cr_assert(eq(int, shmq__ring_send_batch(&f.tx, iov, 1), -EPIPE));
		cr_assert(shmq__ring_is_ready(&f.tx, true) && shmq__ring_is_ready(&f.rx, false));
		/* what was queued drains, in order, then the end */
		cr_assert(eq(u64, recv_u64(&f.rx), 1));
		cr_assert(eq(int, shmq__ring_recv_batch(&f.rx, iov, 2), 2));
		cr_assert(eq(int, shmq__ring_try_recv(&f.rx, buf, sizeof(buf)), -EPIPE));
		cr_assert(eq(int,
			     shmq__ring_recv_wait(&f.rx, buf, sizeof(buf), t_deadline_ms(5000)),
			     -EPIPE));
		cr_assert(eq(int, shmq__ring_peek(&f.rx, &msg), -EPIPE));
		cr_assert(eq(int, shmq__ring_recv_batch(&f.rx, iov, 2), -EPIPE));
		cr_assert(eq(int, shmq__ring_check(&f.rx), 0));
		fx_fini(&f);
	}
}

Test(ring, an_immediate_shutdown_ends_receiving_at_once_and_stays_immediate)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f;
		char buf[SLOT_SIZE];

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		send_u64(&f.tx, 1);
		cr_assert(eq(int, shmq__ring_shutdown(&f.tx, false), 0));
		cr_assert(eq(int, shmq__ring_shutdown(&f.tx, true), 0));  /* drain -> immediate */
		cr_assert(eq(int, shmq__ring_shutdown(&f.tx, false), 0)); /* never back */
		cr_assert(eq(u32, shmq__ring_shutdown_state(&f.rx), SHMQ_QUEUE_SHUTDOWN_IMMEDIATE));
		cr_assert(eq(int, shmq__ring_try_recv(&f.rx, buf, sizeof(buf)), -EPIPE));
		cr_assert(eq(u32, shmq__ring_depth(&f.rx), 1)); /* left, never delivered */
		fx_fini(&f);
	}
}

struct blocked {
	struct shmq_ring r;
	bool sender;
	int rc;
	uint64_t returned_ns;
};

static void *block_on_ring(void *p)
{
	struct blocked *b = p;
	char buf[SLOT_SIZE] = {0};

	b->rc = b->sender ? shmq__ring_send_wait(&b->r, buf, 8, t_deadline_ms(10000))
			  : shmq__ring_recv_wait(&b->r, buf, sizeof(buf), t_deadline_ms(10000));
	b->returned_ns = shmq__now_ns();
	return NULL;
}

Test(ring, a_shutdown_wakes_blocked_senders_and_receivers)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct fx f, g;
		struct blocked rx = {.sender = false}, tx = {.sender = true};
		pthread_t t1, t2;
		uint64_t t0;

		fx_init(&f, modes[m], 2, SLOT_SIZE); /* empty: the receiver blocks */
		fx_init(&g, modes[m], 2, SLOT_SIZE); /* full: the sender blocks */
		send_u64(&g.tx, 1);
		send_u64(&g.tx, 2);
		cr_assert(eq(int, shmq__ring_attach(&rx.r, &f.seg.seg, UINT32_MAX), 0));
		cr_assert(eq(int, shmq__ring_attach(&tx.r, &g.seg.seg, UINT32_MAX), 0));
		rx.r.spin_ns = tx.r.spin_ns = 0; /* asleep in the kernel at once */
		cr_assert(eq(int, pthread_create(&t1, NULL, block_on_ring, &rx), 0));
		cr_assert(eq(int, pthread_create(&t2, NULL, block_on_ring, &tx), 0));
		for (int i = 0;
		     i < 5000 &&
		     !((load_relaxed(&((struct shmq_queue_shm *)f.seg.seg.object)->ec_recv) & 1) &&
		       (load_relaxed(&((struct shmq_queue_shm *)g.seg.seg.object)->ec_send) & 1));
		     i++)
			usleep(1000);
		t0 = shmq__now_ns();
		cr_assert(eq(int, shmq__ring_shutdown(&f.tx, false), 0));
		cr_assert(eq(int, shmq__ring_shutdown(&g.rx, false), 0));
		pthread_join(t1, NULL);
		pthread_join(t2, NULL);
		cr_assert(eq(int, rx.rc, -EPIPE));
		cr_assert(eq(int, tx.rc, -EPIPE));
		cr_assert(lt(u64, rx.returned_ns - t0, UINT64_C(5000000000)),
			  "woken, not timed out");
		cr_assert(lt(u64, tx.returned_ns - t0, UINT64_C(5000000000)));
		fx_fini(&g);
		fx_fini(&f);
	}
}

/*
 * SPSC batches go as runs (shm/ring.c, spsc_send_run/spsc_recv_run): every
 * message of a run written before any is published, all read before any
 * is freed.  Runs of every length cross the wrap many times, in order,
 * with the lengths each message had; a receive run stops before a message
 * its buffer cannot hold (which the next call reports), and the indices
 * observers read stay exact.
 */
Test(ring, spsc_batch_runs_keep_order_and_lengths_across_the_wrap)
{
	struct fx f;
	unsigned char out[8][SLOT_SIZE], in[8][SLOT_SIZE];
	struct iovec tx[8], rx[8];
	uint64_t next_send = 0, next_recv = 0;

	fx_init(&f, SHMQ_QMODE_SPSC, 8, SLOT_SIZE);
	for (unsigned int round = 0; round < 200; round++) {
		unsigned int k = 1 + round % 8, got;
		int n;

		for (unsigned int i = 0; i < k; i++) {
			uint64_t seq = next_send + i;

			memset(out[i], (int)(seq & 0xff), SLOT_SIZE);
			memcpy(out[i], &seq, sizeof(seq));
			tx[i] = (struct iovec){out[i], 8 + seq % (SLOT_SIZE - 8)};
		}
		n = shmq__ring_send_batch(&f.tx, tx, k);
		cr_assert(eq(int, n, (int)k), "round %u: a run into an empty ring", round);
		next_send += (uint64_t)n;
		cr_assert(eq(int, shmq__ring_check(&f.tx), 0), "round %u", round);
		for (got = 0; got < k;) {
			unsigned int want = 1 + (round + got) % 8;

			for (unsigned int i = 0; i < want; i++)
				rx[i] = (struct iovec){in[i], SLOT_SIZE};
			n = shmq__ring_recv_batch(&f.rx, rx, want);
			cr_assert(gt(int, n, 0), "round %u: %d", round, n);
			for (int i = 0; i < n; i++, next_recv++) {
				uint64_t seq;

				memcpy(&seq, in[i], sizeof(seq));
				cr_assert(eq(u64, seq, next_recv));
				cr_assert(eq(sz, rx[i].iov_len, 8 + seq % (SLOT_SIZE - 8)));
				cr_assert(eq(u8, in[i][rx[i].iov_len - 1],
					     rx[i].iov_len > 8 ? (uint8_t)(seq & 0xff)
							       : ((uint8_t *)&seq)[7]));
			}
			got += (unsigned int)n;
		}
		cr_assert(eq(int, shmq__ring_check(&f.rx), 0), "round %u", round);
	}
	/* A buffer too small for the second message: the run stops before it. */
	tx[0] = (struct iovec){out[0], 8};
	tx[1] = (struct iovec){out[1], 40};
	cr_assert(eq(int, shmq__ring_send_batch(&f.tx, tx, 2), 2));
	rx[0] = (struct iovec){in[0], SLOT_SIZE};
	rx[1] = (struct iovec){in[1], 16};
	cr_assert(eq(int, shmq__ring_recv_batch(&f.rx, rx, 2), 1));
	rx[0] = (struct iovec){in[0], 16};
	cr_assert(eq(int, shmq__ring_recv_batch(&f.rx, rx, 1), -EMSGSIZE), "consumed, reported");
	cr_assert(eq(int, shmq__ring_recv_batch(&f.rx, rx, 1), 0), "empty");
	fx_fini(&f);
}

Test(ring, a_look_sees_queued_messages_in_order_and_takes_none_in_every_mode)
{
	for (size_t m = 0; m < N_MODES; m++) {
		struct shmq_ring view;
		struct shmq_ring_look l;
		struct fx f;
		uint64_t v = 0;
		const void *msg;
		int r;

		fx_init(&f, modes[m], N_SLOTS, SLOT_SIZE);
		cr_assert(eq(int, shmq__ring_attach(&view, &f.seg.seg, UINT32_MAX), 0));
		cr_assert(eq(int, shmq__ring_look(&view, 0, &v, sizeof(v), &l), -ENOENT),
			  "mode %u: empty", modes[m]);
		/* two laps, so positions and turns wrap under the look */
		for (uint64_t lap = 0; lap < 2; lap++) {
			for (uint64_t i = 0; i < 3; i++)
				send_u64(&f.tx, lap * 10 + i);
			for (uint32_t i = 0; i < 3; i++) {
				cr_assert(eq(int, shmq__ring_look(&view, i, &v, sizeof(v), &l), 0),
					  "mode %u lap %" PRIu64 " message %u", modes[m], lap, i);
				cr_assert(eq(u64, v, lap * 10 + i));
				cr_assert(eq(u32, l.len, 8));
				cr_assert(eq(u32, l.copied, 8));
				cr_assert(eq(u32, l.flags, 0));
			}
			cr_assert(eq(int, shmq__ring_look(&view, 3, &v, sizeof(v), &l), -ENOENT));
			cr_assert(eq(u32, shmq__ring_depth(&f.tx), 3), "nothing taken");
			/* a short buffer gets the start of the message */
			cr_assert(eq(int, shmq__ring_look(&view, 1, &v, 2, &l), 0));
			cr_assert(eq(u32, l.copied, 2));
			cr_assert(eq(u32, l.len, 8));
			for (uint64_t i = 0; i < 3; i++)
				cr_assert(eq(u64, recv_u64(&f.rx), lap * 10 + i));
		}
		/*
		 * A message a receiver holds in place: past head where receivers
		 * claim by head (no longer waiting), or still at head where the one
		 * receiver keeps its place to itself; never a torn or wrong one.
		 */
		send_u64(&f.tx, 7);
		send_u64(&f.tx, 8);
		cr_assert(eq(int, shmq__ring_peek(&f.rx, &msg), 8));
		r = shmq__ring_look(&view, 0, &v, sizeof(v), &l);
		cr_assert(r == 0 || r == -ENOENT, "mode %u: %d", modes[m], r);
		cr_assert(r < 0 || v == 7 || v == 8, "mode %u: %" PRIu64, modes[m], v);
		cr_assert(eq(int, shmq__ring_release(&f.rx), 0));
		cr_assert(eq(int, shmq__ring_look(&view, 0, &v, sizeof(v), &l), 0));
		cr_assert(eq(u64, v, 8), "mode %u: after the release, the next", modes[m]);
		cr_assert(eq(u64, recv_u64(&f.rx), 8));
		cr_assert(eq(int, shmq__ring_look(&view, 0, &v, sizeof(v), &l), -ENOENT));
		fx_fini(&f);
	}
}
