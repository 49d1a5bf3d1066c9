/* SPDX-License-Identifier: MIT */
/*
 * The poller: a single-threaded event loop on one io_uring, serving queue
 * and semaphore waiters, file descriptors, timers and futures.
 *
 * DESIGN
 *
 * Everything the loop waits for is an `op`: a watch (persistent, with a
 * callback) or a future (one-shot, with a result).  An op is in at most one
 * of two lists -- `pending` (look at it in the next step) or `due` (a done
 * future whose callback has not run) -- and, when it has a deadline, in a
 * binary heap of deadlines.  At most one SQE of each op is in the kernel at
 * a time (`inflight`); its user_data is the op's address, and every other
 * SQE the loop makes (cancels, no-ops) carries 0 and is ignored.
 *
 * One step of the loop:
 *   1. run the callbacks of done futures;
 *   2. look at every pending op: attempt (a future) or check readiness
 *      (a watch) and call back; if there is nothing, arm its waiter, which
 *      prepares one SQE (see libclient/waiter.c);
 *   3. fire expired timers and future deadlines;
 *   4. submit, and sleep in io_uring_enter() for one completion only if
 *      steps 1-3 did nothing, until the next deadline;
 *   5. reap every completion: bookkeeping only (withdraw the waiter, put
 *      the op back on `pending`), never a callback.
 * Splitting 5 from 2 is what lets a callback free any op at any time: a
 * free cancels the op's request and reaps until its completion has come
 * (the kernel completes a cancelled FUTEX_WAIT or POLL_ADD inside the
 * cancel), so freed memory is never named by a request in flight, and the
 * queue or semaphore it watched can be closed at once.
 *
 * Watches are level-triggered: after its callback a watch goes back to
 * `pending`, so it is called again on the next step while its object stays
 * ready, and armed only once the object is not.  A step that called
 * anything back does not sleep, so a ready watch costs no system call.
 *
 * Futures deliver the message or the token, not readiness: a receive
 * future attempts shmq_queue_recv() into the caller's buffer each time its
 * waiter completes, and re-arms on -EAGAIN (another consumer was first).
 * A deadline takes one last attempt, so a message that arrived with the
 * deadline is delivered rather than left behind.  An acquire future takes
 * the token *before* withdrawing its semaphore announcement, so that the
 * withdrawal's baton (shm/sem.c) does not wake another waiter for a token
 * this one is about to take.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <assert.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "libclient/async.h"
#include "libclient/handle.h"
#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/uring_futex.h"

#define RING_ENTRIES   256
#define CQ_ENTRIES     (RING_ENTRIES * 8)
#define HEAP_NONE      SIZE_MAX
#define CANCEL_WAIT_NS (UINT64_C(1000) * 1000000) /* a cancel completes inside submit */
#define UD_IGNORE      UINT64_C(0)
#define SPARE_MAX      64 /* destroyed ops kept for reuse: a future costs no malloc */

struct list {
	struct list *prev, *next;
};

enum op_src { SRC_OBJECT, SRC_FD, SRC_TIMER, SRC_WAKE };
enum op_fut { FUT_NONE, FUT_RECV, FUT_RECV_BATCH, FUT_ACQUIRE, FUT_READY };

struct op {
	struct shmq_poller *p;
	struct list all;  /* p->ops, until destroyed */
	struct list link; /* p->pending, p->due, a step's batch, or itself */
	uint8_t src;	  /* enum op_src */
	uint8_t fut;	  /* enum op_fut; FUT_NONE for a watch */
	bool inflight;	  /* an SQE of this op is in the kernel */
	bool has_waiter;
	bool dying;   /* being freed: its completion only ends `inflight` */
	bool dead;    /* freed by the user; destroyed once nothing refers to it */
	bool in_cb;   /* its callback is running */
	bool stopped; /* a watch that failed: never armed again */
	bool done;    /* a future with its result */
	bool fired;   /* fd: a completion came in `revents` */
	int err;      /* a failure to report from the next look */
	int revents;  /* fd: the last completion's result */
	size_t heap_idx;
	uint64_t deadline_ns;
	uint64_t interval_ns;
	struct shmq_waiter wt;
	struct shmq_object *obj; /* SRC_OBJECT: any kind's handle (its waiter's) */
	struct shmq_queue *q;	 /* FUT_RECV, FUT_RECV_BATCH */
	struct iovec *iov;	 /* FUT_RECV_BATCH: @n buffers */
	unsigned int n;
	struct shmq_sem *s; /* FUT_ACQUIRE */
	unsigned int events;
	int fd;
	void *buf;
	size_t size;
	int result;
	shmq_watch_fn *wfn;
	shmq_future_fn *ffn;
	void *arg;
};

struct shmq_watch {
	struct op op;
};

struct shmq_future {
	struct op op;
};

static_assert(sizeof(struct shmq_watch) == sizeof(struct op) &&
		      sizeof(struct shmq_future) == sizeof(struct op),
	      "a spare op serves as either");

