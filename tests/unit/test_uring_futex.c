/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for shm/uring_futex.{h,c}: the hand-filled io_uring futex SQEs
 * against the running kernel, and the support probe.
 *
 * The futex words live in a MAP_SHARED memfd, as they do in a real segment,
 * so the kernel keys them as shared futexes.  Every completion is reaped with
 * a timeout: a lost wake-up fails the test instead of hanging it.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tests/helpers.h"
#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/uring_futex.h"

#define REAP_TIMEOUT_MS 2000
#define N_WORDS		4

static struct io_uring ring;
static _Atomic uint32_t *words; /* N_WORDS futex words in a MAP_SHARED memfd */
static int words_fd = -1;

static void setup(void)
{
	void *p;
	int r;

	/* CI may force the fallback for other suites; these tests ask the kernel. */
	unsetenv("SHMQ_URING_FUTEX");

	r = io_uring_queue_init(8, &ring, 0);
	cr_assert(eq(int, r, 0), "io_uring_queue_init: %s", strerror(-r));

	words_fd = memfd_create("test_uring_futex", MFD_CLOEXEC);
	cr_assert(words_fd >= 0, "memfd_create: %s", strerror(errno));
	cr_assert(eq(int, ftruncate(words_fd, 4096), 0));
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, words_fd, 0);
	cr_assert(p != MAP_FAILED, "mmap: %s", strerror(errno));
	words = p;
}

static void teardown(void)
{
	io_uring_queue_exit(&ring);
	munmap((void *)words, 4096);
	close(words_fd);
}

TestSuite(uring_futex, .init = setup, .fini = teardown, .timeout = 10);

/* --- Helpers --- */

static struct io_uring_sqe *get_sqe(uint64_t user_data)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

	cr_assert(sqe != NULL, "submission queue full");
	io_uring_sqe_set_data64(sqe, user_data);
	return sqe;
}

static void submit(int expected)
{
	int r = io_uring_submit(&ring);

	cr_assert(eq(int, r, expected), "io_uring_submit: %d", r);
}

/* Reap one completion within @ms; fails the test if none arrives (a lost wake-up). */
static int reap(unsigned int ms, uint64_t *ret_user_data)
{
	struct __kernel_timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (long long)(ms % 1000) * 1000000,
	};
	struct io_uring_cqe *cqe;
	int r, res;

	r = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
	cr_assert(eq(int, r, 0), "no completion within %u ms: %s", ms, strerror(-r));
	res = cqe->res;
	if (ret_user_data)
		*ret_user_data = io_uring_cqe_get_data64(cqe);
	io_uring_cqe_seen(&ring, cqe);
	return res;
}

static bool completion_pending(void)
{
	struct io_uring_cqe *cqe;

	return io_uring_peek_cqe(&ring, &cqe) == 0;
}

static void prep_wait(uint64_t user_data, _Atomic uint32_t *word, uint32_t expected)
{
	shmq__uring_prep_futex_wait(get_sqe(user_data), word, expected, FUTEX_BITSET_MATCH_ANY,
				    FUTEX2_SIZE_U32, 0);
}

/* --- SQE layout --- */

Test(uring_futex, prep_futex_wait_fills_the_fields_the_kernel_reads)
{
	struct io_uring_sqe sqe;

	memset(&sqe, 0xa5, sizeof(sqe)); /* every field the helper forgets shows up */
	shmq__uring_prep_futex_wait(&sqe, &words[0], 7, FUTEX_BITSET_MATCH_ANY, FUTEX2_SIZE_U32, 0);

	cr_assert(eq(u8, sqe.opcode, 51));
	cr_assert(eq(u8, sqe.flags, 0));
	cr_assert(eq(i32, sqe.fd, FUTEX2_SIZE_U32));
	cr_assert(eq(u64, sqe.addr, (uint64_t)(uintptr_t)&words[0]));
	cr_assert(eq(u64, sqe.addr2, 7));
	cr_assert(eq(u64, sqe.addr3, 0xffffffffu));
	cr_assert(eq(u32, sqe.len, 0));
	cr_assert(eq(int, sqe.rw_flags, 0));
	cr_assert(eq(u16, sqe.buf_index, 0));
	cr_assert(eq(u16, sqe.personality, 0));
	cr_assert(eq(u32, sqe.file_index, 0));
}

