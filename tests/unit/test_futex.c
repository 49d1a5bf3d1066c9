/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for shm/futex.c: the futex system-call wrappers against the
 * running kernel.
 *
 * The words live in a MAP_SHARED memfd, as they do in a real segment, so the
 * kernel keys them as shared futexes and a forked child sleeps on the same
 * futex as its parent.  Every sleeper has a deadline, and every waker retries
 * FUTEX_WAKE until it reports a sleeper woken: a wake-up that never lands
 * fails the test instead of hanging it.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "tests/helpers.h"

#define N_WORDS		   4
#define WORDS_SIZE	   4096
#define SLEEPER_TIMEOUT_MS 5000 /* a sleeper gives up after this */
#define WAKER_TIMEOUT_MS   4000 /* a waker stops looking for the sleeper after this */

static _Atomic uint32_t *words; /* N_WORDS futex words in a MAP_SHARED memfd */
static int words_fd = -1;

static void setup(void)
{
	void *p;

	words_fd = memfd_create("test_futex", MFD_CLOEXEC);
	cr_assert(words_fd >= 0, "memfd_create: %s", strerror(errno));
	cr_assert(eq(int, ftruncate(words_fd, WORDS_SIZE), 0));
	p = mmap(NULL, WORDS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, words_fd, 0);
	cr_assert(p != MAP_FAILED, "mmap: %s", strerror(errno));
	words = p;
}

static void teardown(void)
{
	if (words)
		munmap((void *)words, WORDS_SIZE);
	if (words_fd >= 0)
		close(words_fd);
	words = NULL;
	words_fd = -1;
}

TestSuite(futex, .init = setup, .fini = teardown, .timeout = 15);

/* --- Helpers --- */

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * Wake @word until FUTEX_WAKE reports one sleeper woken: proof that the
 * sleeper was queued on this very futex (same key) when it was woken.
 */
static void wake_until_one_woken(_Atomic uint32_t *word)
{
	uint64_t deadline = t_deadline_ms(WAKER_TIMEOUT_MS);
	int r;

	while ((r = shmq__futex_wake(word, 1)) == 0) {
		cr_assert(shmq__now_ns() < deadline, "no sleeper ever queued on the word");
		sleep_ms(1);
	}
	cr_assert(eq(int, r, 1));
}

static void *sleep_on_word0(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)shmq__futex_wait(&words[0], 0, t_deadline_ms(SLEEPER_TIMEOUT_MS));
}

static int child_sleep_on_word0(void *arg)
{
	int r;

	(void)arg;
	r = shmq__futex_wait(&words[0], 0, t_deadline_ms(SLEEPER_TIMEOUT_MS));
	return r == 0 ? 0 : 1;
}

static void *waitv_on_all_words(void *arg)
{
	struct shmq_futex_waiter w[N_WORDS];

	(void)arg;
	for (int i = 0; i < N_WORDS; i++)
		w[i] = (struct shmq_futex_waiter){.word = &words[i], .expected = 0};
	return (void *)(intptr_t)shmq__futex_waitv(w, N_WORDS, t_deadline_ms(SLEEPER_TIMEOUT_MS));
}

/* --- Wait --- */

Test(futex, wait_returns_eagain_when_the_word_differs_from_expected)
{
	store_relaxed(&words[0], 1); /* single-threaded setup */

	cr_assert(eq(int, shmq__futex_wait(&words[0], 0, t_deadline_ms(1000)), -EAGAIN));
}

Test(futex, wait_returns_etimedout_no_earlier_than_its_absolute_deadline)
{
	uint64_t deadline = t_deadline_ms(50);

	cr_assert(eq(int, shmq__futex_wait(&words[0], 0, deadline), -ETIMEDOUT));
	cr_assert(ge(u64, shmq__now_ns(), deadline), "returned before the deadline");
}

Test(futex, wait_with_a_past_deadline_returns_etimedout_at_once)
{
	uint64_t t0 = shmq__now_ns();

	cr_assert(eq(int, shmq__futex_wait(&words[0], 0, t0 - 1), -ETIMEDOUT));
	cr_assert(eq(int, shmq__futex_wait(&words[0], 0, 0), -ETIMEDOUT));
	cr_assert(lt(u64, shmq__now_ns() - t0, UINT64_C(50000000)), "a past deadline slept");
}

