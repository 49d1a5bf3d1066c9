/* SPDX-License-Identifier: MIT */
/*
 * The operations a peer runs on a segment, each checked against the return
 * values its header documents (a queue's sends and receives may also say
 * -EPIPE: a scribbled or real shutdown).  A value outside them aborts, which libFuzzer
 * reports as a crash with the input that produced it.  Blocking forms run
 * with a deadline already past: they must try once and return, never sleep;
 * libFuzzer's -timeout catches one that loops or sleeps instead.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "shm/barrier.h"
#include "shm/cond.h"
#include "shm/event.h"
#include "shm/futex.h"
#include "shm/kind.h"
#include "shm/lock.h"
#include "shm/pipe.h"
#include "shm/ring.h"
#include "shm/sem.h"
#include "tests/fuzz/drive.h"

struct drive {
	struct shmq_segment *seg;
	struct shmq_ring ring;
	struct shmq_sem sem;
	struct shmq_event ev;
	struct shmq_lock lk; /* a lock's; a condition's own private lock */
	struct shmq_cond cv;
	struct shmq_barrier bar;
	struct shmq_pipe pipe;
	struct shmq_segment lock_seg; /* a condition's lock: not scribbled on, so exact */
	void *lock_base;
	const struct drive_kind *kind;
	unsigned char buf[256]; /* smaller than many slots: -EMSGSIZE paths too */
	unsigned char msg[512];
};

static void expect(bool ok)
{
	if (!ok)
		abort();
}

static bool one_of(int rc, int a, int b, int c, int d)
{
	return rc == a || rc == b || rc == c || rc == d;
}

/* A joinable queue's send may also meet a full count, or a forged owner tag on it. */
static bool joinable_refusal(const struct shmq_ring *r, int rc)
{
	return shmq__ring_is_joinable(r) && (rc == -EOVERFLOW || rc == -EBUSY);
}