Test(uring_futex, prep_futex_waitv_puts_the_vector_in_addr_and_its_length_in_len)
{
	struct futex_waitv v[2] = {
		shmq__uring_futex_waitv_entry(&words[0], 0),
		shmq__uring_futex_waitv_entry(&words[1], 3),
	};
	struct io_uring_sqe sqe;

	memset(&sqe, 0xa5, sizeof(sqe));
	shmq__uring_prep_futex_waitv(&sqe, v, 2, 0);

	cr_assert(eq(u8, sqe.opcode, 53));
	cr_assert(eq(i32, sqe.fd, 0));
	cr_assert(eq(u64, sqe.addr, (uint64_t)(uintptr_t)v));
	cr_assert(eq(u32, sqe.len, 2));
	cr_assert(eq(u64, sqe.addr2, 0));
	cr_assert(eq(u64, sqe.addr3, 0));
	cr_assert(eq(int, sqe.rw_flags, 0));
	cr_assert(eq(u32, v[1].flags, FUTEX2_SIZE_U32), "waitv entries must be shared, 32-bit");
	cr_assert(eq(u64, v[1].val, 3));
}

/* --- Probe --- */

Test(uring_futex, probe_reports_support_on_this_kernel)
{
	cr_assert(eq(int, shmq__uring_futex_probe_uncached(), 1));
	cr_assert(eq(int, shmq__uring_futex_probe(), 1));
	cr_assert(eq(int, shmq__uring_futex_probe(), 1), "cached answer must not change");
}

Test(uring_futex, probe_reports_unsupported_when_environment_forces_fallback_even_after_caching)
{
	cr_assert(eq(int, shmq__uring_futex_probe(), 1)); /* fills the cache */

	cr_assert(eq(int, setenv("SHMQ_URING_FUTEX", "0", 1), 0));
	cr_assert(eq(int, shmq__uring_futex_probe(), 0));
	cr_assert(eq(int, shmq__uring_futex_probe_uncached(), 1), "uncached probe ignores env");

	cr_assert(eq(int, setenv("SHMQ_URING_FUTEX", "1", 1), 0));
	cr_assert(eq(int, shmq__uring_futex_probe(), 1), "only \"0\" forces the fallback");
}

/*
 * Make io_uring_setup(2) fail with @err in this thread, as a container's
 * seccomp policy does.  No architecture check: the filter lives only in this
 * test's process and only has to catch the native syscall.
 */
static void refuse_io_uring_setup(int err)
{
	struct sock_filter insns[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned int)err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(insns) / sizeof(insns[0]), .filter = insns};

	cr_assert(eq(int, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0));
	cr_assert(eq(int, prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0), "seccomp: %s",
		  strerror(errno));
}

Test(uring_futex, probe_reports_unsupported_when_seccomp_refuses_io_uring_with_eperm)
{
	refuse_io_uring_setup(EPERM);

	cr_assert(eq(int, shmq__uring_futex_probe_uncached(), 0));
	cr_assert(eq(int, shmq__uring_futex_probe(), 0));
}

Test(uring_futex, probe_reports_unsupported_when_seccomp_refuses_io_uring_with_enosys)
{
	refuse_io_uring_setup(ENOSYS);

	cr_assert(eq(int, shmq__uring_futex_probe(), 0));
}

/* --- FUTEX_WAIT --- */

Test(uring_futex, futex_wait_with_stale_expected_value_completes_with_eagain)
{
	store_relaxed(&words[0], 5); /* single thread: no ordering needed */
	prep_wait(1, &words[0], 4);
	submit(1);

	cr_assert(eq(int, reap(REAP_TIMEOUT_MS, NULL), -EAGAIN));
}

Test(uring_futex, futex_wait_with_zero_mask_is_rejected_with_einval)
{
	shmq__uring_prep_futex_wait(get_sqe(1), &words[0], 0, 0, FUTEX2_SIZE_U32, 0);
	submit(1);

	cr_assert(eq(int, reap(REAP_TIMEOUT_MS, NULL), -EINVAL));
}

