/* SPDX-License-Identifier: MIT */
/*
 * Bounded ring queue of fixed-size slots in shared memory.
 *
 * DESIGN
 *
 Every mode runs on per-slot turns, a bounded MPMC queue in the manner of
 * Vyukov's: each slot has a 64-bit turn word, the position it is ready for
 * (seq) and who holds it (owner).  For position pos, slot pos & mask goes
 * through:
 *
 *     EMPTY      seq = pos,     owner 0
 *     WRITING    seq = pos,     owner WRITING|tag    producer claimed it (CAS)
 *     FULL       seq = pos + 1, owner 0              published (R1)
 *     READING    seq = pos + 1, owner READING|tag    consumer claimed it (CAS)
 *     EMPTY      seq = pos + N, owner 0              released for the next lap (R4)
 *
 MPMC (and MPSC/SPMC, whose declared roles are enforced at attach): the
 * claim CAS records the holder's session tag in the same atomic step that
 * takes the slot, so a slot is never held by an unknown process: this is
 * what makes the ring repairable after a death at any instruction.  tail
 * and head are only hints: whoever finds the slot at the hint already taken
 * advances the hint for everyone (CAS, "helping"), so a process that dies
 * between claiming a slot and bumping the index wedges nothing.
 *
 * SPSC (the fast path): the same turns with plain stores.  The only
 * producer and the only consumer each keep their own position in the
 * handle and never read the other's index: the consumer polls the next
 * slot's turn, whose cache line also brings the payload, so a hand-off is
 * one cache-line transfer, where a head/tail ring needs two dependent ones
 * (the index, then the payload).  Nothing is ever claimed: a producer that
 * dies mid-copy never published, a consumer that dies mid-read (or holding
 * a peek) never freed, so the next one simply carries on.  No repair.  head
 * and tail are stored after each operation for observers (depth, check),
 * one behind at most if a process died in between; a successor starting
 * from a stale one skips the turns already published or freed.
 *
 * Ordering -- read before changing:
 *
 *   producer                                consumer
 *   --------------------------------------  --------------------------------------
 *   A3 t = load_acquire(&slot->state)   <-- R4 store_release(&slot->state, pos+N|0)
 *      CAS state pos|0 -> pos|WRITING|tag      (reads of the old payload are done)
 *      copy payload, len, flags
 *   R1 store_release(&slot->state,      --> A1 t = load_acquire(&slot->state)
 *                    pos+1|0)                  CAS state pos+1|0 -> pos+1|READING|tag
 *                                              copy payload out
 *   SPSC: the same R1/A1 and R4/A3 pairs, without the CASes.
 *
 *   R1/A1 make a message visible before it can be read; R4/A3 stop a
 *   producer overwriting a slot that is still being read.
 *   The claim CASes are acq_rel so that a failed claimer re-reads a current
 *   turn; the hint CASes on tail/head are relaxed: they order nothing, the
 *   turn word is authoritative.
 *
 * Blocking: each direction has an eventcount (ec_recv for receivers,
 * ec_send for senders), whose protocol and lost-wake-up argument are in
 * shm/eventcount.h.  Here, (c) is a publish (R1) or a free (R4, and R2 in
 * SPSC), and every one is followed by ec_notify() on the other side's word;
 * (b) is the attempt itself, or shmq__ring_is_ready() for an asynchronous
 * arm (shmq__ring_arm()), which is false exactly where an attempt would
 * return -EAGAIN.
 *
 * Invariants (checked by shmq__ring_check() on a quiescent ring):
 *   - indices run free as uint32_t and are compared only by unsigned
 *     difference; head <= tail and tail - head <= n_slots;
 *   - SPSC: owners are always 0, and head/tail may lag their turns by one;
 *   - turns: every slot's seq is congruent to its index (mod n_slots) or to
 *     index + 1; FULL/READING slots lie in [head - N, tail), WRITING slots in
 *     [tail - N, tail], EMPTY slots in [tail, tail + N); owners are 0 or one
 *     of WRITING/READING with a tag;
 *   - geometry lives in struct shmq_ring, never re-read from shared memory.
 *
 * Untrusted peers: every turn, index and length read from shared memory is
 * range-checked before use.  A corrupt length consumes the slot and returns
 * -EBADMSG; an inconsistent turn at the frontier returns -EBADMSG; every
 * loop is bounded.  A hostile writer can corrupt messages, never make us
 * read or write outside the mapping or spin forever.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "shm/atomic.h"
#include "shm/fence.h"
#include "shm/eventcount.h"
#include "shm/futex.h"
#include "shm/kind.h"
#include "shm/owner.h"
#include "shm/ring.h"

#define TAG_NO_SESSION UINT32_C(0xfffe)
/* A claim gives up (-EAGAIN) after this many lost races: never in practice. */
#define CLAIM_TRIES_MAX 4096u

#define TURN(seq, owner) (((uint64_t)(seq) << 32) | (uint64_t)(owner))
#define TURN_SEQ(t)	 ((uint32_t)((t) >> 32))
#define TURN_OWNER(t)	 ((uint32_t)(t))

static inline struct shmq_slot_hdr *slot_at(const struct shmq_ring *r, uint32_t pos)
{
	return (struct shmq_slot_hdr *)(r->slots + (size_t)(pos & r->mask) * r->slot_stride);
}

static inline unsigned char *payload(struct shmq_slot_hdr *h)
{
	return (unsigned char *)(h + 1);
}

/* memcpy() with a NULL pointer is undefined even for 0 bytes; empty messages may pass NULL. */
static inline void copy_bytes(void *dst, const void *src, size_t len)
{
	if (len)
		memcpy(dst, src, len);
}

/*
 * The bytes of one message to send: one buffer, or the parts of a gather
 * send.  Sums are checked where the message is made (total_of()).
 */
struct msg_src {
	const struct iovec *parts; /* NULL: the one buffer below */
	unsigned int n_parts;
	const void *buf;
	size_t len; /* the whole message */
};

static inline void copy_src(void *dst, const struct msg_src *m)
{
	unsigned char *d = dst;

	if (!m->parts) {
		copy_bytes(d, m->buf, m->len);
		return;
	}
	for (unsigned int i = 0; i < m->n_parts; i++) {
		copy_bytes(d, m->parts[i].iov_base, m->parts[i].iov_len);
		d += m->parts[i].iov_len;
	}
}

static inline uint32_t n_slots(const struct shmq_ring *r)
{
	return r->mask + 1;
}

static inline bool is_spsc(const struct shmq_ring *r)
{
	return r->mode == SHMQ_QMODE_SPSC;
}

int shmq__ring_attach_at(struct shmq_ring *r, const struct shmq_segment *seg, uint32_t session,
			 const struct shmq_ring_part *part)
{
	struct shmq_session_shm *s = NULL;

	if (!r || !seg || !part || !part->q || !part->slots)
		return -EINVAL;
	if (session != UINT32_MAX) {
		s = shmq__session_at(seg, session);
		if (!s || session + 1 >= TAG_NO_SESSION)
			return -EINVAL;
	}

	memset(r, 0, sizeof(*r));
	r->q = part->q;
	r->slots = part->slots;
	r->mask = part->n_slots - 1;
	r->slot_size = part->slot_size;
	r->slot_stride = part->slot_stride;
	r->mode = part->mode;
	r->tag = s ? session + 1 : TAG_NO_SESSION;
	r->c = s ? &s->c : &r->private_counters;
	r->spin_ns = SHMQ_SPIN_NS_DEFAULT;
	/*
	 * SPSC: this handle is the only writer of its index (the daemon admits
	 * one producer and one consumer session), so it keeps the index locally
	 * and only stores it to shm; reading its own line back would stall on
	 * the peer's snoop.  Caches start at the current indices; a stale cache
	 * only costs a reload.
	 */
	r->cons_pos = load_relaxed(&r->q->head); /* a hint: the turns are authoritative */
	r->prod_pos = load_relaxed(&r->q->tail);
	shmq__fence_user_init(&r->fence, shmq__segment_asym_flag(seg));
	r->arena = part->arena;
	r->arena_size = part->arena ? part->arena_size : 0;
	r->max_msg =
		part->arena && part->max_msg > part->slot_size ? part->max_msg : part->slot_size;
	r->peek_start = UINT64_MAX;
	r->joinable = part->flags & SHMQ_QUEUE_F_JOINABLE;
	r->jrec = r->joinable && s ? &s->k.queue : NULL;
	if (r->jrec)
		shmq__owner_init(&r->join, session, &r->jrec->owed, &r->jrec->owed_pending);
	else
		shmq__owner_init(&r->join, 0, NULL, NULL);
	return 0;
}

int shmq__ring_attach(struct shmq_ring *r, const struct shmq_segment *seg, uint32_t session)
{
	struct shmq_ring_part part;

	if (!r || !seg || seg->kind != SHMQ_KIND_QUEUE)
		return -EINVAL;
	part = (struct shmq_ring_part){
		.q = seg->object,
		.slots = seg->slots,
		.n_slots = seg->geom.queue.n_slots,
		.slot_size = seg->geom.queue.slot_size,
		.slot_stride = seg->geom.queue.slot_stride,
		.mode = seg->geom.queue.mode,
		.flags = seg->geom.queue.flags,
	};
	if (seg->geom.queue.arena_pages) {
		part.arena = seg->slots + shmq__ring_arena_offset(part.n_slots, part.slot_stride);
		part.arena_size = seg->geom.queue.arena_pages * SHMQ_ARENA_PAGE;
		part.max_msg = seg->geom.queue.max_msg;
	}
	return shmq__ring_attach_at(r, seg, session, &part);
}

/* --- Statistics --- */

static void hwm_note(struct shmq_ring *r, uint32_t depth)
{
	uint32_t cur = load_relaxed(&r->q->hwm); /* statistic: no ordering */

	if (depth > n_slots(r))
		return; /* a torn snapshot; never report the impossible */
	while (depth > cur && !cas_relaxed(&r->q->hwm, &cur, depth))
		; /* bounded: cur grows toward depth each round */
}

/* --- Eventcount --- */

/* After a publish or a free: wake the other side's sleepers (shm/eventcount.h). */
static inline void ec_notify(struct shmq_ring *r, _Atomic uint32_t *ec)
{
	if (shmq__ec_notify(ec, &r->fence))
		counter_inc(&r->c->wakes, 1);
}

/* --- Turns: claiming slots --- */

static int turn_corrupt(uint32_t pos, _Atomic uint32_t *hint)
{
	/* Only a stale hint could explain this turn; if the hint has not moved, shm is corrupt. */
	return load_relaxed(hint) == pos ? -EBADMSG : 0; /* hint: turn is authoritative */
}

/*
 * Helping: raise the hint to pos + 1 if it is lower.  Only for a pos that is
 * known taken, reached by walking up from the hint over taken positions, so
 * everything below pos + 1 is taken and no free position is ever skipped.
 * Monotone (never lowers the hint), so a late helper cannot move it back.
 */
static void hint_raise(_Atomic uint32_t *hint, uint32_t pos)
{
	uint32_t h = load_relaxed(hint); /* hint only: the turn is authoritative */

	while ((int32_t)(pos + 1 - h) > 0 && !cas_relaxed(hint, &h, pos + 1))
		; /* bounded: h grows toward pos + 1 each round */
}

/* Exact form: advance only if the hint is exactly @pos (publishing past the frontier). */
static void hint_advance(_Atomic uint32_t *hint, uint32_t pos)
{
	uint32_t expected = pos;

	(void)cas_relaxed(hint, &expected, pos + 1);
}

/*
 * Turn arithmetic.  For position pos, a slot's seq is pos or pos + 1 in the
 * current lap; pos - N or pos + 1 - N while the previous lap still holds it;
 * pos + kN or pos + kN + 1 (k >= 1) once pos is in the past.  The unsigned
 * difference d = seq - pos classifies it; anything else is corruption.
 */
static bool lap_past(const struct shmq_ring *r, uint32_t d)
{
	return (int32_t)d >= (int32_t)n_slots(r) && (d & r->mask) <= 1;
}

static bool lap_previous(const struct shmq_ring *r, uint32_t d)
{
	return d == 1 - n_slots(r) || d == -n_slots(r);
}

