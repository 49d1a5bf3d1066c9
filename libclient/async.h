/* SPDX-License-Identifier: MIT */
/*
 * libshmq internals: asynchronous waits on queues and semaphores.  Never
 * installed.
 *
 * A waiter (libclient/waiter.c) turns "this ring has a message / has room /
 * this semaphore has a token" into one io_uring request that completes when
 * the answer may have changed.  It runs the object's arm step (announce,
 * heavy barrier, re-check: shm/ring.c, shm/sem.c), then prepares either an
 * IORING_OP_FUTEX_WAIT on the object's futex word (kernel 6.7+), or, where
 * the kernel or a policy refuses that, an IORING_OP_POLL_ADD on an eventfd
 * that a helper thread (libclient/helper.c) signals from futex_waitv(2).
 * The poller (libclient/poller.c) is built on waiters; so is the public
 * low-level API.
 */
#ifndef SHMQ_LIBCLIENT_ASYNC_H
#define SHMQ_LIBCLIENT_ASYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/kind.h"
#include "shm/ring.h"
#include "shm/sem.h"

struct io_uring_sqe;
struct shmq_helper_slot;
struct shmq_object;

/* Backends (the public SHMQ_BACKEND_* values). */
#define SHMQ__BACKEND_URING_FUTEX   1
#define SHMQ__BACKEND_HELPER_THREAD 2

struct shmq_waiter {
	const struct shmq_kind *kind;  /* how to wait on @handle (shm/kind.h) */
	void *handle;		       /* the kind's handle: struct shmq_ring, struct shmq_sem */
	uint32_t events;	       /* SHMQ_KIND_EV_*: what to wait for */
	_Atomic unsigned int *n_users; /* the handle's count of waiters, or NULL */
	bool helper;		       /* backend: the helper thread, not FUTEX_WAIT */
	bool armed;		       /* prepared, completion not yet consumed */
	bool armed_helper;	       /* this arm went through the helper thread */
	bool announced;		       /* the arm must be withdrawn (kind->disarm) */
	int efd;		       /* helper: eventfd the ring polls; -1 until needed */
	struct shmq_helper_slot *slot; /* helper: our entry in a helper thread */
	uint64_t user_data;	       /* of the armed request, for cancellation */
};

/*
 * Set up @w to wait for @events on @handle, a process-local handle of
 * @kind.  @n_users: incremented now and decremented by shmq__waiter_fini(),
 * or NULL.  Picks the backend with shmq__uring_futex_probe().
 * Return: 0; -EINVAL @events is not one the kind offers; -errno from the
 *         probe (-ENOMEM, -EMFILE: not a refusal).
 */
int shmq__waiter_init(struct shmq_waiter *w, const struct shmq_kind *kind, void *handle,
		      uint32_t events, _Atomic unsigned int *n_users);

/*
 * shmq__waiter_init() on a backend chosen already (@helper: the helper
 * thread, else io_uring FUTEX_WAIT): a poller's, probed once at its
 * creation, so that a future costs no probe (and no getenv()).
 */
int shmq__waiter_init_on(struct shmq_waiter *w, const struct shmq_kind *kind, void *handle,
			 uint32_t events, _Atomic unsigned int *n_users, bool helper);

/* The same for a ring (@sender: wait for room, else for a message) or a semaphore. */
static inline int shmq__waiter_init_ring(struct shmq_waiter *w, struct shmq_ring *r, bool sender,
					 _Atomic unsigned int *n_users)
{
	return shmq__waiter_init(w, &shmq__kind_queue, r,
				 sender ? SHMQ_KIND_EV_SEND : SHMQ_KIND_EV_RECV, n_users);
}

static inline int shmq__waiter_init_sem(struct shmq_waiter *w, struct shmq_sem *s,
					_Atomic unsigned int *n_users)
{
	return shmq__waiter_init(w, &shmq__kind_sem, s, SHMQ_KIND_EV_RECV, n_users);
}

/*
 * Can @obj's handle wait for @events?  Return: 0; -EINVAL no object, not
 * one direction, or one its kind never offers; -EBADF not opened for it.
 */
int shmq__waiter_check_object(const struct shmq_object *obj, unsigned int events);

/* Release what init and the arms acquired.  Return: 0; -EBUSY armed (nothing done). */
int shmq__waiter_fini(struct shmq_waiter *w);

/* Would an attempt find work now?  Never announces (see shmq__ring_is_ready()). */
bool shmq__waiter_is_ready(const struct shmq_waiter *w);

/*
 * Arm: announce, re-check, and prepare @sqe (user_data @user_data).
 * Return: SHMQ_READY (1) ready now, @sqe untouched; 0 @sqe prepared: consume
 * its completion with shmq__waiter_complete(); -EBUSY already armed;
 * -errno from eventfd(2) or the helper thread (helper backend only).
 */
int shmq__waiter_prep(struct shmq_waiter *w, struct io_uring_sqe *sqe, uint64_t user_data);

/*
 * Consume the completion (@res from the CQE) of the armed request: withdraw
 * a semaphore announcement, release the helper entry.
 * Return: 0 re-check the object; -ECANCELED the request was cancelled;
 *         -EINVAL not armed; another -errno the kernel failed the request.
 */
int shmq__waiter_complete(struct shmq_waiter *w, int res);

/* Prepare an IORING_OP_ASYNC_CANCEL of the armed request.  Return: 0; -EINVAL not armed. */
int shmq__waiter_prep_cancel(struct shmq_waiter *w, struct io_uring_sqe *sqe, uint64_t user_data);

/* --- Helper threads (libclient/helper.c) --- */

/*
 * Reserve an entry in a helper thread (starting one if all are full) that
 * will write 1 to @efd when the word it is armed with changes or is woken.
 * Return: 0; -ENOMEM (also pthread_create()'s EAGAIN); -errno from pthread_create().
 */
int shmq__helper_attach(int efd, struct shmq_helper_slot **ret);

/*
 * Watch @word while it holds @key; @bounded: also fire after at most
 * SHMQ_FENCE_FALLBACK_SLICE_NS (no heavy barrier here).  One-shot: the
 * entry disarms itself when it fires.
 */
void shmq__helper_arm(struct shmq_helper_slot *s, _Atomic uint32_t *word, uint32_t key,
		      bool bounded);

/* Stop watching (no-op if the entry already fired).  @word is not read again. */
void shmq__helper_disarm(struct shmq_helper_slot *s);

/* Give the entry back.  The thread stays (see libclient/helper.c for why). */
void shmq__helper_detach(struct shmq_helper_slot *s);

#endif /* SHMQ_LIBCLIENT_ASYNC_H */
