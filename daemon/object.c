/* SPDX-License-Identifier: MIT */
/*
 * The object registry: named segments, their owners and limits, and the
 * attachments that sessions hold on them.
 *
 * DESIGN
 *
 * Names live in a chained hash table that doubles when it fills, so a
 * lookup stays O(1) with thousands of objects.  Every live object, named or
 * unlinked, is also on one list in creation order, which LIST pages through.
 *
 * Permissions follow SysV ipcperms(): uid 0 passes; the owner gets the
 * mode's user bits, a member of the owner group (primary or supplementary)
 * the group bits, everyone else the other bits.  Sending, receiving and
 * semaphore use need write (2), a view needs read (4).  The owner, group and
 * mode used here are the daemon's copies, never the segment header's.
 *
 * Limits are charged to the owner's uid for as long as the object exists,
 * unlinked-but-attached included, like the kernel's shm accounting.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/kind.h"
#include "daemon/log.h"
#include "daemon/shmqd.h"
#include "shm/atomic.h"
#include "shm/futex.h"

#define NAMES_BUCKETS_MIN 64

/* --- Name table --- */

static uint32_t name_hash(const char *name)
{
	uint32_t h = 2166136261u; /* FNV-1a: names are short and hashed once per request */

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h;
}

struct shmqd_object *shmqd_object_find(struct shmqd *d, const char *name)
{
	struct shmqd_object *o;

	if (!d->names)
		return NULL;
	for (o = d->names[name_hash(name) & (d->n_buckets - 1)]; o; o = o->hash_next)
		if (!strcmp(o->name, name))
			return o;
	return NULL;
}

static void names_grow(struct shmqd *d)
{
	uint32_t n = d->n_buckets ? d->n_buckets * 2 : NAMES_BUCKETS_MIN;
	struct shmqd_object **t = calloc(n, sizeof(*t));

	/* Out of memory: keep the old table; chains just get longer. */
	if (!t)
		return;
	for (uint32_t i = 0; i < d->n_buckets; i++) {
		struct shmqd_object *o = d->names[i], *next;

		for (; o; o = next) {
			uint32_t b = name_hash(o->name) & (n - 1);

			next = o->hash_next;
			o->hash_next = t[b];
			t[b] = o;
		}
	}
	free(d->names);
	d->names = t;
	d->n_buckets = n;
}

static int names_insert(struct shmqd *d, struct shmqd_object *o)
{
	uint32_t b;

	if (d->n_named >= d->n_buckets)
		names_grow(d);
	if (!d->names)
		return log_client_errno(LOG_WARNING, -ENOMEM, "allocating the name table");
	b = name_hash(o->name) & (d->n_buckets - 1);
	o->hash_next = d->names[b];
	d->names[b] = o;
	d->n_named++;
	return 0;
}

static void names_remove(struct shmqd *d, struct shmqd_object *o)
{
	struct shmqd_object **p = &d->names[name_hash(o->name) & (d->n_buckets - 1)];

	for (; *p; p = &(*p)->hash_next) {
		if (*p == o) {
			*p = o->hash_next;
			o->hash_next = NULL;
			d->n_named--;
			return;
		}
	}
}

/* --- Per-uid usage --- */

static struct shmqd_uid_usage *usage_find(struct shmqd *d, uint32_t uid)
{
	struct shmqd_list *pos, *tmp;

	list_for_each_safe(pos, tmp, &d->uids)
	{
		struct shmqd_uid_usage *u = container_of(pos, struct shmqd_uid_usage, link);

		if (u->uid == uid)
			return u;
	}
	return NULL;
}

void shmqd_usage_of(struct shmqd *d, uint32_t uid, uint32_t *ret_objects, uint64_t *ret_memory)
{
	const struct shmqd_uid_usage *u = usage_find(d, uid);

	*ret_objects = u ? u->n_objects : 0;
	*ret_memory = u ? u->memory : 0;
}

