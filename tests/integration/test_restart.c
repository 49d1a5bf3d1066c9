/* SPDX-License-Identifier: MIT */
/*
 * Integration: the daemon killed with SIGKILL (or stopped) and started
 * again re-adopts every object with its messages, and every client still
 * alive gets its handles back on its next control call.
 *
 * Both ways that run here:
 *   - standalone, state-directory on a tmpfs (/dev/shm);
 *   - under systemd's fd store, with this test playing systemd: it reads
 *     FDSTORE=1/FDSTOREREMOVE=1 notifications with their descriptors from
 *     its $NOTIFY_SOCKET, and on restart passes the stored descriptors back
 *     as $LISTEN_FDS with $LISTEN_FDNAMES, as sd_listen_fds_with_names(3)
 *     documents.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "daemon/store.h"
#include "shm/atomic.h"
#include "tests/helpers.h"
#include "tests/integration/daemon.h"
#include "tests/integration/raw.h"

#define RECV_MS	 5000
#define CHILD_MS 10000
#define N_MSGS	 64

static struct t_daemon d;
static char state_dir[64];
static char state_arg[96];

static void rm_state(void)
{
	char cmd[128];

	if (!state_dir[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", state_dir);
	state_dir[0] = '\0';
}

static void fini(void)
{
	t_daemon_cleanup_all();
	rm_state();
}

/* A state directory on a tmpfs: mkdtemp() makes it 0700, as the daemon demands. */
static void setup(void)
{
	static const char *args[] = {state_arg, NULL};

	snprintf(state_dir, sizeof(state_dir), "/dev/shm/shmq-state-XXXXXX");
	cr_assert(mkdtemp(state_dir) != NULL, "mkdtemp: %s", strerror(errno));
	snprintf(state_arg, sizeof(state_arg), "--state-directory=%s", state_dir);
	t_daemon_start(&d, args, NULL);
}

TestSuite(restart, .init = setup, .fini = fini, .timeout = 90);

static struct shmq_queue_attr qattr(uint32_t n_slots)
{
	return (struct shmq_queue_attr){
		.size = sizeof(struct shmq_queue_attr),
		.n_slots = n_slots,
		.slot_size = 64,
		.mode = SHMQ_MPMC,
		.numa_node = -1,
		.perm = 0600,
	};
}

static void send_seq(struct shmq_queue *q, uint32_t from, uint32_t to)
{
	for (uint32_t i = from; i < to; i++)
		T_OK(shmq_queue_send(q, &i, sizeof(i)));
}

static void recv_seq(struct shmq_queue *q, uint32_t from, uint32_t to)
{
	for (uint32_t i = from; i < to; i++) {
		uint32_t v = UINT32_MAX;
		int n = shmq_queue_recv_wait(q, &v, sizeof(v), t_deadline_ms(RECV_MS));

		cr_assert(eq(int, n, (int)sizeof(v)), "message %u: %d (%s)", i, n, strerror(-n));
		cr_assert(eq(u32, v, i), "message %u arrived as %u", i, v);
	}
}

struct attach_count {
	unsigned int n;
	unsigned int mine;
};

static int count_attach(void *arg, const struct shmq_attach_info *info)
{
	struct attach_count *a = arg;

	a->n++;
	if (info->pid == getpid())
		a->mine++;
	return 0;
}

static void log_has(const struct t_daemon *dm, const char *what)
{
	static char buf[65536];

	t_daemon_read_log(dm, buf, sizeof(buf));
	cr_assert(strstr(buf, what) != NULL, "the daemon's log lacks '%s':\n%s", what, buf);
}

/* --- State directory --- */

