/* SPDX-License-Identifier: MIT */
/*
 * shmqctl verbs.  Each one connects, asks the daemon (libshmq's
 * administration calls), reads live figures from read-only snapshots
 * (snapshot.c), and prints a table or a JSON document.  Each returns its
 * exit status: 0, 1 (EXIT_FAILURE) or EXIT_USAGE.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "shm/layout.h"
#include "shm/kind.h"
#include "tools/shmqctl/shmqctl.h"

/* --- Helpers --- */

static int objects_add(void *arg, const struct shmq_object_info *o)
{
	struct objects *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		void *p = realloc(l->v, cap * sizeof(*l->v));

		if (!p)
			return -ENOMEM;
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n++] = *o;
	return 0;
}

int objects_get(struct shmq_client *c, const char *name, struct objects *ret)
{
	int r;

	memset(ret, 0, sizeof(*ret));
	if (name) {
		struct shmq_object_info o = {.size = sizeof(o)};

		r = shmq_object_stat(c, name, &o);
		if (r == 0)
			r = objects_add(ret, &o);
		if (r < 0)
			return ctl_error(r, "'%s'", name);
		return 0;
	}
	r = shmq_object_list(c, objects_add, ret);
	if (r < 0) {
		free(ret->v);
		ret->v = NULL;
		return ctl_error(r, "listing objects");
	}
	return 0;
}

/* Why an object's live figures cannot be shown. */
static const char *view_error_text(int r)
{
	if (r == -ESTALE) /* snapshot_take(): the name leads to another object now */
		return "unlinked, and its name now belongs to another object";
	return shmq_strerror(r);
}

/* --- What each kind shows --- */

/*
 * The figures ls, top, show and --json give of an object, by kind: the one
 * place in shmqctl that tells kinds apart, beside snapshot.c's readers.  A
 * figure a kind does not have is "-" in a table and null in JSON, so every
 * JSON object has every key (shmqctl(1), JSON OUTPUT).
 */
struct figures {
	const char *type;  /* the TYPE column */
	bool has_capacity; /* capacity: slots, a bounded semaphore's maximum */
	uint64_t capacity;
	bool has_slot_size;	/* a queue's slot size */
	bool has_depth;		/* live: depth, high_water and tombstones (queues) */
	bool has_value;		/* live: value (a semaphore's count, an event's flag) */
	bool has_waiters;	/* live: a count of waiters */
	bool has_sleepers_recv; /* live: receivers (or waiters) flagged asleep */
	bool has_sleepers_send; /* live: senders flagged asleep */
	bool has_holder;	/* live: a lock's holder */
	bool has_pending;	/* live: a condition's notifications not yet taken */
	bool has_broken;	/* live: a barrier's broken state and generation */
	bool has_ends;		/* live: a pipe's ends and directions */
};

struct kind_view {
	void (*figures)(const struct shmq_object_info *o, struct figures *ret);
	/* show's lines about the kind: its geometry, and (@live) its words */
	void (*show_geometry)(const struct shmq_object_info *o, const struct figures *f);
	void (*show_live)(const struct snapshot *s);
	/* The SLEEP column. */
	void (*sleepers)(const struct snapshot *s, char *buf, size_t size);
};

static void fmt_u64(char *buf, size_t size, uint64_t v)
{
	snprintf(buf, size, "%" PRIu64, v);
}

static void queue_figures(const struct shmq_object_info *o, struct figures *f)
{
	*f = (struct figures){.type = queue_mode_name(o->mode),
			      .has_capacity = true,
			      .capacity = o->n_slots,
			      .has_slot_size = true,
			      .has_depth = true,
			      .has_sleepers_recv = true,
			      .has_sleepers_send = true};
}

static void queue_show_geometry(const struct shmq_object_info *o, const struct figures *f)
{
	printf("  geometry:    %s, %" PRIu32 " slots of %" PRIu32 " bytes\n", f->type, o->n_slots,
	       o->slot_size);
}

static void queue_show_live(const struct snapshot *s)
{
	printf("  depth:       %" PRIu32 " of %" PRIu32 " (high-water mark %" PRIu32 ")\n",
	       s->depth, s->capacity, s->high_water);
	printf("  sleepers:    receivers %s, senders %s\n", s->sleepers_recv ? "yes" : "no",
	       s->sleepers_send ? "yes" : "no");
	printf("  repairs:     %" PRIu32 " slots, %" PRIu64 " tombstones skipped\n", s->repairs,
	       s->tombstones);
	if (s->joinable)
		printf("  unfinished:  %" PRIu32 " tasks sent and not yet done (joinable)\n",
		       s->unfinished);
	if (s->max_msg)
		printf("  large:       messages up to %" PRIu32 " bytes; arena %" PRIu32
		       " KiB, %" PRIu64 " in use\n",
		       s->max_msg, s->arena_size / 1024, s->arena_used);
	if (s->shutdown)
		printf("  shut down:   %s\n",
		       s->shutdown == SHMQ_QUEUE_SHUTDOWN_IMMEDIATE
			       ? "immediately (receivers get nothing more)"
			       : "sends fail; receivers drain what is queued");
}

/* A queue's shutdown state for JSON: "open", "draining" or "immediate". */
static const char *shutdown_name(uint32_t v)
{
	return !v ? "open" : v == SHMQ_QUEUE_SHUTDOWN_IMMEDIATE ? "immediate" : "draining";
}

static void queue_sleepers(const struct snapshot *s, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s", s->sleepers_recv ? "r" : "",
		 s->sleepers_send   ? "s"
		 : s->sleepers_recv ? ""
				    : "-");
}

static void sem_figures(const struct shmq_object_info *o, struct figures *f)
{
	static const char *const types[] = {"plain", "bounded", "undo", "bounded+undo"};
	bool bounded = o->sem_flags & SHMQ_SEM_ATTR_BOUNDED;

	*f = (struct figures){
		.type = types[o->sem_flags & (SHMQ_SEM_ATTR_BOUNDED | SHMQ_SEM_ATTR_UNDO)],
		.has_capacity = bounded,
		.capacity = o->sem_max,
		.has_value = true,
		.has_waiters = true};
}

static void sem_show_geometry(const struct shmq_object_info *o, const struct figures *f)
{
	if (o->sem_flags & SHMQ_SEM_ATTR_BOUNDED)
		printf("  semaphore:   %s, initial %" PRIu32 ", at most %" PRIu32 "\n", f->type,
		       o->sem_initial, o->sem_max);
	else
		printf("  semaphore:   %s, initial %" PRIu32 "\n", f->type, o->sem_initial);
}

static void sem_show_live(const struct snapshot *s)
{
	printf("  value:       %" PRIu32 ", %" PRIu32 " waiting\n", s->value, s->waiters);
	printf("  repairs:     %" PRIu32 " dead holders' tokens posted back\n", s->repairs);
}

static void sem_sleepers(const struct snapshot *s, char *buf, size_t size)
{
	fmt_u64(buf, size, s->waiters);
}

static void event_figures(const struct shmq_object_info *o, struct figures *f)
{
	*f = (struct figures){.type = o->event_initial ? "initially-set" : "initially-clear",
			      .has_value = true,
			      .has_sleepers_recv = true};
}

static void event_show_geometry(const struct shmq_object_info *o, const struct figures *f)
{
	(void)f;
	printf("  event:       created %s\n", o->event_initial ? "set" : "clear");
}

static void event_show_live(const struct snapshot *s)
{
	printf("  state:       %s; sleepers %s\n", s->value ? "set" : "clear",
	       s->sleepers_recv ? "yes" : "no");
}

static void event_sleepers(const struct snapshot *s, char *buf, size_t size)
{
	snprintf(buf, size, "%s", s->sleepers_recv ? "w" : "-");
}

static void lock_figures(const struct shmq_object_info *o, struct figures *f)
{
	*f = (struct figures){.type = o->lock_flags & SHMQ_LOCK_ATTR_RECURSIVE ? "recursive"
									       : "plain",
			      .has_value = true,
			      .has_waiters = true,
			      .has_holder = true};
}

static void lock_show_geometry(const struct shmq_object_info *o, const struct figures *f)
{
	(void)o;
	printf("  lock:        %s\n", f->type);
}

static void lock_show_live(const struct snapshot *s)
{
	if (s->value)
		printf("  holder:      pid %" PRId32 " thread %" PRId32 ", %" PRIu32
		       " acquisition(s); %" PRIu32 " waiting\n",
		       s->holder_pid, s->holder_tid, s->holder_depth, s->waiters);
	else
		printf("  holder:      none; %" PRIu32 " waiting\n", s->waiters);
	printf("  recoveries:  %" PRIu32 " taken back from dead holders%s\n", s->repairs,
	       s->owner_died ? "; owner died, not yet declared consistent" : "");
}

