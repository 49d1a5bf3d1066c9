/* SPDX-License-Identifier: MIT */
/* membarrier(2) registration and the heavy barrier; see barrier.h. */
#include <errno.h>
#include <linux/membarrier.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shm/fence.h"

/* pid that registered, or 0; -pid when registration failed for that pid. */
static _Atomic int32_t registered;

static long membarrier(int cmd)
{
	return syscall(__NR_membarrier, cmd, 0, 0);
}

bool shmq__fence_register(void)
{
	int32_t pid = (int32_t)getpid();
	int32_t r = load_relaxed(&registered); /* process-local cache: no ordering */
	const char *env;

	if (r == pid)
		return true;
	if (r == -pid)
		return false;

	/*
	 * Opt-in only: the kernel can lose this process's registration on a
	 * CPU after one of its threads exits (see barrier.h), and a publisher
	 * relying on it would then miss a sleeper.  The full fence is always
	 * correct.
	 */
	env = getenv("SHMQ_ASYM_FENCE");
	if (!env || strcmp(env, "1")) {
		store_relaxed(&registered, -pid);
		return false;
	}
	/* Idempotent; a forked child (new pid) registers its own mm again. */
	r = membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0 ? pid : -pid;
	store_relaxed(&registered, r);
	return r == pid;
}

/* Counted for tests and shmq-bench: a process-local statistic. */
static _Atomic uint64_t heavy_count;

int shmq__fence_heavy(void)
{
	fetch_add_relaxed(&heavy_count, 1);
	return membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) < 0 ? -errno : 0;
}

uint64_t shmq__fence_heavy_count(void)
{
	return load_relaxed(&heavy_count);
}

void shmq__fence_tell(struct shmq_fence_user *u)
{
	/* Our own store even when the flag is set: the argument needs T1 ours. */
	if (u->flag)
		store_seq_cst(u->flag, 1); /* T1 */
	fence_seq_cst();		   /* X: see shm/fence.h */
	u->told = true;
}

int shmq__fence_sleeper(const struct shmq_fence_user *u)
{
	/* T2: pairs with T1 and X in shmq__fence_tell() */
	if (u->flag && !load_seq_cst(u->flag))
		return 0;
	return shmq__fence_heavy(); /* H1 */
}
