/* SPDX-License-Identifier: MIT */
/*
 * Integration: the daemon against a hostile client.
 *
 * Every scenario speaks the raw protocol (raw.h), as an attacker would,
 * from children that drop to unprivileged uids: the permission matrix for
 * each class of caller, object mode and op; forged attachment ids; forged
 * descriptors and credentials; malformed and oversized datagrams; floods of
 * requests and connections, and one uid hoarding them; per-uid limits
 * raced by many connections; what a read-only (or a sealed writable)
 * descriptor still allows; a client out of descriptors; and the control
 * socket: its mode, its directory, and that it listens once it exists.
 *
 * Each test asserts the documented outcome (docs/protocol.md,
 * docs/reliability.md) and that the daemon keeps serving afterwards.
 * Children record results in shared memory and never assert; the test
 * process does.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "tests/helpers.h"
#include "tests/integration/daemon.h"
#include "tests/integration/raw.h"

#define CHILD_MS 20000

/* Four unprivileged identities: the owner, two group members, an outsider. */
#define OWNER_UID 65534
#define OWNER_GID 65534
#define GROUP_UID 60001 /* primary gid OWNER_GID */
#define SUPP_UID  60002 /* own gid, OWNER_GID as a supplementary group */
#define SUPP_GID  60002
#define OTHER_UID 60003
#define OTHER_GID 60003

static struct t_daemon d;

static void setup(void)
{
	t_need_root("the hostile-client tests switch to other uids");
}

TestSuite(hostile, .init = setup, .fini = t_daemon_cleanup_all, .timeout = 120);

/* --- Helpers --- */

