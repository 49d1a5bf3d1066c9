/* SPDX-License-Identifier: MIT */
/*
 * Read-only snapshots of objects: depth, counters, session records and the
 * validators, from a PROT_READ mapping that the daemon hands out as a view.
 *
 * DESIGN
 *
 * The mapping comes from shmq_view_open(); shmqctl then attaches shm/'s own
 * structures to it (shmq__segment_attach(), shmq__ring_attach(),
 * shmq__sem_attach()), none of which writes to the segment, and reads every
 * word once with a relaxed load: a snapshot for display, ordered by
 * nothing, exactly as shmq_queue_stats() reads it.  Peer-written values are
 * clamped or flagged, never trusted as indices.
 *
 * The validators (shmq__segment_check(), shmq__ring_check(),
 * shmq__sem_check()) state the invariants of a quiescent object.  On a busy
 * queue a snapshot can straddle a producer's two stores and look
 * inconsistent for an instant, so a failure is checked again a few times,
 * CHECK_TRIES over about CHECK_SPAN_MS: only an inconsistency that persists
 * is reported as corruption.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shm/atomic.h"
#include "shm/kind.h"
#include "shm/layout.h"
#include "shm/owner.h"
#include "shm/pipe.h"
#include "shm/ring.h"
#include "shm/sem.h"
#include "tools/shmqctl/shmqctl.h"

#define CHECK_TRIES   5
#define CHECK_SPAN_MS 100

static void records_read(const struct shmq_segment *seg, unsigned int flags, struct snapshot *s)
{
	if (flags & SNAP_RECORDS) {
		s->records = calloc(seg->n_sessions, sizeof(*s->records));
		if (s->records)
			s->n_records = seg->n_sessions;
	}
	for (uint32_t i = 0; i < seg->n_sessions; i++) {
		struct shmq_session_shm *r = &seg->sessions[i];
		uint32_t state = load_relaxed(&r->state); /* snapshot, as everything here */
		uint32_t role = load_relaxed(&r->role);
		struct shmq_counter_totals c = {0};

		shmq__counters_add(&c, &r->c);
		if (state == SHMQ_SESSION_ACTIVE) {
			/* a semaphore's or event's user both gives and takes */
			if (role & (SHMQ_ROLE_PRODUCER | SHMQ_ROLE_SEM | SHMQ_ROLE_USER))
				s->producers++;
			if (role & (SHMQ_ROLE_CONSUMER | SHMQ_ROLE_SEM | SHMQ_ROLE_USER))
				s->consumers++;
		} else if (state == SHMQ_SESSION_DEAD) {
			s->dead++;
		}
		if (s->records) {
			struct record_snap *rs = &s->records[i];

			rs->state = state <= SHMQ_SESSION_DEAD ? state : UINT32_MAX;
			rs->role = role;
			rs->pid = load_relaxed(&r->pid);
			rs->uid = load_relaxed(&r->uid);
			rs->sem_holds = load_relaxed(&r->k.sem.holds);
			rs->c = c;
		}
	}
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)ms * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* One pass of every validator that applies.  Return: 0, or -EBADMSG and *@what. */
static int check_once(const struct shmq_segment *seg, const char **what)
{
	int r = shmq__segment_check(seg);

	if (r < 0) {
		*what = "segment header and session records";
		return r;
	}
	/* attach validated the kind; the full check, as if at rest (the retries cover a busy one) */
	*what = shmq__kind(seg->kind)->invariants;
	r = shmq__kind(seg->kind)->check(seg, true);
	return r < 0 ? -EBADMSG : 0;
}

static void check(const struct shmq_segment *seg, struct snapshot *s)
{
	for (int i = 0; i < CHECK_TRIES; i++) {
		s->check = check_once(seg, &s->check_what);
		if (s->check == 0) {
			s->check_what = NULL;
			return;
		}
		if (i + 1 < CHECK_TRIES)
			sleep_ms(CHECK_SPAN_MS / (CHECK_TRIES - 1));
	}
}

