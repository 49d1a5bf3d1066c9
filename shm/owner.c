/* SPDX-License-Identifier: MIT */
/* The owner journal's steps; the protocol and its proof are in shm/owner.h. */
#include <errno.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/owner.h"

/* Consecutive failed CASes before giving up: every failure is another party's write. */
#define CAS_TRIES (UINT32_C(1) << 16)

void shmq__owner_init(struct shmq_owner_journal *j, uint32_t index, _Atomic uint32_t *count,
		      _Atomic uint32_t *pending)
{
	j->tag = count ? shmq__owner_field(index) : 0;
	j->count = count;
	j->pending = pending;
	atomic_flag_clear_explicit(&j->lock, memory_order_relaxed); /* before any use */
}

void shmq__owner_lock(struct shmq_owner_journal *j)
{
	while (atomic_flag_test_and_set_explicit(&j->lock, memory_order_acquire))
		cpu_relax();
}

void shmq__owner_unlock(struct shmq_owner_journal *j)
{
	atomic_flag_clear_explicit(&j->lock, memory_order_release);
}

void shmq__owner_begin(struct shmq_owner_journal *j, uint32_t after)
{
	store_relaxed(j->pending, after); /* U1: ordered before U2 by its release half */
}

uint32_t shmq__owner_count(const struct shmq_owner_journal *j)
{
	return load_relaxed(j->count); /* only this handle's threads write it, under the lock */
}

bool shmq__owner_commit(struct shmq_owner_journal *j, _Atomic uint32_t *word, uint32_t *ret_word)
{
	uint32_t w;

	store_relaxed(j->count, load_relaxed(j->pending)); /* U3: ordered by U4's release */
	w = load_relaxed(word);				   /* a first guess; the CAS validates it */
	for (uint32_t i = 0; i < CAS_TRIES; i++) {
		/* Only the daemon's resolve of another session changes the word under our tag. */
		if (shmq__owner_of(w) != j->tag) {
			*ret_word = w;
			return false; /* a peer scribbled on the word: nothing of ours to clear */
		}
		/* U4: seq_cst like the kind's publishing CAS; lets what our tag held back go on */
		if (cas_seq_cst(word, &w, w & ~SHMQ_OWNER_FIELD_MASK)) {
			w &= ~SHMQ_OWNER_FIELD_MASK; /* what the CAS wrote */
			break;
		}
	}
	*ret_word = w;
	return true;
}

int shmq__owner_wait(_Atomic uint32_t *word, uint32_t *w)
{
	uint64_t end = shmq__deadline_after_ns(SHMQ_OWNER_WAIT_NS);

	for (uint32_t i = 0; shmq__owner_of(*w); i++) {
		if (i < 64) {
			cpu_relax();
		} else {
			if (shmq__now_ns() >= end)
				return -EBUSY;
			/* woken by U4 or the daemon's resolve; 1 ms slices bound a missed wake */
			(void)shmq__futex_wait(word, *w, shmq__deadline_after_ns(1000000));
		}
		*w = load_relaxed(word); /* re-read; the caller's CAS validates it */
	}
	return 0;
}

uint32_t shmq__owner_resolve(_Atomic uint32_t *word, uint32_t index, _Atomic uint32_t *count,
			     _Atomic uint32_t *pending, uint32_t *ret_word)
{
	uint32_t tag = shmq__owner_field(index);
	/* A7: the dead process's last release (U2 or U4) */
	uint32_t w = load_acquire(word);
	/* U5: the journal says which count is true. */
	uint32_t held = shmq__owner_of(w) == tag ? load_relaxed(pending) : load_relaxed(count);

	/* Forget first: a daemon killed past here loses the holds, never gives them twice. */
	store_relaxed(count, 0);
	store_relaxed(pending, 0);
	*ret_word = w;
	return held;
}

bool shmq__owner_is_forged(const struct shmq_segment *seg, uint32_t own)
{
	uint32_t tag = shmq__owner_index1(own);

	return tag && shmq__session_tag_free(seg, tag);
}
