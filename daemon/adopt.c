/* SPDX-License-Identifier: MIT */
/*
 * Re-adoption after a daemon restart: the registry's objects and
 * attachments become live objects and adopted sessions again, repairs a
 * killed daemon left half done are finished, and a restarted client takes
 * its handles back (REATTACH).  See docs/reliability.md.
 *
 * DESIGN
 *
 * shmqd_adopt() runs once at start, after shmqd_store_open() found a
 * registry, in passes:
 *   1. objects: each record's segment is re-mapped and must agree with the
 *      record (the header is client-writable, the registry is not); its
 *      kind finishes any repair cut short (struct shmq_kind.resume);
 *   2. attachments: grouped into one adopted session per session id, each
 *      session pinned to its process by a pidfd and start time;
 *   3. records marked in use in a segment that no attachment holds are
 *      repaired and freed; segments no record names are removed;
 *   4. adopted sessions whose process is gone are killed and reaped, which
 *      repairs what they held, as for any death.
 * The registry code (store.c) only walks records; this file decides what
 * they mean, so store.c never calls back into the objects it stores.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/kind.h"
#include "daemon/log.h"
#include "daemon/shmqd.h"
#include "daemon/store.h"
#include "shm/atomic.h"

struct adopt_ctx {
	struct shmqd_object **by_id; /* sorted by object_id */
	uint32_t n_objects;
	bool **claimed; /* per object (same order): segment records held */
};

static int cmp_obj(const void *a, const void *b)
{
	const struct shmqd_object *x = *(struct shmqd_object *const *)a;
	const struct shmqd_object *y = *(struct shmqd_object *const *)b;

	return x->object_id < y->object_id ? -1 : x->object_id > y->object_id;
}