static int limits_check(struct shmqd *d, uint32_t uid, uint64_t size)
{
	const struct shmqd_uid_usage *u = usage_find(d, uid);
	uint32_t n = u ? u->n_objects : 0;
	uint64_t mem = u ? u->memory : 0;

	if (d->n_objects >= d->cfg.max_objects)
		return log_client_errno(LOG_NOTICE, -ENOSPC,
					"uid %" PRIu32 ": max-objects (%" PRIu32 ") reached", uid,
					d->cfg.max_objects);
	if (n >= d->cfg.max_objects_per_uid)
		return log_client_errno(LOG_NOTICE, -ENOSPC,
					"uid %" PRIu32 ": max-objects-per-uid (%" PRIu32
					") reached",
					uid, d->cfg.max_objects_per_uid);
	if (size > d->cfg.max_memory_per_uid || mem > d->cfg.max_memory_per_uid - size)
		return log_client_errno(LOG_NOTICE, -ENOSPC,
					"uid %" PRIu32 ": %" PRIu64 " more bytes would exceed "
					"max-memory-per-uid (%" PRIu64 " in use of %" PRIu64 ")",
					uid, size, mem, d->cfg.max_memory_per_uid);
	return 0;
}

static int usage_charge(struct shmqd *d, struct shmqd_object *o)
{
	struct shmqd_uid_usage *u = usage_find(d, o->owner_uid);

	if (!u) {
		u = calloc(1, sizeof(*u));
		if (!u)
			return log_client_errno(LOG_WARNING, -ENOMEM, "allocating uid usage");
		u->uid = o->owner_uid;
		list_add_tail(&d->uids, &u->link);
	}
	u->n_objects++;
	u->memory += o->size;
	o->charged = u;
	return 0;
}

static void usage_uncharge(struct shmqd_object *o)
{
	struct shmqd_uid_usage *u = o->charged;

	if (!u)
		return;
	u->n_objects--;
	u->memory -= o->size;
	o->charged = NULL;
	if (!u->n_objects) {
		list_del(&u->link);
		free(u);
	}
}

/* --- Objects --- */

/*
 * @forget: the object is gone for good (its registry record and its file or
 * fd-store entry go too); false when the daemon only stops, and the next
 * start re-adopts it.
 */
static void object_free(struct shmqd *d, struct shmqd_object *o, bool forget)
{
	struct shmqd_memory m = {.fd = o->memfd, .base = o->seg.base, .size = o->size};

	if (forget) {
		shmqd_store_object_remove(d, o);
		log_debug("%s '%s' (id %" PRIu64 ") freed", shmqd_kind_name(o->kind), o->name,
			  o->object_id);
	}
	if (!o->unlinked)
		names_remove(d, o);
	list_del(&o->link);
	usage_uncharge(o);
	d->n_objects--;
	d->memory_bytes -= o->size;
	shmqd_memory_free(&m);
	free(o);
}

