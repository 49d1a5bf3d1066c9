/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for shm/layout.c: names, segment sizing, formatting, the attach
 * protocol against corrupt and hostile headers, session records, and the
 * alignment of every part of a segment.
 *
 * Most tests format a segment in a memfd (t_seg_new_queue()), scribble on
 * its header as a hostile peer would, and attach again.  The randomized test
 * keeps its segment in heap memory instead, so that under
 * `make test SAN=address` any access outside the segment is reported.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm/atomic.h"
#include "shm/kind.h"
#include "shm/layout.h"
#include "shm/ring.h"
#include "tests/helpers.h"

#define FUZZ_ITERATIONS 10000

static struct t_seg fx;

static void teardown(void)
{
	t_seg_free(&fx);
}

TestSuite(layout, .fini = teardown, .timeout = 10);

/* --- Helpers --- */

static struct shmq_segment_params queue_params(uint32_t n_slots, uint32_t slot_size, uint32_t mode)
{
	struct shmq_segment_params p = {
		.kind = SHMQ_KIND_QUEUE,
		.n_sessions = 4,
		.geom.queue = {.n_slots = n_slots,
			       .slot_size = slot_size,
			       .mode = mode,
			       .numa_node = -1},
		.name = "layout-test",
		.owner_uid = 1000,
		.owner_gid = 1000,
		.mode = 0640,
		.object_id = 42,
	};

	return p;
}

static struct shmq_segment_params sem_params(uint32_t initial, uint32_t max, uint32_t flags)
{
	struct shmq_segment_params p = {
		.kind = SHMQ_KIND_SEM,
		.n_sessions = 4,
		.geom.sem = {.initial = initial, .max = max, .flags = flags},
		.name = "layout-sem",
		.mode = 0600,
		.object_id = 43,
	};

	return p;
}

static int size_of(const struct shmq_segment_params *p)
{
	uint64_t size = 0;

	return shmq__segment_size(p, &size);
}

static struct shmq_segment_hdr *hdr(void)
{
	return fx.base;
}

/* Attach the fixture's memory again, as a second process would. */
static int reattach(void)
{
	struct shmq_segment seg;

	return shmq__segment_attach(fx.base, fx.size, &seg);
}

static void queue_new(void)
{
	t_seg_new_queue(&fx, 8, 64, SHMQ_QMODE_MPMC);
}

static struct shmq_queue_shm *queue_shm(void)
{
	return fx.seg.object;
}

/* --- Names --- */

Test(layout, name_of_one_byte_is_valid)
{
	cr_assert(shmq__name_is_valid("a"));
	cr_assert(shmq__name_is_valid("0"));
	cr_assert(shmq__name_is_valid("_"));
}

Test(layout, name_of_sixty_three_bytes_is_valid)
{
	char name[SHMQ_NAME_MAX + 1];

	memset(name, 'x', SHMQ_NAME_MAX);
	name[SHMQ_NAME_MAX] = '\0';

	cr_assert(shmq__name_is_valid(name));
}

