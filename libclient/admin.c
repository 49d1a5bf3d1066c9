/* SPDX-License-Identifier: MIT */
/*
 * Administration calls: the daemon's registry (STATUS, CONFIG, SESSIONS,
 * LIST, STAT, ATTACHMENTS), PURGE, and read-only views of any object.
 *
 * DESIGN
 *
 * The listing calls page through the daemon's lists.  Each page is copied
 * out of the reply buffer while the client lock is held, and the caller's
 * callback runs after the lock is dropped, so a callback may itself call
 * libshmq (shmqctl opens a view of each object it lists).
 *
 * As everywhere in libclient, the daemon is trusted for what it decides but
 * not for the bytes it sends: every count is checked against the reply's
 * length, and every string is cut at its array's end before the caller
 * sees it.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <shmq/shmq.h>

#include "libclient/object.h"

/* The first version of each struct; a smaller one from a caller is a bug. */
#define STATUS_SIZE_VER0 160
#define INFO_SIZE_VER0	 144
#define INFO_SIZE_VER1	 168 /* 1.1: event_initial .. barrier_parties */
static_assert(sizeof(struct shmq_daemon_status) == STATUS_SIZE_VER0, "append, then add _VER1");
static_assert(sizeof(struct shmq_object_info) == INFO_SIZE_VER1, "append, then add _VER2");
static_assert(sizeof(struct shmq_client_info) == 72, "public ABI changed");
static_assert(sizeof(struct shmq_attach_info) == 72, "public ABI changed");
static_assert(SHMQ_OBJECT_QUEUE == SHMQ_KIND_QUEUE && SHMQ_OBJECT_SEM == SHMQ_KIND_SEM &&
		      SHMQ_OBJECT_EVENT == SHMQ_KIND_EVENT && SHMQ_OBJECT_LOCK == SHMQ_KIND_LOCK &&
		      SHMQ_OBJECT_COND == SHMQ_KIND_COND &&
		      SHMQ_OBJECT_BARRIER == SHMQ_KIND_BARRIER &&
		      SHMQ_OBJECT_PIPE == SHMQ_KIND_PIPE,
	      "public kinds are the layout's");

struct shmq_view {
	struct shmq_object obj;
};

/* Copy @src into a caller's struct of @size bytes, zeroing what this build does not know. */
/* The caller's @size bytes: ours up to there, zeros past what we know. */
static void copy_out(void *dst, uint32_t size, const void *src, size_t known)
{
	size_t n = size < known ? size : known;

	memcpy(dst, src, n);
	memset((unsigned char *)dst + n, 0, size - n);
}

static int check_out_size(uint32_t size, size_t known)
{
	return size < known || size > SHMQ_ATTR_SIZE_MAX ? -EINVAL : 0;
}

