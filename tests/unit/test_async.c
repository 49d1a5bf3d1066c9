/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for asynchronous waits: the arm and re-check steps of
 * shm/ring.c and shm/sem.c, and the waiters of libclient/waiter.c on a real
 * io_uring, on memfd segments without a daemon.
 *
 * `make test` runs this suite twice: once as the kernel allows (io_uring
 * FUTEX_WAIT on 6.7+), and once with SHMQ_URING_FUTEX=0, which puts every
 * waiter on the helper-thread backend.  The first test checks that the
 * backend is the one the environment asks for, so the second run cannot
 * silently test the first path again.  Every completion is reaped with a
 * timeout: a lost wake-up fails the test instead of hanging it.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>
#include <shmq/shmq.h>

#include "libclient/async.h"
#include "shm/atomic.h"
#include "shm/eventcount.h"
#include "shm/futex.h"
#include "shm/ring.h"
#include "shm/sem.h"
#include "tests/helpers.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define T_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define T_SANITIZED 1
#endif
#endif

#ifdef T_SANITIZED
#define PING_PONGS 3000
#else
#define PING_PONGS 30000
#endif

#define REAP_MS	     2000 /* a woken waiter completes well within this */
#define QUIET_MS     50	  /* a waiter nobody woke stays pending at least this long */
#define N_QUEUES     200  /* more than one helper thread holds */
#define MSG	     "ping"
#define UD_WAIT	     UINT64_C(0x5741)
#define UD_CANCEL    UINT64_C(0xca2c)
#define ALL_MODES(m) for (uint32_t m = 0; m < SHMQ_QMODE_COUNT; m++)

static struct t_seg fx;
static struct shmq_ring rx, tx; /* a receiving and a sending handle on fx's queue */
static struct shmq_sem sem;
static struct io_uring uring;

static void setup(void)
{
	int r = io_uring_queue_init(256, &uring, 0);

	cr_assert(eq(int, r, 0), "io_uring_queue_init: %s", strerror(-r));
}

static void teardown(void)
{
	io_uring_queue_exit(&uring);
	if (fx.base)
		t_seg_free(&fx);
}

TestSuite(async, .init = setup, .fini = teardown, .timeout = 30);

/* --- Helpers --- */

static void queue_new(uint32_t n_slots, uint32_t mode)
{
	if (fx.base)
		t_seg_free(&fx);
	t_seg_new_queue(&fx, n_slots, 64, mode);
	cr_assert(eq(int, shmq__ring_attach(&rx, &fx.seg, UINT32_MAX), 0));
	cr_assert(eq(int, shmq__ring_attach(&tx, &fx.seg, UINT32_MAX), 0));
	rx.spin_ns = tx.spin_ns = 0;
}

static void sem_new(uint32_t initial)
{
	t_seg_new_sem(&fx, initial, 0, 0);
	cr_assert(eq(int, shmq__sem_attach(&sem, &fx.seg, UINT32_MAX), 0));
	sem.spin_ns = 0;
}

static struct shmq_queue_shm *qshm(void)
{
	return fx.seg.object;
}

static struct shmq_sem_shm *sshm(void)
{
	return fx.seg.object;
}

static int expected_backend(void)
{
	const char *e = getenv("SHMQ_URING_FUTEX");

	return e && !strcmp(e, "0") ? SHMQ_BACKEND_HELPER_THREAD : SHMQ_BACKEND_URING_FUTEX;
}

static struct io_uring_sqe *get_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&uring);

	cr_assert(sqe != NULL, "submission queue full");
	return sqe;
}

static void submit(void)
{
	int r = io_uring_submit(&uring);

	cr_assert(ge(int, r, 0), "io_uring_submit: %s", strerror(-r));
}

/* One completion within @ms, or the test fails (a lost wake-up). */
static int reap(unsigned int ms, uint64_t *ret_ud)
{
	struct __kernel_timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000LL};
	struct io_uring_cqe *cqe;
	int r, res;

	r = io_uring_wait_cqe_timeout(&uring, &cqe, &ts);
	cr_assert(eq(int, r, 0), "no completion within %u ms: %s", ms, strerror(-r));
	res = cqe->res;
	if (ret_ud)
		*ret_ud = io_uring_cqe_get_data64(cqe);
	io_uring_cqe_seen(&uring, cqe);
	return res;
}