/* Position @pos is in the past: move to the hint if it is ahead, else to pos + 1. */
static uint32_t pos_after(uint32_t pos, _Atomic uint32_t *hint)
{
	uint32_t h = load_relaxed(hint); /* hint only: the turn is authoritative */

	return (int32_t)(h - pos) > 0 ? h : pos + 1;
}

/*
 * Claim the next free position for writing, tagged @tag.
 * Return: 0 with *ret_pos; -EAGAIN full; -EBADMSG corrupt turn.
 */
static int claim_write(struct shmq_ring *r, uint32_t tag, uint32_t *ret_pos)
{
	uint32_t pos = load_relaxed(&r->q->tail); /* hint only */

	for (unsigned int tries = 0; tries < CLAIM_TRIES_MAX; tries++) {
		struct shmq_slot_hdr *h = slot_at(r, pos);
		uint64_t t = load_acquire(&h->state); /* A3: pairs with R4 */
		uint32_t seq = TURN_SEQ(t), own = TURN_OWNER(t);
		uint32_t d = seq - pos; /* unsigned difference: indices run free */

		if (d == 0 && own == 0) {
			if (cas_acq_rel(&h->state, &t, TURN(pos, SHMQ_OWNER_WRITING | tag))) {
				hint_raise(&r->q->tail, pos);
				*ret_pos = pos;
				return 0;
			}
			continue; /* lost the race: re-examine this position */
		}
		if ((d == 0 && (own & SHMQ_OWNER_WRITING)) || d == 1) {
			hint_raise(&r->q->tail, pos); /* taken for pos: try pos + 1 */
			pos++;
			continue;
		}
		if (d == 1 - n_slots(r) || (d == -n_slots(r) && (own & SHMQ_OWNER_WRITING))) {
			hwm_note(r, n_slots(r)); /* full is the one exact depth sample */
			return -EAGAIN;		 /* previous lap not yet consumed: full */
		}
		if (lap_past(r, d)) {
			/*
			 * Descheduled while the ring moved on a lap or more: pos is
			 * used.  Never jump to the slot's later lap: positions in
			 * between may be free, and claiming past them would break
			 * this producer's FIFO order.
			 */
			hint_raise(&r->q->tail, pos);
			pos = pos_after(pos, &r->q->tail);
			continue;
		}
		if (turn_corrupt(pos, &r->q->tail) < 0)
			return -EBADMSG;
		pos = load_relaxed(&r->q->tail); /* hint moved: retry from it */
	}
	return -EAGAIN;
}

/*
 * Claim the next published position for reading, tagged @tag, if its
 * message is at most @fit bytes (UINT32_MAX: any).  The length is read under
 * the acquired turn; the claim CAS compares the whole turn, whose seq names
 * the lap, so the message claimed is the one whose length was checked.
 * Return: 0 with *ret_pos; -EAGAIN empty (or the next message is still being
 * written, or its slot still being read a lap ago); -EMSGSIZE the next
 * message is longer than @fit (not claimed); -EBADMSG corrupt turn.
 */
static int claim_read(struct shmq_ring *r, uint32_t tag, uint32_t fit, uint32_t *ret_pos)
{
	uint32_t pos = load_relaxed(&r->q->head); /* hint only */

	for (unsigned int tries = 0; tries < CLAIM_TRIES_MAX; tries++) {
		struct shmq_slot_hdr *h = slot_at(r, pos);
		uint64_t t = load_acquire(&h->state); /* A1: pairs with R1 */
		uint32_t seq = TURN_SEQ(t), own = TURN_OWNER(t);
		uint32_t d = seq - pos;

		if (d == 1 && own == 0) {
			if (fit != UINT32_MAX && load_relaxed(&h->len) > fit) /* ordered by A1 */
				return -EMSGSIZE;
			if (cas_acq_rel(&h->state, &t, TURN(seq, SHMQ_OWNER_READING | tag))) {
				hint_raise(&r->q->head, pos);
				*ret_pos = pos;
				return 0;
			}
			continue;
		}
		if (d == 1 && (own & SHMQ_OWNER_READING)) {
			hint_raise(&r->q->head, pos); /* taken for pos: try pos + 1 */
			pos++;
			continue;
		}
		if ((d == 0 && !(own & SHMQ_OWNER_READING)) || lap_previous(r, d))
			return -EAGAIN; /* nothing published for pos yet */
		if (lap_past(r, d)) {
			hint_raise(&r->q->head, pos); /* consumed a lap or more ago */
			pos = pos_after(pos, &r->q->head);
			continue;
		}
		if (turn_corrupt(pos, &r->q->head) < 0)
			return -EBADMSG;
		pos = load_relaxed(&r->q->head);
	}
	return -EAGAIN;
}

/*
 * SPSC: the next position to write, from our own index and the slot's turn
 * alone: we are the only producer, so nothing is claimed (no CAS, no tag),
 * and the consumer's index is never read.  A turn already published for
 * our position means a predecessor died between publishing and storing
 * tail: skip it.  Return: 0 with *ret_pos; -EAGAIN full; -EBADMSG.
 */
static int spsc_next_free(struct shmq_ring *r, uint32_t *ret_pos)
{
	uint32_t pos = r->prod_pos;

	for (uint32_t tries = 0; tries <= 2 * n_slots(r); tries++) {
		uint64_t t = load_acquire(&slot_at(r, pos)->state); /* A3: pairs with R4 */
		uint32_t d = TURN_SEQ(t) - pos;

		if (TURN_OWNER(t))
			return -EBADMSG; /* SPSC never claims */
		if (d == 0) {
			r->prod_pos = pos;
			*ret_pos = pos;
			return 0;
		}
		if (d == 1 - n_slots(r)) {
			hwm_note(r, n_slots(r)); /* full is the one exact depth sample */
			return -EAGAIN;		 /* previous lap not yet consumed */
		}
		if (d != 1 && !lap_past(r, d))
			return -EBADMSG;
		pos++;
	}
	return -EBADMSG;
}

/*
 * SPSC: the next position to read, if its message is at most @fit bytes.
 * The consumer polls the slot's own turn, never the producer's index: the
 * line that brings the turn brings the payload, so a hand-off costs one
 * cache-line transfer, not two.  A turn already freed for our position
 * means a predecessor died between freeing and storing head: skip it.
 * Return: 0 with *ret_pos; -EAGAIN empty; -EMSGSIZE; -EBADMSG.
 */
static int spsc_next_full(struct shmq_ring *r, uint32_t fit, uint32_t *ret_pos)
{
	uint32_t pos = r->cons_pos;

	for (uint32_t tries = 0; tries <= 2 * n_slots(r); tries++) {
		struct shmq_slot_hdr *h = slot_at(r, pos);
		uint64_t t = load_acquire(&h->state); /* A1: pairs with R1 */
		uint32_t d = TURN_SEQ(t) - pos;

		if (TURN_OWNER(t))
			return -EBADMSG;
		if (d == 1) {
			if (fit != UINT32_MAX && load_relaxed(&h->len) > fit) /* ordered by A1 */
				return -EMSGSIZE;
			r->cons_pos = pos;
			*ret_pos = pos;
			return 0;
		}
		if (d == 0)
			return -EAGAIN; /* not yet published */
		if (!lap_past(r, d))
			return -EBADMSG;
		pos++;
	}
	return -EBADMSG;
}

static void turn_publish(struct shmq_ring *r, uint32_t pos, uint32_t len, uint32_t flags)
{
	struct shmq_slot_hdr *h = slot_at(r, pos);

	store_relaxed(&h->len, len); /* ordered by R1 */
	store_relaxed(&h->flags, flags);
	store_release(&h->state, TURN(pos + 1, 0)); /* R1: pairs with A1 in claim_read() */
}

static void turn_free(struct shmq_ring *r, uint32_t pos)
{
	/* R4: our reads of the payload are done; pairs with A3 in claim_write(). */
	store_release(&slot_at(r, pos)->state, TURN(pos + n_slots(r), 0));
}

/* --- Joinable queues --- */

/*
 * JoinableQueue (layout 1.7).  q->unfinished counts tasks: +1 before each
 * message is published, -1 at each task_done.  join() sleeps on
 * q->ec_join until it reads 0; the -1 that reaches 0 notifies it.
 *
 * What makes it exact across a SIGKILL anywhere is each session's share,
 * rec->owed: the tasks it took and has not done, plus a put it counted and
 * has not published -- what the daemon takes off the count when the
 * session goes (shmq__ring_join_settle()).  owed changes with two other
 * words, and no CAS covers both: with the count (a put's +1, a task_done's
 * -1), which the owner journal covers (shm/owner.h, U1..U4: the count's CAS
 * carries our tag until owed is recorded), and with a slot's turn (a
 * publish, a consumption), whose new value is itself the witness of
 * whether it happened:
 *
 *   put        J1 put_pos = pos + 1
 *              U1..U4: unfinished + 1 under our tag, owed + 1
 *              J2 put_owed = owed - 1
 *              R1 publish: the turn of pos moves on from pos
 *              J3 owed = put_owed;  J4 put_pos = 0 (release)
 *   take       (the slot taken, the payload copied out)
 *              J5 take_pos = pos + 1;  J6 take_owed = owed + 1
 *              R4 free: the turn of pos moves on from pos + 1
 *              J7 owed = take_owed;  J8 take_pos = 0 (release)
 *   task_done  U1..U4: unfinished - 1 under our tag, owed - 1
 *
 *   settle     owed = the journal's true count (U5: owed_pending if our tag
 *              is in the word, else owed)
 *              put_pos:  the turn of pos still pos     -> not published: owed
 *                        else                           -> published: put_owed
 *              take_pos: the turn of pos still pos + 1 -> not consumed (the
 *                        ring's repair redelivers it): owed; else take_owed
 *              unfinished -= owed, in the CAS that clears the dead tag
 *
 * Ordering: J1 precedes U2 (its release half); J2 and J5, J6 precede R1
 * and R4 (releases); J3 precedes J4 and J7 precedes J8 (releases).  The
 * daemon acquires put_pos and take_pos (pairing with J4, J8), the turns
 * (with R1, R4) and the word (A7, with U2/U4), so every value it uses is
 * at least as new as the witness it read.  A handle's sending and
 * receiving threads both change owed: the journal's process-local lock
 * keeps J1..J4, J5..J8 and task_done apart.
 *
 * The count is at most SHMQ_QUEUE_UNFINISHED_MAX (the bits below the owner
 * field): a send that would pass it fails with -EOVERFLOW.
 */
#define JOIN_VALUE_MASK SHMQ_QUEUE_UNFINISHED_MAX

static void publish(struct shmq_ring *r, uint32_t pos, uint32_t len, uint32_t flags);
static void done(struct shmq_ring *r, uint32_t pos);
static int next_write(struct shmq_ring *r, uint32_t *ret_pos);

/*
 * Move the count by @delta under the journal lock (U1..U4 with a record;
 * a plain CAS without one).  Return: 0 and the new count; -EOVERFLOW;
 * -EBUSY another session's journaled change never finished.
 */
static int join_count(struct shmq_ring *r, int32_t delta, uint32_t *ret_value)
{
	_Atomic uint32_t *word = &r->q->unfinished;
	struct shmq_owner_journal *j = &r->join;
	uint32_t w = load_relaxed(word); /* a first guess; the CAS validates it */

	if (j->tag)
		shmq__owner_begin(j, shmq__owner_count(j) + (uint32_t)delta); /* U1 */
	for (unsigned int i = 0; i < CLAIM_TRIES_MAX; i++) {
		uint32_t v, nv;

		if (shmq__owner_of(w) && shmq__owner_wait(word, &w) < 0)
			return -EBUSY;
		v = w & JOIN_VALUE_MASK;
		if (delta > 0 && v + (uint32_t)delta > JOIN_VALUE_MASK)
			return -EOVERFLOW;
		/* Below zero only if a peer scribbled on the word: stay at zero. */
		nv = delta < 0 && v < (uint32_t)-delta ? 0 : v + (uint32_t)delta;
		/* U2: seq_cst, (c) of ec_join's protocol when it reaches 0 */
		if (cas_seq_cst(word, &w, nv | j->tag)) {
			if (j->tag)
				(void)shmq__owner_commit(j, word, &w); /* U3, U4 */
			*ret_value = nv;
			return 0;
		}
	}
	return -EBUSY; /* the word never held still */
}