static long find_obj(const struct adopt_ctx *c, uint64_t id)
{
	long lo = 0, hi = (long)c->n_objects - 1;

	while (lo <= hi) {
		long mid = (lo + hi) / 2;
		uint64_t m = c->by_id[mid]->object_id;

		if (m == id)
			return mid;
		if (m < id)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

static bool known_obj(const void *ctx, uint64_t id)
{
	return find_obj(ctx, id) >= 0;
}

/* --- Pass 1: objects --- */

static int adopt_object(struct shmqd *d, const struct shmqd_reg_object *r, int fd, uint32_t reg)
{
	const struct shmqd_kind *k = shmqd_kind(r->kind);
	const char *what = shmqd_kind_name(r->kind);
	bool unlinked = load_relaxed(&r->flags) & SHMQD_REG_UNLINKED;
	struct shmqd_memory m;
	struct shmqd_object *o;
	struct stat sb;
	int rc;

	if (fstat(fd, &sb) < 0)
		return log_warning_errno(-errno, "%s '%s': stat of its segment", what, r->name);
	if (!S_ISREG(sb.st_mode) || sb.st_size < 0 || (uint64_t)sb.st_size != r->size ||
	    (uint64_t)(size_t)r->size != r->size)
		return log_warning_errno(-EBADMSG,
					 "%s '%s' (id %" PRIu64 "): its segment is %lld bytes, the "
					 "registry says %" PRIu64 "; not adopted",
					 what, r->name, r->object_id, (long long)sb.st_size,
					 r->size);
	/* A memfd must still carry the seals create put on it. */
	if (d->store.kind == SHMQD_STORE_FDSTORE) {
		int seals = fcntl(fd, F_GET_SEALS);

		if (seals < 0 ||
		    (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
			return log_warning_errno(-EBADMSG,
						 "%s '%s': its memfd is not sealed; not adopted",
						 what, r->name);
	}
	rc = shmqd_memory_map_existing(fd, r->size, &m);
	if (rc < 0)
		return log_warning_errno(rc, "%s '%s': mapping its segment", what, r->name);
	o = calloc(1, sizeof(*o));
	if (!o) {
		munmap(m.base, m.size);
		return log_warning_errno(-ENOMEM, "adopting '%s'", r->name);
	}
	/* The registry is the truth; the header (client-writable) must agree with it. */
	rc = shmq__segment_attach(m.base, m.size, &o->seg);
	if (rc == 0 &&
	    (o->seg.kind != r->kind || o->seg.hdr->object_id != r->object_id ||
	     memcmp(&o->seg.geom, &r->geom, sizeof(r->geom)) || strcmp(o->seg.name, r->name)))
		rc = -EBADMSG;
	if (rc < 0) {
		munmap(m.base, m.size);
		free(o);
		return log_warning_errno(rc,
					 "%s '%s' (id %" PRIu64 "): the segment does not match "
					 "the registry; not adopted",
					 what, r->name, r->object_id);
	}

	/* A repair this daemon's predecessor was killed in the middle of. */
	if (k->shm->resume) {
		struct shmq_kind_repair rep = {0};

		rc = k->shm->resume(&o->seg, &rep);
		if (rc > 0)
			log_notice("%s '%s': finished a repair cut short by the daemon's death "
				   "(%" PRIu32 " tombstoned, %" PRIu32 " redelivered)",
				   what, r->name, rep.tombstoned, rep.redelivered);
	}
	memcpy(o->name, r->name, sizeof(o->name));
	o->object_id = r->object_id;
	o->kind = r->kind;
	o->hugetlb = load_relaxed(&r->flags) & SHMQD_REG_HUGETLB;
	o->numa_node = r->numa_node;
	o->owner_uid = r->owner_uid;
	o->owner_gid = r->owner_gid;
	o->mode = r->mode;
	o->created_realtime_ns = r->created_realtime_ns;
	o->geom = r->geom;
	o->memfd = fd;
	o->size = r->size;
	o->reg = reg;
	o->unlinked = unlinked;
	if (shmqd_object_add_adopted(d, o) < 0) {
		munmap(m.base, m.size);
		free(o);
		return log_warning_errno(-ENOMEM, "adopting '%s'", r->name);
	}
	store_relaxed(&o->seg.hdr->daemon_heartbeat_ns, shmqd_now_ns()); /* display only */
	log_debug("%s '%s' (id %" PRIu64 ") re-adopted", what, o->name, o->object_id);
	/*
	 * A quarantine outlives the daemon in the header bit.  It is client-
	 * writable, but whoever can set it can as well scribble the object to
	 * death: honouring it costs nothing a writer could not do anyway.
	 */
	if (load_relaxed(&o->seg.hdr->state) & SHMQ_SEG_QUARANTINED) /* a flag: no ordering */
		shmqd_object_quarantine(o, "its header says so, from before the restart");
	return 0;
}

/* --- Pass 2: attachments --- */

static int adopt_attach(struct shmqd *d, struct shmqd_session *s, struct shmqd_object *o,
			const struct shmqd_reg_attach *r, uint32_t reg)
{
	struct shmqd_attach *a = calloc(1, sizeof(*a));

	if (!a)
		return log_errno(-ENOMEM, "adopting an attachment");
	a->attach_id = r->attach_id;
	a->obj = o;
	a->flags = r->flags;
	a->session_index = r->session_index;
	a->reg = reg;
	if (a->session_index != UINT32_MAX) {
		struct shmq_session_shm *rec = shmq__session_at(&o->seg, a->session_index);

		/* Held per the registry: a record that says otherwise was scribbled on. */
		if (load_relaxed(&rec->state) != SHMQ_SESSION_ACTIVE) {
			log_warning("'%s': record %" PRIu32 " of pid %" PRId32
				    " was not marked active; marked again",
				    o->name, a->session_index, r->pid);
			store_release(&rec->state, SHMQ_SESSION_ACTIVE); /* claims look for FREE */
		}
		/* what it did before the restart is not news to the last-sender fields */
		a->seen_sent = load_relaxed(&rec->c.sent);
		a->seen_received = load_relaxed(&rec->c.received);
	}
	list_add_tail(&s->attachments, &a->link);
	s->n_attached++;
	shmqd_object_count(o, a->flags, 1);
	if (a->attach_id >= d->next_attach_id)
		d->next_attach_id = a->attach_id + 1;
	return 0;
}

/* One attachment record: into the adopted session of its session id. */
static int adopt_attach_record(struct shmqd *d, const struct shmqd_reg_attach *ra, uint32_t reg,
			       void *ctx)
{
	struct adopt_ctx *c = ctx;
	struct shmqd_session *s = NULL;
	struct shmqd_list *pos, *tmp;
	struct shmqd_object *o;
	long k = find_obj(c, ra->object_id);
	int r;

	if (k < 0) {
		shmqd_store_drop(d, reg, "an attachment names an object that is gone");
		return 0;
	}
	o = c->by_id[k];
	if (ra->session_index != UINT32_MAX &&
	    (ra->session_index >= o->seg.n_sessions || c->claimed[k][ra->session_index])) {
		shmqd_store_drop(d, reg, "an attachment names a bad or doubly held record");
		return 0;
	}
	list_for_each_safe(pos, tmp, &d->sessions)
	{
		struct shmqd_session *x = container_of(pos, struct shmqd_session, link);

		if (x->adopted && x->session_id == load_relaxed(&ra->session_id)) {
			s = x;
			break;
		}
	}
	if (!s)
		s = shmqd_session_adopt(d, ra);
	if (!s)
		return -ENOMEM;
	r = adopt_attach(d, s, o, ra, reg);
	if (r < 0)
		return r;
	if (ra->session_index != UINT32_MAX)
		c->claimed[k][ra->session_index] = true;
	return 0;
}

/* --- Pass 3: records nobody holds --- */

/*
 * Records marked in use in the segment that no registry attachment holds:
 * an attach cut short before its reply, or a detach cut short after the
 * registry forgot it.  Nobody was granted them, or their holder is gone:
 * finish what they held (repair, undo) and free them.
 */
static void release_orphans(struct shmqd_object *o, const bool *claimed)
{
	for (uint32_t i = 0; i < o->seg.n_sessions; i++) {
		struct shmq_session_shm *rec = shmq__session_at(&o->seg, i);

		if (claimed[i] || load_relaxed(&rec->state) == SHMQ_SESSION_FREE)
			continue;
		/* The pid is for the log line only. */
		shmqd_object_release_record(o, i, load_relaxed(&rec->pid),
					    "was cut off by a daemon restart");
	}
}

/* --- Pass 4 and the whole adoption --- */

int shmqd_adopt(struct shmqd *d)
{
	struct adopt_ctx c = {0};
	struct shmqd_list *pos, *tmp;
	uint32_t n_adopted = 0, n_attach = 0, k = 0;
	int r;

	shmqd_store_each_object(d, adopt_object);
	c.n_objects = d->n_objects;
	c.by_id = calloc(c.n_objects ? c.n_objects : 1, sizeof(*c.by_id));
	c.claimed = calloc(c.n_objects ? c.n_objects : 1, sizeof(*c.claimed));
	if (!c.by_id || !c.claimed) {
		r = log_errno(-ENOMEM, "adopting %" PRIu32 " objects", c.n_objects);
		goto out;
	}
	list_for_each_safe(pos, tmp, &d->objects)
	{
		struct shmqd_object *o = container_of(pos, struct shmqd_object, link);

		c.claimed[k] = NULL;
		c.by_id[k++] = o;
	}
	qsort(c.by_id, c.n_objects, sizeof(*c.by_id), cmp_obj);
	for (k = 0; k < c.n_objects; k++) {
		c.claimed[k] = calloc(c.by_id[k]->seg.n_sessions, sizeof(bool));
		if (!c.claimed[k]) {
			r = log_errno(-ENOMEM, "adopting objects");
			goto out;
		}
	}
	r = shmqd_store_each_attach(d, adopt_attach_record, &c);
	if (r < 0)
		goto out;
	for (k = 0; k < c.n_objects; k++)
		release_orphans(c.by_id[k], c.claimed[k]);
	shmqd_store_remove_orphans(d, known_obj, &c);

	list_for_each_safe(pos, tmp, &d->sessions)
	{
		struct shmqd_session *s = container_of(pos, struct shmqd_session, link);

		if (!s->adopted)
			continue;
		n_adopted++;
		n_attach += s->n_attached;
		if (!shmqd_session_alive(s))
			shmqd_session_kill(d, s, "exited while the daemon was down");
	}
	/* Repairs for the dead, and unlinked objects nobody holds any more, now. */
	shmqd_session_reap_dead(d);
	list_for_each_safe(pos, tmp, &d->objects)
	{
		struct shmqd_object *o = container_of(pos, struct shmqd_object, link);

		if (o->unlinked && !o->n_attached)
			shmqd_object_collect(d, o);
	}
	shmqd_log_message_id(SHMQD_MESSAGE_RESTART);
	log_info("re-adopted %" PRIu32 " objects and %" PRIu32 " attachments of %" PRIu32
		 " client sessions from %s",
		 d->n_objects, n_attach, n_adopted,
		 d->store.kind == SHMQD_STORE_DIR ? d->cfg.state_directory : "the fd store");
	r = 0;
out:
	shmqd_store_sync_ids(d);
	for (k = 0; c.claimed && k < c.n_objects; k++)
		free(c.claimed[k]);
	free(c.claimed);
	free(c.by_id);
	return r;
}

/* --- REATTACH: a restarted client takes its handles back --- */

struct shmqd_attach *shmqd_adopt_find(struct shmqd *d, const struct shmqd_session *s,
				      uint64_t attach_id, struct shmqd_session **ret_owner)
{
	struct shmqd_list *pos, *tmp;

	if (s->pid <= 0)
		return NULL;
	list_for_each_safe(pos, tmp, &d->sessions)
	{
		struct shmqd_session *x = container_of(pos, struct shmqd_session, link);
		struct shmqd_list *apos, *atmp;

		/* The same process: SO_PEERCRED's pid, pinned by the adopted pidfd. */
		if (!x->adopted || x->dead || x == s || x->pid != s->pid || !shmqd_session_alive(x))
			continue;
		list_for_each_safe(apos, atmp, &x->attachments)
		{
			struct shmqd_attach *a = container_of(apos, struct shmqd_attach, link);

			if (a->attach_id == attach_id) {
				*ret_owner = x;
				return a;
			}
		}
	}
	return NULL;
}

int shmqd_adopt_reattach(struct shmqd *d, struct shmqd_session *s, uint64_t attach_id,
			 uint64_t object_id, uint32_t session_index, uint32_t flags)
{
	struct shmqd_session *owner;
	struct shmqd_attach *a = shmqd_adopt_find(d, s, attach_id, &owner);

	if (!a || a->obj->object_id != object_id || a->session_index != session_index ||
	    a->flags != flags)
		return log_client_errno(LOG_INFO, -ENOENT,
					"pid %" PRId32 ": REATTACH of attach %" PRIu64
					" (object %" PRIu64 "): no such attachment of this process",
					s->pid, attach_id, object_id);
	if (s->n_attached >= d->cfg.max_attach_per_session)
		return log_client_errno(LOG_NOTICE, -ENOSPC,
					"pid %" PRId32 ": max-attach-per-session (%" PRIu32
					") reached while reattaching",
					s->pid, d->cfg.max_attach_per_session);
	list_del(&a->link);
	owner->n_attached--;
	list_add_tail(&s->attachments, &a->link);
	s->n_attached++;
	shmqd_store_attach_update(d, s, a);
	log_debug("pid %" PRId32 " took back attach %" PRIu64 " to '%s' (session %" PRIu64
		  " -> %" PRIu64 ")",
		  s->pid, attach_id, a->obj->name, owner->session_id, s->session_id);
	if (!owner->n_attached)
		shmqd_session_drop_adopted(d, owner);
	return 0;
}
