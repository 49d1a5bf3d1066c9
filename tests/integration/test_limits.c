/* SPDX-License-Identifier: MIT */
/*
 * Integration: the daemon's limits, each reached and then relieved.
 * Objects per uid, memory per uid, connected clients, and the single
 * sender / single receiver of the declared queue modes.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "tests/helpers.h"
#include "tests/integration/daemon.h"

#define CHILD_MS 10000

static struct t_daemon d;

TestSuite(limits, .fini = t_daemon_cleanup_all, .timeout = 30);

static struct shmq_queue_attr qattr(uint32_t n_slots, uint32_t slot_size, uint32_t mode)
{
	return (struct shmq_queue_attr){
		.size = sizeof(struct shmq_queue_attr),
		.n_slots = n_slots,
		.slot_size = slot_size,
		.mode = mode,
		.numa_node = -1,
		.perm = 0600,
	};
}

struct other_uid {
	const char *sock;
	int create;
};

static int create_as_other_uid(void *arg)
{
	struct other_uid *o = arg;
	struct shmq_queue_attr a = qattr(8, 64, SHMQ_MPMC);
	struct shmq_client *c;
	struct shmq_queue *q;

	o->create = shmq_client_connect(o->sock, &c);
	if (o->create < 0)
		return 0;
	o->create = shmq_queue_open(c, "others", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &q);
	if (o->create == 0)
		shmq_queue_close(q);
	shmq_client_close(c);
	return 0;
}

Test(limits, create_beyond_max_objects_per_uid_returns_enospc_until_one_is_unlinked)
{
	static const char *const args[] = {"--max-objects-per-uid=3", NULL};
	struct shmq_queue_attr a = qattr(8, 64, SHMQ_MPMC);
	struct shmq_sem_attr sa = {.size = sizeof(sa)};
	struct shmq_queue *q1, *q2, *q = NULL;
	struct shmq_sem *s1, *s = NULL;
	struct shmq_client *c;
	struct other_uid *o;

	t_daemon_start(&d, args, NULL);
	c = t_connect(&d);
	T_OK(shmq_queue_open(c, "o1", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &q1));
	T_OK(shmq_queue_open(c, "o2", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &q2));
	T_OK(shmq_sem_open(c, "o3", SHMQ_CREATE | SHMQ_EXCL, &sa, &s1));
	T_ERR(shmq_queue_open(c, "o4", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &q), -ENOSPC);
	T_ERR(shmq_sem_open(c, "o4", SHMQ_CREATE, &sa, &s), -ENOSPC);
	cr_assert(q == NULL && s == NULL, "ret_ was written on failure");
	/* Opening existing objects is not creating. */
	T_OK(shmq_queue_open(c, "o1", SHMQ_RECV, NULL, &q));
	T_OK(shmq_queue_close(q));

	/* The limit is per uid: another user still has its own three. */
	o = t_shared_alloc(sizeof(*o));
	o->sock = d.sock;
	o->create = 1;
	cr_assert(eq(int,
		     t_wait_peer_ms(t_fork_as(T_UNPRIVILEGED_ID, T_UNPRIVILEGED_ID,
					      create_as_other_uid, o),
				    CHILD_MS),
		     0));
	T_OK(o->create);

	/* Unlinked and closed, the object no longer counts. */
	T_OK(shmq_queue_close(q1));
	T_OK(shmq_unlink(c, "o1"));
	T_OK(shmq_queue_open(c, "o4", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &q));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_queue_close(q2));
	T_OK(shmq_sem_close(s1));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(limits, create_beyond_max_memory_per_uid_returns_enospc)
{
	static const char *const args[] = {"--max-memory-per-uid=1M", NULL};
	struct shmq_queue_attr big = qattr(1024, 4096, SHMQ_MPMC); /* > 4 MiB */
	struct shmq_queue_attr half = qattr(256, 1024, SHMQ_MPMC); /* ~ 300 KiB */
	struct shmq_queue *q1, *q2, *q = NULL;
	struct shmq_client *c;
	int r;

	t_daemon_start(&d, args, NULL);
	c = t_connect(&d);
	T_ERR(shmq_queue_open(c, "big", SHMQ_CREATE | SHMQ_SEND, &big, &q), -ENOSPC);
	cr_assert(q == NULL, "ret_ was written on failure");
	T_OK(shmq_queue_open(c, "m1", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &half, &q1));
	T_OK(shmq_queue_open(c, "m2", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &half, &q2));
	/* The sum counts: sooner or later the next one does not fit. */
	for (int i = 0; i < 8; i++) {
		char name[16];

		snprintf(name, sizeof(name), "m%d", i + 3);
		r = shmq_queue_open(c, name, SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &half, &q);
		if (r < 0)
			break;
		T_OK(shmq_queue_close(q));
	}
	T_ERR(r, -ENOSPC);
	/* Freed memory is available again. */
	T_OK(shmq_queue_close(q1));
	T_OK(shmq_unlink(c, "m1"));
	T_OK(shmq_queue_open(c, "again", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &half, &q));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_queue_close(q2));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(limits, connect_beyond_max_clients_returns_enospc_until_one_disconnects)
{
	static const char *const args[] = {"--max-clients=3", NULL};
	struct shmq_client *c[3], *extra = NULL;

	t_daemon_start(&d, args, NULL);
	for (int i = 0; i < 3; i++)
		c[i] = t_connect(&d);
	T_ERR(shmq_client_connect(d.sock, &extra), -ENOSPC);
	cr_assert(extra == NULL, "ret_ was written on failure");
	T_ERR(shmq_client_connect(d.sock, &extra), -ENOSPC);

	/* The refused attempts used nothing up: one leaves, one more gets in. */
	T_OK(shmq_client_close(c[0]));
	{
		uint64_t deadline = t_now_ns() + 2000000000ull;
		int r;

		/* The daemon sees the hang-up asynchronously. */
		while ((r = shmq_client_connect(d.sock, &extra)) == -ENOSPC &&
		       t_now_ns() < deadline)
			t_sleep_ms(5);
		T_OK(r);
	}
	T_OK(shmq_client_close(extra));
	T_OK(shmq_client_close(c[1]));
	T_OK(shmq_client_close(c[2]));
	t_daemon_fini(&d);
}