/* Publish @pos counted as a task (J1..J4).  Return: 0; -EOVERFLOW, -EBUSY: not published. */
static int join_publish(struct shmq_ring *r, uint32_t pos, uint32_t len, uint32_t flags)
{
	struct shmq_queue_rec *jr = r->jrec;
	uint32_t v;
	int rc;

	shmq__owner_lock(&r->join);
	if (jr)
		store_relaxed(&jr->put_pos, pos + 1); /* J1: ordered by U2's release half */
	rc = join_count(r, 1, &v);
	if (rc == 0) {
		if (jr) /* J2: ordered by R1 */
			store_relaxed(&jr->put_owed, load_relaxed(&jr->owed) - 1);
		publish(r, pos, len, flags); /* R1 */
		if (jr)
			store_relaxed(&jr->owed, load_relaxed(&jr->put_owed)); /* J3 */
	}
	if (jr)
		store_release(&jr->put_pos, 0); /* J4: pairs with the settle's acquire */
	shmq__owner_unlock(&r->join);
	return rc;
}

/* A send that could not be counted: give the claimed slot up (turn modes: a tombstone). */
static void join_unclaim(struct shmq_ring *r, uint32_t pos)
{
	if (!is_spsc(r))
		publish(r, pos, 0, SHMQ_SLOT_TOMBSTONE);
	/* SPSC claims nothing: the position is simply written again next time. */
}

/* Free @pos, a message (not a tombstone) this handle took: a task now (J5..J8). */
static void consume(struct shmq_ring *r, uint32_t pos)
{
	struct shmq_queue_rec *jr = r->jrec;

	if (!r->joinable) {
		done(r, pos);
		return;
	}
	shmq__owner_lock(&r->join);
	if (jr) {
		store_relaxed(&jr->take_pos, pos + 1); /* J5, J6: ordered by R4 */
		store_relaxed(&jr->take_owed, load_relaxed(&jr->owed) + 1);
	}
	done(r, pos); /* R4 */
	if (jr) {
		store_relaxed(&jr->owed, load_relaxed(&jr->take_owed)); /* J7 */
		store_release(&jr->take_pos, 0);			/* J8 */
	}
	fetch_add_relaxed(&r->tasks, 1); /* this process's threads only */
	shmq__owner_unlock(&r->join);
}

bool shmq__ring_is_joinable(const struct shmq_ring *r)
{
	return r->joinable;
}

int shmq__ring_task_done(struct shmq_ring *r)
{
	uint32_t t, v;
	int rc;

	if (!r->joinable)
		return -EINVAL;
	t = load_relaxed(&r->tasks);
	do {
		if (!t)
			return -EINVAL; /* more task_done calls than tasks taken: Python's ValueError */
	} while (!cas_relaxed(&r->tasks, &t, t - 1));
	shmq__owner_lock(&r->join);
	rc = join_count(r, -1, &v);
	shmq__owner_unlock(&r->join);
	if (rc < 0) {
		fetch_add_relaxed(&r->tasks, 1); /* not done after all */
		return rc;
	}
	if (v == 0)
		ec_notify(r, &r->q->ec_join); /* (c) was U2 */
	return 0;
}

/* A message consumed without reaching the caller (-EMSGSIZE, -EBADMSG) is done at once. */
static void consume_dropped(struct shmq_ring *r, uint32_t pos)
{
	consume(r, pos);
	if (r->joinable)
		(void)shmq__ring_task_done(r); /* -EBUSY: a forged tag; the settle evens it out */
}

uint32_t shmq__ring_unfinished(const struct shmq_ring *r)
{
	return load_relaxed(&r->q->unfinished) & JOIN_VALUE_MASK; /* a snapshot */
}

/* join()'s condition: 0 done; -EPIPE shut down immediately; -EAGAIN not yet. */
static int join_ready(const struct shmq_ring *r)
{
	/* A9: pairs with the U2 that reached 0: what the tasks did happens-before */
	if ((load_acquire(&r->q->unfinished) & JOIN_VALUE_MASK) == 0)
		return 0;
	return load_acquire(&r->q->shutdown) == SHMQ_QUEUE_SHUTDOWN_IMMEDIATE ? -EPIPE : -EAGAIN;
}

int shmq__ring_join(struct shmq_ring *r, uint64_t deadline_ns)
{
	_Atomic uint32_t *ec = &r->q->ec_join;
	int rc;

	if (!r->joinable)
		return -EINVAL;
	for (;;) {
		bool bounded;
		uint32_t key;

		rc = join_ready(r);
		if (rc != -EAGAIN)
			return rc;
		key = shmq__ec_prepare(ec, &r->fence, &bounded); /* (a), H1, F2 */
		rc = join_ready(r);				 /* (b) */
		if (rc != -EAGAIN)
			return rc;
		counter_inc(&r->c->sleeps, 1);
		rc = shmq__ec_sleep(ec, key, deadline_ns, bounded); /* (e) */
		if (rc == -ETIMEDOUT) {
			rc = join_ready(r);
			return rc == -EAGAIN ? -ETIMEDOUT : rc;
		}
		if (rc < 0)
			return rc;
	}
}

uint32_t shmq__ring_join_settle(const struct shmq_segment *seg, uint32_t index)
{
	struct shmq_session_shm *rec = shmq__session_at(seg, index);
	uint32_t owed, w, pos, nv = 0, tag = shmq__owner_field(index);
	struct shmq_queue_rec *jr;
	struct shmq_ring ring;

	if (!rec || seg->kind != SHMQ_KIND_QUEUE ||
	    !(seg->geom.queue.flags & SHMQ_QUEUE_F_JOINABLE) ||
	    shmq__ring_attach(&ring, seg, UINT32_MAX) < 0)
		return 0;
	jr = &rec->k.queue;
	/* A7, U5: the journal's true count, then forget it */
	owed = shmq__owner_resolve(&ring.q->unfinished, index, &jr->owed, &jr->owed_pending, &w);
	pos = load_acquire(&jr->put_pos); /* pairs with J4 */
	if (pos && TURN_SEQ(load_acquire(&slot_at(&ring, pos - 1)->state)) != pos - 1)
		owed = load_relaxed(&jr->put_owed); /* published (pairs with R1) */
	pos = load_acquire(&jr->take_pos);	    /* pairs with J8 */
	if (pos && TURN_SEQ(load_acquire(&slot_at(&ring, pos - 1)->state)) != pos)
		owed = load_relaxed(&jr->take_owed); /* consumed (pairs with R4) */
	store_relaxed(&jr->put_pos, 0);
	store_relaxed(&jr->take_pos, 0);
	for (unsigned int i = 0; i < CLAIM_TRIES_MAX; i++) {
		uint32_t v;

		/* Our tag may be in the word (the dead session's U2): anyone else's is live. */
		if (shmq__owner_of(w) && shmq__owner_of(w) != tag &&
		    shmq__owner_wait(&ring.q->unfinished, &w) < 0)
			break;
		v = w & JOIN_VALUE_MASK;
		nv = v > owed ? v - owed : 0;
		if (cas_seq_cst(&ring.q->unfinished, &w, nv))
			break;
	}
	if (nv == 0 || owed)
		(void)shmq__ec_wake_all(&ring.q->ec_join);
	/* Waiters in shmq__owner_wait() on a tag we cleared re-read within 1 ms. */
	return owed;
}

/* --- Large messages --- */

/*
 * A queue created with max_msg > slot_size (layout 1.8) has an arena after
 * its slots: a byte ring of regions, each a header and one message, where
 * a message larger than a slot goes.  The slot that carries it has
 * SHMQ_SLOT_LARGE, the message's length, and the region's arena position
 * as its payload; a receiver copies the message out of the region (or
 * peeks at it in place: a region is contiguous) and frees it.
 *
 *   producer                              consumer
 *   A12 h = arena_head (acquire)          (the slot taken, as any message)
 *       CAS arena_tail t -> t + size      A13 CAS state FULL -> READING|tag
 *       state = WRITING|tag                   copy out
 *   R8  start = t (release)                   free the slot (R4)
 *       copy in; pos                      R6  state = FREE (release)
 *   R5  state = FULL (release)                advance: while the region at
 *       claim a slot, publish it (R1)         arena_head is FREE, CAS head
 *                                         R7  past it (release)
 *
 * A12/R7: a producer reuses bytes only after their reader let them go.
 * R5/A13 (and R1/A1 before it): the message is in the region before any
 * reader can take it.  R8 pairs with the advancer's acquire of start: a
 * header whose start names this lap carries this lap's state, so the head
 * never passes a region still being written, and a stale header from an
 * earlier lap never matches (start is 64 bits: it never repeats).
 *
 * Regions are reserved in arena order and freed in any order; the head
 * moves over the freed ones in order, so a slow reader holds back reuse of
 * what follows its region, never the ring of slots.  A producer reserves
 * its region before it claims a slot, so it never holds a slot while it
 * waits for arena space (which could wait for readers queued behind that
 * slot); the arena is twice the largest region, so an empty one always
 * takes one.  A region that does not fit before the arena's end leaves a
 * FREE pad and starts at 0.
 *
 * Deaths (shmq__ring_arena_repair(), before the ring's repair): a region
 * WRITING|tag of the dead session is freed; one READING|tag is freed if its
 * slot was consumed, else made FULL again (the ring redelivers the slot);
 * one FULL whose slot was never published is freed.  Untrusted peers: a
 * slot's region is checked (aligned, inside the window between head and
 * tail, inside the arena, its start and length matching) before it is
 * read; a bad one consumes the slot with -EBADMSG.  A scribbler can wedge
 * the arena (large sends then time out), never make a call read outside
 * it or loop.
 */
#define REGION_HDR ((uint32_t)sizeof(struct shmq_region_hdr))

uint64_t shmq__ring_arena_offset(uint32_t n_slots, uint32_t slot_stride)
{
	uint64_t v = (uint64_t)n_slots * slot_stride;

	return (v + SHMQ_ARENA_PAGE - 1) & ~(uint64_t)(SHMQ_ARENA_PAGE - 1);
}

static uint32_t region_size(uint32_t len)
{
	return (uint32_t)(((uint64_t)REGION_HDR + len + SHMQ_ARENA_ALIGN - 1) &
			  ~(uint64_t)(SHMQ_ARENA_ALIGN - 1));
}

uint32_t shmq__ring_arena_size(uint32_t max_msg)
{
	uint64_t v = 2 * ((uint64_t)REGION_HDR + max_msg + SHMQ_ARENA_ALIGN);

	v = (v + SHMQ_ARENA_PAGE - 1) & ~(uint64_t)(SHMQ_ARENA_PAGE - 1);
	return max_msg <= SHMQ_MSG_SIZE_MAX && v <= SHMQ_ARENA_MAX ? (uint32_t)v : 0;
}

static struct shmq_region_hdr *region_at(const struct shmq_ring *r, uint64_t start)
{
	return (struct shmq_region_hdr *)(r->arena + start % r->arena_size);
}

/*
 * The size of the region whose header is at position @p, below the tail
 * @t, or 0 if no region of this lap starts there: its start is not @p
 * (being reserved, or a stale header), or its size does not fit -- a
 * multiple of SHMQ_ARENA_ALIGN, inside [@p, @t) and before the arena's
 * end.  Every walk of the regions stops at 0 rather than skip into the
 * unknown.
 */
static uint32_t region_size_at(const struct shmq_ring *r, uint64_t p, uint64_t t)
{
	const struct shmq_region_hdr *rh = region_at(r, p);
	uint32_t size;

	if (p % SHMQ_ARENA_ALIGN || load_acquire(&rh->start) != p) /* pairs with R8 */
		return 0;
	size = load_relaxed(&rh->size);
	if (!size || size % SHMQ_ARENA_ALIGN || size > t - p ||
	    size > r->arena_size - (uint32_t)(p % r->arena_size))
		return 0;
	return size;
}

/*
 * Move arena_head over the freed regions at it, holding arena_lock (below):
 * only a holder reads the header at the head, so no header is read at a
 * position a producer may be reusing (a stale read would be a data race
 * with its copy, even if its value were thrown away).
 */