Test(layout, name_made_of_every_allowed_character_is_valid)
{
	cr_assert(shmq__name_is_valid("abcdefghijklmnopqrstuvwxyz"));
	cr_assert(shmq__name_is_valid("ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
	cr_assert(shmq__name_is_valid("0123456789._-"));
}

Test(layout, name_that_starts_with_dots_but_is_not_a_path_component_is_valid)
{
	cr_assert(shmq__name_is_valid(".a"));
	cr_assert(shmq__name_is_valid("..."));
	cr_assert(shmq__name_is_valid("-"));
}

Test(layout, empty_name_is_rejected)
{
	cr_assert(not(shmq__name_is_valid("")));
}

Test(layout, null_name_is_rejected)
{
	cr_assert(not(shmq__name_is_valid(NULL)));
}

Test(layout, name_of_sixty_four_bytes_is_rejected)
{
	char name[SHMQ_NAME_MAX + 2];

	memset(name, 'x', SHMQ_NAME_MAX + 1);
	name[SHMQ_NAME_MAX + 1] = '\0';

	cr_assert(not(shmq__name_is_valid(name)));
}

Test(layout, name_with_a_slash_is_rejected)
{
	cr_assert(not(shmq__name_is_valid("a/b")));
	cr_assert(not(shmq__name_is_valid("/")));
}

Test(layout, name_with_a_space_is_rejected)
{
	cr_assert(not(shmq__name_is_valid("a b")));
}

Test(layout, name_with_a_newline_is_rejected)
{
	cr_assert(not(shmq__name_is_valid("ab\n")));
}

Test(layout, name_with_a_byte_outside_ascii_is_rejected)
{
	cr_assert(not(shmq__name_is_valid("caf\xc3\xa9")));
}

Test(layout, dot_is_rejected_as_a_name)
{
	cr_assert(not(shmq__name_is_valid(".")));
}

Test(layout, dot_dot_is_rejected_as_a_name)
{
	cr_assert(not(shmq__name_is_valid("..")));
}

/* --- Sizing --- */

Test(layout, segment_size_accepts_the_smallest_queue)
{
	struct shmq_segment_params p = queue_params(2, 1, SHMQ_QMODE_MPMC);

	p.n_sessions = 1;
	cr_assert(eq(int, size_of(&p), 0));
}

Test(layout, segment_size_accepts_the_largest_queue_without_overflow)
{
	struct shmq_segment_params p =
		queue_params(SHMQ_SLOTS_MAX, SHMQ_SLOT_SIZE_MAX, SHMQ_QMODE_MPMC);
	uint64_t size = 0;

	p.n_sessions = SHMQ_SESSIONS_MAX;
	cr_assert(eq(int, shmq__segment_size(&p, &size), 0));
	cr_assert(size > (uint64_t)SHMQ_SLOTS_MAX * SHMQ_SLOT_SIZE_MAX, "size %" PRIu64, size);
}

Test(layout, segment_size_is_a_whole_number_of_pages)
{
	for (uint32_t slot_size = 1; slot_size < 5000; slot_size += 97) {
		struct shmq_segment_params p = queue_params(4, slot_size, SHMQ_QMODE_SPSC);
		uint64_t size = 0;

		cr_assert(eq(int, shmq__segment_size(&p, &size), 0));
		cr_assert(eq(u64, size % 4096, 0), "slot_size %u", slot_size);
	}
}

Test(layout, segment_size_accepts_every_queue_mode)
{
	for (uint32_t mode = 0; mode < SHMQ_QMODE_COUNT; mode++) {
		struct shmq_segment_params p = queue_params(8, 64, mode);

		cr_assert(eq(int, size_of(&p), 0), "mode %u", mode);
	}
}

Test(layout, segment_size_rejects_a_slot_count_that_is_not_a_power_of_two)
{
	uint32_t bad[] = {3, 6, 12, 1000, (UINT32_C(1) << 20) + 1};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct shmq_segment_params p = queue_params(bad[i], 64, SHMQ_QMODE_MPMC);

		cr_assert(eq(int, size_of(&p), -EINVAL), "n_slots %u", bad[i]);
	}
}

Test(layout, segment_size_rejects_fewer_than_two_slots)
{
	struct shmq_segment_params p0 = queue_params(0, 64, SHMQ_QMODE_MPMC);
	struct shmq_segment_params p1 = queue_params(1, 64, SHMQ_QMODE_MPMC);

	cr_assert(eq(int, size_of(&p0), -EINVAL));
	cr_assert(eq(int, size_of(&p1), -EINVAL));
}

Test(layout, segment_size_rejects_more_slots_than_the_maximum)
{
	struct shmq_segment_params p = queue_params(SHMQ_SLOTS_MAX << 1, 64, SHMQ_QMODE_MPMC);
	struct shmq_segment_params top = queue_params(UINT32_C(1) << 31, 64, SHMQ_QMODE_MPMC);

	cr_assert(eq(int, size_of(&p), -EINVAL));
	cr_assert(eq(int, size_of(&top), -EINVAL));
}

Test(layout, segment_size_rejects_a_zero_slot_size)
{
	struct shmq_segment_params p = queue_params(8, 0, SHMQ_QMODE_MPMC);

	cr_assert(eq(int, size_of(&p), -EINVAL));
}

Test(layout, segment_size_rejects_a_slot_size_above_the_maximum)
{
	struct shmq_segment_params p = queue_params(8, SHMQ_SLOT_SIZE_MAX + 1, SHMQ_QMODE_MPMC);
	struct shmq_segment_params top = queue_params(8, UINT32_MAX, SHMQ_QMODE_MPMC);

	cr_assert(eq(int, size_of(&p), -EINVAL));
	cr_assert(eq(int, size_of(&top), -EINVAL));
}

Test(layout, segment_size_rejects_an_unknown_queue_mode)
{
	struct shmq_segment_params p = queue_params(8, 64, SHMQ_QMODE_COUNT);
	struct shmq_segment_params top = queue_params(8, 64, UINT32_MAX);

	cr_assert(eq(int, size_of(&p), -EINVAL));
	cr_assert(eq(int, size_of(&top), -EINVAL));
}

Test(layout, segment_size_rejects_a_numa_node_below_minus_one)
{
	struct shmq_segment_params p = queue_params(8, 64, SHMQ_QMODE_MPMC);

	p.geom.queue.numa_node = -2;
	cr_assert(eq(int, size_of(&p), -EINVAL));
}

Test(layout, segment_size_rejects_zero_sessions)
{
	struct shmq_segment_params p = queue_params(8, 64, SHMQ_QMODE_MPMC);

	p.n_sessions = 0;
	cr_assert(eq(int, size_of(&p), -EINVAL));
}

Test(layout, segment_size_rejects_more_sessions_than_the_maximum)
{
	struct shmq_segment_params p = queue_params(8, 64, SHMQ_QMODE_MPMC);
	struct shmq_segment_params max = queue_params(8, 64, SHMQ_QMODE_MPMC);

	p.n_sessions = SHMQ_SESSIONS_MAX + 1;
	max.n_sessions = SHMQ_SESSIONS_MAX;
	cr_assert(eq(int, size_of(&p), -EINVAL));
	cr_assert(eq(int, size_of(&max), 0));
}

Test(layout, segment_size_rejects_an_unknown_kind)
{
	struct shmq_segment_params p = queue_params(8, 64, SHMQ_QMODE_MPMC);

	p.kind = 0;
	cr_assert(eq(int, size_of(&p), -EINVAL));
	p.kind = SHMQ_KIND_LIMIT; /* one past the last kind of shm/kind.h */
	cr_assert(eq(int, size_of(&p), -EINVAL));
}

Test(layout, segment_size_rejects_null_parameters)
{
	uint64_t size = 0;

	cr_assert(eq(int, shmq__segment_size(NULL, &size), -EINVAL));
}

Test(layout, segment_size_rejects_a_bounded_semaphore_whose_initial_value_exceeds_max)
{
	struct shmq_segment_params p = sem_params(5, 4, SHMQ_SEM_BOUNDED);
	struct shmq_segment_params exact = sem_params(4, 4, SHMQ_SEM_BOUNDED);

	cr_assert(eq(int, size_of(&p), -EINVAL));
	cr_assert(eq(int, size_of(&exact), 0));
}

Test(layout, segment_size_ignores_max_for_an_unbounded_semaphore)
{
	struct shmq_segment_params p = sem_params(5, 4, 0);

	cr_assert(eq(int, size_of(&p), 0));
}

Test(layout, segment_size_rejects_a_bounded_semaphore_with_a_zero_or_oversized_max)
{
	struct shmq_segment_params zero = sem_params(0, 0, SHMQ_SEM_BOUNDED);
	struct shmq_segment_params big = sem_params(0, SHMQ_SEM_VALUE_MAX + 1, SHMQ_SEM_BOUNDED);

	cr_assert(eq(int, size_of(&zero), -EINVAL));
	cr_assert(eq(int, size_of(&big), -EINVAL));
}

Test(layout, segment_size_rejects_a_semaphore_initial_value_above_value_max)
{
	struct shmq_segment_params p = sem_params(SHMQ_SEM_VALUE_MAX + 1, 0, 0);

	cr_assert(eq(int, size_of(&p), -EINVAL));
}

Test(layout, segment_size_rejects_unknown_semaphore_flags)
{
	struct shmq_segment_params p = sem_params(0, 0, UINT32_C(1) << 5);

	cr_assert(eq(int, size_of(&p), -EINVAL));
}

/* --- Formatting --- */

Test(layout, format_rejects_memory_smaller_than_the_segment_size)
{
	struct shmq_segment_params p = queue_params(8, 64, SHMQ_QMODE_MPMC);
	uint64_t size = 0;
	void *mem;

	cr_assert(eq(int, shmq__segment_size(&p, &size), 0));
	mem = calloc(1, size);
	cr_assert(mem != NULL);

	cr_assert(eq(int, shmq__segment_format(mem, size - 1, &p), -ENOSPC));
	cr_assert(eq(u32, load_relaxed(&((struct shmq_segment_hdr *)mem)->state), 0),
		  "a failed format must not publish");
	free(mem);
}

Test(layout, format_rejects_an_invalid_name)
{
	struct shmq_segment_params p = queue_params(8, 64, SHMQ_QMODE_MPMC);
	uint64_t size = 0;
	void *mem;

	p.name = "no/slashes";
	cr_assert(eq(int, shmq__segment_size(&p, &size), 0), "size does not look at the name");
	mem = calloc(1, size);
	cr_assert(mem != NULL);

	cr_assert(eq(int, shmq__segment_format(mem, size, &p), -EINVAL));
	free(mem);
}

Test(layout, format_writes_identity_and_geometry_into_the_header)
{
	queue_new();

	cr_assert(eq(u64, hdr()->magic, SHMQ_SEGMENT_MAGIC));
	cr_assert(eq(u16, hdr()->layout_major, SHMQ_LAYOUT_MAJOR));
	cr_assert(eq(u16, hdr()->layout_minor, SHMQ_LAYOUT_MINOR));
	cr_assert(eq(u16, hdr()->kind, SHMQ_KIND_QUEUE));
	cr_assert(eq(u16, hdr()->hdr_size, sizeof(struct shmq_segment_hdr)));
	cr_assert(eq(u64, hdr()->size, fx.size));
	cr_assert(eq(u32, hdr()->mode, 0600));
	cr_assert(eq(u32, hdr()->n_sessions, 64));
	cr_assert(eq(u32, hdr()->geom.queue.n_slots, 8));
	cr_assert(eq(u32, hdr()->geom.queue.slot_size, 64));
	cr_assert(eq(int, strcmp(hdr()->name, "test-queue"), 0));
	cr_assert(eq(u32, load_relaxed(&hdr()->state), SHMQ_SEG_PUBLISHED));
}

Test(layout, format_keeps_only_the_permission_bits_of_the_mode)
{
	struct shmq_segment_params p = queue_params(4, 16, SHMQ_QMODE_SPSC);

	p.mode = 04777;
	t_seg_new(&fx, &p);

	cr_assert(eq(u32, hdr()->mode, 0777));
}

Test(layout, format_sets_the_initial_value_of_a_semaphore)
{
	struct shmq_segment_params p = sem_params(7, 9, SHMQ_SEM_BOUNDED);
	struct shmq_sem_shm *s;

	t_seg_new(&fx, &p);
	s = fx.seg.object;

	cr_assert(eq(u32, load_relaxed(&s->value), 7));
	cr_assert(eq(ptr, (void *)fx.seg.slots, NULL));
}

Test(layout, format_leaves_every_slot_empty_for_its_own_position)
{
	queue_new();

	for (uint32_t i = 0; i < 8; i++) {
		struct shmq_slot_hdr *h =
			(struct shmq_slot_hdr *)(fx.seg.slots +
						 (size_t)i * fx.seg.geom.queue.slot_stride);

		cr_assert(eq(u64, load_relaxed(&h->state), (uint64_t)i << 32), "slot %u", i);
	}
}

/* --- Attach --- */

Test(layout, attach_accepts_a_freshly_formatted_queue_and_copies_its_geometry)
{
	struct shmq_segment seg;

	queue_new();

	cr_assert(eq(int, shmq__segment_attach(fx.base, fx.size, &seg), 0));
	cr_assert(eq(ptr, seg.base, fx.base));
	cr_assert(eq(u64, seg.size, fx.size));
	cr_assert(eq(u16, seg.kind, SHMQ_KIND_QUEUE));
	cr_assert(eq(u32, seg.n_sessions, 64));
	cr_assert(eq(u32, seg.geom.queue.n_slots, 8));
	cr_assert(eq(u32, seg.geom.queue.slot_size, 64));
	cr_assert(eq(u32, seg.geom.queue.slot_stride, 80));
	cr_assert(eq(u32, seg.geom.queue.mode, SHMQ_QMODE_MPMC));
	cr_assert(eq(int, strcmp(seg.name, "test-queue"), 0));
	cr_assert(eq(ptr, (void *)seg.sessions, (char *)fx.base + hdr()->sessions_off));
	cr_assert(eq(ptr, seg.object, (char *)fx.base + hdr()->object_off));
	cr_assert(eq(ptr, (void *)seg.slots, (char *)fx.base + hdr()->slots_off));
}

Test(layout, attach_accepts_a_freshly_formatted_semaphore)
{
	struct shmq_segment seg;

	t_seg_new_sem(&fx, 1, 3, SHMQ_SEM_BOUNDED | SHMQ_SEM_UNDO);

	cr_assert(eq(int, shmq__segment_attach(fx.base, fx.size, &seg), 0));
	cr_assert(eq(u16, seg.kind, SHMQ_KIND_SEM));
	cr_assert(eq(u32, seg.geom.sem.max, 3));
	cr_assert(eq(ptr, (void *)seg.slots, NULL));
}

Test(layout, attach_rejects_null_arguments)
{
	struct shmq_segment seg;

	queue_new();

	cr_assert(eq(int, shmq__segment_attach(NULL, fx.size, &seg), -EINVAL));
	cr_assert(eq(int, shmq__segment_attach(fx.base, fx.size, NULL), -EINVAL));
}

Test(layout, attach_returns_eagain_before_the_creator_publishes)
{
	queue_new();
	store_relaxed(&hdr()->state, 0); /* test setup: single thread */

	cr_assert(eq(int, reattach(), -EAGAIN));
}

Test(layout, attach_returns_eagain_for_zeroed_memory)
{
	struct shmq_segment seg;
	void *mem = calloc(1, 8192);

	cr_assert(mem != NULL);
	cr_assert(eq(int, shmq__segment_attach(mem, 8192, &seg), -EAGAIN));
	free(mem);
}

Test(layout, attach_returns_ebadmsg_for_a_size_smaller_than_the_header)
{
	struct shmq_segment seg;

	queue_new();

	cr_assert(eq(int, shmq__segment_attach(fx.base, 0, &seg), -EBADMSG));
	cr_assert(eq(int, shmq__segment_attach(fx.base, sizeof(struct shmq_segment_hdr) - 1, &seg),
		     -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_for_a_bad_magic)
{
	queue_new();
	hdr()->magic ^= 1;

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_eproto_for_the_next_layout_major)
{
	queue_new();
	hdr()->layout_major = SHMQ_LAYOUT_MAJOR + 1;

	cr_assert(eq(int, reattach(), -EPROTO));
}

Test(layout, attach_returns_eproto_for_an_older_layout_major)
{
	queue_new();
	hdr()->layout_major = SHMQ_LAYOUT_MAJOR - 1;

	cr_assert(eq(int, reattach(), -EPROTO));
}

Test(layout, attach_accepts_a_newer_layout_minor)
{
	struct shmq_segment seg;

	queue_new();
	hdr()->layout_minor = SHMQ_LAYOUT_MINOR + 1;

	cr_assert(eq(int, shmq__segment_attach(fx.base, fx.size, &seg), 0));
	cr_assert(eq(u16, seg.layout_minor, SHMQ_LAYOUT_MINOR + 1));
}

Test(layout, attach_returns_ebadmsg_when_the_header_records_another_size)
{
	queue_new();
	hdr()->size = fx.size + 4096;

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_when_the_mapping_is_smaller_than_the_header_says)
{
	struct shmq_segment seg;

	queue_new();

	cr_assert(eq(int, shmq__segment_attach(fx.base, fx.size - 4096, &seg), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_for_a_header_size_smaller_than_the_header)
{
	queue_new();
	hdr()->hdr_size = sizeof(struct shmq_segment_hdr) - 8;

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_when_slots_off_points_past_the_end)
{
	queue_new();
	hdr()->slots_off = fx.size + SHMQ_FALSE_SHARING_ALIGN;

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_when_slots_off_is_huge)
{
	queue_new();
	hdr()->slots_off = UINT64_MAX - (SHMQ_FALSE_SHARING_ALIGN - 1);

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_when_the_slot_array_runs_past_the_end)
{
	uint64_t slots_len;

	queue_new();
	slots_len = (uint64_t)hdr()->geom.queue.n_slots * hdr()->geom.queue.slot_stride;
	/* Aligned and inside the mapping, but the last slots would not be. */
	hdr()->slots_off = (fx.size - slots_len + SHMQ_FALSE_SHARING_ALIGN) &
			   ~(uint64_t)(SHMQ_FALSE_SHARING_ALIGN - 1);

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_when_more_slots_are_claimed_than_fit)
{
	queue_new();
	hdr()->geom.queue.n_slots = UINT32_C(1) << 20; /* a valid count, far too big here */

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_when_the_stride_is_smaller_than_a_slot)
{
	queue_new();
	hdr()->geom.queue.slot_stride = hdr()->geom.queue.slot_size; /* no room for the header */

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_when_the_stride_is_not_a_multiple_of_the_slot_alignment)
{
	queue_new();
	hdr()->geom.queue.slot_stride += SHMQ_SLOT_ALIGN / 2;

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_when_the_sessions_overlap_the_header)
{
	queue_new();
	hdr()->sessions_off = SHMQ_FALSE_SHARING_ALIGN;

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_when_the_object_overlaps_the_sessions)
{
	queue_new();
	hdr()->object_off = hdr()->sessions_off + SHMQ_FALSE_SHARING_ALIGN;

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_when_the_slots_overlap_the_object)
{
	queue_new();
	hdr()->slots_off = hdr()->object_off;

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_for_a_misaligned_offset)
{
	queue_new();
	hdr()->slots_off += 8;

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_for_a_huge_session_count)
{
	queue_new();
	hdr()->n_sessions = UINT32_MAX;

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_for_a_zero_session_count)
{
	queue_new();
	hdr()->n_sessions = 0;

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_when_the_session_table_runs_into_the_object)
{
	queue_new();
	hdr()->n_sessions = SHMQ_SESSIONS_MAX; /* in range, but the table no longer fits */

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_for_an_unterminated_name)
{
	queue_new();
	memset(hdr()->name, 'a', sizeof(hdr()->name)); /* 64 valid bytes, no NUL */

	cr_assert(eq(int, reattach(), -EBADMSG),
		  "a header name without its NUL must not be accepted (silently truncated)");
}

Test(layout, attach_returns_ebadmsg_for_an_invalid_name)
{
	queue_new();
	hdr()->name[0] = '/';

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_for_an_empty_name)
{
	queue_new();
	memset(hdr()->name, 0, sizeof(hdr()->name));

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_for_an_unknown_kind)
{
	queue_new();
	hdr()->kind = 7;

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_for_a_corrupt_queue_geometry)
{
	queue_new();
	hdr()->geom.queue.n_slots = 6;

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_for_an_unknown_queue_mode)
{
	queue_new();
	hdr()->geom.queue.mode = SHMQ_QMODE_COUNT;

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_for_a_semaphore_with_a_slots_offset)
{
	t_seg_new_sem(&fx, 0, 0, 0);
	hdr()->slots_off = hdr()->object_off + 4096;

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_returns_ebadmsg_for_a_queue_relabelled_as_a_semaphore)
{
	queue_new();
	hdr()->kind = SHMQ_KIND_SEM;

	cr_assert(eq(int, reattach(), -EBADMSG));
}

Test(layout, attach_keeps_its_geometry_when_a_peer_later_scribbles_on_the_header)
{
	struct shmq_segment seg;

	queue_new();
	cr_assert(eq(int, shmq__segment_attach(fx.base, fx.size, &seg), 0));

	hdr()->geom.queue.n_slots = 1024;
	hdr()->geom.queue.slot_stride = 16;
	hdr()->slots_off = 0;

	cr_assert(eq(u32, seg.geom.queue.n_slots, 8));
	cr_assert(eq(u32, seg.geom.queue.slot_stride, 80));
	cr_assert(eq(ptr, (void *)seg.slots, (void *)fx.seg.slots));
}

Test(layout, segment_check_passes_on_a_fresh_segment)
{
	queue_new();

	cr_assert(eq(int, shmq__segment_check(&fx.seg), 0));
}

Test(layout, segment_check_reports_ebadmsg_after_a_scribble_on_the_header_geometry)
{
	queue_new();
	hdr()->geom.queue.slot_size = 32;

	cr_assert(eq(int, shmq__segment_check(&fx.seg), -EBADMSG));
}

Test(layout, segment_check_reports_ebadmsg_after_the_header_size_changes)
{
	queue_new();
	hdr()->size += 4096;

	cr_assert(eq(int, shmq__segment_check(&fx.seg), -EBADMSG));
}

Test(layout, segment_check_reports_ebadmsg_when_publication_is_withdrawn)
{
	queue_new();
	store_relaxed(&hdr()->state, 0); /* test setup: single thread */

	cr_assert(eq(int, shmq__segment_check(&fx.seg), -EBADMSG));
}

Test(layout, segment_check_reports_ebadmsg_for_a_corrupt_session_state)
{
	queue_new();
	store_relaxed(&fx.seg.sessions[3].state, SHMQ_SESSION_DEAD + 1); /* test setup */

	cr_assert(eq(int, shmq__segment_check(&fx.seg), -EBADMSG));
}

Test(layout, segment_check_reports_ebadmsg_for_an_unknown_session_role)
{
	queue_new();
	store_relaxed(&fx.seg.sessions[0].role, UINT32_C(1) << 9); /* test setup */

	cr_assert(eq(int, shmq__segment_check(&fx.seg), -EBADMSG));
}

/* --- Sessions --- */

Test(layout, session_claim_fills_the_record_and_marks_it_active)
{
	struct shmq_session_shm *s;
	uint32_t idx = UINT32_MAX;

	queue_new();

	cr_assert(eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_PRODUCER, 1234, 1000, &idx), 0));
	s = shmq__session_at(&fx.seg, idx);
	cr_assert(s != NULL);
	cr_assert(eq(u32, load_relaxed(&s->state), SHMQ_SESSION_ACTIVE));
	cr_assert(eq(u32, load_relaxed(&s->role), SHMQ_ROLE_PRODUCER));
	cr_assert(eq(i32, load_relaxed(&s->pid), 1234));
	cr_assert(eq(u32, load_relaxed(&s->uid), 1000));
	cr_assert(load_relaxed(&s->attached_ns) > 0);
}

Test(layout, session_claim_then_release_returns_the_record_to_free)
{
	struct shmq_session_shm *s;
	uint32_t idx;

	queue_new();
	cr_assert(eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_CONSUMER, 1, 2, &idx), 0));

	shmq__session_release(&fx.seg, idx);

	s = shmq__session_at(&fx.seg, idx);
	cr_assert(eq(u32, load_relaxed(&s->state), SHMQ_SESSION_FREE));
	cr_assert(eq(u32, load_relaxed(&s->role), 0));
	cr_assert(eq(i32, load_relaxed(&s->pid), 0));
}

Test(layout, session_claim_hands_out_distinct_records_until_full_then_returns_enospc)
{
	struct shmq_segment_params p = queue_params(4, 16, SHMQ_QMODE_MPMC);
	uint32_t idx[4], extra;

	p.n_sessions = 4;
	t_seg_new(&fx, &p);

	for (uint32_t i = 0; i < 4; i++) {
		cr_assert(eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_PRODUCER, 1, 1, &idx[i]),
			     0));
		cr_assert(idx[i] < 4);
		for (uint32_t j = 0; j < i; j++)
			cr_assert(ne(u32, idx[i], idx[j]));
	}
	extra = 77;
	cr_assert(eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_PRODUCER, 1, 1, &extra), -ENOSPC));
	cr_assert(eq(u32, extra, 77), "ret_index is untouched on failure");
}

