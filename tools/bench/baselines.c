/* SPDX-License-Identifier: MIT */
/*
 * Baselines for shmq-bench: the minimal SPSC ring (spin, or spin-then-futex)
 * and whole-message I/O on pipes and sockets.  baselines.h says what each
 * one stands for; this file is kept small so that it can be checked by eye.
 *
 * Ordering -- read before changing:
 *
 *   producer                                  consumer
 *   ----------------------------------------  ----------------------------------------
 *   A2 head = load_acquire(&s->head)     <--  R2 store_release(&s->head, head + 1)
 *   copy message into slot[tail]              (slot reads are complete)
 *   R1 store_release(&s->tail, tail + 1) -->  A1 tail = load_acquire(&s->tail)
 *                                             copy message out of slot[head]
 *
 *   R1/A1 make the slot contents visible before the consumer copies them.
 *   R2/A2 stop the producer overwriting a slot the consumer is still reading.
 *
 * Sleeping (minring-futex).  The consumer sleeps on ec_recv when empty; the
 * producer sleeps on ec_send when full, the mirror image.  Bit 0 of the
 * futex word says "a sleeper is announced", bits 1..31 are an epoch:
 *
 *   waker, after R1 (R2)                      sleeper
 *   ----------------------------------------  ----------------------------------------
 *   F1 fence_seq_cst()                        S1 e = fetch_or_seq_cst(&ec, 1) | 1
 *      e = load_relaxed(&ec)                  S2 if (load_seq_cst(&s->tail) != old) return
 *      if (e & 1)                                futex_wait(&ec, e)
 *          fetch_add_seq_cst(&ec, 1)             -- the kernel re-reads ec under its
 *          futex_wake(&ec)                          hash-bucket lock before sleeping
 *
 *   F1 against S1/S2 is the store-buffering pattern: either the waker sees
 *   the bit, or S2 sees the new index.  The add clears the bit and advances
 *   the epoch in one step, so a sleeper that announced before it finds
 *   ec != e and does not sleep.  Only one side ever clears a given word
 *   (SPSC), so the add never meets another clear; a sleeper announcing while
 *   the bit is already set changes nothing.  The bit is never withdrawn by
 *   its sleeper: at worst the peer's next publish makes one needless wake.
 *
 * Invariants: only the producer writes tail, only the consumer writes head;
 * tail - head <= n_slots in uint32_t arithmetic (indices run free and are
 * only ever compared by unsigned difference).
 */
#include <errno.h>
#include <stdalign.h>
#include <string.h>
#include <unistd.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/layout.h"
#include "tools/bench/baselines.h"

struct shmq_minring_shm {
	alignas(SHMQ_FALSE_SHARING_ALIGN) _Atomic uint32_t tail;    /* producer writes */
	alignas(SHMQ_FALSE_SHARING_ALIGN) _Atomic uint32_t head;    /* consumer writes */
	alignas(SHMQ_FALSE_SHARING_ALIGN) _Atomic uint32_t ec_recv; /* consumer sleeps */
	alignas(SHMQ_FALSE_SHARING_ALIGN) _Atomic uint32_t ec_send; /* producer sleeps */
	alignas(SHMQ_FALSE_SHARING_ALIGN) unsigned char slots[];
};

/* Spin iterations between clock reads: a read costs about a fifth of a hand-off. */
#define SPIN_CLOCK_EVERY 64

size_t shmq__minring_size(uint32_t n_slots, uint32_t msg_size)
{
	return sizeof(struct shmq_minring_shm) + (size_t)n_slots * msg_size;
}

void shmq__minring_format(void *base)
{
	struct shmq_minring_shm *s = base;

	/* Before fork: nobody else can see the words yet. */
	store_relaxed(&s->tail, 0);
	store_relaxed(&s->head, 0);
	store_relaxed(&s->ec_recv, 0);
	store_relaxed(&s->ec_send, 0);
}

void shmq__minring_attach(struct shmq_minring *m, void *base, uint32_t n_slots, uint32_t msg_size,
			  uint64_t spin_ns)
{
	m->s = base;
	m->slots = m->s->slots;
	m->mask = n_slots - 1;
	m->msg_size = msg_size;
	m->cached = 0;
	m->pos = 0;
	m->spin_ns = spin_ns;
}