static void ring_step(struct drive *dr, uint8_t op)
{
	struct shmq_ring *r = &dr->ring;
	uint64_t past = shmq__now_ns();	     /* a deadline already reached: try once */
	size_t len = (size_t)(op >> 4) * 17; /* 0..255 bytes */
	struct shmq_ring_arm arm;
	struct iovec iov[3];
	const void *peeked;
	void *rsv;
	int rc;

	switch (op & 15) {
	case 0:
		rc = shmq__ring_try_send(r, dr->msg, len);
		expect(rc == -EPIPE || one_of(rc, 0, -EAGAIN, -EMSGSIZE, -EBADMSG) ||
		       rc == -EINVAL || joinable_refusal(r, rc));
		break;
	case 1:
		rc = shmq__ring_try_recv(r, dr->buf, sizeof(dr->buf));
		expect(rc == -EPIPE || (rc >= 0 && (size_t)rc <= sizeof(dr->buf)) ||
		       one_of(rc, -EAGAIN, -EMSGSIZE, -EBADMSG, -EINVAL));
		break;
	case 2:
		rc = shmq__ring_send_wait(r, dr->msg, len, past);
		expect(rc == -EPIPE || one_of(rc, 0, -ETIMEDOUT, -EMSGSIZE, -EBADMSG) ||
		       rc == -EINVAL || joinable_refusal(r, rc));
		break;
	case 3:
		rc = shmq__ring_recv_wait(r, dr->buf, sizeof(dr->buf), past);
		expect(rc == -EPIPE || (rc >= 0 && (size_t)rc <= sizeof(dr->buf)) ||
		       one_of(rc, -ETIMEDOUT, -EMSGSIZE, -EBADMSG, -EINVAL));
		break;
	case 4:
		rc = shmq__ring_peek(r, &peeked);
		expect(rc == -EPIPE || (rc >= 0 && (uint32_t)rc <= r->max_msg) ||
		       one_of(rc, -EAGAIN, -EBADMSG, -EINVAL, -EMSGSIZE));
		if (rc >= 0) {
			/* The message lies inside the mapping: ASan checks every byte. */
			const volatile unsigned char *m = peeked;
			unsigned int sum = 0;

			for (int i = 0; i < rc; i++)
				sum += m[i];
			(void)sum;
		}
		break;
	case 5:
		rc = shmq__ring_release(r);
		expect(rc == 0 || rc == -EINVAL);
		break;
	case 6:
		rc = shmq__ring_reserve(r, &rsv);
		expect(rc == -EPIPE || one_of(rc, 0, -EAGAIN, -EBADMSG, -EINVAL));
		if (rc == 0)
			memset(rsv, 0xa5, r->slot_size); /* the whole slot is ours to fill */
		break;
	case 7:
		rc = shmq__ring_commit(r, len);
		expect(rc == -EPIPE || one_of(rc, 0, -EMSGSIZE, -EINVAL, -EINVAL) ||
		       joinable_refusal(r, rc));
		break;
	case 8:
		rc = shmq__ring_cancel(r);
		expect(rc == 0 || rc == -EINVAL);
		break;
	case 9:
		for (int i = 0; i < 3; i++)
			iov[i] = (struct iovec){.iov_base = dr->msg,
						.iov_len = len / (size_t)(i + 1)};
		rc = shmq__ring_send_batch(r, iov, 3);
		expect(rc == -EPIPE || (rc >= 0 && rc <= 3) ||
		       one_of(rc, -EMSGSIZE, -EBADMSG, -EINVAL, -EAGAIN) ||
		       joinable_refusal(r, rc));
		break;
	case 10:
		for (int i = 0; i < 3; i++)
			iov[i] = (struct iovec){.iov_base = dr->buf + i * 64, .iov_len = 64};
		rc = shmq__ring_recv_batch(r, iov, 3);
		expect(rc == -EPIPE || (rc >= 0 && rc <= 3) ||
		       one_of(rc, -EMSGSIZE, -EBADMSG, -EINVAL, -EAGAIN));
		for (int i = 0; i < rc; i++)
			expect(iov[i].iov_len <= 64);
		break;
	case 11:
		rc = shmq__ring_reserve_wait(r, &rsv, past);
		expect(rc == -EPIPE || one_of(rc, 0, -ETIMEDOUT, -EBADMSG, -EINVAL));
		break;
	case 12:
		rc = shmq__ring_peek_wait(r, &peeked, past);
		expect(rc == -EPIPE || (rc >= 0 && (uint32_t)rc <= r->max_msg) ||
		       one_of(rc, -ETIMEDOUT, -EBADMSG, -EINVAL, -EMSGSIZE));
		break;
	case 13:
		(void)shmq__ring_is_ready(r, op & 16);
		rc = shmq__ring_arm(r, op & 16, &arm);
		expect(rc == 0 || rc == 1);
		if (rc == 0)
			expect(arm.word == &r->q->ec_send || arm.word == &r->q->ec_recv);
		break;
	case 14:
		if (op & 0x80) /* now and then a peer shuts the queue down (drain or immediate) */
			expect(shmq__ring_shutdown(r, op & 0x20) == 0);
		if (shmq__ring_is_joinable(r)) { /* a scribbled count: any value, never a hang */
			rc = shmq__ring_task_done(r);
			expect(rc == 0 || rc == -EINVAL || rc == -EBUSY);
			rc = shmq__ring_join(r, past);
			expect(rc == 0 || rc == -ETIMEDOUT || rc == -EPIPE);
			expect(shmq__ring_unfinished(r) <= SHMQ_QUEUE_UNFINISHED_MAX);
		}
		expect(shmq__ring_depth(r) <= r->mask + 1);
		rc = shmq__ring_check(r);
		expect(rc == 0 || rc == -EBADMSG);
		rc = shmq__segment_check(dr->seg);
		expect(rc == 0 || rc == -EBADMSG);
		break;
	case 15: {
		struct shmq_ring_repair rep;
		/* Repair as the daemon does: a private handle. */
		struct shmq_ring daemon;

		if (shmq__ring_attach(&daemon, dr->seg, UINT32_MAX) < 0)
			abort();
		/* A tag from the script; tag 8 stands for the start of a restarted daemon. */
		if (op >> 5 == 7) {
			rc = shmq__ring_repair_resume(&daemon, &rep);
		} else {
			/* a joinable queue's settle reads the dead session's turns first */
			(void)shmq__ring_join_settle(dr->seg,
						     (uint32_t)(op >> 5) % dr->seg->n_sessions);
			(void)shmq__ring_arena_repair(&daemon, dr->seg, (uint32_t)(op >> 5) + 1);
			rc = shmq__ring_repair_session(&daemon, (uint32_t)(op >> 5) + 1, &rep);
		}
		if (op & 0x10) /* the daemon's tick: regions of sessions no record names */
			(void)shmq__ring_arena_repair(&daemon, dr->seg, 0);
		expect(rc >= 0 || rc == -EBADMSG);
		if (rc >= 0)
			expect((uint32_t)rc == rep.tombstoned + rep.redelivered &&
			       (uint32_t)rc <= r->mask + 1);
		break;
	}
	}
}