/* Open @name with @flags and expect @want; close what opened. */
static void open_expect(struct shmq_client *c, const char *name, unsigned int flags, int want)
{
	struct shmq_queue *q = NULL;
	int r = shmq_queue_open(c, name, flags, NULL, &q);

	cr_assert(r == want, "open %s flags %#x: %d (%s), expected %d (%s)", name, flags, r,
		  strerror(-r), want, strerror(-want));
	if (r == 0)
		T_OK(shmq_queue_close(q));
}

Test(limits, spsc_queue_admits_one_sender_and_one_receiver_at_a_time)
{
	struct shmq_queue_attr a = qattr(8, 64, SHMQ_SPSC);
	struct shmq_client *c1, *c2;
	struct shmq_queue *tx, *rx, *tx2;

	t_daemon_start(&d, NULL, NULL);
	c1 = t_connect(&d);
	c2 = t_connect(&d);
	T_OK(shmq_queue_open(c1, "spsc", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &tx));
	T_OK(shmq_queue_open(c1, "spsc", SHMQ_RECV, NULL, &rx));
	open_expect(c2, "spsc", SHMQ_SEND, -EBUSY);
	open_expect(c1, "spsc", SHMQ_SEND, -EBUSY); /* per handle, not per client */
	open_expect(c2, "spsc", SHMQ_RECV, -EBUSY);
	open_expect(c2, "spsc", SHMQ_VIEW, 0); /* a view takes no role */

	/* The role is free again once its holder closes; the successor resumes the ring. */
	T_OK(shmq_queue_send(tx, "one", 3));
	T_OK(shmq_queue_close(tx));
	T_OK(shmq_queue_open(c2, "spsc", SHMQ_SEND, NULL, &tx2));
	T_OK(shmq_queue_send(tx2, "two", 3));
	{
		char buf[8];

		cr_assert(eq(int, shmq_queue_recv_wait(rx, buf, sizeof(buf), t_deadline_ms(2000)),
			     3));
		cr_assert(memcmp(buf, "one", 3) == 0);
		cr_assert(eq(int, shmq_queue_recv_wait(rx, buf, sizeof(buf), t_deadline_ms(2000)),
			     3));
		cr_assert(memcmp(buf, "two", 3) == 0);
	}
	T_OK(shmq_queue_close(tx2));
	T_OK(shmq_queue_close(rx));
	T_OK(shmq_client_close(c1));
	T_OK(shmq_client_close(c2));
	t_daemon_fini(&d);
}