Test(layout, session_claim_reuses_a_released_record)
{
	struct shmq_segment_params p = queue_params(4, 16, SHMQ_QMODE_MPMC);
	uint32_t idx[2], again;

	p.n_sessions = 2;
	t_seg_new(&fx, &p);
	cr_assert(eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_PRODUCER, 1, 1, &idx[0]), 0));
	cr_assert(eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_CONSUMER, 1, 1, &idx[1]), 0));

	shmq__session_release(&fx.seg, idx[0]);

	cr_assert(eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_VIEWER, 1, 1, &again), 0));
	cr_assert(eq(u32, again, idx[0]));
}

Test(layout, session_claim_rejects_an_empty_or_unknown_role)
{
	uint32_t idx;

	queue_new();

	cr_assert(eq(int, shmq__session_claim(&fx.seg, 0, 1, 1, &idx), -EINVAL));
	/* bit 6: past SHMQ_ROLE_END1, the last role this layout knows */
	cr_assert(eq(int, shmq__session_claim(&fx.seg, UINT32_C(1) << 6, 1, 1, &idx), -EINVAL));
}

Test(layout, session_claim_starts_with_zero_counters_after_a_reuse)
{
	struct shmq_session_shm *s;
	uint32_t idx, again;

	queue_new();
	cr_assert(eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_PRODUCER, 1, 1, &idx), 0));
	s = shmq__session_at(&fx.seg, idx);
	store_relaxed(&s->c.sent, 9); /* test setup: single thread */
	shmq__session_release(&fx.seg, idx);

	cr_assert(eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_PRODUCER, 1, 1, &again), 0));
	cr_assert(eq(u32, again, idx));
	cr_assert(eq(u64, load_relaxed(&s->c.sent), 0));
}

