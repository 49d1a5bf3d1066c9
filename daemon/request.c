/* SPDX-License-Identifier: MIT */
/*
 * Control-protocol v1 request handlers, one per op (docs/protocol.md).
 *
 * session.c has already checked the header and that the body has exactly
 * the op's size; each handler checks every field of its body before it
 * changes anything, so a rejected request leaves no trace.  Field checks
 * come first, then existence, then permission, then limits: the same order
 * as the errno list in docs/protocol.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <shmq/version.h>

#include "daemon/kind.h"
#include "daemon/log.h"
#include "daemon/shmqd.h"

#define ROLE_FLAGS   SHMQ_OPEN_ROLES
#define MODE_DEFAULT 0600 /* a create with mode 0, as libshmq's perm 0 */

/* Log why a request is refused, naming the client; return @r for the reply. */
int shmqd_reject(const struct shmqd_session *s, int level, int r, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	shmqd_log_set_reason(msg); /* the client's error reply says it, without our prefix */
	return log_client_errno(level, r, "pid %" PRId32 " uid %" PRIu32 ": %s", s->pid, s->uid,
				msg);
}

/* A malformed field: a client bug, worth a line at info. */
#define reject shmqd_reject
#define bad    shmqd_bad

static int name_check(const struct shmqd_session *s, const char *name, size_t size)
{
	if (!memchr(name, '\0', size))
		return bad(s, "name not NUL-terminated");
	if (!shmq__name_is_valid(name))
		return bad(s, "invalid name (1-63 bytes of [A-Za-z0-9._-])");
	return 0;
}

/* --- HELLO --- */

static int on_request_hello(struct shmqd_session *s, const struct shmq_req_hello *q,
			    struct shmqd_reply *rep)
{
	struct shmq_rep_hello *out = rep->body;

