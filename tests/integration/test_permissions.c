/* SPDX-License-Identifier: MIT */
/*
 * Integration: the permission matrix, with a second uid.
 *
 * The test runs as root; each scenario forks a child that drops to
 * nobody/nogroup (or nobody with gid 0, for the group class) and connects
 * to the daemon itself.  Objects have owner, group and mode like SysV
 * ipc_perm: sending and receiving need write, a view needs read, unlink
 * needs the owner or root, and root passes every check.  Children record
 * each return value in shared memory; the test asserts.
 *
 * A view gets a read-only descriptor.  The raw-protocol scenarios take that
 * descriptor and try to write through it: a writable shared mapping, and
 * reopening it through /proc/self/fd with O_RDWR (a memfd is created with
 * mode 0777, so only its owner and mode keep another uid out).
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "tests/helpers.h"
#include "tests/integration/daemon.h"
#include "tests/integration/raw.h"

#define CHILD_MS 10000
#define NOBODY	 T_UNPRIVILEGED_ID
#define NOGROUP	 T_UNPRIVILEGED_ID

/* One scenario run by a child: what to open, and what every step returned. */
struct probe {
	const char *sock;
	const char *name;
	int connect;
	int open_send;
	int open_recv;
	int open_view;
	int open_sem;
	int view_sem;
	int unlink;
	int create;
	int send;
	int recv;
	int mmap_rw;	 /* 0 or -errno of mmap(PROT_WRITE, MAP_SHARED) on a view's fd */
	int mmap_ro;	 /* 0 or -errno of mmap(PROT_READ) on it */
	int mprotect_rw; /* 0 or -errno of mprotect(PROT_WRITE) on the read-only mapping */
	int reopen_rw;	 /* 0 or -errno of open("/proc/self/fd/N", O_RDWR) */
	int fd_rdonly;	 /* 1 if the view's fd is O_RDONLY */
	char got[32];
};

static struct t_daemon d;

static void setup(void)
{
	t_need_root("the permission tests switch to a second uid");
	t_daemon_start(&d, NULL, NULL);
}

TestSuite(permissions, .init = setup, .fini = t_daemon_cleanup_all, .timeout = 30);

static struct probe *probe_new(const char *name)
{
	struct probe *p = t_shared_alloc(sizeof(*p));

	p->sock = d.sock;
	p->name = name;
	p->connect = p->open_send = p->open_recv = p->open_view = p->open_sem = p->view_sem =
		p->unlink = p->create = p->send = p->recv = p->mmap_rw = p->mmap_ro =
			p->mprotect_rw = p->reopen_rw = 1; /* 1: not tried */
	return p;
}

static void run_as(uid_t uid, gid_t gid, int (*fn)(void *), struct probe *p)
{
	int st = t_wait_peer_ms(t_fork_as(uid, gid, fn, p), CHILD_MS);

	cr_assert(st != 100, "the child could not drop to uid %d gid %d", (int)uid, (int)gid);
	cr_assert(eq(int, st, 0), "the child (uid %d gid %d) exited with %d", (int)uid, (int)gid,
		  st);
}

static struct shmq_queue *create_queue(struct shmq_client *c, const char *name, uint32_t perm)
{
	struct shmq_queue_attr a = {
		.size = sizeof(a),
		.n_slots = 8,
		.slot_size = 64,
		.mode = SHMQ_MPMC,
		.numa_node = -1,
		.perm = perm,
	};
	struct shmq_queue *q;

	T_OK(shmq_queue_open(c, name, SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND | SHMQ_RECV, &a, &q));
	return q;
}