Test(layout, session_claim_starts_with_the_kinds_per_session_state_zeroed)
{
	struct shmq_session_shm *s;
	uint32_t idx, again;

	queue_new();
	cr_assert(eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_PRODUCER, 1, 1, &idx), 0));
	s = shmq__session_at(&fx.seg, idx);
	for (uint32_t k = 0; k < SHMQ_SESSION_KIND_WORDS; k++)
		store_relaxed(&s->k.words[k], 0xdead0000u + k); /* a previous kind's leftovers */
	shmq__session_release(&fx.seg, idx);

	cr_assert(eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_PRODUCER, 1, 1, &again), 0));
	cr_assert(eq(u32, again, idx));
	for (uint32_t k = 0; k < SHMQ_SESSION_KIND_WORDS; k++)
		cr_assert(eq(u32, load_relaxed(&s->k.words[k]), 0), "word %u", k);
}

Test(layout, session_release_folds_the_counters_into_the_queue_retired_counters)
{
	struct shmq_counters *ret;
	uint32_t a, b;

	queue_new();
	ret = &queue_shm()->retired;
	cr_assert(eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_PRODUCER, 1, 1, &a), 0));
	cr_assert(eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_CONSUMER, 1, 1, &b), 0));
	/* test setup: single thread, plain stores stand in for the owners' bumps */
	store_relaxed(&fx.seg.sessions[a].c.sent, 10);
	store_relaxed(&fx.seg.sessions[a].c.full, 3);
	store_relaxed(&fx.seg.sessions[a].c.wakes, 2);
	store_relaxed(&fx.seg.sessions[b].c.received, 7);
	store_relaxed(&fx.seg.sessions[b].c.empty, 5);
	store_relaxed(&fx.seg.sessions[b].c.sleeps, 4);

	shmq__session_release(&fx.seg, a);
	shmq__session_release(&fx.seg, b);

	cr_assert(eq(u64, load_relaxed(&ret->sent), 10));
	cr_assert(eq(u64, load_relaxed(&ret->received), 7));
	cr_assert(eq(u64, load_relaxed(&ret->full), 3));
	cr_assert(eq(u64, load_relaxed(&ret->empty), 5));
	cr_assert(eq(u64, load_relaxed(&ret->sleeps), 4));
	cr_assert(eq(u64, load_relaxed(&ret->wakes), 2));
	cr_assert(eq(u64, load_relaxed(&fx.seg.sessions[a].c.sent), 0), "folded counters reset");
}