struct shmq_poller {
	struct io_uring ring;
	int backend;
	int wake_efd;
	struct op wake; /* internal: a POLL_ADD on wake_efd, for shmq_poller_stop() */
	_Atomic bool stop;
	bool closing; /* shmq_poller_free(): take nothing, re-arm nothing */
	int cb_err;   /* first negative callback return of the current run call */
	int depth;    /* run calls on the stack: they do not nest */
	unsigned int n_inflight;
	struct list ops; /* every op not yet destroyed, freed ones included */
	struct list pending;
	struct list due;
	unsigned int n_active; /* watches + pending futures */
	struct op **heap;
	size_t heap_len;
	size_t heap_cap;
	struct op *spare[SPARE_MAX]; /* destroyed ops, for op_new() */
	unsigned int n_spare;
};

/* --- Lists --- */

static void list_init(struct list *l)
{
	l->prev = l->next = l;
}

static bool list_empty(const struct list *l)
{
	return l->next == l;
}

static void list_del_init(struct list *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
	list_init(e);
}

static void list_add_tail(struct list *head, struct list *e)
{
	e->prev = head->prev;
	e->next = head;
	head->prev->next = e;
	head->prev = e;
}

/* Move every entry of @from to the end of @to; @from ends empty. */
static void list_splice_tail_init(struct list *from, struct list *to)
{
	if (list_empty(from))
		return;
	from->next->prev = to->prev;
	to->prev->next = from->next;
	from->prev->next = to;
	to->prev = from->prev;
	list_init(from);
}

#define op_of(l, member) ((struct op *)((char *)(l)-offsetof(struct op, member)))

/* --- Deadline heap --- */

static bool heap_less(const struct shmq_poller *p, size_t a, size_t b)
{
	return p->heap[a]->deadline_ns < p->heap[b]->deadline_ns;
}

static void heap_swap(struct shmq_poller *p, size_t a, size_t b)
{
	struct op *t = p->heap[a];

	p->heap[a] = p->heap[b];
	p->heap[b] = t;
	p->heap[a]->heap_idx = a;
	p->heap[b]->heap_idx = b;
}

static void heap_fix(struct shmq_poller *p, size_t i)
{
	while (i > 0 && heap_less(p, i, (i - 1) / 2)) {
		heap_swap(p, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < p->heap_len && heap_less(p, l, m))
			m = l;
		if (r < p->heap_len && heap_less(p, r, m))
			m = r;
		if (m == i)
			return;
		heap_swap(p, i, m);
		i = m;
	}
}

static int heap_push(struct shmq_poller *p, struct op *op)
{
	if (p->heap_len == p->heap_cap) {
		size_t cap = p->heap_cap ? 2 * p->heap_cap : 16;
		struct op **h = realloc(p->heap, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		p->heap = h;
		p->heap_cap = cap;
	}
	op->heap_idx = p->heap_len;
	p->heap[p->heap_len++] = op;
	heap_fix(p, op->heap_idx);
	return 0;
}

static void heap_remove(struct shmq_poller *p, struct op *op)
{
	size_t i = op->heap_idx;

	if (i == HEAP_NONE)
		return;
	op->heap_idx = HEAP_NONE;
	if (i != --p->heap_len) {
		p->heap[i] = p->heap[p->heap_len];
		p->heap[i]->heap_idx = i;
		heap_fix(p, i);
	}
}

static uint64_t heap_next(const struct shmq_poller *p)
{
	return p->heap_len ? p->heap[0]->deadline_ns : SHMQ_FOREVER;
}

/* --- Submission and completion --- */

static void reap_all(struct shmq_poller *p);

/* An SQE, submitting (and reaping, should the kernel push back) to make room. */
static struct io_uring_sqe *get_sqe(struct shmq_poller *p)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&p->ring);

	for (int i = 0; !sqe && i < 3; i++) {
		(void)io_uring_submit(&p->ring); /* -EBUSY: completions to reap first */
		reap_all(p);
		sqe = io_uring_get_sqe(&p->ring);
	}
	return sqe;
}

static void pend(struct shmq_poller *p, struct op *op)
{
	list_del_init(&op->link);
	list_add_tail(&p->pending, &op->link);
}

static void op_destroy(struct op *op)
{
	struct shmq_poller *p = op->p;

	heap_remove(p, op);
	list_del_init(&op->link);
	list_del_init(&op->all);
	if (op->has_waiter) {
		if (op->wt.armed) /* the ring is going away with the request (poller_free) */
			(void)shmq__waiter_complete(&op->wt, -ECANCELED);
		(void)shmq__waiter_fini(&op->wt);
	}
	if (p->n_spare < SPARE_MAX && !p->closing)
		p->spare[p->n_spare++] = op;
	else
		free(op);
}

static void complete(struct shmq_poller *p, struct op *op, int res);

