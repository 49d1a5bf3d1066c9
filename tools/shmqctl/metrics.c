/* SPDX-License-Identifier: MIT */
/*
 * shmqctl metrics: the daemon and every object as OpenMetrics text, for a
 * Prometheus textfile collector or a scrape through a small wrapper.
 *
 * The figures are the ones `status`, `usage` and `ls --json` show: daemon
 * gauges from STATUS, each user's use of the per-user limits from USAGE,
 * and per object (the ones the caller may read) the counters summed over
 * its session records and its live gauges, read on a read-only view.
 * Counter families end in _total, as OpenMetrics asks; times are seconds,
 * sizes bytes.  Label values are object names ([A-Za-z0-9._-]) and kind
 * names, escaped all the same.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shmq/shmq.h>

#include "tools/shmqctl/shmqctl.h"

static void family(const char *name, const char *type, const char *help)
{
	printf("# TYPE %s %s\n# HELP %s %s\n", name, type, name, help);
}

/* A label value: \, " and newline escaped. */
static void label_value(const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			printf("\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", stdout);
		else
			putchar(*s);
	}
}

static void object_labels(const struct shmq_object_info *o)
{
	fputs("{name=\"", stdout);
	label_value(o->name);
	fputs("\",kind=\"", stdout);
	label_value(kind_name(o->kind));
	fputs("\"}", stdout);
}

/* The per-object families, one table: what each sample takes from an object. */
enum obj_field {
	F_SENT,
	F_RECEIVED,
	F_FULL,
	F_EMPTY,
	F_SLEEPS,
	F_WAKES,
	F_DEPTH,
	F_CAPACITY,
	F_ATTACHED,
	F_PRODUCERS,
	F_CONSUMERS,
	F_REPAIRS,
	F_MEMORY,
	F_COUNT,
};

static const struct {
	const char *name;
	const char *type;
	const char *help;
	bool live; /* read from the segment, so only for a viewable object */
} obj_families[F_COUNT] = {
	[F_SENT] = {"shmq_object_sent", "counter",
		    "Messages sent (queues, pipes), posts (semaphores), sets or releases.", true},
	[F_RECEIVED] = {"shmq_object_received", "counter",
			"Messages received, tokens taken, acquisitions, waits ended.", true},
	[F_FULL] = {"shmq_object_full", "counter", "Sends that found the queue full.", true},
	[F_EMPTY] = {"shmq_object_empty", "counter", "Receives that found it empty.", true},
	[F_SLEEPS] = {"shmq_object_sleeps", "counter", "Futex waits entered.", true},
	[F_WAKES] = {"shmq_object_wakes", "counter", "Futex wakes issued.", true},
	[F_DEPTH] = {"shmq_object_depth", "gauge",
		     "Messages queued; a semaphore's value; 1 for a set event or a held lock.",
		     true},
	[F_CAPACITY] = {"shmq_object_capacity", "gauge",
			"Slots of a queue (a pipe: per direction); a bounded semaphore's bound.",
			true},
	[F_ATTACHED] = {"shmq_object_handles", "gauge", "Handles open on it, views included.",
			false},
	[F_PRODUCERS] = {"shmq_object_producers", "gauge", "Attached producers.", true},
	[F_CONSUMERS] = {"shmq_object_consumers", "gauge", "Attached consumers.", true},
	[F_REPAIRS] = {"shmq_object_repairs", "counter", "Repairs after a holder's death.", true},
	[F_MEMORY] = {"shmq_object_memory_bytes", "gauge", "Bytes of its segment.", false},
};

struct obj_sample {
	struct shmq_object_info info;
	struct snapshot snap;
};

static uint64_t field_of(const struct obj_sample *o, enum obj_field f)
{
	const struct snapshot *s = &o->snap;

	switch (f) {
	case F_SENT:
		return s->total.sent;
	case F_RECEIVED:
		return s->total.received;
	case F_FULL:
		return s->total.full;
	case F_EMPTY:
		return s->total.empty;
	case F_SLEEPS:
		return s->total.sleeps;
	case F_WAKES:
		return s->total.wakes;
	case F_DEPTH:
		return o->info.kind == SHMQ_OBJECT_QUEUE || o->info.kind == SHMQ_OBJECT_PIPE
			       ? s->depth
			       : s->value;
	case F_CAPACITY:
		return s->capacity;
	case F_ATTACHED:
		return o->info.n_attached;
	case F_PRODUCERS:
		return s->producers;
	case F_CONSUMERS:
		return s->consumers;
	case F_REPAIRS:
		return s->repairs;
	case F_MEMORY:
		return o->info.memory_size;
	case F_COUNT:
		break;
	}
	return 0;
}

/* The per-user families: one gauge each, labelled by uid. */
enum user_field { U_OBJECTS, U_OBJECTS_MAX, U_MEMORY, U_MEMORY_MAX, U_CLIENTS, U_COUNT };