Test(layout, session_release_folds_the_counters_into_the_semaphore_retired_counters)
{
	struct shmq_sem_shm *s;
	uint32_t idx;

	t_seg_new_sem(&fx, 0, 0, 0);
	s = fx.seg.object;
	cr_assert(eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_SEM, 1, 1, &idx), 0));
	store_relaxed(&fx.seg.sessions[idx].c.sent, 6); /* test setup */

	shmq__session_release(&fx.seg, idx);

	cr_assert(eq(u64, load_relaxed(&s->retired.sent), 6));
}

Test(layout, session_release_past_the_table_is_ignored)
{
	queue_new();

	shmq__session_release(&fx.seg, fx.seg.n_sessions);
	shmq__session_release(&fx.seg, UINT32_MAX);

	cr_assert(eq(u64, load_relaxed(&queue_shm()->retired.sent), 0));
	cr_assert(eq(int, shmq__segment_check(&fx.seg), 0));
}

Test(layout, session_at_returns_null_past_the_table)
{
	queue_new();

	cr_assert(ne(ptr, (void *)shmq__session_at(&fx.seg, fx.seg.n_sessions - 1), NULL));
	cr_assert(eq(ptr, (void *)shmq__session_at(&fx.seg, fx.seg.n_sessions), NULL));
	cr_assert(eq(ptr, (void *)shmq__session_at(&fx.seg, UINT32_MAX), NULL));
}