	if (s->hello_done)
		return bad(s, "second HELLO");
	if (q->proto_version != SHMQ_PROTO_VERSION)
		return reject(s, LOG_INFO, -EPROTO, "client speaks protocol %u, daemon %d",
			      q->proto_version, SHMQ_PROTO_VERSION);
	if (q->layout_major != SHMQ_LAYOUT_MAJOR)
		return reject(s, LOG_INFO, -EPROTO, "client has layout %u.%u, daemon %d.%d",
			      q->layout_major, q->layout_minor, SHMQ_LAYOUT_MAJOR,
			      SHMQ_LAYOUT_MINOR);
	if (q->reserved0)
		return bad(s, "HELLO reserved0 is not zero");
	if (!memchr(q->client_name, '\0', sizeof(q->client_name)))
		return bad(s, "client_name not NUL-terminated");
	/* It ends up in log lines and shmqctl output: printable ASCII only. */
	for (const char *c = q->client_name; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			return bad(s, "client_name has unprintable bytes");

	s->hello_done = true;
	s->client_layout_minor = q->layout_minor;
	memcpy(s->client_name, q->client_name, sizeof(s->client_name));
	memset(out, 0, sizeof(*out));
	out->proto_version = SHMQ_PROTO_VERSION;
	out->layout_major = SHMQ_LAYOUT_MAJOR;
	out->layout_minor = SHMQ_LAYOUT_MINOR;
	out->session_id = s->session_id;
	out->daemon_pid = (int32_t)getpid();
	snprintf(out->daemon_version, sizeof(out->daemon_version), "%s", SHMQ_VERSION_STRING);
	rep->len = sizeof(*out);
	log_debug("session %" PRIu64 ": pid %" PRId32 " says hello as '%s'", s->session_id, s->pid,
		  s->client_name);
	return 0;
}

/* --- CREATE / OPEN --- */

static int open_check(const struct shmqd *d, const struct shmqd_session *s, uint16_t op,
		      const struct shmq_req_open *q, struct shmqd_create *c)
{
	uint32_t roles = q->flags & ROLE_FLAGS;
	bool create = op == SHMQ_OP_CREATE || (q->flags & SHMQ_OPEN_CREATE);
	const struct shmqd_kind *k;
	int r;

	if (q->flags & ~SHMQ_OPEN_ALL_FLAGS)
		return bad(s, "unknown open flags 0x%" PRIx32, q->flags & ~SHMQ_OPEN_ALL_FLAGS);
	if (q->reserved0 || q->reserved1)
		return bad(s, "open reserved fields not zero");
	r = name_check(s, q->name, sizeof(q->name));
	if (r < 0)
		return r;
	k = shmqd_kind(q->kind);
	if (q->kind == SHMQ_KIND_ANY && roles == SHMQ_OPEN_VIEW && !create && !q->mode &&
	    !(q->flags & SHMQ_OPEN_HUGEPAGE)) {
		c->name = q->name; /* a view of whatever the name is: no kind to check */
		return 0;
	}
	if (!k)
		return bad(s, "unknown kind %u", q->kind);
	/* One role set per attachment: a view never mixes with writing roles. */
	if (roles != SHMQ_OPEN_VIEW &&
	    (!roles || (roles & ~k->open_roles) || (k->open_roles_all && roles != k->open_roles)))
		return bad(s, "role flags 0x%" PRIx32 " do not fit a %s", roles, k->shm->name);
	if ((q->flags & SHMQ_OPEN_END1) && (!k->ends || roles == SHMQ_OPEN_VIEW))
		return bad(s, "SHMQ_OPEN_END1 names an end of a pipe, not %s",
			   k->ends ? "a view" : k->shm->name);
	if ((q->flags & SHMQ_OPEN_SHAPE) && !(q->flags & SHMQ_OPEN_CREATE))
		return bad(s, "SHMQ_OPEN_SHAPE needs SHMQ_OPEN_CREATE");
	if ((q->flags & SHMQ_OPEN_HUGEPAGE) && (!create || !k->hugepages))
		return bad(s, "SHMQ_OPEN_HUGEPAGE needs a queue create");
	if (q->mode & ~0777u)
		return bad(s, "mode 0%" PRIo32 " has bits outside 0777", q->mode);

	c->name = q->name;
	c->kind = q->kind;
	c->mode = q->mode ? q->mode : MODE_DEFAULT;
	c->hugetlb = q->flags & SHMQ_OPEN_HUGEPAGE;
	c->geom = q->geom;
	if (!create)
		return 0;
	return k->create_check(&d->cfg, s, &c->geom);
}

/* Whether @o has the shape @c asks for: its kind's shape() of both geometries, and huge pages. */
static bool same_shape(const struct shmqd_object *o, const struct shmqd_create *c)
{
	const struct shmqd_kind *k = shmqd_kind(o->kind);
	union shmq_geom have = o->geom, want = c->geom;

	if (k->shape) {
		k->shape(&have);
		k->shape(&want);
	}
	return memcmp(&have, &want, sizeof(have)) == 0 && o->hugetlb == c->hugetlb;
}

static int on_request_open(struct shmqd *d, struct shmqd_session *s, uint16_t op,
			   const struct shmq_req_open *q, struct shmqd_reply *rep)
{
	uint32_t roles = q->flags & ROLE_FLAGS;
	struct shmq_rep_open *out = rep->body;
	struct shmqd_create c = {0};
	struct shmqd_object *o;
	struct shmqd_attach *a;
	bool created = false;
	int r, fd = -1;

	r = open_check(d, s, op, q, &c);
	if (r < 0)
		return r;

	o = shmqd_object_find(d, q->name);
	if (o) {
		if (op == SHMQ_OP_CREATE)
			return reject(s, LOG_DEBUG, -EEXIST, "'%s' exists", q->name);
		if (o->kind != q->kind && q->kind != SHMQ_KIND_ANY)
			return bad(s, "'%s' is of kind %s", q->name, shmqd_kind_name(o->kind));
		if ((q->flags & SHMQ_OPEN_SHAPE) && !same_shape(o, &c)) {
			char have[128];

			shmqd_kind(o->kind)->describe(o, have, sizeof(have));
			return reject(s, LOG_DEBUG, -EEXIST, "'%s' exists with another shape: %s%s",
				      q->name, have, o->hugetlb ? ", huge pages" : "");
		}
		r = shmqd_object_check_access(s, o, roles == SHMQ_OPEN_VIEW ? 4 : 2);
		if (r < 0)
			return r;
		/* A view only reads, and is how an administrator inspects the damage. */
		if (o->quarantined && roles != SHMQ_OPEN_VIEW)
			return reject(s, LOG_NOTICE, -EBADMSG,
				      "'%s' is quarantined (its segment failed validation); "
				      "only views until it is removed",
				      q->name);
	} else {
		if (op != SHMQ_OP_CREATE && !(q->flags & SHMQ_OPEN_CREATE))
			return reject(s, LOG_DEBUG, -ENOENT, "no object '%s'", q->name);
		/* Checked before creating, so a create never leaves an object it cannot hand out. */
		if (s->n_attached >= d->cfg.max_attach_per_session)
			return reject(s, LOG_NOTICE, -ENOSPC,
				      "max-attach-per-session (%" PRIu32 ") reached",
				      d->cfg.max_attach_per_session);
		r = shmqd_object_create(d, s, &c, &o);
		if (r < 0)
			return r;
		created = true;
	}

	if (roles == SHMQ_OPEN_VIEW) {
		fd = shmqd_object_view_fd(o);
		if (fd < 0) {
			r = fd;
			goto undo;
		}
	}
	r = shmqd_object_attach(d, s, o, roles | (q->flags & SHMQ_OPEN_END1), &a);
	if (r < 0)
		goto undo;

	memset(out, 0, sizeof(*out));
	out->object_id = o->object_id;
	out->attach_id = a->attach_id;
	out->size = o->size;
	out->session_index = a->session_index;
	out->flags = a->flags | (o->hugetlb ? SHMQ_OPEN_HUGEPAGE : 0);
	out->kind = o->kind;
	out->created = created;
	rep->len = sizeof(*out);
	rep->fd = fd >= 0 ? fd : o->memfd;
	rep->fd_owned = fd >= 0;
	return 0;

undo:
	if (fd >= 0)
		close(fd);
	/* Not handed out to anyone yet: take back the name this request just created. */
	if (created)
		shmqd_object_unlink(d, o);
	return r;
}

/* --- CLOSE / UNLINK / STAT --- */

static int on_request_close(struct shmqd *d, struct shmqd_session *s,
			    const struct shmq_req_close *q)
{
	struct shmqd_session *owner;
	struct shmqd_list *pos, *tmp;
	struct shmqd_attach *a;

	list_for_each_safe(pos, tmp, &s->attachments)
	{
		a = container_of(pos, struct shmqd_attach, link);
		if (a->attach_id == q->attach_id) {
			shmqd_object_detach(d, s, a, false);
			return 0;
		}
	}
	/* One its process held before a daemon restart and has not taken back. */
	a = shmqd_adopt_find(d, s, q->attach_id, &owner);
	if (a) {
		shmqd_object_detach(d, owner, a, false);
		if (!owner->n_attached)
			shmqd_session_drop_adopted(d, owner);
		return 0;
	}
	return reject(s, LOG_DEBUG, -ENOENT, "CLOSE of attach %" PRIu64 ", not one of its own",
		      q->attach_id);
}

static int on_request_reattach(struct shmqd *d, struct shmqd_session *s,
			       const struct shmq_req_reattach *q)
{
	return shmqd_adopt_reattach(d, s, q->attach_id, q->object_id, q->session_index, q->flags);
}

static int on_request_unlink(struct shmqd *d, struct shmqd_session *s,
			     const struct shmq_req_name *q)
{
	struct shmqd_object *o;
	int r = name_check(s, q->name, sizeof(q->name));

	if (r < 0)
		return r;
	o = shmqd_object_find(d, q->name);
	if (!o)
		return reject(s, LOG_DEBUG, -ENOENT, "UNLINK: no object '%s'", q->name);
	if (s->uid != 0 && s->uid != o->owner_uid)
		return reject(s, LOG_INFO, -EACCES, "UNLINK '%s' owned by uid %" PRIu32 " denied",
			      o->name, o->owner_uid);
	shmqd_object_unlink(d, o);
	return 0;
}

/* A look at an object @s may not read: refused, naming the owner and mode that keep it out. */
static int hidden(const struct shmqd_session *s, const char *what, const struct shmqd_object *o)
{
	return reject(s, LOG_INFO, -EACCES,
		      "%s '%s': no read access (owner %" PRIu32 ":%" PRIu32 ", mode %04" PRIo32 ")",
		      what, o->name, o->owner_uid, o->owner_gid, o->mode);
}

static int on_request_stat(struct shmqd *d, struct shmqd_session *s, const struct shmq_req_name *q,
			   struct shmqd_reply *rep)
{
	struct shmqd_object *o;
	int r = name_check(s, q->name, sizeof(q->name));