static void *store_and_wake(void *arg)
{
	_Atomic uint32_t *word = arg;

	/* seq_cst: the eventcount order of shm/ (change the word, then wake). */
	store_seq_cst(word, 1);
	return (void *)(intptr_t)shmq__futex_wake(word, 1);
}

Test(uring_futex, futex_wait_is_completed_by_a_futex_wake_syscall_from_another_thread)
{
	pthread_t t;
	void *woken;

	prep_wait(1, &words[0], 0);
	submit(1); /* armed inside submit: the word matched */
	cr_assert(not(completion_pending()), "FUTEX_WAIT completed before any wake");

	cr_assert(eq(int, pthread_create(&t, NULL, store_and_wake, &words[0]), 0));
	cr_assert(eq(int, reap(REAP_TIMEOUT_MS, NULL), 0));
	cr_assert(eq(int, pthread_join(t, &woken), 0));

	cr_assert(eq(int, (int)(intptr_t)woken, 1), "the syscall must count the io_uring waiter");
	cr_assert(eq(u32, load_seq_cst(&words[0]), 1));
}

static int child_store_and_wake(void *arg)
{
	intptr_t woken = (intptr_t)store_and_wake(arg);

	return woken == 1 ? 0 : woken < 0 ? 2 : 3;
}

Test(uring_futex, futex_wait_on_a_shared_memfd_word_is_completed_by_a_wake_from_another_process)
{
	pid_t pid;

	prep_wait(1, &words[0], 0);
	submit(1);
	cr_assert(not(completion_pending()), "FUTEX_WAIT completed before any wake");

	pid = t_fork_peer(child_store_and_wake, (void *)&words[0]);
	cr_assert(eq(int, reap(REAP_TIMEOUT_MS, NULL), 0));

	cr_assert(eq(int, t_wait_peer(pid), 0), "child's FUTEX_WAKE did not find the waiter");
	cr_assert(eq(u32, load_seq_cst(&words[0]), 1));
}

/* --- FUTEX_WAKE --- */

Test(uring_futex, futex_wake_with_no_sleepers_completes_with_zero)
{
	shmq__uring_prep_futex_wake(get_sqe(1), &words[0], 1, FUTEX_BITSET_MATCH_ANY,
				    FUTEX2_SIZE_U32, 0);
	submit(1);

	cr_assert(eq(int, reap(REAP_TIMEOUT_MS, NULL), 0));
}

struct sleeper {
	_Atomic uint32_t *word;
	int r;
};

static void *sleep_on_word(void *arg)
{
	struct sleeper *s = arg;

	/* Nobody changes the word, so only a wake (or the deadline) ends this. */
	s->r = shmq__futex_wait(s->word, 0, t_deadline_ms(5000));
	return NULL;
}

Test(uring_futex, futex_wake_sqe_wakes_a_thread_blocked_in_futex_wait)
{
	struct sleeper s = {.word = &words[0], .r = INT_MIN};
	uint64_t deadline = t_deadline_ms(3000);
	pthread_t t;
	int woken;

	cr_assert(eq(int, pthread_create(&t, NULL, sleep_on_word, &s), 0));

	/* The thread sleeps at some unknown moment: wake until the kernel finds it. */
	do {
		shmq__uring_prep_futex_wake(get_sqe(1), &words[0], 1, FUTEX_BITSET_MATCH_ANY,
					    FUTEX2_SIZE_U32, 0);
		submit(1);
		woken = reap(REAP_TIMEOUT_MS, NULL);
		if (woken == 0)
			usleep(1000);
	} while (woken == 0 && shmq__now_ns() < deadline);

	cr_assert(eq(int, woken, 1));
	cr_assert(eq(int, pthread_join(t, NULL), 0));
	cr_assert(eq(int, s.r, 0), "shmq__futex_wait: %d", s.r);
}

/* --- FUTEX_WAITV --- */