int shmqd_object_create(struct shmqd *d, const struct shmqd_session *s,
			const struct shmqd_create *c, struct shmqd_object **ret)
{
	struct shmq_segment_params p = {
		.kind = c->kind,
		.n_sessions = d->cfg.sessions_per_object,
		.geom = c->geom,
		.name = c->name,
		.owner_uid = s->uid,
		.owner_gid = s->gid,
		.mode = c->mode,
		.object_id = d->next_object_id,
	};
	const struct shmqd_kind *k = shmqd_kind(c->kind);
	struct shmqd_memory m = {.fd = -1, .base = MAP_FAILED};
	struct shmqd_object *o;
	char file[32], what[96];
	uint64_t seg_size;
	int32_t node;
	int r;

	if (!k)
		return log_client_errno(LOG_INFO, -EINVAL, "pid %" PRId32 ": create '%s': kind %u",
					s->pid, c->name, c->kind);
	node = k->numa_node ? k->numa_node(&c->geom) : -1;

	r = shmq__segment_size(&p, &seg_size);
	if (r < 0)
		return log_client_errno(LOG_INFO, r, "pid %" PRId32 ": create '%s': bad geometry",
					s->pid, c->name);
	r = shmqd_memory_numa_check(d->numa_ok, node);
	if (r < 0)
		return r;
	r = shmqd_memory_round(seg_size, c->hugetlb, &m.size);
	if (r < 0)
		return r;
	r = limits_check(d, s->uid, m.size);
	if (r < 0)
		return r;

	o = calloc(1, sizeof(*o));
	if (!o)
		return log_client_errno(LOG_WARNING, -ENOMEM, "allocating object '%s'", c->name);
	o->reg = UINT32_MAX;
	snprintf(file, sizeof(file), "obj-%" PRIu64, p.object_id);
	r = shmqd_memory_new(c->name, m.size, c->hugetlb, node,
			     d->store.kind == SHMQD_STORE_DIR ? d->store.dirfd : -1, file, &m);
	if (r < 0)
		goto fail;

	r = shmq__segment_format(m.base, m.size, &p);
	if (r < 0) {
		r = log_client_errno(LOG_WARNING, r, "formatting '%s'", c->name);
		goto fail;
	}
	/* Alive from the start, not only after the first tick; a timestamp orders nothing. */
	store_relaxed(&((struct shmq_segment_hdr *)m.base)->daemon_heartbeat_ns, shmqd_now_ns());
	r = shmq__segment_attach(m.base, m.size, &o->seg);
	if (r < 0) {
		r = log_client_errno(LOG_WARNING, r, "'%s': the new segment fails validation",
				     c->name);
		goto fail;
	}
	/* tmpfs files cannot be sealed (store.c); memfds always are. */
	if (d->store.kind != SHMQD_STORE_DIR) {
		r = shmqd_memory_seal(&m);
		if (r < 0)
			goto fail;
	}
	shmqd_memory_log_placement(&m, c->name, node);

	memcpy(o->name, c->name, strlen(c->name) + 1);
	o->object_id = d->next_object_id++;
	o->kind = c->kind;
	o->hugetlb = c->hugetlb;
	o->numa_node = node;
	o->owner_uid = s->uid;
	o->owner_gid = s->gid;
	o->mode = c->mode & 0777;
	o->created_realtime_ns = o->seg.hdr->created_realtime_ns;
	o->geom = o->seg.geom;
	o->memfd = m.fd;
	o->size = m.size;
	r = names_insert(d, o);
	if (r < 0)
		goto fail;
	r = usage_charge(d, o);
	if (r < 0) {
		names_remove(d, o);
		goto fail;
	}
	list_add_tail(&d->objects, &o->link);
	d->n_objects++;
	d->memory_bytes += o->size;
	r = shmqd_store_object_add(d, o);
	if (r < 0) {
		object_free(d, o, true);
		return r;
	}

	k->describe(o, what, sizeof(what));
	shmqd_log_object(o->name);
	log_info("%s '%s' created (id %" PRIu64 ", %s, %" PRIu64 " bytes, mode %04" PRIo32
		 ") by pid %" PRId32 " uid %" PRIu32,
		 k->shm->name, o->name, o->object_id, what, o->size, o->mode, s->pid, s->uid);
	shmqd_log_object(NULL);
	*ret = o;
	return 0;

fail:
	if (m.fd >= 0 && d->store.kind == SHMQD_STORE_DIR)
		unlinkat(d->store.dirfd, file, 0);
	shmqd_memory_free(&m);
	free(o);
	return r;
}

void shmqd_object_unlink(struct shmqd *d, struct shmqd_object *o)
{
	names_remove(d, o);
	o->unlinked = true;
	shmqd_store_object_update(d, o);
	shmqd_log_object(o->name);
	log_info("%s '%s' (id %" PRIu64 ") unlinked; %" PRIu32 " attachments remain",
		 shmqd_kind_name(o->kind), o->name, o->object_id, o->n_attached);
	shmqd_log_object(NULL);
	if (!o->n_attached)
		object_free(d, o, true);
}

void shmqd_object_collect(struct shmqd *d, struct shmqd_object *o)
{
	if (o->unlinked && !o->n_attached)
		object_free(d, o, true);
}

static bool in_group(const struct shmqd_session *s, uint32_t gid)
{
	if (s->gid == gid)
		return true;
	for (uint32_t i = 0; i < s->n_groups; i++)
		if (s->groups[i] == gid)
			return true;
	return false;
}