/* Child: try each kind of open and the unlink; close whatever opened. */
static int probe_opens(void *arg)
{
	struct probe *p = arg;
	struct shmq_client *c;
	struct shmq_queue *q;

	p->connect = shmq_client_connect(p->sock, &c);
	if (p->connect < 0)
		return 0;
	p->open_send = shmq_queue_open(c, p->name, SHMQ_SEND, NULL, &q);
	if (p->open_send == 0) {
		p->send = shmq_queue_send(q, "from nobody", 11);
		shmq_queue_close(q);
	}
	p->open_recv = shmq_queue_open(c, p->name, SHMQ_RECV, NULL, &q);
	if (p->open_recv == 0) {
		p->recv = shmq_queue_recv_wait(q, p->got, sizeof(p->got) - 1, t_deadline_ms(2000));
		shmq_queue_close(q);
	}
	p->open_view = shmq_queue_open(c, p->name, SHMQ_VIEW, NULL, &q);
	if (p->open_view == 0)
		shmq_queue_close(q);
	p->unlink = shmq_unlink(c, p->name);
	shmq_client_close(c);
	return 0;
}

Test(permissions, others_cannot_open_send_recv_or_view_a_0600_queue_owned_by_root)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q = create_queue(c, "p600", 0600);
	struct probe *p = probe_new("p600");

	run_as(NOBODY, NOGROUP, probe_opens, p);
	T_OK(p->connect);
	T_ERR(p->open_send, -EACCES);
	T_ERR(p->open_recv, -EACCES);
	T_ERR(p->open_view, -EACCES);
	T_ERR(p->unlink, -EACCES);
	T_OK(shmq_queue_send(q, "still mine", 10)); /* root's object is intact */
	T_OK(shmq_queue_close(q));
	T_OK(shmq_unlink(c, "p600"));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(permissions, others_can_view_a_0644_queue_but_not_send_or_recv)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q = create_queue(c, "p644", 0644);
	struct probe *p = probe_new("p644");

	run_as(NOBODY, NOGROUP, probe_opens, p);
	T_OK(p->connect);
	T_ERR(p->open_send, -EACCES);
	T_ERR(p->open_recv, -EACCES);
	T_OK(p->open_view);
	T_ERR(p->unlink, -EACCES);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(permissions, others_can_send_and_recv_on_a_0666_queue_but_not_unlink_it)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q = create_queue(c, "p666", 0666), *q2;
	struct probe *p = probe_new("p666");
	char buf[32];

	T_OK(shmq_queue_send(q, "from root", 9));
	run_as(NOBODY, NOGROUP, probe_opens, p);
	T_OK(p->connect);
	T_OK(p->open_send);
	T_OK(p->send);
	T_OK(p->open_recv);
	/* FIFO: nobody receives root's message; its own stays for root. */
	cr_assert(eq(int, p->recv, 9), "nobody's recv: %d", p->recv);
	cr_assert(memcmp(p->got, "from root", 9) == 0);
	T_OK(p->open_view);
	T_ERR(p->unlink, -EACCES);
	cr_assert(eq(int, shmq_queue_recv_wait(q, buf, sizeof(buf), t_deadline_ms(2000)), 11));
	cr_assert(memcmp(buf, "from nobody", 11) == 0);
	/* The failed unlink left the name in place. */
	T_OK(shmq_queue_open(c, "p666", SHMQ_VIEW, NULL, &q2));
	T_OK(shmq_queue_close(q2));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(permissions, group_bits_apply_to_a_client_whose_gid_matches_the_objects_group)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q = create_queue(c, "p660", 0660);
	struct probe *member = probe_new("p660"), *other = probe_new("p660");

	/* The object's group is its creator's gid: root's 0. */
	run_as(NOBODY, 0, probe_opens, member);
	T_OK(member->connect);
	T_OK(member->open_send);
	T_OK(member->open_recv);
	T_OK(member->open_view);
	T_ERR(member->unlink, -EACCES); /* unlink needs the owner, not the group */

	run_as(NOBODY, NOGROUP, probe_opens, other);
	T_ERR(other->open_send, -EACCES);
	T_ERR(other->open_view, -EACCES);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(permissions, a_supplementary_group_matching_the_objects_group_gets_the_group_bits)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q = create_queue(c, "psupp", 0660);
	struct probe *p = probe_new("psupp");
	static const gid_t root_group[] = {0};
	int st;

	/* nobody:nogroup, and a member of group 0 (SO_PEERGROUPS). */
	st = t_wait_peer_ms(t_fork_as_groups(NOBODY, NOGROUP, root_group, 1, probe_opens, p),
			    CHILD_MS);
	cr_assert(eq(int, st, 0), "child exited %d", st);
	T_OK(p->open_send);
	T_OK(p->open_view);
	T_ERR(p->unlink, -EACCES);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(permissions, a_group_member_gets_the_group_bits_not_the_other_bits)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q = create_queue(c, "p606", 0606);
	struct probe *member = probe_new("p606"), *other = probe_new("p606");

	/* ipc_perm: the first class that matches decides (owner, else group, else other). */
	run_as(NOBODY, 0, probe_opens, member);
	T_ERR(member->open_send, -EACCES);
	T_ERR(member->open_view, -EACCES);
	run_as(NOBODY, NOGROUP, probe_opens, other);
	T_OK(other->open_send);
	T_OK(other->open_view);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* Child: semaphore opens. */