static void arena_advance_locked(struct shmq_ring *r)
{
	uint32_t a = r->arena_size;

	for (uint32_t i = 0; i < a / SHMQ_ARENA_ALIGN; i++) {
		uint64_t h = load_acquire(&r->q->arena_head);
		uint64_t t = load_acquire(&r->q->arena_tail);
		uint32_t size;

		if (h == t || t - h > a)
			return; /* empty, or a torn (or scribbled) pair: the next free tries again */
		size = region_size_at(r, h, t);
		if (!size || load_acquire(&region_at(r, h)->state) != SHMQ_REGION_FREE) /* R6 */
			return;
		/* R7: release, pairs with A12: whatever read these bytes is done */
		atomic_compare_exchange_strong_explicit(&r->q->arena_head, &h, h + size,
							memory_order_release, memory_order_relaxed);
	}
}

/*
 * Reservations take turns: arena_lock holds the reserving producer's tag
 * for the few stores of a reservation, so the headers are written before
 * arena_tail moves past them (R9) and a producer killed halfway leaves
 * either nothing reserved or a whole, FREE or WRITING, region; the repair
 * of its death (or the daemon's tick, for a tag no record names) only
 * clears the lock.  Moving the head over freed regions takes it too (a
 * try: a reader that finds it busy leaves the move to the holder, or to
 * the next free or reservation).  Its cost is one CAS and one store per
 * large message and per free.
 */
#define ARENA_LOCK_SPINS 256

static int arena_lock(struct shmq_ring *r, uint64_t wait_ns)
{
	uint64_t end = 0;

	for (uint32_t i = 0;; i++) {
		uint32_t w = 0;

		/* A15: acquire, pairs with the unlock's release (R10) */
		if (cas_acquire(&r->q->arena_lock, &w, r->tag))
			return 0;
		if (i < ARENA_LOCK_SPINS) {
			cpu_relax();
			continue;
		}
		if (!end)
			end = shmq__deadline_after_ns(wait_ns);
		else if (shmq__now_ns() >= end)
			return -EAGAIN; /* a dead holder not yet repaired, or a forgery: the tick clears it */
		/* 1 ms slices: the holder wakes nobody, its section is a few stores */
		(void)shmq__futex_wait(&r->q->arena_lock, w, shmq__deadline_after_ns(1000000));
	}
}

static void arena_unlock(struct shmq_ring *r)
{
	store_release(&r->q->arena_lock, 0); /* R10 */
}

/* Move the head if nobody holds the lock (see above). */
static void arena_advance(struct shmq_ring *r)
{
	uint32_t w = 0;

	if (cas_acquire(&r->q->arena_lock, &w, r->tag)) { /* A15 */
		arena_advance_locked(r);
		arena_unlock(r);
	}
}

static void region_free(struct shmq_ring *r, uint64_t start)
{
	store_release(&region_at(r, start)->state, SHMQ_REGION_FREE); /* R6 */
	arena_advance(r);
}

/* Reserve a region for @len bytes.  Return: 0 and *@ret_start; -EAGAIN no room. */
static int arena_reserve(struct shmq_ring *r, uint32_t len, uint64_t *ret_start)
{
	uint32_t size = region_size(len), a = r->arena_size, off, pad;
	struct shmq_region_hdr *rh;
	uint64_t h, t;

	if (arena_lock(r, SHMQ_OWNER_WAIT_NS) < 0)
		return -EAGAIN;
	t = load_relaxed(&r->q->arena_tail); /* only the lock's holder writes it */
	h = load_acquire(&r->q->arena_head); /* A12: pairs with R7 */
	off = (uint32_t)(t % a);
	pad = off + size > a ? a - off : 0;
	if (t - h > a || t % SHMQ_ARENA_ALIGN) {
		arena_unlock(r);
		return -EAGAIN; /* corrupt: no room, ever; the deadline ends it */
	}
	if (t - h + pad + size > a) {
		arena_advance_locked(r); /* freed regions at the head: move it, look again */
		h = load_acquire(&r->q->arena_head);
		if (t - h > a || t - h + pad + size > a) {
			arena_unlock(r);
			return -EAGAIN;
		}
	}
	if (pad) {
		rh = region_at(r, t);
		store_relaxed(&rh->state, SHMQ_REGION_FREE);
		store_relaxed(&rh->size, pad);
		store_release(&rh->start, t); /* R8 */
	}
	rh = region_at(r, t + pad);
	store_relaxed(&rh->state, SHMQ_OWNER_WRITING | r->tag);
	store_relaxed(&rh->size, size);
	store_relaxed(&rh->len, len);
	store_release(&rh->start, t + pad);		  /* R8 */
	store_release(&r->q->arena_tail, t + pad + size); /* R9: after the headers */
	if (pad)
		arena_advance_locked(r); /* the pad may be at the head */
	arena_unlock(r);
	*ret_start = t + pad;
	return 0;
}

/*
 * Send a message larger than a slot: region first, then the slot (see
 * above).  Return: 0; -EAGAIN no region or no slot (nothing kept); -EPIPE;
 * -EOVERFLOW, -EBUSY (joinable); -EBADMSG.
 */
static int send_large(struct shmq_ring *r, const struct msg_src *m)
{
	struct shmq_slot_large d = {0};
	struct shmq_region_hdr *rh;
	uint64_t start;
	uint32_t pos;
	int rc;

	if (load_relaxed(&r->q->shutdown))
		return -EPIPE;
	/* No slot free: do not copy a large message only to give its region back. */
	if (!shmq__ring_is_ready(r, true))
		return -EAGAIN;
	rc = arena_reserve(r, (uint32_t)m->len, &start);
	if (rc < 0)
		return rc;
	rh = region_at(r, start);
	copy_src(rh + 1, m);
	rc = next_write(r, &pos);
	if (rc < 0) {
		region_free(r, start);
		return rc;
	}
	store_relaxed(&rh->pos, pos);
	store_release(&rh->state, SHMQ_REGION_FULL); /* R5: pairs with A13 */
	d.start = start;
	memcpy(payload(slot_at(r, pos)), &d, sizeof(d));
	if (r->joinable) {
		rc = join_publish(r, pos, (uint32_t)m->len, SHMQ_SLOT_LARGE);
		if (rc < 0) {
			join_unclaim(r, pos);
			region_free(r, start);
			return rc;
		}
	} else {
		publish(r, pos, (uint32_t)m->len, SHMQ_SLOT_LARGE); /* R1 */
	}
	return 0;
}

/*
 * The region of the large message in slot @pos (@len bytes), taken for
 * reading.  Return: its bytes, and *@ret_start; NULL the slot does not name
 * a region that holds it (a scribbler's).
 */
static const unsigned char *large_take(struct shmq_ring *r, uint32_t pos, uint32_t len,
				       uint64_t *ret_start)
{
	uint64_t h, t;
	struct shmq_slot_large d;
	struct shmq_region_hdr *rh;
	uint32_t st = SHMQ_REGION_FULL, a = r->arena_size;

	if (!r->arena)
		return NULL;
	h = load_acquire(&r->q->arena_head);
	t = load_acquire(&r->q->arena_tail);
	memcpy(&d, payload(slot_at(r, pos)), sizeof(d)); /* read once: ordered by A1 */
	if (d.start % SHMQ_ARENA_ALIGN || t - h > a || d.start - h >= t - h ||
	    (uint64_t)(d.start % a) + region_size(len) > a)
		return NULL;
	rh = region_at(r, d.start);
	if (load_acquire(&rh->start) != d.start || load_relaxed(&rh->len) != len)
		return NULL;
	/* A13: pairs with R5: the message is there */
	if (!cas_acq_rel(&rh->state, &st, SHMQ_OWNER_READING | r->tag))
		return NULL;
	*ret_start = d.start;
	return (const unsigned char *)(rh + 1);
}

/* May slot tag @who be a session that is gone (a handle without a record never is)? */
static bool tag_is_gone(const struct shmq_segment *seg, uint32_t who)
{
	return who && who < TAG_NO_SESSION && shmq__session_tag_free(seg, who);
}

uint32_t shmq__ring_arena_repair(struct shmq_ring *r, const struct shmq_segment *seg, uint32_t tag)
{
	uint64_t h, t, p;
	uint32_t n = 0, a = r->arena_size;

	if (!r->arena)
		return 0;
	{
		/* a holder of the reservation lock that is gone: nothing it did is half done */
		uint32_t lk = load_acquire(&r->q->arena_lock);

		if (lk && (tag ? lk == tag : tag_is_gone(seg, lk)) &&
		    atomic_compare_exchange_strong_explicit(
			    &r->q->arena_lock, &lk, 0, memory_order_release, memory_order_relaxed))
			n++;
	}
	/*
	 * Walk the headers holding the lock, as the head's movers do.  A live
	 * holder keeps it for a few stores; one stopped holding it must not
	 * stall the daemon: give up after 10 ms (the tick sweeps again).
	 */
	if (arena_lock(r, UINT64_C(10) * 1000000) < 0)
		return n;
	h = load_acquire(&r->q->arena_head);
	t = load_acquire(&r->q->arena_tail);
	if (t - h > a) {
		arena_unlock(r);
		return n;
	}
	p = h;
	for (uint32_t i = 0; i < a / SHMQ_ARENA_ALIGN && p != t; i++) {
		struct shmq_region_hdr *rh = region_at(r, p);
		uint32_t size = region_size_at(r, p, t), st, own, who;

		if (!size)
			break;		       /* corrupt: the next sweep goes no further either */
		st = load_acquire(&rh->state); /* A14: the dead process's last release */
		own = st & (SHMQ_OWNER_WRITING | SHMQ_OWNER_READING);
		who = st & SHMQ_OWNER_TAG_MASK;
		if (own && (tag ? who == tag : tag_is_gone(seg, who))) {
			uint32_t pos = load_relaxed(&rh->pos);
			uint32_t seq = TURN_SEQ(load_acquire(&slot_at(r, pos)->state));
			/* being read, its slot not yet freed: the ring redelivers it */
			uint32_t to = own == SHMQ_OWNER_READING && seq == pos + 1
					      ? SHMQ_REGION_FULL
					      : SHMQ_REGION_FREE;

			if (cas_acq_rel(&rh->state, &st, to))
				n++;
		} else if (tag && st == SHMQ_REGION_FULL) {
			/* FULL, its slot never published by the dead writer: nobody will read it */
			uint32_t pos = load_relaxed(&rh->pos);
			uint64_t turn = load_acquire(&slot_at(r, pos)->state);

			/*
			 * SPSC claims nothing: the one producer is the dead session
			 * itself (no other may attach until its record is released).
			 */
			const struct shmq_session_shm *rec = shmq__session_at(seg, tag - 1);
			bool writer = is_spsc(r) ? rec && (load_relaxed(&rec->role) &
							   SHMQ_ROLE_PRODUCER) != 0
						 : TURN_OWNER(turn) == (SHMQ_OWNER_WRITING | tag);

			if (TURN_SEQ(turn) == pos && writer &&
			    cas_acq_rel(&rh->state, &st, SHMQ_REGION_FREE))
				n++;
		}
		p += size;
	}
	arena_advance_locked(r);
	arena_unlock(r);
	return n;
}

/* The arena at rest: regions tile [head, tail), each FREE or FULL.  Return: 0, -EBADMSG. */
static int arena_check(const struct shmq_ring *r)
{
	uint64_t h, t, p;
	uint32_t a = r->arena_size;

	if (!r->arena)
		return 0;
	h = load_acquire(&r->q->arena_head);
	t = load_acquire(&r->q->arena_tail);
	if (t - h > a || h % SHMQ_ARENA_ALIGN || t % SHMQ_ARENA_ALIGN)
		return -EBADMSG;
	for (p = h; p != t;) {
		const struct shmq_region_hdr *rh = region_at(r, p);
		uint32_t size = region_size_at(r, p, t), st = load_relaxed(&rh->state);

		if (!size || (st != SHMQ_REGION_FREE && st != SHMQ_REGION_FULL) ||
		    (st == SHMQ_REGION_FULL && region_size(load_relaxed(&rh->len)) != size))
			return -EBADMSG;
		p += size;
	}
	return 0;
}

/* --- Sending --- */