	if (r < 0)
		return r;
	o = shmqd_object_find(d, q->name);
	if (!o)
		return reject(s, LOG_DEBUG, -ENOENT, "STAT: no object '%s'", q->name);
	if (!shmqd_object_visible(s, o))
		return hidden(s, "STAT", o);
	shmqd_object_info(o, rep->body);
	rep->len = sizeof(struct shmq_obj_info);
	return 0;
}

/* --- LIST / SESSIONS / STATUS --- */

static int on_request_list(struct shmqd *d, struct shmqd_session *s, const struct shmq_req_page *q,
			   struct shmqd_reply *rep)
{
	struct shmq_rep_list *out = rep->body;
	struct shmqd_list *pos, *tmp;
	uint32_t i = 0;

	if (q->reserved0)
		return bad(s, "LIST reserved0 not zero");
	out->total = 0;
	out->count = 0;
	/* Only what @s may read, counted in total too, so that pages add up. */
	list_for_each_safe(pos, tmp, &d->objects)
	{
		const struct shmqd_object *o = container_of(pos, struct shmqd_object, link);

		if (!shmqd_object_visible(s, o))
			continue;
		out->total++;
		if (i++ < q->offset || out->count == SHMQ_LIST_PAGE)
			continue;
		shmqd_object_info(o, &out->items[out->count++]);
	}
	rep->len = sizeof(*out) + out->count * sizeof(out->items[0]);
	return 0;
}

static int on_request_sessions(struct shmqd *d, struct shmqd_session *s,
			       const struct shmq_req_page *q, struct shmqd_reply *rep)
{
	struct shmq_rep_sessions *out = rep->body;
	struct shmqd_list *pos, *tmp;
	uint32_t i = 0;

	if (q->reserved0)
		return bad(s, "SESSIONS reserved0 not zero");
	out->total = 0;
	out->count = 0;
	/* A user sees their own sessions; root every one. */
	list_for_each_safe(pos, tmp, &d->sessions)
	{
		const struct shmqd_session *t = container_of(pos, struct shmqd_session, link);
		struct shmq_session_info *it;

		if (s->uid != 0 && t->uid != s->uid)
			continue;
		out->total++;
		if (i++ < q->offset || out->count == SHMQ_SESSIONS_PAGE)
			continue;
		it = &out->items[out->count++];
		memset(it, 0, sizeof(*it));
		it->session_id = t->session_id;
		it->connected_ns = t->connected_ns;
		it->pid = t->pid;
		it->uid = t->uid;
		it->gid = t->gid;
		it->n_attached = t->n_attached;
		memcpy(it->client_name, t->client_name, sizeof(it->client_name));
	}
	rep->len = sizeof(*out) + out->count * sizeof(out->items[0]);
	return 0;
}

/* One USAGE row for @uid, with the limits that apply to it. */
static void usage_row(struct shmqd *d, uint32_t uid, struct shmq_usage_info *it)
{
	memset(it, 0, sizeof(*it));
	it->uid = uid;
	shmqd_usage_of(d, uid, &it->n_objects, &it->memory);
	it->n_clients = shmqd_sessions_of_uid(d, uid);
	it->max_objects = d->cfg.max_objects_per_uid;
	it->max_memory = d->cfg.max_memory_per_uid;
	it->max_clients = uid == 0 ? 0 : d->cfg.max_clients_per_uid;
}

/* Whether @uid comes up in @d's lists before @upto (a session, or NULL for the end). */
static bool uid_seen(struct shmqd *d, uint32_t uid, const struct shmqd_list *upto)
{
	struct shmqd_list *pos, *tmp;

	list_for_each_safe(pos, tmp, &d->uids)
	{
		if (container_of(pos, struct shmqd_uid_usage, link)->uid == uid)
			return true;
	}
	list_for_each_safe(pos, tmp, &d->sessions)
	{
		if (pos == upto)
			break;
		if (container_of(pos, struct shmqd_session, link)->uid == uid)
			return true;
	}
	return false;
}

/*
 * USAGE: a row per uid that owns an object or has a session (root), or
 * the asker's own row only, even if it has nothing (anyone else): owners
 * first, in the order they first created, then uids with sessions only.
 * Admin only: O(uids x sessions) is fine for a listing.
 */
static int on_request_usage(struct shmqd *d, struct shmqd_session *s, const struct shmq_req_page *q,
			    struct shmqd_reply *rep)
{
	struct shmq_rep_usage *out = rep->body;
	struct shmqd_list *pos, *tmp;
	uint32_t i = 0;