static void cond_figures(const struct shmq_object_info *o, struct figures *f)
{
	(void)o;
	*f = (struct figures){.type = "bound", .has_waiters = true, .has_pending = true};
}

static void cond_show_geometry(const struct shmq_object_info *o, const struct figures *f)
{
	(void)f;
	printf("  condition:   bound to lock id %" PRIu64 "\n", o->cond_lock_id);
}

static void cond_show_live(const struct snapshot *s)
{
	printf("  waiters:     %" PRIu32 " waiting, %" PRIu32 " notified not yet awake\n",
	       s->waiters, s->pending);
	printf("  deaths:      %" PRIu32 " waiters died waiting (uncounted)\n", s->repairs);
}

static void barrier_figures(const struct shmq_object_info *o, struct figures *f)
{
	*f = (struct figures){.type = "parties",
			      .has_capacity = true,
			      .capacity = o->barrier_parties,
			      .has_waiters = true,
			      .has_broken = true};
}

static void barrier_show_geometry(const struct shmq_object_info *o, const struct figures *f)
{
	(void)f;
	printf("  barrier:     %" PRIu32 " parties\n", o->barrier_parties);
}

static void barrier_show_live(const struct snapshot *s)
{
	if (s->broken)
		printf("  state:       broken (waits fail until a reset); generation %" PRIu32 "\n",
		       s->generation);
	else
		printf("  state:       %" PRIu32 " arrived; generation %" PRIu32 "\n", s->waiters,
		       s->generation);
	printf("  breaks:      %" PRIu32 " by a party's death\n", s->repairs);
}

static void barrier_sleepers(const struct snapshot *s, char *buf, size_t size)
{
	if (s->broken)
		snprintf(buf, size, "broken");
	else
		fmt_u64(buf, size, s->waiters);
}

static void pipe_figures(const struct shmq_object_info *o, struct figures *f)
{
	*f = (struct figures){.type = o->kind_flags & SHMQ_PIPE_ATTR_ONEWAY ? "one-way" : "duplex",
			      .has_capacity = true,
			      .capacity = o->n_slots,
			      .has_slot_size = true,
			      .has_depth = true,
			      .has_sleepers_recv = true,
			      .has_sleepers_send = true,
			      .has_ends = true};
}

static void pipe_show_geometry(const struct shmq_object_info *o, const struct figures *f)
{
	printf("  geometry:    %s, %" PRIu32 " slots of %" PRIu32 " bytes each way\n", f->type,
	       o->n_slots, o->slot_size);
}

static void pipe_show_live(const struct snapshot *s)
{
	for (int e = 0; e < 2; e++)
		printf("  end %d:       %s; %" PRIu32 " of %" PRIu32
		       " messages on their way to it\n",
		       e, s->end_closed[e] ? "closed" : "open", s->pipe_depth[e], s->capacity);
	printf("  sleepers:    receivers %s, senders %s\n", s->sleepers_recv ? "yes" : "no",
	       s->sleepers_send ? "yes" : "no");
}

static const struct kind_view views[SHMQ_KIND_LIMIT] = {
	[SHMQ_OBJECT_QUEUE] = {queue_figures, queue_show_geometry, queue_show_live, queue_sleepers},
	[SHMQ_OBJECT_SEM] = {sem_figures, sem_show_geometry, sem_show_live, sem_sleepers},
	[SHMQ_OBJECT_EVENT] = {event_figures, event_show_geometry, event_show_live, event_sleepers},
	[SHMQ_OBJECT_LOCK] = {lock_figures, lock_show_geometry, lock_show_live, sem_sleepers},
	[SHMQ_OBJECT_COND] = {cond_figures, cond_show_geometry, cond_show_live, sem_sleepers},
	[SHMQ_OBJECT_BARRIER] = {barrier_figures, barrier_show_geometry, barrier_show_live,
				 barrier_sleepers},
	[SHMQ_OBJECT_PIPE] = {pipe_figures, pipe_show_geometry, pipe_show_live, queue_sleepers},
};

/* The view of @kind; a kind this shmqctl does not know shows as one with no figures. */
static const struct kind_view *view_of(uint32_t kind)
{
	static const struct kind_view none;

	return kind < SHMQ_KIND_LIMIT && views[kind].figures ? &views[kind] : &none;
}

static void figures_of(const struct shmq_object_info *o, struct figures *ret)
{
	const struct kind_view *v = view_of(o->kind);

	*ret = (struct figures){.type = "?"};
	if (v->figures)
		v->figures(o, ret);
}

static void counters_json(struct json *j, const char *key, const struct shmq_counter_totals *c)
{
	json_key(j, key);
	if (!c) {
		json_null(j);
		return;
	}
	json_begin_object(j);
	json_kv_u64(j, "sent", c->sent);
	json_kv_u64(j, "received", c->received);
	json_kv_u64(j, "full", c->full);
	json_kv_u64(j, "empty", c->empty);
	json_kv_u64(j, "sleeps", c->sleeps);
	json_kv_u64(j, "wakes", c->wakes);
	json_end_object(j);
}

static void kv_u64_or_null(struct json *j, const char *key, bool have, uint64_t v)
{
	if (have)
		json_kv_u64(j, key, v);
	else
		json_kv_null(j, key);
}

static void kv_bool_or_null(struct json *j, const char *key, bool have, bool v)
{
	if (have)
		json_kv_bool(j, key, v);
	else
		json_kv_null(j, key);
}

/* The fields of one object, shared by ls, show and create (shmqctl(1), JSON OUTPUT). */
/* {"pid": N, "realtime_ns": T} for a last sender or receiver, null for none (or no view). */
static void last_use_json(struct json *j, const char *key, bool live, int32_t pid, uint64_t ns)
{
	if (!live || pid <= 0) {
		json_kv_null(j, key);
		return;
	}
	json_key(j, key);
	json_begin_object(j);
	json_kv_i64(j, "pid", pid);
	json_kv_u64(j, "realtime_ns", ns);
	json_end_object(j);
}