/* Descriptors open in process @pid, or -errno. */
static int fd_count(pid_t pid)
{
	char path[64];
	struct dirent *e;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/* The daemon's descriptor count comes back to @base within a few seconds. */
static void assert_fds_settle(int base, const char *what)
{
	uint64_t deadline = t_now_ns() + 5000000000ull;
	int n;

	while ((n = fd_count(d.pid)) != base && t_now_ns() < deadline)
		t_sleep_ms(10);
	cr_assert(eq(int, n, base), "%s: the daemon holds %d descriptors, %d before", what, n,
		  base);
}

/* VmRSS of @pid in KiB, or -1. */
static long rss_kb(pid_t pid)
{
	char path[64], line[128];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void run_child(pid_t pid, const char *who)
{
	int st = t_wait_peer_ms(pid, CHILD_MS);

	cr_assert(st != 100, "%s: the child could not drop its privileges", who);
	cr_assert(eq(int, st, 0), "%s: the child exited with %d", who, st);
}

static void name_req(struct shmq_req_name *q, const char *name)
{
	size_t n = strlen(name);

	memset(q, 0, sizeof(*q));
	memcpy(q->name, name, n < sizeof(q->name) ? n : sizeof(q->name) - 1);
}

/* One op that takes just a name; the reply body in @rep when given. */
static int call_name(int fd, uint16_t op, const char *name, struct t_reply *rep)
{
	struct shmq_req_name q;

	name_req(&q, name);
	return t_raw_call(fd, op, &q, sizeof(q), rep);
}

/* OPEN/CREATE: the status; on success the attach id and the granted descriptor. */
static int call_open(int fd, uint16_t op, const struct shmq_req_open *q, uint64_t *ret_attach,
		     int *ret_fd)
{
	static struct t_reply rep;
	const struct shmq_rep_open *ro = (const void *)rep.body;
	int r = t_raw_call(fd, op, q, sizeof(*q), &rep);

	*ret_fd = rep.fd;
	if (r == 0 && (rep.fd < 0 || rep.len != sizeof(rep.hdr) + sizeof(*ro)))
		r = T_RAW_BAD_REPLY;
	if (r == 0)
		*ret_attach = ro->attach_id;
	else if (rep.fd >= 0)
		close(rep.fd);
	return r;
}

static void sem_req(struct shmq_req_open *q, const char *name, uint32_t flags, uint32_t mode)
{
	memset(q, 0, sizeof(*q));
	q->flags = flags;
	q->kind = SHMQ_KIND_SEM;
	q->mode = mode;
	strncpy(q->name, name, sizeof(q->name) - 1);
}

static int call_close(int fd, uint64_t attach_id)
{
	struct shmq_req_close q = {.attach_id = attach_id};

	return t_raw_call(fd, SHMQ_OP_CLOSE, &q, sizeof(q), NULL);
}

/* ATTACHMENTS of @name, first page: the status; the ids into @ret_ids (up to @max). */
static int call_attachments(int fd, const char *name, uint64_t *ret_ids, uint32_t max,
			    uint32_t *ret_count)
{
	static struct t_reply rep;
	const struct shmq_rep_attachments *ra = (const void *)rep.body;
	struct shmq_req_attachments q;
	int r;

	memset(&q, 0, sizeof(q));
	strncpy(q.name, name, sizeof(q.name) - 1);
	r = t_raw_call(fd, SHMQ_OP_ATTACHMENTS, &q, sizeof(q), &rep);
	if (rep.fd >= 0)
		close(rep.fd);
	if (r != 0)
		return r;
	if (rep.len != sizeof(rep.hdr) + sizeof(*ra) + ra->count * sizeof(ra->items[0]))
		return T_RAW_BAD_REPLY;
	*ret_count = ra->count;
	for (uint32_t i = 0; i < ra->count && i < max; i++)
		ret_ids[i] = ra->items[i].attach_id;
	return 0;
}

static int call_status(int fd, struct shmq_rep_status *ret)
{
	static struct t_reply rep;
	int r = t_raw_call(fd, SHMQ_OP_STATUS, NULL, 0, &rep);

	if (r == 0 && rep.len != sizeof(rep.hdr) + sizeof(*ret))
		r = T_RAW_BAD_REPLY;
	if (r == 0)
		memcpy(ret, rep.body, sizeof(*ret));
	return r;
}

/* Every object, all LIST pages, into @ret (up to @max); returns the count or -errno. */
static int list_all(int fd, struct shmq_obj_info *ret, int max)
{
	static struct t_reply rep;
	const struct shmq_rep_list *rl = (const void *)rep.body;
	struct shmq_req_page q = {0};
	int n = 0, r;

	for (;;) {
		r = t_raw_call(fd, SHMQ_OP_LIST, &q, sizeof(q), &rep);
		if (r != 0)
			return r < 0 ? r : -EPROTO;
		for (uint32_t i = 0; i < rl->count && n < max; i++)
			ret[n++] = rl->items[i];
		if (rl->count == 0 || q.offset + rl->count >= rl->total)
			return n;
		q.offset += rl->count;
	}
}

/* A raw session of the test process itself; fails the test when it cannot. */
static int session(void)
{
	int fd = t_raw_session(d.sock);

	cr_assert(fd >= 0, "raw session: %d (%s)", fd, strerror(-fd));
	return fd;
}

/* The daemon still answers a new session. */
static void assert_serving(const char *what)
{
	int fd = t_raw_session(d.sock);

	cr_assert(fd >= 0, "%s: a new session afterwards: %d (%s)", what, fd, strerror(-fd));
	cr_assert(t_raw_alive(fd), "%s: STATUS afterwards", what);
	close(fd);
}

/* --- The permission matrix --- */

enum cls { CLS_OWNER, CLS_GROUP, CLS_SUPP, CLS_OTHER, CLS_ROOT, N_CLS };

static const char *const cls_names[N_CLS] = {"owner", "group member (primary gid)",
					     "group member (supplementary)", "other", "root"};

enum op {
	OP_SEND,
	OP_RECV,
	OP_SENDRECV,
	OP_SEM,
	OP_VIEW,
	OP_STAT,
	OP_ATTACHMENTS,
	OP_PURGE,
	OP_UNLINK,
	N_OPS
};

static const char *const op_names[N_OPS] = {"OPEN send",   "OPEN recv", "OPEN send|recv",
					    "OPEN sem",	   "OPEN view", "STAT",
					    "ATTACHMENTS", "PURGE",	"UNLINK"};

static const uint32_t modes[] = {0600, 0400, 0200, 0060, 0640, 0620, 0660,
				 0604, 0602, 0606, 0644, 0666, 0777, 0006};
#define N_MODES	   (sizeof(modes) / sizeof(modes[0]))
#define NOT_TRIED  1
#define BAD_ACCESS 2 /* granted, but the descriptor had the wrong access mode */

struct matrix {
	const char *sock;
	int create[N_MODES][2];
	int res[N_MODES][2][N_OPS];    /* [mode][0 queue, 1 semaphore][op] */
	int close1[N_MODES][2][N_OPS]; /* CLOSE of a granted attachment */
	int close2[N_MODES][2][N_OPS]; /* the same CLOSE again */
	int list;		       /* LIST total seen by the prober */
	int admin[3];		       /* STATUS, CONFIG, SESSIONS: anyone connected may ask */
};

static void obj_name(char *buf, size_t size, int kind, uint32_t mode)
{
	snprintf(buf, size, "%c%04o", kind ? 's' : 'q', (unsigned)mode);
}

/* Child (the owner): create every object with its mode, then detach. */
static int matrix_create(void *arg)
{
	struct matrix *m = arg;
	int fd = t_raw_session(m->sock);

	if (fd < 0)
		return 1;
	for (size_t i = 0; i < N_MODES; i++) {
		for (int k = 0; k < 2; k++) {
			struct shmq_req_open q;
			char name[16];
			uint64_t id;
			int gfd;

			obj_name(name, sizeof(name), k, modes[i]);
			if (k == 0)
				t_raw_queue_req(&q, name, SHMQ_OPEN_SEND | SHMQ_OPEN_RECV, 8, 64,
						SHMQ_QMODE_MPMC, modes[i]);
			else
				sem_req(&q, name, SHMQ_OPEN_SEM, modes[i]);
			m->create[i][k] = call_open(fd, SHMQ_OP_CREATE, &q, &id, &gfd);
			if (m->create[i][k] == 0) {
				close(gfd);
				m->create[i][k] = call_close(fd, id);
			}
		}
	}
	close(fd);
	return 0;
}

static uint32_t open_flags(enum op op)
{
	switch (op) {
	case OP_SEND:
		return SHMQ_OPEN_SEND;
	case OP_RECV:
		return SHMQ_OPEN_RECV;
	case OP_SENDRECV:
		return SHMQ_OPEN_SEND | SHMQ_OPEN_RECV;
	case OP_SEM:
		return SHMQ_OPEN_SEM;
	default:
		return SHMQ_OPEN_VIEW;
	}
}

/* Child (the class under test): every op on every object, UNLINK last. */
static int matrix_probe(void *arg)
{
	static struct shmq_obj_info all[64];
	struct matrix *m = arg;
	int fd = t_raw_session(m->sock);

	if (fd < 0)
		return 1;
	m->list = list_all(fd, all, 64);
	{
		struct shmq_req_page page = {0};

		m->admin[0] = t_raw_call(fd, SHMQ_OP_STATUS, NULL, 0, NULL);
		m->admin[1] = t_raw_call(fd, SHMQ_OP_CONFIG, NULL, 0, NULL);
		m->admin[2] = t_raw_call(fd, SHMQ_OP_SESSIONS, &page, sizeof(page), NULL);
	}
	for (size_t i = 0; i < N_MODES; i++) {
		for (int k = 0; k < 2; k++) {
			char name[16];

			obj_name(name, sizeof(name), k, modes[i]);
			for (int op = 0; op < N_OPS; op++) {
				int *res = &m->res[i][k][op];

				m->close1[i][k][op] = m->close2[i][k][op] = NOT_TRIED;
				if (op <= OP_VIEW) {
					struct shmq_req_open q;
					uint64_t id;
					int gfd, fl;

					/* Roles that do not fit the kind: test_protocol's business. */
					if ((k == 0 && op == OP_SEM) || (k == 1 && op < OP_SEM))
						continue;
					if (k == 0)
						t_raw_queue_req(&q, name, open_flags(op), 0, 0, 0,
								0);
					else
						sem_req(&q, name, open_flags(op), 0);
					*res = call_open(fd, SHMQ_OP_OPEN, &q, &id, &gfd);
					if (*res != 0)
						continue;
					fl = fcntl(gfd, F_GETFL);
					if ((fl & O_ACCMODE) != (op == OP_VIEW ? O_RDONLY : O_RDWR))
						*res = BAD_ACCESS;
					close(gfd);
					m->close1[i][k][op] = call_close(fd, id);
					m->close2[i][k][op] = call_close(fd, id);
				} else if (op == OP_ATTACHMENTS) {
					uint64_t ids[4];
					uint32_t n;

					*res = call_attachments(fd, name, ids, 4, &n);
				} else if (op == OP_STAT) {
					*res = call_name(fd, SHMQ_OP_STAT, name, NULL);
				} else if (op == OP_PURGE) {
					*res = call_name(fd, SHMQ_OP_PURGE, name, NULL);
				}
			}
		}
	}
	for (size_t i = 0; i < N_MODES; i++)
		for (int k = 0; k < 2; k++) {
			char name[16];

			obj_name(name, sizeof(name), k, modes[i]);
			m->res[i][k][OP_UNLINK] = call_name(fd, SHMQ_OP_UNLINK, name, NULL);
		}
	close(fd);
	return 0;
}

/* What docs/protocol.md "Permissions" promises. */
static int matrix_expect(enum cls c, uint32_t mode, int kind, enum op op)
{
	bool owner_or_root = c == CLS_OWNER || c == CLS_ROOT;
	uint32_t bits = c == CLS_ROOT	 ? 7
			: c == CLS_OWNER ? mode >> 6
			: c == CLS_OTHER ? mode
					 : mode >> 3;

	switch (op) {
	case OP_SEND:
	case OP_RECV:
	case OP_SENDRECV:
	case OP_SEM:
		return (bits & 2) ? 0 : -EACCES;
	case OP_VIEW:
	case OP_STAT:
	case OP_ATTACHMENTS:
		return (bits & 4) ? 0 : -EACCES; /* a look needs read, as a view */
	case OP_PURGE:
		if (kind == 1)
			return -EINVAL; /* a semaphore: checked before the permission */
		return owner_or_root ? 0 : -EACCES;
	case OP_UNLINK:
		return owner_or_root ? 0 : -EACCES;
	default:
		return 0;
	}
}

static void matrix_round(enum cls c)
{
	static const gid_t owner_group[] = {OWNER_GID};
	struct matrix *m = t_shared_alloc(sizeof(*m));
	struct shmq_obj_info info;
	pid_t pid;
	int fd;

	m->sock = d.sock;
	run_child(t_fork_as(OWNER_UID, OWNER_GID, matrix_create, m), "the owner");
	for (size_t i = 0; i < N_MODES; i++)
		for (int k = 0; k < 2; k++)
			cr_assert(eq(int, m->create[i][k], 0), "create %s %04o: %d",
				  k ? "semaphore" : "queue", modes[i], m->create[i][k]);
	for (size_t i = 0; i < N_MODES; i++)
		for (int k = 0; k < 2; k++)
			for (int op = 0; op < N_OPS; op++)
				m->res[i][k][op] = NOT_TRIED;

	switch (c) {
	case CLS_OWNER:
		pid = t_fork_as(OWNER_UID, OWNER_GID, matrix_probe, m);
		break;
	case CLS_GROUP:
		pid = t_fork_as(GROUP_UID, OWNER_GID, matrix_probe, m);
		break;
	case CLS_SUPP:
		pid = t_fork_as_groups(SUPP_UID, SUPP_GID, owner_group, 1, matrix_probe, m);
		break;
	case CLS_OTHER:
		pid = t_fork_as(OTHER_UID, OTHER_GID, matrix_probe, m);
		break;
	default:
		pid = t_fork_child(matrix_probe, m);
		break;
	}
	run_child(pid, cls_names[c]);
	{
		int readable = 0; /* LIST shows what the class may read: both kinds of each mode */

		for (size_t i = 0; i < N_MODES; i++)
			readable += matrix_expect(c, modes[i], 0, OP_VIEW) == 0 ? 2 : 0;
		cr_assert(eq(int, m->list, readable), "%s: LIST saw %d objects", cls_names[c],
			  m->list);
	}
	for (int i = 0; i < 3; i++)
		cr_assert(eq(int, m->admin[i], 0), "%s: STATUS/CONFIG/SESSIONS %d: %d",
			  cls_names[c], i, m->admin[i]);

	fd = session();
	for (size_t i = 0; i < N_MODES; i++) {
		for (int k = 0; k < 2; k++) {
			char name[16];

			obj_name(name, sizeof(name), k, modes[i]);
			for (int op = 0; op < N_OPS; op++) {
				int got = m->res[i][k][op];
				int want = matrix_expect(c, modes[i], k, op);

				if (got == NOT_TRIED)
					continue;
				cr_assert(got == want,
					  "%s, %s %s (mode %04o): got %d (%s), want %d",
					  cls_names[c], op_names[op], name, modes[i], got,
					  got < 0 ? strerror(-got) : "ok", want);
				if (got == 0 && op <= OP_VIEW) {
					cr_assert(eq(int, m->close1[i][k][op], 0),
						  "%s: CLOSE of its own %s on %s: %d", cls_names[c],
						  op_names[op], name, m->close1[i][k][op]);
					cr_assert(eq(int, m->close2[i][k][op], -ENOENT),
						  "%s: a second CLOSE on %s: %d", cls_names[c],
						  name, m->close2[i][k][op]);
				}
			}
			/* Refused or not, nothing stayed attached, and the object is as created. */
			if (m->res[i][k][OP_UNLINK] == 0) {
				T_ERR(t_raw_stat(fd, name, &info), -ENOENT);
				continue;
			}
			T_OK(t_raw_stat(fd, name, &info));
			cr_assert(eq(u32, info.n_attached, 0), "%s: %s still attached",
				  cls_names[c], name);
			cr_assert(info.owner_uid == OWNER_UID && info.owner_gid == OWNER_GID &&
					  info.mode == modes[i],
				  "%s: %s changed owner or mode", cls_names[c], name);
			T_OK(call_name(fd, SHMQ_OP_UNLINK, name, NULL));
		}
	}
	close(fd);
	munmap(m, sizeof(*m));
}

Test(hostile, permission_matrix_for_the_owner)
{
	t_daemon_start(&d, NULL, NULL);
	matrix_round(CLS_OWNER);
	t_daemon_fini(&d);
}

Test(hostile, permission_matrix_for_a_member_of_the_objects_group)
{
	t_daemon_start(&d, NULL, NULL);
	matrix_round(CLS_GROUP);
	matrix_round(CLS_SUPP);
	t_daemon_fini(&d);
}

Test(hostile, permission_matrix_for_others_and_root)
{
	t_daemon_start(&d, NULL, NULL);
	matrix_round(CLS_OTHER);
	matrix_round(CLS_ROOT);
	t_daemon_fini(&d);
}

/* --- Forged attachment ids --- */

struct forger {
	const char *sock;
	int n_seen;	 /* victim ids learned from ATTACHMENTS */
	int n_wrong;	 /* CLOSEs that did not get -ENOENT */
	int first_wrong; /* the first such status */
	int own_open;	 /* its own attachment: OPEN, CLOSE, CLOSE again */
	int own_close;
	int own_close_again;
	int alive;
	int n_bad_page; /* paging with hostile offsets that did not give an empty page */
	int first_bad_page;
};

static void forge_closes(int fd, struct forger *f, const char *victim)
{
	uint64_t ids[16], seed = 12345;
	uint32_t n = 0;
	int r;

	r = call_attachments(fd, victim, ids, 16, &n);
	f->n_seen = r == 0 ? (int)n : r;
	for (uint32_t i = 0; i < n && i < 16; i++) {
		for (int rep = 0; rep < 3; rep++) {
			r = call_close(fd, ids[i]);
			if (r != -ENOENT && !f->n_wrong++)
				f->first_wrong = r;
		}
	}
	/* Small ids (every id so far), the edges, and random ones. */
	for (uint64_t id = 0; id < 256; id++) {
		r = call_close(fd, id);
		if (r != -ENOENT && !f->n_wrong++)
			f->first_wrong = r;
	}
	for (int i = 0; i < 512; i++) {
		uint64_t id = i == 0 ? UINT64_MAX : i == 1 ? INT64_MAX : t_rand(&seed);

		r = call_close(fd, id);
		if (r != -ENOENT && !f->n_wrong++)
			f->first_wrong = r;
	}
}

/* The paged ops take offsets, not ids: any offset is an empty page, never an error. */
static void forge_offsets(int fd, struct forger *f)
{
	static struct t_reply rep;
	static const uint32_t offsets[] = {2, 1000, INT32_MAX, UINT32_MAX};
	const uint32_t *count =
		(const uint32_t *)rep.body + 1; /* every paged reply: total, count */

	for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
		struct shmq_req_page page = {.offset = offsets[i]};
		struct shmq_req_attachments att = {.name = "victim", .offset = offsets[i]};
		int r;

		r = t_raw_call(fd, SHMQ_OP_LIST, &page, sizeof(page), &rep);
		if ((r != 0 || *count) && !f->n_bad_page++)
			f->first_bad_page = r;
		r = t_raw_call(fd, SHMQ_OP_SESSIONS, &page, sizeof(page), &rep);
		if ((r != 0 || *count) && !f->n_bad_page++)
			f->first_bad_page = r;
		r = t_raw_call(fd, SHMQ_OP_ATTACHMENTS, &att, sizeof(att), &rep);
		if ((r != 0 || *count) && !f->n_bad_page++)
			f->first_bad_page = r;
		page.reserved0 = offsets[i];
		att.reserved0 = offsets[i];
		if (t_raw_call(fd, SHMQ_OP_LIST, &page, sizeof(page), NULL) != -EINVAL ||
		    t_raw_call(fd, SHMQ_OP_ATTACHMENTS, &att, sizeof(att), NULL) != -EINVAL)
			f->n_bad_page++;
	}
}

static int forge(void *arg)
{
	struct forger *f = arg;
	struct shmq_req_open q;
	uint64_t id;
	int fd = t_raw_session(f->sock), gfd;

	if (fd < 0)
		return 1;
	forge_closes(fd, f, "victim");
	/* Its own attachment closes once, then is as unknown as anyone's. */
	t_raw_queue_req(&q, "victim", SHMQ_OPEN_SEND, 0, 0, 0, 0);
	f->own_open = call_open(fd, SHMQ_OP_OPEN, &q, &id, &gfd);
	if (f->own_open == 0) {
		close(gfd);
		f->own_close = call_close(fd, id);
		f->own_close_again = call_close(fd, id);
	}
	forge_offsets(fd, f);
	f->alive = t_raw_alive(fd);
	close(fd);
	return 0;
}

Test(hostile, close_with_forged_attach_ids_gets_enoent_and_the_victim_keeps_its_attachment)
{
	struct shmq_queue_attr a = {
		.size = sizeof(a), .n_slots = 8, .slot_size = 64, .numa_node = -1, .perm = 0666};
	struct forger *f = t_shared_alloc(sizeof(*f)), *rf = t_shared_alloc(sizeof(*rf));
	struct shmq_client *c;
	struct shmq_queue *tx, *rx;
	uint64_t ids[4];
	uint32_t n;
	char buf[64];
	int fd;

	t_daemon_start(&d, NULL, NULL);
	c = t_connect(&d);
	T_OK(shmq_queue_open(c, "victim", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &tx));
	T_OK(shmq_queue_open(c, "victim", SHMQ_RECV, NULL, &rx));
	T_OK(shmq_queue_send(tx, "before", 6));

	f->sock = rf->sock = d.sock;
	run_child(t_fork_as(OTHER_UID, OTHER_GID, forge, f), "the forger");
	cr_assert(eq(int, f->n_seen, 2), "ATTACHMENTS showed the forger %d of the victim's",
		  f->n_seen);
	cr_assert(eq(int, f->n_wrong, 0), "%d forged CLOSEs did not get -ENOENT (first: %d)",
		  f->n_wrong, f->first_wrong);
	T_OK(f->own_open);
	T_OK(f->own_close);
	T_ERR(f->own_close_again, -ENOENT);
	cr_assert(f->alive, "the forger's session was not served afterwards");
	cr_assert(eq(int, f->n_bad_page, 0), "%d pages with hostile offsets went wrong (%d)",
		  f->n_bad_page, f->first_bad_page);

	/* Root is no exception: attachments belong to sessions, not to uids. */
	run_child(t_fork_child(forge, rf), "root as forger");
	cr_assert(eq(int, rf->n_wrong, 0), "root: %d forged CLOSEs did not get -ENOENT (first: %d)",
		  rf->n_wrong, rf->first_wrong);

	/* The victim's attachments are there and work. */
	fd = session();
	T_OK(call_attachments(fd, "victim", ids, 4, &n));
	cr_assert(eq(u32, n, 2), "the victim's attachments: %u", n);
	close(fd);
	cr_assert(eq(int, shmq_queue_recv(rx, buf, sizeof(buf)), 6));
	cr_assert(memcmp(buf, "before", 6) == 0);
	T_OK(shmq_queue_send(tx, "after", 5));
	cr_assert(eq(int, shmq_queue_recv(rx, buf, sizeof(buf)), 5));
	T_OK(shmq_queue_close(tx)); /* its CLOSE finds its own id */
	T_OK(shmq_queue_close(rx));
	T_OK(shmq_unlink(c, "victim"));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* --- Forged descriptors and credentials --- */

/* Send @len bytes of @buf with @n fds of @fds as one SCM_RIGHTS (or two when @split). */
static int send_fds(int fd, const void *buf, size_t len, const int *fds, int n, bool split)
{
	static union {
		struct cmsghdr h;
		char buf[2 * CMSG_SPACE(256 * sizeof(int))];
	} cm;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = len ? &iov : NULL, .msg_iovlen = len ? 1 : 0};
	int first = split ? n / 2 : n;
	struct cmsghdr *c;
	ssize_t r;

	memset(&cm, 0, sizeof(cm));
	mh.msg_control = cm.buf;
	mh.msg_controllen = CMSG_SPACE(first * sizeof(int)) +
			    (split ? CMSG_SPACE((n - first) * sizeof(int)) : 0);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(first * sizeof(int));
	memcpy(CMSG_DATA(c), fds, first * sizeof(int));
	if (split) {
		c = CMSG_NXTHDR(&mh, c);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((n - first) * sizeof(int));
		memcpy(CMSG_DATA(c), fds + first, (n - first) * sizeof(int));
	}
	r = sendmsg(fd, &mh, MSG_NOSIGNAL);
	return r < 0 ? -errno : 0;
}

/* The reply to the request just sent: its status (a bare error header), or a failure code. */
static int reply_status(int fd)
{
	static struct t_reply rep;
	int r = t_raw_recv(fd, &rep, T_RAW_TIMEOUT_MS);

	if (r <= 0)
		return r == 0 ? -ECONNRESET : r;
	if (rep.fd >= 0)
		close(rep.fd);
	/* A bare header, or one with a NUL-terminated reason (protocol.h). */
	if (rep.n_fds || rep.len < sizeof(rep.hdr) || rep.len > sizeof(rep.hdr) + SHMQ_REASON_MAX ||
	    rep.hdr.magic != SHMQ_PROTO_MAGIC ||
	    (rep.len > sizeof(rep.hdr) && rep.body[rep.len - sizeof(rep.hdr) - 1] != '\0'))
		return T_RAW_BAD_REPLY;
	return rep.hdr.status;
}

Test(hostile, descriptors_passed_with_any_request_are_all_closed_and_refused)
{
	static unsigned char buf[256];
	struct shmq_req_name stat_q;
	struct shmq_req_open open_q;
	int fds[253], sv[2], pv[2], conn, fd, base, n = 0, r;
	struct pollfd pfd;

	t_daemon_start(&d, NULL, NULL);
	fd = session();

	/* A zoo of descriptor types, the same ones repeated up to SCM_MAX_FD (253). */
	cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	cr_assert(pipe2(pv, O_CLOEXEC) == 0);
	conn = session(); /* a connection to the daemon itself, accepted by now */
	base = fd_count(d.pid);
	cr_assert(base > 0);
	fds[n++] = sv[1];
	fds[n++] = pv[0];
	fds[n++] = pv[1];
	fds[n++] = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	fds[n++] = open(d.sock, O_PATH | O_CLOEXEC); /* the daemon's own socket path */
	fds[n++] = open(d.dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	fds[n++] = open("/dev/null", O_RDWR | O_CLOEXEC);
	fds[n++] = eventfd(0, EFD_CLOEXEC);
	fds[n++] = epoll_create1(EPOLL_CLOEXEC);
	fds[n++] = conn;
	fds[n++] = fd; /* the very connection the request travels on */
	for (int i = 0; i < n; i++)
		cr_assert(fds[i] >= 0, "descriptor %d: %s", i, strerror(errno));
	for (int i = n; i < 253; i++)
		fds[i] = fds[i % n];

	name_req(&stat_q, "nothing");
	t_raw_queue_req(&open_q, "smuggled", SHMQ_OPEN_CREATE | SHMQ_OPEN_SEND, 8, 64,
			SHMQ_QMODE_MPMC, 0600);
	{
		const struct {
			uint16_t op;
			const void *body;
			size_t len;
			int n_fds;
			bool split;
			const char *what;
		} cases[] = {
			{SHMQ_OP_STAT, &stat_q, sizeof(stat_q), 1, false, "one descriptor"},
			{SHMQ_OP_STAT, &stat_q, sizeof(stat_q), 16, false, "16 descriptors"},
			{SHMQ_OP_STAT, &stat_q, sizeof(stat_q), 17, false, "17 descriptors"},
			{SHMQ_OP_STAT, &stat_q, sizeof(stat_q), 253, false, "253 descriptors"},
			{SHMQ_OP_STAT, &stat_q, sizeof(stat_q), 40, true, "two SCM_RIGHTS"},
			{SHMQ_OP_OPEN, &open_q, sizeof(open_q), 3, false, "a good OPEN"},
			{SHMQ_OP_STATUS, NULL, 0, 253, true, "STATUS, 253 in two messages"},
			{SHMQ_OP_HELLO, NULL, 0, 5, false, "a bad HELLO"},
		};

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			size_t len = t_raw_build(buf, cases[i].op, 9, cases[i].body, cases[i].len);

			T_OK(send_fds(fd, buf, len, fds, cases[i].n_fds, cases[i].split));
			r = reply_status(fd);
			cr_assert(r == -EBADMSG, "%s: %d (%s)", cases[i].what, r,
				  r < 0 ? strerror(-r) : "?");
			cr_assert(t_raw_alive(fd), "%s: the connection is not served afterwards",
				  cases[i].what);
			assert_fds_settle(base, cases[i].what);
		}
	}
	/* Descriptors with a runt and with an empty datagram: the descriptors decide. */
	T_OK(send_fds(fd, buf, 3, fds, 7, false));
	T_ERR(reply_status(fd), -EBADMSG);
	T_OK(send_fds(fd, buf, 0, fds, 7, false));
	T_ERR(reply_status(fd), -EBADMSG);
	/* Hammered: the daemon's table does not grow. */
	for (int i = 0; i < 200; i++) {
		size_t len = t_raw_build(buf, SHMQ_OP_STATUS, 10, NULL, 0);

		T_OK(send_fds(fd, buf, len, fds, 253, false));
		T_ERR(reply_status(fd), -EBADMSG);
	}
	assert_fds_settle(base, "200 requests of 253 descriptors");
	T_ERR(t_raw_stat(fd, "smuggled", &(struct shmq_obj_info){0}), -ENOENT);

	/* The daemon kept no reference: the socketpair's peer sees our close as a hang-up. */
	for (int i = 0; i < n; i++)
		if (fds[i] != fd)
			close(fds[i]);
	pfd = (struct pollfd){.fd = sv[0], .events = POLLIN};
	r = poll(&pfd, 1, 2000);
	cr_assert(r == 1 && (pfd.revents & (POLLHUP | POLLIN)),
		  "the daemon still holds a passed descriptor");
	close(sv[0]);
	cr_assert(t_raw_alive(fd));
	close(fd);
	assert_serving("passed descriptors");
	t_daemon_fini(&d);
}

/* Send HELLO with SCM_CREDENTIALS @cred.  Returns sendmsg's -errno, or the reply status. */
static int hello_with_creds(int fd, const struct ucred *cred)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(struct ucred))];
	} cm;
	struct shmq_req_hello h = {.proto_version = SHMQ_PROTO_VERSION,
				   .layout_major = SHMQ_LAYOUT_MAJOR,
				   .layout_minor = SHMQ_LAYOUT_MINOR,
				   .client_name = "forged-creds"};
	unsigned char buf[64];
	struct iovec iov = {.iov_base = buf,
			    .iov_len = t_raw_build(buf, SHMQ_OP_HELLO, 5, &h, sizeof(h))};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cm.buf,
			    .msg_controllen = sizeof(cm.buf)};
	static struct t_reply rep;
	int r;

	memset(&cm, 0, sizeof(cm));
	cm.h.cmsg_level = SOL_SOCKET;
	cm.h.cmsg_type = SCM_CREDENTIALS;
	cm.h.cmsg_len = CMSG_LEN(sizeof(*cred));
	memcpy(CMSG_DATA(&cm.h), cred, sizeof(*cred));
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
		return -errno;
	r = t_raw_recv(fd, &rep, T_RAW_TIMEOUT_MS);
	if (r <= 0)
		return r == 0 ? -ECONNRESET : r;
	if (rep.fd >= 0)
		close(rep.fd);
	return rep.hdr.status;
}

