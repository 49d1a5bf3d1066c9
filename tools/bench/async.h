/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench's asynchronous transports: the same SPSC rings as shmq-futex,
 * but every wait goes through io_uring instead of a futex(2) call.
 *
 *   waiter   the low-level waiter (libclient/waiter.c) on a private ring:
 *            try the ring; if empty (or full), arm, submit, and sleep in
 *            io_uring_enter() for the completion.  No spin, like
 *            shmq-futex, so the two differ only in how the sleep happens.
 *   poller   the whole event loop: a receive future per message
 *            (shmq_poller_recv() + shmq_poller_wait()), and a readiness
 *            future when a send finds the ring full.
 *
 * Either runs on the io_uring FUTEX_WAIT backend or on the helper-thread
 * fallback, chosen when the endpoint opens.  Every function returns >= 0 on
 * success or a negative errno; every wait ends at its absolute deadline.
 */
#ifndef SHMQ_BENCH_ASYNC_H
#define SHMQ_BENCH_ASYNC_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libclient/async.h"
#include "shm/layout.h"
#include "shm/ring.h"

struct shmq_poller;
struct shmq_queue;

enum bench_async_kind {
	BENCH_ASYNC_WAITER,
	BENCH_ASYNC_POLLER,
};

struct bench_async {
	enum bench_async_kind kind;
	bool sending;
	/* waiter */
	struct shmq_ring *ring; /* the endpoint's ring, attached in place */
	struct shmq_waiter w;
	struct io_uring uring;
	bool uring_ready;
	bool waiter_ready;
	/* poller */
	struct shmq_poller *p;
	struct shmq_queue *q;
};

/*
 * Open one end: @ring for BENCH_ASYNC_WAITER, @seg for BENCH_ASYNC_POLLER.
 * @helper: force the helper-thread backend (SHMQ_URING_FUTEX=0 while the
 * waiter or the poller is made).
 */
int bench_async_open(struct bench_async *a, enum bench_async_kind kind, struct shmq_ring *ring,
		     const struct shmq_segment *seg, bool sending, bool helper);
void bench_async_close(struct bench_async *a);

/* Send (waiting for room) and receive (waiting for a message) until @deadline_ns. */
int bench_async_send(struct bench_async *a, const void *msg, size_t len, uint64_t deadline_ns);
int bench_async_recv(struct bench_async *a, void *buf, size_t len, uint64_t deadline_ns);

/* The backend the end actually got: SHMQ_BACKEND_*, for the report. */
int bench_async_backend(const struct bench_async *a);

#endif /* SHMQ_BENCH_ASYNC_H */