static int probe_sem(void *arg)
{
	struct probe *p = arg;
	struct shmq_client *c;
	struct shmq_sem *s;

	p->connect = shmq_client_connect(p->sock, &c);
	if (p->connect < 0)
		return 0;
	p->open_sem = shmq_sem_open(c, p->name, 0, NULL, &s);
	if (p->open_sem == 0) {
		p->send = shmq_sem_post(s, 1);
		shmq_sem_close(s);
	}
	p->view_sem = shmq_sem_open(c, p->name, SHMQ_VIEW, NULL, &s);
	if (p->view_sem == 0)
		shmq_sem_close(s);
	p->unlink = shmq_unlink(c, p->name);
	shmq_client_close(c);
	return 0;
}

Test(permissions, semaphores_follow_the_same_matrix_as_queues)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_sem_attr a = {.size = sizeof(a), .perm = 0644};
	struct shmq_sem_attr b = {.size = sizeof(b), .perm = 0666};
	struct shmq_sem *s644, *s666;
	struct probe *ro = probe_new("s644"), *rw = probe_new("s666");

	T_OK(shmq_sem_open(c, "s644", SHMQ_CREATE | SHMQ_EXCL, &a, &s644));
	T_OK(shmq_sem_open(c, "s666", SHMQ_CREATE | SHMQ_EXCL, &b, &s666));
	run_as(NOBODY, NOGROUP, probe_sem, ro);
	T_ERR(ro->open_sem, -EACCES);
	T_OK(ro->view_sem);
	T_ERR(ro->unlink, -EACCES);
	run_as(NOBODY, NOGROUP, probe_sem, rw);
	T_OK(rw->open_sem);
	T_OK(rw->send);
	T_ERR(rw->unlink, -EACCES);
	cr_assert(eq(int, shmq_sem_value(s666), 1), "nobody's post reached root's handle");
	T_OK(shmq_sem_close(s644));
	T_OK(shmq_sem_close(s666));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* Child: create a private queue and leave a message in it. */
static int create_private(void *arg)
{
	struct probe *p = arg;
	struct shmq_queue_attr a = {
		.size = sizeof(a), .n_slots = 8, .slot_size = 64, .numa_node = -1, .perm = 0600};
	struct shmq_client *c;
	struct shmq_queue *q;

	p->connect = shmq_client_connect(p->sock, &c);
	if (p->connect < 0)
		return 0;
	p->create = shmq_queue_open(c, p->name, SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &q);
	if (p->create == 0) {
		p->send = shmq_queue_send(q, "nobody's", 8);
		shmq_queue_close(q);
	}
	shmq_client_close(c);
	return 0;
}