	if (q->reserved0)
		return bad(s, "USAGE reserved0 not zero");
	out->total = 0;
	out->count = 0;
	if (s->uid != 0) {
		out->total = 1;
		if (q->offset == 0)
			usage_row(d, s->uid, &out->items[out->count++]);
		rep->len = sizeof(*out) + out->count * sizeof(out->items[0]);
		return 0;
	}
	list_for_each_safe(pos, tmp, &d->uids)
	{
		out->total++;
		if (i++ < q->offset || out->count == SHMQ_USAGE_PAGE)
			continue;
		usage_row(d, container_of(pos, struct shmqd_uid_usage, link)->uid,
			  &out->items[out->count++]);
	}
	list_for_each_safe(pos, tmp, &d->sessions)
	{
		uint32_t uid = container_of(pos, struct shmqd_session, link)->uid;

		if (uid_seen(d, uid, pos))
			continue;
		out->total++;
		if (i++ < q->offset || out->count == SHMQ_USAGE_PAGE)
			continue;
		usage_row(d, uid, &out->items[out->count++]);
	}
	rep->len = sizeof(*out) + out->count * sizeof(out->items[0]);
	return 0;
}

static int on_request_status(struct shmqd *d, struct shmqd_reply *rep)
{
	struct shmq_rep_status *out = rep->body;

	memset(out, 0, sizeof(*out));
	snprintf(out->daemon_version, sizeof(out->daemon_version), "%s", SHMQ_VERSION_STRING);
	out->pid = (int32_t)getpid();
	out->n_sessions = d->n_sessions;
	out->uptime_ns = shmqd_now_ns() - d->started_ns;
	out->n_objects = d->n_objects;
	out->max_clients = d->cfg.max_clients;
	out->memory_bytes = d->memory_bytes;
	snprintf(out->socket_path, sizeof(out->socket_path), "%s", d->socket_path);
	rep->len = sizeof(*out);
	return 0;
}

/* --- PURGE / CONFIG / ATTACHMENTS --- */

static int on_request_purge(struct shmqd *d, struct shmqd_session *s, const struct shmq_req_name *q,
			    struct shmqd_reply *rep)
{
	struct shmq_rep_purge *out = rep->body;
	struct shmqd_object *o;
	const struct shmqd_kind *k;
	uint64_t dropped = 0;
	int r = name_check(s, q->name, sizeof(q->name));