static const struct {
	const char *name;
	const char *help;
} user_families[U_COUNT] = {
	[U_OBJECTS] = {"shmq_user_objects", "Objects a user owns."},
	[U_OBJECTS_MAX] = {"shmq_user_objects_max", "max-objects-per-uid."},
	[U_MEMORY] = {"shmq_user_memory_bytes", "Bytes of the segments a user owns."},
	[U_MEMORY_MAX] = {"shmq_user_memory_bytes_max", "max-memory-per-uid."},
	[U_CLIENTS] = {"shmq_user_clients", "Connected clients of a user."},
};

static uint64_t user_field(const struct shmq_uid_usage *u, enum user_field f)
{
	switch (f) {
	case U_OBJECTS:
		return u->n_objects;
	case U_OBJECTS_MAX:
		return u->max_objects;
	case U_MEMORY:
		return u->memory;
	case U_MEMORY_MAX:
		return u->max_memory;
	case U_CLIENTS:
		return u->n_clients;
	case U_COUNT:
		break;
	}
	return 0;
}

struct users {
	struct shmq_uid_usage *v;
	size_t n, cap;
};

static int usage_sample(void *arg, const struct shmq_uid_usage *u)
{
	struct users *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		void *p = realloc(l->v, cap * sizeof(*l->v));

		if (!p)
			return -ENOMEM;
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n++] = *u;
	return 0;
}

int verb_metrics(struct ctl *ctl)
{
	struct shmq_daemon_status st = {.size = sizeof(st)};
	struct users users = {0};
	struct obj_sample *objs = NULL;
	struct shmq_client *c;
	struct objects l = {0};
	int r;

	if (ctl_connect(ctl, &c) < 0)
		return EXIT_FAILURE;
	r = shmq_daemon_status(c, &st);
	if (r < 0)
		ctl_error(r, "daemon status");
	if (r >= 0) {
		r = shmq_daemon_usage(c, usage_sample, &users);
		if (r < 0)
			ctl_error(r, "usage");
	}
	if (r >= 0)
		r = objects_get(c, NULL, &l);
	if (r >= 0 && l.n && !(objs = calloc(l.n, sizeof(*objs))))
		r = ctl_error(-ENOMEM, "metrics");
	for (size_t i = 0; r >= 0 && i < l.n; i++) {
		objs[i].info = l.v[i];
		r = snapshot_take(c, l.v[i].name, l.v[i].object_id, 0, &objs[i].snap);
		if (r < 0)
			ctl_error(r, "'%s'", l.v[i].name);
	}
	shmq_client_close(c);
	if (r < 0)
		goto out;

	family("shmq_daemon_up", "gauge", "1: shmqd answered.");
	printf("shmq_daemon_up 1\n");
	family("shmq_daemon_uptime_seconds", "gauge", "Seconds since shmqd started.");
	printf("shmq_daemon_uptime_seconds %.3f\n", (double)st.uptime_ns / 1e9);
	family("shmq_daemon_clients", "gauge", "Connected clients.");
	printf("shmq_daemon_clients %" PRIu32 "\n", st.n_sessions);
	family("shmq_daemon_clients_max", "gauge", "max-clients.");
	printf("shmq_daemon_clients_max %" PRIu32 "\n", st.max_clients);
	family("shmq_daemon_objects", "gauge", "Objects, unlinked ones still attached included.");
	printf("shmq_daemon_objects %" PRIu32 "\n", st.n_objects);
	family("shmq_daemon_memory_bytes", "gauge", "Bytes of every segment.");
	printf("shmq_daemon_memory_bytes %" PRIu64 "\n", st.memory_bytes);

	for (int f = 0; f < U_COUNT; f++) {
		family(user_families[f].name, "gauge", user_families[f].help);
		for (size_t i = 0; i < users.n; i++)
			printf("%s{uid=\"%" PRIu32 "\"} %" PRIu64 "\n", user_families[f].name,
			       users.v[i].uid, user_field(&users.v[i], (enum user_field)f));
	}

	for (int f = 0; f < F_COUNT; f++) {
		bool counter = !strcmp(obj_families[f].type, "counter");

		family(obj_families[f].name, obj_families[f].type, obj_families[f].help);
		for (size_t i = 0; i < l.n; i++) {
			if (obj_families[f].live && objs[i].snap.view_error)
				continue; /* no figure rather than a made-up one */
			printf("%s%s", obj_families[f].name, counter ? "_total" : "");
			object_labels(&objs[i].info);
			printf(" %" PRIu64 "\n", field_of(&objs[i], (enum obj_field)f));
		}
	}
	printf("# EOF\n");
out:
	for (size_t i = 0; objs && i < l.n; i++)
		snapshot_fini(&objs[i].snap);
	free(objs);
	free(l.v);
	free(users.v);
	return r < 0 ? EXIT_FAILURE : 0;
}