Test(permissions, root_opens_and_unlinks_another_users_0600_queue)
{
	struct probe *p = probe_new("mine");
	struct shmq_client *c;
	struct shmq_queue *q;
	char buf[32];

	run_as(NOBODY, NOGROUP, create_private, p);
	T_OK(p->connect);
	T_OK(p->create);
	T_OK(p->send);

	c = t_connect(&d);
	T_OK(shmq_queue_open(c, "mine", SHMQ_SEND | SHMQ_RECV, NULL, &q));
	cr_assert(eq(int, shmq_queue_recv_wait(q, buf, sizeof(buf), t_deadline_ms(2000)), 8));
	cr_assert(memcmp(buf, "nobody's", 8) == 0);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_unlink(c, "mine"));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* Child: OPEN with VIEW over the raw protocol, then try to write through the fd. */
static int probe_view_fd(void *arg)
{
	struct probe *p = arg;
	static struct t_reply rep;
	struct shmq_req_open req;
	const struct shmq_rep_open *ro = (const void *)rep.body;
	char path[64];
	void *m;
	int fd, fl;

	fd = t_raw_session(p->sock);
	p->connect = fd < 0 ? fd : 0;
	if (fd < 0)
		return 0;
	t_raw_queue_req(&req, p->name, SHMQ_OPEN_VIEW, 0, 0, 0, 0);
	p->open_view = t_raw_call(fd, SHMQ_OP_OPEN, &req, sizeof(req), &rep);
	if (p->open_view != 0)
		return 0;
	if (rep.fd < 0 || rep.len < sizeof(rep.hdr) + sizeof(*ro)) {
		p->open_view = T_RAW_BAD_REPLY;
		return 0;
	}
	fl = fcntl(rep.fd, F_GETFL);
	p->fd_rdonly = fl >= 0 && (fl & O_ACCMODE) == O_RDONLY;

	m = mmap(NULL, ro->size, PROT_READ | PROT_WRITE, MAP_SHARED, rep.fd, 0);
	p->mmap_rw = m == MAP_FAILED ? -errno : 0;
	if (m != MAP_FAILED)
		munmap(m, ro->size);
	m = mmap(NULL, ro->size, PROT_READ, MAP_SHARED, rep.fd, 0);
	p->mmap_ro = m == MAP_FAILED ? -errno : 0;
	if (m != MAP_FAILED) {
		const struct shmq_segment_hdr *h = m;

		p->recv = h->magic == SHMQ_SEGMENT_MAGIC && h->kind == SHMQ_KIND_QUEUE;
		p->mprotect_rw = mprotect(m, ro->size, PROT_READ | PROT_WRITE) < 0 ? -errno : 0;
		munmap(m, ro->size);
	}

	snprintf(path, sizeof(path), "/proc/self/fd/%d", rep.fd);
	fd = open(path, O_RDWR | O_CLOEXEC);
	p->reopen_rw = fd < 0 ? -errno : 0;
	if (fd >= 0)
		close(fd);
	close(rep.fd);
	return 0;
}

Test(permissions, a_views_descriptor_is_read_only_and_cannot_be_mapped_writable)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q = create_queue(c, "pview", 0644);
	struct probe *p = probe_new("pview");

	run_as(NOBODY, NOGROUP, probe_view_fd, p);
	T_OK(p->connect);
	T_OK(p->open_view);
	cr_assert(p->fd_rdonly, "the view's fd is not O_RDONLY");
	T_ERR(p->mmap_rw, -EACCES);
	T_OK(p->mmap_ro);
	cr_assert(eq(int, p->recv, 1), "the read-only mapping shows the segment header");
	T_ERR(p->mprotect_rw, -EACCES);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(permissions, a_views_descriptor_cannot_be_reopened_writable_through_proc)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q = create_queue(c, "preopen", 0644);
	struct probe *p = probe_new("preopen");

	run_as(NOBODY, NOGROUP, probe_view_fd, p);
	T_OK(p->open_view);
	/* memfd_create() makes the inode 0777: the daemon must restrict it, or any viewer
	 * gets a writable descriptor of a queue it may only read. */
	T_ERR(p->reopen_rw, -EACCES);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* What a child of another uid saw of the listings. */