/*
 * A post that finds an operation of a dead process in the word (a tag a
 * scribbler can forge) waits SHMQ_SEM_OWNER_WAIT_NS for the daemon's undo,
 * then gives up with -EBUSY: bounded, but long.  One such wait per input
 * (over every handle the input drives) proves it returns; more would only
 * add up to libFuzzer's -timeout.
 */
static bool owner_busy; /* this input: a post found a dead owner's tag */

void drive_new_input(void)
{
	owner_busy = false;
}

static int post(struct drive *dr, uint32_t n)
{
	int rc;

	if (owner_busy)
		return -EBUSY;
	rc = shmq__sem_post(&dr->sem, n);
	if (rc == -EBUSY)
		owner_busy = true;
	return rc;
}

static void sem_step(struct drive *dr, uint8_t op)
{
	struct shmq_sem *s = &dr->sem;
	int rc;

	if ((op & 15) == 8) {
		/* The daemon's undo for a record the script names (a separate handle). */
		struct shmq_sem daemon;
		uint32_t index = (uint32_t)(op >> 4) % dr->seg->n_sessions, posted = 0;

		if (shmq__sem_attach(&daemon, dr->seg, UINT32_MAX) < 0)
			abort();
		daemon.spin_ns = 0;
		rc = shmq__sem_undo(&daemon, &dr->seg->sessions[index], index, &posted);
		expect(rc == 0 || rc == -EINVAL || rc == -EBADMSG);
		return;
	}
	switch (op & 7) {
	case 0:
		rc = shmq__sem_try_wait(s);
		expect(rc == 0 || rc == -EAGAIN);
		break;
	case 1:
		rc = shmq__sem_wait(s, shmq__now_ns());
		expect(rc == 0 || rc == -ETIMEDOUT);
		break;
	case 2:
		rc = post(dr, (uint32_t)(op >> 3) + 1);
		expect(one_of(rc, 0, -EOVERFLOW, -EAGAIN, -EBUSY));
		break;
	case 3:
		rc = post(dr, UINT32_MAX >> (op >> 3));
		expect(one_of(rc, 0, -EOVERFLOW, -EAGAIN, -EINVAL) || rc == -EBUSY);
		break;
	case 4:
		rc = shmq__sem_arm(s);
		expect(rc == 0 || rc == 1);
		if (rc == 0)
			shmq__sem_disarm(s);
		break;
	case 5:
		(void)shmq__sem_value(s);
		rc = shmq__sem_check(s);
		expect(rc == 0 || rc == -EBADMSG);
		break;
	case 6:
		rc = shmq__segment_check(dr->seg);
		expect(rc == 0 || rc == -EBADMSG);
		break;
	case 7: {
		uint32_t index;

		rc = shmq__session_claim(dr->seg, SHMQ_ROLE_SEM, 1, 0, &index);
		expect(rc == 0 || rc == -ENOSPC);
		if (rc == 0) {
			expect(index < dr->seg->n_sessions);
			shmq__session_release(dr->seg, index);
		}
		break;
	}
	}
}

/* Every word value is a valid event: every call must succeed or time out, never hang. */
static void event_step(struct drive *dr, uint8_t op)
{
	struct shmq_kind_repair rep = {0};
	struct shmq_kind_arm arm;
	int rc;

	switch (op % 7) {
	case 0:
		rc = shmq__event_set(&dr->ev);
		expect(rc == 0 || rc == 1);
		break;
	case 1:
		rc = shmq__event_clear(&dr->ev);
		expect(rc == 0 || rc == 1);
		break;
	case 2:
		(void)shmq__event_is_set(&dr->ev);
		break;
	case 3:
		rc = shmq__event_wait(&dr->ev, shmq__now_ns()); /* one look, never a sleep */
		expect(rc == 0 || rc == -ETIMEDOUT);
		break;
	case 4:
		rc = shmq__kind_event.arm(&dr->ev, SHMQ_KIND_EV_RECV, &arm);
		expect(rc == 0 || rc == 1);
		expect(shmq__kind_event.is_ready(&dr->ev, SHMQ_KIND_EV_RECV) ||
		       !shmq__event_is_set(&dr->ev));
		break;
	case 5:
		rc = shmq__object_check(dr->seg, op & 8);
		expect(rc == 0 || rc == -EBADMSG);
		break;
	case 6:
		rc = shmq__kind_event.repair(dr->seg, op % dr->seg->n_sessions, &rep);
		expect(rc == 0 || rc == 1);
		break;
	}
}

