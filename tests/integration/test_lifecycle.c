/* SPDX-License-Identifier: MIT */
/*
 * Integration: the life cycle of named objects through shmqd and libshmq.
 * Create, open from a second client, exclusive create, missing names,
 * unlink while attached (the name goes, the memory stays, like
 * shm_unlink()), reuse of an unlinked name, and the kind check between
 * queues and semaphores.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <string.h>

#include <shmq/shmq.h>

#include "tests/helpers.h"
#include "tests/integration/daemon.h"

#define RECV_MS 2000

static struct t_daemon d;

static void setup(void)
{
	t_daemon_start(&d, NULL, NULL);
}

TestSuite(lifecycle, .init = setup, .fini = t_daemon_cleanup_all, .timeout = 30);

static struct shmq_queue_attr qattr(uint32_t n_slots, uint32_t slot_size)
{
	return (struct shmq_queue_attr){
		.size = sizeof(struct shmq_queue_attr),
		.n_slots = n_slots,
		.slot_size = slot_size,
		.mode = SHMQ_MPMC,
		.numa_node = -1,
		.perm = 0600,
	};
}

static struct shmq_sem_attr sattr(uint32_t initial)
{
	return (struct shmq_sem_attr){.size = sizeof(struct shmq_sem_attr), .initial = initial};
}

/* Send @text on @tx and check that @rx receives exactly it. */
static void exchange(struct shmq_queue *tx, struct shmq_queue *rx, const char *text)
{
	char buf[128];
	int n;

	T_OK(shmq_queue_send(tx, text, strlen(text)));
	n = shmq_queue_recv_wait(rx, buf, sizeof(buf), t_deadline_ms(RECV_MS));
	cr_assert(eq(int, n, (int)strlen(text)), "recv: %d (%s)", n, strerror(-n));
	cr_assert(memcmp(buf, text, strlen(text)) == 0, "received another message than '%s'", text);
}

Test(lifecycle, queue_created_by_one_client_is_opened_and_used_by_another)
{
	struct shmq_client *c1 = t_connect(&d), *c2 = t_connect(&d);
	struct shmq_queue_attr a = qattr(8, 64);
	struct shmq_queue *tx, *rx;

	T_OK(shmq_queue_open(c1, "life", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &tx));
	T_OK(shmq_queue_open(c2, "life", SHMQ_RECV, NULL, &rx));
	cr_assert(eq(int, shmq_queue_max_msg(rx), 64));
	exchange(tx, rx, "hello");
	exchange(tx, rx, "");
	T_OK(shmq_queue_close(tx));
	T_OK(shmq_queue_close(rx));
	T_OK(shmq_client_close(c1));
	T_OK(shmq_client_close(c2));
	t_daemon_fini(&d);
}

Test(lifecycle, exclusive_create_of_an_existing_queue_returns_eexist)
{
	struct shmq_client *c1 = t_connect(&d), *c2 = t_connect(&d);
	struct shmq_queue_attr a = qattr(8, 64);
	struct shmq_queue *tx, *rx, *q = NULL;

	T_OK(shmq_queue_open(c1, "dup", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &tx));
	T_ERR(shmq_queue_open(c2, "dup", SHMQ_CREATE | SHMQ_EXCL | SHMQ_RECV, &a, &q), -EEXIST);
	cr_assert(q == NULL, "ret_ was written on failure");
	/* Without SHMQ_EXCL the same name opens the existing queue. */
	T_OK(shmq_queue_open(c2, "dup", SHMQ_CREATE | SHMQ_RECV, &a, &rx));
	exchange(tx, rx, "same queue");
	T_OK(shmq_queue_close(tx));
	T_OK(shmq_queue_close(rx));
	T_OK(shmq_client_close(c1));
	T_OK(shmq_client_close(c2));
	t_daemon_fini(&d);
}