static int next_write(struct shmq_ring *r, uint32_t *ret_pos)
{
	/*
	 * A2': a shut-down queue takes nothing.  Relaxed: a send that races
	 * the shutdown may go first; one that follows it in happens-before
	 * order sees it (S1 is a release, and the caller's order is ours).
	 */
	if (load_relaxed(&r->q->shutdown))
		return -EPIPE;
	return is_spsc(r) ? spsc_next_free(r, ret_pos) : claim_write(r, r->tag, ret_pos);
}

static void publish(struct shmq_ring *r, uint32_t pos, uint32_t len, uint32_t flags)
{
	turn_publish(r, pos, len, flags);
	if (is_spsc(r)) {
		r->prod_pos = pos + 1;
		/* For observers (depth, check) only; the turn is authoritative. */
		store_relaxed(&r->q->tail, pos + 1);
	}
}

static int send_src(struct shmq_ring *r, const struct msg_src *m)
{
	size_t len = m->len;
	uint32_t pos;
	int rc;

	if (len > r->max_msg)
		return -EMSGSIZE;
	if (r->rsv_active)
		return -EINVAL;
	if (len > r->slot_size) {
		rc = send_large(r, m);
		if (rc == 0)
			counter_inc(&r->c->sent, 1);
		return rc;
	}

	rc = next_write(r, &pos);
	if (rc < 0)
		return rc;
	if ((pos & 63) == 0) /* sample depth: reading head on every send costs a miss */
		hwm_note(r, pos + 1 - load_relaxed(&r->q->head)); /* statistic */
	copy_src(payload(slot_at(r, pos)), m);
	if (r->joinable) {
		rc = join_publish(r, pos, (uint32_t)len, 0);
		if (rc < 0) {
			join_unclaim(r, pos);
			return rc;
		}
	} else {
		publish(r, pos, (uint32_t)len, 0);
	}
	counter_inc(&r->c->sent, 1);
	return 0;
}

static int send_one(struct shmq_ring *r, const void *msg, size_t len)
{
	struct msg_src m = {.buf = msg, .len = len};

	return send_src(r, &m);
}

int shmq__ring_try_send(struct shmq_ring *r, const void *msg, size_t len)
{
	int rc = send_one(r, msg, len);

	if (rc == 0)
		ec_notify(r, &r->q->ec_recv);
	else if (rc == -EAGAIN)
		counter_inc(&r->c->full, 1);
	return rc;
}

/* Up to @n sends, one wake.  Return: how many (> 0), or the first one's -errno (-EAGAIN full). */
/*
 * SPSC batch send: write a run of messages into free slots, then publish
 * their turns.  The consumer sees the run's first message only once all
 * of it is written, so it reads the run's lines one after the other while
 * we write the next run's, instead of chasing us a line at a time (the
 * chase costs one cache-line round trip per message: design.md).  tail is
 * stored after each turn, so it lags by one at most, as after a send.
 * Plain messages only: the run stops before one that needs the arena.
 * Return: how many (0: the first needs send_one()); -EAGAIN full; -EPIPE;
 * -EBADMSG.
 */
static int spsc_send_run(struct shmq_ring *r, const struct iovec *msgs, unsigned int n)
{
	uint32_t pos, k;
	int rc;

	if (msgs[0].iov_len > r->slot_size)
		return 0;
	rc = next_write(r, &pos);
	if (rc < 0)
		return rc;
	for (k = 0; k < n && msgs[k].iov_len <= r->slot_size; k++) {
		struct shmq_slot_hdr *h = slot_at(r, pos + k);

		/* A3: pairs with R4; next_write() checked the first one */
		if (k && load_acquire(&h->state) != TURN(pos + k, 0))
			break; /* full there (or odd: the next call's next_write() says so) */
		copy_bytes(payload(h), msgs[k].iov_base, msgs[k].iov_len);
	}
	/* R1 for each (pairs with A1 in spsc_next_full() and spsc_recv_run()), tail after it. */
	for (uint32_t j = 0; j < k; j++)
		publish(r, pos + j, (uint32_t)msgs[j].iov_len, 0);
	if ((pos + k) / 64 != pos / 64)				  /* sample depth, as send_one() */
		hwm_note(r, pos + k - load_relaxed(&r->q->head)); /* statistic */
	counter_inc(&r->c->sent, k);
	return (int)k;
}

static int send_batch_once(struct shmq_ring *r, const struct iovec *msgs, unsigned int n)
{
	unsigned int i = 0;
	int rc = 0;

	if (r->rsv_active)
		return -EINVAL;
	if (is_spsc(r) && !r->joinable) {
		rc = spsc_send_run(r, msgs, n);
		if (rc < 0)
			return rc;
		i = (unsigned int)rc;
	}
	for (; i < n; i++) {
		rc = send_one(r, msgs[i].iov_base, msgs[i].iov_len);
		if (rc < 0)
			break;
	}
	if (i) {
		ec_notify(r, &r->q->ec_recv);
		return (int)i;
	}
	return rc;
}

int shmq__ring_send_batch(struct shmq_ring *r, const struct iovec *msgs, unsigned int n)
{
	int rc = n ? send_batch_once(r, msgs, n) : 0;

	if (rc == -EAGAIN)
		counter_inc(&r->c->full, 1);
	return rc == -EAGAIN ? 0 : rc;
}

static int reserve_one(struct shmq_ring *r, void **ret_buf)
{
	uint32_t pos;
	int rc;

	if (r->rsv_active)
		return -EINVAL;
	rc = next_write(r, &pos);
	if (rc < 0)
		return rc;
	r->rsv_pos = pos;
	r->rsv_active = true;
	*ret_buf = payload(slot_at(r, pos));
	return 0;
}

int shmq__ring_reserve(struct shmq_ring *r, void **ret_buf)
{
	int rc = reserve_one(r, ret_buf);

	if (rc == -EAGAIN)
		counter_inc(&r->c->full, 1);
	return rc;
}

static void rsv_finish(struct shmq_ring *r, size_t len, uint32_t flags)
{
	publish(r, r->rsv_pos, (uint32_t)len, flags);
	r->rsv_active = false;
}

int shmq__ring_commit(struct shmq_ring *r, size_t len)
{
	if (!r->rsv_active)
		return -EINVAL;
	if (len > r->slot_size)
		return -EMSGSIZE; /* reservation stays open: commit again or cancel */
	if (r->joinable) {
		int rc = join_publish(r, r->rsv_pos, (uint32_t)len, 0);

		r->rsv_active = false;
		if (rc < 0) {
			join_unclaim(r, r->rsv_pos);
			ec_notify(r, &r->q->ec_recv);
			return rc;
		}
	} else {
		rsv_finish(r, len, 0);
	}
	counter_inc(&r->c->sent, 1);
	ec_notify(r, &r->q->ec_recv);
	return 0;
}

int shmq__ring_cancel(struct shmq_ring *r)
{
	if (!r->rsv_active)
		return -EINVAL;
	if (is_spsc(r)) {
		r->rsv_active = false; /* nothing was published or claimed: nothing to undo */
		return 0;
	}
	/* The position is taken for good; publish it as a tombstone receivers skip. */
	rsv_finish(r, 0, SHMQ_SLOT_TOMBSTONE);
	ec_notify(r, &r->q->ec_recv);
	return 0;
}

/* --- Receiving --- */

/* Finish a take(): make the slot reusable (R4). */
static void done(struct shmq_ring *r, uint32_t pos)
{
	turn_free(r, pos);
	if (is_spsc(r)) {
		r->cons_pos = pos + 1;
		store_relaxed(&r->q->head, pos + 1); /* observers only: the turn is authoritative */
	}
}

/*
 * Take the next message in place: *ret_pos, *ret_len (validated).  In turn
 * mode the slot is claimed (READING) and tombstones are skipped here.  A slot
 * whose length is corrupt is consumed here and reported as -EBADMSG, so a
 * scribbled slot costs one message, never a wedged queue.
 */
static int take(struct shmq_ring *r, uint32_t fit, uint32_t *ret_pos, uint32_t *ret_len,
		uint32_t *ret_flags)
{
	/*
	 * A5: pairs with the shutdown's release (S1), loaded before the
	 * attempt: every message sent before the shutdown, in happens-before
	 * order, is seen by the attempt, so "empty and shut down" loses none.
	 */
	uint32_t sd = load_acquire(&r->q->shutdown);

	if (sd == SHMQ_QUEUE_SHUTDOWN_IMMEDIATE)
		return -EPIPE;
	for (unsigned int skipped = 0; skipped <= n_slots(r); skipped++) {
		uint32_t pos, len, flags;
		int rc;

		rc = is_spsc(r) ? spsc_next_full(r, fit, &pos) : claim_read(r, r->tag, fit, &pos);
		if (rc == -EAGAIN && sd)
			return -EPIPE; /* drained */
		if (rc < 0)
			return rc;

		/* Read once: a peer could change it under us (no double fetch). */
		len = load_relaxed(&slot_at(r, pos)->len); /* ordered by A1 */
		flags = load_relaxed(&slot_at(r, pos)->flags);
		if (len > ((flags & SHMQ_SLOT_LARGE) ? r->max_msg : r->slot_size)) {
			consume_dropped(r, pos);
			return -EBADMSG;
		}
		if (flags & SHMQ_SLOT_TOMBSTONE) {
			done(r, pos);
			fetch_add_relaxed(&r->q->tombstones, 1); /* statistic */
			ec_notify(r,
				  &r->q->ec_send); /* a slot was freed, even if we return -EAGAIN */
			continue;
		}
		*ret_pos = pos;
		*ret_len = len;
		*ret_flags = flags;
		return 0;
	}
	return -EAGAIN; /* a whole lap of tombstones: let the caller come back */
}

/*
 * @fit: UINT32_MAX to take whatever comes (a message longer than @buf_size
 * is consumed and reported), or the largest length to claim at all (a
 * longer message is left queued: batches stop before it).
 */
static int recv_one(struct shmq_ring *r, void *buf, size_t buf_size, uint32_t fit)
{
	const unsigned char *src;
	uint32_t pos, len, flags;
	uint64_t start = UINT64_MAX;
	int rc;

	if (r->peek_active)
		return -EINVAL;
	rc = take(r, fit, &pos, &len, &flags);
	if (rc < 0)
		return rc;
	src = payload(slot_at(r, pos));
	if ((flags & SHMQ_SLOT_LARGE) && !(src = large_take(r, pos, len, &start))) {
		consume_dropped(r, pos);
		return -EBADMSG;
	}
	if (len > buf_size) {
		consume_dropped(r, pos);
		if (start != UINT64_MAX)
			region_free(r, start);
		return -EMSGSIZE;
	}
	copy_bytes(buf, src, len);
	consume(r, pos);
	if (start != UINT64_MAX)
		region_free(r, start); /* after the slot: a death between leaves it to the repair */
	counter_inc(&r->c->received, 1);
	return (int)len;
}

int shmq__ring_try_recv(struct shmq_ring *r, void *buf, size_t buf_size)
{
	int rc = recv_one(r, buf, buf_size, UINT32_MAX);

	if (rc >= 0 || rc == -EMSGSIZE || rc == -EBADMSG)
		ec_notify(r, &r->q->ec_send); /* a slot was freed */
	else if (rc == -EAGAIN)
		counter_inc(&r->c->empty, 1);
	return rc;
}

/*
 * Up to @n receives, one wake.  Return: how many (> 0), or the first one's
 * -errno (-EAGAIN empty; -EBADMSG, -EMSGSIZE consumed it).
 */
/*
 * SPSC batch receive: copy out a run of published plain messages, then
 * free their turns: the producer finds the run's slots free together, and
 * writes them while we read on.  head is stored after each turn (lagging
 * by one at most).  The run stops before anything recv_one() must judge:
 * an unpublished or skipped turn, a tombstone, an arena message, one too
 * long for its buffer.  Return: how many (0: let recv_one() take the
 * first); -EPIPE shut down immediately.
 */
static int spsc_recv_run(struct shmq_ring *r, struct iovec *msgs, unsigned int n)
{
	uint32_t pos = r->cons_pos, k;

	/* A5, as take(): what was sent before an immediate shutdown is not received */
	if (load_acquire(&r->q->shutdown) == SHMQ_QUEUE_SHUTDOWN_IMMEDIATE)
		return -EPIPE;
	for (k = 0; k < n; k++) {
		struct shmq_slot_hdr *h = slot_at(r, pos + k);
		uint32_t len;

		if (load_acquire(&h->state) != TURN(pos + k + 1, 0)) /* A1: pairs with R1 */
			break;
		/* Read once: a peer could change them under us (no double fetch). */
		len = load_relaxed(&h->len);
		if (load_relaxed(&h->flags) || len > r->slot_size || len > msgs[k].iov_len)
			break;
		copy_bytes(msgs[k].iov_base, payload(h), len);
		msgs[k].iov_len = len;
	}
	for (uint32_t j = 0; j < k; j++)
		done(r, pos + j); /* R4, then head for observers */
	counter_inc(&r->c->received, k);
	return (int)k;
}