static void read_queue(const struct shmq_segment *seg, struct snapshot *s)
{
	const struct shmq_queue_shm *q = seg->object;
	struct shmq_ring ring;

	s->capacity = seg->geom.queue.n_slots;
	s->slot_size = seg->geom.queue.slot_size;
	/* Geometry passed shmq__segment_attach(), so the ring attaches. */
	if (shmq__ring_attach(&ring, seg, UINT32_MAX) == 0)
		s->depth = shmq__ring_depth(&ring);
	/* Peer-written: never report more than the ring holds. */
	s->high_water = load_relaxed(&q->hwm);
	if (s->high_water > s->capacity)
		s->high_water = s->capacity;
	s->repairs = load_relaxed(&q->repairs);
	s->tombstones = load_relaxed(&q->tombstones);
	/* Bit 0 of an eventcount: sleepers announced (shm/ring.c). */
	s->sleepers_recv = load_relaxed(&q->ec_recv) & 1;
	s->sleepers_send = load_relaxed(&q->ec_send) & 1;
	s->shutdown = load_relaxed(&q->shutdown);
	s->joinable = seg->geom.queue.flags & SHMQ_QUEUE_F_JOINABLE;
	if (seg->geom.queue.arena_pages) {
		uint64_t used = load_relaxed(&q->arena_tail) - load_relaxed(&q->arena_head);

		s->max_msg = seg->geom.queue.max_msg;
		s->arena_size = seg->geom.queue.arena_pages * SHMQ_ARENA_PAGE;
		s->arena_used = used > s->arena_size ? s->arena_size : used; /* peer-written */
	}
	if (s->joinable)
		s->unfinished = load_relaxed(&q->unfinished) & SHMQ_QUEUE_UNFINISHED_MAX;
}

static void read_sem(const struct shmq_segment *seg, struct snapshot *s)
{
	const struct shmq_sem_shm *sm = seg->object;

	s->value = load_relaxed(&sm->value);
	/* An undo semaphore's word also carries an operation in flight (shm/sem.c). */
	if (seg->geom.sem.flags & SHMQ_SEM_UNDO)
		s->value &= SHMQ_SEM_UNDO_VALUE_MAX;
	s->waiters = load_relaxed(&sm->n_waiters);
	/* Zero in a layout 1.0 segment, whose padding it was. */
	s->repairs = load_relaxed(&sm->repairs);
}

static void read_event(const struct shmq_segment *seg, struct snapshot *s)
{
	const struct shmq_event_shm *e = seg->object;

	s->value = load_relaxed(&e->state) & 1; /* bit 0: set (shm/event.c) */
	s->sleepers_recv = load_relaxed(&e->ec) & 1;
}

static void read_lock(const struct shmq_segment *seg, struct snapshot *s)
{
	const struct shmq_lock_shm *l = seg->object;
	uint32_t w = load_relaxed(&l->word);
	uint32_t holder = shmq__owner_index1(shmq__owner_of(w)); /* a tag: index + 1 */

	s->value = holder != 0;
	s->owner_died = w & SHMQ_LOCK_DEAD;
	if (holder && holder <= seg->n_sessions) { /* peer-written: an index only when in range */
		s->holder_pid = load_relaxed(&seg->sessions[holder - 1].pid);
		s->holder_tid = load_relaxed(&l->owner_tid);
		s->holder_depth = load_relaxed(&l->depth);
	}
	for (uint32_t i = 0; i < seg->n_sessions; i++)
		if (load_relaxed(&seg->sessions[i].state) == SHMQ_SESSION_ACTIVE)
			s->waiters += load_relaxed(&seg->sessions[i].k.lock.waiting);
	s->repairs = load_relaxed(&l->recoveries);
}

static void read_cond(const struct shmq_segment *seg, struct snapshot *s)
{
	const struct shmq_cond_shm *cv = seg->object;

	s->waiters = load_relaxed(&cv->waiting);
	s->pending = load_relaxed(&cv->pending);
	s->value = load_relaxed(&cv->seq);
	s->repairs = load_relaxed(&cv->deaths);
}

static void read_barrier(const struct shmq_segment *seg, struct snapshot *s)
{
	const struct shmq_barrier_shm *b = seg->object;
	uint64_t st = load_relaxed(&b->state);

	s->broken = st & SHMQ_BARRIER_BROKEN;
	s->waiters =
		s->broken ? 0
			  : (uint32_t)((st & SHMQ_BARRIER_COUNT_MASK) >> SHMQ_BARRIER_COUNT_SHIFT);
	s->generation = (uint32_t)st;
	s->repairs = load_relaxed(&b->breaks);
}