int shmq__minring_try_send(struct shmq_minring *m, const void *msg)
{
	uint32_t tail = m->pos;

	if (tail - m->cached > m->mask) {
		m->cached = load_acquire(&m->s->head); /* A2: pairs with R2 in try_recv */
		if (tail - m->cached > m->mask)
			return tail - m->cached > m->mask + 1 ? -EBADMSG : -EAGAIN;
	}
	memcpy(m->slots + (size_t)(tail & m->mask) * m->msg_size, msg, m->msg_size);
	store_release(&m->s->tail, tail + 1); /* R1: pairs with A1 in try_recv */
	m->pos = tail + 1;
	return 0;
}

int shmq__minring_try_recv(struct shmq_minring *m, void *buf)
{
	uint32_t head = m->pos;

	if (head == m->cached) {
		m->cached = load_acquire(&m->s->tail); /* A1: pairs with R1 in try_send */
		if (m->cached == head)
			return -EAGAIN;
		if (m->cached - head > m->mask + 1)
			return -EBADMSG;
	}
	memcpy(buf, m->slots + (size_t)(head & m->mask) * m->msg_size, m->msg_size);
	store_release(&m->s->head, head + 1); /* R2: pairs with A2 in try_send */
	m->pos = head + 1;
	return 0;
}

static void wake(_Atomic uint32_t *ec)
{
	fence_seq_cst(); /* F1: pairs with S1/S2 in wait_moved() */
	/* Relaxed: F1 already orders this load after the index store. */
	if (load_relaxed(ec) & 1) {
		fetch_add_seq_cst(ec, 1); /* clear the bit, advance the epoch */
		shmq__futex_wake(ec, 1);
	}
}

/* Wait until the peer moves *@idx away from @old: spin, then sleep on @ec. */
static int wait_moved(const struct shmq_minring *m, _Atomic uint32_t *idx, uint32_t old,
		      _Atomic uint32_t *ec, uint64_t deadline_ns)
{
	uint64_t start_ns = 0;
	unsigned int n = 0;
	int r;

	/* Relaxed: only a hint; the caller's try_* re-reads the index with acquire. */
	while (m->spin_ns > 0 && load_relaxed(idx) == old) {
		if (++n % SPIN_CLOCK_EVERY == 0) {
			uint64_t now = shmq__now_ns();

			if (now >= deadline_ns)
				return -ETIMEDOUT;
			if (start_ns == 0)
				start_ns = now;
			else if (now - start_ns >= m->spin_ns)
				break;
		}
		cpu_relax();
	}

	while (load_relaxed(idx) == old) {		  /* relaxed: a hint, as above */
		uint32_t e = fetch_or_seq_cst(ec, 1) | 1; /* S1: pairs with F1 */

		if (load_seq_cst(idx) != old) /* S2: pairs with F1 */
			break;
		r = shmq__futex_wait(ec, e, deadline_ns);
		if (r == -ETIMEDOUT)
			return load_relaxed(idx) != old ? 0 : -ETIMEDOUT;
		if (r < 0 && r != -EAGAIN)
			return r;
	}
	return 0;
}

int shmq__minring_send_wait(struct shmq_minring *m, const void *msg, uint64_t deadline_ns)
{
	int r;

	while ((r = shmq__minring_try_send(m, msg)) == -EAGAIN) {
		/* Full: m->cached is the head just seen; any move frees a slot. */
		r = wait_moved(m, &m->s->head, m->cached, &m->s->ec_send, deadline_ns);
		if (r < 0)
			return r;
	}
	if (r == 0)
		wake(&m->s->ec_recv);
	return r;
}

int shmq__minring_recv_wait(struct shmq_minring *m, void *buf, uint64_t deadline_ns)
{
	int r;

	while ((r = shmq__minring_try_recv(m, buf)) == -EAGAIN) {
		r = wait_moved(m, &m->s->tail, m->pos, &m->s->ec_recv, deadline_ns);
		if (r < 0)
			return r;
	}
	if (r == 0)
		wake(&m->s->ec_send);
	return r;
}

int shmq__fdmsg_send(int fd, const void *msg, size_t len, uint64_t deadline_ns)
{
	const unsigned char *p = msg;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno != EINTR)
				return errno == EPIPE ? -ECONNRESET : -errno;
			if (shmq__now_ns() >= deadline_ns)
				return -ETIMEDOUT;
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int shmq__fdmsg_recv(int fd, void *buf, size_t len, uint64_t deadline_ns)
{
	unsigned char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (n < 0) {
			if (errno != EINTR)
				return -errno;
			if (shmq__now_ns() >= deadline_ns)
				return -ETIMEDOUT;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		got += (size_t)n;
	}
	return (int)len;
}