/* Bookkeeping for one completion; never a callback (see DESIGN). */
static void reap_one(struct shmq_poller *p, uint64_t ud, int res)
{
	struct op *op = (struct op *)(uintptr_t)ud;
	int took = -EAGAIN;
	int r = 0;

	if (ud == UD_IGNORE)
		return;
	op->inflight = false;
	p->n_inflight--;
	switch (op->src) {
	case SRC_OBJECT:
		/* Take first, withdraw after: the withdrawal's baton sees the token gone. */
		if (op->fut == FUT_ACQUIRE && !op->done && !op->dying && !p->closing)
			took = shmq_sem_try_wait(op->s);
		r = shmq__waiter_complete(&op->wt, res);
		if (r < 0 && r != -ECANCELED)
			op->err = r;
		break;
	case SRC_FD:
		op->revents = res;
		op->fired = true;
		break;
	case SRC_WAKE:
		if (!p->closing)
			pend(p, op);
		return; /* embedded in the poller: never destroyed */
	case SRC_TIMER:
		break;
	}
	if (op->dead) {
		/* closing: shmq_poller_free() destroys every op at the end; in_cb: its caller does */
		if (!p->closing && !op->in_cb)
			op_destroy(op);
		return;
	}
	if (op->dying)
		return;
	if (took == 0) {
		complete(p, op, 0);
		return;
	}
	if (op->done || op->stopped || p->closing)
		return;
	pend(p, op);
}

static void reap_all(struct shmq_poller *p)
{
	struct io_uring_cqe *cqe;

	/* One at a time, seen before handled: nothing below may see a CQE twice. */
	while (io_uring_peek_cqe(&p->ring, &cqe) == 0) {
		uint64_t ud = io_uring_cqe_get_data64(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&p->ring, cqe);
		reap_one(p, ud, res);
	}
}

/* Cancel @op's request and reap until its completion has come, bounded. */
static void cancel_sync(struct shmq_poller *p, struct op *op)
{
	struct io_uring_sqe *sqe;
	uint64_t deadline;

	if (!op->inflight)
		return;
	sqe = get_sqe(p);
	if (!sqe)
		return; /* left in flight: destroyed on its completion, see op_free() */
	if (op->has_waiter)
		(void)shmq__waiter_prep_cancel(&op->wt, sqe, UD_IGNORE);
	else
		io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
	io_uring_sqe_set_data64(sqe, UD_IGNORE);

	deadline = shmq__deadline_after_ns(CANCEL_WAIT_NS);
	while (op->inflight && shmq__now_ns() < deadline) {
		struct __kernel_timespec ts = {.tv_nsec = 10 * 1000000};
		struct io_uring_cqe *cqe;

		(void)io_uring_submit_and_wait_timeout(&p->ring, &cqe, 1, &ts, NULL);
		reap_all(p);
	}
}

/* --- Ops --- */

/*
 * A spare op as calloc() would give it, but for the waiter, which
 * attach_waiter() sets whole before anything reads it (has_waiter).  Field
 * by field: a memset of the op compiles to a string store whose start-up
 * costs a tenth of a future on some CPUs.
 */
static void op_reset(struct op *op)
{
	static_assert(sizeof(void *) != 8 || sizeof(struct op) == 240,
		      "a new field of struct op: reset it here");
	op->inflight = op->has_waiter = op->dying = op->dead = false;
	op->in_cb = op->stopped = op->done = op->fired = false;
	op->err = op->revents = 0;
	op->deadline_ns = op->interval_ns = 0;
	op->obj = NULL;
	op->q = NULL;
	op->iov = NULL;
	op->n = 0;
	op->s = NULL;
	op->events = 0;
	op->buf = NULL;
	op->size = 0;
	op->result = 0;
	op->wfn = NULL;
	op->ffn = NULL;
	op->arg = NULL;
}

/* A watch or a future: both are a bare struct op (static_assert above), so any spare fits. */
static struct op *op_new(struct shmq_poller *p, uint8_t src, uint8_t fut)
{
	struct op *op;

	if (p->n_spare) {
		op = p->spare[--p->n_spare];
		op_reset(op);
	} else {
		op = calloc(1, sizeof(*op));
		if (!op)
			return NULL;
	}
	op->p = p;
	op->src = src;
	op->fut = fut;
	op->heap_idx = HEAP_NONE;
	op->fd = -1;
	list_init(&op->link);
	list_init(&op->all);
	return op;
}

/* The user let go of @op: reclaim it now, or once its callback or request ends. */
static void op_free(struct op *op)
{
	struct shmq_poller *p = op->p;

	if (op->dying)
		return;
	if (op->fut == FUT_NONE || !op->done)
		p->n_active--;
	op->dying = true;
	heap_remove(p, op);
	list_del_init(&op->link);
	cancel_sync(p, op);
	/* From here on, a late completion or the end of its callback destroys it. */
	op->dead = true;
	if (!op->inflight && !op->in_cb)
		op_destroy(op);
}

static int attach_waiter(struct op *op)
{
	int r;

	r = shmq__waiter_init_on(&op->wt, op->obj->kind, op->obj->algo, op->events,
				 op->obj->n_waiters, op->p->backend == SHMQ_BACKEND_HELPER_THREAD);
	op->has_waiter = r == 0;
	return r;
}

