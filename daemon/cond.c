/* SPDX-License-Identifier: MIT */
/*
 * The condition kind in the daemon: creation checks, the description, the
 * repair log, and the reset once nobody uses it.  The algorithm and the
 * repair (a dead waiter's counts) are shm/cond.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "daemon/kind.h"
#include "daemon/log.h"
#include "daemon/shmqd.h"
#include "shm/atomic.h"

static int cond_create_check(const struct shmqd_config *cfg, const struct shmqd_session *s,
			     union shmq_geom *u)
{
	const struct shmq_cond_geom *g = &u->cond;

	(void)cfg; /* nothing to configure */
	if (!g->lock_id)
		return shmqd_bad(s, "a condition needs the object id of its lock");
	for (size_t i = 0; i < sizeof(g->reserved) / sizeof(g->reserved[0]); i++)
		if (g->reserved[i])
			return shmqd_bad(s, "condition reserved fields not zero");
	return 0;
}

static void cond_describe(const struct shmqd_object *o, char *buf, size_t size)
{
	snprintf(buf, size, "bound to lock id %" PRIu64, o->geom.cond.lock_id);
}

static void cond_log_repair(const struct shmqd_object *o, int32_t pid, const char *death,
			    uint32_t index, int r, const struct shmq_kind_repair *rep)
{
	if (r < 0)
		log_warning_errno(
			r, "condition '%s': repairing after pid %" PRId32 " (record %" PRIu32 ")",
			o->name, pid, index);
	else if (rep->waiters)
		log_info("condition '%s': pid %" PRId32 " %s with %" PRIu32 " thread(s) waiting; "
			 "uncounted them and woke the others",
			 o->name, pid, death, rep->waiters);
}

/*
 * Nobody is inside a wait: counts left by a death between a count and its
 * record (shm/cond.c, Deaths) or by a scribbler go, so they never turn
 * into spare wake-ups for the next users.
 */
static void cond_idle(struct shmqd_object *o)
{
	struct shmq_cond_shm *cv = o->seg.object;

	store_relaxed(&cv->waiting, 0);
	store_relaxed(&cv->pending, 0);
}

/* The binding to a lock is checked apart: another lock is -EXDEV (libclient/cond.c). */
static void cond_shape(union shmq_geom *g)
{
	g->cond.lock_id = 0;
}

const struct shmqd_kind shmqd_kind_cond = {
	.shm = &shmq__kind_cond,
	.open_roles = SHMQ_OPEN_USE,
	.open_roles_all = true,
	.invalid = "its words fail validation",
	.create_check = cond_create_check,
	.shape = cond_shape,
	.describe = cond_describe,
	.log_repair = cond_log_repair,
	.idle = cond_idle,
};
