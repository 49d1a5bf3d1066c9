/* SPDX-License-Identifier: MIT */
/*
 * The barrier kind in the daemon: creation checks, the description, the
 * repair log, and the fresh start once nobody uses it.  The algorithm and
 * the repair (a dead party breaks the barrier) are shm/barrier.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "daemon/kind.h"
#include "daemon/log.h"
#include "daemon/shmqd.h"
#include "shm/atomic.h"

static int barrier_create_check(const struct shmqd_config *cfg, const struct shmqd_session *s,
				union shmq_geom *u)
{
	const struct shmq_barrier_geom *g = &u->barrier;

	(void)cfg; /* nothing to configure */
	if (g->parties < 1 || g->parties > SHMQ_BARRIER_PARTIES_MAX)
		return shmqd_bad(s, "a barrier has 1..%u parties, not %" PRIu32,
				 SHMQ_BARRIER_PARTIES_MAX, g->parties);
	for (size_t i = 0; i < sizeof(g->reserved) / sizeof(g->reserved[0]); i++)
		if (g->reserved[i])
			return shmqd_bad(s, "barrier reserved fields not zero");
	return 0;
}

static void barrier_describe(const struct shmqd_object *o, char *buf, size_t size)
{
	snprintf(buf, size, "%" PRIu32 " parties", o->geom.barrier.parties);
}

static void barrier_log_repair(const struct shmqd_object *o, int32_t pid, const char *death,
			       uint32_t index, int r, const struct shmq_kind_repair *rep)
{
	if (r < 0)
		log_warning_errno(
			r, "barrier '%s': repairing after pid %" PRId32 " (record %" PRIu32 ")",
			o->name, pid, index);
	else if (rep->broken)
		log_notice("barrier '%s': party pid %" PRId32 " %s; broken, its waiters are told "
			   "(-EPIPE) until a reset",
			   o->name, pid, death);
}

/*
 * Nobody uses it: the next users start with an empty, unbroken cycle
 * rather than inherit a break from parties that are all gone.  The
 * generation and its history stay: they only ever move on.
 */
static void barrier_idle(struct shmqd_object *o)
{
	struct shmq_barrier_shm *b = o->seg.object;
	uint64_t s = load_relaxed(&b->state);

	/* nobody attached can race this CAS but a scribbler's view-less write */
	(void)cas_relaxed(&b->state, &s, s & ~(SHMQ_BARRIER_BROKEN | SHMQ_BARRIER_COUNT_MASK));
}

const struct shmqd_kind shmqd_kind_barrier = {
	.shm = &shmq__kind_barrier,
	.open_roles = SHMQ_OPEN_USE,
	.open_roles_all = true,
	.invalid = "its state word fails validation",
	.create_check = barrier_create_check,
	.describe = barrier_describe,
	.log_repair = barrier_log_repair,
	.idle = barrier_idle,
};