Test(lifecycle, open_of_a_missing_queue_returns_enoent)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q = NULL;

	T_ERR(shmq_queue_open(c, "missing", SHMQ_RECV, NULL, &q), -ENOENT);
	T_ERR(shmq_queue_open(c, "missing", SHMQ_VIEW, NULL, &q), -ENOENT);
	T_ERR(shmq_unlink(c, "missing"), -ENOENT);
	cr_assert(q == NULL, "ret_ was written on failure");
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(lifecycle, unlinked_queue_is_gone_by_name_but_open_handles_keep_exchanging)
{
	struct shmq_client *c1 = t_connect(&d), *c2 = t_connect(&d);
	struct shmq_queue_attr a = qattr(8, 64);
	struct shmq_queue *tx, *rx, *q = NULL;

	T_OK(shmq_queue_open(c1, "gone", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &tx));
	T_OK(shmq_queue_open(c2, "gone", SHMQ_RECV, NULL, &rx));
	T_OK(shmq_queue_send(tx, "queued before unlink", 20));
	T_OK(shmq_unlink(c1, "gone"));
	T_ERR(shmq_queue_open(c2, "gone", SHMQ_RECV, NULL, &q), -ENOENT);
	T_ERR(shmq_unlink(c1, "gone"), -ENOENT);

	{
		char buf[64];
		int n = shmq_queue_recv_wait(rx, buf, sizeof(buf), t_deadline_ms(RECV_MS));

		cr_assert(eq(int, n, 20), "message queued before unlink: %d", n);
	}
	for (int i = 0; i < 100; i++)
		exchange(tx, rx, "after unlink");
	T_OK(shmq_queue_close(tx));
	T_OK(shmq_queue_close(rx));
	T_OK(shmq_client_close(c1));
	T_OK(shmq_client_close(c2));
	t_daemon_fini(&d);
}