/* The rwx bits @o grants @s (root: all), as SysV ipc_perm: owner, else group, else other. */
static uint32_t granted_to(const struct shmqd_session *s, const struct shmqd_object *o)
{
	if (s->uid == 0)
		return 7;
	if (s->uid == o->owner_uid)
		return (o->mode >> 6) & 7;
	if (in_group(s, o->owner_gid))
		return (o->mode >> 3) & 7;
	return o->mode & 7;
}

bool shmqd_object_visible(const struct shmqd_session *s, const struct shmqd_object *o)
{
	return granted_to(s, o) & 4;
}

int shmqd_object_check_access(const struct shmqd_session *s, const struct shmqd_object *o,
			      uint32_t need)
{
	uint32_t granted = granted_to(s, o);

	if (need & ~granted & 7)
		return log_client_errno(LOG_INFO, -EACCES,
					"pid %" PRId32 " uid %" PRIu32
					": %s access to '%s' (owner %" PRIu32 ":%" PRIu32
					", mode %04" PRIo32 ") denied",
					s->pid, s->uid, need & 2 ? "write" : "read", o->name,
					o->owner_uid, o->owner_gid, o->mode);
	return 0;
}

void shmqd_object_count(struct shmqd_object *o, uint32_t flags, int delta)
{
	/* unsigned wrap-around: adding (uint32_t)-1 takes one away */
	uint32_t n = (uint32_t)delta;

	o->n_attached += n;
	if (flags & SHMQ_OPEN_SEND)
		o->n_senders += n;
	if (flags & SHMQ_OPEN_RECV)
		o->n_receivers += n;
	if (flags & ~SHMQ_OPEN_VIEW)
		o->n_users += n;
	if (flags & SHMQ_OPEN_USE)
		o->n_ends[shmq__open_end(flags)] += n;
}

int shmqd_object_attach(struct shmqd *d, struct shmqd_session *s, struct shmqd_object *o,
			uint32_t flags, struct shmqd_attach **ret)
{
	const struct shmqd_kind *k = shmqd_kind(o->kind);
	uint32_t role = 0, index = UINT32_MAX;
	struct shmqd_attach *a;
	int r;

	if (s->n_attached >= d->cfg.max_attach_per_session)
		return log_client_errno(LOG_NOTICE, -ENOSPC,
					"pid %" PRId32 ": max-attach-per-session (%" PRIu32
					") reached",
					s->pid, d->cfg.max_attach_per_session);
	if (k->admit) {
		r = k->admit(o, s, flags);
		if (r < 0)
			return r;
	}

	if (flags & SHMQ_OPEN_SEND)
		role |= SHMQ_ROLE_PRODUCER;
	if (flags & SHMQ_OPEN_RECV)
		role |= SHMQ_ROLE_CONSUMER;
	if (flags & SHMQ_OPEN_SEM)
		role |= SHMQ_ROLE_SEM;
	if (flags & SHMQ_OPEN_USE)
		role |= SHMQ_ROLE_USER;
	if (flags & SHMQ_OPEN_END1)
		role |= SHMQ_ROLE_END1;

	a = calloc(1, sizeof(*a));
	if (!a)
		return log_client_errno(LOG_WARNING, -ENOMEM, "allocating an attachment");
	/*
	 * A client from before layout 1.9 may skip the fence before its
	 * sleeper check (1.0 did by default) without setting the flag that
	 * makes sleepers pay the heavy barrier (shm/fence.h): set it for it,
	 * before it gets the memory.  Sticky, like the client's own.
	 */
	if (role && s->client_layout_minor < 9 && o->seg.layout_minor >= 9)
		store_seq_cst(&o->seg.hdr->asym_fence, 1);
	/* A view never writes, so it needs no record and no repair. */
	if (role) {
		r = shmq__session_claim(&o->seg, role, s->pid, s->uid, &index);
		if (r < 0) {
			free(a);
			return log_client_errno(LOG_NOTICE, r,
						"pid %" PRId32 ": '%s' has no free session record "
						"(sessions-per-object was %" PRIu32 " at creation)",
						s->pid, o->name, o->seg.n_sessions);
		}
	}
	a->attach_id = d->next_attach_id++;
	a->obj = o;
	a->flags = flags & SHMQ_OPEN_GRANTS;
	a->session_index = index;
	r = shmqd_store_attach_add(d, s, a);
	if (r < 0) {
		if (index != UINT32_MAX)
			shmq__session_release(&o->seg, index);
		free(a);
		return r;
	}
	list_add_tail(&s->attachments, &a->link);
	s->n_attached++;
	shmqd_object_count(o, a->flags, 1);
	log_debug("pid %" PRId32 " attached to '%s' (attach %" PRIu64 ", record %" PRId64 ")",
		  s->pid, o->name, a->attach_id, index == UINT32_MAX ? -1 : (int64_t)index);
	*ret = a;
	return 0;
}

