/* SPDX-License-Identifier: MIT */
/*
 * The daemon's side of an object kind: what shmqd decides per kind, beside
 * the segment-level descriptor of shm/kind.h.  One table, keyed by
 * SHMQ_KIND_*, filled from the kinds' own files (daemon/queue.c,
 * daemon/sem.c); object.c, request.c and the adoption code never branch on
 * the kind, they call these.
 */
#ifndef SHMQD_KIND_H
#define SHMQD_KIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/kind.h"

struct shmqd_attach;
struct shmqd_config;
struct shmqd_object;
struct shmqd_session;

struct shmqd_kind {
	const struct shmq_kind *shm; /* the segment-level descriptor */
	/*
	 * The SHMQ_OPEN_SEND/RECV/SEM role flags one attachment may combine
	 * (views aside), and whether every such attachment must carry all of
	 * them (a semaphore handle is always SEM).
	 */
	uint32_t open_roles;
	bool open_roles_all;
	bool hugepages; /* may be created on huge pages */
	bool ends;	/* an attachment holds one of two ends: SHMQ_OPEN_END1 (a pipe) */
	/* What a validator failure says, for the quarantine log line. */
	const char *invalid;

	/*
	 * CREATE: check the request's geometry against the configuration and
	 * fill its defaults.  Return: 0, or a logged -EINVAL (shmqd_bad()).
	 */
	int (*create_check)(const struct shmqd_config *cfg, const struct shmqd_session *s,
			    union shmq_geom *g);
	/*
	 * Clear the fields of @g that are a starting state or a placement,
	 * not a shape (a semaphore's initial value, a queue's NUMA node and
	 * what the daemon derives): a CREATE with SHMQ_OPEN_SHAPE opens an
	 * existing object only if what is left is equal.  NULL: every field
	 * is shape.
	 */
	void (*shape)(union shmq_geom *g);
	/* The NUMA node a created segment is bound to; NULL: none (-1). */
	int32_t (*numa_node)(const union shmq_geom *g);
	/* The creation log line's details: "64 slots of 256 B, spsc". */
	void (*describe)(const struct shmqd_object *o, char *buf, size_t size);
	/*
	 * OPEN: may @s attach with the role flags @flags now?  NULL: always.
	 * Return: 0, or a logged -errno.
	 */
	int (*admit)(const struct shmqd_object *o, const struct shmqd_session *s, uint32_t flags);
	/* The log line for what shm's repair() did for a dead session. */
	void (*log_repair)(const struct shmqd_object *o, int32_t pid, const char *death,
			   uint32_t index, int r, const struct shmq_kind_repair *rep);
	/*
	 * The last attachment that may write has detached (or died, after its
	 * repair): reset what only live users explain.  NULL: nothing.
	 */
	void (*idle)(struct shmqd_object *o);
	/*
	 * Each tick, before validation, quarantined or not: undo what a
	 * scribbler did that would stall honest handles.  NULL: nothing.
	 * Return: a reason to quarantine the object, or NULL.
	 */
	const char *(*heartbeat)(struct shmqd_object *o);
	/*
	 * What a full check of a quiescent object costs, in the units of the
	 * heartbeat's per-tick budget (a queue: its slots).  NULL: nothing.
	 */
	uint32_t (*check_cost)(const union shmq_geom *g);
	/*
	 * A session record of @o is about to be released, its holder alive
	 * (CLOSE) or dead (after its repair): let go of what it held that the
	 * holder should have let go of itself (a pipe's end).  NULL: nothing.
	 */
	void (*detached)(struct shmqd_object *o, const struct shmqd_attach *a);
	/* PURGE: drop every queued message.  NULL: the kind holds none (-EINVAL). */
	int (*purge)(const struct shmqd_session *s, struct shmqd_object *o, uint64_t *ret_dropped);
	/* SHUTDOWN: shut it down (@immediate: nothing more is received).  NULL: -EINVAL. */
	int (*shutdown)(struct shmqd_object *o, bool immediate);
};

/*
 * A ring's geometry in a CREATE (a queue's, each direction of a pipe's):
 * fill the configured defaults for zeros, check the configured limits.
 * Return: 0, or a logged -EINVAL.
 */
int shmqd_ring_geom_check(const struct shmqd_config *cfg, const struct shmqd_session *s,
			  uint32_t *n_slots, uint32_t *slot_size);

#define X(NAME, ident) extern const struct shmqd_kind shmqd_kind_##ident;
SHMQ_KINDS(X)
#undef X

/* The daemon's ops for @kind, or NULL for a kind it does not know. */
const struct shmqd_kind *shmqd_kind(uint32_t kind);

/* The kind's name for logs ("queue", "semaphore"), "object" if unknown. */
const char *shmqd_kind_name(uint32_t kind);

#endif /* SHMQD_KIND_H */
