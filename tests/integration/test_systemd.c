/* SPDX-License-Identifier: MIT */
/*
 * Integration: shmqd under systemd's protocols, without systemd.
 *
 *   - sd_notify: the test binds its own datagram socket, passes it as
 *     $NOTIFY_SOCKET and reads READY=1, STATUS=, RELOADING=1, STOPPING=1;
 *   - the watchdog: $WATCHDOG_USEC, and WATCHDOG=1 at least twice a period;
 *   - socket activation through systemd-socket-activate(1), which passes a
 *     listening SOCK_SEQPACKET socket as $LISTEN_FDS and execs the daemon;
 *   - the service user: a daemon running as an unprivileged uid (as
 *     shmqd.service runs it, User=shmq) still creates sealed memfds, checks
 *     each client's credentials, hands out read-only views nobody else can
 *     reopen read-write, notices the death of another uid's process through
 *     its pidfd and repairs what it held, and binds memory to a NUMA node.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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

#define WAIT_MS	 10000
#define CHILD_MS 10000
#define NOBODY	 T_UNPRIVILEGED_ID
#define OTHER_ID 4242 /* a uid and gid that own nothing */

/* --- A daemon of our own, with the environment systemd would give it --- */

struct sd_daemon {
	char dir[64];
	char sock[100];
	char notify[100];
	char log[128];
	int notify_fd;
	pid_t pid;
	char msgs[16384]; /* every notification received, '\n'-separated */
	size_t len;
};

static struct sd_daemon sd;

static void sd_cleanup(void)
{
	char cmd[160];

	if (sd.pid > 0) {
		kill(sd.pid, SIGKILL);
		waitpid(sd.pid, NULL, 0);
		sd.pid = 0;
	}
	if (sd.notify_fd > 0)
		close(sd.notify_fd);
	if (sd.dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sd.dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", sd.dir);
		sd.dir[0] = '\0';
	}
}

