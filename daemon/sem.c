/* SPDX-License-Identifier: MIT */
/*
 * The semaphore kind in the daemon: creation checks, undo logging, and the
 * tick that clears an undo semaphore's forged owner tag.  The algorithm and
 * its undo are shm/sem.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>

#include "daemon/kind.h"
#include "daemon/log.h"
#include "daemon/shmqd.h"
#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/owner.h"
#include "shm/sem.h"

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static int sem_create_check(const struct shmqd_config *cfg, const struct shmqd_session *s,
			    union shmq_geom *u)
{
	const struct shmq_sem_geom *g = &u->sem;

	(void)cfg; /* no configured limits beyond the value's */
	if (g->flags & ~(SHMQ_SEM_BOUNDED | SHMQ_SEM_UNDO))
		return shmqd_bad(s, "unknown semaphore flags 0x%" PRIx32, g->flags);
	if (!all_zero(g->reserved, sizeof(g->reserved)))
		return shmqd_bad(s, "semaphore reserved fields not zero");
	if (g->initial > SHMQ_SEM_VALUE_MAX)
		return shmqd_bad(s, "initial value %" PRIu32 " > %" PRIu32, g->initial,
				 SHMQ_SEM_VALUE_MAX);
	if ((g->flags & SHMQ_SEM_UNDO) &&
	    (g->initial > SHMQ_SEM_UNDO_VALUE_MAX ||
	     ((g->flags & SHMQ_SEM_BOUNDED) && g->max > SHMQ_SEM_UNDO_VALUE_MAX)))
		return shmqd_bad(s,
				 "an undo semaphore's initial value and max are at most %" PRIu32,
				 SHMQ_SEM_UNDO_VALUE_MAX);
	if (!(g->flags & SHMQ_SEM_BOUNDED)) {
		/* A max that would be ignored is a caller's mistake, not a wish. */
		if (g->max)
			return shmqd_bad(s, "max set without SHMQ_SEM_BOUNDED");
		return 0;
	}
	if (!g->max || g->max > SHMQ_SEM_VALUE_MAX || g->initial > g->max)
		return shmqd_bad(s,
				 "bounded semaphore needs initial <= max in [1, %" PRIu32
				 "] (initial %" PRIu32 ", max %" PRIu32 ")",
				 SHMQ_SEM_VALUE_MAX, g->initial, g->max);
	return 0;
}

static void sem_describe(const struct shmqd_object *o, char *buf, size_t size)
{
	snprintf(buf, size, "value %" PRIu32 "%s%s", o->geom.sem.initial,
		 (o->geom.sem.flags & SHMQ_SEM_BOUNDED) ? ", bounded" : "",
		 (o->geom.sem.flags & SHMQ_SEM_UNDO) ? ", undo" : "");
}

/*
 * Undo on death (shm/sem.c, U1..U5) posted back what the dead session's
 * record says it held; the count is exact at any instruction of its death.
 */
static void sem_log_repair(const struct shmqd_object *o, int32_t pid, const char *death,
			   uint32_t index, int r, const struct shmq_kind_repair *rep)
{
	if (r < 0)
		log_warning_errno(r,
				  "semaphore '%s': undo for pid %" PRId32 " (record %" PRIu32 ")",
				  o->name, pid, index);
	else if (rep->posted)
		log_notice("semaphore '%s': pid %" PRId32 " %s holding %" PRIu32
			   " tokens; posted them back (undo)",
			   o->name, pid, death ? death : "went away", rep->posted);
	if (r >= 0 && rep->waiters)
		log_debug("semaphore '%s': pid %" PRId32 " (record %" PRIu32 ") died waiting; "
			  "dropped %" PRIu32 " announced waiters",
			  o->name, pid, index, rep->waiters);
}

/*
 * An undo semaphore's owner field names the session between moving tokens
 * and recording them (shm/owner.h).  A tag whose record is free, or that
 * names no record, was written by a scribbler (shmq__owner_is_forged()):
 * every post would wait it out.  Clear it, keeping the value.
 */
static const char *sem_heartbeat(struct shmqd_object *o)
{
	struct shmq_sem_shm *sm = o->seg.object;
	uint32_t w;

	if (!(o->geom.sem.flags & SHMQ_SEM_UNDO))
		return NULL;
	w = load_relaxed(&sm->value); /* the CAS below validates it */
	for (int tries = 0; tries < 8; tries++) {
		uint32_t own = shmq__owner_of(w);

		if (!shmq__owner_is_forged(&o->seg, own))
			return NULL;
		/* seq_cst like U4, and wake whoever the tag held back */
		if (cas_seq_cst(&sm->value, &w, w & SHMQ_SEM_UNDO_VALUE_MAX)) {
			if (load_seq_cst(&sm->n_waiters))
				(void)shmq__futex_wake(&sm->value, INT32_MAX);
			return "its word names an owner that holds no record";
		}
	}
	return NULL;
}

/* Bound and flags are the shape; the initial value is where it started. */
static void sem_shape(union shmq_geom *g)
{
	g->sem.initial = 0;
}

const struct shmqd_kind shmqd_kind_sem = {
	.shm = &shmq__kind_sem,
	.open_roles = SHMQ_OPEN_SEM,
	.open_roles_all = true,
	.invalid = "its semaphore words fail validation",
	.create_check = sem_create_check,
	.shape = sem_shape,
	.describe = sem_describe,
	.log_repair = sem_log_repair,
	.heartbeat = sem_heartbeat,
};
