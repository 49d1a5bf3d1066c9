/* SPDX-License-Identifier: MIT */
/* shmq-bench's asynchronous transports; see async.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <shmq/shmq.h>

#include "libclient/handle.h"
#include "shm/futex.h"
#include "tools/bench/async.h"

#define UD_WAIT	  UINT64_C(1)
#define UD_IGNORE UINT64_C(2)
#define CANCEL_MS 1000

/* Make the backend choice for the next waiter or poller made in this process. */
static void backend_force(bool helper)
{
	if (helper)
		setenv("SHMQ_URING_FUTEX", "0", 1);
	else
		unsetenv("SHMQ_URING_FUTEX");
}

int bench_async_open(struct bench_async *a, enum bench_async_kind kind, struct shmq_ring *ring,
		     const struct shmq_segment *seg, bool sending, bool helper)
{
	int r;

	memset(a, 0, sizeof(*a));
	a->kind = kind;
	a->sending = sending;
	backend_force(helper);
	if (kind == BENCH_ASYNC_WAITER) {
		a->ring = ring;
		r = io_uring_queue_init(8, &a->uring, 0);
		if (r < 0)
			return r;
		a->uring_ready = true;
		r = shmq__waiter_init_ring(&a->w, ring, sending, NULL);
		a->waiter_ready = r == 0;
	} else {
		r = shmq__queue_wrap(seg, sending ? SHMQ_SEND : SHMQ_RECV, &a->q);
		if (r == 0)
			r = shmq_poller_new(0, &a->p);
	}
	backend_force(false);
	return r;
}

void bench_async_close(struct bench_async *a)
{
	if (a->waiter_ready)
		(void)shmq__waiter_fini(&a->w);
	if (a->uring_ready)
		io_uring_queue_exit(&a->uring);
	shmq_poller_free(a->p);
	if (a->q)
		(void)shmq_queue_close(a->q);
	memset(a, 0, sizeof(*a));
}

int bench_async_backend(const struct bench_async *a)
{
	if (a->kind == BENCH_ASYNC_POLLER)
		return shmq_poller_backend(a->p);
	return a->w.helper ? SHMQ_BACKEND_HELPER_THREAD : SHMQ_BACKEND_URING_FUTEX;
}

/* Cancel the armed wait and consume its completion (the deadline passed). */
static void cancel(struct bench_async *a)
{
	struct __kernel_timespec ts = {.tv_sec = CANCEL_MS / 1000};
	struct io_uring_sqe *sqe = io_uring_get_sqe(&a->uring);
	struct io_uring_cqe *cqe;

	if (sqe) {
		(void)shmq__waiter_prep_cancel(&a->w, sqe, UD_IGNORE);
		(void)io_uring_submit(&a->uring);
	}
	while (a->w.armed && io_uring_wait_cqe_timeout(&a->uring, &cqe, &ts) == 0) {
		uint64_t ud = io_uring_cqe_get_data64(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&a->uring, cqe);
		if (ud == UD_WAIT)
			(void)shmq__waiter_complete(&a->w, res);
	}
}

/* Sleep in io_uring until the waiter's completion.  Return: 0 re-check; -ETIMEDOUT. */
static int wait_once(struct bench_async *a, uint64_t deadline_ns)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&a->uring);
	int r;

	if (!sqe)
		return -EBUSY; /* every SQE is submitted below: cannot happen */
	r = shmq__waiter_prep(&a->w, sqe, UD_WAIT);
	if (r != 0) {
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, UD_IGNORE);
		(void)io_uring_submit(&a->uring);
		return r == SHMQ_READY ? 0 : r;
	}
	for (;;) {
		uint64_t now = shmq__now_ns(), d = deadline_ns > now ? deadline_ns - now : 0;
		struct __kernel_timespec ts = {.tv_sec = (long long)(d / 1000000000),
					       .tv_nsec = (long long)(d % 1000000000)};
		struct io_uring_cqe *cqe;
		uint64_t ud;
		int res;

		if (d == 0) {
			cancel(a);
			return -ETIMEDOUT;
		}
		r = io_uring_submit_and_wait_timeout(&a->uring, &cqe, 1, &ts, NULL);
		if (r == -ETIME || r == -EINTR)
			continue;
		if (r < 0)
			return r;
		ud = io_uring_cqe_get_data64(cqe);
		res = cqe->res;
		io_uring_cqe_seen(&a->uring, cqe);
		if (ud != UD_WAIT)
			continue;
		r = shmq__waiter_complete(&a->w, res);
		return r == -ECANCELED ? 0 : r;
	}
}

static int poller_wait_ready(struct bench_async *a, unsigned int events, uint64_t deadline_ns)
{
	struct shmq_future *f;
	int r = shmq_poller_ready(a->p, a->q, events, deadline_ns, NULL, NULL, &f);

	if (r < 0)
		return r;
	r = shmq_poller_wait(a->p, &f, 1, SHMQ_WAIT_ALL, SHMQ_FOREVER);
	if (r >= 0)
		r = shmq_future_result(f);
	shmq_future_free(f);
	return r < 0 ? r : 0;
}

int bench_async_send(struct bench_async *a, const void *msg, size_t len, uint64_t deadline_ns)
{
	for (;;) {
		int r = a->kind == BENCH_ASYNC_WAITER ? shmq__ring_try_send(a->ring, msg, len)
						      : shmq_queue_send(a->q, msg, len);

		if (r != -EAGAIN)
			return r;
		r = a->kind == BENCH_ASYNC_WAITER
			    ? wait_once(a, deadline_ns)
			    : poller_wait_ready(a, SHMQ_POLL_SEND, deadline_ns);
		if (r < 0)
			return r;
	}
}

int bench_async_recv(struct bench_async *a, void *buf, size_t len, uint64_t deadline_ns)
{
	struct shmq_future *f;
	int r;

	if (a->kind == BENCH_ASYNC_WAITER) {
		for (;;) {
			r = shmq__ring_try_recv(a->ring, buf, len);
			if (r != -EAGAIN)
				return r;
			r = wait_once(a, deadline_ns);
			if (r < 0)
				return r;
		}
	}
	/* The future delivers the message itself: no separate attempt. */
	r = shmq_poller_recv(a->p, a->q, buf, len, deadline_ns, NULL, NULL, &f);
	if (r < 0)
		return r;
	r = shmq_poller_wait(a->p, &f, 1, SHMQ_WAIT_ALL, SHMQ_FOREVER);
	if (r >= 0)
		r = shmq_future_result(f);
	shmq_future_free(f);
	return r;
}
