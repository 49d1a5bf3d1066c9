/* SPDX-License-Identifier: MIT */
/*
 * Formatting, attaching and validating shared-memory segments.
 *
 * DESIGN
 *
 * The creator (shmqd, or a test) computes the size, formats the zeroed
 * memory, and publishes it by setting SHMQ_SEG_PUBLISHED last (R0).  An
 * attacher follows explicit load states, one -errno per step:
 *
 *   1. size < header                    -> -EBADMSG
 *   2. A0: PUBLISHED not yet set        -> -EAGAIN (creator not finished)
 *   3. magic wrong                      -> -EBADMSG (not a shmq segment)
 *      layout_major differs, or minor newer than this build knows about only
 *      in ways that matter              -> -EPROTO
 *   4. every size, offset and geometry field range-checked against the
 *      mapping                          -> -EBADMSG
 *
 * and copies the geometry into struct shmq_segment, which is never refreshed
 * from shared memory: a peer that later scribbles on the header cannot move
 * the slot array or change its stride under us.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/kind.h"
#include "shm/layout.h"

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

bool shmq__name_is_valid(const char *name)
{
	size_t n;

	if (!name)
		return false;
	n = strnlen(name, SHMQ_NAME_MAX + 1);
	if (n == 0 || n > SHMQ_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	/* "." and ".." would read as paths in tools and logs. */
	return strcmp(name, ".") && strcmp(name, "..");
}

/* Offsets of each part; the single source of the segment's geometry. */
struct seg_plan {
	const struct shmq_kind *kind;
	union shmq_geom geom; /* the request's, with the derived fields filled */
	uint64_t sessions_off, object_off, slots_off, size;
};

static int plan(const struct shmq_segment_params *p, struct seg_plan *ret)
{
	struct seg_plan pl = {0};
	int r;

	if (!p || p->n_sessions == 0 || p->n_sessions > SHMQ_SESSIONS_MAX)
		return -EINVAL;
	pl.kind = shmq__kind(p->kind);
	if (!pl.kind)
		return -EINVAL;
	r = pl.kind->geom_check(&p->geom, false);
	if (r < 0)
		return r;
	pl.geom = p->geom;
	if (pl.kind->geom_derive)
		pl.kind->geom_derive(&pl.geom);

	pl.sessions_off = align_up(sizeof(struct shmq_segment_hdr), SHMQ_FALSE_SHARING_ALIGN);
	pl.object_off = align_up(pl.sessions_off +
					 (uint64_t)p->n_sessions * sizeof(struct shmq_session_shm),
				 SHMQ_FALSE_SHARING_ALIGN);
	pl.size = pl.object_off + pl.kind->object_size;
	if (pl.kind->tail_size) {
		pl.slots_off = align_up(pl.size, SHMQ_FALSE_SHARING_ALIGN);
		/* Each kind bounds its geometry so that this cannot overflow 64 bits. */
		pl.size = pl.slots_off + pl.kind->tail_size(&pl.geom);
	}
	pl.size = align_up(pl.size, 4096);
	*ret = pl;
	return 0;
}

int shmq__segment_size(const struct shmq_segment_params *p, uint64_t *ret_size)
{
	struct seg_plan pl;
	int r = plan(p, &pl);

	if (r < 0)
		return r;
	*ret_size = pl.size;
	return 0;
}

int shmq__segment_format(void *base, uint64_t size, const struct shmq_segment_params *p)
{
	struct shmq_segment_hdr *h = base;
	struct timespec now;
	struct seg_plan pl;
	int r;

	if (!base)
		return -EINVAL;
	r = plan(p, &pl);
	if (r < 0)
		return r;
	if (size < pl.size)
		return -ENOSPC;
	if (size % 4096)
		return -EINVAL; /* the header records the mapping's size: whole pages */
	if (!shmq__name_is_valid(p->name))
		return -EINVAL;

	/* Before publication (R0) nobody else may touch these bytes: a plain clear is safe. */
	memset(base, 0, pl.size);
	clock_gettime(CLOCK_REALTIME, &now);

	h->magic = SHMQ_SEGMENT_MAGIC;
	h->layout_major = SHMQ_LAYOUT_MAJOR;
	h->layout_minor = SHMQ_LAYOUT_MINOR;
	h->kind = p->kind;
	h->hdr_size = sizeof(*h);
	h->size = size; /* may exceed the plan: hugetlb memfds round up to huge pages */
	h->created_realtime_ns =
		(uint64_t)now.tv_sec * UINT64_C(1000000000) + (uint64_t)now.tv_nsec;
	h->owner_uid = p->owner_uid;
	h->owner_gid = p->owner_gid;
	h->mode = p->mode & 0777;
	h->n_sessions = p->n_sessions;
	h->sessions_off = pl.sessions_off;
	h->object_off = pl.object_off;
	h->slots_off = pl.slots_off;
	h->geom = pl.geom;
	memcpy(h->name, p->name, strlen(p->name) + 1);
	h->object_id = p->object_id;

	/* The kind's own initial state; plain or relaxed stores, ordered by R0. */
	if (pl.kind->format)
		pl.kind->format((unsigned char *)base + pl.object_off,
				pl.slots_off ? (unsigned char *)base + pl.slots_off : NULL,
				&pl.geom);

	/* R0: everything above is visible before PUBLISHED; pairs with A0 in attach. */
	store_release(&h->state, SHMQ_SEG_PUBLISHED);
	return 0;
}