struct looks {
	const char *sock;
	int connect;
	int n_objects;	 /* shmq_object_list()'s count */
	int saw_secret;	 /* the 0600 object came up in the list */
	int saw_shared;	 /* the 0644 one did */
	int stat_secret; /* shmq_object_stat() of each */
	int stat_shared;
	int att_secret; /* shmq_object_attachments() of each */
	int att_shared;
	int n_clients;	    /* shmq_daemon_clients()'s count */
	int foreign_client; /* a session of another uid came up */
	char reason[SHMQ_REASON_MAX];
};

static int on_object(void *arg, const struct shmq_object_info *o)
{
	struct looks *l = arg;

	l->saw_secret |= !strcmp(o->name, "secret");
	l->saw_shared |= !strcmp(o->name, "shared");
	return 0;
}

static int on_client(void *arg, const struct shmq_client_info *ci)
{
	struct looks *l = arg;

	l->foreign_client |= ci->uid != NOBODY;
	return 0;
}

static int on_attach(void *arg, const struct shmq_attach_info *a)
{
	(void)arg;
	(void)a;
	return 0;
}

static int probe_looks(void *arg)
{
	struct looks *l = arg;
	struct shmq_object_info info = {.size = sizeof(info)};
	struct shmq_client *c;

	l->connect = shmq_client_connect(l->sock, &c);
	if (l->connect < 0)
		return 0;
	l->n_objects = shmq_object_list(c, on_object, l);
	l->stat_secret = shmq_object_stat(c, "secret", &info);
	snprintf(l->reason, sizeof(l->reason), "%s", shmq_last_error());
	l->stat_shared = shmq_object_stat(c, "shared", &info);
	l->att_secret = shmq_object_attachments(c, "secret", on_attach, l);
	l->att_shared = shmq_object_attachments(c, "shared", on_attach, l);
	l->n_clients = shmq_daemon_clients(c, on_client, l);
	shmq_client_close(c);
	return 0;
}

Test(permissions, another_user_sees_only_the_objects_they_may_read_and_their_own_sessions)
{
	struct looks *l = t_shared_alloc(sizeof(*l));
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *secret = create_queue(c, "secret", 0600);
	struct shmq_queue *shared = create_queue(c, "shared", 0644);
	int st;

	*l = (struct looks){.sock = d.sock};
	st = t_wait_peer_ms(t_fork_as(NOBODY, NOGROUP, probe_looks, l), CHILD_MS);
	cr_assert(eq(int, st, 0), "child: %d", st);
	T_OK(l->connect);
	cr_assert(eq(int, l->n_objects, 1), "listed %d objects", l->n_objects);
	cr_assert(l->saw_shared && !l->saw_secret, "saw shared %d, secret %d", l->saw_shared,
		  l->saw_secret);
	T_ERR(l->stat_secret, -EACCES);
	cr_assert(strstr(l->reason, "no read access") && strstr(l->reason, "0600"), "reason: %s",
		  l->reason);
	T_OK(l->stat_shared);
	T_ERR(l->att_secret, -EACCES);
	cr_assert(eq(int, l->att_shared, 1), "a readable object's attachments are listed");
	cr_assert(eq(int, l->n_clients, 1), "listed %d sessions", l->n_clients);
	cr_assert(eq(int, l->foreign_client, 0), "root's session was listed to nobody");

	/* root still sees everything */
	T_OK(shmq_object_stat(c, "secret",
			      &(struct shmq_object_info){.size = sizeof(struct shmq_object_info)}));
	T_OK(shmq_queue_close(secret));
	T_OK(shmq_queue_close(shared));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}
