/* SPDX-License-Identifier: MIT */
/*
 * Waiters: one asynchronous wait on a queue or a semaphore, as one io_uring
 * request on the caller's ring.  The public low-level API (shmq_waiter_*)
 * and the poller both go through here.
 *
 * DESIGN
 *
 * Arm.  A waiter first looks without announcing (an attempt is cheaper
 * than a sleep), then runs its kind's arm step (struct shmq_kind.arm in
 * shm/kind.h; the waiter never branches on the kind): for a ring, fetch_or of
 * the waiter bit into the eventcount, the heavy barrier, a re-check
 * (shmq__ring_arm(), argued in shm/ring.c); for a semaphore, an increment
 * of n_waiters and a seq_cst re-check (shmq__sem_arm(), argued in
 * shm/sem.c).  If the re-check finds work, the SQE is left alone and the
 * caller attempts at once (SHMQ_READY).  Otherwise the SQE becomes a
 * FUTEX_WAIT on the word with the key, or -- on the helper backend, or when
 * this process has no heavy barrier and the sleep must be bounded -- a
 * POLL_ADD on the waiter's eventfd, which a helper thread signals.
 *
 * Completion.  Whatever the request reports (woken, -EAGAIN because the
 * word had moved by the time the kernel issued it, a poll mask, or
 * -ECANCELED), it only ever means "look again": the caller re-attempts and
 * re-arms.  shmq__waiter_complete() is the one place the arm is undone, so
 * an announcement that must be withdrawn (a semaphore's n_waiters: the
 * kind's disarm) is withdrawn exactly once per arm: `armed`
 * goes false there and nowhere else, and a second completion is -EINVAL.
 *
 * The backend is chosen per waiter at init (shmq__uring_futex_probe(), which
 * honours SHMQ_URING_FUTEX=0), so that tests can run both in one process.
 */
#include <assert.h>
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "libclient/async.h"
#include "libclient/handle.h"
#include "shm/atomic.h"
#include "shm/uring_futex.h"

static_assert(SHMQ_BACKEND_URING_FUTEX == SHMQ__BACKEND_URING_FUTEX &&
		      SHMQ_BACKEND_HELPER_THREAD == SHMQ__BACKEND_HELPER_THREAD,
	      "public backend names are the internal ones");

int shmq__waiter_init_on(struct shmq_waiter *w, const struct shmq_kind *kind, void *handle,
			 uint32_t events, _Atomic unsigned int *n_users, bool helper)
{
	/* One direction per waiter, and one the kind can wait for. */
	if (!kind || !handle || (events != SHMQ_KIND_EV_RECV && events != SHMQ_KIND_EV_SEND) ||
	    !(kind->events & events))
		return -EINVAL;
	*w = (struct shmq_waiter){.kind = kind,
				  .handle = handle,
				  .events = events,
				  .n_users = n_users,
				  .helper = helper,
				  .efd = -1};
	if (n_users)
		fetch_add_relaxed(n_users, 1); /* read by close in this process only */
	return 0;
}

int shmq__waiter_init(struct shmq_waiter *w, const struct shmq_kind *kind, void *handle,
		      uint32_t events, _Atomic unsigned int *n_users)
{
	int r = shmq__uring_futex_probe();

	if (r < 0)
		return r;
	return shmq__waiter_init_on(w, kind, handle, events, n_users, r == 0);
}

int shmq__waiter_fini(struct shmq_waiter *w)
{
	if (w->armed)
		return -EBUSY;
	if (w->slot)
		shmq__helper_detach(w->slot);
	if (w->efd >= 0)
		close(w->efd);
	if (w->n_users)
		atomic_fetch_sub_explicit(w->n_users, 1, memory_order_relaxed); /* see init */
	w->slot = NULL;
	w->efd = -1;
	w->n_users = NULL;
	return 0;
}

bool shmq__waiter_is_ready(const struct shmq_waiter *w)
{
	return w->kind->is_ready(w->handle, w->events);
}

/* The helper backend's eventfd and entry, made on first use. */
static int helper_ready(struct shmq_waiter *w)
{
	uint64_t drained;
	int r;

	if (w->efd < 0) {
		w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (w->efd < 0)
			return -errno;
	}
	if (!w->slot) {
		r = shmq__helper_attach(w->efd, &w->slot);
		if (r < 0)
			return r;
	}
	/* A fire of an earlier arm must not complete this one: only we read the eventfd. */
	(void)!read(w->efd, &drained, sizeof(drained));
	return 0;
}