static int recv_batch_once(struct shmq_ring *r, struct iovec *msgs, unsigned int n)
{
	unsigned int i = 0;
	int rc = 0;

	if (r->peek_active)
		return -EINVAL;
	if (is_spsc(r) && !r->joinable) {
		rc = spsc_recv_run(r, msgs, n);
		if (rc < 0)
			return rc;
		i = (unsigned int)rc;
	}
	for (; i < n; i++) {
		uint32_t fit = i == 0			      ? UINT32_MAX
			       : msgs[i].iov_len > UINT32_MAX ? UINT32_MAX - 1
							      : (uint32_t)msgs[i].iov_len;

		rc = recv_one(r, msgs[i].iov_base, msgs[i].iov_len, fit);
		if (rc < 0)
			break;
		msgs[i].iov_len = (size_t)rc;
	}
	if (i || rc == -EBADMSG || rc == -EMSGSIZE)
		ec_notify(r, &r->q->ec_send);
	return i ? (int)i : rc;
}

int shmq__ring_recv_batch(struct shmq_ring *r, struct iovec *msgs, unsigned int n)
{
	int rc = n ? recv_batch_once(r, msgs, n) : 0;

	if (rc == -EAGAIN)
		counter_inc(&r->c->empty, 1);
	return rc == -EAGAIN ? 0 : rc;
}

static int peek_one(struct shmq_ring *r, const void **ret_msg)
{
	uint32_t pos, len, flags;
	int rc;

	if (r->peek_active)
		return -EINVAL;
	rc = take(r, UINT32_MAX, &pos, &len, &flags);
	if (rc == 0 && (flags & SHMQ_SLOT_LARGE)) {
		*ret_msg = large_take(r, pos, len, &r->peek_start);
		if (!*ret_msg) {
			consume_dropped(r, pos);
			rc = -EBADMSG;
		}
	} else if (rc == 0) {
		*ret_msg = payload(slot_at(r, pos));
	}
	if (rc == -EBADMSG)
		ec_notify(r, &r->q->ec_send); /* take() may have consumed a slot */
	if (rc < 0)
		return rc;
	r->peek_pos = pos;
	r->peek_active = true;
	return (int)len;
}

int shmq__ring_peek(struct shmq_ring *r, const void **ret_msg)
{
	int rc = peek_one(r, ret_msg);

	if (rc == -EAGAIN)
		counter_inc(&r->c->empty, 1);
	return rc;
}

int shmq__ring_release(struct shmq_ring *r)
{
	if (!r->peek_active)
		return -EINVAL;
	consume(r, r->peek_pos);
	if (r->peek_start != UINT64_MAX) {
		region_free(r, r->peek_start);
		r->peek_start = UINT64_MAX;
	}
	r->peek_active = false;
	counter_inc(&r->c->received, 1);
	ec_notify(r, &r->q->ec_send);
	return 0;
}

/* --- Blocking --- */

enum ring_op {
	OP_SEND,
	OP_SENDV,
	OP_RECV,
	OP_RESERVE,
	OP_PEEK,
	OP_SEND_BATCH,
	OP_RECV_BATCH,
	OP_READY_SEND, /* wait for readiness only: nothing is taken */
	OP_READY_RECV,
};

struct ring_call {
	enum ring_op op;
	const void *msg;
	void *buf;
	size_t len;
	void **ret_buf;
	const void **ret_msg;
	struct iovec *iov; /* batches: @n messages */
	unsigned int n;
	const struct msg_src *src; /* OP_SENDV */
};

/* One attempt without touching full/empty counters. -EAGAIN: would block. */
static int attempt(struct shmq_ring *r, const struct ring_call *c)
{
	int rc;

	switch (c->op) {
	case OP_SEND:
	case OP_SENDV:
		rc = c->op == OP_SEND ? send_one(r, c->msg, c->len) : send_src(r, c->src);
		if (rc == 0)
			ec_notify(r, &r->q->ec_recv);
		return rc;
	case OP_RECV:
		rc = recv_one(r, c->buf, c->len, UINT32_MAX);
		if (rc >= 0 || rc == -EMSGSIZE || rc == -EBADMSG)
			ec_notify(r, &r->q->ec_send);
		return rc;
	case OP_RESERVE:
		return reserve_one(r, c->ret_buf);
	case OP_PEEK:
		return peek_one(r, c->ret_msg);
	case OP_SEND_BATCH:
		return send_batch_once(r, c->iov, c->n);
	case OP_RECV_BATCH:
		return recv_batch_once(r, c->iov, c->n);
	case OP_READY_SEND:
	case OP_READY_RECV:
		return shmq__ring_is_ready(r, c->op == OP_READY_SEND) ? 0 : -EAGAIN;
	}
	return -EINVAL;
}

static int wait_loop(struct shmq_ring *r, const struct ring_call *c, uint64_t deadline_ns)
{
	bool sender = c->op == OP_SEND || c->op == OP_SENDV || c->op == OP_RESERVE ||
		      c->op == OP_SEND_BATCH || c->op == OP_READY_SEND;
	_Atomic uint32_t *ec = sender ? &r->q->ec_send : &r->q->ec_recv;
	int rc = attempt(r, c);

	if (rc != -EAGAIN)
		return rc;
	if (c->op != OP_READY_SEND && c->op != OP_READY_RECV) /* a poll is not an attempt */
		counter_inc(sender ? &r->c->full : &r->c->empty, 1);
	if (deadline_ns == 0)
		return -EAGAIN; /* deadline 0 is the try form (shmq.h) */

	if (r->spin_ns) {
		uint64_t now = shmq__now_ns();
		uint64_t end = deadline_ns <= now		? now
			       : deadline_ns - now > r->spin_ns ? now + r->spin_ns
								: deadline_ns;

		for (unsigned int i = 1;; i++) {
			cpu_relax();
			rc = attempt(r, c);
			if (rc != -EAGAIN)
				return rc;
			if ((i & 63) == 0 && shmq__now_ns() >= end)
				break;
		}
	}

	for (;;) {
		bool bounded;
		uint32_t key = shmq__ec_prepare(ec, &r->fence, &bounded); /* (a), H1, F2 */

		rc = attempt(r, c); /* (b) re-check after announcing */
		if (rc != -EAGAIN)
			return rc;
		counter_inc(&r->c->sleeps, 1);
		rc = shmq__ec_sleep(ec, key, deadline_ns, bounded); /* (e) */
		if (rc == -ETIMEDOUT) {
			rc = attempt(r, c); /* last look: never time out past a ready message */
			return rc == -EAGAIN ? -ETIMEDOUT : rc;
		}
		if (rc < 0)
			return rc;
		/*
		 * Woken, or the word moved: look before announcing again.  An
		 * announcement made when the message is already there stays
		 * behind, and the next publish pays a FUTEX_WAKE of nobody.
		 */
		rc = attempt(r, c);
		if (rc != -EAGAIN)
			return rc;
	}
}

int shmq__ring_send_wait(struct shmq_ring *r, const void *msg, size_t len, uint64_t deadline_ns)
{
	struct ring_call c = {.op = OP_SEND, .msg = msg, .len = len};

	return wait_loop(r, &c, deadline_ns);
}

int shmq__ring_sendv_wait(struct shmq_ring *r, const struct iovec *parts, unsigned int n,
			  uint64_t deadline_ns)
{
	struct msg_src m = {.parts = parts, .n_parts = n};
	struct ring_call c = {.op = OP_SENDV, .src = &m};

	if (n && !parts)
		return -EINVAL;
	for (unsigned int i = 0; i < n; i++) {
		if (parts[i].iov_len > r->max_msg - m.len)
			return -EMSGSIZE; /* checked part by part: the sum cannot wrap */
		if (parts[i].iov_len && !parts[i].iov_base)
			return -EINVAL;
		m.len += parts[i].iov_len;
	}
	return wait_loop(r, &c, deadline_ns); /* deadline 0: one attempt */
}

int shmq__ring_recv_wait(struct shmq_ring *r, void *buf, size_t buf_size, uint64_t deadline_ns)
{
	struct ring_call c = {.op = OP_RECV, .buf = buf, .len = buf_size};

	return wait_loop(r, &c, deadline_ns);
}

int shmq__ring_reserve_wait(struct shmq_ring *r, void **ret_buf, uint64_t deadline_ns)
{
	struct ring_call c = {.op = OP_RESERVE, .ret_buf = ret_buf};

	return wait_loop(r, &c, deadline_ns);
}

int shmq__ring_peek_wait(struct shmq_ring *r, const void **ret_msg, uint64_t deadline_ns)
{
	struct ring_call c = {.op = OP_PEEK, .ret_msg = ret_msg};

	return wait_loop(r, &c, deadline_ns);
}

int shmq__ring_send_batch_wait(struct shmq_ring *r, const struct iovec *msgs, unsigned int n,
			       uint64_t deadline_ns)
{
	/* the batch reads its iovecs only: the cast keeps one ring_call for both ways */
	struct ring_call c = {.op = OP_SEND_BATCH, .iov = (struct iovec *)msgs, .n = n};

	return n ? wait_loop(r, &c, deadline_ns) : -EINVAL;
}

int shmq__ring_recv_batch_wait(struct shmq_ring *r, struct iovec *msgs, unsigned int n,
			       uint64_t deadline_ns)
{
	struct ring_call c = {.op = OP_RECV_BATCH, .iov = msgs, .n = n};

	return n ? wait_loop(r, &c, deadline_ns) : -EINVAL;
}

int shmq__ring_wait_ready(struct shmq_ring *r, bool sender, uint64_t deadline_ns)
{
	struct ring_call c = {.op = sender ? OP_READY_SEND : OP_READY_RECV};

	return wait_loop(r, &c, deadline_ns);
}

/* --- Asynchronous waits --- */

/* claim_read() without the claim: false exactly where it returns -EAGAIN. */
static bool turns_recv_ready(const struct shmq_ring *r)
{
	uint32_t pos = load_relaxed(&r->q->head); /* hint only */

	for (unsigned int tries = 0; tries < CLAIM_TRIES_MAX; tries++) {
		uint64_t t = load_acquire(&slot_at(r, pos)->state); /* A1: pairs with R1 */
		uint32_t own = TURN_OWNER(t);
		uint32_t d = TURN_SEQ(t) - pos;

		if (d == 1 && own == 0)
			return true; /* published (a tombstone too: the attempt frees it) */
		if (d == 1 && (own & SHMQ_OWNER_READING)) {
			pos++;
			continue;
		}
		if ((d == 0 && !(own & SHMQ_OWNER_READING)) || lap_previous(r, d))
			return false;
		if (lap_past(r, d)) {
			pos = pos_after(pos, &r->q->head);
			continue;
		}
		return true; /* corrupt or moving under us: the attempt decides */
	}
	return true;
}

/* claim_write() without the claim: false exactly where it returns -EAGAIN. */
static bool turns_send_ready(const struct shmq_ring *r)
{
	uint32_t pos = load_relaxed(&r->q->tail); /* hint only */

	for (unsigned int tries = 0; tries < CLAIM_TRIES_MAX; tries++) {
		uint64_t t = load_acquire(&slot_at(r, pos)->state); /* A3: pairs with R4 */
		uint32_t own = TURN_OWNER(t);
		uint32_t d = TURN_SEQ(t) - pos;

		if (d == 0 && own == 0)
			return true;
		if ((d == 0 && (own & SHMQ_OWNER_WRITING)) || d == 1) {
			pos++;
			continue;
		}
		if (d == 1 - n_slots(r) || (d == -n_slots(r) && (own & SHMQ_OWNER_WRITING)))
			return false; /* full */
		if (lap_past(r, d)) {
			pos = pos_after(pos, &r->q->tail);
			continue;
		}
		return true;
	}
	return true;
}

