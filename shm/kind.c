/* SPDX-License-Identifier: MIT */
/* The table of object kinds (shm/kind.h): kind number -> descriptor. */
#include <assert.h>

#include "shm/kind.h"

#define X(NAME, ident)                                                            \
	static_assert(SHMQ_KIND_##NAME > 0 && SHMQ_KIND_##NAME < SHMQ_KIND_LIMIT, \
		      "SHMQ_KIND_LIMIT must exceed every kind number");
SHMQ_KINDS(X)
#undef X

static const struct shmq_kind *const kinds[SHMQ_KIND_LIMIT] = {
#define X(NAME, ident) [SHMQ_KIND_##NAME] = &shmq__kind_##ident,
	SHMQ_KINDS(X)
#undef X
};

const struct shmq_kind *shmq__kind(uint32_t kind)
{
	const struct shmq_kind *k = kind < SHMQ_KIND_LIMIT ? kinds[kind] : NULL;

	/* A descriptor must describe its own number: the table is the one truth. */
	assert(!k || k->id == kind);
	return k;
}