struct cred_probe {
	const char *sock;
	int forged;   /* HELLO with forged credentials: sendmsg refused by the kernel */
	int real;     /* HELLO with its true credentials */
	int create;   /* CREATE afterwards */
	int as_owner; /* 1 if the object's owner is the real uid */
};

static int cred_child(void *arg)
{
	struct cred_probe *p = arg;
	struct ucred forged = {.pid = 1, .uid = 0, .gid = 0};
	struct ucred real = {.pid = getpid(), .uid = getuid(), .gid = getgid()};
	struct shmq_req_open q;
	struct shmq_obj_info info;
	uint64_t id;
	int fd = t_raw_connect(p->sock), gfd;

	if (fd < 0)
		return 1;
	p->forged = hello_with_creds(fd, &forged);
	p->real = hello_with_creds(fd, &real);
	t_raw_queue_req(&q, "credq", SHMQ_OPEN_SEND, 8, 64, SHMQ_QMODE_MPMC, 0600);
	p->create = call_open(fd, SHMQ_OP_CREATE, &q, &id, &gfd);
	if (p->create == 0)
		close(gfd);
	p->as_owner = t_raw_stat(fd, "credq", &info) == 0 && info.owner_uid == getuid();
	close(fd);
	return 0;
}

Test(hostile, forged_credentials_are_never_trusted_only_so_peercred)
{
	struct cred_probe *p = t_shared_alloc(sizeof(*p));
	struct ucred forged = {.pid = 1, .uid = OTHER_UID, .gid = OTHER_GID};
	static struct t_reply rep;
	const struct shmq_rep_sessions *rs = (const void *)rep.body;
	struct shmq_req_page page = {0};
	struct shmq_req_open q;
	struct shmq_obj_info info;
	uint64_t id;
	int fd, gfd, found = 0;

	t_daemon_start(&d, NULL, NULL);
	/* An unprivileged client cannot even send credentials other than its own. */
	p->sock = d.sock;
	run_child(t_fork_as(OTHER_UID, OTHER_GID, cred_child, p), "the forger");
	T_ERR(p->forged, -EPERM);
	T_OK(p->real);
	T_OK(p->create);
	cr_assert(p->as_owner, "the object is not owned by the forger's real uid");

	/* Root may send any credentials; the daemon still goes by SO_PEERCRED. */
	fd = t_raw_connect(d.sock);
	cr_assert(fd >= 0);
	T_OK(hello_with_creds(fd, &forged));
	t_raw_queue_req(&q, "rootq", SHMQ_OPEN_SEND, 8, 64, SHMQ_QMODE_MPMC, 0600);
	T_OK(call_open(fd, SHMQ_OP_CREATE, &q, &id, &gfd));
	close(gfd);
	T_OK(t_raw_stat(fd, "rootq", &info));
	cr_assert(eq(u32, info.owner_uid, 0), "owner %u: the forged uid was believed",
		  info.owner_uid);
	T_OK(t_raw_call(fd, SHMQ_OP_SESSIONS, &page, sizeof(page), &rep));
	for (uint32_t i = 0; i < rs->count; i++) {
		if (strcmp(rs->items[i].client_name, "forged-creds"))
			continue;
		found++;
		cr_assert(rs->items[i].pid == getpid() && rs->items[i].uid == 0,
			  "SESSIONS shows pid %d uid %u", rs->items[i].pid, rs->items[i].uid);
	}
	cr_assert(eq(int, found, 1));
	close(fd);
	assert_serving("forged credentials");
	t_daemon_fini(&d);
}