static void read_pipe(const struct shmq_segment *seg, struct snapshot *s)
{
	const struct shmq_pipe_shm *p = seg->object;
	struct shmq_pipe end;

	s->capacity = seg->geom.pipe.n_slots;
	s->slot_size = seg->geom.pipe.slot_size;
	for (uint32_t e = 0; e < 2; e++) {
		const struct shmq_queue_shm *q = &p->dir[e];

		s->end_closed[e] = shmq__pipe_end_closed(seg, e);
		if (e >= shmq__pipe_dirs(&seg->geom.pipe))
			continue;
		/* Geometry passed shmq__segment_attach(), so the ends attach. */
		if (shmq__pipe_attach(&end, seg, UINT32_MAX, e) == 0 && end.can_recv)
			s->pipe_depth[e] = shmq__ring_depth(&end.in);
		s->depth += s->pipe_depth[e];
		s->sleepers_recv |= load_relaxed(&q->ec_recv) & 1;
		s->sleepers_send |= load_relaxed(&q->ec_send) & 1;
		s->repairs += load_relaxed(&q->repairs);
		/* Peer-written: never report more than a direction holds. */
		if (load_relaxed(&q->hwm) > s->high_water)
			s->high_water = load_relaxed(&q->hwm);
	}
	if (s->high_water > s->capacity)
		s->high_water = s->capacity;
}

/* The live figures of each kind: its control block's words. */
static void (*const readers[SHMQ_KIND_LIMIT])(const struct shmq_segment *seg,
					      struct snapshot *s) = {
	[SHMQ_KIND_QUEUE] = read_queue, [SHMQ_KIND_SEM] = read_sem,
	[SHMQ_KIND_EVENT] = read_event, [SHMQ_KIND_LOCK] = read_lock,
	[SHMQ_KIND_COND] = read_cond,	[SHMQ_KIND_BARRIER] = read_barrier,
	[SHMQ_KIND_PIPE] = read_pipe,
};

int snapshot_take(struct shmq_client *c, const char *name, uint64_t object_id, unsigned int flags,
		  struct snapshot *ret)
{
	struct shmq_segment seg;
	struct shmq_view *v = NULL;
	const void *base;
	size_t size;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = shmq_view_open(c, name, &v);
	if (r == 0)
		r = shmq_view_memory(v, &base, &size);
	/* The mapping is PROT_READ: attach only reads, whatever its prototype says. */
	if (r == 0)
		r = shmq__segment_attach((void *)base, size, &seg);
	/*
	 * A view opens by name, and an unlinked object's name may belong to a
	 * new object by now: never show that one's figures as this one's.
	 */
	if (r == 0 && object_id && seg.hdr->object_id != object_id)
		r = -ESTALE;
	if (r < 0) {
		ret->view_error = r;
		shmq_view_close(v);
		return 0;
	}

	ret->kind = seg.kind;
	ret->taken_ns = mono_now_ns();
	/* shmqd's since layout 1.10 (zero before): display only, any value is valid */
	ret->last_send_pid = load_relaxed(&seg.hdr->last_send_pid);
	ret->last_recv_pid = load_relaxed(&seg.hdr->last_recv_pid);
	ret->last_send_realtime_ns = load_relaxed(&seg.hdr->last_send_realtime_ns);
	ret->last_recv_realtime_ns = load_relaxed(&seg.hdr->last_recv_realtime_ns);
	readers[seg.kind](&seg, ret);		   /* attach validated the kind */
	shmq__segment_counters(&seg, &ret->total); /* every record's, and the retired ones */
	records_read(&seg, flags, ret);
	if (flags & SNAP_CHECK)
		check(&seg, ret);
	shmq_view_close(v);
	if ((flags & SNAP_RECORDS) && !ret->records)
		return -ENOMEM;
	return 0;
}

void snapshot_fini(struct snapshot *s)
{
	free(s->records);
	s->records = NULL;
	s->n_records = 0;
}