Test(uring_futex, futex_waitv_completes_with_the_index_of_the_woken_word)
{
	struct futex_waitv v[2] = {
		shmq__uring_futex_waitv_entry(&words[0], 0),
		shmq__uring_futex_waitv_entry(&words[1], 0),
	};

	shmq__uring_prep_futex_waitv(get_sqe(1), v, 2, 0);
	submit(1);
	memset(v, 0, sizeof(v)); /* the kernel copied the vector at submit */
	cr_assert(not(completion_pending()), "FUTEX_WAITV completed before any wake");

	store_seq_cst(&words[1], 1); /* eventcount order: change, then wake */
	cr_assert(eq(int, shmq__futex_wake(&words[1], 1), 1));

	cr_assert(eq(int, reap(REAP_TIMEOUT_MS, NULL), 1));
}

Test(uring_futex, futex_waitv_with_one_stale_word_completes_with_eagain)
{
	struct futex_waitv v[2] = {
		shmq__uring_futex_waitv_entry(&words[0], 0),
		shmq__uring_futex_waitv_entry(&words[1], 9),
	};

	shmq__uring_prep_futex_waitv(get_sqe(1), v, 2, 0);
	submit(1);

	cr_assert(eq(int, reap(REAP_TIMEOUT_MS, NULL), -EAGAIN));
}

/* --- Cancellation and timeouts --- */

#define UD_WAIT	   UINT64_C(0x57a1)
#define UD_CANCEL  UINT64_C(0xca2c)
#define UD_TIMEOUT UINT64_C(0x7173)

Test(uring_futex, async_cancel_by_user_data_completes_a_pending_futex_wait_with_ecanceled)
{
	int res_wait = INT_MIN, res_cancel = INT_MIN;

	prep_wait(UD_WAIT, &words[0], 0);
	submit(1);
	cr_assert(not(completion_pending()), "FUTEX_WAIT completed before the cancel");

	io_uring_prep_cancel64(get_sqe(UD_CANCEL), UD_WAIT, 0);
	submit(1);

	for (int i = 0; i < 2; i++) {
		uint64_t ud;
		int res = reap(REAP_TIMEOUT_MS, &ud);

		if (ud == UD_WAIT)
			res_wait = res;
		else if (ud == UD_CANCEL)
			res_cancel = res;
		else
			cr_fail("unexpected completion %#llx", (unsigned long long)ud);
	}
	cr_assert(eq(int, res_wait, -ECANCELED));
	/*
	 * The cancel reports how many requests it found: io_futex_cancel()
	 * returns a count (1 on 6.18) where the other cancel paths return 0.
	 */
	cr_assert(ge(int, res_cancel, 0), "cancel: %s", strerror(-res_cancel));
}

Test(uring_futex, linked_timeout_bounds_a_futex_wait_that_nobody_wakes)
{
	struct __kernel_timespec ts = {.tv_nsec = 20 * 1000000};
	int res_wait = INT_MIN, res_timeout = INT_MIN;
	uint64_t start = shmq__now_ns();
	struct io_uring_sqe *sqe;

	sqe = get_sqe(UD_WAIT);
	shmq__uring_prep_futex_wait(sqe, &words[0], 0, FUTEX_BITSET_MATCH_ANY, FUTEX2_SIZE_U32, 0);
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_prep_link_timeout(get_sqe(UD_TIMEOUT), &ts, 0);
	submit(2);

	for (int i = 0; i < 2; i++) {
		uint64_t ud;
		int res = reap(REAP_TIMEOUT_MS, &ud);

		if (ud == UD_WAIT)
			res_wait = res;
		else if (ud == UD_TIMEOUT)
			res_timeout = res;
		else
			cr_fail("unexpected completion %#llx", (unsigned long long)ud);
	}
	/*
	 * The wait's -ECANCELED is the signal to rely on.  The timeout's own
	 * result is io_try_cancel() ?: -ETIME, and io_futex_cancel() returns
	 * the number it cancelled, so on 6.18 a linked timeout that fires on a
	 * futex wait completes with 1, not -ETIME.  Accept both, in case the
	 * kernel is made consistent with the other cancel paths.
	 */
	cr_assert(eq(int, res_wait, -ECANCELED));
	cr_assert(res_timeout == -ETIME || res_timeout == 1, "timeout completed with %d",
		  res_timeout);
	cr_assert(ge(u64, shmq__now_ns() - start, UINT64_C(20000000)), "timeout fired early");
}