/* True if a completion arrives within @ms (it is left in the ring). */
static bool completes_within(unsigned int ms)
{
	struct __kernel_timespec ts = {.tv_nsec = ms * 1000000LL};
	struct io_uring_cqe *cqe;

	return io_uring_wait_cqe_timeout(&uring, &cqe, &ts) == 0;
}

/* Arm @w on a fresh SQE and submit it; the object must not be ready. */
static void arm(struct shmq_waiter *w, uint64_t ud)
{
	struct io_uring_sqe *sqe = get_sqe();
	int r = shmq__waiter_prep(w, sqe, ud);

	cr_assert(eq(int, r, 0), "prep: %d", r);
	submit();
}

static void send_one(struct shmq_ring *r)
{
	cr_assert(eq(int, shmq__ring_try_send(r, MSG, sizeof(MSG)), 0));
}

static void fill(struct shmq_ring *r, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		send_one(r);
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* --- Backend --- */

Test(async, waiter_backend_is_the_one_shmq_uring_futex_asks_for)
{
	struct shmq_waiter w;

	queue_new(4, SHMQ_QMODE_MPMC);
	cr_assert(eq(int, shmq__waiter_init_ring(&w, &rx, false, NULL), 0));
	cr_assert(eq(int, w.helper ? SHMQ_BACKEND_HELPER_THREAD : SHMQ_BACKEND_URING_FUTEX,
		     expected_backend()));
	cr_assert(eq(int, shmq__waiter_fini(&w), 0));
}

/* --- Readiness: false exactly where an attempt returns -EAGAIN --- */

Test(async, ring_readiness_follows_the_depth_in_every_mode_across_the_index_wrap)
{
	char buf[64];

	ALL_MODES(mode)
	{
		queue_new(4, mode);
		shmq__queue_reset_origin(&fx.seg, UINT32_MAX - 5);
		cr_assert(eq(int, shmq__ring_attach(&rx, &fx.seg, UINT32_MAX), 0));
		cr_assert(eq(int, shmq__ring_attach(&tx, &fx.seg, UINT32_MAX), 0));
		for (int lap = 0; lap < 3; lap++) {
			for (uint32_t d = 0; d <= 4; d++) {
				cr_assert(eq(int, shmq__ring_is_ready(&rx, false), d > 0),
					  "mode %u depth %u: recv readiness", mode, d);
				cr_assert(eq(int, shmq__ring_is_ready(&tx, true), d < 4),
					  "mode %u depth %u: send readiness", mode, d);
				if (d < 4)
					send_one(&tx);
			}
			for (uint32_t d = 4; d > 0; d--)
				cr_assert(ge(int, shmq__ring_try_recv(&rx, buf, sizeof(buf)), 0));
			cr_assert(not(shmq__ring_is_ready(&rx, false)));
		}
	}
}

Test(async, a_reserved_but_uncommitted_slot_is_not_ready_for_receivers)
{
	void *slot;

	queue_new(4, SHMQ_QMODE_MPMC);
	cr_assert(eq(int, shmq__ring_reserve(&tx, &slot), 0));
	cr_assert(not(shmq__ring_is_ready(&rx, false)), "an attempt would return -EAGAIN");
	cr_assert(eq(int, shmq__ring_commit(&tx, 1), 0));
	cr_assert(shmq__ring_is_ready(&rx, false));
}

Test(async, a_tombstone_reads_as_ready_and_the_attempt_consumes_it)
{
	char buf[64];
	void *slot;

	queue_new(4, SHMQ_QMODE_MPMC);
	cr_assert(eq(int, shmq__ring_reserve(&tx, &slot), 0));
	cr_assert(eq(int, shmq__ring_cancel(&tx), 0));
	cr_assert(shmq__ring_is_ready(&rx, false), "the attempt must run to free the tombstone");
	cr_assert(eq(int, shmq__ring_try_recv(&rx, buf, sizeof(buf)), -EAGAIN));
	cr_assert(not(shmq__ring_is_ready(&rx, false)));
}

Test(async, a_message_being_read_by_another_receiver_is_not_ready)
{
	const void *m;

	queue_new(4, SHMQ_QMODE_MPMC);
	send_one(&tx);
	cr_assert(eq(int, shmq__ring_peek(&tx, &m), (int)sizeof(MSG))); /* tx reads it in place */
	cr_assert(not(shmq__ring_is_ready(&rx, false)));
	cr_assert(eq(int, shmq__ring_release(&tx), 0));
}

/* --- Arm --- */

Test(async, ring_arm_on_an_empty_ring_sets_the_waiter_bit_and_keys_on_the_word)
{
	struct shmq_ring_arm a;

	ALL_MODES(mode)
	{
		queue_new(4, mode);
		cr_assert(eq(int, shmq__ring_arm(&rx, false, &a), 0));
		cr_assert(eq(ptr, (void *)a.word, (void *)&qshm()->ec_recv));
		cr_assert(eq(u32, a.key, load_seq_cst(&qshm()->ec_recv)));
		cr_assert(eq(u32, a.key & 1, 1), "WAITERS is bit 0");
		cr_assert(not(a.bounded), "membarrier works on this machine");
	}
}

Test(async, ring_arm_with_a_message_queued_is_ready_and_announces_nothing)
{
	struct shmq_ring_arm a;

	ALL_MODES(mode)
	{
		queue_new(4, mode);
		send_one(&tx);
		cr_assert(eq(int, shmq__ring_arm(&rx, false, &a), 1));
		cr_assert(eq(u32, load_seq_cst(&qshm()->ec_recv) & 1, 0));
	}
}

Test(async, ring_arm_for_room_on_a_full_ring_keys_on_the_send_eventcount)
{
	struct shmq_ring_arm a;
	char buf[64];

	ALL_MODES(mode)
	{
		queue_new(2, mode);
		fill(&tx, 2);
		cr_assert(eq(int, shmq__ring_arm(&tx, true, &a), 0));
		cr_assert(eq(ptr, (void *)a.word, (void *)&qshm()->ec_send));
		cr_assert(ge(int, shmq__ring_try_recv(&rx, buf, sizeof(buf)), 0));
		cr_assert(ne(u32, load_seq_cst(a.word), a.key), "the receive must move the word");
	}
}

Test(async, a_send_after_the_arm_moves_the_word_off_the_key_and_clears_the_bit)
{
	struct shmq_ring_arm a;

	ALL_MODES(mode)
	{
		queue_new(4, mode);
		cr_assert(eq(int, shmq__ring_arm(&rx, false, &a), 0));
		send_one(&tx);
		cr_assert(ne(u32, load_seq_cst(a.word), a.key));
		cr_assert(eq(u32, load_seq_cst(a.word) & 1, 0));
	}
}

Test(async, sem_arm_with_no_token_counts_a_waiter_and_disarm_withdraws_it)
{
	sem_new(0);
	cr_assert(eq(int, shmq__sem_arm(&sem), 0));
	cr_assert(eq(u32, load_seq_cst(&sshm()->n_waiters), 1));
	shmq__sem_disarm(&sem);
	cr_assert(eq(u32, load_seq_cst(&sshm()->n_waiters), 0));
}

Test(async, sem_arm_with_a_token_is_ready_and_counts_nobody)
{
	sem_new(1);
	cr_assert(eq(int, shmq__sem_arm(&sem), 1));
	cr_assert(eq(u32, load_seq_cst(&sshm()->n_waiters), 0));
	cr_assert(eq(u32, shmq__sem_value(&sem), 1), "arming never takes");
}

struct sleeper {
	struct shmq_sem *sem;
	_Atomic int r;
	_Atomic uint64_t returned_ns;
};

static void *sem_sleeper(void *arg)
{
	struct sleeper *s = arg;
	int r = shmq__sem_wait(s->sem, t_deadline_ms(10000));

	store_release(&s->returned_ns, shmq__now_ns()); /* R: pairs with A in the test */
	store_release(&s->r, r);
	return NULL;
}

Test(async, sem_disarm_passes_the_wake_on_when_a_token_is_left_next_to_a_sleeper)
{
	struct sleeper s = {.sem = &sem, .r = 1};
	struct shmq_sem other;
	uint64_t t0;
	pthread_t t;

	sem_new(0);
	cr_assert(eq(int, shmq__sem_attach(&other, &fx.seg, UINT32_MAX), 0));
	other.spin_ns = 0;
	s.sem = &other;
	cr_assert(eq(int, pthread_create(&t, NULL, sem_sleeper, &s), 0));
	while (load_seq_cst(&sshm()->n_waiters) != 1)
		sleep_ms(1);
	sleep_ms(20); /* let it reach FUTEX_WAIT */

	cr_assert(eq(int, shmq__sem_arm(&sem), 0));
	/* A post whose single wake-up went to us: the token, and no wake for the sleeper. */
	store_seq_cst(&sshm()->value, 1);
	t0 = shmq__now_ns();
	shmq__sem_disarm(&sem); /* we do not take it */
	cr_assert(eq(int, pthread_join(t, NULL), 0));

	cr_assert(eq(int, load_acquire(&s.r), 0)); /* A: pairs with R in the sleeper */
	cr_assert(lt(u64, load_acquire(&s.returned_ns) - t0, UINT64_C(2000000000)),
		  "the sleeper took the token only at its deadline: the wake-up was stranded");
	cr_assert(eq(u32, shmq__sem_value(&sem), 0));
}

/* --- Waiters on a real ring --- */

Test(async, waiter_prep_on_a_ready_queue_returns_ready_and_leaves_the_sqe_alone)
{
	struct io_uring_sqe sqe, before;
	struct shmq_waiter w;

	queue_new(4, SHMQ_QMODE_SPSC);
	send_one(&tx);
	cr_assert(eq(int, shmq__waiter_init_ring(&w, &rx, false, NULL), 0));
	memset(&sqe, 0xa5, sizeof(sqe));
	before = sqe;
	cr_assert(eq(int, shmq__waiter_prep(&w, &sqe, UD_WAIT), SHMQ_READY));
	cr_assert(eq(int, memcmp(&sqe, &before, sizeof(sqe)), 0));
	cr_assert(eq(int, shmq__waiter_complete(&w, 0), -EINVAL), "nothing was armed");
	cr_assert(eq(int, shmq__waiter_fini(&w), 0));
}

Test(async, waiter_armed_twice_returns_ebusy_and_cannot_be_finished_while_armed)
{
	struct io_uring_sqe *sqe;
	struct shmq_waiter w;

	queue_new(4, SHMQ_QMODE_MPMC);
	cr_assert(eq(int, shmq__waiter_init_ring(&w, &rx, false, NULL), 0));
	arm(&w, UD_WAIT);
	sqe = get_sqe();
	cr_assert(eq(int, shmq__waiter_prep(&w, sqe, UD_WAIT), -EBUSY));
	io_uring_prep_nop(sqe); /* taken from the ring: make it harmless */
	io_uring_sqe_set_data64(sqe, UD_CANCEL);
	submit();
	cr_assert(eq(int, shmq__waiter_fini(&w), -EBUSY));
	send_one(&tx);
	for (int i = 0; i < 2; i++) {
		uint64_t ud;
		int res = reap(REAP_MS, &ud);

		if (ud == UD_WAIT)
			cr_assert(eq(int, shmq__waiter_complete(&w, res), 0));
	}
	cr_assert(eq(int, shmq__waiter_fini(&w), 0));
}

struct sender {
	struct shmq_ring *r;
	unsigned int delay_ms;
};

static void *send_later(void *arg)
{
	struct sender *s = arg;

	sleep_ms(s->delay_ms);
	(void)shmq__ring_try_send(s->r, MSG, sizeof(MSG));
	return NULL;
}

Test(async, waiter_armed_on_an_empty_queue_is_completed_by_a_send_from_another_thread)
{
	struct sender s = {.r = &tx, .delay_ms = 20};
	struct shmq_waiter w;
	char buf[64];
	pthread_t t;

	ALL_MODES(mode)
	{
		queue_new(4, mode);
		cr_assert(eq(int, shmq__waiter_init_ring(&w, &rx, false, NULL), 0));
		arm(&w, UD_WAIT);
		cr_assert(not(completes_within(QUIET_MS / 5)), "completed before any send");
		cr_assert(eq(int, pthread_create(&t, NULL, send_later, &s), 0));
		cr_assert(eq(int, shmq__waiter_complete(&w, reap(REAP_MS, NULL)), 0));
		cr_assert(eq(int, pthread_join(t, NULL), 0));
		cr_assert(eq(int, shmq__ring_try_recv(&rx, buf, sizeof(buf)), (int)sizeof(MSG)));
		cr_assert(eq(int, shmq__waiter_fini(&w), 0));
	}
}

static int child_send(void *arg)
{
	struct shmq_ring r;

	(void)arg;
	if (shmq__ring_attach(&r, &fx.seg, UINT32_MAX) < 0)
		return 2;
	sleep_ms(20);
	return shmq__ring_try_send(&r, MSG, sizeof(MSG)) == 0 ? 0 : 3;
}

Test(async, waiter_on_a_shared_memfd_is_completed_by_a_send_from_another_process)
{
	struct shmq_waiter w;
	pid_t pid;

	queue_new(4, SHMQ_QMODE_MPMC);
	cr_assert(eq(int, shmq__waiter_init_ring(&w, &rx, false, NULL), 0));
	arm(&w, UD_WAIT);
	pid = t_fork_peer(child_send, NULL);
	cr_assert(eq(int, shmq__waiter_complete(&w, reap(REAP_MS, NULL)), 0));
	cr_assert(eq(int, t_wait_peer(pid), 0));
	cr_assert(shmq__ring_is_ready(&rx, false));
	cr_assert(eq(int, shmq__waiter_fini(&w), 0));
}

Test(async, waiter_submitted_after_the_word_moved_completes_at_once)
{
	struct shmq_waiter w;

	queue_new(4, SHMQ_QMODE_SPSC);
	cr_assert(eq(int, shmq__waiter_init_ring(&w, &rx, false, NULL), 0));
	cr_assert(eq(int, shmq__waiter_prep(&w, get_sqe(), UD_WAIT), 0));
	send_one(&tx); /* between the re-check and the kernel's compare */
	submit();
	cr_assert(eq(int, shmq__waiter_complete(&w, reap(REAP_MS, NULL)), 0));
	cr_assert(eq(int, shmq__waiter_fini(&w), 0));
}

Test(async, waiter_for_room_is_completed_when_a_receiver_frees_a_slot)
{
	struct shmq_waiter w;
	char buf[64];

	ALL_MODES(mode)
	{
		queue_new(2, mode);
		fill(&tx, 2);
		cr_assert(eq(int, shmq__waiter_init_ring(&w, &tx, true, NULL), 0));
		arm(&w, UD_WAIT);
		cr_assert(not(completes_within(QUIET_MS / 5)), "completed on a full ring");
		cr_assert(ge(int, shmq__ring_try_recv(&rx, buf, sizeof(buf)), 0));
		cr_assert(eq(int, shmq__waiter_complete(&w, reap(REAP_MS, NULL)), 0));
		cr_assert(eq(int, shmq__ring_try_send(&tx, MSG, sizeof(MSG)), 0));
		cr_assert(eq(int, shmq__waiter_fini(&w), 0));
	}
}

Test(async, cancelled_waiter_completes_with_ecanceled)
{
	int res_wait = 1, res_cancel = 1;
	struct io_uring_sqe *sqe;
	struct shmq_waiter w;

	queue_new(4, SHMQ_QMODE_MPMC);
	cr_assert(eq(int, shmq__waiter_init_ring(&w, &rx, false, NULL), 0));
	arm(&w, UD_WAIT);
	cr_assert(eq(int, shmq__waiter_prep_cancel(&w, get_sqe(), UD_CANCEL), 0));
	submit();
	for (int i = 0; i < 2; i++) {
		uint64_t ud;
		int res = reap(REAP_MS, &ud);

		if (ud == UD_WAIT)
			res_wait = res;
		else
			res_cancel = res;
	}
	cr_assert(eq(int, res_wait, -ECANCELED));
	cr_assert(ge(int, res_cancel, 0));
	cr_assert(eq(int, shmq__waiter_complete(&w, res_wait), -ECANCELED));
	sqe = get_sqe();
	cr_assert(eq(int, shmq__waiter_prep_cancel(&w, sqe, UD_CANCEL), -EINVAL));
	io_uring_prep_nop(sqe); /* taken from the ring: make it harmless */
	cr_assert(eq(int, shmq__waiter_fini(&w), 0));
}

Test(async, semaphore_waiter_is_woken_by_a_post_and_withdraws_exactly_once)
{
	struct shmq_waiter w;

	sem_new(0);
	cr_assert(eq(int, shmq__waiter_init_sem(&w, &sem, NULL), 0));
	arm(&w, UD_WAIT);
	cr_assert(eq(u32, load_seq_cst(&sshm()->n_waiters), 1));
	cr_assert(not(completes_within(QUIET_MS / 5)), "completed with no token");
	cr_assert(eq(int, shmq__sem_post(&sem, 1), 0));
	cr_assert(eq(int, shmq__waiter_complete(&w, reap(REAP_MS, NULL)), 0));
	cr_assert(eq(u32, load_seq_cst(&sshm()->n_waiters), 0));
	cr_assert(eq(int, shmq__waiter_complete(&w, 0), -EINVAL), "a second completion");
	cr_assert(eq(u32, load_seq_cst(&sshm()->n_waiters), 0), "withdrawn twice");
	cr_assert(eq(int, shmq__sem_try_wait(&sem), 0));
	cr_assert(eq(int, shmq__waiter_fini(&w), 0));
}

Test(async, cancelled_semaphore_waiter_withdraws_its_announcement)
{
	struct shmq_waiter w;
	uint64_t ud;
	int res = 0;

	sem_new(0);
	cr_assert(eq(int, shmq__waiter_init_sem(&w, &sem, NULL), 0));
	arm(&w, UD_WAIT);
	cr_assert(eq(int, shmq__waiter_prep_cancel(&w, get_sqe(), UD_CANCEL), 0));
	submit();
	for (int i = 0; i < 2; i++) {
		int r = reap(REAP_MS, &ud);

		if (ud == UD_WAIT)
			res = r;
	}
	cr_assert(eq(int, shmq__waiter_complete(&w, res), -ECANCELED));
	cr_assert(eq(u32, load_seq_cst(&sshm()->n_waiters), 0));
	cr_assert(eq(int, shmq__waiter_fini(&w), 0));
}

static struct t_seg many[N_QUEUES];
static struct shmq_ring many_rx[N_QUEUES], many_tx[N_QUEUES];
static struct shmq_waiter many_w[N_QUEUES];

Test(async, waiters_on_many_queues_complete_exactly_for_the_queues_that_got_a_message)
{
	bool done[N_QUEUES] = {false};

	for (int i = 0; i < N_QUEUES; i++) {
		t_seg_new_queue(&many[i], 4, 64, i % 2 ? SHMQ_QMODE_SPSC : SHMQ_QMODE_MPMC);
		cr_assert(eq(int, shmq__ring_attach(&many_rx[i], &many[i].seg, UINT32_MAX), 0));
		cr_assert(eq(int, shmq__ring_attach(&many_tx[i], &many[i].seg, UINT32_MAX), 0));
		cr_assert(eq(int, shmq__waiter_init_ring(&many_w[i], &many_rx[i], false, NULL), 0));
		cr_assert(eq(int, shmq__waiter_prep(&many_w[i], get_sqe(), (uint64_t)i), 0));
	}
	submit();
	cr_assert(not(completes_within(QUIET_MS)), "a waiter completed before any send");

	for (int i = 0; i < N_QUEUES; i += 7)
		cr_assert(eq(int, shmq__ring_try_send(&many_tx[i], MSG, sizeof(MSG)), 0));
	for (int i = 0; i < N_QUEUES; i += 7) {
		uint64_t ud;
		int res = reap(REAP_MS, &ud);

		cr_assert(lt(u64, ud, N_QUEUES));
		cr_assert(eq(u64, ud % 7, 0), "queue %llu completed without a message",
			  (unsigned long long)ud);
		cr_assert(not(done[ud]), "queue %llu completed twice", (unsigned long long)ud);
		done[ud] = true;
		cr_assert(eq(int, shmq__waiter_complete(&many_w[ud], res), 0));
	}
	cr_assert(not(completes_within(QUIET_MS)), "a waiter completed without a message");

	for (int i = 0; i < N_QUEUES; i++)
		if (!done[i])
			cr_assert(eq(int, shmq__ring_try_send(&many_tx[i], MSG, sizeof(MSG)), 0));
	for (int i = 0; i < N_QUEUES; i++) {
		uint64_t ud;
		int res;

		if (done[i])
			continue;
		res = reap(REAP_MS, &ud);
		cr_assert(eq(int, shmq__waiter_complete(&many_w[ud], res), 0));
	}
	for (int i = 0; i < N_QUEUES; i++) {
		cr_assert(eq(int, shmq__waiter_fini(&many_w[i]), 0));
		t_seg_free(&many[i]);
	}
}

/* Make membarrier(2) fail with EPERM in this process, as a strict seccomp policy can. */
static void refuse_membarrier(void)
{
	struct sock_filter insns[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_membarrier, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned int)EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(insns) / sizeof(insns[0]), .filter = insns};

	cr_assert(eq(int, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0));
	cr_assert(eq(int, prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0), "seccomp: %s",
		  strerror(errno));
}