/* A lock's word takes any value: every call must return as documented, never hang. */
static void lock_step(struct drive *dr, uint8_t op)
{
	struct shmq_kind_repair rep = {0};
	struct shmq_kind_arm arm;
	uint32_t depth;
	int rc;

	switch (op % 9) {
	case 0:
	case 1:
		rc = shmq__lock_acquire(&dr->lk, shmq__now_ns()); /* one try, never a sleep */
		expect(one_of(rc, 0, -EOWNERDEAD, -ETIMEDOUT, -EDEADLK) || rc == -EAGAIN ||
		       rc == -EINVAL);
		break;
	case 2:
		rc = shmq__lock_release(&dr->lk);
		expect(rc == 0 || rc == -EPERM);
		break;
	case 3:
		rc = shmq__lock_consistent(&dr->lk);
		expect(one_of(rc, 0, -EPERM, -EINVAL, -EBUSY));
		break;
	case 4:
		(void)shmq__lock_is_locked(&dr->lk);
		(void)shmq__lock_is_mine(&dr->lk);
		break;
	case 5:
		rc = shmq__kind_lock.arm(&dr->lk, SHMQ_KIND_EV_RECV, &arm);
		expect(rc == 0 || rc == 1 || rc == -EINVAL);
		if (rc == 0)
			shmq__kind_lock.disarm(&dr->lk);
		break;
	case 6:
		rc = shmq__object_check(dr->seg, op & 8);
		expect(rc == 0 || rc == -EBADMSG);
		break;
	case 7:
		rc = shmq__kind_lock.repair(dr->seg, op % dr->seg->n_sessions, &rep);
		expect(rc == 0 || rc == 1);
		break;
	case 8:
		rc = shmq__lock_save(&dr->lk, &depth);
		expect(rc == 0 || rc == -EPERM);
		if (rc == 0) {
			rc = shmq__lock_restore(&dr->lk, depth, shmq__now_ns());
			expect(one_of(rc, 0, -EOWNERDEAD, -ETIMEDOUT, -EINVAL));
		}
		break;
	}
}

/*
 * A condition's words take any value; its lock is private and exact, so
 * every wait that says it holds the lock again must hold it.
 */
static void cond_step(struct drive *dr, uint8_t op)
{
	struct shmq_kind_repair rep = {0};
	int rc;

	switch (op % 8) {
	case 0:
		rc = shmq__lock_acquire(&dr->lk, shmq__now_ns());
		expect(one_of(rc, 0, -EOWNERDEAD, -ETIMEDOUT, -EDEADLK));
		break;
	case 1:
		rc = shmq__lock_release(&dr->lk);
		expect(rc == 0 || rc == -EPERM);
		break;
	case 2:
		/* a deadline just ahead: through the sleep, for microseconds at most */
		rc = shmq__cond_wait(&dr->cv, shmq__now_ns() + 2000);
		expect(one_of(rc, 0, -ETIMEDOUT, -EOWNERDEAD, -EPERM) || rc == -EINVAL);
		if (rc == 0 || rc == -ETIMEDOUT || rc == -EOWNERDEAD)
			expect(shmq__lock_is_mine(&dr->lk));
		break;
	case 3:
		rc = shmq__cond_notify(&dr->cv, op >> 4);
		expect(rc >= 0 || rc == -EPERM);
		break;
	case 4:
		rc = shmq__cond_notify(&dr->cv, UINT32_MAX);
		expect(rc >= 0 || rc == -EPERM);
		break;
	case 5:
		rc = shmq__object_check(dr->seg, op & 8);
		expect(rc == 0 || rc == -EBADMSG);
		break;
	case 6:
		rc = shmq__kind_cond.repair(dr->seg, op % dr->seg->n_sessions, &rep);
		expect(rc == 0 || rc == 1);
		break;
	case 7:
		(void)shmq__cond_waiting(&dr->cv);
		break;
	}
}