static void dump_log(void)
{
	char buf[16384];
	int fd = open(sd.log, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	fprintf(stderr, "---- shmqd log ----\n%s---- notifications ----\n%.*s\n", buf, (int)sd.len,
		sd.msgs);
}

static void sd_dir(uid_t owner)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	memset(&sd, 0, sizeof(sd));
	snprintf(sd.dir, sizeof(sd.dir), "/tmp/shmq-sd-XXXXXX");
	cr_assert(mkdtemp(sd.dir) != NULL, "mkdtemp: %s", strerror(errno));
	cr_assert(chmod(sd.dir, 0755) == 0);
	/* Owner 0 is "the daemon runs as this process's uid", root or not. */
	if (owner != 0)
		t_need_root("to run the daemon as another uid");
	else
		owner = geteuid();
	cr_assert(chown(sd.dir, owner, owner) == 0, "chown: %s", strerror(errno));
	snprintf(sd.sock, sizeof(sd.sock), "%s/shmqd.sock", sd.dir);
	snprintf(sd.notify, sizeof(sd.notify), "%s/notify", sd.dir);
	snprintf(sd.log, sizeof(sd.log), "%s/shmqd.log", sd.dir);

	sd.notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert(sd.notify_fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sd.notify);
	cr_assert(bind(sd.notify_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind: %s",
		  strerror(errno));
	/* The daemon may run as another uid: let it send to us. */
	cr_assert(chmod(sd.notify, 0666) == 0);
}

/*
 * Fork and exec @argv with @env added (NAME=value strings, NULL-terminated),
 * as @uid/@gid unless @uid is 0, stdout and stderr to sd.log.
 */
static void sd_spawn(const char *const *argv, const char *const *env, uid_t uid)
{
	pid_t parent = getpid(), pid;
	int log = open(sd.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	cr_assert(log >= 0);
	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		for (int i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		if (uid && (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0))
			_exit(126);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(log, STDOUT_FILENO);
		dup2(log, STDERR_FILENO);
		syscall(SYS_close_range, 3u, ~0u, 0u);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(log);
	sd.pid = pid;
}

/* Start shmqd on sd.sock with @env, as @uid, and wait until it answers. */
static void sd_start(const char *const *env, uid_t uid)
{
	char sock_arg[160];
	const char *shmqd = uid ? t_stage_for_others(t_shmqd_path()) : t_shmqd_path();
	const char *argv[] = {shmqd, sock_arg, "--config=/dev/null", NULL};
	uint64_t deadline = t_now_ns() + (uint64_t)WAIT_MS * 1000000;

	snprintf(sock_arg, sizeof(sock_arg), "--socket=%s", sd.sock);
	sd_spawn(argv, env, uid);
	for (;;) {
		int fd = t_raw_connect(sd.sock);

		if (fd >= 0 && t_raw_hello(fd) == 0) {
			close(fd);
			return;
		}
		if (fd >= 0)
			close(fd);
		if (t_now_ns() > deadline || waitpid(sd.pid, NULL, WNOHANG) == sd.pid) {
			dump_log();
			cr_fail("shmqd did not start");
			return;
		}
		t_sleep_ms(5);
	}
}

/* Collect notifications for @timeout_ms, or until one contains @what (if not NULL). */
static bool sd_read(const char *what, int timeout_ms)
{
	uint64_t deadline = t_now_ns() + (uint64_t)timeout_ms * 1000000;

	for (;;) {
		struct pollfd p = {.fd = sd.notify_fd, .events = POLLIN};
		char buf[4096];
		uint64_t now = t_now_ns();
		ssize_t n;

		if (what && strstr(sd.msgs, what))
			return true;
		if (now >= deadline)
			return false;
		if (poll(&p, 1, (int)((deadline - now) / 1000000) + 1) <= 0)
			continue;
		n = recv(sd.notify_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
		if (n <= 0 || sd.len + (size_t)n + 2 > sizeof(sd.msgs))
			continue;
		memcpy(sd.msgs + sd.len, buf, (size_t)n);
		sd.len += (size_t)n;
		sd.msgs[sd.len++] = '\n';
		sd.msgs[sd.len] = '\0';
	}
}

/* How many times @what occurs in the notifications so far. */
static int sd_count(const char *what)
{
	int n = 0;

	for (const char *p = sd.msgs; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

/* SIGTERM; returns the exit status (0..255, 128 + signal) or -ETIMEDOUT. */
static int sd_stop(void)
{
	int st;

	kill(sd.pid, SIGTERM);
	st = t_wait_peer_ms(sd.pid, WAIT_MS);
	sd.pid = 0;
	return st;
}

static void expect(const char *what, int timeout_ms)
{
	if (!sd_read(what, timeout_ms)) {
		dump_log();
		cr_fail("no '%s' notification within %d ms", what, timeout_ms);
	}
}

TestSuite(systemd, .fini = sd_cleanup, .timeout = 60);

Test(systemd, notify_socket_receives_ready_status_reloading_and_stopping)
{
	char env_notify[160];
	const char *env[] = {env_notify, NULL};
	struct shmq_client *c;
	struct shmq_queue *q;

	sd_dir(0);
	snprintf(env_notify, sizeof(env_notify), "NOTIFY_SOCKET=%s", sd.notify);
	sd_start(env, 0);
	expect("READY=1", WAIT_MS);
	expect("STATUS=Serving clients on ", WAIT_MS);

	T_OK(shmq_client_connect(sd.sock, &c));
	T_OK(shmq_queue_open(c, "notified", SHMQ_CREATE | SHMQ_SEND, NULL, &q));
	expect("STATUS=1 clients, 1 objects", WAIT_MS);

	kill(sd.pid, SIGHUP);
	expect("RELOADING=1", WAIT_MS);
	/* READY=1 again once the reload is done: two in all. */
	for (uint64_t d = t_now_ns() + (uint64_t)WAIT_MS * 1000000;
	     sd_count("READY=1") < 2 && t_now_ns() < d;)
		sd_read(NULL, 10);
	cr_assert(eq(int, sd_count("READY=1"), 2), "%s", sd.msgs);

	shmq_queue_close(q);
	shmq_client_close(c);
	T_OK(sd_stop());
	expect("STOPPING=1", WAIT_MS);
}

Test(systemd, watchdog_pings_arrive_at_least_twice_per_period)
{
	char env_notify[160];
	const char *env[] = {env_notify, "WATCHDOG_USEC=200000", NULL};

	sd_dir(0);
	snprintf(env_notify, sizeof(env_notify), "NOTIFY_SOCKET=%s", sd.notify);
	sd_start(env, 0);
	expect("READY=1", WAIT_MS);
	sd_read(NULL, 1000);
	/* 200 ms period, a ping every 100 ms: about 10 in a second, never fewer than 5. */
	cr_assert(ge(int, sd_count("WATCHDOG=1"), 5), "%d pings:\n%s", sd_count("WATCHDOG=1"),
		  sd.msgs);
	T_OK(sd_stop());
}

Test(systemd, watchdog_stays_off_when_it_is_meant_for_another_pid)
{
	char env_notify[160];
	const char *env[] = {env_notify, "WATCHDOG_USEC=100000", "WATCHDOG_PID=1", NULL};

	sd_dir(0);
	snprintf(env_notify, sizeof(env_notify), "NOTIFY_SOCKET=%s", sd.notify);
	sd_start(env, 0);
	expect("READY=1", WAIT_MS);
	sd_read(NULL, 500);
	cr_assert(eq(int, sd_count("WATCHDOG=1"), 0), "%s", sd.msgs);
	T_OK(sd_stop());
}

static const char *socket_activate_path(void)
{
	static const char *const paths[] = {"/usr/bin/systemd-socket-activate",
					    "/bin/systemd-socket-activate"};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	cr_fail("systemd-socket-activate not found: install the systemd package (make deps)");
	return NULL;
}

Test(systemd, socket_activation_serves_on_the_socket_systemd_passes)
{
	struct shmq_daemon_status st = {.size = sizeof(st)};
	uint64_t deadline = t_now_ns() + (uint64_t)WAIT_MS * 1000000;
	char listen_arg[160], buf[16384];
	const char *argv[] = {socket_activate_path(), "--seqpacket",	    listen_arg,
			      t_shmqd_path(),	      "--config=/dev/null", NULL};
	struct shmq_client *c = NULL;
	struct stat sb;
	int r, fd;

	sd_dir(0);
	snprintf(listen_arg, sizeof(listen_arg), "--listen=%s", sd.sock);
	sd_spawn(argv, NULL, 0);
	/* The first connection makes systemd-socket-activate exec the daemon. */
	while ((r = shmq_client_connect(sd.sock, &c)) < 0 && t_now_ns() < deadline)
		t_sleep_ms(10);
	T_OK(r);
	T_OK(shmq_daemon_status(c, &st));
	cr_assert(eq(int, st.pid, sd.pid), "the daemon runs in place of systemd-socket-activate");
	cr_assert(strcmp(st.socket_path, sd.sock) == 0, "%s", st.socket_path);
	shmq_client_close(c);
	T_OK(sd_stop());

	fd = open(sd.log, O_RDONLY | O_CLOEXEC);
	r = (int)read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[r > 0 ? r : 0] = '\0';
	cr_assert(strstr(buf, "(socket activation)") != NULL, "%s", buf);
	/* The socket is systemd's: the daemon must leave the file in place. */
	cr_assert(eq(int, lstat(sd.sock, &sb), 0), "the activated socket was removed");
}

/* --- An unprivileged daemon --- */

TestSuite(unprivileged, .fini = sd_cleanup, .timeout = 60);

static bool have_numa_node0(void)
{
	return access("/sys/devices/system/node/node0", F_OK) == 0;
}

struct other {
	const char *sock;
	int open_private;
	int open_public;
	int send_public;
	int view_fd_reopen_rw;
};

static int other_uid_child(void *arg)
{
	struct other *o = arg;
	struct shmq_req_open req;
	struct shmq_client *c;
	struct shmq_queue *q;
	struct t_reply *rep = malloc(sizeof(*rep));
	char path[64];
	int fd;

	if (!rep || shmq_client_connect(o->sock, &c) < 0)
		return 1;
	o->open_private = shmq_queue_open(c, "private", SHMQ_SEND, NULL, &q);
	if (o->open_private == 0)
		shmq_queue_close(q);
	o->open_public = shmq_queue_open(c, "public", SHMQ_SEND, NULL, &q);
	if (o->open_public == 0) {
		o->send_public = shmq_queue_send(q, "hi", 2);
		shmq_queue_close(q);
	}
	shmq_client_close(c);

	/* A view's descriptor: the memfd's inode belongs to the daemon's uid, mode 0400. */
	fd = t_raw_session(o->sock);
	if (fd < 0)
		return 2;
	t_raw_queue_req(&req, "public", SHMQ_OPEN_VIEW, 0, 0, 0, 0);
	if (t_raw_call(fd, SHMQ_OP_OPEN, &req, sizeof(req), rep) != 0 || rep->fd < 0)
		return 3;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", rep->fd);
	o->view_fd_reopen_rw = open(path, O_RDWR | O_CLOEXEC) < 0 ? -errno : 0;
	close(rep->fd);
	close(fd);
	free(rep);
	return 0;
}

Test(unprivileged, a_daemon_running_as_nobody_seals_memory_and_checks_every_client)
{
	struct shmq_queue_attr a = {.size = sizeof(a), .perm = 0666};
	struct other *o = t_shared_alloc(sizeof(*o));
	struct t_reply *rep = malloc(sizeof(*rep));
	struct shmq_object_info info = {.size = sizeof(info)};
	struct shmq_queue *priv, *pub;
	struct shmq_req_open req;
	struct shmq_client *c;
	struct stat st;
	char buf[8];
	int fd, seals;

	cr_assert(rep != NULL);
	sd_dir(NOBODY);
	sd_start(NULL, NOBODY);
	T_OK(shmq_client_connect(sd.sock, &c));
	T_OK(shmq_queue_open(c, "private", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND | SHMQ_RECV, NULL,
			     &priv));
	T_OK(shmq_queue_open(c, "public", SHMQ_CREATE | SHMQ_EXCL | SHMQ_RECV, &a, &pub));
	T_OK(shmq_object_stat(c, "private", &info));
	cr_assert(eq(u32, info.owner_uid, 0), "the owner is the client, not the daemon");

	/* The memfd is sealed and owned by the daemon's uid, mode 0400. */
	fd = t_raw_session(sd.sock);
	cr_assert(fd >= 0);
	t_raw_queue_req(&req, "private", SHMQ_OPEN_SEND, 0, 0, 0, 0);
	T_OK(t_raw_call(fd, SHMQ_OP_OPEN, &req, sizeof(req), rep));
	cr_assert(rep->fd >= 0);
	seals = fcntl(rep->fd, F_GET_SEALS);
	cr_assert(eq(int, seals, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), "seals 0x%x", seals);
	cr_assert(eq(int, fstat(rep->fd, &st), 0));
	cr_assert(eq(u32, st.st_uid, NOBODY));
	cr_assert(eq(u32, st.st_mode & 0777, 0400));
	close(rep->fd);
	close(fd);

	o->sock = sd.sock;
	cr_assert(eq(int,
		     t_wait_peer_ms(t_fork_as(OTHER_ID, OTHER_ID, other_uid_child, o), CHILD_MS),
		     0));
	cr_assert(eq(int, o->open_private, -EACCES));
	cr_assert(eq(int, o->open_public, 0));
	cr_assert(eq(int, o->send_public, 0));
	cr_assert(eq(int, o->view_fd_reopen_rw, -EACCES));
	cr_assert(eq(int, shmq_queue_recv(pub, buf, sizeof(buf)), 2));

	shmq_queue_close(pub);
	shmq_queue_close(priv);
	shmq_client_close(c);
	free(rep);
	T_OK(sd_stop());
}

Test(unprivileged, a_daemon_running_as_nobody_binds_memory_to_a_numa_node)
{
	struct shmq_queue_attr a = {.size = sizeof(a), .flags = SHMQ_QUEUE_NUMA, .numa_node = 0};
	struct shmq_object_info info = {.size = sizeof(info)};
	struct shmq_client *c;
	struct shmq_queue *q;

	if (!have_numa_node0()) {
		fprintf(stderr, "no NUMA node 0 on this machine: nothing to bind\n");
		return;
	}
	sd_dir(NOBODY);
	sd_start(NULL, NOBODY);
	T_OK(shmq_client_connect(sd.sock, &c));
	T_OK(shmq_queue_open(c, "numa", SHMQ_CREATE | SHMQ_SEND | SHMQ_RECV, &a, &q));
	T_OK(shmq_object_stat(c, "numa", &info));
	cr_assert(eq(i32, info.numa_node, 0));
	T_OK(shmq_queue_send(q, "x", 1));
	shmq_queue_close(q);
	shmq_client_close(c);
	T_OK(sd_stop());
}

static int die_holding_a_reservation(void *arg)
{
	const char *sock = arg;
	struct shmq_client *c;
	struct shmq_queue *q;
	void *buf;

	if (shmq_client_connect(sock, &c) < 0 ||
	    shmq_queue_open(c, "held", SHMQ_SEND, NULL, &q) < 0)
		return 1;
	if (shmq_queue_reserve(q, 0, &buf) < 0)
		return 2;
	raise(SIGKILL);
	return 3;
}

Test(unprivileged, a_daemon_running_as_nobody_repairs_after_another_uids_process_dies)
{
	struct shmq_queue_attr a = {.size = sizeof(a), .n_slots = 4, .perm = 0666};
	struct shmq_daemon_status st = {.size = sizeof(st)};
	uint64_t deadline;
	struct shmq_client *c;
	struct shmq_queue *q;
	char buf[8];
	int status;

	sd_dir(NOBODY);
	sd_start(NULL, NOBODY);
	T_OK(shmq_client_connect(sd.sock, &c));
	T_OK(shmq_queue_open(c, "held", SHMQ_CREATE | SHMQ_SEND | SHMQ_RECV, &a, &q));

	/* Another uid's process takes a slot for writing and dies holding it. */
	status = t_wait_peer_ms(
		t_fork_as(OTHER_ID, OTHER_ID, die_holding_a_reservation, (void *)sd.sock),
		CHILD_MS);
	cr_assert(eq(int, status, 128 + SIGKILL));
	deadline = t_now_ns() + (uint64_t)WAIT_MS * 1000000;
	do {
		t_sleep_ms(5);
		T_OK(shmq_daemon_status(c, &st));
	} while (st.n_sessions > 1 && t_now_ns() < deadline);
	cr_assert(eq(u32, st.n_sessions, 1), "the dead client's session was not reaped");

	/* Its half-written slot became a tombstone: the queue flows past it. */
	T_OK(shmq_queue_send(q, "after", 5));
	cr_assert(eq(int, shmq_queue_recv(q, buf, sizeof(buf)), 5));
	shmq_queue_close(q);
	shmq_client_close(c);
	T_OK(sd_stop());
}