Test(async, waiter_without_a_heavy_barrier_sleeps_in_bounded_slices_on_a_helper)
{
	struct shmq_ring_arm a;
	struct shmq_waiter w;
	uint64_t t0;

	queue_new(4, SHMQ_QMODE_MPMC);
	/* A publisher that relies on our heavy barrier has said so (shm/fence.h). */
	atomic_store(&fx.seg.hdr->asym_fence, 1);
	refuse_membarrier();
	cr_assert(eq(int, shmq__ring_arm(&rx, false, &a), 0));
	cr_assert(a.bounded, "a refused heavy barrier must bound the sleep");

	cr_assert(eq(int, shmq__waiter_init_ring(&w, &rx, false, NULL), 0));
	t0 = shmq__now_ns();
	arm(&w, UD_WAIT);
	cr_assert(w.armed_helper, "only a helper thread can bound an io_uring sleep");
	/* Nobody sends: the slice alone completes it, as a spurious "re-check". */
	cr_assert(eq(int, shmq__waiter_complete(&w, reap(REAP_MS, NULL)), 0));
	cr_assert(lt(u64, shmq__now_ns() - t0, UINT64_C(500000000)));
	cr_assert(eq(int, shmq__waiter_fini(&w), 0));
}

/*
 * The heavy barrier is paid only where a publisher relies on it (layout
 * 1.9, shm/fence.h): by default a sleep issues no membarrier(2), and even
 * a refused one does not bound it.
 */