/* Register a new op with the loop: to be looked at on the next step. */
static int op_start(struct shmq_poller *p, struct op *op, uint64_t deadline_ns)
{
	int r;

	if (deadline_ns != SHMQ_FOREVER) {
		op->deadline_ns = deadline_ns;
		r = heap_push(p, op);
		if (r < 0)
			return r;
	}
	list_add_tail(&p->ops, &op->all);
	p->n_active++;
	if (op->src != SRC_TIMER)
		pend(p, op);
	return 0;
}

/* Arm @op's waiter.  Return: 1 ready now; 0 armed; -errno. */
static int arm_waiter(struct shmq_poller *p, struct op *op)
{
	struct io_uring_sqe *sqe;
	int r;

	if (shmq__waiter_is_ready(&op->wt))
		return 1;
	sqe = get_sqe(p);
	if (!sqe)
		return -EBUSY;
	r = shmq__waiter_prep(&op->wt, sqe, (uint64_t)(uintptr_t)op);
	if (r != 0) {
		/* The SQE is taken from the ring either way: make it harmless. */
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, UD_IGNORE);
		return r == SHMQ_READY ? 1 : r;
	}
	op->inflight = true;
	p->n_inflight++;
	return 0;
}

static int arm_poll(struct shmq_poller *p, struct op *op, int fd, unsigned int events)
{
	struct io_uring_sqe *sqe = get_sqe(p);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, fd, events);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op);
	op->inflight = true;
	p->n_inflight++;
	return 0;
}

/* Call a watch back.  Return: true while @op lives on (it may free itself). */
static bool call_watch(struct shmq_poller *p, struct op *op, int events)
{
	int r;

	op->in_cb = true;
	r = op->wfn((struct shmq_watch *)op, events, op->arg);
	op->in_cb = false;
	if (r < 0 && !p->cb_err)
		p->cb_err = r;
	if (op->dead) {
		if (!op->inflight)
			op_destroy(op);
		return false;
	}
	return true;
}

/* A future is done: record, stop everything it had going, queue its callback. */
static void complete(struct shmq_poller *p, struct op *op, int res)
{
	op->done = true;
	op->result = res;
	p->n_active--;
	heap_remove(p, op);
	list_del_init(&op->link);
	cancel_sync(p, op);
	list_add_tail(&p->due, &op->link);
}

/* One attempt of a future.  Return: its result, or -EAGAIN (nothing yet). */
static int attempt(struct op *op)
{
	switch (op->fut) {
	case FUT_RECV:
		return shmq_queue_recv(op->q, op->buf, op->size);
	case FUT_RECV_BATCH: {
		int r = shmq_queue_recv_batch(op->q, op->iov, op->n);

		return r == 0 ? -EAGAIN : r; /* 0: empty, wait on */
	}
	case FUT_ACQUIRE:
		return shmq_sem_try_wait(op->s);
	case FUT_READY:
		return shmq__waiter_is_ready(&op->wt) ? (int)op->events : -EAGAIN;
	}
	return -EINVAL;
}

static int look_future(struct shmq_poller *p, struct op *op)
{
	int r;

	if (op->err) {
		complete(p, op, op->err);
		return 0;
	}
	for (int tries = 0; tries < 2; tries++) {
		r = attempt(op);
		if (r != -EAGAIN) {
			complete(p, op, r);
			return 0;
		}
		r = arm_waiter(p, op);
		if (r == 0)
			return 0;
		if (r < 0) {
			complete(p, op, r);
			return 0;
		}
	}
	pend(p, op); /* ready, yet the attempt lost the race twice: next step */
	return 0;
}

static int look_watch(struct shmq_poller *p, struct op *op)
{
	int events = (int)op->events; /* a semaphore's token is SHMQ_POLL_RECV (1) */
	int r;

	if (op->err) {
		r = op->err;
		op->err = 0;
		op->stopped = true;
		(void)call_watch(p, op, r);
		return 1;
	}
	r = arm_waiter(p, op);
	if (r == 0)
		return 0;
	if (r < 0) {
		op->stopped = true;
		(void)call_watch(p, op, r);
		return 1;
	}
	if (call_watch(p, op, events) && !op->stopped)
		pend(p, op); /* level-triggered: look again next step */
	return 1;
}

static int look_fd(struct shmq_poller *p, struct op *op)
{
	int n = 0, r;

	if (op->fired) {
		int ev = op->revents;

		op->fired = false;
		n = 1;
		if (ev < 0)
			op->stopped = true;
		if (!call_watch(p, op, ev) || op->stopped)
			return n;
	}
	r = arm_poll(p, op, op->fd, op->events);
	if (r < 0) {
		op->stopped = true;
		(void)call_watch(p, op, r);
		n = 1;
	}
	return n;
}