/* "pid 123 at 2026-12-04 22:10:01 +0000", or "none yet". */
static void fmt_last_use(char *buf, size_t size, int32_t pid, uint64_t ns)
{
	time_t t = (time_t)(ns / 1000000000);
	char when[48];
	struct tm tm;

	if (pid <= 0) {
		snprintf(buf, size, "none yet");
		return;
	}
	if (localtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %z", &tm);
	else
		snprintf(when, sizeof(when), "?");
	snprintf(buf, size, "pid %" PRId32 " at %s", pid, when);
}

static void object_json(struct json *j, const struct shmq_object_info *o, const struct snapshot *s)
{
	bool live = !s->view_error;
	struct figures f;
	char buf[256];

	figures_of(o, &f);
	json_kv_string(j, "name", o->name);
	json_kv_u64(j, "id", o->object_id);
	json_kv_string(j, "kind", kind_name(o->kind));
	json_kv_string(j, "type", f.type);
	json_kv_u64(j, "owner_uid", o->owner_uid);
	json_kv_string(j, "owner", user_name(o->owner_uid, buf, sizeof(buf)) ? buf : NULL);
	json_kv_u64(j, "owner_gid", o->owner_gid);
	json_kv_string(j, "group", group_name(o->owner_gid, buf, sizeof(buf)) ? buf : NULL);
	snprintf(buf, sizeof(buf), "%04" PRIo32, o->perm);
	json_kv_string(j, "perm", buf);
	json_kv_bool(j, "unlinked", o->flags & SHMQ_OBJECT_UNLINKED);
	json_kv_bool(j, "hugepages", o->flags & SHMQ_OBJECT_HUGEPAGES);
	json_kv_bool(j, "quarantined", o->flags & SHMQ_OBJECT_QUARANTINED);
	if (o->numa_node >= 0)
		json_kv_i64(j, "numa_node", o->numa_node);
	else
		json_kv_null(j, "numa_node");
	json_kv_u64(j, "memory_bytes", o->memory_size);
	json_kv_u64(j, "created_realtime_ns", o->created_realtime_ns);
	json_kv_u64(j, "attached", o->n_attached);
	kv_u64_or_null(j, "capacity", f.has_capacity, f.capacity);
	kv_u64_or_null(j, "slot_size", f.has_slot_size, o->slot_size);
	kv_u64_or_null(j, "sem_initial", o->kind == SHMQ_OBJECT_SEM, o->sem_initial);
	kv_bool_or_null(j, "event_initial", o->kind == SHMQ_OBJECT_EVENT, o->event_initial);
	kv_bool_or_null(j, "recursive", o->kind == SHMQ_OBJECT_LOCK,
			o->lock_flags & SHMQ_LOCK_ATTR_RECURSIVE);
	kv_u64_or_null(j, "lock_id", o->kind == SHMQ_OBJECT_COND, o->cond_lock_id);
	kv_u64_or_null(j, "parties", o->kind == SHMQ_OBJECT_BARRIER, o->barrier_parties);

	json_kv_bool(j, "viewable", live);
	json_kv_string(j, "view_error", live ? NULL : view_error_text(s->view_error));
	kv_u64_or_null(j, "depth", live && f.has_depth, s->depth);
	kv_u64_or_null(j, "high_water", live && f.has_depth, s->high_water);
	kv_u64_or_null(j, "value", live && f.has_value, s->value);
	kv_u64_or_null(j, "waiters", live && f.has_waiters, s->waiters);
	kv_bool_or_null(j, "sleepers_recv", live && f.has_sleepers_recv, s->sleepers_recv);
	kv_bool_or_null(j, "sleepers_send", live && f.has_sleepers_send, s->sleepers_send);
	kv_u64_or_null(j, "producers", live, s->producers);
	kv_u64_or_null(j, "consumers", live, s->consumers);
	kv_u64_or_null(j, "dead_records", live, s->dead);
	kv_u64_or_null(j, "repairs", live, s->repairs);
	kv_u64_or_null(j, "tombstones", live && f.has_depth, s->tombstones);
	json_kv_string(j, "shutdown",
		       live && f.has_depth && !f.has_ends ? shutdown_name(s->shutdown) : NULL);
	kv_bool_or_null(j, "end0_closed", live && f.has_ends, s->end_closed[0]);
	kv_bool_or_null(j, "end1_closed", live && f.has_ends, s->end_closed[1]);
	kv_u64_or_null(j, "depth_to_end0", live && f.has_ends, s->pipe_depth[0]);
	kv_u64_or_null(j, "depth_to_end1", live && f.has_ends, s->pipe_depth[1]);
	kv_bool_or_null(j, "oneway", o->kind == SHMQ_OBJECT_PIPE,
			o->kind_flags & SHMQ_PIPE_ATTR_ONEWAY);
	kv_bool_or_null(j, "joinable", o->kind == SHMQ_OBJECT_QUEUE,
			o->kind_flags & SHMQ_QUEUE_JOINABLE);
	kv_u64_or_null(j, "unfinished", live && s->joinable, s->unfinished);
	kv_u64_or_null(j, "max_msg", live && f.has_depth && !f.has_ends,
		       s->max_msg ? s->max_msg : s->slot_size);
	kv_u64_or_null(j, "arena_bytes", live && s->max_msg, s->arena_size);
	kv_u64_or_null(j, "arena_used", live && s->max_msg, s->arena_used);
	kv_u64_or_null(j, "holder_pid", live && f.has_holder && s->value, (uint64_t)s->holder_pid);
	kv_u64_or_null(j, "holder_tid", live && f.has_holder && s->value, (uint64_t)s->holder_tid);
	kv_u64_or_null(j, "holder_depth", live && f.has_holder && s->value, s->holder_depth);
	kv_bool_or_null(j, "owner_died", live && f.has_holder, s->owner_died);
	kv_u64_or_null(j, "pending", live && f.has_pending, s->pending);
	kv_bool_or_null(j, "broken", live && f.has_broken, s->broken);
	kv_u64_or_null(j, "generation", live && f.has_broken, s->generation);
	last_use_json(j, "last_send", live, s->last_send_pid, s->last_send_realtime_ns);
	last_use_json(j, "last_recv", live, s->last_recv_pid, s->last_recv_realtime_ns);
	counters_json(j, "counters", live ? &s->total : NULL);
}

static const char *sleepers(const struct snapshot *s, char *buf, size_t size)
{
	const struct kind_view *v = view_of(s->kind);

	if (v->sleepers)
		v->sleepers(s, buf, size);
	else
		snprintf(buf, size, "?");
	return buf;
}

/* --- status, config --- */

struct config_out {
	struct json *j;	 /* JSON: an object of strings */
	const char *pfx; /* text: line prefix */
	FILE *f;
};

static int on_config(void *arg, const char *name, const char *value)
{
	struct config_out *o = arg;

	if (o->j)
		json_kv_string(o->j, name, value);
	else
		fprintf(o->f, "%s%s = %s\n", o->pfx, name, value);
	return 0;
}

/* JSON with each value as its type: numbers (sizes in bytes), booleans, strings. */
static int on_config_typed(void *arg, const char *name, const char *value, int type)
{
	struct config_out *o = arg;
	char *end;
	unsigned long long v;

	if (type == SHMQ_CONFIG_BOOL) {
		json_kv_bool(o->j, name, !strcmp(value, "yes"));
		return 0;
	}
	errno = 0;
	v = type == SHMQ_CONFIG_NUMBER ? strtoull(value, &end, 10) : 0;
	if (type == SHMQ_CONFIG_NUMBER && !errno && *value && !*end)
		json_kv_u64(o->j, name, v);
	else
		json_kv_string(o->j, name, value); /* a string, or a number that is not one */
	return 0;
}

/* The configuration as one JSON object's members: typed, or strings from an older daemon. */
static int config_json(struct shmq_client *c, struct config_out *co)
{
	int r = shmq_daemon_config_typed(c, on_config_typed, co);

	return r == -EOPNOTSUPP ? shmq_daemon_config(c, on_config, co) : r;
}

int verb_status(struct ctl *ctl)
{
	struct shmq_daemon_status st = {.size = sizeof(st)};
	struct shmq_client *c;
	struct json j;
	char up[64], mem[64];
	int r;

	if (ctl_connect(ctl, &c) < 0)
		return EXIT_FAILURE;
	r = shmq_daemon_status(c, &st);
	if (r < 0) {
		ctl_error(r, "daemon status");
		goto out;
	}
	fmt_duration(up, sizeof(up), st.uptime_ns);
	fmt_bytes(mem, sizeof(mem), st.memory_bytes);
	if (ctl->json) {
		struct config_out co = {.j = &j};

		json_init(&j, stdout, false);
		json_begin_object(&j);
		json_kv_string(&j, "version", st.version);
		json_kv_string(&j, "library_version", shmq_version());
		json_kv_i64(&j, "pid", st.pid);
		json_kv_u64(&j, "uptime_ns", st.uptime_ns);
		json_kv_string(&j, "socket", st.socket_path);
		json_kv_u64(&j, "clients", st.n_sessions);
		json_kv_u64(&j, "max_clients", st.max_clients);
		json_kv_u64(&j, "objects", st.n_objects);
		json_kv_u64(&j, "memory_bytes", st.memory_bytes);
		json_key(&j, "config");
		json_begin_object(&j);
		r = config_json(c, &co);
		json_end_object(&j);
		json_end_object(&j);
		json_finish(&j);
	} else {
		struct config_out co = {.pfx = "  ", .f = stdout};

		printf("shmqd %s, pid %" PRId32 ", up %s\n", st.version, st.pid, up);
		printf("socket:   %s\n", st.socket_path);
		printf("clients:  %" PRIu32 " (at most %" PRIu32 ")\n", st.n_sessions,
		       st.max_clients);
		printf("objects:  %" PRIu32 "\n", st.n_objects);
		printf("memory:   %s (%" PRIu64 " bytes)\n", mem, st.memory_bytes);
		printf("config:\n");
		r = shmq_daemon_config(c, on_config, &co);
	}
	if (r < 0)
		ctl_error(r, "daemon configuration");
out:
	shmq_client_close(c);
	return r < 0 ? EXIT_FAILURE : 0;
}

int verb_config(struct ctl *ctl)
{
	struct config_out co = {.f = stdout, .pfx = ""};
	struct shmq_client *c;
	struct json j;
	int r;

	if (ctl_connect(ctl, &c) < 0)
		return EXIT_FAILURE;
	if (ctl->json) {
		json_init(&j, stdout, false);
		co.j = &j;
		json_begin_object(&j);
	}
	r = ctl->json ? config_json(c, &co) : shmq_daemon_config(c, on_config, &co);
	if (ctl->json) {
		json_end_object(&j);
		json_finish(&j);
	}
	if (r < 0)
		ctl_error(r, "daemon configuration");
	shmq_client_close(c);
	return r < 0 ? EXIT_FAILURE : 0;
}

/* --- ls --- */

static const char *const ls_headers[] = {"NAME",  "KIND", "TYPE", "OWNER", "PERM",  "CAP", "SLOT",
					 "DEPTH", "HWM",  "PROD", "CONS",  "SLEEP", "NUMA"};
/* right-aligned: CAP SLOT DEPTH HWM PROD CONS NUMA */
#define LS_RIGHT \
	((1u << 5) | (1u << 6) | (1u << 7) | (1u << 8) | (1u << 9) | (1u << 10) | (1u << 12))

static int ls_row(struct table *t, const struct shmq_object_info *o, const struct snapshot *s)
{
	char owner[64], perm[8], cap[16] = "-", slot[16] = "-", depth[16] = "?", hwm[16] = "?";
	char prod[16] = "?", cons[16] = "?", sleep[16] = "?", numa[16] = "-", type[80];
	bool live = !s->view_error;
	struct figures f;

	figures_of(o, &f);
	fmt_user(owner, sizeof(owner), o->owner_uid);
	snprintf(perm, sizeof(perm), "%04" PRIo32, o->perm);
	if (f.has_capacity)
		fmt_u64(cap, sizeof(cap), f.capacity);
	if (f.has_slot_size)
		fmt_u64(slot, sizeof(slot), o->slot_size);
	if (live) {
		/* DEPTH: what the object holds, messages or a value */
		if (f.has_depth || f.has_value)
			fmt_u64(depth, sizeof(depth), f.has_depth ? s->depth : s->value);
		else
			snprintf(depth, sizeof(depth), "-");
		if (f.has_depth)
			fmt_u64(hwm, sizeof(hwm), s->high_water);
		else
			snprintf(hwm, sizeof(hwm), "-");
		fmt_u64(prod, sizeof(prod), s->producers);
		fmt_u64(cons, sizeof(cons), s->consumers);
		sleepers(s, sleep, sizeof(sleep));
	}
	if (o->numa_node >= 0)
		snprintf(numa, sizeof(numa), "%" PRId32, o->numa_node);
	/* Quarantine is rare and needs attention: it rides on TYPE, the columns stay. */
	snprintf(type, sizeof(type), "%s%s%s%s%s%s%s", f.type,
		 o->kind == SHMQ_OBJECT_QUEUE && (o->kind_flags & SHMQ_QUEUE_JOINABLE) ? ",joinable"
										       : "",
		 !s->view_error && s->shutdown ? ",shutdown" : "",
		 !s->view_error && s->end_closed[0] ? ",end0-closed" : "",
		 !s->view_error && s->end_closed[1] ? ",end1-closed" : "",
		 (o->flags & SHMQ_OBJECT_UNLINKED) ? ",unlinked" : "",
		 (o->flags & SHMQ_OBJECT_QUARANTINED) ? ",quarantined" : "");
	return table_add(t, o->name, kind_name(o->kind), type, owner, perm, cap, slot, depth, hwm,
			 prod, cons, sleep, numa);
}

int verb_ls(struct ctl *ctl)
{
	struct shmq_client *c;
	struct objects l;
	struct table t;
	struct json j;
	int r = 0;

	if (ctl_connect(ctl, &c) < 0)
		return EXIT_FAILURE;
	if (objects_get(c, NULL, &l) < 0) {
		shmq_client_close(c);
		return EXIT_FAILURE;
	}
	table_init(&t, 13, ls_headers, LS_RIGHT);
	if (ctl->json) {
		json_init(&j, stdout, false);
		json_begin_object(&j);
		json_key(&j, "objects");
		json_begin_array(&j);
	}
	for (size_t i = 0; i < l.n && r == 0; i++) {
		struct snapshot s;

		r = snapshot_take(c, l.v[i].name, l.v[i].object_id, 0, &s);
		if (r < 0)
			break;
		if (ctl->json) {
			json_begin_object(&j);
			object_json(&j, &l.v[i], &s);
			json_end_object(&j);
		} else {
			r = ls_row(&t, &l.v[i], &s);
		}
		snapshot_fini(&s);
	}
	if (ctl->json) {
		json_end_array(&j);
		json_end_object(&j);
		json_finish(&j);
	} else if (r == 0) {
		table_print(&t, stdout, ctl->legend);
	}
	if (r < 0)
		ctl_error(r, "listing objects");
	table_fini(&t);
	free(l.v);
	shmq_client_close(c);
	return r < 0 ? EXIT_FAILURE : 0;
}

/* --- show --- */

struct attachments {
	struct shmq_attach_info *v;
	size_t n;
	size_t cap;
};

static int attachments_add(void *arg, const struct shmq_attach_info *a)
{
	struct attachments *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		void *p = realloc(l->v, cap * sizeof(*l->v));

		if (!p)
			return -ENOMEM;
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n++] = *a;
	return 0;
}

