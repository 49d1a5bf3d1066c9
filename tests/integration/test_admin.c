/* SPDX-License-Identifier: MIT */
/*
 * Integration: the administration API (shmq_daemon_*, shmq_object_*,
 * shmq_queue_purge, shmq_view_*) against a real daemon, and the protocol
 * ops behind it (STATUS, CONFIG, SESSIONS, LIST, STAT, ATTACHMENTS, PURGE).
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <shmq/shmq.h>
#include <shmq/version.h>

#include "shm/layout.h"
#include "tests/helpers.h"
#include "tests/integration/daemon.h"

#define CHILD_MS 10000

static struct t_daemon d;
static struct shmq_client *c;

static const char *const daemon_args[] = {"--max-clients=77", "--max-memory-per-uid=512M", NULL};

static void setup(void)
{
	t_daemon_start(&d, daemon_args, NULL);
	c = t_connect(&d);
}

TestSuite(admin, .init = setup, .fini = t_daemon_cleanup_all, .timeout = 30);

/* The success path of every test: the daemon must stop cleanly. */
static void finish(void)
{
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

static struct shmq_queue *queue_new(const char *name, uint32_t mode, unsigned int flags)
{
	struct shmq_queue_attr a = {
		.size = sizeof(a), .n_slots = 16, .slot_size = 64, .mode = mode};
	struct shmq_queue *q = NULL;

	T_OK(shmq_queue_open(c, name, SHMQ_CREATE | SHMQ_EXCL | flags, &a, &q));
	return q;
}

Test(admin, status_reports_this_daemon_with_its_counts)
{
	struct shmq_daemon_status st = {.size = sizeof(st)};
	struct shmq_queue *q = queue_new("st.q", SHMQ_MPMC, SHMQ_SEND);

	T_OK(shmq_daemon_status(c, &st));
	cr_assert(eq(int, st.pid, d.pid));
	cr_assert(strcmp(st.version, SHMQ_VERSION_STRING) == 0, "%s", st.version);
	cr_assert(strcmp(st.socket_path, d.sock) == 0, "%s", st.socket_path);
	cr_assert(eq(u32, st.n_sessions, 1));
	cr_assert(eq(u32, st.n_objects, 1));
	cr_assert(eq(u32, st.max_clients, 77));
	cr_assert(gt(u64, st.memory_bytes, 0));
	cr_assert(gt(u64, st.uptime_ns, 0));
	shmq_queue_close(q);
	finish();
}

Test(admin, status_rejects_a_struct_smaller_than_the_first_version)
{
	struct shmq_daemon_status st = {.size = sizeof(st) - 8};

	T_ERR(shmq_daemon_status(c, &st), -EINVAL);
	finish();
}

struct config_seen {
	int n;
	char max_clients[32];
	char max_memory[32];
};

static int on_config(void *arg, const char *name, const char *value)
{
	struct config_seen *s = arg;

	s->n++;
	if (!strcmp(name, "max-clients"))
		snprintf(s->max_clients, sizeof(s->max_clients), "%s", value);
	if (!strcmp(name, "max-memory-per-uid"))
		snprintf(s->max_memory, sizeof(s->max_memory), "%s", value);
	return 0;
}

Test(admin, config_reports_every_option_with_the_value_in_force)
{
	struct config_seen s = {0};
	int n = shmq_daemon_config(c, on_config, &s);

	cr_assert(gt(int, n, 10), "%d", n);
	cr_assert(eq(int, n, s.n));
	cr_assert(strcmp(s.max_clients, "77") == 0, "%s", s.max_clients);
	cr_assert(strcmp(s.max_memory, "512M") == 0, "%s", s.max_memory);
	finish();
}

static int stop_at_first(void *arg, const char *name, const char *value)
{
	(void)arg;
	(void)name;
	(void)value;
	return -ECANCELED;
}

Test(admin, a_callback_error_stops_the_listing_and_is_returned)
{
	T_ERR(shmq_daemon_config(c, stop_at_first, NULL), -ECANCELED);
	finish();
}

struct objects_seen {
	int n;
	struct shmq_object_info last_queue;
	struct shmq_object_info last_sem;
};

static int on_object(void *arg, const struct shmq_object_info *o)
{
	struct objects_seen *s = arg;

	s->n++;
	cr_assert(eq(u32, o->size, sizeof(*o)));
	if (o->kind == SHMQ_OBJECT_QUEUE)
		s->last_queue = *o;
	else
		s->last_sem = *o;
	return 0;
}

Test(admin, object_list_reports_queues_and_semaphores_with_their_geometry)
{
	struct shmq_sem_attr sa = {.size = sizeof(sa),
				   .initial = 3,
				   .max = 9,
				   .flags = SHMQ_SEM_ATTR_BOUNDED,
				   .perm = 0640};
	struct shmq_queue *q = queue_new("ls.q", SHMQ_SPSC, SHMQ_SEND);
	struct objects_seen s = {0};
	struct shmq_sem *sem;

	T_OK(shmq_sem_open(c, "ls.s", SHMQ_CREATE | SHMQ_EXCL, &sa, &sem));
	cr_assert(eq(int, shmq_object_list(c, on_object, &s), 2));
	cr_assert(eq(int, s.n, 2));
	cr_assert(strcmp(s.last_queue.name, "ls.q") == 0, "%s", s.last_queue.name);
	cr_assert(eq(u32, s.last_queue.n_slots, 16));
	cr_assert(eq(u32, s.last_queue.slot_size, 64));
	cr_assert(eq(u32, s.last_queue.mode, SHMQ_SPSC));
	cr_assert(eq(u32, s.last_queue.perm, 0600));
	cr_assert(eq(u32, s.last_queue.owner_uid, geteuid()));
	cr_assert(eq(u32, s.last_queue.n_attached, 1));
	cr_assert(eq(i32, s.last_queue.numa_node, -1));
	cr_assert(strcmp(s.last_sem.name, "ls.s") == 0, "%s", s.last_sem.name);
	cr_assert(eq(u32, s.last_sem.sem_initial, 3));
	cr_assert(eq(u32, s.last_sem.sem_max, 9));
	cr_assert(eq(u32, s.last_sem.sem_flags, SHMQ_SEM_ATTR_BOUNDED));
	cr_assert(eq(u32, s.last_sem.perm, 0640));
	shmq_sem_close(sem);
	shmq_queue_close(q);
	finish();
}

Test(admin, object_list_pages_through_more_objects_than_one_reply_holds)
{
	struct objects_seen s = {0};
	char name[32];

	for (int i = 0; i < 300; i++) {
		struct shmq_sem *sem;

		snprintf(name, sizeof(name), "many.%03d", i);
		T_OK(shmq_sem_open(c, name, SHMQ_CREATE | SHMQ_EXCL, NULL, &sem));
		shmq_sem_close(sem);
	}
	cr_assert(eq(int, shmq_object_list(c, on_object, &s), 300));
	cr_assert(eq(int, s.n, 300));
	cr_assert(strcmp(s.last_sem.name, "many.299") == 0, "%s", s.last_sem.name);
	finish();
}

Test(admin, object_stat_reports_one_object_and_enoent_for_an_unknown_name)
{
	struct shmq_queue *q = queue_new("stat.q", SHMQ_MPMC, SHMQ_RECV);
	struct shmq_object_info o = {.size = sizeof(o)};

	T_OK(shmq_object_stat(c, "stat.q", &o));
	cr_assert(eq(u32, o.kind, SHMQ_OBJECT_QUEUE));
	cr_assert(strcmp(o.name, "stat.q") == 0, "%s", o.name);
	cr_assert(eq(u32, o.flags, 0));
	T_ERR(shmq_object_stat(c, "no.such", &o), -ENOENT);
	T_ERR(shmq_object_stat(c, "bad/name", &o), -EINVAL);
	shmq_queue_close(q);
	finish();
}

struct clients_seen {
	int n;
	int found_self;
};

static int on_client(void *arg, const struct shmq_client_info *ci)
{
	struct clients_seen *s = arg;

	s->n++;
	if (ci->pid == getpid() && ci->uid == geteuid() && ci->n_attached == 1 &&
	    !strncmp(ci->client_name, program_invocation_short_name, sizeof(ci->client_name) - 1))
		s->found_self++;
	return 0;
}

Test(admin, clients_lists_every_connected_client_with_its_pid_and_name)
{
	struct shmq_queue *q = queue_new("cl.q", SHMQ_MPMC, SHMQ_SEND);
	struct shmq_client *c2 = t_connect(&d);
	struct clients_seen s = {0};

	cr_assert(eq(int, shmq_daemon_clients(c, on_client, &s), 2));
	cr_assert(eq(int, s.n, 2));
	cr_assert(eq(int, s.found_self, 1), "this client not found with its attachment");
	shmq_client_close(c2);
	shmq_queue_close(q);
	finish();
}

struct attach_seen {
	int n;
	unsigned int roles;
	uint32_t records_used;
	int views;
};

static int on_attach(void *arg, const struct shmq_attach_info *a)
{
	struct attach_seen *s = arg;

	s->n++;
	s->roles |= a->role;
	cr_assert(eq(int, a->pid, getpid()));
	if (a->role == SHMQ_ATTACH_VIEW)
		s->views += a->record == UINT32_MAX;
	else
		s->records_used++;
	return 0;
}

Test(admin, attachments_list_every_handle_with_its_role_and_record)
{
	struct shmq_queue *tx = queue_new("att.q", SHMQ_MPMC, SHMQ_SEND);
	struct shmq_queue *rx = NULL;
	struct shmq_view *v = NULL;
	struct attach_seen s = {0};

	T_OK(shmq_queue_open(c, "att.q", SHMQ_RECV, NULL, &rx));
	T_OK(shmq_view_open(c, "att.q", &v));
	cr_assert(eq(int, shmq_object_attachments(c, "att.q", on_attach, &s), 3));
	cr_assert(eq(u32, s.roles, SHMQ_ATTACH_SEND | SHMQ_ATTACH_RECV | SHMQ_ATTACH_VIEW));
	cr_assert(eq(u32, s.records_used, 2));
	cr_assert(eq(int, s.views, 1));
	T_ERR(shmq_object_attachments(c, "no.such", on_attach, &s), -ENOENT);
	shmq_view_close(v);
	shmq_queue_close(rx);
	shmq_queue_close(tx);
	finish();
}

Test(admin, purge_drops_queued_messages_and_counts_them_as_received)
{
	struct shmq_queue *q = queue_new("pg.q", SHMQ_MPMC, SHMQ_SEND | SHMQ_RECV);
	struct shmq_queue_stats st = {.size = sizeof(st)};
	char buf[64];

	for (int i = 0; i < 10; i++)
		T_OK(shmq_queue_send(q, "x", 1));
	cr_assert(eq(int, shmq_queue_purge(c, "pg.q"), 10));
	T_ERR(shmq_queue_recv(q, buf, sizeof(buf)), -EAGAIN);
	T_OK(shmq_queue_stats(q, &st));
	cr_assert(eq(u32, st.depth, 0));
	cr_assert(eq(u64, st.sent, 10));
	cr_assert(eq(u64, st.received, 10));
	/* The queue works on afterwards. */
	T_OK(shmq_queue_send(q, "y", 1));
	cr_assert(eq(int, shmq_queue_recv(q, buf, sizeof(buf)), 1));
	cr_assert(eq(int, shmq_queue_purge(c, "pg.q"), 0));
	shmq_queue_close(q);
	finish();
}

Test(admin, purge_of_a_full_queue_drops_one_lap_and_frees_every_slot)
{
	struct shmq_queue *q = queue_new("pg.full", SHMQ_SPMC, SHMQ_SEND | SHMQ_RECV);

	for (int i = 0; i < 16; i++)
		T_OK(shmq_queue_send(q, "x", 1));
	T_ERR(shmq_queue_send(q, "x", 1), -EAGAIN);
	/* SPMC: many receivers, so a purge with a receiver attached is fine. */
	cr_assert(eq(int, shmq_queue_purge(c, "pg.full"), 16));
	for (int i = 0; i < 16; i++)
		T_OK(shmq_queue_send(q, "x", 1));
	shmq_queue_close(q);
	finish();
}

Test(admin, purge_of_an_spsc_queue_refuses_while_its_receiver_is_attached)
{
	struct shmq_queue *tx = queue_new("pg.spsc", SHMQ_SPSC, SHMQ_SEND);
	struct shmq_queue *rx = NULL;
	char buf[8];

	for (int i = 0; i < 5; i++)
		T_OK(shmq_queue_send(tx, "x", 1));
	T_OK(shmq_queue_open(c, "pg.spsc", SHMQ_RECV, NULL, &rx));
	T_ERR(shmq_queue_purge(c, "pg.spsc"), -EBUSY);
	shmq_queue_close(rx);
	cr_assert(eq(int, shmq_queue_purge(c, "pg.spsc"), 5));
	/* A receiver attaching after the purge starts at the purged head. */
	T_OK(shmq_queue_open(c, "pg.spsc", SHMQ_RECV, NULL, &rx));
	T_ERR(shmq_queue_recv(rx, buf, sizeof(buf)), -EAGAIN);
	T_OK(shmq_queue_send(tx, "z", 1));
	cr_assert(eq(int, shmq_queue_recv(rx, buf, sizeof(buf)), 1));
	cr_assert(eq(int, buf[0], 'z'));
	shmq_queue_close(rx);
	shmq_queue_close(tx);
	finish();
}

Test(admin, purge_of_a_semaphore_or_unknown_name_fails)
{
	struct shmq_sem *sem;

	T_OK(shmq_sem_open(c, "pg.sem", SHMQ_CREATE | SHMQ_EXCL, NULL, &sem));
	T_ERR(shmq_queue_purge(c, "pg.sem"), -EINVAL);
	T_ERR(shmq_queue_purge(c, "pg.none"), -ENOENT);
	shmq_sem_close(sem);
	finish();
}

struct other_uid {
	const char *sock;
	int purge;
	int view;
	int view_readable;
};

static int other_uid_child(void *arg)
{
	struct other_uid *o = arg;
	struct shmq_client *cc;
	struct shmq_view *v;

	if (shmq_client_connect(o->sock, &cc) < 0)
		return 1;
	o->purge = shmq_queue_purge(cc, "pg.perm");
	o->view = shmq_view_open(cc, "pg.perm", &v);
	if (o->view == 0)
		shmq_view_close(v);
	o->view_readable = shmq_view_open(cc, "pg.readable", &v);
	if (o->view_readable == 0)
		shmq_view_close(v);
	shmq_client_close(cc);
	return 0;
}

Test(admin, another_uid_may_neither_purge_nor_view_without_read_permission)
{
	struct shmq_queue_attr a = {.size = sizeof(a), .perm = 0666};
	struct shmq_queue *q = queue_new("pg.perm", SHMQ_MPMC, SHMQ_SEND);
	struct other_uid *o = t_shared_alloc(sizeof(*o));
	struct shmq_queue *r = NULL;

	T_OK(shmq_queue_open(c, "pg.readable", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &r));
	o->sock = d.sock;
	cr_assert(eq(
		int,
		t_wait_peer_ms(t_fork_as(T_UNPRIVILEGED_ID, T_UNPRIVILEGED_ID, other_uid_child, o),
			       CHILD_MS),
		0));
	cr_assert(eq(int, o->purge, -EACCES));
	cr_assert(eq(int, o->view, -EACCES));
	cr_assert(eq(int, o->view_readable, 0));
	shmq_queue_close(r);
	shmq_queue_close(q);
	finish();
}

Test(admin, a_view_maps_any_object_read_only_with_a_valid_header)
{
	struct shmq_queue *q = queue_new("v.q", SHMQ_MPMC, SHMQ_SEND);
	const struct shmq_segment_hdr *h;
	struct shmq_view *vq, *vs;
	struct shmq_sem *sem;
	const void *base;
	size_t size;

	T_OK(shmq_sem_open(c, "v.s", SHMQ_CREATE | SHMQ_EXCL, NULL, &sem));
	T_OK(shmq_view_open(c, "v.q", &vq));
	T_OK(shmq_view_open(c, "v.s", &vs));

	T_OK(shmq_view_memory(vq, &base, &size));
	h = base;
	cr_assert(eq(u64, h->magic, SHMQ_SEGMENT_MAGIC));
	cr_assert(eq(u16, h->kind, SHMQ_KIND_QUEUE));
	cr_assert(eq(u64, h->size, size));
	cr_assert(strcmp((char *)h->name, "v.q") == 0, "%s", (char *)h->name);
	/* The descriptor behind it is read-only: no way to make the mapping writable. */
	T_ERR(mprotect((void *)base, size, PROT_READ | PROT_WRITE) < 0 ? -errno : 0, -EACCES);

	T_OK(shmq_view_memory(vs, &base, &size));
	h = base;
	cr_assert(eq(u16, h->kind, SHMQ_KIND_SEM));
	T_ERR(shmq_view_open(c, "v.none", &vq), -ENOENT);

	shmq_view_close(vs);
	shmq_view_close(vq);
	shmq_sem_close(sem);
	shmq_queue_close(q);
	finish();
}