bool shmq__ring_is_ready(const struct shmq_ring *r, bool sender)
{
	if (load_acquire(&r->q->shutdown))
		return true; /* the attempt says -EPIPE, or drains */
	if (is_spsc(r)) {
		/* A corrupt distance (> n_slots) reads as ready: the attempt reports it. */
		if (sender)
			return r->prod_pos - load_acquire(&r->q->head) != n_slots(r); /* A2 */
		return load_acquire(&r->q->tail) != r->cons_pos;		      /* A1 */
	}
	return sender ? turns_send_ready(r) : turns_recv_ready(r);
}

int shmq__ring_arm(struct shmq_ring *r, bool sender, struct shmq_ring_arm *ret)
{
	_Atomic uint32_t *ec = sender ? &r->q->ec_send : &r->q->ec_recv;
	uint32_t key;
	bool bounded;

	if (shmq__ring_is_ready(r, sender))
		return 1; /* no announcement needed: the caller attempts at once */

	key = shmq__ec_prepare(ec, &r->fence, &bounded); /* (a), H1, F2 */
	if (shmq__ring_is_ready(r, sender))
		return 1; /* (b); WAITERS stays set: the next waker pays one spare wake */

	counter_inc(&r->c->sleeps, 1);
	ret->word = ec;
	ret->key = key;
	ret->bounded = bounded;
	return 0;
}

/* --- Shutdown --- */

int shmq__ring_shutdown(struct shmq_ring *r, bool immediate)
{
	uint32_t want = immediate ? SHMQ_QUEUE_SHUTDOWN_IMMEDIATE : SHMQ_QUEUE_SHUTDOWN;
	uint32_t v = load_relaxed(&r->q->shutdown);

	for (unsigned int i = 0; i < CLAIM_TRIES_MAX; i++) {
		if (v == SHMQ_QUEUE_SHUTDOWN_IMMEDIATE || (v && !immediate))
			break; /* as shut as asked: nothing to change */
		/* S1: release, pairs with A5; (c) of both eventcounts */
		if (atomic_compare_exchange_weak_explicit(
			    &r->q->shutdown, &v, want, memory_order_seq_cst, memory_order_relaxed))
			break;
	}
	/* Every sleeper, both ways, and every async waiter: they re-check and see it. */
	ec_notify(r, &r->q->ec_recv);
	ec_notify(r, &r->q->ec_send);
	ec_notify(r, &r->q->ec_join); /* join() on an immediate shutdown returns -EPIPE */
	return 0;
}

uint32_t shmq__ring_shutdown_state(const struct shmq_ring *r)
{
	return load_relaxed(&r->q->shutdown);
}

/* --- Inspection --- */

uint32_t shmq__ring_depth(const struct shmq_ring *r)
{
	uint32_t head = load_relaxed(&r->q->head); /* snapshot: no ordering needed */
	uint32_t tail = load_relaxed(&r->q->tail);
	uint32_t d = tail - head;

	return d > n_slots(r) ? n_slots(r) : d;
}

static bool in_window(uint32_t pos, uint32_t lo, uint32_t n)
{
	return pos - lo < n; /* unsigned difference: lo <= pos < lo + n */
}

/* The arena bytes of a large message at @pos, as large_take() checks them, without taking them. */
static const unsigned char *large_look(const struct shmq_ring *r, const struct shmq_slot_hdr *h,
				       uint32_t pos, uint32_t len)
{
	struct shmq_slot_large d;
	const struct shmq_region_hdr *rh;
	uint64_t ah, at;

	if (!r->arena)
		return NULL;
	ah = load_acquire(&r->q->arena_head);
	at = load_acquire(&r->q->arena_tail);
	memcpy(&d, payload((struct shmq_slot_hdr *)h), sizeof(d));
	if (d.start % SHMQ_ARENA_ALIGN || at - ah > r->arena_size || d.start - ah >= at - ah ||
	    (uint64_t)(d.start % r->arena_size) + region_size(len) > r->arena_size)
		return NULL;
	rh = region_at(r, d.start);
	if (load_acquire(&rh->start) != d.start || load_relaxed(&rh->len) != len ||
	    load_relaxed(&rh->pos) != pos)
		return NULL;
	return (const unsigned char *)(rh + 1);
}

int shmq__ring_look(const struct shmq_ring *r, uint32_t i, void *buf, size_t size,
		    struct shmq_ring_look *ret)
{
	uint32_t n = n_slots(r), pos = load_acquire(&r->q->head); /* a hint, as for a receive */
	const struct shmq_slot_hdr *h;
	const unsigned char *src;
	uint32_t len, flags, own;
	uint64_t t;

	/* SPSC stores head after the turn it covers: skip what is taken already. */
	for (unsigned int k = 0; k < 2; k++) {
		t = load_acquire(&slot_at(r, pos)->state);
		if (TURN_SEQ(t) - pos != n)
			break;
		pos++;
	}
	if (i >= n)
		return -ENOENT;
	pos += i;
	h = slot_at(r, pos);
	t = load_acquire(&h->state); /* A1: pairs with R1, the publisher's */
	own = TURN_OWNER(t);
	if (TURN_SEQ(t) - pos != 1 || (own & SHMQ_OWNER_WRITING))
		return TURN_SEQ(t) == pos || (own & SHMQ_OWNER_WRITING) ? -ENOENT : -EAGAIN;
	len = load_relaxed(&h->len); /* ordered by the acquire above */
	flags = load_relaxed(&h->flags);
	*ret = (struct shmq_ring_look){
		.pos = pos,
		.len = len,
		.flags = ((flags & SHMQ_SLOT_LARGE) ? SHMQ_LOOK_LARGE : 0) |
			 ((own & SHMQ_OWNER_READING) ? SHMQ_LOOK_BEING_READ : 0) |
			 ((flags & SHMQ_SLOT_TOMBSTONE) ? SHMQ_LOOK_TOMBSTONE : 0) |
			 ((flags & SHMQ_SLOT_REDELIVERED) ? SHMQ_LOOK_REDELIVERED : 0),
	};
	if (flags & SHMQ_SLOT_TOMBSTONE)
		return 0; /* no bytes: a writer died before finishing them */
	if (flags & SHMQ_SLOT_LARGE) {
		if (len > r->max_msg || !(src = large_look(r, h, pos, len)))
			return -EBADMSG;
	} else {
		if (len > r->slot_size)
			return -EBADMSG;
		src = payload((struct shmq_slot_hdr *)h);
	}
	ret->copied = len < size ? len : (uint32_t)size;
	copy_bytes(buf, src, ret->copied);
	/* seqlock-style: the copy counts only if the turn is still the one we read */
	atomic_thread_fence(memory_order_acquire);
	if (load_relaxed(&h->state) != t)
		return -EAGAIN;
	return 0;
}

int shmq__ring_check(const struct shmq_ring *r)
{
	uint32_t head = load_acquire(&r->q->head); /* A5: snapshot, head before tail */
	uint32_t tail = load_acquire(&r->q->tail);
	uint32_t n = n_slots(r);
	/*
	 * SPSC stores an index after the turn it covers, so a process that died
	 * in between leaves head or tail one behind its turns: allow that one.
	 */
	uint32_t slack = is_spsc(r) ? 1 : 0;

	if (tail - head > n)
		return -EBADMSG;

	for (uint32_t i = 0; i < n; i++) {
		struct shmq_slot_hdr *h =
			(struct shmq_slot_hdr *)(r->slots + (size_t)i * r->slot_stride);
		uint64_t t = load_acquire(&h->state); /* snapshot */
		uint32_t seq = TURN_SEQ(t), own = TURN_OWNER(t);
		uint32_t len = load_relaxed(&h->len); /* ordered by the acquire above */
		uint32_t kind = own & (SHMQ_OWNER_WRITING | SHMQ_OWNER_READING);

		if (own & ~(SHMQ_OWNER_WRITING | SHMQ_OWNER_READING | SHMQ_OWNER_TAG_MASK) ||
		    kind == (SHMQ_OWNER_WRITING | SHMQ_OWNER_READING) || (kind == 0 && own != 0) ||
		    (is_spsc(r) && own != 0))
			return -EBADMSG;

		if ((seq & r->mask) == i) {
			/* EMPTY or WRITING for position seq. */
			if (kind == SHMQ_OWNER_READING)
				return -EBADMSG;
			if (kind == 0 && !in_window(seq, tail, n + slack))
				return -EBADMSG;
			if (kind == SHMQ_OWNER_WRITING && !in_window(seq, tail - n, n + 1))
				return -EBADMSG;
		} else if (((seq - 1) & r->mask) == i) {
			/* FULL or READING for position seq - 1. */
			if (kind == SHMQ_OWNER_WRITING)
				return -EBADMSG;
			/*
			 * Published for a position past tail only by an in-place
			 * redelivery (see redeliver()), which marks the slot.
			 */
			if (kind == 0 && !in_window(seq - 1, head, tail - head + slack) &&
			    !((load_relaxed(&h->flags) & SHMQ_SLOT_REDELIVERED) &&
			      in_window(seq - 1, tail, n)))
				return -EBADMSG;
			if (kind == SHMQ_OWNER_READING && !in_window(seq - 1, head - n, n + 1))
				return -EBADMSG;
			if (len > ((load_relaxed(&h->flags) & SHMQ_SLOT_LARGE) ? r->max_msg
									       : r->slot_size))
				return -EBADMSG;
		} else {
			return -EBADMSG;
		}
	}
	return arena_check(r);
}

/* --- Repair --- */

/*
 * Give a half-read message back to the receivers.  Preferred: copy it into a
 * fresh slot at the tail (delivered next, wherever the ring stands).  When no
 * slot is free the ring is full, and the claimed slot itself is given the
 * turn of its next lap, pos + N: it is published in place, behind everything
 * already queued, with no copy.  Either way the old claim ends in one store
 * or CAS, so a message is never both lost and re-published.
 */
/* A large message's slot moved to @npos: its region says so (for the next repair's witness). */
static void region_moved(struct shmq_ring *r, struct shmq_slot_hdr *h, uint32_t npos)
{
	struct shmq_slot_large d;

	memcpy(&d, payload(h), sizeof(d));
	if (d.start % SHMQ_ARENA_ALIGN == 0 && load_relaxed(&region_at(r, d.start)->start) ==
						       d.start) /* else the reader says -EBADMSG */
		store_relaxed(&region_at(r, d.start)->pos, npos); /* ordered by R1 */
}

static int redeliver(struct shmq_ring *r, struct shmq_slot_hdr *h, uint64_t t, uint32_t pos)
{
	uint32_t len = load_relaxed(&h->len); /* read once; ordered by the acquire in repair */
	uint32_t large = load_relaxed(&h->flags) & SHMQ_SLOT_LARGE;
	uint32_t npos, bytes;

	if (large && (!r->arena || len > r->max_msg))
		large = 0, len = 0; /* corrupt */
	if (!large && len > r->slot_size)
		len = 0; /* corrupt: deliver an empty redelivered message */
	/* A large message's slot carries its region's position: that moves, not the message. */
	bytes = large ? (uint32_t)sizeof(struct shmq_slot_large) : len;

	/* Take the claim over first, so a concurrent repair cannot double-deliver. */
	if (!cas_acq_rel(&h->state, &t, TURN(pos + 1, SHMQ_OWNER_READING | SHMQ_OWNER_REPAIR)))
		return 0;
	/* The dead reader may have died before helping head past its claim. */
	hint_raise(&r->q->head, pos);

	if (claim_write(r, SHMQ_OWNER_REPAIR, &npos) == 0) {
		memcpy(payload(slot_at(r, npos)), payload(h), bytes);
		if (large)
			region_moved(r, h, npos);
		/*
		 * J1: journal the move in the old slot before the copy is
		 * published (ordered by R1 below), so that a daemon killed
		 * between publishing the copy and freeing the original is
		 * finished by shmq__ring_repair_resume(), not done twice.
		 */
		store_relaxed(&h->flags, SHMQ_SLOT_MOVED | large |
						 ((npos & r->mask) << SHMQ_SLOT_MOVED_SHIFT));
		turn_publish(r, npos, len, SHMQ_SLOT_REDELIVERED | large);
		turn_free(r, pos);
	} else {
		if (large)
			region_moved(r, h, pos + n_slots(r));
		store_relaxed(&h->flags, SHMQ_SLOT_REDELIVERED | large); /* ordered by R1 */
		store_relaxed(&h->len, len);
		/* R1: publish in place for the next lap; pairs with A1 in claim_read(). */
		store_release(&h->state, TURN(pos + n_slots(r) + 1, 0));
		hint_advance(&r->q->tail, pos + n_slots(r));
	}
	return 1;
}