/* --- Oversized and malformed datagrams --- */

Test(hostile, malformed_datagrams_each_get_their_documented_error_and_the_daemon_stays_up)
{
	static unsigned char buf[2 * SHMQ_MSG_MAX];
	static struct t_reply rep;
	struct shmq_msg_hdr *h = (struct shmq_msg_hdr *)buf;
	struct shmq_req_name name;
	struct shmq_rep_status st;
	int fd, base, r;
	long rss0;
	const struct {
		size_t len;	/* bytes sent */
		int field;	/* header field to break, 0 none */
		uint32_t value; /* its value */
		uint16_t op;
		int want;
		bool hello; /* the session has said HELLO */
		const char *what;
	} cases[] = {
		{0, 0, 0, SHMQ_OP_STATUS, -EPROTO, true, "empty datagram"},
		{1, 0, 0, SHMQ_OP_STATUS, -EPROTO, true, "1 byte"},
		{7, 0, 0, SHMQ_OP_STATUS, -EPROTO, true, "7 bytes"},
		{15, 0, 0, SHMQ_OP_STATUS, -EPROTO, true, "15 bytes"},
		{23, 0, 0, SHMQ_OP_STATUS, -EPROTO, true, "23 bytes"},
		{24 + 63, 0, 0, SHMQ_OP_STAT, -EBADMSG, true, "STAT body one short"},
		{24 + 65, 0, 0, SHMQ_OP_STAT, -EBADMSG, true, "STAT body one long"},
		{24, 0, 0, SHMQ_OP_STAT, -EBADMSG, true, "STAT without a body"},
		{SHMQ_MSG_MAX, 0, 0, SHMQ_OP_STAT, -EBADMSG, true, "exactly SHMQ_MSG_MAX"},
		{SHMQ_MSG_MAX + 1, 0, 0, SHMQ_OP_STAT, -EPROTO, true, "SHMQ_MSG_MAX + 1"},
		{2 * SHMQ_MSG_MAX, 0, 0, SHMQ_OP_STAT, -EPROTO, true, "twice SHMQ_MSG_MAX"},
		{24, 1, 0, SHMQ_OP_STATUS, -EPROTO, true, "magic 0"},
		{24, 1, ~SHMQ_PROTO_MAGIC, SHMQ_OP_STATUS, -EPROTO, true, "magic inverted"},
		{24, 2, 0, SHMQ_OP_STATUS, -EPROTO, true, "version 0"},
		{24, 2, 2, SHMQ_OP_STATUS, -EPROTO, true, "version 2"},
		{24, 2, 0xffff, SHMQ_OP_STATUS, -EPROTO, true, "version 0xffff"},
		{24, 3, 0, SHMQ_OP_STATUS, -EBADMSG, true, "size 0"},
		{24, 3, 25, SHMQ_OP_STATUS, -EBADMSG, true, "size one long"},
		{24, 3, 0xffffffff, SHMQ_OP_STATUS, -EBADMSG, true, "size 4 GiB"},
		{24, 4, 1, SHMQ_OP_STATUS, -EINVAL, true, "status set"},
		{24, 5, 1, SHMQ_OP_STATUS, -EINVAL, true, "reserved set"},
		{24, 0, 0, 0, -EOPNOTSUPP, true, "op 0"},
		{24, 0, 0, SHMQ_OP_COUNT, -EOPNOTSUPP, true, "the first op past the last"},
		{24, 0, 0, 0x7fff, -EOPNOTSUPP, true, "op 0x7fff"},
		{24, 0, 0, SHMQ_OP_REPLY | SHMQ_OP_STATUS, -EOPNOTSUPP, true, "a reply as request"},
		{24, 0, 0, 0xffff, -EOPNOTSUPP, true, "op 0xffff"},
		{24 + 8, 0, 0, SHMQ_OP_LIST, -EPROTO, false, "LIST before HELLO"},
		{24, 0, 0, SHMQ_OP_STATUS, -EPROTO, false, "STATUS before HELLO"},
		{24 + 8, 0, 0, SHMQ_OP_CLOSE, -EPROTO, false, "CLOSE before HELLO"},
		{24 + 64, 0, 0, SHMQ_OP_UNLINK, -EPROTO, false, "UNLINK before HELLO"},
		{24 + 40, 0, 0, SHMQ_OP_HELLO, -EINVAL, true, "a second HELLO"},
	};

	t_daemon_start(&d, NULL, NULL);
	fd = session();
	{
		/* Let the daemon's buffers settle before the baseline. */
		int sndbuf = 4 * SHMQ_MSG_MAX;

		cr_assert(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) == 0);
	}
	base = fd_count(d.pid);
	rss0 = rss_kb(d.pid);
	for (int round = 0; round < 20; round++) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			int cfd = fd;
			uint32_t *field;

			if (!cases[i].hello) {
				cfd = t_raw_connect(d.sock);
				cr_assert(cfd >= 0);
			}
			memset(buf, 0, cases[i].len > sizeof(*h) ? cases[i].len : sizeof(*h));
			{ /* a runt is the head of a good header */
				t_raw_build(buf, cases[i].op, 4242, NULL, 0);
				h->size = (uint32_t)cases[i].len;
				if (cases[i].op == SHMQ_OP_HELLO) {
					struct shmq_req_hello hello = {
						.proto_version = SHMQ_PROTO_VERSION,
						.layout_major = SHMQ_LAYOUT_MAJOR,
						.layout_minor = SHMQ_LAYOUT_MINOR};

					memcpy(buf + sizeof(*h), &hello, sizeof(hello));
				}
				field = cases[i].field == 1   ? &h->magic
					: cases[i].field == 3 ? &h->size
					: cases[i].field == 4 ? (uint32_t *)&h->status
					: cases[i].field == 5 ? &h->reserved
							      : NULL;
				if (field)
					*field = cases[i].value;
				if (cases[i].field == 2)
					h->version = (uint16_t)cases[i].value;
			}
			r = t_raw_send(cfd, buf, cases[i].len, -1);
			cr_assert(r == 0, "%s: send: %s", cases[i].what, strerror(-r));
			r = t_raw_recv(cfd, &rep, T_RAW_TIMEOUT_MS);
			cr_assert(r > 0, "%s: no reply (%d)", cases[i].what, r);
			/* The header, and at most a NUL-terminated reason (protocol.h). */
			cr_assert(rep.len >= sizeof(rep.hdr) &&
					  rep.len <= sizeof(rep.hdr) + SHMQ_REASON_MAX &&
					  rep.hdr.size == rep.len && rep.n_fds == 0 &&
					  (rep.len == sizeof(rep.hdr) ||
					   rep.body[rep.len - sizeof(rep.hdr) - 1] == '\0'),
				  "%s: an error reply of %zu bytes", cases[i].what, rep.len);
			cr_assert(rep.hdr.status == cases[i].want, "%s: %d (%s), want %d (%s)",
				  cases[i].what, rep.hdr.status, strerror(-rep.hdr.status),
				  cases[i].want, strerror(-cases[i].want));
			if (cases[i].len >= 16)
				cr_assert(eq(u32, rep.hdr.seq, 4242), "%s: seq not echoed",
					  cases[i].what);
			if (!cases[i].hello) {
				T_OK(t_raw_hello(cfd)); /* the refusal left the session usable */
				close(cfd);
			}
			cr_assert(t_raw_alive(fd), "%s: the session is not served afterwards",
				  cases[i].what);
		}
	}

	/* Names: 64 bytes unterminated, and every kind of invalid byte, for each name op. */
	{
		static const char *const bad[] = {"",	  ".",	  "..",	      "a/b",
						  "a b",  "a\nb", "\x7f",     "caf\xc3\xa9",
						  "-\t-", "%s%n", "../../etc"};
		static const uint16_t ops[] = {SHMQ_OP_UNLINK, SHMQ_OP_STAT, SHMQ_OP_PURGE};
		char long_name[65];

		for (size_t o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
			memset(&name, 'n', sizeof(name));
			T_ERR(t_raw_call(fd, ops[o], &name, sizeof(name), NULL), -EINVAL);
			for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
				name_req(&name, bad[i]);
				r = t_raw_call(fd, ops[o], &name, sizeof(name), NULL);
				cr_assert(r == -EINVAL, "op %u name '%s': %d", ops[o], bad[i], r);
			}
		}
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			struct shmq_req_open q;
			uint64_t id;
			int gfd;

			t_raw_queue_req(&q, bad[i], SHMQ_OPEN_SEND, 8, 64, 0, 0600);
			T_ERR(call_open(fd, SHMQ_OP_CREATE, &q, &id, &gfd), -EINVAL);
		}
		/* 63 bytes is the longest valid name; 64 cannot be terminated. */
		memset(long_name, 'x', sizeof(long_name));
		long_name[63] = '\0';
		{
			struct shmq_req_open q;
			uint64_t id;
			int gfd;

			t_raw_queue_req(&q, long_name, SHMQ_OPEN_SEND, 8, 64, 0, 0600);
			T_OK(call_open(fd, SHMQ_OP_CREATE, &q, &id, &gfd));
			close(gfd);
			memset(q.name, 'x', sizeof(q.name));
			T_ERR(call_open(fd, SHMQ_OP_OPEN, &q, &id, &gfd), -EINVAL);
		}
		T_OK(call_name(fd, SHMQ_OP_UNLINK, long_name, NULL));
	}
	T_OK(call_status(fd, &st));
	cr_assert(eq(u32, st.n_objects, 1), "objects left behind: %u", st.n_objects);
	cr_assert(eq(u32, st.n_sessions, 1), "sessions left behind: %u", st.n_sessions);
	close(fd);
	assert_serving("malformed datagrams");
	fd = session();
	assert_fds_settle(base, "malformed datagrams");
	cr_assert(rss_kb(d.pid) < rss0 + 8192, "the daemon grew from %ld to %ld KiB", rss0,
		  rss_kb(d.pid));
	close(fd);
	t_daemon_fini(&d);
}