Test(async, a_default_sleeper_issues_no_heavy_barrier_and_sleeps_unbounded)
{
	struct shmq_ring_arm a;
	uint64_t before;
	char buf[64];

	queue_new(4, SHMQ_QMODE_MPMC);
	before = shmq__fence_heavy_count();
	cr_assert(eq(int,
		     shmq__ring_recv_wait(&rx, buf, sizeof(buf), shmq__deadline_after_ns(2000000)),
		     -ETIMEDOUT));
	cr_assert(eq(int, shmq__ring_arm(&rx, false, &a), 0));
	cr_assert(eq(u64, shmq__fence_heavy_count(), before), "a default sleep paid a membarrier");
	refuse_membarrier();
	cr_assert(eq(int, shmq__ring_arm(&rx, false, &a), 0));
	cr_assert(a.bounded == false, "no publisher relies on the heavy barrier: nothing to bound");
	/* Once one does, every sleeper pays it. */
	atomic_store(&fx.seg.hdr->asym_fence, 1);
	cr_assert(eq(int, shmq__ring_arm(&rx, false, &a), 0));
	cr_assert(a.bounded);
	cr_assert(eq(u64, shmq__fence_heavy_count(), before + 1));
}

/* Child: attach with the asymmetric fence opted in, wait for the sleeper, send one. */
static int asym_publisher(void *arg)
{
	struct shmq_ring ring;
	uint32_t v = 42;

	(void)arg;
	setenv("SHMQ_ASYM_FENCE", "1", 1);
	if (shmq__ring_attach(&ring, &fx.seg, UINT32_MAX) < 0 || !ring.fence.asym)
		return 1;
	/* Until the parent announced its sleep: the flag is still clear then. */
	while (!(atomic_load(&((struct shmq_queue_shm *)fx.seg.object)->ec_recv) & SHMQ_EC_WAITERS))
		;
	t_sleep_ms(20); /* into the kernel's futex wait */
	return shmq__ring_try_send(&ring, &v, sizeof(v)) == 0 ? 0 : 2;
}

