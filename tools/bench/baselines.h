/* SPDX-License-Identifier: MIT */
/*
 * The baselines shmq-bench divides every shmq figure by, kept apart from the
 * harness so a reviewer can check in one screen that they are not crippled.
 *
 *   minring        the fastest simple shared-memory ring: SPSC, fixed-size
 *                  messages, power-of-two slots, head and tail on line pairs
 *                  of their own, a cached copy of the other side's index,
 *                  acquire/release and nothing else.  Used through the try
 *                  functions in a spin loop.
 *   minring-futex  the same ring made able to sleep: spin for spin_ns, then
 *                  an eventcount whose waiter bit lives in the futex word
 *                  itself (DESIGN.md, lessons), and a publish that checks for
 *                  sleepers with a plain load ordered by a fence.  Used
 *                  through the wait functions only: try_send never wakes, so
 *                  a ring is driven either by try_* or by *_wait, never both.
 *   fdmsg          whole-message write()/read() on a blocking pipe or Unix
 *                  socket, for the pipe and socketpair baselines.
 *
 * Every function returns >= 0 on success or a negative errno, as in shm/.
 */
#ifndef SHMQ_BENCH_BASELINES_H
#define SHMQ_BENCH_BASELINES_H

#include <stddef.h>
#include <stdint.h>

struct shmq_minring_shm;

struct shmq_minring { /* process-local; one side of one ring */
	struct shmq_minring_shm *s;
	unsigned char *slots;
	uint32_t mask;	   /* n_slots - 1 */
	uint32_t msg_size; /* every message is exactly this long */
	uint32_t pos;	   /* own index: this side is its only writer */
	uint32_t cached;   /* producer: head last seen; consumer: tail last seen */
	uint64_t spin_ns;  /* *_wait: spin budget before sleeping; 0 sleeps at once */
};

/* Bytes of shared memory for a ring of @n_slots (a power of two) x @msg_size. */
size_t shmq__minring_size(uint32_t n_slots, uint32_t msg_size);

/* Make zeroed shared memory of shmq__minring_size() bytes an empty ring. */
void shmq__minring_format(void *base);

/* Attach a handle to a formatted ring; every process does this for itself. */
void shmq__minring_attach(struct shmq_minring *m, void *base, uint32_t n_slots, uint32_t msg_size,
			  uint64_t spin_ns);

/* Copy one message in / out.  Never blocks.  Return: 0, -EAGAIN, -EBADMSG. */
int shmq__minring_try_send(struct shmq_minring *m, const void *msg);
int shmq__minring_try_recv(struct shmq_minring *m, void *buf);

/*
 * Spin-then-futex forms: wait until the message fits (is there) or until
 * @deadline_ns (CLOCK_MONOTONIC), and wake a sleeping peer after publishing.
 * Return: 0, -ETIMEDOUT, -EBADMSG, or an errno from the futex call.
 */
int shmq__minring_send_wait(struct shmq_minring *m, const void *msg, uint64_t deadline_ns);
int shmq__minring_recv_wait(struct shmq_minring *m, void *buf, uint64_t deadline_ns);

/*
 * Write / read exactly @len bytes on a blocking descriptor.  The descriptor
 * never times out by itself: the caller arranges for a signal (without
 * SA_RESTART) to interrupt the call once @deadline_ns has passed, and every
 * EINTR re-checks the deadline.
 * Return: 0 / @len; -ETIMEDOUT; -ECONNRESET the peer closed; or -errno.
 */
int shmq__fdmsg_send(int fd, const void *msg, size_t len, uint64_t deadline_ns);
int shmq__fdmsg_recv(int fd, void *buf, size_t len, uint64_t deadline_ns);

#endif /* SHMQ_BENCH_BASELINES_H */
