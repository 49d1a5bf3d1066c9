/* SPDX-License-Identifier: MIT */
/*
 * The event kind in the daemon: creation checks, the description, and the
 * repair log.  The algorithm and its repair are shm/event.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "daemon/kind.h"
#include "daemon/log.h"
#include "daemon/shmqd.h"

static int event_create_check(const struct shmqd_config *cfg, const struct shmqd_session *s,
			      union shmq_geom *u)
{
	const struct shmq_event_geom *g = &u->event;

	(void)cfg; /* nothing to configure */
	if (g->initial > 1)
		return shmqd_bad(s, "an event starts clear (0) or set (1), not %" PRIu32,
				 g->initial);
	for (size_t i = 0; i < sizeof(g->reserved) / sizeof(g->reserved[0]); i++)
		if (g->reserved[i])
			return shmqd_bad(s, "event reserved fields not zero");
	return 0;
}

static void event_describe(const struct shmqd_object *o, char *buf, size_t size)
{
	snprintf(buf, size, "initially %s", o->geom.event.initial ? "set" : "clear");
}

static void event_log_repair(const struct shmqd_object *o, int32_t pid, const char *death,
			     uint32_t index, int r, const struct shmq_kind_repair *rep)
{
	(void)death;
	if (r < 0)
		log_warning_errno(
			r, "event '%s': repairing after pid %" PRId32 " (record %" PRIu32 ")",
			o->name, pid, index);
	else if (rep->woken)
		log_debug("event '%s': pid %" PRId32 " (record %" PRIu32 ") may have died asleep; "
			  "cleared the sleeper bit",
			  o->name, pid, index);
}

/* An event has no shape: set or clear at creation is only where it started. */
static void event_shape(union shmq_geom *g)
{
	g->event.initial = 0;
}

const struct shmqd_kind shmqd_kind_event = {
	.shm = &shmq__kind_event,
	.open_roles = SHMQ_OPEN_USE,
	.open_roles_all = true,
	.invalid = "its words fail validation",
	.create_check = event_create_check,
	.shape = event_shape,
	.describe = event_describe,
	.log_repair = event_log_repair,
};