static void name_copy(char *dst, size_t dst_size, const char *src, size_t src_size)
{
	size_t n = strnlen(src, src_size);

	if (n >= dst_size)
		n = dst_size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static int name_request(const char *name, struct shmq_req_name *rq)
{
	if (!shmq__name_is_valid(name))
		return -EINVAL;
	memset(rq, 0, sizeof(*rq));
	memcpy(rq->name, name, strlen(name) + 1);
	return 0;
}

/* --- Status and configuration --- */

SHMQ_API int shmq_daemon_status(struct shmq_client *c, struct shmq_daemon_status *ret)
{
	struct shmq_daemon_status st = {.size = sizeof(st)};
	struct shmq_rep_status rp;
	int r;

	if (!c || !ret || check_out_size(ret->size, sizeof(st)) < 0)
		return -EINVAL;
	shmq__client_lock(c);
	r = shmq__client_call(c, SHMQ_OP_STATUS, NULL, 0, &rp, sizeof(rp), NULL);
	shmq__client_unlock(c);
	if (r < 0)
		return r;

	st.size = ret->size;
	st.pid = rp.pid;
	name_copy(st.version, sizeof(st.version), rp.daemon_version, sizeof(rp.daemon_version));
	name_copy(st.socket_path, sizeof(st.socket_path), rp.socket_path, sizeof(rp.socket_path));
	st.n_sessions = rp.n_sessions;
	st.uptime_ns = rp.uptime_ns;
	st.n_objects = rp.n_objects;
	st.max_clients = rp.max_clients;
	st.memory_bytes = rp.memory_bytes;
	copy_out(ret, ret->size, &st, sizeof(st));
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

/* CONFIG or CONFIG_TYPED: each "[T\t]name = value" line to @fn or @typed_fn. */
static int config_call(struct shmq_client *c, shmq_config_fn *fn, shmq_config_typed_fn *typed_fn,
		       void *arg)
{
	const void *body;
	char *text, *line, *next;
	size_t len;
	int r, n = 0;

	shmq__client_lock(c);
	r = shmq__client_call_var(c, typed_fn ? SHMQ_OP_CONFIG_TYPED : SHMQ_OP_CONFIG, NULL, 0, 1,
				  &body, &len);
	text = r == 0 ? malloc(len) : NULL;
	if (text)
		memcpy(text, body, len);
	shmq__client_unlock(c);
	if (r < 0)
		return r;
	if (!text)
		return -ENOMEM;
	if (text[len - 1] != '\0') {
		free(text);
		return -EPROTO;
	}

	for (line = text; *line; line = next) {
		char *eq, *end = strchr(line, '\n');

		next = end ? end + 1 : line + strlen(line);
		if (end)
			*end = '\0';
		int type = SHMQ_CONFIG_STRING;

		if (typed_fn) { /* untrusted: a type we do not know is a string */
			if (line[0] == 'n' && line[1] == '\t')
				type = SHMQ_CONFIG_NUMBER;
			else if (line[0] == 'b' && line[1] == '\t')
				type = SHMQ_CONFIG_BOOL;
			else if (line[0] != 's' || line[1] != '\t') {
				r = -EPROTO;
				break;
			}
			line += 2;
		}
		eq = strchr(line, '=');
		if (!eq) {
			r = -EPROTO;
			break;
		}
		*eq = '\0';
		r = typed_fn ? typed_fn(arg, trim(line), trim(eq + 1), type)
			     : fn(arg, trim(line), trim(eq + 1));
		if (r < 0)
			break;
		n++;
	}
	free(text);
	return r < 0 ? r : n;
}

SHMQ_API int shmq_daemon_config(struct shmq_client *c, shmq_config_fn *fn, void *arg)
{
	if (!c || !fn)
		return -EINVAL;
	return config_call(c, fn, NULL, arg);
}

SHMQ_API int shmq_daemon_config_typed(struct shmq_client *c, shmq_config_typed_fn *fn, void *arg)
{
	if (!c || !fn)
		return -EINVAL;
	return config_call(c, NULL, fn, arg);
}

/* --- Paged listings --- */

/* One page of a paged reply, copied out of the reply buffer. */
struct page {
	uint32_t total;
	uint32_t count;
	unsigned char *items; /* count * item_size bytes */
};

/*
 * Fetch one page: @req is the whole request body, @item_size the size of one
 * reply item, @page_max the most items a reply may carry.
 */
static int page_get(struct shmq_client *c, uint16_t op, const void *req, size_t req_size,
		    size_t item_size, uint32_t page_max, struct page *ret)
{
	const unsigned char *body;
	const void *p;
	uint32_t hdr[2];
	size_t len;
	int r;

	shmq__client_lock(c);
	r = shmq__client_call_var(c, op, req, req_size, sizeof(hdr), &p, &len);
	if (r == 0) {
		body = p;
		memcpy(hdr, body, sizeof(hdr));
		/* count within the page size and exactly what the datagram holds */
		if (hdr[1] > page_max || len != sizeof(hdr) + (size_t)hdr[1] * item_size)
			r = -EPROTO;
	}
	if (r == 0) {
		ret->total = hdr[0];
		ret->count = hdr[1];
		ret->items = malloc(hdr[1] ? hdr[1] * item_size : 1);
		if (ret->items)
			memcpy(ret->items, body + sizeof(hdr), hdr[1] * item_size);
		else
			r = -ENOMEM;
	}
	shmq__client_unlock(c);
	return r;
}

static void object_info_from(struct shmq_object_info *o, const struct shmq_obj_info *w)
{
	memset(o, 0, sizeof(*o));
	o->size = sizeof(*o);
	o->kind = w->kind;
	name_copy(o->name, sizeof(o->name), w->name, sizeof(w->name));
	o->object_id = w->object_id;
	o->memory_size = w->size;
	o->created_realtime_ns = w->created_realtime_ns;
	o->owner_uid = w->owner_uid;
	o->owner_gid = w->owner_gid;
	o->perm = w->mode;
	o->flags = (w->unlinked ? SHMQ_OBJECT_UNLINKED : 0) |
		   ((w->flags & SHMQ_OPEN_HUGEPAGE) ? SHMQ_OBJECT_HUGEPAGES : 0) |
		   ((w->flags & SHMQ_OBJ_QUARANTINED) ? SHMQ_OBJECT_QUARANTINED : 0);
	o->n_attached = w->n_attached;
	o->numa_node = w->numa_node;
	switch (w->kind) { /* each kind's geometry in its public fields */
	case SHMQ_KIND_QUEUE:
		o->n_slots = w->geom.queue.n_slots;
		o->slot_size = w->geom.queue.slot_size;
		o->mode = w->geom.queue.mode;
		o->kind_flags =
			(w->geom.queue.flags & SHMQ_QUEUE_F_JOINABLE) ? SHMQ_QUEUE_JOINABLE : 0;
		break;
	case SHMQ_KIND_SEM:
		o->sem_initial = w->geom.sem.initial;
		o->sem_max = w->geom.sem.max;
		o->sem_flags = w->geom.sem.flags;
		break;
	case SHMQ_KIND_EVENT:
		o->event_initial = w->geom.event.initial;
		break;
	case SHMQ_KIND_LOCK:
		o->lock_flags = w->geom.lock.flags;
		break;
	case SHMQ_KIND_COND:
		o->cond_lock_id = w->geom.cond.lock_id;
		break;
	case SHMQ_KIND_BARRIER:
		o->barrier_parties = w->geom.barrier.parties;
		break;
	case SHMQ_KIND_PIPE:
		o->n_slots = w->geom.pipe.n_slots;
		o->slot_size = w->geom.pipe.slot_size;
		o->kind_flags = w->geom.pipe.flags;
		break;
	}
}

static void client_info_from(struct shmq_client_info *o, const struct shmq_session_info *w)
{
	memset(o, 0, sizeof(*o));
	o->size = sizeof(*o);
	o->pid = w->pid;
	o->session_id = w->session_id;
	o->connected_ns = w->connected_ns;
	o->uid = w->uid;
	o->gid = w->gid;
	o->n_attached = w->n_attached;
	name_copy(o->client_name, sizeof(o->client_name), w->client_name, sizeof(w->client_name));
}

static void attach_info_from(struct shmq_attach_info *o, const struct shmq_attachment_info *w)
{
	memset(o, 0, sizeof(*o));
	o->size = sizeof(*o);
	o->role = ((w->flags & SHMQ_OPEN_SEND) ? SHMQ_ATTACH_SEND : 0) |
		  ((w->flags & SHMQ_OPEN_RECV) ? SHMQ_ATTACH_RECV : 0) |
		  ((w->flags & SHMQ_OPEN_SEM) ? SHMQ_ATTACH_SEM : 0) |
		  ((w->flags & SHMQ_OPEN_USE) ? SHMQ_ATTACH_USE : 0) |
		  ((w->flags & SHMQ_OPEN_VIEW) ? SHMQ_ATTACH_VIEW : 0);
	o->session_id = w->session_id;
	o->attach_id = w->attach_id;
	o->pid = w->pid;
	o->uid = w->uid;
	o->record = w->session_index;
	name_copy(o->client_name, sizeof(o->client_name), w->client_name, sizeof(w->client_name));
}

static void usage_from(struct shmq_uid_usage *o, const struct shmq_usage_info *w)
{
	memset(o, 0, sizeof(*o));
	o->size = sizeof(*o);
	o->uid = w->uid;
	o->n_objects = w->n_objects;
	o->max_objects = w->max_objects;
	o->n_clients = w->n_clients;
	o->max_clients = w->max_clients;
	o->memory = w->memory;
	o->max_memory = w->max_memory;
}

/* Which listing: the op, its request, its item, and how an item reaches the callback. */
enum listing { LIST_OBJECTS, LIST_CLIENTS, LIST_ATTACHMENTS, LIST_USAGE };

struct listing_call {
	enum listing what;
	const char *name; /* LIST_ATTACHMENTS */
	union {
		shmq_object_fn *object;
		shmq_client_fn *client;
		shmq_attach_fn *attach;
		shmq_usage_fn *usage;
	} fn;
	void *arg;
};

static int deliver(const struct listing_call *lc, const unsigned char *item)
{
	switch (lc->what) {
	case LIST_OBJECTS: {
		struct shmq_obj_info w;
		struct shmq_object_info o;

		memcpy(&w, item, sizeof(w));
		object_info_from(&o, &w);
		return lc->fn.object(lc->arg, &o);
	}
	case LIST_CLIENTS: {
		struct shmq_session_info w;
		struct shmq_client_info o;

		memcpy(&w, item, sizeof(w));
		client_info_from(&o, &w);
		return lc->fn.client(lc->arg, &o);
	}
	case LIST_ATTACHMENTS: {
		struct shmq_attachment_info w;
		struct shmq_attach_info o;

		memcpy(&w, item, sizeof(w));
		attach_info_from(&o, &w);
		return lc->fn.attach(lc->arg, &o);
	}
	case LIST_USAGE: {
		struct shmq_usage_info w;
		struct shmq_uid_usage o;

		memcpy(&w, item, sizeof(w));
		usage_from(&o, &w);
		return lc->fn.usage(lc->arg, &o);
	}
	}
	return -EINVAL;
}

static int listing(struct shmq_client *c, const struct listing_call *lc)
{
	uint32_t offset = 0;
	int n = 0;

	for (;;) {
		union {
			struct shmq_req_page page;
			struct shmq_req_attachments att;
		} rq;
		struct page pg = {.items = NULL};
		size_t rq_size, item_size;
		uint32_t page_max;
		uint16_t op;
		int r = 0;

		memset(&rq, 0, sizeof(rq));
		switch (lc->what) {
		case LIST_OBJECTS:
			op = SHMQ_OP_LIST;
			rq.page.offset = offset;
			rq_size = sizeof(rq.page);
			item_size = sizeof(struct shmq_obj_info);
			page_max = SHMQ_LIST_PAGE;
			break;
		case LIST_CLIENTS:
			op = SHMQ_OP_SESSIONS;
			rq.page.offset = offset;
			rq_size = sizeof(rq.page);
			item_size = sizeof(struct shmq_session_info);
			page_max = SHMQ_SESSIONS_PAGE;
			break;
		case LIST_USAGE:
			op = SHMQ_OP_USAGE;
			rq.page.offset = offset;
			rq_size = sizeof(rq.page);
			item_size = sizeof(struct shmq_usage_info);
			page_max = SHMQ_USAGE_PAGE;
			break;
		default:
			op = SHMQ_OP_ATTACHMENTS;
			memcpy(rq.att.name, lc->name, strlen(lc->name) + 1);
			rq.att.offset = offset;
			rq_size = sizeof(rq.att);
			item_size = sizeof(struct shmq_attachment_info);
			page_max = SHMQ_ATTACHMENTS_PAGE;
			break;
		}

		r = page_get(c, op, &rq, rq_size, item_size, page_max, &pg);
		if (r < 0)
			return r;
		for (uint32_t i = 0; i < pg.count && r >= 0; i++)
			r = deliver(lc, pg.items + (size_t)i * item_size);
		free(pg.items);
		if (r < 0)
			return r;
		/* n stays an int: page counts are bounded by the daemon's limits */
		n += (int)pg.count;
		offset += pg.count;
		if (pg.count == 0 || offset >= pg.total)
			return n;
	}
}

SHMQ_API int shmq_daemon_clients(struct shmq_client *c, shmq_client_fn *fn, void *arg)
{
	struct listing_call lc = {.what = LIST_CLIENTS, .fn.client = fn, .arg = arg};

	if (!c || !fn)
		return -EINVAL;
	return listing(c, &lc);
}

SHMQ_API int shmq_daemon_usage(struct shmq_client *c, shmq_usage_fn *fn, void *arg)
{
	struct listing_call lc = {.what = LIST_USAGE, .fn.usage = fn, .arg = arg};

	if (!c || !fn)
		return -EINVAL;
	return listing(c, &lc);
}

SHMQ_API int shmq_object_list(struct shmq_client *c, shmq_object_fn *fn, void *arg)
{
	struct listing_call lc = {.what = LIST_OBJECTS, .fn.object = fn, .arg = arg};

	if (!c || !fn)
		return -EINVAL;
	return listing(c, &lc);
}

SHMQ_API int shmq_object_attachments(struct shmq_client *c, const char *name, shmq_attach_fn *fn,
				     void *arg)
{
	struct listing_call lc = {
		.what = LIST_ATTACHMENTS, .name = name, .fn.attach = fn, .arg = arg};

	if (!c || !fn || !shmq__name_is_valid(name))
		return -EINVAL;
	return listing(c, &lc);
}

/* --- One object --- */

SHMQ_API int shmq_object_stat(struct shmq_client *c, const char *name, struct shmq_object_info *ret)
{
	struct shmq_object_info o;
	struct shmq_req_name rq;
	struct shmq_obj_info w;
	int r;

	/* A caller built before 1.1 passes the shorter struct: fill what it has. */
	if (!c || !ret || check_out_size(ret->size, INFO_SIZE_VER0) < 0 ||
	    name_request(name, &rq) < 0)
		return -EINVAL;
	shmq__client_lock(c);
	r = shmq__client_call(c, SHMQ_OP_STAT, &rq, sizeof(rq), &w, sizeof(w), NULL);
	shmq__client_unlock(c);
	if (r < 0)
		return r;
	object_info_from(&o, &w);
	o.size = ret->size;
	copy_out(ret, ret->size, &o, sizeof(o));
	return 0;
}

SHMQ_API int shmq_queue_purge(struct shmq_client *c, const char *name)
{
	struct shmq_req_name rq;
	struct shmq_rep_purge rp;
	int r;

	if (!c || name_request(name, &rq) < 0)
		return -EINVAL;
	shmq__client_lock(c);
	r = shmq__client_call(c, SHMQ_OP_PURGE, &rq, sizeof(rq), &rp, sizeof(rp), NULL);
	shmq__client_unlock(c);
	if (r < 0)
		return r;
	/* At most one lap of a ring of at most SHMQ_SLOTS_MAX slots. */
	return rp.dropped > SHMQ_SLOTS_MAX ? -EPROTO : (int)rp.dropped;
}

SHMQ_API int shmq_queue_shutdown_name(struct shmq_client *c, const char *name, unsigned int flags)
{
	struct shmq_req_shutdown rq = {0};
	struct shmq_req_name nm;
	int r;

	static_assert(SHMQ_SHUTDOWN_IMMEDIATE == SHMQ_SHUTDOWN_F_IMMEDIATE,
		      "the public flag is the protocol's");
	if (!c || name_request(name, &nm) < 0 || (flags & ~SHMQ_SHUTDOWN_IMMEDIATE))
		return -EINVAL;
	memcpy(rq.name, nm.name, sizeof(rq.name));
	rq.flags = flags;
	shmq__client_lock(c);
	r = shmq__client_call(c, SHMQ_OP_SHUTDOWN, &rq, sizeof(rq), NULL, 0, NULL);
	shmq__client_unlock(c);
	return r < 0 ? r : 0;
}

SHMQ_API int shmq_daemon_disconnect(struct shmq_client *c, uint64_t session_id)
{
	struct shmq_req_disconnect rq = {.session_id = session_id};
	int r;

	if (!c || !session_id)
		return -EINVAL;
	shmq__client_lock(c);
	r = shmq__client_call(c, SHMQ_OP_DISCONNECT, &rq, sizeof(rq), NULL, 0, NULL);
	shmq__client_unlock(c);
	return r < 0 ? r : 0;
}

/* --- Views --- */

static int view_open_kind(struct shmq_client *c, const char *name, uint16_t kind,
			  struct shmq_object *ret)
{
	struct shmq_req_open req = {.flags = SHMQ_OPEN_VIEW, .kind = kind};

	/* An open without create carries no geometry: the daemon reads none. */
	memcpy(req.name, name, strlen(name) + 1);
	return shmq__object_open(c, SHMQ_OP_OPEN, &req, ret);
}

SHMQ_API int shmq_view_open(struct shmq_client *c, const char *name, struct shmq_view **ret)
{
	struct shmq_view *v;
	int r;

	if (!c || !ret || !shmq__name_is_valid(name))
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	/*
	 * Whatever kind the name is.  A 1.0 daemon wants the kind named: the
	 * name was valid, so there -EINVAL means "another kind", and each
	 * kind is asked in turn.
	 */
	r = view_open_kind(c, name, SHMQ_KIND_ANY, &v->obj);
	for (uint16_t k = 1; k < SHMQ_KIND_LIMIT && r == -EINVAL; k++)
		if (shmq__kind(k))
			r = view_open_kind(c, name, k, &v->obj);
	if (r < 0) {
		free(v);
		return r;
	}
	*ret = v;
	return 0;
}

SHMQ_API int shmq_view_memory(const struct shmq_view *v, const void **ret_base, size_t *ret_size)
{
	if (!v || !ret_base || !ret_size)
		return -EINVAL;
	*ret_base = v->obj.seg.base;
	*ret_size = (size_t)v->obj.seg.size; /* checked to fit size_t at open */
	return 0;
}

SHMQ_API int shmq_view_close(struct shmq_view *v)
{
	if (!v)
		return 0;
	shmq__object_close(&v->obj);
	free(v);
	return 0;
}