/* --- Wake --- */

Test(futex, wake_with_no_sleeper_returns_zero)
{
	cr_assert(eq(int, shmq__futex_wake(&words[0], 1), 0));
	cr_assert(eq(int, shmq__futex_wake(&words[0], INT32_MAX), 0));
}

Test(futex, a_thread_woken_by_another_thread_returns_zero)
{
	pthread_t th;
	void *ret;

	cr_assert(eq(int, pthread_create(&th, NULL, sleep_on_word0, NULL), 0));
	wake_until_one_woken(&words[0]);
	cr_assert(eq(int, pthread_join(th, &ret), 0));

	cr_assert(eq(int, (int)(intptr_t)ret, 0));
}

Test(futex, a_forked_process_sleeping_on_a_shared_memfd_word_is_woken_by_its_parent)
{
	pid_t pid = t_fork_peer(child_sleep_on_word0, NULL);

	/* With FUTEX_PRIVATE_FLAG the keys would differ and no wake would land. */
	wake_until_one_woken(&words[0]);

	cr_assert(eq(int, t_wait_peer(pid), 0), "child's futex_wait did not return 0");
}

/* --- Waitv --- */

Test(futex, waitv_returns_the_index_of_the_woken_word)
{
	pthread_t th;
	void *ret;

	cr_assert(eq(int, pthread_create(&th, NULL, waitv_on_all_words, NULL), 0));
	wake_until_one_woken(&words[2]);
	cr_assert(eq(int, pthread_join(th, &ret), 0));

	cr_assert(eq(int, (int)(intptr_t)ret, 2));
}

Test(futex, waitv_returns_eagain_when_any_word_already_differs)
{
	struct shmq_futex_waiter w[2] = {
		{.word = &words[0], .expected = 0},
		{.word = &words[1], .expected = 0},
	};

	store_relaxed(&words[1], 7); /* single-threaded setup */

	cr_assert(eq(int, shmq__futex_waitv(w, 2, t_deadline_ms(1000)), -EAGAIN));
}

Test(futex, waitv_returns_etimedout_no_earlier_than_its_absolute_deadline)
{
	struct shmq_futex_waiter w[1] = {{.word = &words[0], .expected = 0}};
	uint64_t deadline = t_deadline_ms(50);

	cr_assert(eq(int, shmq__futex_waitv(w, 1, deadline), -ETIMEDOUT));
	cr_assert(ge(u64, shmq__now_ns(), deadline), "returned before the deadline");
}

Test(futex, waitv_rejects_an_empty_list_and_more_than_128_words)
{
	static struct shmq_futex_waiter w[SHMQ_FUTEX_WAITV_MAX + 1];

	for (unsigned int i = 0; i < SHMQ_FUTEX_WAITV_MAX + 1; i++)
		w[i] = (struct shmq_futex_waiter){.word = &words[0], .expected = 0};

	cr_assert(eq(int, shmq__futex_waitv(w, 0, t_deadline_ms(1000)), -EINVAL));
	cr_assert(eq(int, shmq__futex_waitv(w, SHMQ_FUTEX_WAITV_MAX + 1, t_deadline_ms(1000)),
		     -EINVAL));
}

/* --- Clock --- */

Test(futex, deadline_after_saturates_at_never_instead_of_wrapping)
{
	uint64_t now = shmq__now_ns();

	cr_assert(eq(u64, shmq__deadline_after_ns(UINT64_MAX), SHMQ_DEADLINE_NEVER));
	cr_assert(eq(u64, shmq__deadline_after_ns(UINT64_MAX - now), SHMQ_DEADLINE_NEVER));
	cr_assert(eq(u64, shmq__deadline_after_ns(UINT64_MAX - 1), SHMQ_DEADLINE_NEVER));
}

Test(futex, deadline_after_adds_the_timeout_to_the_monotonic_clock)
{
	uint64_t before = shmq__now_ns();
	uint64_t d = shmq__deadline_after_ns(UINT64_C(1000000000));
	uint64_t after = shmq__now_ns();

	cr_assert(ge(u64, d, before + UINT64_C(1000000000)));
	cr_assert(le(u64, d, after + UINT64_C(1000000000)));
}