	if (r < 0)
		return r;
	o = shmqd_object_find(d, q->name);
	if (!o)
		return reject(s, LOG_DEBUG, -ENOENT, "PURGE: no object '%s'", q->name);
	k = shmqd_kind(o->kind);
	if (!k->purge)
		return bad(s, "PURGE: '%s' is a %s", q->name, k->shm->name);
	/* Like UNLINK: dropping everybody's messages is the owner's call. */
	if (s->uid != 0 && s->uid != o->owner_uid)
		return reject(s, LOG_INFO, -EACCES, "PURGE '%s' owned by uid %" PRIu32 " denied",
			      o->name, o->owner_uid);
	r = k->purge(s, o, &dropped);
	if (r < 0)
		return r;
	log_info("%s '%s': purged %" PRIu64 " messages for pid %" PRId32 " uid %" PRIu32,
		 k->shm->name, o->name, dropped, s->pid, s->uid);
	memset(out, 0, sizeof(*out));
	out->dropped = dropped;
	rep->len = sizeof(*out);
	return 0;
}

static int on_request_shutdown(struct shmqd *d, struct shmqd_session *s,
			       const struct shmq_req_shutdown *q)
{
	bool immediate = q->flags & SHMQ_SHUTDOWN_F_IMMEDIATE;
	struct shmqd_object *o;
	const struct shmqd_kind *k;
	int r = name_check(s, q->name, sizeof(q->name));

	if (r < 0)
		return r;
	if ((q->flags & ~SHMQ_SHUTDOWN_F_IMMEDIATE) || q->reserved)
		return bad(s, "SHUTDOWN: unknown flags 0x%" PRIx32, q->flags);
	o = shmqd_object_find(d, q->name);
	if (!o)
		return reject(s, LOG_DEBUG, -ENOENT, "SHUTDOWN: no object '%s'", q->name);
	k = shmqd_kind(o->kind);
	if (!k->shutdown)
		return bad(s, "SHUTDOWN: '%s' is a %s", q->name, k->shm->name);
	/* Like PURGE: ending everybody's traffic is the owner's call (handles may too). */
	if (s->uid != 0 && s->uid != o->owner_uid)
		return reject(s, LOG_INFO, -EACCES, "SHUTDOWN '%s' owned by uid %" PRIu32 " denied",
			      o->name, o->owner_uid);
	r = k->shutdown(o, immediate);
	if (r < 0)
		return r;
	log_info("%s '%s': shut down%s for pid %" PRId32 " uid %" PRIu32, k->shm->name, o->name,
		 immediate ? " (immediate)" : "", s->pid, s->uid);
	return 0;
}

static int on_request_config(struct shmqd *d, struct shmqd_reply *rep, bool typed)
{
	size_t len = typed ? shmqd_config_format_typed(&d->cfg, rep->body, SHMQ_CONFIG_TEXT_MAX)
			   : shmqd_config_format(&d->cfg, rep->body, SHMQ_CONFIG_TEXT_MAX);

	/* A few hundred bytes for a table of 13 options: it always fits. */
	if (len >= SHMQ_CONFIG_TEXT_MAX)
		return log_errno(-EMSGSIZE, "configuration text of %zu bytes", len);
	rep->len = len + 1;
	return 0;
}

static int on_request_attachments(struct shmqd *d, struct shmqd_session *s,
				  const struct shmq_req_attachments *q, struct shmqd_reply *rep)
{
	struct shmq_rep_attachments *out = rep->body;
	struct shmqd_list *pos, *tmp;
	struct shmqd_object *o;
	uint32_t i = 0;
	int r = name_check(s, q->name, sizeof(q->name));

	if (r < 0)
		return r;
	if (q->reserved0)
		return bad(s, "ATTACHMENTS reserved0 not zero");
	o = shmqd_object_find(d, q->name);
	if (!o)
		return reject(s, LOG_DEBUG, -ENOENT, "ATTACHMENTS: no object '%s'", q->name);
	if (!shmqd_object_visible(s, o))
		return hidden(s, "ATTACHMENTS", o);

	out->total = o->n_attached;
	out->count = 0;
	/* Admin only: O(sessions x attachments) is fine for a listing. */
	list_for_each_safe(pos, tmp, &d->sessions)
	{
		const struct shmqd_session *t = container_of(pos, struct shmqd_session, link);
		struct shmqd_list *apos, *atmp;

		list_for_each_safe(apos, atmp, &t->attachments)
		{
			const struct shmqd_attach *a =
				container_of(apos, struct shmqd_attach, link);
			struct shmq_attachment_info *it;

			if (a->obj != o || out->count == SHMQ_ATTACHMENTS_PAGE)
				continue;
			if (i++ < q->offset)
				continue;
			it = &out->items[out->count++];
			memset(it, 0, sizeof(*it));
			it->session_id = t->session_id;
			it->attach_id = a->attach_id;
			it->pid = t->pid;
			it->uid = t->uid;
			it->flags = a->flags;
			it->session_index = a->session_index;
			memcpy(it->client_name, t->client_name, sizeof(it->client_name));
		}
	}
	rep->len = sizeof(*out) + out->count * sizeof(out->items[0]);
	return 0;
}

int shmqd_request_handle(struct shmqd *d, struct shmqd_session *s, uint16_t op, const void *body,
			 struct shmqd_reply *ret)
{
	/* d->rx is byte-aligned storage; copy the body into a properly typed local. */
	union {
		struct shmq_req_hello hello;
		struct shmq_req_open open;
		struct shmq_req_close close;
		struct shmq_req_name name;
		struct shmq_req_page page;
		struct shmq_req_attachments attachments;
		struct shmq_req_reattach reattach;
		struct shmq_req_shutdown shutdown;
		struct shmq_req_disconnect disconnect;
	} q;
	long size = shmq__proto_req_size(op);