static int look(struct shmq_poller *p, struct op *op)
{
	if (op->src == SRC_WAKE) {
		uint64_t v;

		(void)!read(p->wake_efd, &v, sizeof(v)); /* nonblocking: EAGAIN when empty */
		(void)arm_poll(p, op, p->wake_efd, POLLIN);
		return 0;
	}
	if (op->fut != FUT_NONE)
		return look_future(p, op);
	if (op->src == SRC_FD)
		return look_fd(p, op);
	return look_watch(p, op);
}

static int run_due(struct shmq_poller *p)
{
	int n = 0;

	while (!list_empty(&p->due) && !p->cb_err) {
		struct op *op = op_of(p->due.next, link);
		int r = 0;

		list_del_init(&op->link);
		n++;
		if (!op->ffn)
			continue;
		op->in_cb = true;
		r = op->ffn((struct shmq_future *)op, op->result, op->arg);
		op->in_cb = false;
		if (r < 0 && !p->cb_err)
			p->cb_err = r;
		if (op->dead && !op->inflight)
			op_destroy(op);
	}
	return n;
}

static int run_timers(struct shmq_poller *p)
{
	uint64_t now;
	int n = 0;

	if (!p->heap_len)
		return 0; /* no clock read: a stream of futures without deadlines reads none */
	now = shmq__now_ns();
	while (p->heap_len && p->heap[0]->deadline_ns <= now && !p->cb_err) {
		struct op *op = p->heap[0];

		heap_remove(p, op);
		if (op->src == SRC_TIMER) {
			uint64_t k = 1;

			if (op->interval_ns) {
				k += (now - op->deadline_ns) / op->interval_ns;
				op->deadline_ns += k * op->interval_ns;
				if (heap_push(p, op) < 0) /* cannot fail: the slot was just freed */
					op->stopped = true;
			}
			(void)call_watch(p, op, k > INT32_MAX ? INT32_MAX : (int)k);
			n++;
		} else {
			/*
			 * One last look: never time out past a message that is
			 * there.  Deadline 0 is the try form (shmq.h): -EAGAIN.
			 */
			int r = attempt(op);

			if (r == -EAGAIN && op->deadline_ns != 0)
				r = -ETIMEDOUT;
			complete(p, op, r);
		}
	}
	return n;
}

/* Submit; sleep for one completion until @until only if @block.  Return: 0 or -errno. */
static int flush(struct shmq_poller *p, bool block, uint64_t until)
{
	struct io_uring_cqe *cqe;
	uint64_t now;
	int r;

	if (block) {
		now = shmq__now_ns();
		if (until <= now) {
			block = false;
		} else if (until == SHMQ_FOREVER) {
			r = io_uring_submit_and_wait(&p->ring, 1);
			goto out;
		} else {
			uint64_t d = until - now;
			struct __kernel_timespec ts = {
				.tv_sec = (long long)(d / 1000000000),
				.tv_nsec = (long long)(d % 1000000000),
			};

			r = io_uring_submit_and_wait_timeout(&p->ring, &cqe, 1, &ts, NULL);
			goto out;
		}
	}
	r = io_uring_submit(&p->ring);
out:
	/* Timeouts, signals and a full completion queue only mean "reap and go on". */
	if (r >= 0 || r == -ETIME || r == -EINTR || r == -EBUSY || r == -EAGAIN)
		return 0;
	return r;
}

/*
 * One step (see DESIGN).  @stoppable: a pending shmq_poller_stop() keeps the
 * step from sleeping (the run calls consume it; shmq_poller_wait() leaves it).
 */
static int step(struct shmq_poller *p, uint64_t deadline_ns, bool stoppable)
{
	struct list batch;
	uint64_t until;
	bool block;
	int n, r;

	n = run_due(p);
	list_init(&batch);
	list_splice_tail_init(&p->pending, &batch);
	while (!list_empty(&batch) && !p->cb_err) {
		struct op *op = op_of(batch.next, link);

		list_del_init(&op->link);
		n += look(p, op);
	}
	list_splice_tail_init(&batch, &p->pending); /* a callback failed: keep the rest */
	if (!p->cb_err)
		n += run_timers(p);
	if (!p->cb_err)
		n += run_due(p);

	block = n == 0 && !p->cb_err && list_empty(&p->pending) && list_empty(&p->due) &&
		!(stoppable && load_acquire(&p->stop)); /* A: pairs with R in shmq_poller_stop() */
	until = heap_next(p);
	if (deadline_ns < until)
		until = deadline_ns;
	r = flush(p, block, until);
	reap_all(p);
	return r < 0 ? r : n;
}

/* --- Public API --- */

