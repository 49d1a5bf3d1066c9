/* SPDX-License-Identifier: MIT */
/*
 * The lock kind in the daemon: creation checks, the description, the
 * repair log, and the tick that takes a lock back from a forged holder.
 * The algorithm and the repair (taking a lock back from a dead holder) are
 * shm/lock.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "daemon/kind.h"
#include "daemon/log.h"
#include "daemon/shmqd.h"
#include "shm/atomic.h"
#include "shm/lock.h"
#include "shm/owner.h"

static int lock_create_check(const struct shmqd_config *cfg, const struct shmqd_session *s,
			     union shmq_geom *u)
{
	const struct shmq_lock_geom *g = &u->lock;

	(void)cfg; /* nothing to configure */
	if (g->flags & ~SHMQ_LOCK_RECURSIVE)
		return shmqd_bad(s, "unknown lock flags 0x%" PRIx32, g->flags);
	for (size_t i = 0; i < sizeof(g->reserved) / sizeof(g->reserved[0]); i++)
		if (g->reserved[i])
			return shmqd_bad(s, "lock reserved fields not zero");
	return 0;
}

static void lock_describe(const struct shmqd_object *o, char *buf, size_t size)
{
	snprintf(buf, size, "%s",
		 (o->geom.lock.flags & SHMQ_LOCK_RECURSIVE) ? "recursive" : "plain");
}

static void lock_log_repair(const struct shmqd_object *o, int32_t pid, const char *death,
			    uint32_t index, int r, const struct shmq_kind_repair *rep)
{
	if (r < 0)
		log_warning_errno(r,
				  "lock '%s': repairing after pid %" PRId32 " (record %" PRIu32 ")",
				  o->name, pid, index);
	else if (rep->recovered)
		log_notice("lock '%s': pid %" PRId32 " %s holding it; taken back, the next "
			   "holder is told its owner died",
			   o->name, pid, death);
	else if (rep->waiters)
		log_debug("lock '%s': pid %" PRId32 " (record %" PRIu32 ") died waiting; "
			  "passed its wake on",
			  o->name, pid, index);
}

/*
 * A holder field naming a free record, or no record, was written by a
 * scribbler (shmq__owner_is_forged()): every acquirer would wait it out.
 * Take the lock back as from a dead holder, so the next holder is warned.
 */
static const char *lock_heartbeat(struct shmqd_object *o)
{
	const struct shmq_lock_shm *l = o->seg.object;
	uint32_t own = shmq__owner_of(load_relaxed(&l->word)); /* take_back re-reads it */

	if (!own || !shmq__owner_is_forged(&o->seg, own))
		return NULL;
	if (!shmq__lock_take_back(&o->seg, own))
		return NULL;
	return "its word names a holder that holds no record";
}

const struct shmqd_kind shmqd_kind_lock = {
	.shm = &shmq__kind_lock,
	.open_roles = SHMQ_OPEN_USE,
	.open_roles_all = true,
	.invalid = "its lock word fails validation",
	.create_check = lock_create_check,
	.describe = lock_describe,
	.log_repair = lock_log_repair,
	.heartbeat = lock_heartbeat,
};