static bool range_ok(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

int shmq__segment_attach(void *base, uint64_t size, struct shmq_segment *ret_seg)
{
	const struct shmq_segment_hdr *h = base;
	struct shmq_segment seg = {0};
	const struct shmq_kind *k;
	uint32_t state;

	if (!base || !ret_seg)
		return -EINVAL;
	if (size < sizeof(*h))
		return -EBADMSG;

	state = load_acquire(&((struct shmq_segment_hdr *)base)->state); /* A0: pairs with R0 */
	if (!(state & SHMQ_SEG_PUBLISHED))
		return -EAGAIN;
	if (h->magic != SHMQ_SEGMENT_MAGIC)
		return -EBADMSG;
	if (h->layout_major != SHMQ_LAYOUT_MAJOR)
		return -EPROTO;
	if (h->hdr_size < sizeof(*h) || h->size != size)
		return -EBADMSG;

	/* Copy geometry once; everything below validates the copy, not shm. */
	seg.kind = h->kind;
	seg.layout_minor = h->layout_minor;
	seg.n_sessions = h->n_sessions;
	seg.geom = h->geom;
	if (!memchr(h->name, '\0', sizeof(h->name)))
		return -EBADMSG; /* unterminated: never truncate a name silently */
	memcpy(seg.name, h->name, sizeof(seg.name));

	uint64_t sessions_off = h->sessions_off;
	uint64_t object_off = h->object_off;
	uint64_t slots_off = h->slots_off;

	k = shmq__kind(seg.kind);
	if (!k || k->geom_check(&seg.geom, true) < 0)
		return -EBADMSG;
	if (!shmq__name_is_valid(seg.name))
		return -EBADMSG;
	if (seg.n_sessions == 0 || seg.n_sessions > SHMQ_SESSIONS_MAX)
		return -EBADMSG;
	if (sessions_off < h->hdr_size || sessions_off % SHMQ_FALSE_SHARING_ALIGN ||
	    !range_ok(sessions_off, (uint64_t)seg.n_sessions * sizeof(struct shmq_session_shm),
		      size))
		return -EBADMSG;
	if (object_off <
		    sessions_off + (uint64_t)seg.n_sessions * sizeof(struct shmq_session_shm) ||
	    object_off % SHMQ_FALSE_SHARING_ALIGN || !range_ok(object_off, k->object_size, size))
		return -EBADMSG;
	if (k->tail_size) {
		if (slots_off < object_off + k->object_size ||
		    slots_off % SHMQ_FALSE_SHARING_ALIGN ||
		    !range_ok(slots_off, k->tail_size(&seg.geom), size))
			return -EBADMSG;
	} else if (slots_off != 0) {
		return -EBADMSG;
	}

	seg.base = base;
	seg.size = size;
	seg.hdr = base;
	seg.sessions = (struct shmq_session_shm *)((unsigned char *)base + sessions_off);
	seg.object = (unsigned char *)base + object_off;
	seg.slots = k->tail_size ? (unsigned char *)base + slots_off : NULL;
	*ret_seg = seg;
	return 0;
}

struct shmq_session_shm *shmq__session_at(const struct shmq_segment *seg, uint32_t index)
{
	return index < seg->n_sessions ? &seg->sessions[index] : NULL;
}

bool shmq__session_tag_free(const struct shmq_segment *seg, uint32_t tag)
{
	const struct shmq_session_shm *rec = tag ? shmq__session_at(seg, tag - 1) : NULL;

	return !rec || load_relaxed(&rec->state) == SHMQ_SESSION_FREE; /* a snapshot */
}

static void counters_zero(struct shmq_counters *c)
{
	/* record owned by the caller (claimed or being released): no ordering */
	store_relaxed(&c->sent, 0);
	store_relaxed(&c->received, 0);
	store_relaxed(&c->full, 0);
	store_relaxed(&c->empty, 0);
	store_relaxed(&c->sleeps, 0);
	store_relaxed(&c->wakes, 0);
}

int shmq__session_claim(struct shmq_segment *seg, uint32_t role, int32_t pid, uint32_t uid,
			uint32_t *ret_index)
{
	if (!seg || !ret_index || !role || (role & ~SHMQ_ROLES_ALL))
		return -EINVAL;

	for (uint32_t i = 0; i < seg->n_sessions && i < SHMQ_OWNER_TAG_MASK - 2; i++) {
		struct shmq_session_shm *s = &seg->sessions[i];
		uint32_t expected = SHMQ_SESSION_FREE;

		/* Claim first, then fill: the CAS makes the record ours alone. */
		if (!cas_acq_rel(&s->state, &expected, SHMQ_SESSION_ACTIVE))
			continue;
		store_relaxed(&s->role, role); /* record owned by us after the CAS */
		store_relaxed(&s->pid, pid);
		store_relaxed(&s->uid, uid);
		store_relaxed(&s->attached_ns, shmq__now_ns());
		counters_zero(&s->c);
		for (uint32_t k = 0; k < SHMQ_SESSION_KIND_WORDS; k++)
			store_relaxed(&s->k.words[k], 0); /* the kind's state starts empty */
		*ret_index = i;
		return 0;
	}
	return -ENOSPC;
}

static void counters_fold(struct shmq_counters *dst, const struct shmq_counters *src)
{
	/* dst: retired totals, written only by the daemon's single thread */
	counter_inc(&dst->sent, load_relaxed(&src->sent));
	counter_inc(&dst->received, load_relaxed(&src->received));
	counter_inc(&dst->full, load_relaxed(&src->full));
	counter_inc(&dst->empty, load_relaxed(&src->empty));
	counter_inc(&dst->sleeps, load_relaxed(&src->sleeps));
	counter_inc(&dst->wakes, load_relaxed(&src->wakes));
}

void shmq__counters_add(struct shmq_counter_totals *t, const struct shmq_counters *c)
{
	/* A statistics snapshot: each word read once, no ordering between them. */
	t->sent += load_relaxed(&c->sent);
	t->received += load_relaxed(&c->received);
	t->full += load_relaxed(&c->full);
	t->empty += load_relaxed(&c->empty);
	t->sleeps += load_relaxed(&c->sleeps);
	t->wakes += load_relaxed(&c->wakes);
}

void shmq__segment_counters(const struct shmq_segment *seg, struct shmq_counter_totals *ret)
{
	const struct shmq_kind *k = shmq__kind(seg->kind);

	*ret = (struct shmq_counter_totals){0};
	for (uint32_t i = 0; i < seg->n_sessions; i++)
		shmq__counters_add(ret, &seg->sessions[i].c);
	if (k) /* the records gone before, folded in by the daemon */
		shmq__counters_add(
			ret, (const struct shmq_counters *)((const unsigned char *)seg->object +
							    k->retired_off));
}

void shmq__session_release(struct shmq_segment *seg, uint32_t index)
{
	struct shmq_session_shm *s = shmq__session_at(seg, index);
	const struct shmq_kind *k = shmq__kind(seg->kind);

	if (!s)
		return;
	/* attach validated the kind; a hand-built segment without one keeps no totals */
	if (k)
		counters_fold(
			(struct shmq_counters *)((unsigned char *)seg->object + k->retired_off),
			&s->c);
	counters_zero(&s->c);
	store_relaxed(&s->role, 0); /* ordered by the release below */
	store_relaxed(&s->pid, 0);
	/* R3: the record's fields are reset before another claim can see FREE. */
	store_release(&s->state, SHMQ_SESSION_FREE);
}

int shmq__segment_check(const struct shmq_segment *seg)
{
	const struct shmq_segment_hdr *h = seg->hdr;

	/* The header must still say what attach copied out. */
	if (h->magic != SHMQ_SEGMENT_MAGIC || h->layout_major != SHMQ_LAYOUT_MAJOR ||
	    h->size != seg->size || h->kind != seg->kind || h->n_sessions != seg->n_sessions ||
	    memcmp(&h->geom, &seg->geom, sizeof(seg->geom)))
		return -EBADMSG;
	if (!(load_relaxed(&((struct shmq_segment_hdr *)h)->state) & SHMQ_SEG_PUBLISHED))
		return -EBADMSG; /* snapshot check: relaxed is enough */

	for (uint32_t i = 0; i < seg->n_sessions; i++) {
		struct shmq_session_shm *s = &seg->sessions[i];
		uint32_t st = load_relaxed(&s->state); /* snapshot check */
		uint32_t role = load_relaxed(&s->role);

		if (st > SHMQ_SESSION_DEAD)
			return -EBADMSG;
		if (role & ~SHMQ_ROLES_ALL)
			return -EBADMSG;
	}
	return 0;
}

int shmq__object_check(const struct shmq_segment *seg, bool quiescent)
{
	const struct shmq_kind *k = shmq__kind(seg->kind);
	int r = shmq__segment_check(seg);

	if (r < 0)
		return r;
	return k ? k->check(seg, quiescent) : -EBADMSG;
}