SHMQ_API int shmq_poller_new(unsigned int flags, struct shmq_poller **ret)
{
	struct io_uring_params params = {.flags = IORING_SETUP_CQSIZE, .cq_entries = CQ_ENTRIES};
	struct shmq_poller *p;
	int r;

	if (flags || !ret)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	r = shmq__uring_futex_probe();
	if (r < 0)
		goto fail_free;
	p->backend = r ? SHMQ_BACKEND_URING_FUTEX : SHMQ_BACKEND_HELPER_THREAD;
	p->wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->wake_efd < 0) {
		r = -errno;
		goto fail_free;
	}
	r = io_uring_queue_init_params(RING_ENTRIES, &p->ring, &params);
	if (r < 0)
		goto fail_efd;
	list_init(&p->ops);
	list_init(&p->pending);
	list_init(&p->due);
	p->wake = (struct op){.p = p, .src = SRC_WAKE, .heap_idx = HEAP_NONE, .fd = -1};
	list_init(&p->wake.link);
	list_init(&p->wake.all);
	pend(p, &p->wake);
	*ret = p;
	return 0;

fail_efd:
	close(p->wake_efd);
fail_free:
	free(p);
	return r;
}

SHMQ_API void shmq_poller_free(struct shmq_poller *p)
{
	uint64_t deadline;

	if (!p)
		return;
	/* Cancel every request, then reap until they are all back (bounded). */
	p->closing = true;
	for (struct list *l = p->ops.next; l != &p->ops; l = l->next) {
		struct op *op = op_of(l, all);
		struct io_uring_sqe *sqe;

		if (op->inflight && (sqe = get_sqe(p))) {
			io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
			io_uring_sqe_set_data64(sqe, UD_IGNORE);
		}
	}
	if (p->wake.inflight) {
		struct io_uring_sqe *sqe = get_sqe(p);

		if (sqe) {
			io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&p->wake, 0);
			io_uring_sqe_set_data64(sqe, UD_IGNORE);
		}
	}
	deadline = shmq__deadline_after_ns(CANCEL_WAIT_NS);
	while (p->n_inflight && shmq__now_ns() < deadline) {
		struct __kernel_timespec ts = {.tv_nsec = 10 * 1000000};
		struct io_uring_cqe *cqe;

		(void)io_uring_submit_and_wait_timeout(&p->ring, &cqe, 1, &ts, NULL);
		reap_all(p);
	}
	while (!list_empty(&p->ops))
		op_destroy(op_of(p->ops.next, all));
	/* The kernel cancels whatever is left (nothing, normally) as the ring goes away. */
	io_uring_queue_exit(&p->ring);
	close(p->wake_efd);
	while (p->n_spare)
		free(p->spare[--p->n_spare]);
	free(p->heap);
	free(p);
}

SHMQ_API int shmq_poller_backend(const struct shmq_poller *p)
{
	return p ? p->backend : -EINVAL;
}

SHMQ_API int shmq_poller_fd(const struct shmq_poller *p)
{
	/* The ring's: readable while its completion queue holds entries (io_uring(7)). */
	return p ? p->ring.ring_fd : -EINVAL;
}

/* Common tail of every constructor: waiter, registration, or undo. */
static int start_obj(struct shmq_poller *p, struct op *op, uint64_t deadline_ns, void **ret)
{
	int r;

	/*
	 * Ready now (a message queued, a token free): done at once, with no
	 * waiter, no system call and no clock read; its callback still runs
	 * from the loop, like any other.
	 */
	if (op->fut != FUT_READY && op->fut != FUT_NONE && !p->closing &&
	    (r = attempt(op)) != -EAGAIN) {
		op->done = true;
		op->result = r;
		list_add_tail(&p->ops, &op->all);
		list_add_tail(&p->due, &op->link);
		*ret = op;
		return 0;
	}
	r = attach_waiter(op);

	if (r == 0)
		r = op_start(p, op, deadline_ns);
	if (r < 0) {
		if (op->has_waiter)
			(void)shmq__waiter_fini(&op->wt);
		heap_remove(p, op);
		free(op);
		return r;
	}
	*ret = op;
	return 0;
}

SHMQ_API int shmq_poller_add(struct shmq_poller *p, struct shmq_object *obj, unsigned int events,
			     shmq_watch_fn *fn, void *arg, struct shmq_watch **ret)
{
	struct op *op;
	int r;

	if (!p || !fn || !ret)
		return -EINVAL;
	r = shmq__waiter_check_object(obj, events);
	if (r < 0)
		return r;
	op = op_new(p, SRC_OBJECT, FUT_NONE);
	if (!op)
		return -ENOMEM;
	op->obj = obj;
	op->events = events;
	op->wfn = fn;
	op->arg = arg;
	return start_obj(p, op, SHMQ_FOREVER, (void **)ret);
}

SHMQ_API int shmq_poller_add_queue(struct shmq_poller *p, struct shmq_queue *q, unsigned int events,
				   shmq_watch_fn *fn, void *arg, struct shmq_watch **ret)
{
	return shmq_poller_add(p, shmq_queue_object(q), events, fn, arg, ret);
}

SHMQ_API int shmq_poller_add_sem(struct shmq_poller *p, struct shmq_sem *s, shmq_watch_fn *fn,
				 void *arg, struct shmq_watch **ret)
{
	return shmq_poller_add(p, shmq_sem_object(s), SHMQ_POLL_RECV, fn, arg, ret);
}

