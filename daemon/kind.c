/* SPDX-License-Identifier: MIT */
/* The daemon's table of object kinds (daemon/kind.h). */
#include "daemon/kind.h"

static const struct shmqd_kind *const kinds[SHMQ_KIND_LIMIT] = {
#define X(NAME, ident) [SHMQ_KIND_##NAME] = &shmqd_kind_##ident,
	SHMQ_KINDS(X)
#undef X
};

const struct shmqd_kind *shmqd_kind(uint32_t kind)
{
	return kind < SHMQ_KIND_LIMIT ? kinds[kind] : NULL;
}

const char *shmqd_kind_name(uint32_t kind)
{
	const struct shmqd_kind *k = shmqd_kind(kind);

	return k ? k->shm->name : "object";
}