/* --- Floods --- */

/* A bystander's control call: open a view of its queue and close it.  Its latency in ms. */
static int bystander_call(struct shmq_client *c, int *ret_ms)
{
	uint64_t t0 = t_now_ns();
	struct shmq_queue *v;
	int r = shmq_queue_open(c, "bystander", SHMQ_VIEW, NULL, &v);

	if (r == 0)
		r = shmq_queue_close(v);
	*ret_ms = (int)((t_now_ns() - t0) / 1000000);
	return r;
}

static bool is_hangup(int r)
{
	return r == -EPIPE || r == -ECONNRESET || r == -ECONNREFUSED || r == -ENOTCONN;
}

/*
 * Send @len bytes of @req on @fd as fast as the socket takes them, never
 * reading a reply, while a bystander keeps making control calls.  Returns
 * once the daemon has hung up on the flooder (true) or after @max_ms.
 */
static bool flood(int fd, const void *req, size_t len, int max_ms, struct shmq_client *c,
		  long *ret_sent, int *ret_worst_ms)
{
	uint64_t deadline = t_now_ns() + (uint64_t)max_ms * 1000000u;

	*ret_sent = 0;
	*ret_worst_ms = 0;
	while (t_now_ns() < deadline) {
		ssize_t n = send(fd, req, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		int ms;

		if (n == (ssize_t)len) {
			++*ret_sent;
			continue;
		}
		if (n < 0 && is_hangup(-errno))
			return true;
		cr_assert(n < 0 && errno == EAGAIN, "flooding: %s", strerror(errno));
		/* The flooder's socket is full: the daemon must still serve others. */
		T_OK(bystander_call(c, &ms));
		if (ms > *ret_worst_ms)
			*ret_worst_ms = ms;
		t_sleep_ms(1);
	}
	return false;
}

static struct shmq_client *bystander_new(struct shmq_queue **ret_q)
{
	struct shmq_queue_attr a = {
		.size = sizeof(a), .n_slots = 8, .slot_size = 64, .numa_node = -1, .perm = 0644};
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q;

	T_OK(shmq_queue_open(c, "bystander", SHMQ_CREATE | SHMQ_SEND | SHMQ_RECV, &a, &q));
	T_OK(shmq_queue_send(q, "kept", 4));
	*ret_q = q;
	return c;
}

Test(hostile, a_client_that_never_reads_its_replies_is_dropped_and_others_keep_service)
{
	static unsigned char req[256];
	struct shmq_client *c;
	struct shmq_queue *q;
	struct shmq_req_page page = {0};
	struct shmq_req_open view;
	struct shmq_obj_info info;
	long sent, rss0;
	int fd, obs, base, worst, ms;
	size_t len;

	t_daemon_start(&d, NULL, NULL);
	c = bystander_new(&q);
	obs = session();
	base = fd_count(d.pid);
	rss0 = rss_kb(d.pid);

	/* STATUS (160-byte replies), LIST (big replies), then OPEN views (a descriptor each). */
	for (int kind = 0; kind < 3; kind++) {
		fd = session();
		if (kind == 0)
			len = t_raw_build(req, SHMQ_OP_STATUS, 1, NULL, 0);
		else if (kind == 1)
			len = t_raw_build(req, SHMQ_OP_LIST, 1, &page, sizeof(page));
		else {
			t_raw_queue_req(&view, "bystander", SHMQ_OPEN_VIEW, 0, 0, 0, 0);
			len = t_raw_build(req, SHMQ_OP_OPEN, 1, &view, sizeof(view));
		}
		cr_assert(flood(fd, req, len, 20000, c, &sent, &worst),
			  "flood %d: the daemon kept a client that reads no replies (%ld sent)",
			  kind, sent);
		cr_assert(worst < 3000, "flood %d: a bystander call took %d ms", kind, worst);
		close(fd);
		T_OK(bystander_call(c, &ms));
		cr_assert(t_raw_alive(obs));
	}
	/* Everything the flooders held is released: attachments and descriptors. */
	T_OK(t_raw_stat(obs, "bystander", &info));
	{
		uint64_t deadline = t_now_ns() + 5000000000ull;

		while (info.n_attached != 1 && t_now_ns() < deadline) {
			t_sleep_ms(10);
			T_OK(t_raw_stat(obs, "bystander", &info));
		}
	}
	cr_assert(eq(u32, info.n_attached, 1), "the flooders' views are still attached: %u",
		  info.n_attached);
	assert_fds_settle(base, "after the floods");
	cr_assert(rss_kb(d.pid) < rss0 + 16384, "the daemon grew from %ld to %ld KiB", rss0,
		  rss_kb(d.pid));
	close(obs);
	{
		char m[8];

		cr_assert(eq(int, shmq_queue_recv(q, m, sizeof(m)), 4), "the bystander's message");
	}
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(hostile, connections_past_max_clients_are_refused_cleanly_and_the_rest_keep_service)
{
	static const char *const args[] = {"--max-clients=8", NULL};
	enum { N_EXTRA = 150 };
	struct shmq_rep_status st;
	int fds[7], extra[N_EXTRA], obs, base, enospc = 0, closed = 0, r;

	t_daemon_start(&d, args, NULL);
	obs = session();
	base = fd_count(d.pid);
	for (int i = 0; i < 7; i++)
		fds[i] = session();
	/* More than max-clients plus the daemon's backlog of refusals. */
	for (int i = 0; i < N_EXTRA; i++) {
		extra[i] = t_raw_connect(d.sock);
		cr_assert(extra[i] >= 0, "connect %d: %s", i, strerror(-extra[i]));
	}
	T_OK(call_status(obs, &st));
	cr_assert(eq(u32, st.n_sessions, 8), "%u sessions", st.n_sessions);
	for (int i = 0; i < N_EXTRA; i++) {
		r = t_raw_hello(extra[i]);
		if (r == -ENOSPC)
			enospc++;
		else if (is_hangup(r))
			closed++;
		else
			cr_fail("connection %d past max-clients: %d (%s)", i, r,
				r < 0 ? strerror(-r) : "?");
		/* Refused means closed: nothing more is answered on it. */
		cr_assert(t_raw_alive(extra[i]) == false, "connection %d was served", i);
		close(extra[i]);
	}
	cr_assert(enospc >= 1, "no connection got -ENOSPC (%d closed)", closed);
	for (int i = 0; i < 7; i++) {
		cr_assert(t_raw_alive(fds[i]), "session %d lost its service", i);
		close(fds[i]);
	}
	assert_fds_settle(base, "after the refused connections");
	/* Room again. */
	fds[0] = session();
	T_OK(call_status(obs, &st));
	cr_assert(eq(u32, st.n_sessions, 2), "%u sessions", st.n_sessions);
	close(fds[0]);
	close(obs);
	t_daemon_fini(&d);
}

static int connect_and_exit(void *arg)
{
	const char *sock = arg;
	int fd = t_raw_connect(sock);

	if (fd >= 0 && (getpid() & 1))
		t_raw_hello(fd);
	_exit(0); /* without closing: the kernel does it */
}

Test(hostile, rapid_connect_disconnect_loops_leave_no_session_or_descriptor_behind)
{
	static unsigned char buf[128];
	struct shmq_rep_status st;
	struct shmq_req_hello h = {.proto_version = SHMQ_PROTO_VERSION,
				   .layout_major = SHMQ_LAYOUT_MAJOR,
				   .layout_minor = SHMQ_LAYOUT_MINOR};
	size_t hello_len = t_raw_build(buf, SHMQ_OP_HELLO, 1, &h, sizeof(h));
	int obs, base;
	uint64_t deadline;

	t_daemon_start(&d, NULL, NULL);
	obs = session();
	base = fd_count(d.pid);
	for (int i = 0; i < 3000; i++) {
		int fd = t_raw_connect(d.sock);

		cr_assert(fd >= 0, "connect %d: %s", i, strerror(-fd));
		switch (i % 4) {
		case 0: /* connect and go */
			break;
		case 1: /* HELLO and go without reading the reply */
			t_raw_send(fd, buf, hello_len, -1);
			break;
		case 2: /* a full round trip */
			T_OK(t_raw_hello(fd));
			break;
		case 3: /* a runt, then half-close */
			t_raw_send(fd, buf, 5, -1);
			shutdown(fd, SHUT_WR);
			break;
		}
		close(fd);
	}
	for (int i = 0; i < 50; i++)
		t_wait_peer_ms(t_fork_child(connect_and_exit, d.sock), CHILD_MS);
	deadline = t_now_ns() + 5000000000ull;
	do {
		T_OK(call_status(obs, &st));
		if (st.n_sessions == 1)
			break;
		t_sleep_ms(10);
	} while (t_now_ns() < deadline);
	cr_assert(eq(u32, st.n_sessions, 1), "%u sessions left", st.n_sessions);
	assert_fds_settle(base, "3050 connections");
	close(obs);
	assert_serving("rapid connects");
	t_daemon_fini(&d);
}

/* --- Per-uid limits under a flood --- */

#define RACERS		8
#define CONNS_PER_RACER 4
#define TRIES_PER_RACER 40

struct race {
	const char *sock;
	volatile int go;
	int created[RACERS];
	int enospc[RACERS];
	int other[RACERS]; /* any other error */
	int first_other[RACERS];
	bool vary; /* queues of different sizes (the memory test) */
};

struct racer_arg {
	struct race *r;
	int id;
};

static struct racer_arg racer_args[RACERS];

static int racer(void *arg)
{
	struct racer_arg *a = arg;
	struct race *rc = a->r;
	int fds[CONNS_PER_RACER];

	for (int i = 0; i < CONNS_PER_RACER; i++) {
		fds[i] = t_raw_session(rc->sock);
		if (fds[i] < 0)
			return 1;
	}
	while (!rc->go)
		t_sleep_ms(1);
	for (int i = 0; i < TRIES_PER_RACER; i++) {
		struct shmq_req_open q;
		char name[32];
		uint64_t id;
		int gfd, r;

		snprintf(name, sizeof(name), "r%d-%d", a->id, i);
		if (!rc->vary && (i & 1))
			sem_req(&q, name, SHMQ_OPEN_SEM, 0600);
		else
			t_raw_queue_req(&q, name, SHMQ_OPEN_SEND, rc->vary ? 16u << (i % 4) : 8,
					1024, SHMQ_QMODE_MPMC, 0600);
		r = call_open(fds[i % CONNS_PER_RACER], SHMQ_OP_CREATE, &q, &id, &gfd);
		if (r == 0) {
			close(gfd);
			rc->created[a->id]++;
		} else if (r == -ENOSPC) {
			rc->enospc[a->id]++;
		} else if (!rc->other[a->id]++) {
			rc->first_other[a->id] = r;
		}
	}
	for (int i = 0; i < CONNS_PER_RACER; i++)
		close(fds[i]);
	return 0;
}

/* The uid's objects and bytes as LIST shows them. */
static void usage_of(int fd, uint32_t uid, int *ret_n, uint64_t *ret_bytes)
{
	static struct shmq_obj_info all[1024];
	int n = list_all(fd, all, 1024);

	cr_assert(n >= 0, "LIST: %d", n);
	*ret_n = 0;
	*ret_bytes = 0;
	for (int i = 0; i < n; i++) {
		if (all[i].owner_uid != uid)
			continue;
		++*ret_n;
		*ret_bytes += all[i].size;
	}
}

static void race_limits(bool vary, int max_objects, uint64_t max_bytes)
{
	struct race *rc = t_shared_alloc(sizeof(*rc));
	pid_t pids[RACERS];
	int fd, n, created = 0, enospc = 0, peak_n = 0;
	uint64_t bytes, peak_bytes = 0;
	struct shmq_rep_status st;

	rc->sock = d.sock;
	rc->vary = vary;
	for (int i = 0; i < RACERS; i++) {
		racer_args[i] = (struct racer_arg){.r = rc, .id = i};
		pids[i] = t_fork_as(OTHER_UID, OTHER_GID, racer, &racer_args[i]);
	}
	fd = session();
	t_sleep_ms(200); /* the racers connect */
	rc->go = 1;
	/* Watch while they race: the limits hold at every moment, not only at the end. */
	for (int i = 0; i < 50; i++) {
		usage_of(fd, OTHER_UID, &n, &bytes);
		if (n > peak_n)
			peak_n = n;
		if (bytes > peak_bytes)
			peak_bytes = bytes;
		t_sleep_ms(2);
	}
	for (int i = 0; i < RACERS; i++)
		run_child(pids[i], "a racer");
	for (int i = 0; i < RACERS; i++) {
		cr_assert(eq(int, rc->other[i], 0), "racer %d: %d errors other than -ENOSPC (%d)",
			  i, rc->other[i], rc->first_other[i]);
		created += rc->created[i];
		enospc += rc->enospc[i];
	}
	usage_of(fd, OTHER_UID, &n, &bytes);
	cr_assert(eq(int, n, created), "LIST shows %d objects of the uid, %d were granted", n,
		  created);
	cr_assert(enospc > 0, "the limit was never reached");
	cr_assert(n <= max_objects && peak_n <= max_objects, "%d objects (peak %d) > limit %d", n,
		  peak_n, max_objects);
	cr_assert(bytes <= max_bytes && peak_bytes <= max_bytes,
		  "%llu bytes (peak %llu) > limit %llu", (unsigned long long)bytes,
		  (unsigned long long)peak_bytes, (unsigned long long)max_bytes);
	T_OK(call_status(fd, &st));
	cr_assert(eq(u32, st.n_objects, (uint32_t)n));
	cr_assert(eq(u64, st.memory_bytes, bytes));
	close(fd);
}

Test(hostile, max_objects_per_uid_holds_when_many_connections_race_to_create)
{
	static const char *const args[] = {"--max-objects-per-uid=12", NULL};

	t_daemon_start(&d, args, NULL);
	race_limits(false, 12, UINT64_MAX);
	t_daemon_fini(&d);
}

Test(hostile, max_memory_per_uid_holds_when_many_connections_race_to_create)
{
	static const char *const args[] = {"--max-memory-per-uid=1M", NULL};

	t_daemon_start(&d, args, NULL);
	race_limits(true, 1024, 1024 * 1024);
	t_daemon_fini(&d);
}

/* --- What a granted descriptor allows --- */

struct fd_probe {
	const char *sock;
	int open_view, open_send;
	uint64_t size;
	/* the view's descriptor */
	int v_rdonly, v_setfl_rdonly, v_mmap_rw, v_mmap_ro, v_mprotect, v_reopen_rw, v_reopen_wr,
		v_ftruncate, v_fallocate, v_write, v_add_seals, v_fchmod, v_private_kept;
	/* the writer's descriptor */
	int w_seals, w_shrink, w_grow, w_zero, w_fallocate_grow, w_pwrite_grow, w_add_seal_write,
		w_fchmod, w_fchown, w_reopen_rw, w_size_kept;
};

static int err_of(long r)
{
	return r < 0 ? -errno : 0;
}

static int probe_fds(void *arg)
{
	struct fd_probe *p = arg;
	struct shmq_req_open q;
	uint64_t id;
	char path[64];
	struct stat st;
	int fd = t_raw_session(p->sock), v, w, fl, r;
	unsigned char *m, *priv;

	if (fd < 0)
		return 1;
	t_raw_queue_req(&q, "guarded", SHMQ_OPEN_VIEW, 0, 0, 0, 0);
	p->open_view = call_open(fd, SHMQ_OP_OPEN, &q, &id, &v);
	t_raw_queue_req(&q, "guarded", SHMQ_OPEN_SEND, 0, 0, 0, 0);
	p->open_send = call_open(fd, SHMQ_OP_OPEN, &q, &id, &w);
	if (p->open_view || p->open_send || fstat(v, &st) < 0)
		return 2;
	p->size = (uint64_t)st.st_size;

	/* The view: read-only, and no way to make it writable. */
	fl = fcntl(v, F_GETFL);
	p->v_rdonly = (fl & O_ACCMODE) == O_RDONLY;
	fcntl(v, F_SETFL, O_RDWR | O_NONBLOCK);
	p->v_setfl_rdonly = (fcntl(v, F_GETFL) & O_ACCMODE) == O_RDONLY;
	m = mmap(NULL, p->size, PROT_READ | PROT_WRITE, MAP_SHARED, v, 0);
	p->v_mmap_rw = m == MAP_FAILED ? -errno : 0;
	if (m != MAP_FAILED)
		munmap(m, p->size);
	m = mmap(NULL, p->size, PROT_READ, MAP_SHARED, v, 0);
	p->v_mmap_ro = m == MAP_FAILED ? -errno : 0;
	if (m == MAP_FAILED)
		return 3;
	p->v_mprotect = err_of(mprotect(m, p->size, PROT_READ | PROT_WRITE));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", v);
	r = open(path, O_RDWR | O_CLOEXEC);
	p->v_reopen_rw = r < 0 ? -errno : 0;
	if (r >= 0)
		close(r);
	r = open(path, O_WRONLY | O_CLOEXEC);
	p->v_reopen_wr = r < 0 ? -errno : 0;
	if (r >= 0)
		close(r);
	p->v_ftruncate = err_of(ftruncate(v, (off_t)p->size * 2));
	p->v_fallocate = err_of(fallocate(v, 0, 0, (off_t)p->size * 2));
	p->v_write = err_of(pwrite(v, "x", 1, 0));
	p->v_add_seals = err_of(fcntl(v, F_ADD_SEALS, F_SEAL_WRITE));
	p->v_fchmod = err_of(fchmod(v, 0666));
	/* A private writable mapping is allowed, and writing it changes nobody's segment. */
	priv = mmap(NULL, p->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, v, 0);
	if (priv != MAP_FAILED) {
		unsigned char old = m[p->size - 1];

		priv[p->size - 1] = (unsigned char)~old;
		p->v_private_kept = m[p->size - 1] == old;
		munmap(priv, p->size);
	}
	munmap(m, p->size);

	/* The writer: sealed, so it can neither shrink nor grow the segment. */
	p->w_seals = fcntl(w, F_GET_SEALS);
	p->w_shrink = err_of(ftruncate(w, (off_t)p->size - 4096));
	p->w_grow = err_of(ftruncate(w, (off_t)p->size + 4096));
	p->w_zero = err_of(ftruncate(w, 0));
	p->w_fallocate_grow = err_of(fallocate(w, 0, (off_t)p->size, 4096));
	p->w_pwrite_grow = err_of(pwrite(w, "x", 1, (off_t)p->size));
	p->w_add_seal_write = err_of(fcntl(w, F_ADD_SEALS, F_SEAL_WRITE));
	p->w_fchmod = err_of(fchmod(w, 0666));
	p->w_fchown = err_of(fchown(w, getuid(), getgid()));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", w);
	r = open(path, O_RDWR | O_CLOEXEC);
	p->w_reopen_rw = r < 0 ? -errno : 0;
	if (r >= 0)
		close(r);
	p->w_size_kept = fstat(w, &st) == 0 && (uint64_t)st.st_size == p->size;
	close(v);
	close(w);
	close(fd);
	return 0;
}

Test(hostile, a_read_only_descriptor_cannot_be_made_writable_and_no_writer_can_resize)
{
	struct shmq_queue_attr a = {
		.size = sizeof(a), .n_slots = 8, .slot_size = 64, .numa_node = -1, .perm = 0666};
	struct fd_probe *p = t_shared_alloc(sizeof(*p));
	struct shmq_obj_info info;
	struct shmq_client *c;
	struct shmq_queue *q;
	char buf[16];
	int fd;

	t_daemon_start(&d, NULL, NULL);
	c = t_connect(&d);
	T_OK(shmq_queue_open(c, "guarded", SHMQ_CREATE | SHMQ_SEND | SHMQ_RECV, &a, &q));
	p->sock = d.sock;
	run_child(t_fork_as(OTHER_UID, OTHER_GID, probe_fds, p), "the prober");

	cr_assert(p->v_rdonly, "the view's descriptor is not O_RDONLY");
	cr_assert(p->v_setfl_rdonly, "F_SETFL changed the access mode");
	T_ERR(p->v_mmap_rw, -EACCES);
	T_OK(p->v_mmap_ro);
	T_ERR(p->v_mprotect, -EACCES);
	T_ERR(p->v_reopen_rw, -EACCES);
	T_ERR(p->v_reopen_wr, -EACCES);
	T_ERR(p->v_ftruncate, -EINVAL);
	T_ERR(p->v_fallocate, -EBADF);
	T_ERR(p->v_write, -EBADF);
	T_ERR(p->v_add_seals, -EPERM);
	T_ERR(p->v_fchmod, -EPERM);
	cr_assert(p->v_private_kept, "a MAP_PRIVATE write reached the shared segment");

	cr_assert(eq(int, p->w_seals, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), "seals %#x",
		  p->w_seals);
	T_ERR(p->w_shrink, -EPERM);
	T_ERR(p->w_grow, -EPERM);
	T_ERR(p->w_zero, -EPERM);
	T_ERR(p->w_fallocate_grow, -EPERM);
	T_ERR(p->w_pwrite_grow, -EPERM);
	T_ERR(p->w_add_seal_write, -EPERM);
	T_ERR(p->w_fchmod, -EPERM);
	T_ERR(p->w_fchown, -EPERM);
	T_ERR(p->w_reopen_rw, -EACCES);
	cr_assert(p->w_size_kept, "the writer changed the segment's size");

	/* The segment is as it was, and works. */
	fd = session();
	T_OK(t_raw_stat(fd, "guarded", &info));
	cr_assert(eq(u64, info.size, p->size));
	close(fd);
	T_OK(shmq_queue_send(q, "intact", 6));
	cr_assert(eq(int, shmq_queue_recv(q, buf, sizeof(buf)), 6));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* --- The control socket and its directory --- */

/* Child: connect raw (result in open_view) and through libshmq (in open_send). */
static int try_connect(void *arg)
{
	struct fd_probe *p = arg;
	struct shmq_client *c;
	int fd = t_raw_connect(p->sock);

	p->open_view = fd < 0 ? fd : 0;
	if (fd >= 0)
		close(fd);
	p->open_send = shmq_client_connect(p->sock, &c);
	if (p->open_send == 0)
		shmq_client_close(c);
	return 0;
}

Test(hostile, the_socket_file_has_the_configured_mode_and_a_0600_socket_keeps_others_out)
{
	static const char *const args[] = {"--socket-mode=0600", NULL};
	struct fd_probe *p = t_shared_alloc(sizeof(*p));
	struct stat st;

	t_daemon_start(&d, NULL, NULL);
	cr_assert(lstat(d.sock, &st) == 0);
	cr_assert(st.st_mode - (st.st_mode & 07777) == S_IFSOCK, "not a socket");
	cr_assert(eq(u32, st.st_mode & 07777, 0666), "default socket mode %04o",
		  st.st_mode & 07777);
	cr_assert(eq(u32, st.st_uid, 0), "socket owned by %u", st.st_uid);
	t_daemon_fini(&d);

	t_daemon_start(&d, args, NULL);
	cr_assert(lstat(d.sock, &st) == 0);
	cr_assert(eq(u32, st.st_mode & 07777, 0600), "socket mode %04o", st.st_mode & 07777);
	p->sock = d.sock;
	run_child(t_fork_as(OTHER_UID, OTHER_GID, try_connect, p), "an outsider");
	T_ERR(p->open_view, -EACCES); /* raw connect() */
	T_ERR(p->open_send, -EACCES); /* shmq_client_connect() */
	/* Root still gets in. */
	run_child(t_fork_child(try_connect, p), "root");
	T_OK(p->open_view);
	T_OK(p->open_send);
	assert_serving("socket mode");
	t_daemon_fini(&d);
}

/*
 * A daemon on its default socket path: as @uid with XDG_RUNTIME_DIR=@xdg,
 * or as root in a private mount namespace with a tmpfs on /run, where
 * @prepare sets up /run/shmq first.  Nothing else may be touched: the
 * host's /run/shmq belongs to the host.
 */
struct spawned {
	pid_t pid;
	char sock[160]; /* the default path, as the test process sees it */
	int status;	/* exit status once it exited, else -1 */
};

static void spawn_default(struct spawned *s, uid_t uid, gid_t gid, const char *xdg,
			  void (*prepare)(void), const char *dir)
{
	const char *shmqd = uid ? t_stage_for_others(t_shmqd_path()) : t_shmqd_path();
	char log[128], conf[128], conf_arg[160];
	pid_t parent = getpid();
	int logfd;

	snprintf(log, sizeof(log), "%s/shmqd.stderr", dir);
	snprintf(conf, sizeof(conf), "%s/empty.conf", dir);
	snprintf(conf_arg, sizeof(conf_arg), "--config=%s", conf);
	close(open(conf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	cr_assert(logfd >= 0);
	s->status = -1;
	fflush(NULL);
	s->pid = fork();
	cr_assert(s->pid >= 0);
	if (s->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		unsetenv("SHMQ_SOCKET");
		unsetenv("NOTIFY_SOCKET");
		unsetenv("LISTEN_FDS");
		if (prepare) {
			if (unshare(CLONE_NEWNS) < 0 ||
			    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
			    mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") < 0) {
				dprintf(STDERR_FILENO, "namespace: %s\n", strerror(errno));
				_exit(126);
			}
			prepare();
		}
		if (xdg)
			setenv("XDG_RUNTIME_DIR", xdg, 1);
		if (uid != 0) {
			if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
				_exit(100);
			prctl(PR_SET_PDEATHSIG, SIGKILL);
		}
		syscall(SYS_close_range, 3u, ~0u, 0u);
		execl(shmqd, shmqd, conf_arg, (char *)NULL);
		_exit(127);
	}
	close(logfd);
	if (xdg)
		snprintf(s->sock, sizeof(s->sock), "%s/shmq/shmqd.sock", xdg);
	else
		snprintf(s->sock, sizeof(s->sock), "/proc/%d/root/run/shmq/shmqd.sock",
			 (int)s->pid);
}

/* Wait until it answers (true) or exits (false, s->status set). */
static bool spawned_ready(struct spawned *s)
{
	uint64_t deadline = t_now_ns() + (uint64_t)T_DAEMON_START_MS * 1000000u;

	while (t_now_ns() < deadline) {
		int st, fd;

		if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
			s->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			return false;
		}
		/*
		 * Until the child has mounted its own /run, /proc/PID/root/run is
		 * the host's, where another daemon (make run's) may listen: only
		 * the daemon this test started counts.
		 */
		fd = t_raw_session(s->sock);
		if (fd >= 0) {
			struct ucred cred;
			socklen_t len = sizeof(cred);
			bool ours = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
				    cred.pid == s->pid;

			close(fd);
			if (ours)
				return true;
		}
		t_sleep_ms(5);
	}
	cr_fail("the daemon neither answered nor exited");
	return false;
}

static int spawned_stop(struct spawned *s)
{
	int st;

	kill(s->pid, SIGTERM);
	st = t_wait_peer_ms(s->pid, T_DAEMON_STOP_MS);
	s->pid = 0;
	return st;
}

static void stat_mode(const char *path, uint32_t *ret_mode, uint32_t *ret_uid, bool *ret_dir)
{
	struct stat st;

	cr_assert(lstat(path, &st) == 0, "lstat %s: %s", path, strerror(errno));
	*ret_mode = st.st_mode & 07777;
	*ret_uid = st.st_uid;
	*ret_dir = (st.st_mode & S_IFMT) == S_IFDIR;
}

static char xdg_dir[96];

static void xdg_fresh(char *base, size_t size)
{
	snprintf(base, size, "/tmp/shmq-hostile-XXXXXX");
	cr_assert(mkdtemp(base) != NULL);
	cr_assert(chmod(base, 0755) == 0);
	snprintf(xdg_dir, sizeof(xdg_dir), "%s/xdg", base);
	cr_assert(mkdir(xdg_dir, 0700) == 0);
	cr_assert(chown(xdg_dir, OWNER_UID, OWNER_GID) == 0);
}

/* The spawned daemon's stderr (in @base) contains @text. */
static bool log_has(const char *base, const char *text)
{
	static char buf[16384];
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/shmqd.stderr", base);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return strstr(buf, text) != NULL;
}

static void rm_tree(const char *base)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	cr_assert(system(cmd) == 0);
}

Test(hostile, the_per_user_socket_directory_is_created_private_and_a_foreign_one_is_refused)
{
	static const struct {
		int kind; /* 0 missing, 1 dir, 2 symlink to a good dir, 3 regular file */
		uid_t owner;
		uint32_t mode;
		bool ok;
		const char *what;
	} cases[] = {
		{0, 0, 0, true, "missing"},
		{1, OWNER_UID, 0700, true, "ours, 0700"},
		{1, 0, 0700, false, "owned by root"},
		{1, OTHER_UID, 0700, false, "owned by another user"},
		{1, OWNER_UID, 0770, false, "group-writable"},
		{1, OWNER_UID, 0750, false, "group-readable"},
		{1, OWNER_UID, 0707, false, "world-writable"},
		{1, OWNER_UID, 01777, false, "sticky, world-writable"},
		{2, OWNER_UID, 0700, false, "a symlink"},
		{3, OWNER_UID, 0600, false, "a regular file"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char base[64], dir[128], other[128];
		struct spawned s;
		uint32_t mode, uid;
		bool is_dir, ready;
		struct stat st;

		xdg_fresh(base, sizeof(base));
		snprintf(dir, sizeof(dir), "%s/shmq", xdg_dir);
		if (cases[i].kind == 1) {
			cr_assert(mkdir(dir, 0700) == 0);
		} else if (cases[i].kind == 2) {
			snprintf(other, sizeof(other), "%s/real", xdg_dir);
			cr_assert(mkdir(other, 0700) == 0);
			cr_assert(chown(other, OWNER_UID, OWNER_GID) == 0);
			cr_assert(symlink(other, dir) == 0);
		} else if (cases[i].kind == 3) {
			close(open(dir, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
		}
		if (cases[i].kind == 1 || cases[i].kind == 3) {
			cr_assert(chown(dir, cases[i].owner, cases[i].owner) == 0);
			cr_assert(chmod(dir, cases[i].mode) == 0);
		}
		spawn_default(&s, OWNER_UID, OWNER_GID, xdg_dir, NULL, base);
		ready = spawned_ready(&s);
		if (!cases[i].ok) {
			cr_assert(ready == false, "%s: the daemon started", cases[i].what);
			cr_assert(eq(int, s.status, 1), "%s: the daemon exited with %d",
				  cases[i].what, s.status);
			cr_assert(lstat(s.sock, &st) < 0, "%s: a socket was created",
				  cases[i].what);
			cr_assert(log_has(base, "is not a directory owned by uid"),
				  "%s: the log does not say why", cases[i].what);
			rm_tree(base);
			continue;
		}
		cr_assert(ready, "%s: the daemon exited with %d", cases[i].what, s.status);
		stat_mode(dir, &mode, &uid, &is_dir);
		cr_assert(is_dir && mode == 0700 && uid == OWNER_UID,
			  "%s: the directory is %04o uid %u", cases[i].what, mode, uid);
		stat_mode(s.sock, &mode, &uid, &is_dir);
		cr_assert(mode == 0666 && uid == OWNER_UID, "%s: the socket is %04o uid %u",
			  cases[i].what, mode, uid);
		cr_assert(eq(int, spawned_stop(&s), 0), "%s: exit status", cases[i].what);
		cr_assert(lstat(s.sock, &st) < 0, "%s: the socket outlived the daemon",
			  cases[i].what);
		rm_tree(base);
	}
}

static uint32_t run_mode;
static uid_t run_owner;

static void prepare_run(void)
{
	if (!run_mode)
		return;
	if (mkdir("/run/shmq", 0700) < 0 || chmod("/run/shmq", run_mode) < 0 ||
	    chown("/run/shmq", run_owner, run_owner) < 0)
		_exit(125);
}

Test(hostile, root_creates_run_shmq_0755_and_refuses_one_others_could_write_or_own)
{
	static const struct {
		uint32_t mode; /* 0: missing */
		uid_t owner;
		bool ok;
		const char *what;
	} cases[] = {
		{0, 0, true, "missing"},
		{0755, 0, true, "root's, 0755"},
		{0700, 0, true, "root's, 0700"},
		{0775, 0, false, "group-writable"},
		{0777, 0, false, "world-writable"},
		{0755, OWNER_UID, false, "owned by another user"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char base[64], dir[96];
		struct spawned s;
		uint32_t mode, uid;
		bool is_dir, ready;

		snprintf(base, sizeof(base), "/tmp/shmq-hostile-XXXXXX");
		cr_assert(mkdtemp(base) != NULL);
		run_mode = cases[i].mode;
		run_owner = cases[i].owner;
		spawn_default(&s, 0, 0, NULL, prepare_run, base);
		ready = spawned_ready(&s);
		cr_assert(s.status != 126 && s.status != 125, "cannot set up a mount namespace");
		if (!cases[i].ok) {
			cr_assert(ready == false, "%s: the daemon started", cases[i].what);
			cr_assert(eq(int, s.status, 1), "%s: the daemon exited with %d",
				  cases[i].what, s.status);
			cr_assert(log_has(base, "owned by uid 0 and writable only by it"),
				  "%s: the log does not say why", cases[i].what);
			rm_tree(base);
			continue;
		}
		cr_assert(ready, "%s: the daemon exited with %d", cases[i].what, s.status);
		snprintf(dir, sizeof(dir), "/proc/%d/root/run/shmq", (int)s.pid);
		stat_mode(dir, &mode, &uid, &is_dir);
		cr_assert(is_dir && mode == (cases[i].mode ? cases[i].mode : 0755) && uid == 0,
			  "%s: /run/shmq is %04o uid %u", cases[i].what, mode, uid);
		stat_mode(s.sock, &mode, &uid, &is_dir);
		cr_assert(mode == 0666 && uid == 0, "%s: the socket is %04o uid %u", cases[i].what,
			  mode, uid);
		cr_assert(eq(int, spawned_stop(&s), 0), "%s: exit status", cases[i].what);
		rm_tree(base);
	}
}

/* --- Logging under journald --- */

static char journal_dir[96];

/*
 * In the daemon's own /run: /run/systemd/journal is the test's directory,
 * where the test's datagram socket plays journald, and stderr is the
 * "journal stream" ($JOURNAL_STREAM names it), as under systemd.
 */
static void prepare_journal(void)
{
	char env[64];
	struct stat st;

	if (mkdir("/run/systemd", 0755) < 0 || mkdir("/run/systemd/journal", 0755) < 0 ||
	    mount(journal_dir, "/run/systemd/journal", NULL, MS_BIND, NULL) < 0 ||
	    fstat(STDERR_FILENO, &st) < 0)
		_exit(125);
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", env, 1);
}

/* Child: hold a message in place (a peek), then wait to be killed. */
static int peek_and_hang(void *arg)
{
	struct shmq_client *c;
	struct shmq_queue *q;
	const void *msg;

	if (shmq_client_connect(arg, &c) || shmq_queue_open(c, "jq", SHMQ_RECV, NULL, &q) ||
	    shmq_queue_peek(q, t_deadline_ms(5000), &msg) < 0)
		return 1;
	for (;;)
		pause();
}

/* The entry of @dgram (journald's native protocol, KEY=VALUE lines) that has @key, or NULL. */
static const char *field_of(const char *dgram, const char *key, char *val, size_t size)
{
	size_t k = strlen(key);

	for (const char *p = dgram; *p;) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n > k && !strncmp(p, key, k) && p[k] == '=') {
			snprintf(val, size, "%.*s", (int)(n - k - 1), p + k + 1);
			return val;
		}
		p += n + (e ? 1 : 0);
	}
	return NULL;
}

Test(hostile, under_journald_lines_carry_their_session_object_and_event_ids)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	static char dgrams[64][4096];
	char base[64], val[128], me[16];
	struct shmq_client *c;
	struct shmq_queue *q;
	struct spawned s;
	int js, n = 0;
	bool created = false, repaired = false, ended = false;
	pid_t victim;

	snprintf(base, sizeof(base), "/tmp/shmq-hostile-XXXXXX");
	cr_assert(mkdtemp(base) != NULL);
	snprintf(journal_dir, sizeof(journal_dir), "%s/journal", base);
	cr_assert(mkdir(journal_dir, 0755) == 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/socket", journal_dir);
	js = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	cr_assert(js >= 0 && bind(js, (struct sockaddr *)&sa, sizeof(sa)) == 0, "%s",
		  strerror(errno));
	spawn_default(&s, 0, 0, NULL, prepare_journal, base);
	cr_assert(spawned_ready(&s), "the daemon exited with %d", s.status);

	T_OK(shmq_client_connect(s.sock, &c));
	T_OK(shmq_queue_open(c, "jq", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, NULL, &q));
	T_OK(shmq_queue_send(q, "held", 4));
	victim = t_fork_child(peek_and_hang, s.sock);
	t_sleep_ms(200); /* it holds the message by now */
	kill(victim, SIGKILL);
	t_wait_peer_ms(victim, 5000);

	snprintf(me, sizeof(me), "%d", (int)getpid());
	for (uint64_t end = t_now_ns() + 10 * 1000000000ull;
	     t_now_ns() < end && n < 64 && !(created && repaired && ended);) {
		ssize_t len = recv(js, dgrams[n], sizeof(dgrams[n]) - 1, 0);
		const char *dg;

		if (len < 0) {
			t_sleep_ms(10);
			continue;
		}
		dgrams[n][len] = '\0';
		dg = dgrams[n++];
		cr_assert(field_of(dg, "SYSLOG_IDENTIFIER", val, sizeof(val)) &&
				  !strcmp(val, "shmqd"),
			  "%s", dg);
		cr_assert(field_of(dg, "PRIORITY", val, sizeof(val)) && val[0] >= '0' &&
				  val[0] <= '7',
			  "%s", dg);
		cr_assert(field_of(dg, "MESSAGE", val, sizeof(val)) != NULL, "%s", dg);
		if (strstr(val, "queue 'jq' created")) {
			created = true;
			cr_assert(field_of(dg, "SHMQ_OBJECT", val, sizeof(val)) &&
					  !strcmp(val, "jq"),
				  "%s", dg);
			cr_assert(field_of(dg, "CLIENT_PID", val, sizeof(val)) && !strcmp(val, me),
				  "%s", dg);
			cr_assert(field_of(dg, "SHMQ_SESSION", val, sizeof(val)) != NULL, "%s", dg);
			cr_assert(field_of(dg, "CLIENT_UID", val, sizeof(val)) && !strcmp(val, "0"),
				  "%s", dg);
		}
		if (field_of(dg, "MESSAGE_ID", val, sizeof(val)) &&
		    !strcmp(val, "4458346bd3874280aeca526903ab8bf0")) {
			repaired = true;
			cr_assert(field_of(dg, "SHMQ_OBJECT", val, sizeof(val)) &&
					  !strcmp(val, "jq"),
				  "a repair names its object: %s", dg);
			snprintf(me, sizeof(me), "%d", (int)victim);
			cr_assert(field_of(dg, "CLIENT_PID", val, sizeof(val)) && !strcmp(val, me),
				  "a repair names the dead: %s", dg);
			snprintf(me, sizeof(me), "%d", (int)getpid());
		}
		if (field_of(dg, "MESSAGE_ID", val, sizeof(val)) &&
		    !strcmp(val, "88ee77124e304a73962f671bc7189f60"))
			ended = true;
	}
	cr_assert(created && repaired && ended,
		  "created %d, repaired %d, session end %d, in %d datagrams", created, repaired,
		  ended, n);
	cr_assert(eq(int, log_has(base, "created"), 0), "a line went to stderr too");
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	cr_assert(eq(int, spawned_stop(&s), 0));
	close(js);
	rm_tree(base);
}

/* --- One uid cannot take every connection --- */

struct hog {
	const char *sock;
	int hello[6];
	volatile int holding;
	volatile int release;
};

static int hog_connections(void *arg)
{
	struct hog *h = arg;
	int fds[6];

	for (int i = 0; i < 6; i++) {
		fds[i] = t_raw_connect(h->sock);
		h->hello[i] = fds[i] < 0 ? fds[i] : t_raw_hello(fds[i]);
	}
	h->holding = 1;
	for (int i = 0; i < 2000 && !h->release; i++)
		t_sleep_ms(5);
	for (int i = 0; i < 6; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return 0;
}

static int connect_once(void *arg)
{
	struct hog *h = arg;
	int fd = t_raw_session(h->sock);

	h->hello[0] = fd < 0 ? fd : 0;
	if (fd >= 0)
		close(fd);
	return 0;
}

Test(hostile, one_uid_holding_connections_cannot_lock_other_users_out)
{
	static const char *const args[] = {"--max-clients=8", "--max-clients-per-uid=4", NULL};
	struct hog *h = t_shared_alloc(sizeof(*h)), *g = t_shared_alloc(sizeof(*g));
	struct shmq_rep_status st;
	pid_t pid;
	int fd;

	t_daemon_start(&d, args, NULL);
	h->sock = g->sock = d.sock;
	pid = t_fork_as(OTHER_UID, OTHER_GID, hog_connections, h);
	while (!h->holding)
		t_sleep_ms(5);
	for (int i = 0; i < 4; i++)
		T_OK(h->hello[i]);
	/* Past its own share, the uid is refused like any client past max-clients. */
	for (int i = 4; i < 6; i++)
		T_ERR(h->hello[i], -ENOSPC);
	/* Everybody else still gets in: another user, and root. */
	run_child(t_fork_as(GROUP_UID, OWNER_GID, connect_once, g), "another user");
	T_OK(g->hello[0]);
	fd = session();
	T_OK(call_status(fd, &st));
	cr_assert(eq(u32, st.n_sessions, 5), "%u sessions", st.n_sessions);
	h->release = 1;
	run_child(pid, "the hog");
	close(fd);
	t_daemon_fini(&d);
}

/* --- A client out of descriptors --- */

struct emfile {
	const char *sock;
	int first, view_full, sem_full, view_after, own, mine;
};

static int open_at_emfile(void *arg)
{
	struct emfile *e = arg;
	struct shmq_queue_attr a = {
		.size = sizeof(a), .n_slots = 8, .slot_size = 64, .numa_node = -1, .perm = 0600};
	struct shmq_sem_attr sa = {.size = sizeof(sa)};
	struct rlimit rl = {.rlim_cur = 64, .rlim_max = 64};
	static int spare[64];
	struct shmq_queue *q1, *q2 = NULL;
	struct shmq_sem *s1, *s2 = NULL;
	struct shmq_client *c;
	uint64_t ids[8];
	uint32_t n;
	int fd, k = 0;

	e->first = shmq_client_connect(e->sock, &c);
	if (e->first == 0)
		e->first = shmq_queue_open(c, "full", SHMQ_CREATE | SHMQ_SEND, &a, &q1);
	if (e->first == 0)
		e->first = shmq_sem_open(c, "fullsem", SHMQ_CREATE, &sa, &s1);
	if (e->first || setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1;
	/* Fill the descriptor table: the granted descriptor cannot be received. */
	while (k < 64 && (spare[k] = dup(0)) >= 0)
		k++;
	e->view_full = shmq_queue_open(c, "full", SHMQ_VIEW, NULL, &q2);
	e->sem_full = shmq_sem_open(c, "fullsem", 0, NULL, &s2);
	while (k > 0)
		close(spare[--k]);
	e->view_after = shmq_queue_open(c, "full", SHMQ_VIEW, NULL, &q2);
	/* The refused grants were given back: the session holds what it opened, no more. */
	fd = t_raw_session(e->sock);
	e->own = -1;
	if (fd >= 0 && call_attachments(fd, "full", ids, 8, &n) == 0)
		e->own = (int)n;
	if (fd >= 0 && call_attachments(fd, "fullsem", ids, 8, &n) == 0)
		e->mine = (int)n;
	if (fd >= 0)
		close(fd);
	if (e->view_after == 0)
		shmq_queue_close(q2);
	shmq_queue_close(q1);
	shmq_sem_close(s1);
	shmq_client_close(c);
	return 0;
}

Test(hostile, a_client_out_of_descriptors_gets_emfile_and_leaves_no_attachment_behind)
{
	struct emfile *e = t_shared_alloc(sizeof(*e));

	t_daemon_start(&d, NULL, NULL);
	e->sock = d.sock;
	run_child(t_fork_child(open_at_emfile, e), "the client");
	T_ERR(e->view_full, -EMFILE);
	T_ERR(e->sem_full, -EMFILE);
	T_OK(e->view_after);
	cr_assert(eq(int, e->own, 2), "the queue has %d attachments, want the sender and the view",
		  e->own);
	cr_assert(eq(int, e->mine, 1), "the semaphore has %d attachments, want 1", e->mine);
	assert_serving("descriptor exhaustion");
	t_daemon_fini(&d);
}

/* --- The socket appears only once it listens --- */

Test(hostile, a_client_that_sees_the_socket_file_can_connect_at_once)
{
	int refused = 0, starts = 40;

	t_daemon_start(&d, NULL, NULL);
	T_OK(t_daemon_stop(&d));
	for (int i = 0; i < starts; i++) {
		struct stat st;
		int fd;

		/* Poll the way scripts do (`test -S`), but without sleeping between looks. */
		t_daemon_spawn(&d);
		while (lstat(d.sock, &st) < 0)
			cr_assert(kill(d.pid, 0) == 0, "the daemon died while starting");
		fd = t_raw_connect(d.sock);
		if (fd == -ECONNREFUSED)
			refused++;
		else
			cr_assert(fd >= 0, "connect right after the file appeared: %s",
				  strerror(-fd));
		if (fd >= 0)
			close(fd);
		cr_assert(t_daemon_wait_ready(&d, T_DAEMON_START_MS));
		T_OK(t_daemon_stop(&d));
	}
	cr_assert(eq(int, refused, 0), "%d of %d starts refused a connection on an existing socket",
		  refused, starts);
	t_daemon_restart(&d);
	t_daemon_fini(&d);
}