/* --- Geometry --- */

Test(layout, every_part_of_a_segment_starts_on_a_false_sharing_boundary)
{
	uint32_t sessions[] = {1, 3, 64, SHMQ_SESSIONS_MAX};
	uint32_t slot_sizes[] = {1, 15, 16, 17, 100, 4096};

	for (size_t i = 0; i < sizeof(sessions) / sizeof(sessions[0]); i++) {
		for (size_t j = 0; j < sizeof(slot_sizes) / sizeof(slot_sizes[0]); j++) {
			struct shmq_segment_params p =
				queue_params(4, slot_sizes[j], SHMQ_QMODE_MPMC);

			p.n_sessions = sessions[i];
			t_seg_new(&fx, &p);
			cr_assert(eq(u64, hdr()->sessions_off % SHMQ_FALSE_SHARING_ALIGN, 0));
			cr_assert(eq(u64, hdr()->object_off % SHMQ_FALSE_SHARING_ALIGN, 0));
			cr_assert(eq(u64, hdr()->slots_off % SHMQ_FALSE_SHARING_ALIGN, 0));
			cr_assert(
				eq(u64, (uintptr_t)fx.seg.sessions % SHMQ_FALSE_SHARING_ALIGN, 0));
			cr_assert(eq(u64, (uintptr_t)fx.seg.object % SHMQ_FALSE_SHARING_ALIGN, 0));
			cr_assert(eq(u64, (uintptr_t)fx.seg.slots % SHMQ_FALSE_SHARING_ALIGN, 0));
			t_seg_free(&fx);
		}
	}

	t_seg_new_sem(&fx, 0, 0, 0);
	cr_assert(eq(u64, hdr()->sessions_off % SHMQ_FALSE_SHARING_ALIGN, 0));
	cr_assert(eq(u64, hdr()->object_off % SHMQ_FALSE_SHARING_ALIGN, 0));
}