static const char *record_state_name(uint32_t state)
{
	switch (state) {
	case SHMQ_SESSION_FREE:
		return "free";
	case SHMQ_SESSION_ACTIVE:
		return "active";
	case SHMQ_SESSION_DEAD:
		return "dead";
	default:
		return "corrupt";
	}
}

static const struct record_snap *record_of(const struct snapshot *s,
					   const struct shmq_attach_info *a)
{
	return a->record < s->n_records ? &s->records[a->record] : NULL;
}

static void show_json(const struct shmq_object_info *o, const struct snapshot *s,
		      const struct attachments *al)
{
	struct json j;
	char buf[64];

	json_init(&j, stdout, false);
	json_begin_object(&j);
	object_json(&j, o, s);
	json_key(&j, "attachments");
	json_begin_array(&j);
	for (size_t i = 0; i < al->n; i++) {
		const struct shmq_attach_info *a = &al->v[i];
		const struct record_snap *rec = record_of(s, a);

		json_begin_object(&j);
		json_kv_u64(&j, "session_id", a->session_id);
		json_kv_u64(&j, "attach_id", a->attach_id);
		json_kv_i64(&j, "pid", a->pid);
		json_kv_u64(&j, "uid", a->uid);
		json_kv_string(&j, "user", user_name(a->uid, buf, sizeof(buf)) ? buf : NULL);
		json_kv_string(&j, "client", a->client_name);
		fmt_role(buf, sizeof(buf), a->role);
		json_kv_string(&j, "role", buf);
		kv_u64_or_null(&j, "record", a->record != UINT32_MAX, a->record);
		json_kv_string(&j, "record_state", rec ? record_state_name(rec->state) : NULL);
		kv_u64_or_null(&j, "sem_holds", rec && o->kind == SHMQ_OBJECT_SEM,
			       rec ? rec->sem_holds : 0);
		counters_json(&j, "counters", rec ? &rec->c : NULL);
		json_end_object(&j);
	}
	json_end_array(&j);
	json_end_object(&j);
	json_finish(&j);
}