/*
 * A publisher that skips the fence, next to a default sleeper that skipped
 * the heavy barrier because the flag was clear when it announced: the
 * publisher's first check sets the flag behind a full fence (T1, X), so it
 * sees the sleeper and wakes it at once, and later sleepers pay H1.
 */
Test(async, an_asymmetric_publisher_wakes_a_sleeper_that_paid_no_heavy_barrier)
{
	uint64_t before, t0;
	uint32_t v = 0;
	pid_t pid;

	queue_new(4, SHMQ_QMODE_SPSC);
	before = shmq__fence_heavy_count();
	pid = t_fork_peer(asym_publisher, NULL);
	t0 = shmq__now_ns();
	cr_assert(eq(int,
		     shmq__ring_recv_wait(&rx, &v, sizeof(v),
					  shmq__deadline_after_ns(UINT64_C(5000000000))),
		     (int)sizeof(v)));
	cr_assert(eq(u32, v, 42));
	cr_assert(lt(u64, shmq__now_ns() - t0, UINT64_C(2000000000)));
	cr_assert(eq(int, t_wait_peer(pid), 0));
	cr_assert(eq(u64, shmq__fence_heavy_count(), before),
		  "the sleep before the flag paid H1, or its wake announced again");
	cr_assert(eq(u32, atomic_load(&fx.seg.hdr->asym_fence), 1), "the publisher set the flag");
	cr_assert(eq(int,
		     shmq__ring_recv_wait(&rx, &v, sizeof(v), shmq__deadline_after_ns(1000000)),
		     -ETIMEDOUT));
	cr_assert(gt(u64, shmq__fence_heavy_count(), before), "a sleep after the flag pays H1");
}