Test(layout, parts_of_a_segment_follow_each_other_without_overlap)
{
	uint64_t sessions_end, object_end, slots_end;

	queue_new();
	sessions_end =
		hdr()->sessions_off + (uint64_t)hdr()->n_sessions * sizeof(struct shmq_session_shm);
	object_end = hdr()->object_off + sizeof(struct shmq_queue_shm);
	slots_end = hdr()->slots_off +
		    (uint64_t)hdr()->geom.queue.n_slots * hdr()->geom.queue.slot_stride;

	cr_assert(hdr()->sessions_off >= sizeof(struct shmq_segment_hdr));
	cr_assert(hdr()->object_off >= sessions_end);
	cr_assert(hdr()->slots_off >= object_end);
	cr_assert(slots_end <= fx.size);
}

Test(layout, slot_stride_is_the_slot_header_plus_the_slot_size_rounded_to_the_slot_alignment)
{
	uint32_t slot_sizes[] = {1, 15, 16, 17, 64, 100};
	uint32_t want[] = {32, 32, 32, 48, 80, 128};

	for (size_t i = 0; i < sizeof(slot_sizes) / sizeof(slot_sizes[0]); i++) {
		t_seg_new_queue(&fx, 4, slot_sizes[i], SHMQ_QMODE_SPSC);
		cr_assert(eq(u32, fx.seg.geom.queue.slot_stride, want[i]), "slot_size %u",
			  slot_sizes[i]);
		t_seg_free(&fx);
	}
}

Test(layout, queue_reset_origin_moves_head_tail_and_every_slot_turn)
{
	uint32_t origin = UINT32_MAX - 2; /* the next three positions wrap to 0 */

	queue_new();
	shmq__queue_reset_origin(&fx.seg, origin);

	cr_assert(eq(u32, load_relaxed(&queue_shm()->head), origin));
	cr_assert(eq(u32, load_relaxed(&queue_shm()->tail), origin));
	for (uint32_t k = 0; k < 8; k++) {
		uint32_t pos = origin + k;
		struct shmq_slot_hdr *h =
			(struct shmq_slot_hdr *)(fx.seg.slots +
						 (size_t)(pos & 7) * fx.seg.geom.queue.slot_stride);

		cr_assert(eq(u64, load_relaxed(&h->state), (uint64_t)pos << 32), "pos %u", pos);
	}
}

/* --- Random corruption --- */

/* Header bytes that attach neither reads nor validates: display and reserved fields. */
static bool byte_is_display_only(size_t off)
{
	return (off >= offsetof(struct shmq_segment_hdr, layout_minor) &&
		off < offsetof(struct shmq_segment_hdr, kind)) ||
	       (off >= offsetof(struct shmq_segment_hdr, created_realtime_ns) &&
		off < offsetof(struct shmq_segment_hdr, n_sessions)) ||
	       (off >= offsetof(struct shmq_segment_hdr, object_id) &&
		off < offsetof(struct shmq_segment_hdr, state)) ||
	       off >= offsetof(struct shmq_segment_hdr, reserved0);
}

/*
 * The layout an accepted header describes must lie inside the mapping, in
 * order, without overlap: that, not equality with the original, is what
 * attach can promise (a flip of the mode byte from MPMC to SPSC is a valid
 * header, and nothing in the ABI can tell it from a real one).
 */