static void show_text(const struct shmq_object_info *o, const struct snapshot *s,
		      const struct attachments *al, bool legend)
{
	static const char *const headers[] = {"SESSION", "PID",	 "USER", "ROLE",   "RECORD",
					      "STATE",	 "SENT", "RECV", "SLEEPS", "CLIENT"};
	char user[64], group[64], mem[32], when[128];
	time_t created = (time_t)(o->created_realtime_ns / 1000000000);
	const struct kind_view *v = view_of(o->kind);
	struct figures f;
	struct table t;
	struct tm tm;

	figures_of(o, &f);
	fmt_user(user, sizeof(user), o->owner_uid);
	fmt_group(group, sizeof(group), o->owner_gid);
	fmt_bytes(mem, sizeof(mem), o->memory_size);
	if (localtime_r(&created, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %z", &tm);
	else
		snprintf(when, sizeof(when), "?");

	printf("%s '%s' (id %" PRIu64 ")%s\n", kind_name(o->kind), o->name, o->object_id,
	       (o->flags & SHMQ_OBJECT_UNLINKED) ? ", unlinked" : "");
	if (o->flags & SHMQ_OBJECT_QUARANTINED)
		printf("  QUARANTINED: shmqd found the segment corrupt; new opens are refused "
		       "until it is removed (shmqctl rm %s)\n",
		       o->name);
	printf("  owner:       %s:%s (%" PRIu32 ":%" PRIu32 "), perm %04" PRIo32 "\n", user, group,
	       o->owner_uid, o->owner_gid, o->perm);
	printf("  created:     %s\n", when);
	if (v->show_geometry)
		v->show_geometry(o, &f);
	printf("  memory:      %s (%" PRIu64 " bytes)%s", mem, o->memory_size,
	       (o->flags & SHMQ_OBJECT_HUGEPAGES) ? ", huge pages" : "");
	if (o->numa_node >= 0)
		printf(", NUMA node %" PRId32, o->numa_node);
	printf("\n  handles:     %" PRIu32 "\n", o->n_attached);
	if (s->view_error) {
		printf("  live state:  not viewable: %s\n", view_error_text(s->view_error));
	} else {
		if (v->show_live)
			v->show_live(s);
		printf("  counters:    sent %" PRIu64 ", received %" PRIu64 ", full %" PRIu64
		       ", empty %" PRIu64 ", sleeps %" PRIu64 ", wakes %" PRIu64 "\n",
		       s->total.sent, s->total.received, s->total.full, s->total.empty,
		       s->total.sleeps, s->total.wakes);
		if (s->dead)
			printf("  dead:        %" PRIu32 " records await repair\n", s->dead);
		fmt_last_use(when, sizeof(when), s->last_send_pid, s->last_send_realtime_ns);
		printf("  last send:   %s\n", when);
		fmt_last_use(when, sizeof(when), s->last_recv_pid, s->last_recv_realtime_ns);
		printf("  last recv:   %s\n", when);
	}
	if (!al->n)
		return;
	printf("\n");
	table_init(&t, 10, headers,
		   (1u << 0) | (1u << 1) | (1u << 4) | (1u << 6) | (1u << 7) | (1u << 8));
	for (size_t i = 0; i < al->n; i++) {
		const struct shmq_attach_info *a = &al->v[i];
		const struct record_snap *rec = record_of(s, a);
		char sid[24], pid[16], role[16], recno[16] = "-", sent[24] = "-", recv[24] = "-",
						 sl[24] = "-";

		fmt_u64(sid, sizeof(sid), a->session_id);
		snprintf(pid, sizeof(pid), "%" PRId32, a->pid);
		fmt_user(user, sizeof(user), a->uid);
		fmt_role(role, sizeof(role), a->role);
		if (a->record != UINT32_MAX)
			fmt_u64(recno, sizeof(recno), a->record);
		if (rec) {
			fmt_u64(sent, sizeof(sent), rec->c.sent);
			fmt_u64(recv, sizeof(recv), rec->c.received);
			fmt_u64(sl, sizeof(sl), rec->c.sleeps);
		}
		table_add(&t, sid, pid, user, role, recno,
			  rec ? record_state_name(rec->state) : "-", sent, recv, sl,
			  a->client_name[0] ? a->client_name : "-");
	}
	table_print(&t, stdout, legend);
	table_fini(&t);
}

int verb_show(struct ctl *ctl)
{
	struct attachments al = {0};
	struct shmq_client *c;
	struct snapshot s = {0};
	struct objects l;
	int r;

	if (ctl_connect(ctl, &c) < 0)
		return EXIT_FAILURE;
	r = objects_get(c, ctl->args[0], &l);
	if (r < 0) {
		shmq_client_close(c);
		return EXIT_FAILURE;
	}
	r = snapshot_take(c, l.v[0].name, l.v[0].object_id, SNAP_RECORDS, &s);
	if (r < 0)
		ctl_error(r, "'%s'", l.v[0].name);
	if (r == 0) {
		r = shmq_object_attachments(c, l.v[0].name, attachments_add, &al);
		if (r < 0)
			ctl_error(r, "'%s': attachments", l.v[0].name);
	}
	if (r >= 0) {
		if (ctl->json)
			show_json(&l.v[0], &s, &al);
		else
			show_text(&l.v[0], &s, &al, ctl->legend);
	}
	snapshot_fini(&s);
	free(al.v);
	free(l.v);
	shmq_client_close(c);
	return r < 0 ? EXIT_FAILURE : 0;
}

/* --- clients --- */

struct clients {
	struct shmq_client_info *v;
	size_t n;
	size_t cap;
};

static int clients_add(void *arg, const struct shmq_client_info *ci)
{
	struct clients *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		void *p = realloc(l->v, cap * sizeof(*l->v));

		if (!p)
			return -ENOMEM;
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n++] = *ci;
	return 0;
}

int verb_clients(struct ctl *ctl)
{
	static const char *const headers[] = {"SESSION", "PID",	      "USER",
					      "HANDLES", "CONNECTED", "NAME"};
	uint64_t now = mono_now_ns();
	struct clients l = {0};
	struct shmq_client *c;
	struct table t;
	struct json j;
	int r;

	if (ctl_connect(ctl, &c) < 0)
		return EXIT_FAILURE;
	r = shmq_daemon_clients(c, clients_add, &l);
	shmq_client_close(c);
	if (r < 0) {
		free(l.v);
		ctl_error(r, "listing clients");
		return EXIT_FAILURE;
	}
	if (ctl->json) {
		json_init(&j, stdout, false);
		json_begin_object(&j);
		json_key(&j, "clients");
		json_begin_array(&j);
	}
	table_init(&t, 6, headers, (1u << 0) | (1u << 1) | (1u << 3));
	for (size_t i = 0; i < l.n; i++) {
		const struct shmq_client_info *ci = &l.v[i];
		uint64_t age = now > ci->connected_ns ? now - ci->connected_ns : 0;
		char sid[24], pid[16], user[64], handles[16], conn[64];

		if (ctl->json) {
			json_begin_object(&j);
			json_kv_u64(&j, "session_id", ci->session_id);
			json_kv_i64(&j, "pid", ci->pid);
			json_kv_u64(&j, "uid", ci->uid);
			json_kv_string(&j, "user",
				       user_name(ci->uid, user, sizeof(user)) ? user : NULL);
			json_kv_u64(&j, "gid", ci->gid);
			json_kv_u64(&j, "handles", ci->n_attached);
			json_kv_u64(&j, "connected_ns", age);
			json_kv_double(&j, "connected_s", (double)age / 1e9); /* before _ns */
			json_kv_string(&j, "name", ci->client_name);
			json_end_object(&j);
			continue;
		}
		fmt_u64(sid, sizeof(sid), ci->session_id);
		snprintf(pid, sizeof(pid), "%" PRId32, ci->pid);
		fmt_user(user, sizeof(user), ci->uid);
		fmt_u64(handles, sizeof(handles), ci->n_attached);
		fmt_duration(conn, sizeof(conn), age);
		r = table_add(&t, sid, pid, user, handles, conn,
			      ci->client_name[0] ? ci->client_name : "-");
		if (r < 0)
			break;
	}
	if (ctl->json) {
		json_end_array(&j);
		json_end_object(&j);
		json_finish(&j);
	} else if (r >= 0) {
		table_print(&t, stdout, ctl->legend);
	}
	table_fini(&t);
	free(l.v);
	if (r < 0)
		ctl_error(r, "listing clients");
	return r < 0 ? EXIT_FAILURE : 0;
}

/* --- top --- */

struct top_row {
	struct shmq_object_info info;
	struct snapshot snap;
	bool have_rate;
	double send_rate;
	double recv_rate;
};

struct top_prev {
	uint64_t id;
	uint64_t sent;
	uint64_t received;
	uint64_t taken_ns;
};

static volatile sig_atomic_t top_stop;

static void on_stop_signal(int sig)
{
	(void)sig;
	top_stop = 1;
}

static int top_cmp(const void *a, const void *b, void *key)
{
	const struct top_row *x = a, *y = b;
	const char *sort = key;

	if (!strcmp(sort, "depth")) {
		uint32_t dx = x->snap.depth, dy = y->snap.depth;

		if (dx != dy)
			return dx < dy ? 1 : -1;
	} else if (!strcmp(sort, "rate")) {
		double rx = x->send_rate + x->recv_rate, ry = y->send_rate + y->recv_rate;

		if (rx != ry)
			return rx < ry ? 1 : -1;
	}
	return strcmp(x->info.name, y->info.name);
}

static double rate(uint64_t now, uint64_t before, uint64_t dt_ns)
{
	return now > before && dt_ns ? (double)(now - before) * 1e9 / (double)dt_ns : 0.0;
}

static void top_print_json(const struct top_row *rows, size_t n, long iteration, double interval)
{
	struct json j;

	json_init(&j, stdout, true);
	json_begin_object(&j);
	json_kv_i64(&j, "iteration", iteration);
	json_kv_u64(&j, "interval_ns", (uint64_t)(interval * 1e9 + 0.5));
	json_kv_double(&j, "interval_s", interval); /* before _ns */
	json_key(&j, "objects");
	json_begin_array(&j);
	for (size_t i = 0; i < n; i++) {
		const struct top_row *r = &rows[i];
		bool live = !r->snap.view_error;
		struct figures f;

		figures_of(&r->info, &f);
		json_begin_object(&j);
		json_kv_string(&j, "name", r->info.name);
		json_kv_u64(&j, "id", r->info.object_id);
		json_kv_string(&j, "kind", kind_name(r->info.kind));
		json_kv_bool(&j, "viewable", live);
		kv_u64_or_null(&j, "depth", live && f.has_depth, r->snap.depth);
		kv_u64_or_null(&j, "capacity", f.has_slot_size, r->info.n_slots);
		kv_u64_or_null(&j, "high_water", live && f.has_depth, r->snap.high_water);
		kv_u64_or_null(&j, "value", live && f.has_value, r->snap.value);
		kv_u64_or_null(&j, "sent", live, r->snap.total.sent);
		kv_u64_or_null(&j, "received", live, r->snap.total.received);
		if (live && r->have_rate) {
			json_kv_double(&j, "send_rate", r->send_rate);
			json_kv_double(&j, "recv_rate", r->recv_rate);
		} else {
			json_kv_null(&j, "send_rate");
			json_kv_null(&j, "recv_rate");
		}
		kv_u64_or_null(&j, "producers", live, r->snap.producers);
		kv_u64_or_null(&j, "consumers", live, r->snap.consumers);
		kv_bool_or_null(&j, "sleepers_recv", live && f.has_sleepers_recv,
				r->snap.sleepers_recv);
		kv_bool_or_null(&j, "sleepers_send", live && f.has_sleepers_send,
				r->snap.sleepers_send);
		kv_u64_or_null(&j, "waiters", live && f.has_waiters, r->snap.waiters);
		json_end_object(&j);
	}
	json_end_array(&j);
	json_end_object(&j);
	json_finish(&j);
}

static void top_print_text(struct shmq_client *c, const struct top_row *rows, size_t n,
			   double interval, bool legend, size_t cols)
{
	static const char *const headers[] = {"NAME",	"KIND",	  "DEPTH", "CAP",  "HWM",
					      "SEND/S", "RECV/S", "PROD",  "CONS", "SLEEP"};
	struct shmq_daemon_status st = {.size = sizeof(st)};
	char mem[32], up[32];
	struct table t;

	if (isatty(STDOUT_FILENO))
		fputs("\033[H\033[2J", stdout); /* home, clear: a refreshing screen */
	if (shmq_daemon_status(c, &st) == 0) {
		fmt_bytes(mem, sizeof(mem), st.memory_bytes);
		fmt_duration(up, sizeof(up), st.uptime_ns);
		char head[256];
		int len = snprintf(head, sizeof(head),
				   "shmqd %s pid %" PRId32 ", up %s: %" PRIu32 " clients, %" PRIu32
				   " objects, %s; every %.2fs%s",
				   st.version, st.pid, up, st.n_sessions, st.n_objects, mem,
				   interval, cols ? "; q quits" : "");

		if (len > 0 && cols && (size_t)len > cols)
			len = (int)cols;
		printf("%.*s\n\n", len > 0 ? len : 0, head);
	}
	table_init(&t, 10, headers, 0x3fc);
	t.max_cols = cols;
	for (size_t i = 0; i < n; i++) {
		const struct top_row *r = &rows[i];
		const struct snapshot *s = &r->snap;
		bool live = !s->view_error;
		char depth[16] = "-", cap[16] = "-", hwm[16] = "-", sr[24] = "?", rr[24] = "?";
		char prod[16] = "?", cons[16] = "?", sl[16] = "?";
		struct figures f;

		figures_of(&r->info, &f);
		if (f.has_slot_size)
			fmt_u64(cap, sizeof(cap), r->info.n_slots);
		if (!live)
			snprintf(depth, sizeof(depth), "?");
		if (live) {
			if (f.has_depth || f.has_value)
				fmt_u64(depth, sizeof(depth), f.has_depth ? s->depth : s->value);
			if (f.has_depth)
				fmt_u64(hwm, sizeof(hwm), s->high_water);
			fmt_count(sr, sizeof(sr), r->send_rate);
			fmt_count(rr, sizeof(rr), r->recv_rate);
			fmt_u64(prod, sizeof(prod), s->producers);
			fmt_u64(cons, sizeof(cons), s->consumers);
			sleepers(s, sl, sizeof(sl));
		}
		table_add(&t, r->info.name, kind_name(r->info.kind), depth, cap, hwm, sr, rr, prod,
			  cons, sl);
	}
	table_print(&t, stdout, legend);
	table_fini(&t);
	fflush(stdout);
}

/* One sample of every object, with rates against @prev (by object id). */
static int top_sample(struct shmq_client *c, const struct top_prev *prev, size_t n_prev,
		      struct top_row **ret_rows, size_t *ret_n)
{
	struct top_row *rows;
	struct objects l;
	int r;

	if (objects_get(c, NULL, &l) < 0)
		return -1;
	rows = calloc(l.n ? l.n : 1, sizeof(*rows));
	if (!rows) {
		free(l.v);
		return ctl_error(-ENOMEM, "top");
	}
	for (size_t i = 0; i < l.n; i++) {
		struct top_row *row = &rows[i];

		row->info = l.v[i];
		r = snapshot_take(c, l.v[i].name, l.v[i].object_id, 0, &row->snap);
		if (r < 0) {
			free(rows);
			free(l.v);
			return ctl_error(r, "top");
		}
		for (size_t k = 0; k < n_prev; k++) {
			uint64_t dt;

			if (prev[k].id != row->info.object_id || row->snap.view_error)
				continue;
			dt = row->snap.taken_ns - prev[k].taken_ns;
			row->send_rate = rate(row->snap.total.sent, prev[k].sent, dt);
			row->recv_rate = rate(row->snap.total.received, prev[k].received, dt);
			row->have_rate = true;
		}
	}
	*ret_rows = rows;
	*ret_n = l.n;
	free(l.v);
	return 0;
}

/*
 * Wait @ns, or less if q is pressed on @tty (-1: no keyboard) or a signal
 * comes: top_stop is checked right after.
 */
static void top_wait(uint64_t ns, int tty)
{
	uint64_t end = mono_now_ns() + ns;

	for (;;) {
		uint64_t now = mono_now_ns();
		struct pollfd p = {.fd = tty, .events = POLLIN};
		char key[16];
		ssize_t k;

		if (now >= end || top_stop)
			return;
		if (poll(&p, tty >= 0 ? 1 : 0, (int)((end - now + 999999) / 1000000)) <= 0)
			continue; /* the time is up, or a signal: looked at above */
		k = read(tty, key, sizeof(key));
		if (k <= 0) {
			tty = -1; /* the end of the keyboard: sleep on */
			continue;
		}
		for (ssize_t i = 0; i < k; i++)
			if (key[i] == 'q' || key[i] == 'Q')
				top_stop = 1;
	}
}

/* Keys one at a time and unechoed, if standard input is a terminal.  Return: its fd, or -1. */
static int top_keyboard(struct termios *saved)
{
	struct termios raw;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, saved) < 0)
		return -1;
	raw = *saved;
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0)
		return -1;
	return STDIN_FILENO;
}