/* --- Round trips between two threads, each on its own ring --- */

struct pinger {
	struct shmq_ring *in, *out;
	struct io_uring ring;
	uint32_t n;
	bool echo;
	_Atomic int err; /* 0, or why it stopped */
};

/* Receive one message from p->in through a waiter, bounded.  Return: 0 or -errno. */
static int async_recv(struct pinger *p, struct shmq_waiter *w, uint32_t *ret)
{
	struct __kernel_timespec ts = {.tv_sec = REAP_MS / 1000};

	for (;;) {
		struct io_uring_cqe *cqe;
		struct io_uring_sqe *sqe;
		int r = shmq__ring_try_recv(p->in, ret, sizeof(*ret));

		if (r != -EAGAIN)
			return r < 0 ? r : 0;
		sqe = io_uring_get_sqe(&p->ring);
		if (!sqe)
			return -EBUSY;
		r = shmq__waiter_prep(w, sqe, 1);
		if (r == SHMQ_READY) {
			io_uring_prep_nop(sqe); /* taken from the ring: make it harmless */
			io_uring_sqe_set_data64(sqe, 2);
			io_uring_submit(&p->ring);
			continue;
		}
		if (r < 0)
			return r;
		io_uring_submit(&p->ring);
		do {
			r = io_uring_wait_cqe_timeout(&p->ring, &cqe, &ts);
			if (r < 0)
				return r == -ETIME ? -ETIMEDOUT : r; /* a lost wake-up */
			r = io_uring_cqe_get_data64(cqe) == 1 ? cqe->res : INT32_MIN;
			io_uring_cqe_seen(&p->ring, cqe);
		} while (r == INT32_MIN);
		r = shmq__waiter_complete(w, r);
		if (r < 0)
			return r;
	}
}