Test(restart, sigkill_and_restart_keeps_every_message_and_every_live_handle)
{
	struct shmq_sem_attr sa = {.size = sizeof(sa), .initial = 3, .flags = SHMQ_SEM_ATTR_UNDO};
	struct shmq_queue_attr a = qattr(256);
	struct shmq_object_info info = {.size = sizeof(info)};
	struct attach_count ac = {0};
	struct shmq_client *c = t_connect(&d), *c2;
	struct shmq_queue *q, *q2;
	struct shmq_sem *s;

	T_OK(shmq_queue_open(c, "q", SHMQ_CREATE | SHMQ_SEND | SHMQ_RECV, &a, &q));
	T_OK(shmq_sem_open(c, "s", SHMQ_CREATE, &sa, &s));
	T_OK(shmq_sem_wait(s, t_deadline_ms(RECV_MS)));
	send_seq(q, 0, N_MSGS);

	t_daemon_kill(&d);
	/* The data path never needed the daemon. */
	send_seq(q, N_MSGS, 2 * N_MSGS);
	T_OK(shmq_sem_post(s, 1));
	T_OK(shmq_sem_wait(s, t_deadline_ms(RECV_MS)));
	t_daemon_restart(&d);

	/* The next control call reconnects and takes both handles back. */
	T_OK(shmq_object_stat(c, "q", &info));
	cr_assert(eq(u32, info.n_attached, 1));
	cr_assert(eq(int, shmq_object_attachments(c, "q", count_attach, &ac), 1));
	cr_assert(eq(u32, ac.n, 1));
	cr_assert(eq(u32, ac.mine, 1), "the attachment is not this process's");
	log_has(&d, "re-adopted 2 objects and 2 attachments of 1 client sessions");

	/* Everything sent before, during and after the outage arrives once, in order. */
	send_seq(q, 2 * N_MSGS, 3 * N_MSGS);
	recv_seq(q, 0, 3 * N_MSGS);
	cr_assert(eq(int, shmq_queue_recv(q, &info, sizeof(info)), -EAGAIN));
	cr_assert(eq(int, shmq_sem_value(s), 2), "the semaphore's value changed in the restart");

	/* Another client sees the same objects, and closing works on both sides. */
	c2 = t_connect(&d);
	T_OK(shmq_queue_open(c2, "q", SHMQ_RECV, NULL, &q2));
	T_OK(shmq_queue_send(q, "x", 1));
	cr_assert(
		eq(int, shmq_queue_recv_wait(q2, &info, sizeof(info), t_deadline_ms(RECV_MS)), 1));
	T_OK(shmq_sem_post(s, 1));
	T_OK(shmq_sem_close(s));
	T_OK(shmq_queue_close(q));
	ac = (struct attach_count){0};
	cr_assert(eq(int, shmq_object_attachments(c2, "q", count_attach, &ac), 1),
		  "the closed handle is still attached");
	T_OK(shmq_queue_close(q2));
	T_OK(shmq_client_close(c2));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

struct holder {
	const char *sock;
	int ready; /* pipe write end */
};

/* Half-write a slot, take a token of an undo semaphore, say so, and wait to die. */
static int hold_and_wait(void *arg)
{
	struct holder *h = arg;
	struct shmq_client *c;
	struct shmq_queue *q;
	struct shmq_sem *s;
	void *buf;

	if (shmq_client_connect(h->sock, &c) < 0 ||
	    shmq_queue_open(c, "held", SHMQ_SEND, NULL, &q) < 0 ||
	    shmq_sem_open(c, "undo", 0, NULL, &s) < 0)
		return 1;
	if (shmq_queue_reserve(q, 0, &buf) < 0 || shmq_sem_wait(s, SHMQ_FOREVER) < 0)
		return 2;
	if (write(h->ready, "r", 1) != 1)
		return 3;
	for (;;)
		pause();
}

Test(restart, a_client_that_died_while_the_daemon_was_down_is_repaired_at_start)
{
	struct shmq_sem_attr sa = {.size = sizeof(sa), .initial = 1, .flags = SHMQ_SEM_ATTR_UNDO};
	struct shmq_queue_stats st = {.size = sizeof(st)};
	struct shmq_queue_attr a = qattr(4);
	struct shmq_client *c = t_connect(&d);
	struct holder h = {.sock = d.sock};
	struct shmq_queue *q;
	struct shmq_sem *s;
	int pipefd[2], status;
	pid_t child;
	char r;

	T_OK(shmq_queue_open(c, "held", SHMQ_CREATE | SHMQ_RECV, &a, &q));
	T_OK(shmq_sem_open(c, "undo", SHMQ_CREATE, &sa, &s));
	cr_assert(pipe2(pipefd, O_CLOEXEC) == 0);
	h.ready = pipefd[1];
	child = t_fork_child(hold_and_wait, &h);
	close(pipefd[1]);
	cr_assert(eq(int, (int)read(pipefd[0], &r, 1), 1), "the holder did not get ready");
	close(pipefd[0]);
	cr_assert(eq(int, shmq_sem_value(s), 0));

	/* The daemon dies first; the client dies while no daemon watches. */
	t_daemon_kill(&d);
	kill(child, SIGKILL);
	status = t_wait_peer_ms(child, CHILD_MS);
	cr_assert(eq(int, status, 128 + SIGKILL), "holder status %d", status);
	t_daemon_restart(&d);

	/* Repaired at start, before any client call: the token is back, the slot skipped. */
	log_has(&d, "exited while the daemon was down");
	cr_assert(eq(int, shmq_sem_value(s), 1), "the undo hold was not posted back");
	{
		struct shmq_client *p = t_connect(&d);
		struct shmq_queue *qs;

		T_OK(shmq_queue_open(p, "held", SHMQ_SEND, NULL, &qs));
		/* The tombstone takes a slot until a receiver skips it. */
		send_seq(qs, 0, 3);
		recv_seq(q, 0, 3);
		send_seq(qs, 0, 4);
		recv_seq(q, 0, 4);
		T_OK(shmq_queue_close(qs));
		T_OK(shmq_client_close(p));
	}
	T_OK(shmq_queue_stats(q, &st));
	cr_assert(ge(u32, st.repairs, 1), "repairs %u", st.repairs);
	{
		/* The semaphore counts its repair too (layout 1.1), as shmqctl shows it. */
		struct shmq_view *v;
		const void *base;
		size_t size;
		const struct shmq_sem_shm *sm;

		T_OK(shmq_view_open(c, "undo", &v));
		T_OK(shmq_view_memory(v, &base, &size));
		sm = (const struct shmq_sem_shm *)((const char *)base +
						   ((const struct shmq_segment_hdr *)base)
							   ->object_off);
		cr_assert(eq(u32, load_relaxed(&sm->repairs), 1));
		T_OK(shmq_view_close(v));
	}
	T_OK(shmq_sem_close(s));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(restart, a_clean_stop_keeps_objects_for_the_next_start)
{
	struct shmq_queue_attr a = qattr(128);
	char orphan[96];
	int fd;
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q;

	T_OK(shmq_queue_open(c, "kept", SHMQ_CREATE | SHMQ_SEND, &a, &q));
	send_seq(q, 0, N_MSGS);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	cr_assert(eq(int, t_daemon_stop(&d), 0));
	/* A segment no record names (a create cut short) is removed at start. */
	snprintf(orphan, sizeof(orphan), "%s/obj-99999", state_dir);
	fd = open(orphan, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert(fd >= 0, "%s: %s", orphan, strerror(errno));
	close(fd);
	t_daemon_restart(&d);
	cr_assert(access(orphan, F_OK) != 0, "the orphan segment %s is still there", orphan);
	c = t_connect(&d);
	T_OK(shmq_queue_open(c, "kept", SHMQ_RECV, NULL, &q));
	recv_seq(q, 0, N_MSGS);
	T_OK(shmq_unlink(c, "kept"));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	/* Unlinked and closed: gone from the state directory too. */
	cr_assert(eq(int, t_daemon_stop(&d), 0));
	t_daemon_restart(&d);
	c = t_connect(&d);
	T_ERR(shmq_queue_open(c, "kept", SHMQ_RECV, NULL, &q), -ENOENT);
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(restart, an_unlinked_object_survives_while_attached_and_goes_with_its_last_handle)
{
	struct shmq_queue_attr a = qattr(16);
	struct shmq_client *c = t_connect(&d);
	struct shmq_daemon_status ds = {.size = sizeof(ds)};
	struct shmq_queue *q;

	T_OK(shmq_queue_open(c, "gone", SHMQ_CREATE | SHMQ_SEND | SHMQ_RECV, &a, &q));
	T_OK(shmq_unlink(c, "gone"));
	send_seq(q, 0, 8);
	t_daemon_kill(&d);
	t_daemon_restart(&d);
	T_OK(shmq_daemon_status(c, &ds));
	cr_assert(eq(u32, ds.n_objects, 1), "the unlinked, attached queue was not re-adopted");
	recv_seq(q, 0, 8);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_daemon_status(c, &ds));
	cr_assert(eq(u32, ds.n_objects, 0));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(restart, a_handle_the_new_daemon_does_not_know_keeps_working_as_memory)
{
	struct shmq_queue_attr a = qattr(16);
	struct shmq_client *c = t_connect(&d);
	struct shmq_daemon_status ds = {.size = sizeof(ds)};
	struct shmq_queue *q;
	char cmd[160];

	T_OK(shmq_queue_open(c, "lost", SHMQ_CREATE | SHMQ_SEND | SHMQ_RECV, &a, &q));
	t_daemon_kill(&d);
	/* The state is wiped while the daemon is down: it starts empty. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'/*", state_dir);
	cr_assert(eq(int, system(cmd), 0));
	t_daemon_restart(&d);
	T_OK(shmq_daemon_status(c, &ds));
	cr_assert(eq(u32, ds.n_objects, 0));
	send_seq(q, 0, 4);
	recv_seq(q, 0, 4);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* Only the process that held an attachment can take it back. */
static int forge_reattach(void *arg)
{
	const struct shmq_req_reattach *rq = arg;
	struct t_reply *rep = malloc(sizeof(*rep));
	int fd = t_raw_session(d.sock), r;

	if (fd < 0 || !rep)
		return 1;
	r = t_raw_call(fd, SHMQ_OP_REATTACH, rq, sizeof(*rq), rep);
	free(rep);
	close(fd);
	return r == -ENOENT ? 0 : 2;
}

struct first_attach {
	uint64_t attach_id;
	uint32_t record;
};

static int take_first(void *arg, const struct shmq_attach_info *info)
{
	struct first_attach *f = arg;

	f->attach_id = info->attach_id;
	f->record = info->record;
	return 0;
}

Test(restart, another_process_cannot_take_over_an_adopted_attachment)
{
	struct shmq_queue_attr a = qattr(16);
	struct shmq_object_info info = {.size = sizeof(info)};
	struct shmq_client *c = t_connect(&d);
	struct shmq_req_reattach rq = {0};
	struct first_attach f = {0};
	struct attach_count ac = {0};
	struct shmq_queue *q;
	int status;

	T_OK(shmq_queue_open(c, "mine", SHMQ_CREATE | SHMQ_SEND, &a, &q));
	T_OK(shmq_object_stat(c, "mine", &info));
	cr_assert(eq(int, shmq_object_attachments(c, "mine", take_first, &f), 1));
	t_daemon_kill(&d);
	t_daemon_restart(&d);

	rq.attach_id = f.attach_id;
	rq.object_id = info.object_id;
	rq.session_index = f.record;
	rq.flags = SHMQ_OPEN_SEND;
	status = t_wait_peer_ms(t_fork_child(forge_reattach, &rq), CHILD_MS);
	cr_assert(eq(int, status, 0), "a forged REATTACH was not refused (%d)", status);

	cr_assert(eq(int, shmq_object_attachments(c, "mine", count_attach, &ac), 1));
	cr_assert(eq(u32, ac.mine, 1), "the owner lost its attachment");
	T_OK(shmq_queue_send(q, "y", 1));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(restart, a_corrupt_registry_stops_the_daemon_with_a_clear_error)
{
	char path[128], buf[8192];
	int fd, status;

	cr_assert(eq(int, t_daemon_stop(&d), 0));
	snprintf(path, sizeof(path), "%s/registry", state_dir);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
	cr_assert(eq(int, (int)pwrite(fd, "garbage!", 8, 0), 8));
	close(fd);
	t_daemon_spawn(&d);
	status = t_daemon_wait_exit(&d, 10000);
	cr_assert(eq(int, status, 1), "shmqd status %d", status);
	t_daemon_read_log(&d, buf, sizeof(buf));
	cr_assert(strstr(buf, "registry's header is corrupt") != NULL, "%s", buf);
	rm_state();
}

Test(restart, a_corrupt_record_drops_that_object_and_keeps_the_others)
{
	struct shmq_queue_attr a = qattr(16);
	struct shmq_client *c = t_connect(&d);
	struct shmqd_reg_record rec;
	struct shmq_queue *q;
	char path[128];
	int fd;

	T_OK(shmq_queue_open(c, "first", SHMQ_CREATE | SHMQ_SEND, &a, &q));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_queue_open(c, "second", SHMQ_CREATE | SHMQ_SEND, &a, &q));
	send_seq(q, 0, 4);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	cr_assert(eq(int, t_daemon_stop(&d), 0));

	/* The first record is the first object's: give it a kind that does not exist. */
	snprintf(path, sizeof(path), "%s/registry", state_dir);
	fd = open(path, O_RDWR | O_CLOEXEC);
	cr_assert(fd >= 0);
	cr_assert(eq(int, (int)pread(fd, &rec, sizeof(rec), SHMQD_REG_RECORD_SIZE),
		     (int)sizeof(rec)));
	cr_assert(eq(u32, rec.type, SHMQD_REG_OBJECT));
	cr_assert(strcmp(rec.u.obj.name, "first") == 0, "record 0 is %s", rec.u.obj.name);
	rec.u.obj.kind = 99;
	cr_assert(eq(int, (int)pwrite(fd, &rec, sizeof(rec), SHMQD_REG_RECORD_SIZE),
		     (int)sizeof(rec)));
	close(fd);

	t_daemon_restart(&d);
	log_has(&d, "an object record is corrupt; dropped");
	c = t_connect(&d);
	T_ERR(shmq_queue_open(c, "first", SHMQ_RECV, NULL, &q), -ENOENT);
	T_OK(shmq_queue_open(c, "second", SHMQ_RECV, NULL, &q));
	recv_seq(q, 0, 4);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(restart, a_state_directory_others_can_enter_is_refused)
{
	int status;

	cr_assert(eq(int, t_daemon_stop(&d), 0));
	cr_assert(eq(int, chmod(state_dir, 0755), 0));
	t_daemon_spawn(&d);
	status = t_daemon_wait_exit(&d, 10000);
	cr_assert(eq(int, status, 1), "shmqd status %d", status);
	{
		char want[64];

		snprintf(want, sizeof(want), "must be owned by uid %u with mode 0700",
			 (unsigned)geteuid());
		log_has(&d, want);
	}
	rm_state();
}

/*
 * Traffic through repeated daemon deaths: two producer processes and two
 * consumer processes exchange sequenced messages without pause, and every
 * few hundred messages each makes a control call (which reconnects and
 * takes its handles back after a restart).  The daemon is killed and
 * started again RESTARTS times meanwhile.  Every message arrives exactly
 * once, and each producer's messages in order.
 */
#define RESTARTS      5
#define PER_PRODUCER  (1u << 20) /* at most: producers send until told to stop */
#define N_PRODUCERS   2
#define N_CONSUMERS   2
#define CONTROL_EVERY 500

struct traffic {
	uint32_t seen[N_PRODUCERS][PER_PRODUCER]; /* deliveries per message */
	uint32_t last[N_CONSUMERS][N_PRODUCERS];  /* order check per consumer */
	int failed;				  /* first error, as a line number */
	int err;
	uint32_t stop;		    /* set by the test after the last restart */
	uint32_t sent[N_PRODUCERS]; /* final counts */
	uint32_t producers_done;
	uint32_t received;
	uint32_t control_calls;
	int id;
};

static struct traffic *tr;

static int traffic_fail(int line, int err)
{
	if (!__atomic_load_n(&tr->failed, __ATOMIC_RELAXED)) {
		tr->err = err;
		__atomic_store_n(&tr->failed, line, __ATOMIC_RELEASE);
	}
	return 1;
}

/* A control call that must succeed: the daemon may be down for a while. */
static int control_call(struct shmq_client *c)
{
	struct shmq_object_info info = {.size = sizeof(info)};

	for (int tries = 0; tries < 40; tries++) {
		int r = shmq_object_stat(c, "traffic", &info);

		if (r == 0) {
			__atomic_fetch_add(&tr->control_calls, 1, __ATOMIC_RELAXED);
			return 0;
		}
		if (r != -ECONNRESET && r != -ETIMEDOUT)
			return r;
		t_sleep_ms(50);
	}
	return -ETIMEDOUT;
}

static int producer(void *arg)
{
	uint32_t id = (uint32_t)(uintptr_t)arg;
	struct shmq_client *c;
	struct shmq_queue *q;
	int r;

	if (shmq_client_connect(d.sock, &c) < 0 ||
	    shmq_queue_open(c, "traffic", SHMQ_SEND, NULL, &q) < 0)
		return traffic_fail(__LINE__, 0);
	for (uint32_t i = 0; i < PER_PRODUCER; i++) {
		uint32_t msg[2] = {id, i};

		if (__atomic_load_n(&tr->stop, __ATOMIC_ACQUIRE)) {
			tr->sent[id] = i;
			break;
		}
		r = shmq_queue_send_wait(q, msg, sizeof(msg), t_deadline_ms(20000));
		if (r < 0)
			return traffic_fail(__LINE__, r);
		if (i % CONTROL_EVERY == 0 && (r = control_call(c)) < 0)
			return traffic_fail(__LINE__, r);
		/* Paced, so the exchange spans every restart. */
		if (i % 64 == 63)
			t_sleep_ms(1);
		if (i == PER_PRODUCER - 1)
			tr->sent[id] = PER_PRODUCER;
	}
	__atomic_fetch_add(&tr->producers_done, 1, __ATOMIC_RELEASE);
	if ((r = shmq_queue_close(q)) < 0 || (r = shmq_client_close(c)) < 0)
		return traffic_fail(__LINE__, r);
	return 0;
}

static uint32_t total_sent(void)
{
	uint32_t n = 0;

	for (int p = 0; p < N_PRODUCERS; p++)
		n += tr->sent[p];
	return n;
}

static int consumer(void *arg)
{
	uint32_t me = (uint32_t)(uintptr_t)arg, n = 0;
	struct shmq_client *c;
	struct shmq_queue *q;
	int r;

	if (shmq_client_connect(d.sock, &c) < 0 ||
	    shmq_queue_open(c, "traffic", SHMQ_RECV, NULL, &q) < 0)
		return traffic_fail(__LINE__, 0);
	for (;;) {
		uint32_t msg[2];

		if (__atomic_load_n(&tr->producers_done, __ATOMIC_ACQUIRE) == N_PRODUCERS &&
		    __atomic_load_n(&tr->received, __ATOMIC_ACQUIRE) >= total_sent())
			break;
		r = shmq_queue_recv_wait(q, msg, sizeof(msg), t_deadline_ms(100));
		if (r == -ETIMEDOUT)
			continue;
		if (r != (int)sizeof(msg) || msg[0] >= N_PRODUCERS || msg[1] >= PER_PRODUCER)
			return traffic_fail(__LINE__, r);
		/* One producer's messages reach one consumer in the order sent. */
		if (tr->last[me][msg[0]] && msg[1] < tr->last[me][msg[0]])
			return traffic_fail(__LINE__, (int)msg[1]);
		tr->last[me][msg[0]] = msg[1];
		__atomic_fetch_add(&tr->seen[msg[0]][msg[1]], 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&tr->received, 1, __ATOMIC_RELEASE);
		if (++n % CONTROL_EVERY == 0 && (r = control_call(c)) < 0)
			return traffic_fail(__LINE__, r);
	}
	if ((r = shmq_queue_close(q)) < 0 || (r = shmq_client_close(c)) < 0)
		return traffic_fail(__LINE__, r);
	return 0;
}

Test(restart, traffic_flows_through_repeated_daemon_kills_and_nothing_is_lost)
{
	struct shmq_queue_attr a = qattr(256);
	pid_t kids[N_PRODUCERS + N_CONSUMERS];
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q;
	uint32_t lost = 0, dup = 0;

	tr = t_shared_alloc(sizeof(*tr));
	T_OK(shmq_queue_open(c, "traffic", SHMQ_CREATE | SHMQ_SEND, &a, &q));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	for (int i = 0; i < N_CONSUMERS; i++)
		kids[i] = t_fork_child(consumer, (void *)(uintptr_t)i);
	for (int i = 0; i < N_PRODUCERS; i++)
		kids[N_CONSUMERS + i] = t_fork_child(producer, (void *)(uintptr_t)i);

	for (int k = 0; k < RESTARTS; k++) {
		t_sleep_ms(200);
		t_daemon_kill(&d);
		t_sleep_ms(50);
		t_daemon_restart(&d);
	}
	t_sleep_ms(200);
	__atomic_store_n(&tr->stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < N_PRODUCERS + N_CONSUMERS; i++) {
		int st = t_wait_peer_ms(kids[i], 60000);

		cr_assert(eq(int, st, 0), "child %d: status %d, failed at line %d (%d)", i, st,
			  tr->failed, tr->err);
	}
	for (int p = 0; p < N_PRODUCERS; p++) {
		cr_assert(tr->sent[p] > 0 && tr->sent[p] < PER_PRODUCER,
			  "producer %d sent %u: the traffic did not span the restarts", p,
			  tr->sent[p]);
		for (uint32_t i = 0; i < PER_PRODUCER; i++) {
			lost += i < tr->sent[p] && tr->seen[p][i] == 0;
			dup += tr->seen[p][i] > 1 || (i >= tr->sent[p] && tr->seen[p][i]);
		}
	}
	cr_assert(eq(u32, lost, 0), "%u messages lost", lost);
	cr_assert(eq(u32, dup, 0), "%u messages delivered twice", dup);
	cr_assert(ge(u32, tr->control_calls, 2 * RESTARTS));
	fprintf(stderr, "restart traffic: %u messages, %u control calls, %d daemon kills\n",
		tr->received, tr->control_calls, RESTARTS);
	t_daemon_fini(&d);
}

/* --- The systemd fd store, with this test as systemd --- */

#define STORE_MAX 64

struct fake_systemd {
	char dir[64];
	char sock[100];
	char notify[100];
	char log[128];
	int notify_fd;
	pid_t pid;
	int fds[STORE_MAX];
	char names[STORE_MAX][64];
	int n;
};

static struct fake_systemd fs;

static void fs_cleanup(void)
{
	char cmd[160];

	if (fs.pid > 0) {
		kill(fs.pid, SIGKILL);
		waitpid(fs.pid, NULL, 0);
		fs.pid = 0;
	}
	for (int i = 0; i < fs.n; i++)
		close(fs.fds[i]);
	fs.n = 0;
	if (fs.notify_fd > 0)
		close(fs.notify_fd);
	if (fs.dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fs.dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", fs.dir);
		fs.dir[0] = '\0';
	}
}

static void fs_dump_log(void)
{
	char buf[16384];
	int fd = open(fs.log, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	fprintf(stderr, "---- shmqd log ----\n%s\n", buf);
}

static void fs_setup(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int one = 1;

	memset(&fs, 0, sizeof(fs));
	snprintf(fs.dir, sizeof(fs.dir), "/tmp/shmq-fdstore-XXXXXX");
	cr_assert(mkdtemp(fs.dir) != NULL);
	snprintf(fs.sock, sizeof(fs.sock), "%s/shmqd.sock", fs.dir);
	snprintf(fs.notify, sizeof(fs.notify), "%s/notify", fs.dir);
	snprintf(fs.log, sizeof(fs.log), "%s/shmqd.log", fs.dir);
	fs.notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert(fs.notify_fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", fs.notify);
	cr_assert(bind(fs.notify_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	/* systemd checks the sender's credentials; ask for them as it does. */
	setsockopt(fs.notify_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
}

static int store_find(const char *name)
{
	for (int i = 0; i < fs.n; i++)
		if (!strcmp(fs.names[i], name))
			return i;
	return -1;
}

/* Handle every notification that is waiting: FDSTORE=1 and FDSTOREREMOVE=1. */
static void fs_drain(void)
{
	for (;;) {
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(int) * 8) + CMSG_SPACE(sizeof(struct ucred))];
		} ctl;
		char msg[1024];
		struct iovec iov = {.iov_base = msg, .iov_len = sizeof(msg) - 1};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = ctl.buf,
				    .msg_controllen = sizeof(ctl.buf)};
		int fds[8], n_fds = 0;
		const char *name;
		ssize_t n = recvmsg(fs.notify_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n < 0)
			return;
		msg[n] = '\0';
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
				for (size_t i = 0;
				     i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int) && n_fds < 8;
				     i++)
					memcpy(&fds[n_fds++], CMSG_DATA(cm) + i * sizeof(int),
					       sizeof(int));
		name = strstr(msg, "FDNAME=");
		name = name ? name + 7 : "stored";
		if (strstr(msg, "FDSTOREREMOVE=1")) {
			int k = store_find(name);

			if (k >= 0) {
				close(fs.fds[k]);
				fs.fds[k] = fs.fds[--fs.n];
				memcpy(fs.names[k], fs.names[fs.n], sizeof(fs.names[k]));
			}
		} else if (strstr(msg, "FDSTORE=1") && n_fds == 1 && fs.n < STORE_MAX &&
			   store_find(name) < 0) {
			fs.fds[fs.n] = fds[0];
			snprintf(fs.names[fs.n++], sizeof(fs.names[0]), "%s", name);
			continue;
		}
		for (int i = 0; i < n_fds; i++)
			close(fds[i]);
	}
}

/* Exec shmqd with the fd store's contents as LISTEN_FDS, as systemd restarts a service. */
static void fs_start(void)
{
	char sock_arg[128];
	const char *argv[] = {t_shmqd_path(), "--config=/dev/null", "--fd-store=yes",
			      sock_arg,	      "--log-level=debug",  NULL};
	int log = open(fs.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	pid_t parent = getpid();

	snprintf(sock_arg, sizeof(sock_arg), "--socket=%s", fs.sock);
	cr_assert(log >= 0);
	fflush(NULL);
	fs.pid = fork();
	cr_assert(fs.pid >= 0);
	if (fs.pid == 0) {
		char env[4][4096], *p = env[3];

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		/* Above every descriptor we are about to place at 3.. */
		for (int i = 0; i < fs.n; i++) {
			int hi = fcntl(fs.fds[i], F_DUPFD, 3 + STORE_MAX);

			if (hi < 0)
				_exit(126);
			fs.fds[i] = hi;
		}
		for (int i = 0; i < fs.n; i++)
			if (dup2(fs.fds[i], 3 + i) < 0)
				_exit(126);
		snprintf(env[0], sizeof(env[0]), "NOTIFY_SOCKET=%s", fs.notify);
		snprintf(env[1], sizeof(env[1]), "LISTEN_PID=%d", (int)getpid());
		snprintf(env[2], sizeof(env[2]), "LISTEN_FDS=%d", fs.n);
		p += snprintf(p, sizeof(env[3]), "LISTEN_FDNAMES=");
		for (int i = 0; i < fs.n; i++)
			p += snprintf(p, (size_t)(env[3] + sizeof(env[3]) - p), "%s%s",
				      i ? ":" : "", fs.names[i]);
		putenv(env[0]);
		if (fs.n) {
			putenv(env[1]);
			putenv(env[2]);
			putenv(env[3]);
		}
		dup2(log, 1);
		dup2(log, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(log);
	for (int i = 0; i < 200; i++) {
		int fd = t_raw_session(fs.sock);

		if (fd >= 0) {
			close(fd);
			fs_drain();
			return;
		}
		t_sleep_ms(25);
	}
	fs_dump_log();
	cr_fail("shmqd under the fake fd store did not answer");
}

static void fs_kill(void)
{
	kill(fs.pid, SIGKILL);
	waitpid(fs.pid, NULL, 0);
	fs.pid = 0;
	fs_drain();
}

TestSuite(fdstore, .fini = fs_cleanup, .timeout = 90);

Test(fdstore, sigkill_and_restart_from_the_fd_store_keeps_messages_and_handles)
{
	struct shmq_queue_attr a = qattr(256);
	struct shmq_object_info info = {.size = sizeof(info)};
	struct shmq_client *c;
	struct shmq_queue *q, *gone;
	int k;

	fs_setup();
	fs_start();
	T_OK(shmq_client_connect(fs.sock, &c));
	T_OK(shmq_queue_open(c, "stored", SHMQ_CREATE | SHMQ_SEND | SHMQ_RECV, &a, &q));
	T_OK(shmq_queue_open(c, "removed", SHMQ_CREATE | SHMQ_SEND, &a, &gone));
	T_OK(shmq_unlink(c, "removed"));
	T_OK(shmq_queue_close(gone));
	send_seq(q, 0, N_MSGS);
	fs_drain();
	cr_assert(store_find("registry") >= 0, "the registry was not stored");
	k = store_find("obj-1");
	cr_assert(k >= 0, "the queue's memfd was not stored");
	cr_assert(store_find("obj-2") < 0, "a freed object stayed in the fd store");
	{
		int seals = fcntl(fs.fds[k], F_GET_SEALS);

		cr_assert(
			eq(int, seals &(F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW));
	}

	fs_kill();
	send_seq(q, N_MSGS, 2 * N_MSGS);
	fs_start();
	T_OK(shmq_object_stat(c, "stored", &info));
	cr_assert(eq(u32, info.n_attached, 1));
	recv_seq(q, 0, 2 * N_MSGS);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	kill(fs.pid, SIGTERM);
	cr_assert(eq(int, t_wait_peer_ms(fs.pid, 10000), 0));
	fs.pid = 0;
}

Test(fdstore, fd_store_without_systemd_is_refused)
{
	char sock_arg[128], out[4096];
	const char *argv[] = {t_shmqd_path(), "--config=/dev/null", "--fd-store=yes", sock_arg,
			      NULL};
	int status;

	fs_setup();
	snprintf(sock_arg, sizeof(sock_arg), "--socket=%s", fs.sock);
	unsetenv("NOTIFY_SOCKET");
	status = t_run(argv, out, sizeof(out), 10000);
	cr_assert(eq(int, status, 1), "status %d: %s", status, out);
	cr_assert(strstr(out, "needs systemd") != NULL, "%s", out);
}

/* --- A connect whose HELLO the daemon never answered --- */

struct connector {
	const char *sock;
	int r;
	int status;
};

static int connect_once(void *arg)
{
	struct connector *k = arg;
	struct shmq_daemon_status st = {.size = sizeof(st)};
	struct shmq_client *c;

	k->r = shmq_client_connect(k->sock, &c);
	if (k->r == 0) {
		k->status = shmq_daemon_status(c, &st);
		shmq_client_close(c);
	}
	return 0;
}

/*
 * The daemon stops (SIGSTOP) with the HELLO queued, is killed, and a new
 * one comes up on the same socket: the connect says HELLO again to the new
 * daemon, within its budget, and never replays the first one (which the
 * new daemon would refuse as a second HELLO, -EINVAL).
 */
Test(restart, a_connect_cut_off_by_the_daemons_death_says_hello_to_the_next_one)
{
	struct connector *k = t_shared_alloc(sizeof(*k));
	pid_t pid;

	*k = (struct connector){.sock = d.sock, .r = 1, .status = 1};
	t_daemon_signal(&d, SIGSTOP);
	pid = t_fork_child(connect_once, k);
	t_sleep_ms(100); /* the connect is in, its HELLO unanswered */
	t_daemon_kill(&d);
	t_sleep_ms(200);
	t_daemon_restart(&d);
	cr_assert(eq(int, t_wait_peer_ms(pid, 10000), 0));
	cr_assert(eq(int, k->r, 0), "connect: %s", strerror(-k->r));
	cr_assert(eq(int, k->status, 0), "status on the new daemon: %s", strerror(-k->status));
	t_daemon_fini(&d);
	rm_state();
}

/* --- A control call while daemons come and go --- */

struct caller {
	const char *sock;
	int go;	   /* set by the test: make the call now */
	int r;	   /* the call's result */
	int ready; /* connected, waiting for go */
};

/* Connect, wait for the word, then make one retry-safe call (a STATUS). */
static int call_on_go(void *arg)
{
	struct caller *k = arg;
	struct shmq_daemon_status st = {.size = sizeof(st)};
	struct shmq_client *c;
	int r = shmq_client_connect(k->sock, &c);

	if (r < 0) {
		k->r = r;
		store_release(&k->ready, 1);
		return 0;
	}
	store_release(&k->ready, 1);
	while (!load_acquire(&k->go))
		t_sleep_ms(1);
	k->r = shmq_daemon_status(c, &st);
	shmq_client_close(c);
	return 0;
}

/*
 * The daemon dies with a call in flight; the daemon that comes up next is
 * stopped at once, so the call's reconnect lands on it and its HELLO goes
 * unanswered; that one is killed too and a third answers.  The call keeps
 * going within its 5 s budget and gets the third daemon's answer.  Five
 * rounds: the reconnect reaches the stopped daemon in nearly every one.
 */
Test(restart, a_call_whose_reconnect_is_cut_off_too_is_answered_by_the_next_daemon)
{
	for (int round = 0; round < 5; round++) {
		struct caller *k = t_shared_alloc(sizeof(*k));
		pid_t pid;

		*k = (struct caller){.sock = d.sock, .r = 1};
		pid = t_fork_child(call_on_go, k);
		while (!load_acquire(&k->ready))
			t_sleep_ms(1);
		cr_assert(eq(int, k->r, 1), "round %d: connect: %s", round, strerror(-k->r));
		t_daemon_signal(&d, SIGSTOP);
		store_release(&k->go, 1);
		t_sleep_ms(50); /* the STATUS is in, unanswered */
		t_daemon_kill(&d);
		t_daemon_restart(&d);
		t_daemon_signal(&d, SIGSTOP); /* the reconnect's HELLO queues here */
		t_sleep_ms(100);
		t_daemon_kill(&d);
		t_sleep_ms(200);
		t_daemon_restart(&d);
		cr_assert(eq(int, t_wait_peer_ms(pid, CHILD_MS), 0));
		cr_assert(eq(int, k->r, 0), "round %d: the call: %s", round, strerror(-k->r));
	}
	t_daemon_fini(&d);
	rm_state();
}

/*
 * No daemon for a call's whole budget: it fails with -ECONNRESET.  A
 * daemon that is back by the next call answers it, back-off or not, and
 * the handle opened before is taken back.
 */
Test(restart, a_call_after_one_that_found_no_daemon_reaches_a_daemon_that_is_back)
{
	struct shmq_queue_attr a = qattr(16);
	struct shmq_daemon_status st = {.size = sizeof(st)};
	struct shmq_client *c;
	struct shmq_queue *q;
	uint64_t t0;

	T_OK(shmq_client_connect(d.sock, &c));
	T_OK(shmq_queue_open(c, "back", SHMQ_CREATE | SHMQ_SEND | SHMQ_RECV, &a, &q));
	t_daemon_kill(&d);
	t0 = t_now_ns();
	cr_assert(eq(int, shmq_daemon_status(c, &st), -ECONNRESET));
	cr_assert(t_now_ns() - t0 >= 4000000000ull, "gave up after %llu ms, not its budget",
		  (unsigned long long)((t_now_ns() - t0) / 1000000));
	t_daemon_restart(&d);
	T_OK(shmq_daemon_status(c, &st));
	cr_assert(eq(u32, st.n_objects, 1), "the restarted daemon lost the queue");
	send_seq(q, 0, 4);
	recv_seq(q, 0, 4);
	shmq_queue_close(q);
	shmq_client_close(c);
	t_daemon_fini(&d);
	rm_state();
}