/* The terminal's width, to cut lines at, or 0 when standard output is not one. */
static size_t term_cols(void)
{
	struct winsize ws;

	if (!isatty(STDOUT_FILENO) || ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0 || !ws.ws_col)
		return 0;
	return ws.ws_col;
}

int verb_top(struct ctl *ctl)
{
	struct sigaction sa = {.sa_handler = on_stop_signal};
	struct top_prev *prev = NULL;
	struct shmq_client *c;
	struct termios saved;
	size_t n_prev = 0;
	int status = 0, tty;

	if (ctl_connect(ctl, &c) < 0)
		return EXIT_FAILURE;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	tty = ctl->json ? -1 : top_keyboard(&saved);

	/* Sample 0 only seeds the rates; each iteration prints one later sample. */
	for (long it = 0; !top_stop; it++) {
		struct top_row *rows = NULL;
		size_t n = 0;

		if (top_sample(c, prev, n_prev, &rows, &n) < 0) {
			status = EXIT_FAILURE;
			break;
		}
		if (it > 0) {
			qsort_r(rows, n, sizeof(*rows), top_cmp, (void *)ctl->sort);
			if (ctl->json)
				top_print_json(rows, n, it, (double)ctl->interval_ns / 1e9);
			else
				top_print_text(c, rows, n, (double)ctl->interval_ns / 1e9,
					       ctl->legend, term_cols());
			fflush(stdout);
		}
		free(prev);
		prev = calloc(n ? n : 1, sizeof(*prev));
		n_prev = prev ? n : 0;
		for (size_t i = 0; i < n_prev; i++)
			prev[i] = (struct top_prev){rows[i].info.object_id, rows[i].snap.total.sent,
						    rows[i].snap.total.received,
						    rows[i].snap.taken_ns};
		free(rows);
		if (ctl->iterations && it >= ctl->iterations)
			break;
		top_wait(ctl->interval_ns, tty);
	}
	if (tty >= 0)
		tcsetattr(tty, TCSANOW, &saved);
	free(prev);
	shmq_client_close(c);
	return status;
}

/* --- check --- */

enum check_result { CHECK_OK, CHECK_CORRUPT, CHECK_SKIPPED, CHECK_ERROR };

static const char *const check_names[] = {"ok", "corrupt", "skipped", "error"};