static void *pinger_main(void *arg)
{
	struct pinger *p = arg;
	struct shmq_waiter w;
	int r = shmq__waiter_init_ring(&w, p->in, false, NULL);

	for (uint32_t i = 0; r == 0 && i < p->n; i++) {
		uint32_t v = i;

		if (!p->echo)
			r = shmq__ring_try_send(p->out, &v, sizeof(v));
		if (r == 0)
			r = async_recv(p, &w, &v);
		if (r == 0 && v != i)
			r = -EBADMSG;
		if (r == 0 && p->echo)
			r = shmq__ring_try_send(p->out, &v, sizeof(v));
	}
	(void)shmq__waiter_fini(&w);
	store_release(&p->err, r); /* R: pairs with A in the test */
	return NULL;
}

Test(async, threads_ping_ponging_through_waiters_lose_no_wake_up)
{
	struct t_seg q2;
	struct shmq_ring rx2, tx2;
	struct pinger a = {.in = &rx2, .out = &tx, .n = PING_PONGS};
	struct pinger b = {.in = &rx, .out = &tx2, .n = PING_PONGS, .echo = true};
	pthread_t ta, tb;

	queue_new(4, SHMQ_QMODE_SPSC);
	t_seg_new_queue(&q2, 4, 64, SHMQ_QMODE_SPSC);
	cr_assert(eq(int, shmq__ring_attach(&rx2, &q2.seg, UINT32_MAX), 0));
	cr_assert(eq(int, shmq__ring_attach(&tx2, &q2.seg, UINT32_MAX), 0));
	cr_assert(eq(int, io_uring_queue_init(8, &a.ring, 0), 0));
	cr_assert(eq(int, io_uring_queue_init(8, &b.ring, 0), 0));
	cr_assert(eq(int, pthread_create(&tb, NULL, pinger_main, &b), 0));
	cr_assert(eq(int, pthread_create(&ta, NULL, pinger_main, &a), 0));
	cr_assert(eq(int, pthread_join(ta, NULL), 0));
	cr_assert(eq(int, pthread_join(tb, NULL), 0));
	/* A: pairs with R in pinger_main() */
	cr_assert(eq(int, load_acquire(&a.err), 0), "pinger: %s", strerror(-load_acquire(&a.err)));
	cr_assert(eq(int, load_acquire(&b.err), 0), "echo: %s", strerror(-load_acquire(&b.err)));
	io_uring_queue_exit(&a.ring);
	io_uring_queue_exit(&b.ring);
	t_seg_free(&q2);
}