int shmq__ring_repair_session(struct shmq_ring *r, uint32_t tag, struct shmq_ring_repair *ret)
{
	struct shmq_ring_repair rep = {0};

	if (tag == 0 || tag > SHMQ_OWNER_TAG_MASK)
		return -EINVAL;

	/* SPSC holds nothing between claim and finish: see DESIGN above. */
	for (uint32_t i = 0; !is_spsc(r) && i < n_slots(r); i++) {
		struct shmq_slot_hdr *h =
			(struct shmq_slot_hdr *)(r->slots + (size_t)i * r->slot_stride);
		uint64_t t = load_acquire(
			&h->state); /* A6: pairs with the dead process's last release */
		uint32_t own = TURN_OWNER(t), seq = TURN_SEQ(t);

		if ((own & SHMQ_OWNER_TAG_MASK) != tag)
			continue;
		if ((own & SHMQ_OWNER_WRITING) && (seq & r->mask) == i) {
			uint64_t expected = t;

			store_relaxed(&h->len, 0); /* ordered by the CAS below */
			store_relaxed(&h->flags, SHMQ_SLOT_TOMBSTONE);
			/* R1: the tombstone is published like a message; pairs with A1. */
			if (cas_acq_rel(&h->state, &expected, TURN(seq + 1, 0))) {
				hint_raise(&r->q->tail, seq); /* seq was claimed */
				rep.tombstoned++;
			}
		} else if ((own & SHMQ_OWNER_READING) && ((seq - 1) & r->mask) == i) {
			rep.redelivered += (uint32_t)redeliver(r, h, t, seq - 1);
		}
	}

	if (rep.tombstoned + rep.redelivered) {
		fetch_add_relaxed(&r->q->repairs, rep.tombstoned + rep.redelivered); /* statistic */
		ec_notify(r, &r->q->ec_recv);
		ec_notify(r, &r->q->ec_send);
	}
	if (ret)
		*ret = rep;
	return (int)(rep.tombstoned + rep.redelivered);
}

/*
 * After the daemon itself died: only a repair holds slots under the tag
 * SHMQ_OWNER_REPAIR, and only the one daemon repairs, so at its next start
 * every such slot is a repair cut short.  A copy (WRITING|REPAIR) was never
 * published; an original (READING|REPAIR) is redelivered again unless its
 * journal (J1) names a copy that was published.
 */
int shmq__ring_repair_resume(struct shmq_ring *r, struct shmq_ring_repair *ret)
{
	struct shmq_ring_repair rep = {0};
	int n;

	for (uint32_t i = 0; !is_spsc(r) && i < n_slots(r); i++) {
		struct shmq_slot_hdr *h =
			(struct shmq_slot_hdr *)(r->slots + (size_t)i * r->slot_stride);
		uint64_t t = load_acquire(&h->state); /* A6: the dead daemon's last release */
		uint32_t own = TURN_OWNER(t), seq = TURN_SEQ(t);
		uint32_t flags = load_relaxed(&h->flags);
		struct shmq_slot_hdr *copy;

		if (own != (SHMQ_OWNER_READING | SHMQ_OWNER_REPAIR) || ((seq - 1) & r->mask) != i ||
		    !(flags & SHMQ_SLOT_MOVED))
			continue;
		copy = slot_at(r, flags >> SHMQ_SLOT_MOVED_SHIFT);
		if (TURN_OWNER(load_acquire(&copy->state)) ==
		    (SHMQ_OWNER_WRITING | SHMQ_OWNER_REPAIR)) {
			/* Not published: the original goes out again (below); the copy is a tombstone. */
			store_relaxed(&h->flags, 0);
		} else {
			/* The copy is out (and maybe taken): the original is done. */
			turn_free(r, seq - 1);
			rep.redelivered++;
		}
	}
	n = shmq__ring_repair_session(r, SHMQ_OWNER_REPAIR, ret);
	if (n < 0)
		return n;
	if (ret)
		ret->redelivered += rep.redelivered;
	return n + (int)rep.redelivered;
}

/* --- The queue kind (shm/kind.h) --- */

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

uint32_t shmq__ring_stride(uint32_t slot_size)
{
	uint64_t v = sizeof(struct shmq_slot_hdr) + (uint64_t)slot_size;

	return (uint32_t)((v + SHMQ_SLOT_ALIGN - 1) & ~(uint64_t)(SHMQ_SLOT_ALIGN - 1));
}

int shmq__ring_geom_check(uint32_t n_slots, uint32_t slot_size, uint32_t slot_stride,
			  bool formatted)
{
	if (!is_pow2(n_slots) || n_slots < 2 || n_slots > SHMQ_SLOTS_MAX)
		return -EINVAL;
	if (slot_size == 0 || slot_size > SHMQ_SLOT_SIZE_MAX)
		return -EINVAL;
	/* A header's stride: whole slots of aligned size, however the creator rounded. */
	if (formatted && (slot_stride < sizeof(struct shmq_slot_hdr) + slot_size ||
			  slot_stride % SHMQ_SLOT_ALIGN))
		return -EINVAL;
	return 0;
}

static int queue_geom_check(const union shmq_geom *u, bool formatted)
{
	const struct shmq_queue_geom *g = &u->queue;

	if (g->mode >= SHMQ_QMODE_COUNT || g->numa_node < -1 || (g->flags & ~SHMQ_QUEUE_F_JOINABLE))
		return -EINVAL;
	/* An arena (1.8): for messages above a slot, whose descriptor a slot must hold. */
	if (g->max_msg && (g->max_msg <= g->slot_size || g->max_msg > SHMQ_MSG_SIZE_MAX ||
			   g->slot_size < sizeof(struct shmq_slot_large)))
		return -EINVAL;
	if (formatted ? (uint64_t)g->arena_pages * SHMQ_ARENA_PAGE !=
				(g->max_msg ? shmq__ring_arena_size(g->max_msg) : 0)
		      : g->arena_pages != 0)
		return -EINVAL;
	return shmq__ring_geom_check(g->n_slots, g->slot_size, g->slot_stride, formatted);
}

static void queue_geom_derive(union shmq_geom *u)
{
	u->queue.slot_stride = shmq__ring_stride(u->queue.slot_size);
	u->queue.arena_pages =
		u->queue.max_msg ? shmq__ring_arena_size(u->queue.max_msg) / SHMQ_ARENA_PAGE : 0;
}

static uint64_t queue_tail_size(const union shmq_geom *u)
{
	/* <= 2^24 slots of <= 2^24 + 16 bytes, an arena < 2^31: no 64-bit overflow. */
	if (u->queue.arena_pages)
		return shmq__ring_arena_offset(u->queue.n_slots, u->queue.slot_stride) +
		       (uint64_t)u->queue.arena_pages * SHMQ_ARENA_PAGE;
	return (uint64_t)u->queue.n_slots * u->queue.slot_stride;
}

/* Slot turns for an empty ring whose next position is @origin (quiescent only). */
static void queue_init_turns(unsigned char *slots, uint32_t n, uint32_t stride, uint32_t origin)
{
	for (uint32_t k = 0; k < n; k++) {
		uint32_t pos = origin + k; /* index arithmetic wraps by design */
		struct shmq_slot_hdr *h =
			(struct shmq_slot_hdr *)(slots + (uint64_t)(pos & (n - 1)) * stride);

		/* before publish / quiescent: no reader can see these yet */
		store_relaxed(&h->state, (uint64_t)pos << 32);
		store_relaxed(&h->len, 0);
		store_relaxed(&h->flags, 0);
	}
}

void shmq__ring_format(unsigned char *slots, uint32_t n_slots, uint32_t slot_stride)
{
	queue_init_turns(slots, n_slots, slot_stride, 0);
}

static void queue_format(void *object, unsigned char *tail, const union shmq_geom *u)
{
	(void)object; /* head, tail and the eventcounts start at 0: the memory is zeroed */
	shmq__ring_format(tail, u->queue.n_slots, u->queue.slot_stride);
}

void shmq__queue_reset_origin(const struct shmq_segment *seg, uint32_t origin)
{
	struct shmq_queue_shm *q = seg->object;

	/* quiescent only (tests, formatting): no concurrent user to order against */
	queue_init_turns(seg->slots, seg->geom.queue.n_slots, seg->geom.queue.slot_stride, origin);
	store_relaxed(&q->tail, origin);
	store_relaxed(&q->head, origin);
}

/* shmq__ring_check() is exact only at rest: a busy ring passes unchecked. */
static int queue_check(const struct shmq_segment *seg, bool quiescent)
{
	struct shmq_ring ring;
	int r;

	if (!quiescent)
		return 0;
	r = shmq__ring_attach(&ring, seg, UINT32_MAX);
	return r < 0 ? -EBADMSG : shmq__ring_check(&ring);
}

static int queue_repair(const struct shmq_segment *seg, uint32_t index,
			struct shmq_kind_repair *ret)
{
	struct shmq_session_shm *rec = shmq__session_at(seg, index);
	uint32_t role = rec ? load_relaxed(&rec->role) : 0; /* untrusted: only picks words */
	struct shmq_ring_repair rep = {0};
	struct shmq_ring ring;
	int r = shmq__ring_attach(&ring, seg, UINT32_MAX);

	/* Before the slots: the settle and the arena read the dead session's turns as they are. */
	if (r == 0)
		ret->settled = shmq__ring_join_settle(seg, index);
	if (r == 0)
		ret->regions = shmq__ring_arena_repair(&ring, seg, index + 1);
	if (r == 0)
		r = shmq__ring_repair_session(&ring, index + 1, &rep);
	ret->tombstoned = rep.tombstoned;
	ret->redelivered = rep.redelivered;
	/* A session killed asleep leaves the sleeper bit of the direction it used. */
	if (r >= 0 && (role & SHMQ_ROLE_CONSUMER))
		ret->woken += shmq__ec_wake_all(&ring.q->ec_recv);
	if (r >= 0 && (role & SHMQ_ROLE_PRODUCER))
		ret->woken += shmq__ec_wake_all(&ring.q->ec_send);
	return r < 0 ? r : r > 0 || ret->woken > 0 || ret->settled > 0 || ret->regions > 0;
}

static int queue_resume(const struct shmq_segment *seg, struct shmq_kind_repair *ret)
{
	struct shmq_ring_repair rep = {0};
	struct shmq_ring ring;
	int r = shmq__ring_attach(&ring, seg, UINT32_MAX);

	if (r == 0)
		r = shmq__ring_repair_resume(&ring, &rep);
	ret->tombstoned = rep.tombstoned;
	ret->redelivered = rep.redelivered;
	return r;
}

static bool queue_is_ready(const void *handle, uint32_t events)
{
	return shmq__ring_is_ready(handle, events == SHMQ_KIND_EV_SEND);
}

static int queue_arm(void *handle, uint32_t events, struct shmq_kind_arm *ret)
{
	struct shmq_ring_arm a;
	int r = shmq__ring_arm(handle, events == SHMQ_KIND_EV_SEND, &a);

	if (r == 0)
		*ret = (struct shmq_kind_arm){.word = a.word, .key = a.key, .bounded = a.bounded};
	return r;
}

const struct shmq_kind shmq__kind_queue = {
	.id = SHMQ_KIND_QUEUE,
	.name = "queue",
	.short_name = "queue",
	.events = SHMQ_KIND_EV_RECV | SHMQ_KIND_EV_SEND,
	.invariants = "ring indices and slot turns",
	.object_size = sizeof(struct shmq_queue_shm),
	.retired_off = offsetof(struct shmq_queue_shm, retired),
	.geom_check = queue_geom_check,
	.geom_derive = queue_geom_derive,
	.tail_size = queue_tail_size,
	.format = queue_format,
	.check = queue_check,
	.repair = queue_repair,
	.resume = queue_resume,
	.is_ready = queue_is_ready,
	.arm = queue_arm,
};