int verb_check(struct ctl *ctl)
{
	static const char *const headers[] = {"RESULT", "KIND", "NAME", "DETAIL"};
	const char *only = ctl->n_args ? ctl->args[0] : NULL;
	unsigned int count[4] = {0};
	struct shmq_client *c;
	struct objects l;
	struct table t;
	struct json j;
	int r = 0;

	if (ctl_connect(ctl, &c) < 0)
		return EXIT_FAILURE;
	if (objects_get(c, only, &l) < 0) {
		shmq_client_close(c);
		return EXIT_FAILURE;
	}
	if (ctl->json) {
		json_init(&j, stdout, false);
		json_begin_object(&j);
		json_key(&j, "objects");
		json_begin_array(&j);
	}
	table_init(&t, 4, headers, 0);
	for (size_t i = 0; i < l.n; i++) {
		const struct shmq_object_info *o = &l.v[i];
		enum check_result res;
		const char *detail = NULL;
		struct snapshot s;

		r = snapshot_take(c, o->name, o->object_id, SNAP_CHECK, &s);
		if (r < 0)
			break;
		if (!s.view_error && !s.check && (o->flags & SHMQ_OBJECT_QUARANTINED)) {
			res = CHECK_CORRUPT;
			detail = "quarantined by shmqd";
		} else if (!s.view_error) {
			res = s.check ? CHECK_CORRUPT : CHECK_OK;
			detail = s.check_what;
		} else if (s.view_error == -EBADMSG || s.view_error == -EPROTO) {
			res = CHECK_CORRUPT;
			detail = "the segment fails validation at attach";
		} else if (s.view_error == -ENOENT && !only) {
			continue; /* removed while we were listing */
		} else {
			/* Not ours to read: skipped in a sweep, a failure when asked by name. */
			res = s.view_error == -EACCES && !only ? CHECK_SKIPPED : CHECK_ERROR;
			detail = view_error_text(s.view_error);
		}
		count[res]++;
		if (ctl->json) {
			json_begin_object(&j);
			json_kv_string(&j, "name", o->name);
			json_kv_string(&j, "kind", kind_name(o->kind));
			json_kv_string(&j, "result", check_names[res]);
			json_kv_string(&j, "detail", detail);
			json_end_object(&j);
		} else {
			table_add(&t, check_names[res], kind_name(o->kind), o->name,
				  detail ? detail : "");
		}
		snapshot_fini(&s);
	}
	if (ctl->json) {
		json_end_array(&j);
		json_kv_u64(&j, "ok", count[CHECK_OK]);
		json_kv_u64(&j, "corrupt", count[CHECK_CORRUPT]);
		json_kv_u64(&j, "skipped", count[CHECK_SKIPPED]);
		json_kv_u64(&j, "errors", count[CHECK_ERROR]);
		json_end_object(&j);
		json_finish(&j);
	} else {
		table_print(&t, stdout, ctl->legend);
		printf("%u ok, %u corrupt, %u skipped, %u not checked\n", count[CHECK_OK],
		       count[CHECK_CORRUPT], count[CHECK_SKIPPED], count[CHECK_ERROR]);
	}
	table_fini(&t);
	free(l.v);
	shmq_client_close(c);
	if (r < 0)
		ctl_error(r, "check");
	return r < 0 || count[CHECK_CORRUPT] || count[CHECK_ERROR] ? EXIT_FAILURE : 0;
}

/* --- create, rm, purge --- */

/*
 * create, by kind: which option groups it takes, how to create it (as a
 * view, so the object exists afterwards with nobody attached) and its line.
 */
#define COPT_QUEUE     (1u << 0) /* --mode --numa --hugepages */
#define COPT_SLOTS     (1u << 7) /* --slots --slot-size */
#define COPT_ONEWAY    (1u << 8) /* --oneway */
#define COPT_SEM       (1u << 1) /* --max --undo */
#define COPT_INITIAL   (1u << 2) /* --initial N */
#define COPT_INITIAL01 (1u << 3) /* --initial 0|1 */
#define COPT_RECURSIVE (1u << 4) /* --recursive */
#define COPT_LOCK      (1u << 5) /* --lock NAME */
#define COPT_PARTIES   (1u << 6) /* --parties N */

struct create_kind {
	const char *name, *alias;
	unsigned int opts;   /* COPT_* it accepts */
	uint32_t lock_flags; /* a lock's SHMQ_LOCK_ATTR_* implied by the name */
	int (*create)(const struct ctl *ctl, const struct create_kind *k, struct shmq_client *c,
		      const char *name);
	void (*print)(const struct shmq_object_info *o, const struct figures *f, const char *mem);
};

static int create_queue(const struct ctl *ctl, const struct create_kind *k, struct shmq_client *c,
			const char *name)
{
	unsigned int flags = SHMQ_CREATE | SHMQ_EXCL | SHMQ_VIEW;
	struct shmq_queue *q;
	int r = shmq_queue_open(c, name, flags | (ctl->hugepages ? SHMQ_HUGEPAGES : 0), &ctl->qattr,
				&q);

	(void)k; /* a lock's flags only */
	if (r == 0)
		shmq_queue_close(q);
	return r;
}

static void print_queue(const struct shmq_object_info *o, const struct figures *f, const char *mem)
{
	printf("created queue '%s': %s%s, %" PRIu32 " slots of %" PRIu32 " bytes, perm %04" PRIo32
	       ", %s\n",
	       o->name, f->type, (o->kind_flags & SHMQ_QUEUE_JOINABLE) ? ", joinable" : "",
	       o->n_slots, o->slot_size, o->perm, mem);
}

static int create_sem(const struct ctl *ctl, const struct create_kind *k, struct shmq_client *c,
		      const char *name)
{
	struct shmq_sem *s;
	int r = shmq_sem_open(c, name, SHMQ_CREATE | SHMQ_EXCL | SHMQ_VIEW, &ctl->sattr, &s);

	(void)k; /* a lock's flags only */
	if (r == 0)
		shmq_sem_close(s);
	return r;
}

static void print_sem(const struct shmq_object_info *o, const struct figures *f, const char *mem)
{
	(void)mem;
	printf("created semaphore '%s': %s, value %" PRIu32 ", perm %04" PRIo32 "\n", o->name,
	       f->type, o->sem_initial, o->perm);
}

static int create_event(const struct ctl *ctl, const struct create_kind *k, struct shmq_client *c,
			const char *name)
{
	const struct shmq_event_attr ea = {
		.size = sizeof(ea), .initial = ctl->sattr.initial, .perm = ctl->sattr.perm};
	struct shmq_event *e;
	int r = shmq_event_open(c, name, SHMQ_CREATE | SHMQ_EXCL | SHMQ_VIEW, &ea, &e);

	(void)k; /* a lock's flags only */
	if (r == 0)
		shmq_event_close(e);
	return r;
}

static void print_event(const struct shmq_object_info *o, const struct figures *f, const char *mem)
{
	(void)f, (void)mem;
	printf("created event '%s': %s, perm %04" PRIo32 "\n", o->name,
	       o->event_initial ? "set" : "clear", o->perm);
}

static int create_lock(const struct ctl *ctl, const struct create_kind *k, struct shmq_client *c,
		       const char *name)
{
	const struct shmq_lock_attr la = {.size = sizeof(la),
					  .flags = k->lock_flags |
						   (ctl->recursive ? SHMQ_LOCK_ATTR_RECURSIVE : 0),
					  .perm = ctl->sattr.perm};
	struct shmq_lock *l;
	int r = shmq_lock_open(c, name, SHMQ_CREATE | SHMQ_EXCL | SHMQ_VIEW, &la, &l);

	if (r == 0)
		shmq_lock_close(l);
	return r;
}

static void print_lock(const struct shmq_object_info *o, const struct figures *f, const char *mem)
{
	(void)mem;
	printf("created lock '%s': %s, perm %04" PRIo32 "\n", o->name, f->type, o->perm);
}

static int create_cond(const struct ctl *ctl, const struct create_kind *k, struct shmq_client *c,
		       const char *name)
{
	const struct shmq_cond_attr ca = {.size = sizeof(ca), .perm = ctl->sattr.perm};
	struct shmq_lock *l;
	struct shmq_cond *cv;
	int r;

	(void)k; /* a lock's flags only */
	/* A view of the lock is enough to name it; the condition is created as a view too. */
	r = shmq_lock_open(c, ctl->lock_name, SHMQ_VIEW, NULL, &l);
	if (r < 0) {
		ctl_error(r, "opening lock '%s'", ctl->lock_name);
		return -ECANCELED;
	}
	r = shmq_cond_open(c, name, SHMQ_CREATE | SHMQ_EXCL | SHMQ_VIEW, l, &ca, &cv);
	if (r == 0)
		shmq_cond_close(cv);
	shmq_lock_close(l);
	return r;
}

static void print_cond(const struct shmq_object_info *o, const struct figures *f, const char *mem)
{
	(void)f, (void)mem;
	printf("created condition '%s': bound to lock id %" PRIu64 ", perm %04" PRIo32 "\n",
	       o->name, o->cond_lock_id, o->perm);
}

static int create_barrier(const struct ctl *ctl, const struct create_kind *k, struct shmq_client *c,
			  const char *name)
{
	const struct shmq_barrier_attr ba = {
		.size = sizeof(ba), .parties = ctl->parties, .perm = ctl->sattr.perm};
	struct shmq_barrier *b;
	int r;

	(void)k; /* a lock's flags only */
	r = shmq_barrier_open(c, name, SHMQ_CREATE | SHMQ_EXCL | SHMQ_VIEW, &ba, &b);
	if (r == 0)
		shmq_barrier_close(b);
	return r;
}

