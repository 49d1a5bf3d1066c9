/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for shm/owner.c: the owner journal's steps on one word and one
 * session record, one instruction at a time (the kill storm exercises the
 * journal across real deaths: tests/stress/stress_kill.c).
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <stdint.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/owner.h"
#include "tests/helpers.h"

static struct t_seg fx;
static _Atomic uint32_t word;
static _Atomic uint32_t count, pending;

static void setup(void)
{
	/* A semaphore segment gives real session records to claim and free. */
	t_seg_new_sem(&fx, 0, 0, 0);
	store_relaxed(&word, 0);
	store_relaxed(&count, 0);
	store_relaxed(&pending, 0);
}

static void teardown(void)
{
	t_seg_free(&fx);
}

TestSuite(owner, .init = setup, .fini = teardown, .timeout = 10);

static uint32_t tag_of(uint32_t index)
{
	return (index + 1)
	       << SHMQ_OWNER_FIELD_SHIFT; /* computed here, not by the code under test */
}

Test(owner, a_journal_without_a_record_has_no_tag)
{
	struct shmq_owner_journal j;

	shmq__owner_init(&j, 3, NULL, NULL);
	cr_assert(eq(u32, j.tag, 0));
	shmq__owner_init(&j, 3, &count, &pending);
	cr_assert(eq(u32, j.tag, tag_of(3)));
	cr_assert(eq(u32, shmq__owner_index1(j.tag), 4));
}

Test(owner, commit_records_the_pending_count_and_clears_only_our_tag)
{
	struct shmq_owner_journal j;
	uint32_t w;

	shmq__owner_init(&j, 0, &count, &pending);
	shmq__owner_lock(&j);
	shmq__owner_begin(&j, 5); /* U1 */
	cr_assert(eq(u32, load_relaxed(&count), 0), "U1 must not touch the count");
	store_relaxed(&word, 7 | j.tag);	      /* U2, as the kind's CAS would */
	cr_assert(shmq__owner_commit(&j, &word, &w)); /* U3, U4 */
	shmq__owner_unlock(&j);
	cr_assert(eq(u32, load_relaxed(&count), 5));
	cr_assert(eq(u32, w, 7));
	cr_assert(eq(u32, load_relaxed(&word), 7), "the kind's bits must be kept");
}

Test(owner, commit_leaves_a_word_whose_tag_a_peer_scribbled_away)
{
	struct shmq_owner_journal j;
	uint32_t w;

	shmq__owner_init(&j, 0, &count, &pending);
	shmq__owner_begin(&j, 1);
	store_relaxed(&word, 9 | tag_of(4)); /* somebody else's tag: a forgery */
	cr_assert(not(shmq__owner_commit(&j, &word, &w)));
	cr_assert(eq(u32, load_relaxed(&word), 9 | tag_of(4)));
	cr_assert(eq(u32, load_relaxed(&count), 1), "U3 still records our count");
}

Test(owner, resolve_takes_pending_while_the_word_carries_the_dead_sessions_tag)
{
	uint32_t w;

	store_relaxed(&count, 2);
	store_relaxed(&pending, 3);
	store_relaxed(&word, 6 | tag_of(1)); /* died between U2 and U4 */
	cr_assert(eq(u32, shmq__owner_resolve(&word, 1, &count, &pending, &w), 3));
	cr_assert(eq(u32, w, 6 | tag_of(1)));
	cr_assert(eq(u32, load_relaxed(&count), 0), "forgotten before anything is given back");
	cr_assert(eq(u32, load_relaxed(&pending), 0));
}

Test(owner, resolve_takes_the_count_when_the_tag_is_another_or_none)
{
	uint32_t w;

	store_relaxed(&count, 2);
	store_relaxed(&pending, 3); /* U1 ran, U2 did not */
	store_relaxed(&word, 6);
	cr_assert(eq(u32, shmq__owner_resolve(&word, 1, &count, &pending, &w), 2));
	store_relaxed(&count, 4);
	store_relaxed(&word, 6 | tag_of(0)); /* another session's operation */
	cr_assert(eq(u32, shmq__owner_resolve(&word, 1, &count, &pending, &w), 4));
}

Test(owner, wait_returns_at_once_when_the_field_is_clear)
{
	uint32_t w = 11;

	store_relaxed(&word, 11);
	cr_assert(eq(int, shmq__owner_wait(&word, &w), 0));
	cr_assert(eq(u32, w, 11));
}

Test(owner, wait_gives_up_with_ebusy_on_a_tag_that_never_clears)
{
	uint64_t t0 = shmq__now_ns();
	uint32_t w = 1 | tag_of(2);

	store_relaxed(&word, w);
	cr_assert(eq(int, shmq__owner_wait(&word, &w), -EBUSY));
	cr_assert(ge(u64, shmq__now_ns() - t0, SHMQ_OWNER_WAIT_NS - 1000000),
		  "gave up before SHMQ_OWNER_WAIT_NS");
}

Test(owner, a_tag_naming_a_free_record_or_no_record_is_a_forgery)
{
	uint32_t idx;

	cr_assert(not(shmq__owner_is_forged(&fx.seg, 0)));
	cr_assert(shmq__owner_is_forged(&fx.seg, tag_of(0)), "record 0 is free");
	cr_assert(eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_SEM, 1, 0, &idx), 0));
	cr_assert(not(shmq__owner_is_forged(&fx.seg, tag_of(idx))), "an active record's tag");
	cr_assert(shmq__owner_is_forged(&fx.seg, tag_of(fx.seg.n_sessions)), "past the table");
}