Test(limits, mpsc_admits_one_receiver_and_spmc_one_sender)
{
	struct shmq_queue_attr mpsc = qattr(8, 64, SHMQ_MPSC), spmc = qattr(8, 64, SHMQ_SPMC);
	struct shmq_client *c;
	struct shmq_queue *a, *b;

	t_daemon_start(&d, NULL, NULL);
	c = t_connect(&d);
	T_OK(shmq_queue_open(c, "mpsc", SHMQ_CREATE | SHMQ_EXCL | SHMQ_RECV, &mpsc, &a));
	open_expect(c, "mpsc", SHMQ_RECV, -EBUSY);
	open_expect(c, "mpsc", SHMQ_SEND, 0);
	T_OK(shmq_queue_open(c, "spmc", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &spmc, &b));
	open_expect(c, "spmc", SHMQ_SEND, -EBUSY);
	open_expect(c, "spmc", SHMQ_RECV, 0);
	T_OK(shmq_queue_close(a));
	T_OK(shmq_queue_close(b));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(limits, open_beyond_max_attach_per_session_returns_enospc)
{
	static const char *const args[] = {"--max-attach-per-session=2", NULL};
	struct shmq_queue_attr a = qattr(8, 64, SHMQ_MPMC);
	struct shmq_client *c, *c2;
	struct shmq_queue *q1, *q2, *q = NULL;

	t_daemon_start(&d, args, NULL);
	c = t_connect(&d);
	T_OK(shmq_queue_open(c, "att", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &q1));
	T_OK(shmq_queue_open(c, "att", SHMQ_RECV, NULL, &q2));
	T_ERR(shmq_queue_open(c, "att", SHMQ_VIEW, NULL, &q), -ENOSPC);
	T_ERR(shmq_queue_open(c, "att2", SHMQ_CREATE | SHMQ_SEND, &a, &q), -ENOSPC);
	cr_assert(q == NULL, "ret_ was written on failure");
	{
		/* Checked before creating: the refused create left no object behind. */
		struct shmq_queue *v = NULL;

		c2 = t_connect(&d);
		T_ERR(shmq_queue_open(c2, "att2", SHMQ_VIEW, NULL, &v), -ENOENT);
	}
	/* Per session: another client has its own budget. */
	T_OK(shmq_queue_open(c2, "att", SHMQ_SEND, NULL, &q));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_queue_close(q1));
	T_OK(shmq_queue_open(c, "att", SHMQ_VIEW, NULL, &q));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_queue_close(q2));
	T_OK(shmq_client_close(c));
	T_OK(shmq_client_close(c2));
	t_daemon_fini(&d);
}