SHMQ_API int shmq_poller_add_fd(struct shmq_poller *p, int fd, unsigned int events,
				shmq_watch_fn *fn, void *arg, struct shmq_watch **ret)
{
	struct op *op;
	int r;

	if (!p || fd < 0 || !events || (events & ~0xffffu) || !fn || !ret)
		return -EINVAL;
	op = op_new(p, SRC_FD, FUT_NONE);
	if (!op)
		return -ENOMEM;
	op->fd = fd;
	op->events = events;
	op->wfn = fn;
	op->arg = arg;
	r = op_start(p, op, SHMQ_FOREVER);
	if (r < 0) {
		free(op);
		return r;
	}
	*ret = (struct shmq_watch *)op;
	return 0;
}

SHMQ_API int shmq_poller_add_timer(struct shmq_poller *p, uint64_t deadline_ns,
				   uint64_t interval_ns, shmq_watch_fn *fn, void *arg,
				   struct shmq_watch **ret)
{
	struct op *op;
	int r;

	if (!p || !fn || !ret || deadline_ns == SHMQ_FOREVER)
		return -EINVAL;
	op = op_new(p, SRC_TIMER, FUT_NONE);
	if (!op)
		return -ENOMEM;
	op->interval_ns = interval_ns;
	op->wfn = fn;
	op->arg = arg;
	r = op_start(p, op, deadline_ns);
	if (r < 0) {
		free(op);
		return r;
	}
	*ret = (struct shmq_watch *)op;
	return 0;
}

SHMQ_API void shmq_watch_free(struct shmq_watch *w)
{
	if (w)
		op_free(&w->op);
}

/*
 * A future on @obj for @events, of kind @fut, calling @fn(@arg) when done:
 * the part every future's constructor shares.  The caller sets what its
 * attempt needs, then start_obj().
 * Return: 0 and *@ret; what shmq__waiter_check_object() says; -ENOMEM.
 */
static int future_new(struct shmq_poller *p, struct shmq_object *obj, unsigned int events,
		      enum op_fut fut, shmq_future_fn *fn, void *arg, struct op **ret)
{
	int r = shmq__waiter_check_object(obj, events);
	struct op *op;

	if (r < 0)
		return r;
	op = op_new(p, SRC_OBJECT, fut);
	if (!op)
		return -ENOMEM;
	op->obj = obj;
	op->events = events;
	op->ffn = fn;
	op->arg = arg;
	*ret = op;
	return 0;
}

SHMQ_API int shmq_poller_recv(struct shmq_poller *p, struct shmq_queue *q, void *buf, size_t size,
			      uint64_t deadline_ns, shmq_future_fn *fn, void *arg,
			      struct shmq_future **ret)
{
	struct op *op;
	int r;

	if (!p || !ret || (!buf && size))
		return -EINVAL;
	r = future_new(p, shmq_queue_object(q), SHMQ_POLL_RECV, FUT_RECV, fn, arg, &op);
	if (r < 0)
		return r;
	op->q = q;
	op->buf = buf;
	op->size = size;
	return start_obj(p, op, deadline_ns, (void **)ret);
}

SHMQ_API int shmq_poller_recv_batch(struct shmq_poller *p, struct shmq_queue *q, struct iovec *msgs,
				    unsigned int n, uint64_t deadline_ns, shmq_future_fn *fn,
				    void *arg, struct shmq_future **ret)
{
	struct op *op;
	int r;

	if (!p || !ret || !msgs || !n)
		return -EINVAL;
	for (unsigned int i = 0; i < n; i++)
		if (!msgs[i].iov_base && msgs[i].iov_len)
			return -EINVAL;
	r = future_new(p, shmq_queue_object(q), SHMQ_POLL_RECV, FUT_RECV_BATCH, fn, arg, &op);
	if (r < 0)
		return r;
	op->q = q;
	op->iov = msgs;
	op->n = n;
	return start_obj(p, op, deadline_ns, (void **)ret);
}

SHMQ_API int shmq_poller_acquire(struct shmq_poller *p, struct shmq_sem *s, uint64_t deadline_ns,
				 shmq_future_fn *fn, void *arg, struct shmq_future **ret)
{
	struct op *op;
	int r;

	if (!p || !ret)
		return -EINVAL;
	r = future_new(p, shmq_sem_object(s), SHMQ_POLL_RECV, FUT_ACQUIRE, fn, arg, &op);
	if (r < 0)
		return r;
	op->s = s;
	return start_obj(p, op, deadline_ns, (void **)ret);
}

SHMQ_API int shmq_poller_ready(struct shmq_poller *p, struct shmq_queue *q, unsigned int events,
			       uint64_t deadline_ns, shmq_future_fn *fn, void *arg,
			       struct shmq_future **ret)
{
	struct op *op;
	int r;

	if (!p || !ret)
		return -EINVAL;
	r = future_new(p, shmq_queue_object(q), events, FUT_READY, fn, arg, &op);
	if (r < 0)
		return r;
	op->q = q;
	return start_obj(p, op, deadline_ns, (void **)ret);
}