Test(lifecycle, unlinked_name_is_reused_by_a_new_independent_queue)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue_attr a = qattr(8, 64), b = qattr(16, 128);
	struct shmq_queue *old_tx, *old_rx, *new_q;
	char buf[128];

	T_OK(shmq_queue_open(c, "reuse", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &old_tx));
	T_OK(shmq_queue_open(c, "reuse", SHMQ_RECV, NULL, &old_rx));
	T_OK(shmq_unlink(c, "reuse"));
	T_OK(shmq_queue_open(c, "reuse", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND | SHMQ_RECV, &b,
			     &new_q));
	cr_assert(eq(int, shmq_queue_max_msg(new_q), 128), "the new queue has its own geometry");

	T_OK(shmq_queue_send(old_tx, "old", 3));
	T_ERR(shmq_queue_recv(new_q, buf, sizeof(buf)), -EAGAIN);
	exchange(new_q, new_q, "new");
	cr_assert(eq(int, shmq_queue_recv(old_rx, buf, sizeof(buf)), 3),
		  "the old queue kept its message");
	cr_assert(memcmp(buf, "old", 3) == 0);
	T_ERR(shmq_queue_recv(new_q, buf, sizeof(buf)), -EAGAIN);

	T_OK(shmq_queue_close(old_tx));
	T_OK(shmq_queue_close(old_rx));
	T_OK(shmq_queue_close(new_q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(lifecycle, queue_and_its_messages_outlive_the_creating_client)
{
	struct shmq_client *c1 = t_connect(&d), *c2;
	struct shmq_queue_attr a = qattr(8, 64);
	struct shmq_queue *tx, *rx;
	char buf[64];

	T_OK(shmq_queue_open(c1, "persist", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &tx));
	T_OK(shmq_queue_send(tx, "kept", 4));
	T_OK(shmq_queue_close(tx));
	T_OK(shmq_client_close(c1));

	c2 = t_connect(&d);
	T_OK(shmq_queue_open(c2, "persist", SHMQ_RECV, NULL, &rx));
	cr_assert(eq(int, shmq_queue_recv_wait(rx, buf, sizeof(buf), t_deadline_ms(RECV_MS)), 4));
	cr_assert(memcmp(buf, "kept", 4) == 0);
	T_OK(shmq_queue_close(rx));
	T_OK(shmq_unlink(c2, "persist"));
	T_OK(shmq_client_close(c2));
	t_daemon_fini(&d);
}

Test(lifecycle, semaphore_created_by_one_client_is_opened_and_posted_by_another)
{
	struct shmq_client *c1 = t_connect(&d), *c2 = t_connect(&d);
	struct shmq_sem_attr a = sattr(0);
	struct shmq_sem *s1, *s2;

	T_OK(shmq_sem_open(c1, "lsem", SHMQ_CREATE | SHMQ_EXCL, &a, &s1));
	T_OK(shmq_sem_open(c2, "lsem", 0, NULL, &s2));
	T_ERR(shmq_sem_try_wait(s1), -EAGAIN);
	T_OK(shmq_sem_post(s2, 2));
	cr_assert(eq(int, shmq_sem_value(s1), 2));
	T_OK(shmq_sem_wait(s1, t_deadline_ms(RECV_MS)));
	T_OK(shmq_sem_try_wait(s1));
	T_ERR(shmq_sem_wait(s2, t_deadline_ms(10)), -ETIMEDOUT);
	T_OK(shmq_sem_close(s1));
	T_OK(shmq_sem_close(s2));
	T_OK(shmq_client_close(c1));
	T_OK(shmq_client_close(c2));
	t_daemon_fini(&d);
}

Test(lifecycle, exclusive_create_of_an_existing_semaphore_returns_eexist)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_sem_attr a = sattr(1);
	struct shmq_sem *s, *s2 = NULL;

	T_OK(shmq_sem_open(c, "esem", SHMQ_CREATE | SHMQ_EXCL, &a, &s));
	T_ERR(shmq_sem_open(c, "esem", SHMQ_CREATE | SHMQ_EXCL, &a, &s2), -EEXIST);
	cr_assert(s2 == NULL, "ret_ was written on failure");
	T_OK(shmq_sem_close(s));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(lifecycle, open_of_a_missing_semaphore_returns_enoent)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_sem *s = NULL;

	T_ERR(shmq_sem_open(c, "nosem", 0, NULL, &s), -ENOENT);
	cr_assert(s == NULL, "ret_ was written on failure");
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(lifecycle, unlinked_semaphore_is_gone_by_name_while_handles_work_and_the_name_is_reusable)
{
	struct shmq_client *c1 = t_connect(&d), *c2 = t_connect(&d);
	struct shmq_sem_attr a = sattr(0), b = sattr(5);
	struct shmq_sem *s1, *s2, *s3, *s = NULL;

	T_OK(shmq_sem_open(c1, "usem", SHMQ_CREATE | SHMQ_EXCL, &a, &s1));
	T_OK(shmq_sem_open(c2, "usem", 0, NULL, &s2));
	T_OK(shmq_unlink(c2, "usem"));
	T_ERR(shmq_sem_open(c2, "usem", 0, NULL, &s), -ENOENT);
	T_OK(shmq_sem_post(s1, 1));
	T_OK(shmq_sem_wait(s2, t_deadline_ms(RECV_MS)));

	T_OK(shmq_sem_open(c1, "usem", SHMQ_CREATE | SHMQ_EXCL, &b, &s3));
	cr_assert(eq(int, shmq_sem_value(s3), 5), "the new semaphore starts at its own initial");
	cr_assert(eq(int, shmq_sem_value(s1), 0), "the old semaphore is untouched");
	T_OK(shmq_sem_close(s1));
	T_OK(shmq_sem_close(s2));
	T_OK(shmq_sem_close(s3));
	T_OK(shmq_client_close(c1));
	T_OK(shmq_client_close(c2));
	t_daemon_fini(&d);
}

Test(lifecycle, opening_a_semaphore_as_a_queue_returns_einval)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_sem_attr a = sattr(0);
	struct shmq_queue_attr qa = qattr(8, 64);
	struct shmq_sem *s;
	struct shmq_queue *q = NULL;

	T_OK(shmq_sem_open(c, "kind", SHMQ_CREATE | SHMQ_EXCL, &a, &s));
	T_ERR(shmq_queue_open(c, "kind", SHMQ_SEND, NULL, &q), -EINVAL);
	T_ERR(shmq_queue_open(c, "kind", SHMQ_VIEW, NULL, &q), -EINVAL);
	T_ERR(shmq_queue_open(c, "kind", SHMQ_CREATE | SHMQ_RECV, &qa, &q), -EINVAL);
	cr_assert(q == NULL, "ret_ was written on failure");
	T_OK(shmq_sem_close(s));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(lifecycle, opening_a_queue_as_a_semaphore_returns_einval)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue_attr a = qattr(8, 64);
	struct shmq_queue *q;
	struct shmq_sem *s = NULL;

	T_OK(shmq_queue_open(c, "qkind", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &q));
	T_ERR(shmq_sem_open(c, "qkind", 0, NULL, &s), -EINVAL);
	cr_assert(s == NULL, "ret_ was written on failure");
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(lifecycle, invalid_names_are_rejected_with_einval)
{
	static const char *const bad[] = {
		"",
		"with space",
		"slash/name",
		"tab\tname",
		"\xc3\xa9",
		"0123456789012345678901234567890123456789012345678901234567890123", /* 64 */
	};
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue_attr a = qattr(8, 64);
	struct shmq_queue *q = NULL;
	struct shmq_sem *s = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		T_ERR(shmq_queue_open(c, bad[i], SHMQ_CREATE | SHMQ_SEND, &a, &q), -EINVAL);
		T_ERR(shmq_sem_open(c, bad[i], SHMQ_CREATE, NULL, &s), -EINVAL);
	}
	/* 63 bytes is the longest valid name. */
	T_OK(shmq_queue_open(c, "012345678901234567890123456789012345678901234567890123456789-._",
			     SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &q));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* What would be silently ignored is refused instead. */
Test(lifecycle, a_bound_without_bounded_and_huge_pages_on_an_open_are_refused)
{
	struct shmq_sem_attr sa = {.size = sizeof(sa), .initial = 1, .max = 4};
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue_attr a = qattr(8, 64);
	struct shmq_queue *q = NULL, *r = NULL;
	struct shmq_sem *s = NULL;

	T_ERR(shmq_sem_open(c, "unbounded", SHMQ_CREATE, &sa, &s), -EINVAL);
	sa.flags = SHMQ_SEM_ATTR_BOUNDED;
	T_OK(shmq_sem_open(c, "unbounded", SHMQ_CREATE, &sa, &s));
	T_OK(shmq_sem_close(s));
	T_OK(shmq_queue_open(c, "pages", SHMQ_CREATE | SHMQ_SEND, &a, &q));
	T_ERR(shmq_queue_open(c, "pages", SHMQ_RECV | SHMQ_HUGEPAGES, NULL, &r), -EINVAL);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(lifecycle, closing_a_client_with_open_handles_returns_ebusy)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue_attr a = qattr(8, 64);
	struct shmq_queue *q;

	T_OK(shmq_queue_open(c, "busy", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &q));
	T_ERR(shmq_client_close(c), -EBUSY);
	T_OK(shmq_queue_send(q, "x", 1)); /* nothing was closed */
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(lifecycle, handles_refuse_calls_outside_their_role_with_ebadf)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue_attr a = qattr(8, 64);
	struct shmq_sem_attr sa = sattr(1);
	struct shmq_queue *tx, *rx, *view;
	struct shmq_sem *s, *sview;
	char buf[64];
	void *slot;
	const void *msg;

	T_OK(shmq_queue_open(c, "roles", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &tx));
	T_OK(shmq_queue_open(c, "roles", SHMQ_RECV, NULL, &rx));
	T_OK(shmq_queue_open(c, "roles", SHMQ_VIEW, NULL, &view));
	T_ERR(shmq_queue_recv(tx, buf, sizeof(buf)), -EBADF);
	T_ERR(shmq_queue_peek(tx, 0, &msg), -EBADF);
	T_ERR(shmq_queue_send(rx, "x", 1), -EBADF);
	T_ERR(shmq_queue_reserve(rx, 0, &slot), -EBADF);
	T_ERR(shmq_queue_send(view, "x", 1), -EBADF);
	T_ERR(shmq_queue_recv(view, buf, sizeof(buf)), -EBADF);
	T_OK(shmq_queue_send(tx, "x", 1));
	{
		struct shmq_queue_stats st = {.size = sizeof(st)};

		T_OK(shmq_queue_stats(view, &st));
		cr_assert(eq(u32, st.depth, 1), "a view sees the depth");
		cr_assert(eq(u64, st.sent, 1));
	}
	T_OK(shmq_sem_open(c, "rsem", SHMQ_CREATE | SHMQ_EXCL, &sa, &s));
	T_OK(shmq_sem_open(c, "rsem", SHMQ_VIEW, NULL, &sview));
	T_ERR(shmq_sem_try_wait(sview), -EBADF);
	T_ERR(shmq_sem_post(sview, 1), -EBADF);
	cr_assert(eq(int, shmq_sem_value(sview), 1), "a view reads the value");
	T_OK(shmq_sem_close(s));
	T_OK(shmq_sem_close(sview));
	T_OK(shmq_queue_close(tx));
	T_OK(shmq_queue_close(rx));
	T_OK(shmq_queue_close(view));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(lifecycle, messages_larger_than_a_slot_or_a_buffer_return_emsgsize)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue_attr a = qattr(8, 64);
	struct shmq_queue *q;
	char big[65] = {0}, small[8];

	T_OK(shmq_queue_open(c, "size", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND | SHMQ_RECV, &a, &q));
	T_ERR(shmq_queue_send(q, big, sizeof(big)), -EMSGSIZE);
	T_OK(shmq_queue_send(q, big, 64)); /* exact fit */
	T_OK(shmq_queue_send(q, "next", 4));
	/* Too small a buffer: the message is consumed and the queue moves on. */
	T_ERR(shmq_queue_recv(q, small, sizeof(small)), -EMSGSIZE);
	cr_assert(eq(int, shmq_queue_recv(q, small, sizeof(small)), 4));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(lifecycle, bounded_semaphore_refuses_a_post_above_its_maximum)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_sem_attr a = {
		.size = sizeof(a), .initial = 1, .max = 2, .flags = SHMQ_SEM_ATTR_BOUNDED};
	struct shmq_sem *s;

	T_OK(shmq_sem_open(c, "bounded", SHMQ_CREATE | SHMQ_EXCL, &a, &s));
	T_OK(shmq_sem_post(s, 1));
	T_ERR(shmq_sem_post(s, 1), -EOVERFLOW);
	cr_assert(eq(int, shmq_sem_value(s), 2), "nothing was posted");
	T_ERR(shmq_sem_post(s, 0), -EINVAL);
	T_OK(shmq_sem_close(s));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

struct unlinked {
	int n;	 /* objects listed with SHMQ_OBJECT_UNLINKED */
	int all; /* objects listed */
};

static int count_unlinked(void *arg, const struct shmq_object_info *o)
{
	struct unlinked *u = arg;

	u->all++;
	u->n += (o->flags & SHMQ_OBJECT_UNLINKED) != 0;
	return 0;
}

/*
 * What an unlink leaves to the handles already open, for every kind: the
 * object keeps working for them, and is freed by the last close.
 */
Test(lifecycle, every_kind_keeps_working_for_its_open_handles_after_unlink)
{
	const struct shmq_barrier_attr ba = {.size = sizeof(ba), .parties = 1};
	struct shmq_client *c = t_connect(&d);
	struct shmq_sem_attr sa = sattr(0);
	struct shmq_unlinked_handles {
		struct shmq_sem *s;
		struct shmq_event *e;
		struct shmq_lock *l;
		struct shmq_cond *cv;
		struct shmq_barrier *b;
		struct shmq_pipe *p0, *p1;
	} h;
	const char *names[] = {"u-sem", "u-event", "u-lock", "u-cond", "u-barrier", "u-pipe"};
	struct unlinked u = {0};
	char buf[8];

	T_OK(shmq_sem_open(c, "u-sem", SHMQ_CREATE | SHMQ_EXCL, &sa, &h.s));
	T_OK(shmq_event_open(c, "u-event", SHMQ_CREATE | SHMQ_EXCL, NULL, &h.e));
	T_OK(shmq_lock_open(c, "u-lock", SHMQ_CREATE | SHMQ_EXCL, NULL, &h.l));
	T_OK(shmq_cond_open(c, "u-cond", SHMQ_CREATE | SHMQ_EXCL, h.l, NULL, &h.cv));
	T_OK(shmq_barrier_open(c, "u-barrier", SHMQ_CREATE | SHMQ_EXCL, &ba, &h.b));
	T_OK(shmq_pipe_open(c, "u-pipe", 0, SHMQ_CREATE | SHMQ_EXCL, NULL, &h.p0));
	T_OK(shmq_pipe_open(c, "u-pipe", 1, 0, NULL, &h.p1));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		T_OK(shmq_unlink(c, names[i]));
	cr_assert(eq(int, shmq_object_list(c, count_unlinked, &u), 6));
	cr_assert(eq(int, u.n, 6), "listed as unlinked while open");

	T_OK(shmq_sem_post(h.s, 1));
	T_OK(shmq_sem_wait(h.s, t_deadline_ms(RECV_MS)));
	cr_assert(eq(int, shmq_event_set(h.e), 1), "it was clear");
	T_OK(shmq_event_wait(h.e, t_deadline_ms(RECV_MS)));
	T_OK(shmq_lock_acquire(h.l, t_deadline_ms(RECV_MS)));
	cr_assert(ge(int, shmq_cond_notify(h.cv, 1), 0));
	T_ERR(shmq_cond_wait(h.cv, t_deadline_ms(10)), -ETIMEDOUT); /* and the lock back */
	T_OK(shmq_lock_release(h.l));
	cr_assert(eq(int, shmq_barrier_wait(h.b, t_deadline_ms(RECV_MS)), 0));
	T_OK(shmq_pipe_send(h.p1, "pipe", 4, t_deadline_ms(RECV_MS)));
	cr_assert(eq(int, shmq_pipe_recv(h.p0, buf, sizeof(buf), t_deadline_ms(RECV_MS)), 4));
	/* a new object under an unlinked name is another object */
	{
		struct shmq_sem *fresh;

		T_OK(shmq_sem_open(c, "u-sem", SHMQ_CREATE | SHMQ_EXCL, &sa, &fresh));
		T_OK(shmq_sem_post(fresh, 3));
		cr_assert(eq(int, shmq_sem_value(h.s), 0), "the unlinked one is untouched");
		T_OK(shmq_sem_close(fresh));
		T_OK(shmq_unlink(c, "u-sem"));
	}

	T_OK(shmq_pipe_close(h.p1));
	T_OK(shmq_pipe_close(h.p0));
	T_OK(shmq_barrier_close(h.b));
	T_OK(shmq_cond_close(h.cv));
	T_OK(shmq_lock_close(h.l));
	T_OK(shmq_event_close(h.e));
	T_OK(shmq_sem_close(h.s));
	u = (struct unlinked){0};
	cr_assert(eq(int, shmq_object_list(c, count_unlinked, &u), 0));
	cr_assert(eq(int, u.all, 0), "freed by the last close");
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

struct blocked_recv {
	const char *sock;
	int result;
};

static int recv_forever(void *arg)
{
	struct blocked_recv *b = arg;
	struct shmq_client *c;
	struct shmq_queue *q;
	char buf[16];

	if (shmq_client_connect(b->sock, &c) || shmq_queue_open(c, "waited", SHMQ_RECV, NULL, &q))
		return 1;
	b->result = shmq_queue_recv_wait(q, buf, sizeof(buf), t_deadline_ms(10000));
	return 0;
}

/* A caller blocked on an object is not woken by its unlink: the next send still reaches it. */
Test(lifecycle, an_unlink_does_not_wake_a_blocked_receiver_and_a_send_still_reaches_it)
{
	struct blocked_recv *b = t_shared_alloc(sizeof(*b));
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue_attr a = qattr(8, 16);
	struct shmq_queue *tx;
	pid_t pid;

	T_OK(shmq_queue_open(c, "waited", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &tx));
	*b = (struct blocked_recv){.sock = d.sock, .result = -1};
	pid = t_fork_child(recv_forever, b);
	t_sleep_ms(100); /* into its futex wait */
	T_OK(shmq_unlink(c, "waited"));
	t_sleep_ms(100);
	cr_assert(eq(int, b->result, -1), "the unlink woke the receiver");
	T_OK(shmq_queue_send(tx, "still here", 10));
	cr_assert(eq(int, t_wait_peer_ms(pid, 10000), 0));
	cr_assert(eq(int, b->result, 10));
	T_OK(shmq_queue_close(tx));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}