int shmq__waiter_prep(struct shmq_waiter *w, struct io_uring_sqe *sqe, uint64_t user_data)
{
	struct shmq_kind_arm arm = {0};
	int r;

	if (w->armed)
		return -EBUSY;
	if (shmq__waiter_is_ready(w))
		return SHMQ_READY;

	/* Set up the helper before announcing: a failure must leave nothing announced. */
	if (w->helper) {
		r = helper_ready(w);
		if (r < 0)
			return r;
	}
	r = w->kind->arm(w->handle, w->events, &arm);
	if (r != 0)
		return SHMQ_READY;
	w->announced = w->kind->disarm != NULL;

	if (arm.bounded && !w->helper) {
		/* No heavy barrier in this process: only a helper can bound the sleep. */
		r = helper_ready(w);
		if (r < 0) {
			if (w->announced)
				w->kind->disarm(w->handle);
			w->announced = false;
			return r;
		}
	}

	w->armed_helper = w->helper || arm.bounded;
	if (w->armed_helper) {
		shmq__helper_arm(w->slot, arm.word, arm.key, arm.bounded);
		io_uring_prep_poll_add(sqe, w->efd, POLLIN);
	} else {
		shmq__uring_prep_futex_wait(sqe, arm.word, arm.key, FUTEX_BITSET_MATCH_ANY,
					    FUTEX2_SIZE_U32, 0);
	}
	io_uring_sqe_set_data64(sqe, user_data);
	w->user_data = user_data;
	w->armed = true;
	return 0;
}

int shmq__waiter_complete(struct shmq_waiter *w, int res)
{
	if (!w->armed)
		return -EINVAL;
	w->armed = false;
	if (w->armed_helper)
		shmq__helper_disarm(w->slot);
	if (w->announced) {
		w->kind->disarm(w->handle);
		w->announced = false;
	}
	/*
	 * FUTEX_WAIT: 0 woken, -EAGAIN the word had moved at issue; POLL_ADD: a
	 * poll mask; -EINTR cannot reach a CQE today but would mean the same.
	 */
	if (res >= 0 || res == -EAGAIN || res == -EINTR)
		return 0;
	return res; /* -ECANCELED, or the kernel refused the request */
}

int shmq__waiter_prep_cancel(struct shmq_waiter *w, struct io_uring_sqe *sqe, uint64_t user_data)
{
	if (!w->armed)
		return -EINVAL;
	io_uring_prep_cancel64(sqe, w->user_data, 0);
	io_uring_sqe_set_data64(sqe, user_data);
	return 0;
}

/* --- Public API --- */

int shmq__waiter_check_object(const struct shmq_object *obj, unsigned int events)
{
	static_assert(SHMQ_POLL_RECV == SHMQ_KIND_EV_RECV && SHMQ_POLL_SEND == SHMQ_KIND_EV_SEND,
		      "the public poll bits are the kinds' event bits");

	if (!obj || !obj->kind || (events != SHMQ_POLL_RECV && events != SHMQ_POLL_SEND) ||
	    !(obj->kind->events & events))
		return -EINVAL;
	return obj->wait_events & events ? 0 : -EBADF;
}

SHMQ_API int shmq_waiter_new(struct shmq_object *obj, unsigned int events, struct shmq_waiter **ret)
{
	struct shmq_waiter *w;
	int r;

	if (!ret)
		return -EINVAL;
	r = shmq__waiter_check_object(obj, events);
	if (r < 0)
		return r;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	r = shmq__waiter_init(w, obj->kind, obj->algo, events, obj->n_waiters);
	if (r < 0) {
		free(w);
		return r;
	}
	*ret = w;
	return 0;
}

SHMQ_API int shmq_waiter_new_queue(struct shmq_queue *q, unsigned int events,
				   struct shmq_waiter **ret)
{
	return shmq_waiter_new(shmq_queue_object(q), events, ret);
}

SHMQ_API int shmq_waiter_new_sem(struct shmq_sem *s, struct shmq_waiter **ret)
{
	return shmq_waiter_new(shmq_sem_object(s), SHMQ_POLL_RECV, ret);
}

SHMQ_API int shmq_waiter_free(struct shmq_waiter *w)
{
	int r;

	if (!w)
		return 0;
	r = shmq__waiter_fini(w);
	if (r < 0)
		return r;
	free(w);
	return 0;
}

SHMQ_API int shmq_waiter_backend(const struct shmq_waiter *w)
{
	if (!w)
		return -EINVAL;
	return w->helper ? SHMQ_BACKEND_HELPER_THREAD : SHMQ_BACKEND_URING_FUTEX;
}

SHMQ_API int shmq_waiter_is_ready(const struct shmq_waiter *w)
{
	if (!w)
		return -EINVAL;
	return shmq__waiter_is_ready(w);
}

SHMQ_API int shmq_waiter_prep(struct shmq_waiter *w, struct io_uring_sqe *sqe, uint64_t user_data)
{
	if (!w || !sqe)
		return -EINVAL;
	return shmq__waiter_prep(w, sqe, user_data);
}

SHMQ_API int shmq_waiter_complete(struct shmq_waiter *w, int res)
{
	if (!w)
		return -EINVAL;
	return shmq__waiter_complete(w, res);
}

SHMQ_API int shmq_waiter_prep_cancel(struct shmq_waiter *w, struct io_uring_sqe *sqe,
				     uint64_t user_data)
{
	if (!w || !sqe)
		return -EINVAL;
	return shmq__waiter_prep_cancel(w, sqe, user_data);
}