static void print_barrier(const struct shmq_object_info *o, const struct figures *f,
			  const char *mem)
{
	(void)f, (void)mem;
	printf("created barrier '%s': %" PRIu32 " parties, perm %04" PRIo32 "\n", o->name,
	       o->barrier_parties, o->perm);
}

static int create_pipe(const struct ctl *ctl, const struct create_kind *k, struct shmq_client *c,
		       const char *name)
{
	const struct shmq_pipe_attr pa = {.size = sizeof(pa),
					  .n_slots = ctl->qattr.n_slots,
					  .slot_size = ctl->qattr.slot_size,
					  .perm = ctl->qattr.perm,
					  .flags = ctl->oneway ? SHMQ_PIPE_ATTR_ONEWAY : 0};
	struct shmq_pipe *p;
	int r;

	(void)k; /* a lock's flags only */
	r = shmq_pipe_open(c, name, 0, SHMQ_CREATE | SHMQ_EXCL | SHMQ_VIEW, &pa, &p);
	if (r == 0)
		shmq_pipe_close(p);
	return r;
}

static void print_pipe(const struct shmq_object_info *o, const struct figures *f, const char *mem)
{
	printf("created pipe '%s': %s, %" PRIu32 " slots of %" PRIu32
	       " bytes each way, perm %04" PRIo32 ", %s\n",
	       o->name, f->type, o->n_slots, o->slot_size, o->perm, mem);
}

static const struct create_kind create_kinds[] = {
	{"queue", NULL, COPT_QUEUE | COPT_SLOTS, 0, create_queue, print_queue},
	{"semaphore", "sem", COPT_SEM | COPT_INITIAL, 0, create_sem, print_sem},
	{"event", NULL, COPT_INITIAL01, 0, create_event, print_event},
	{"lock", NULL, COPT_RECURSIVE, 0, create_lock, print_lock},
	{"rlock", NULL, COPT_RECURSIVE, SHMQ_LOCK_ATTR_RECURSIVE, create_lock, print_lock},
	{"condition", "cond", COPT_LOCK, 0, create_cond, print_cond},
	{"barrier", NULL, COPT_PARTIES, 0, create_barrier, print_barrier},
	{"pipe", NULL, COPT_SLOTS | COPT_ONEWAY, 0, create_pipe, print_pipe},
};

/* The option groups the command line used. */
static unsigned int create_opts_used(const struct ctl *ctl)
{
	const struct shmq_queue_attr *qa = &ctl->qattr;
	const struct shmq_sem_attr *sa = &ctl->sattr;
	unsigned int used = 0;

	if (qa->mode || qa->flags || qa->max_msg || ctl->hugepages)
		used |= COPT_QUEUE;
	if (qa->n_slots || qa->slot_size)
		used |= COPT_SLOTS;
	if (ctl->oneway)
		used |= COPT_ONEWAY;
	if (sa->flags || sa->max)
		used |= COPT_SEM;
	if (sa->initial > 1)
		used |= COPT_INITIAL;
	else if (sa->initial)
		used |= COPT_INITIAL01;
	if (ctl->recursive)
		used |= COPT_RECURSIVE;
	if (ctl->lock_name)
		used |= COPT_LOCK;
	if (ctl->parties)
		used |= COPT_PARTIES;
	return used;
}

static int create_print(struct ctl *ctl, struct shmq_client *c, const struct create_kind *k,
			const char *name)
{
	struct shmq_object_info o = {.size = sizeof(o)};
	struct snapshot s;
	struct json j;
	char mem[32];
	int r;

	r = shmq_object_stat(c, name, &o);
	if (r == 0)
		r = snapshot_take(c, name, o.object_id, 0, &s);
	if (r < 0)
		return ctl_error(r, "'%s' after creating it", name);
	if (ctl->json) {
		json_init(&j, stdout, false);
		json_begin_object(&j);
		object_json(&j, &o, &s);
		json_end_object(&j);
		json_finish(&j);
	} else {
		struct figures f;

		fmt_bytes(mem, sizeof(mem), o.memory_size);
		figures_of(&o, &f);
		k->print(&o, &f, mem);
	}
	snapshot_fini(&s);
	return 0;
}

int verb_create(struct ctl *ctl)
{
	const char *kind = ctl->args[0], *name = ctl->args[1];
	const struct create_kind *k = NULL;
	unsigned int used = create_opts_used(ctl), allowed;
	struct shmq_client *c;
	int r;

	for (size_t i = 0; i < sizeof(create_kinds) / sizeof(create_kinds[0]); i++)
		if (!strcmp(kind, create_kinds[i].name) ||
		    (create_kinds[i].alias && !strcmp(kind, create_kinds[i].alias)))
			k = &create_kinds[i];
	if (!k) {
		fprintf(stderr,
			"shmqctl: create: '%s' is not queue, sem, event, lock, rlock, cond, "
			"barrier or pipe\n",
			kind);
		return EXIT_USAGE;
	}
	/* --initial 0|1 fits wherever --initial N does */
	allowed = k->opts | ((k->opts & COPT_INITIAL) ? COPT_INITIAL01 : 0);
	if (used & ~allowed) {
		fprintf(stderr, "shmqctl: create: an option that does not fit kind %s\n", kind);
		return EXIT_USAGE;
	}
	if ((k->opts & (COPT_LOCK | COPT_PARTIES)) & ~used) {
		fprintf(stderr, "shmqctl: create %s: %s is required\n", kind,
			k->opts & COPT_LOCK ? "--lock NAME (the lock it is bound to)"
					    : "--parties N");
		return EXIT_USAGE;
	}
	if (ctl_connect(ctl, &c) < 0)
		return EXIT_FAILURE;
	r = k->create(ctl, k, c, name);
	if (r == -ECANCELED)
		; /* said where it failed */
	else if (r < 0)
		ctl_error(r, "creating %s '%s'", k->name, name);
	else
		r = create_print(ctl, c, k, name);
	shmq_client_close(c);
	return r < 0 ? EXIT_FAILURE : 0;
}

int verb_rm(struct ctl *ctl)
{
	struct shmq_client *c;
	struct json j;
	int failed = 0;

	if (ctl_connect(ctl, &c) < 0)
		return EXIT_FAILURE;
	if (ctl->json) {
		json_init(&j, stdout, false);
		json_begin_object(&j);
		json_key(&j, "removed");
		json_begin_array(&j);
	}
	for (int i = 0; i < ctl->n_args; i++) {
		int r = shmq_unlink(c, ctl->args[i]);

		if (r < 0) {
			ctl_error(r, "removing '%s'", ctl->args[i]);
			failed++;
		} else if (ctl->json) {
			json_string(&j, ctl->args[i]);
		} else {
			printf("removed '%s'\n", ctl->args[i]);
		}
	}
	if (ctl->json) {
		json_end_array(&j);
		json_kv_u64(&j, "failed", (uint64_t)failed);
		json_end_object(&j);
		json_finish(&j);
	}
	shmq_client_close(c);
	return failed ? EXIT_FAILURE : 0;
}

int verb_purge(struct ctl *ctl)
{
	struct shmq_client *c;
	struct json j;
	int r;

	if (ctl_connect(ctl, &c) < 0)
		return EXIT_FAILURE;
	r = shmq_queue_purge(c, ctl->args[0]);
	shmq_client_close(c);
	if (r < 0) {
		ctl_error(r, "purging '%s'", ctl->args[0]);
		return EXIT_FAILURE;
	}
	if (ctl->json) {
		json_init(&j, stdout, false);
		json_begin_object(&j);
		json_kv_string(&j, "name", ctl->args[0]);
		json_kv_u64(&j, "dropped", (uint64_t)r);
		json_end_object(&j);
		json_finish(&j);
	} else {
		printf("purged %d messages from '%s'\n", r, ctl->args[0]);
	}
	return 0;
}

int verb_shutdown(struct ctl *ctl)
{
	unsigned int flags = ctl->immediate ? SHMQ_SHUTDOWN_IMMEDIATE : 0;
	struct shmq_client *c;
	struct json j;
	int r;

	if (ctl_connect(ctl, &c) < 0)
		return EXIT_FAILURE;
	r = shmq_queue_shutdown_name(c, ctl->args[0], flags);
	shmq_client_close(c);
	if (r < 0) {
		ctl_error(r, "shutting '%s' down", ctl->args[0]);
		return EXIT_FAILURE;
	}
	if (ctl->json) {
		json_init(&j, stdout, false);
		json_begin_object(&j);
		json_kv_string(&j, "name", ctl->args[0]);
		json_kv_bool(&j, "immediate", ctl->immediate);
		json_end_object(&j);
		json_finish(&j);
	} else {
		printf("shut down '%s'%s\n", ctl->args[0],
		       ctl->immediate ? " (immediate: receivers get nothing more)"
				      : " (receivers drain what is queued)");
	}
	return 0;
}