static void assert_layout_in_bounds(const struct shmq_segment *s, const unsigned char *base,
				    uint64_t size, unsigned int iter)
{
	uint64_t sessions_off = (uint64_t)((const unsigned char *)s->sessions - base);
	uint64_t object_off = (uint64_t)((const unsigned char *)s->object - base);
	uint64_t sessions_end =
		sessions_off + (uint64_t)s->n_sessions * sizeof(struct shmq_session_shm);
	uint64_t object_end =
		object_off + (s->kind == SHMQ_KIND_QUEUE ? sizeof(struct shmq_queue_shm)
							 : sizeof(struct shmq_sem_shm));

	cr_assert(s->n_sessions >= 1 && s->n_sessions <= SHMQ_SESSIONS_MAX, "iter %u", iter);
	cr_assert(sessions_off >= sizeof(struct shmq_segment_hdr), "iter %u", iter);
	cr_assert(sessions_end <= object_off, "iter %u", iter);
	cr_assert(object_end <= size, "iter %u", iter);
	if (s->kind == SHMQ_KIND_QUEUE) {
		uint64_t slots_off = (uint64_t)(s->slots - base);
		uint64_t slots_end =
			slots_off + (uint64_t)s->geom.queue.n_slots * s->geom.queue.slot_stride;
		uint64_t slot_need =
			sizeof(struct shmq_slot_hdr) + (uint64_t)s->geom.queue.slot_size;

		cr_assert(slots_off >= object_end, "iter %u", iter);
		cr_assert(s->geom.queue.slot_stride >= slot_need, "iter %u", iter);
		cr_assert(slots_end <= size, "iter %u", iter);
	}
	cr_assert(memchr(s->name, '\0', sizeof(s->name)) != NULL, "iter %u", iter);
}

/* Drive the ring code over an accepted (possibly altered) segment: must stay in bounds. */
static void exercise_queue(struct shmq_segment *s)
{
	unsigned char buf[256];
	struct shmq_ring r;
	uint32_t idx;

	if (s->kind != SHMQ_KIND_QUEUE)
		return;
	if (shmq__session_claim(s, SHMQ_ROLE_PRODUCER | SHMQ_ROLE_CONSUMER, 1, 1, &idx) < 0)
		idx = UINT32_MAX;
	if (shmq__ring_attach(&r, s, idx) < 0)
		return;
	memset(buf, 0x5a, sizeof(buf));
	for (int i = 0; i < 3; i++)
		(void)shmq__ring_try_send(
			&r, buf, s->geom.queue.slot_size < 64 ? s->geom.queue.slot_size : 64);
	for (int i = 0; i < 4; i++)
		(void)shmq__ring_try_recv(&r, buf, sizeof(buf));
	(void)shmq__ring_depth(&r);
	(void)shmq__ring_check(&r);
	(void)shmq__segment_check(s);
	if (idx != UINT32_MAX)
		shmq__session_release(s, idx);
}

Test(layout, random_header_corruption_is_rejected_or_yields_an_in_bounds_layout)
{
	struct shmq_segment_params p = queue_params(8, 64, SHMQ_QMODE_MPMC);
	uint64_t seed = t_seed(), rng = seed;
	unsigned int accepted = 0, altered = 0, rejected = 0;
	unsigned char *mem, *pristine;
	struct shmq_segment orig;
	uint64_t size;

	cr_assert(eq(int, shmq__segment_size(&p, &size), 0));
	/* Heap, not mmap: AddressSanitizer reports any access past the segment. */
	mem = aligned_alloc(4096, size);
	pristine = malloc(size);
	cr_assert(mem && pristine);
	memset(mem, 0, size);
	cr_assert(eq(int, shmq__segment_format(mem, size, &p), 0));
	cr_assert(eq(int, shmq__segment_attach(mem, size, &orig), 0));
	memcpy(pristine, mem, size);

	for (unsigned int iter = 0; iter < FUZZ_ITERATIONS; iter++) {
		unsigned int n_flips = 1 + (unsigned int)(t_rand(&rng) % 4);
		bool display_only = true;
		struct shmq_segment s;
		int r;

		memcpy(mem, pristine, size);
		for (unsigned int k = 0; k < n_flips; k++) {
			size_t off = (size_t)(t_rand(&rng) % sizeof(struct shmq_segment_hdr));
			unsigned char x = (unsigned char)(1 + t_rand(&rng) % 255);

			mem[off] ^= x;
			display_only = display_only && byte_is_display_only(off);
		}

		r = shmq__segment_attach(mem, size, &s);
		if (r < 0) {
			cr_assert(r == -EBADMSG || r == -EPROTO || r == -EAGAIN,
				  "iter %u (SHMQ_SEED=%" PRIu64 "): attach returned %d", iter, seed,
				  r);
			cr_assert(not(display_only),
				  "iter %u (SHMQ_SEED=%" PRIu64 "): flips of display-only bytes "
				  "made attach fail with %d",
				  iter, seed, r);
			rejected++;
			continue;
		}
		assert_layout_in_bounds(&s, mem, size, iter);
		if (display_only) {
			cr_assert(eq(int, memcmp(&s.geom, &orig.geom, sizeof(s.geom)), 0),
				  "iter %u (SHMQ_SEED=%" PRIu64 ")", iter, seed);
			cr_assert(eq(ptr, (void *)s.slots, (void *)orig.slots), "iter %u", iter);
			cr_assert(eq(int, strcmp(s.name, orig.name), 0), "iter %u", iter);
		}
		if (memcmp(&s.geom, &orig.geom, sizeof(s.geom)) || s.slots != orig.slots ||
		    s.object != orig.object || s.sessions != orig.sessions ||
		    s.n_sessions != orig.n_sessions || s.kind != orig.kind)
			altered++;
		accepted++;
		exercise_queue(&s);
	}

	fprintf(stderr,
		"header fuzz: %u rejected, %u accepted (%u with an altered but in-bounds layout)\n",
		rejected, accepted, altered);
	cr_assert(rejected > 0 && accepted > 0);
	free(pristine);
	free(mem);
}