/* After a repair wrote to the segment: the checks that hold on a live object. */
static void check_after_repair(struct shmqd_object *o)
{
	const char *what;

	if (!o->quarantined && shmqd_object_validate(o, false, &what) < 0)
		shmqd_object_quarantine(o, what);
}

/*
 * The session's process is gone: the kind finishes or undoes what its record
 * held (a queue's half-written and half-read slots, an undo semaphore's
 * tokens: shm/kind.h), and says what it did.
 */
static void repair(int32_t pid, const char *death, struct shmqd_object *o, uint32_t index)
{
	const struct shmqd_kind *k = shmqd_kind(o->kind);
	struct shmq_session_shm *rec = shmq__session_at(&o->seg, index);
	struct shmq_kind_repair rep = {0};
	int r;

	/* DEAD tells a viewer the record is being repaired, not in use. */
	store_relaxed(&rec->state, SHMQ_SESSION_DEAD); /* display only; release() publishes FREE */
	r = k->shm->repair(&o->seg, index, &rep);
	shmqd_log_object(o->name);
	shmqd_log_message_id(SHMQD_MESSAGE_REPAIR);
	k->log_repair(o, pid, death, index, r, &rep);
	shmqd_log_message_id(NULL); /* the kind may have had nothing to say */
	check_after_repair(o);
	shmqd_log_object(NULL);
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Last sender and receiver (ipcs -p, -t): if @a's record counted a send or
 * a receive since the last look, its session's pid and @real_ns go into
 * the header.  The counters are the client's to write, so a forger can
 * only name itself, and only for display; relaxed, as every statistic.
 */
static void use_sample(const struct shmqd_session *s, struct shmqd_attach *a, uint64_t real_ns)
{
	struct shmq_segment_hdr *h = a->obj->seg.hdr;
	const struct shmq_session_shm *rec;
	uint64_t sent, received;

	if (a->session_index == UINT32_MAX)
		return; /* a view counts nothing */
	rec = shmq__session_at(&a->obj->seg, a->session_index);
	if (!rec)
		return;
	sent = load_relaxed(&rec->c.sent);
	received = load_relaxed(&rec->c.received);
	if (sent != a->seen_sent) {
		a->seen_sent = sent;
		store_relaxed(&h->last_send_pid, s->pid);
		store_relaxed(&h->last_send_realtime_ns, real_ns);
	}
	if (received != a->seen_received) {
		a->seen_received = received;
		store_relaxed(&h->last_recv_pid, s->pid);
		store_relaxed(&h->last_recv_realtime_ns, real_ns);
	}
}

void shmqd_object_sample_use(struct shmqd *d)
{
	uint64_t now = realtime_ns();
	struct shmqd_list *pos, *tmp;

	list_for_each_safe(pos, tmp, &d->sessions)
	{
		struct shmqd_session *s = container_of(pos, struct shmqd_session, link);
		struct shmqd_list *apos, *atmp;

		list_for_each_safe(apos, atmp, &s->attachments)
			use_sample(s, container_of(apos, struct shmqd_attach, link), now);
	}
}

void shmqd_object_detach(struct shmqd *d, struct shmqd_session *s, struct shmqd_attach *a,
			 bool dead)
{
	struct shmqd_object *o = a->obj;
	const struct shmqd_kind *k = shmqd_kind(o->kind);

	/* Record first: a restart must never hand back a record we release (store.c). */
	shmqd_store_attach_remove(d, a);
	use_sample(s, a, realtime_ns()); /* its last operations, before the record goes */
	if (a->session_index != UINT32_MAX) {
		if (dead)
			repair(s->pid, s->death, o, a->session_index);
		if (k->detached)
			k->detached(o, a);
		shmq__session_release(&o->seg, a->session_index);
	}
	shmqd_object_count(o, a->flags, -1);
	if ((a->flags & ~SHMQ_OPEN_VIEW) && !o->n_users && k->idle)
		k->idle(o);
	s->n_attached--;
	list_del(&a->link);
	log_debug("pid %" PRId32 " detached from '%s' (attach %" PRIu64 ")", s->pid, o->name,
		  a->attach_id);
	free(a);
	if (o->unlinked && !o->n_attached)
		object_free(d, o, true);
}

int shmqd_object_view_fd(const struct shmqd_object *o)
{
	return shmqd_memory_open_readonly(o->memfd);
}

void shmqd_object_info(const struct shmqd_object *o, struct shmq_obj_info *ret)
{
	memset(ret, 0, sizeof(*ret));
	memcpy(ret->name, o->name, sizeof(ret->name));
	ret->object_id = o->object_id;
	ret->size = o->size;
	ret->created_realtime_ns = o->created_realtime_ns;
	ret->owner_uid = o->owner_uid;
	ret->owner_gid = o->owner_gid;
	ret->mode = o->mode;
	ret->kind = o->kind;
	ret->unlinked = o->unlinked;
	ret->n_attached = o->n_attached;
	ret->numa_node = o->numa_node;
	ret->flags =
		(o->hugetlb ? SHMQ_OPEN_HUGEPAGE : 0) | (o->quarantined ? SHMQ_OBJ_QUARANTINED : 0);
	ret->geom = o->geom;
}

/* --- Corruption and quarantine --- */

/*
 * A client with write access can scribble on any byte of a segment.  The
 * ring and semaphore code turn what they read into -EBADMSG for the caller
 * (never a crash, an out-of-bounds access or an endless loop), but only the
 * daemon can tell everyone else: it validates each object on every tick and
 * after each repair, and quarantines the ones that fail.  A quarantined
 * object keeps working for the handles already open (they get -EBADMSG
 * where the bytes are bad), refuses new opens except read-only views, and
 * stays so until an administrator removes it (UNLINK: shmqctl rm).  The
 * daemon's flag is authoritative; the SHMQ_SEG_QUARANTINED bit in the header
 * only tells viewers, and is set again on each tick in case it was scribbled
 * away.
 *
 * Only checks that cannot fail on a live, busy object run while clients are
 * attached: shmq__segment_check() (the header never changes after
 * publication, record states and roles take only valid values) and
 * shmq__sem_check() (its invariants hold at every instant).
 * shmq__ring_check() is exact only on a quiescent ring, so it runs only when
 * nothing but views is attached (views never write), at most every
 * RING_CHECK_PERIOD_NS per queue and within RING_CHECK_SLOTS_PER_TICK slots
 * per tick, so large idle queues cannot stall the loop.
 */
#define RING_CHECK_PERIOD_NS	  (UINT64_C(10) * 1000000000)
#define RING_CHECK_SLOTS_PER_TICK (UINT32_C(1) << 18)

int shmqd_object_validate(struct shmqd_object *o, bool full, const char **ret_what)
{
	const struct shmqd_kind *k = shmqd_kind(o->kind);
	const char *what = NULL;
	int r = shmq__segment_check(&o->seg);

	if (r < 0) {
		what = "its header or session records fail validation";
	} else {
		/* Views never write: with no sender or receiver the object is at rest. */
		r = k->shm->check(&o->seg, full && !o->n_users);
		what = k->invalid;
	}
	if (ret_what)
		*ret_what = r < 0 ? what : NULL;
	return r < 0 ? r : 0;
}

void shmqd_object_quarantine(struct shmqd_object *o, const char *why)
{
	/*
	 * Relaxed: the bit is a display flag for viewers and publishes no data;
	 * an RMW keeps PUBLISHED and whatever else is set.
	 */
	fetch_or_relaxed(&o->seg.hdr->state, SHMQ_SEG_QUARANTINED);
	if (o->quarantined)
		return;
	o->quarantined = true;
	shmqd_log_object(o->name);
	shmqd_log_message_id(SHMQD_MESSAGE_QUARANTINE);
	log_warning("%s '%s' (id %" PRIu64 ") quarantined: %s; "
		    "new opens are refused until it is removed (shmqctl rm %s)",
		    shmqd_kind_name(o->kind), o->name, o->object_id, why, o->name);
	shmqd_log_object(NULL);
}

void shmqd_object_heartbeat(struct shmqd *d, uint64_t now_ns)
{
	uint32_t budget = RING_CHECK_SLOTS_PER_TICK;
	struct shmqd_list *pos, *tmp;

	list_for_each_safe(pos, tmp, &d->objects)
	{
		struct shmqd_object *o = container_of(pos, struct shmqd_object, link);
		const struct shmqd_kind *k = shmqd_kind(o->kind);
		/* A full check reads the whole tail (a queue's slots): budgeted by its size. */
		uint32_t slots = k->check_cost ? k->check_cost(&o->geom) : 0;
		bool full = now_ns - o->ring_checked_ns >= RING_CHECK_PERIOD_NS && slots <= budget;
		const char *what;

		/* a timestamp for liveness display: orders nothing else */
		store_relaxed(&o->seg.hdr->daemon_heartbeat_ns, now_ns);
		/* Quarantined or not: the handles still open must not wait on a forgery. */
		what = k->heartbeat ? k->heartbeat(o) : NULL;
		if (what)
			shmqd_object_quarantine(o, what);
		if (o->quarantined) {
			shmqd_object_quarantine(o, NULL); /* re-assert the header bit */
			continue;
		}
		if (full && !o->n_users) {
			budget -= slots;
			o->ring_checked_ns = now_ns;
		}
		if (shmqd_object_validate(o, full, &what) < 0)
			shmqd_object_quarantine(o, what);
	}
}

void shmqd_object_free_all(struct shmqd *d)
{
	struct shmqd_list *pos, *tmp;

	list_for_each_safe(pos, tmp, &d->objects)
		object_free(d, container_of(pos, struct shmqd_object, link), false);
	free(d->names);
	d->names = NULL;
	d->n_buckets = 0;
}

/* --- Re-adoption after a restart (daemon/adopt.c) --- */

/* Keep d->objects in creation (id) order, as LIST pages through it. */
static void objects_insert_sorted(struct shmqd *d, struct shmqd_object *o)
{
	struct shmqd_list *pos = d->objects.prev;

	while (pos != &d->objects &&
	       container_of(pos, struct shmqd_object, link)->object_id > o->object_id)
		pos = pos->prev;
	/* after pos */
	o->link.prev = pos;
	o->link.next = pos->next;
	pos->next->prev = &o->link;
	pos->next = &o->link;
}

int shmqd_object_add_adopted(struct shmqd *d, struct shmqd_object *o)
{
	if (!o->unlinked && shmqd_object_find(d, o->name)) {
		log_warning("%s '%s' (id %" PRIu64 "): the name is taken twice in the registry; "
			    "adopted as unlinked",
			    shmqd_kind_name(o->kind), o->name, o->object_id);
		o->unlinked = true;
		shmqd_store_object_update(d, o);
	}
	if ((!o->unlinked && names_insert(d, o) < 0) || usage_charge(d, o) < 0) {
		if (!o->unlinked)
			names_remove(d, o);
		return -ENOMEM;
	}
	objects_insert_sorted(d, o);
	d->n_objects++;
	d->memory_bytes += o->size;
	if (o->object_id >= d->next_object_id)
		d->next_object_id = o->object_id + 1;
	return 0;
}

void shmqd_object_release_record(struct shmqd_object *o, uint32_t index, int32_t pid,
				 const char *death)
{
	repair(pid, death, o, index);
	shmq__session_release(&o->seg, index);
}