Test(limits, attach_beyond_the_segments_session_records_returns_enospc)
{
	static const char *const args[] = {"--sessions-per-object=2", NULL};
	struct shmq_queue_attr a = qattr(8, 64, SHMQ_MPMC);
	struct shmq_client *c;
	struct shmq_queue *q1, *q2, *v, *q = NULL;

	t_daemon_start(&d, args, NULL);
	c = t_connect(&d);
	T_OK(shmq_queue_open(c, "rec", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &q1));
	T_OK(shmq_queue_open(c, "rec", SHMQ_RECV, NULL, &q2));
	T_ERR(shmq_queue_open(c, "rec", SHMQ_SEND, NULL, &q), -ENOSPC);
	T_OK(shmq_queue_open(c, "rec", SHMQ_VIEW, NULL, &v)); /* a view holds no record */
	T_OK(shmq_queue_close(q2));
	T_OK(shmq_queue_open(c, "rec", SHMQ_SEND, NULL, &q)); /* the record was freed */
	T_OK(shmq_queue_close(q));
	T_OK(shmq_queue_close(v));
	T_OK(shmq_queue_close(q1));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* --- Log volume: a per-uid rate limit on every line a client causes --- */

#define FLOOD_CYCLES 1000
#define LOG_BURST    200 /* daemon/log.c RATELIMIT_BURST, per uid per 10 s */

TestSuite(lograte, .fini = t_daemon_cleanup_all, .timeout = 60);

struct flood {
	const char *sock;
	int r;
};

/* Create and unlink as fast as the daemon answers: two info lines a cycle, unlimited. */
static int flood(void *arg)
{
	struct flood *f = arg;
	struct shmq_queue_attr a = {.size = sizeof(a), .n_slots = 2, .slot_size = 8};
	struct shmq_client *c;
	struct shmq_queue *q;

	f->r = shmq_client_connect(f->sock, &c);
	for (int i = 0; i < FLOOD_CYCLES && f->r == 0; i++) {
		f->r = shmq_queue_open(c, "flood", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &q);
		if (f->r == 0) {
			shmq_queue_close(q);
			f->r = shmq_unlink(c, "flood");
		}
	}
	if (f->r == 0)
		shmq_client_close(c);
	return 0;
}

static unsigned int count_of(const char *log, const char *what)
{
	unsigned int n = 0;

	for (const char *p = log; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

Test(lograte, one_uid_flooding_requests_is_limited_and_another_uid_still_logged)
{
	static struct t_daemon dl;
	static char log[4 << 20];
	struct flood *f = t_shared_alloc(sizeof(*f));
	struct shmq_client *c;
	struct shmq_sem *s;
	unsigned int created;

	t_need_root("the flood runs as a second uid");
	t_daemon_start(&dl, NULL, NULL);
	*f = (struct flood){.sock = dl.sock, .r = 1};
	cr_assert(
		eq(int,
		   t_wait_peer_ms(t_fork_as(T_UNPRIVILEGED_ID, T_UNPRIVILEGED_ID, flood, f), 30000),
		   0));
	cr_assert(eq(int, f->r, 0), "the flood: %s", strerror(-f->r));
	/* Another uid's line is its own bucket's: written at once. */
	c = t_connect(&dl);
	T_OK(shmq_sem_open(c, "after-flood", SHMQ_CREATE | SHMQ_EXCL, NULL, &s));
	t_daemon_read_log(&dl, log, sizeof(log));
	created = count_of(log, "'flood' created");
	/* The flood fits one interval on any healthy machine; two at most. */
	cr_assert(le(uint, created, 2 * LOG_BURST), "%u of %d creates logged", created,
		  FLOOD_CYCLES);
	cr_assert(ge(uint, created, 1));
	cr_assert(strstr(log, "'after-flood' created") != NULL, "root's create was not logged");
	/* The summary comes with the next tick after the interval, without another line. */
	t_sleep_ms(11500);
	t_daemon_read_log(&dl, log, sizeof(log));
	cr_assert(strstr(log, "uid 65534: ") != NULL && strstr(log, "suppressed by the rate limit"),
		  "no summary of the suppressed lines");
	shmq_sem_close(s);
	shmq_client_close(c);
	t_daemon_fini(&dl);
}