SHMQ_API int shmq_future_result(const struct shmq_future *f)
{
	if (!f)
		return -EINVAL;
	return f->op.done ? f->op.result : -EINPROGRESS;
}

SHMQ_API int shmq_future_cancel(struct shmq_future *f)
{
	if (!f || f->op.dying)
		return -EINVAL;
	if (f->op.done)
		return -EALREADY;
	complete(f->op.p, &f->op, -ECANCELED);
	return 0;
}

SHMQ_API void shmq_future_free(struct shmq_future *f)
{
	if (f)
		op_free(&f->op);
}

/* Enter a run call.  Return: 0, or -EBUSY from inside a callback (run calls do not nest). */
static int run_enter(struct shmq_poller *p)
{
	if (p->depth)
		return -EBUSY;
	p->depth++;
	p->cb_err = 0;
	return 0;
}

static int run_leave(struct shmq_poller *p, int r)
{
	p->depth--;
	if (p->cb_err) {
		r = p->cb_err;
		p->cb_err = 0;
	}
	return r;
}

/* Consume a stop request.  Return: true if there was one. */
static bool take_stop(struct shmq_poller *p)
{
	/* A: pairs with R in shmq_poller_stop(); the flag publishes nothing else */
	return atomic_exchange_explicit(&p->stop, false, memory_order_acq_rel);
}

SHMQ_API int shmq_poller_run_once(struct shmq_poller *p, uint64_t deadline_ns)
{
	int n, r;

	if (!p)
		return -EINVAL;
	r = run_enter(p);
	if (r < 0)
		return r;
	for (bool again = true;;) {
		n = step(p, deadline_ns, true);
		if (n != 0 || p->cb_err || take_stop(p))
			break;
		if (shmq__now_ns() >= deadline_ns) {
			/*
			 * A step reaps last: what its reap made ready is looked at
			 * by the next one.  Dispatch it before returning, once (an
			 * op that keeps losing races must not hold us here).
			 */
			if (again && !list_empty(&p->pending)) {
				again = false;
				continue;
			}
			break;
		}
	}
	return run_leave(p, n);
}

SHMQ_API int shmq_poller_run_until_idle(struct shmq_poller *p, uint64_t deadline_ns)
{
	int r;

	if (!p)
		return -EINVAL;
	r = run_enter(p);
	if (r < 0)
		return r;
	for (;;) {
		if (p->n_active == 0 && list_empty(&p->due)) {
			r = 0;
			break;
		}
		if (shmq__now_ns() >= deadline_ns) {
			r = -ETIMEDOUT;
			break;
		}
		r = step(p, deadline_ns, true);
		if (r < 0 || p->cb_err)
			break;
		if (take_stop(p)) {
			r = 0;
			break;
		}
	}
	return run_leave(p, r < 0 ? r : 0);
}

SHMQ_API int shmq_poller_run(struct shmq_poller *p)
{
	int r;

	if (!p)
		return -EINVAL;
	r = run_enter(p);
	if (r < 0)
		return r;
	do {
		r = step(p, SHMQ_FOREVER, true);
	} while (r >= 0 && !p->cb_err && !take_stop(p));
	return run_leave(p, r < 0 ? r : 0);
}

SHMQ_API int shmq_poller_stop(struct shmq_poller *p)
{
	uint64_t one = 1;

	if (!p)
		return -EINVAL;
	store_release(&p->stop, true); /* R: pairs with A in step() and take_stop() */
	/* Wakes a loop asleep in io_uring_enter(); cannot block (nonblocking, never full). */
	(void)!write(p->wake_efd, &one, sizeof(one));
	return 0;
}

SHMQ_API int shmq_poller_wait(struct shmq_poller *p, struct shmq_future *const *futures,
			      unsigned int n, unsigned int how, uint64_t deadline_ns)
{
	unsigned int done;
	int r;

	if (!p || !futures || n == 0 || how > SHMQ_WAIT_ALL)
		return -EINVAL;
	for (unsigned int i = 0; i < n; i++)
		if (!futures[i] || futures[i]->op.p != p || futures[i]->op.dying)
			return -EINVAL;
	r = run_enter(p);
	if (r < 0)
		return r;
	for (;;) {
		done = 0;
		for (unsigned int i = 0; i < n; i++)
			done += futures[i]->op.done;
		if (how == SHMQ_WAIT_ALL ? done == n : done > 0) {
			r = (int)done;
			break;
		}
		if (deadline_ns != SHMQ_FOREVER && shmq__now_ns() >= deadline_ns) {
			r = -ETIMEDOUT;
			break;
		}
		r = step(p, deadline_ns, false);
		if (r < 0 || p->cb_err)
			break;
	}
	/* Run the callbacks of what just completed before handing the results over. */
	if (r >= 0 && !p->cb_err)
		(void)run_due(p);
	return run_leave(p, r);
}