/* A barrier's word takes any value: an index in range, or a documented error. */
static void barrier_step(struct drive *dr, uint8_t op)
{
	struct shmq_kind_repair rep = {0};
	int rc;

	switch (op % 7) {
	case 0:
	case 1:
		rc = shmq__barrier_wait(&dr->bar, shmq__now_ns() + 2000);
		expect((rc >= 0 && (uint32_t)rc < dr->bar.parties) ||
		       one_of(rc, -EPIPE, -ETIMEDOUT, -EINVAL, -EPIPE));
		break;
	case 2:
		rc = shmq__barrier_abort(&dr->bar);
		expect(rc == 0 || rc == -EINVAL);
		break;
	case 3:
		rc = shmq__barrier_reset(&dr->bar);
		expect(rc == 0 || rc == -EINVAL);
		break;
	case 4:
		expect(shmq__barrier_n_waiting(&dr->bar) <= SHMQ_BARRIER_PARTIES_MAX);
		(void)shmq__barrier_is_broken(&dr->bar);
		break;
	case 5:
		rc = shmq__object_check(dr->seg, op & 8);
		expect(rc == 0 || rc == -EBADMSG);
		break;
	case 6:
		rc = shmq__kind_barrier.repair(dr->seg, op % dr->seg->n_sessions, &rep);
		expect(rc == 0 || rc == 1);
		break;
	}
}

/*
 * A pipe end on scribbled rings: every result one of the ring's own, and
 * a close (or a dead holder's repair) any time.
 */
static void pipe_step(struct drive *dr, uint8_t op)
{
	struct shmq_pipe *h = &dr->pipe;
	uint64_t past = shmq__now_ns();
	size_t len = (size_t)(op >> 4) * 17;
	struct shmq_kind_repair rep = {0};
	struct shmq_kind_arm arm;
	int rc;

	switch (op % 8) {
	case 0:
	case 1:
		if (!h->can_send)
			break;
		rc = op & 8 ? shmq__ring_send_wait(&h->out, dr->msg, len, past)
			    : shmq__ring_try_send(&h->out, dr->msg, len);
		expect(rc == -EPIPE || rc == -ETIMEDOUT ||
		       one_of(rc, 0, -EAGAIN, -EMSGSIZE, -EBADMSG));
		break;
	case 2:
	case 3:
		if (!h->can_recv)
			break;
		rc = op & 8 ? shmq__ring_recv_wait(&h->in, dr->buf, sizeof(dr->buf), past)
			    : shmq__ring_try_recv(&h->in, dr->buf, sizeof(dr->buf));
		expect((rc >= 0 && (size_t)rc <= sizeof(dr->buf)) || rc == -ETIMEDOUT ||
		       one_of(rc, -EAGAIN, -EMSGSIZE, -EBADMSG, -EPIPE));
		break;
	case 4:
		rc = shmq__pipe_poll(h, past);
		expect(one_of(rc, 0, 1, -EBADF, -EBADF));
		break;
	case 5:
		(void)shmq__kind_pipe.is_ready(h, op & 16 ? SHMQ_KIND_EV_SEND : SHMQ_KIND_EV_RECV);
		rc = shmq__kind_pipe.arm(h, op & 16 ? SHMQ_KIND_EV_SEND : SHMQ_KIND_EV_RECV, &arm);
		expect(rc == 0 || rc == 1);
		break;
	case 6:
		if (op & 0x80) /* now and then an end closes */
			expect(shmq__pipe_close_end(dr->seg, (op >> 6) & 1) >= 0);
		rc = shmq__object_check(dr->seg, op & 8);
		expect(rc == 0 || rc == -EBADMSG);
		break;
	case 7:
		rc = shmq__kind_pipe.repair(dr->seg, op % dr->seg->n_sessions, &rep);
		expect(rc == 0 || rc == 1);
		break;
	}
}

/* Each kind's handle and operations (in SHMQ_KIND_* order). */
struct drive_kind {
	int (*attach)(struct drive *dr, uint32_t session);
	void (*step)(struct drive *dr, uint8_t op);
	unsigned int n_ops; /* drive_all() runs each once */
};

static int queue_attach(struct drive *dr, uint32_t session)
{
	/* a record index the ring refuses (a producer slot of SPSC...) still gets a view */
	if (shmq__ring_attach(&dr->ring, dr->seg, session) < 0 &&
	    shmq__ring_attach(&dr->ring, dr->seg, UINT32_MAX) < 0)
		return -1;
	dr->ring.spin_ns = 0;
	return 0;
}