	if (size < 0 || (size_t)size > sizeof(q))
		return -EOPNOTSUPP; /* request_check() already answered unknown ops */
	memcpy(&q, body, (size_t)size);

	switch (op) {
	case SHMQ_OP_HELLO:
		return on_request_hello(s, &q.hello, ret);
	case SHMQ_OP_CREATE:
	case SHMQ_OP_OPEN:
		return on_request_open(d, s, op, &q.open, ret);
	case SHMQ_OP_CLOSE:
		return on_request_close(d, s, &q.close);
	case SHMQ_OP_UNLINK:
		return on_request_unlink(d, s, &q.name);
	case SHMQ_OP_LIST:
		return on_request_list(d, s, &q.page, ret);
	case SHMQ_OP_STAT:
		return on_request_stat(d, s, &q.name, ret);
	case SHMQ_OP_SESSIONS:
		return on_request_sessions(d, s, &q.page, ret);
	case SHMQ_OP_USAGE:
		return on_request_usage(d, s, &q.page, ret);
	case SHMQ_OP_DISCONNECT:
		return shmqd_session_disconnect(d, s, q.disconnect.session_id);
	case SHMQ_OP_STATUS:
		return on_request_status(d, ret);
	case SHMQ_OP_PURGE:
		return on_request_purge(d, s, &q.name, ret);
	case SHMQ_OP_CONFIG:
		return on_request_config(d, ret, false);
	case SHMQ_OP_CONFIG_TYPED:
		return on_request_config(d, ret, true);
	case SHMQ_OP_ATTACHMENTS:
		return on_request_attachments(d, s, &q.attachments, ret);
	case SHMQ_OP_REATTACH:
		return on_request_reattach(d, s, &q.reattach);
	case SHMQ_OP_SHUTDOWN:
		return on_request_shutdown(d, s, &q.shutdown);
	default:
		return -EOPNOTSUPP;
	}
}