/* Blocking forms never spin: they run with a past deadline (see the top). */
static int sem_attach(struct drive *dr, uint32_t session)
{
	int r = shmq__sem_attach(&dr->sem, dr->seg, session);

	dr->sem.spin_ns = 0;
	return r;
}

static int event_attach(struct drive *dr, uint32_t session)
{
	int r = shmq__event_attach(&dr->ev, dr->seg, session);

	dr->ev.spin_ns = 0;
	return r;
}

static int lock_attach(struct drive *dr, uint32_t session)
{
	int r = shmq__lock_attach(&dr->lk, dr->seg, session);

	dr->lk.spin_ns = 0;
	return r;
}

/* A condition's lock: a private, well-formed lock segment with one record. */
static int cond_attach(struct drive *dr, uint32_t session)
{
	struct shmq_segment_params p = {.kind = SHMQ_KIND_LOCK,
					.n_sessions = 1,
					.name = "fuzz-lock",
					.mode = 0600,
					.object_id = dr->seg->geom.cond.lock_id};
	uint64_t size;

	if (shmq__segment_size(&p, &size) < 0 || posix_memalign(&dr->lock_base, 4096, size))
		abort();
	memset(dr->lock_base, 0, size);
	if (shmq__segment_format(dr->lock_base, size, &p) < 0 ||
	    shmq__segment_attach(dr->lock_base, size, &dr->lock_seg) < 0 ||
	    shmq__lock_attach(&dr->lk, &dr->lock_seg, 0) < 0)
		abort();
	dr->lk.spin_ns = 0;
	dr->cv.lk = &dr->lk;
	return shmq__cond_attach(&dr->cv, dr->seg, session);
}

static int barrier_attach(struct drive *dr, uint32_t session)
{
	int r = shmq__barrier_attach(&dr->bar, dr->seg, session);

	dr->bar.spin_ns = 0;
	return r;
}

/* Either end, by the record: the other end is the scribbler's. */
static int pipe_attach(struct drive *dr, uint32_t session)
{
	int r = shmq__pipe_attach(&dr->pipe, dr->seg, session, session & 1);

	dr->pipe.in.spin_ns = dr->pipe.out.spin_ns = 0;
	return r;
}

static const struct drive_kind kinds[SHMQ_KIND_LIMIT] = {
	[SHMQ_KIND_QUEUE] = {queue_attach, ring_step, 16},
	[SHMQ_KIND_SEM] = {sem_attach, sem_step, 9},
	[SHMQ_KIND_EVENT] = {event_attach, event_step, 7},
	[SHMQ_KIND_LOCK] = {lock_attach, lock_step, 9},
	[SHMQ_KIND_COND] = {cond_attach, cond_step, 8},
	[SHMQ_KIND_BARRIER] = {barrier_attach, barrier_step, 7},
	[SHMQ_KIND_PIPE] = {pipe_attach, pipe_step, 8},
};

struct drive *drive_open(struct shmq_segment *seg, uint8_t who)
{
	struct drive *dr = calloc(1, sizeof(*dr));
	/* A session record index, or none (UINT32_MAX) when out of range. */
	uint32_t session = who < seg->n_sessions ? who : UINT32_MAX;

	if (!dr)
		abort();
	dr->seg = seg;
	for (size_t i = 0; i < sizeof(dr->msg); i++)
		dr->msg[i] = (unsigned char)i;
	/* attach validated the kind; a validated segment must take a handle */
	dr->kind = seg->kind < SHMQ_KIND_LIMIT ? &kinds[seg->kind] : NULL;
	if (!dr->kind || !dr->kind->attach || dr->kind->attach(dr, session) < 0)
		abort();
	return dr;
}

void drive_step(struct drive *dr, uint8_t op)
{
	dr->kind->step(dr, op);
}

void drive_all(struct drive *dr)
{
	for (unsigned int op = 0; op < dr->kind->n_ops; op++)
		drive_step(dr, (uint8_t)(op | 0x30));
	/* Whatever was left open is closed, as a process would before detaching. */
	if (dr->kind == &kinds[SHMQ_KIND_QUEUE]) {
		(void)shmq__ring_release(&dr->ring);
		(void)shmq__ring_cancel(&dr->ring);
	}
}

void drive_close(struct drive *dr)
{
	free(dr->lock_base);
	free(dr);
}
