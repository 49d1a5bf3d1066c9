/* SPDX-License-Identifier: MIT */
/*
 * Integration: libshmq against a daemon it must not trust.  A scripted fake
 * shmqd (a forked process speaking shm/protocol.h) answers with another
 * protocol version, or grants a segment of another layout or one too small
 * for its header; the library must refuse with the documented errno, never
 * crash, and never keep a half-open handle.  Also the errors of connecting
 * where no daemon is, and which socket a user's default connect finds.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "tests/helpers.h"
#include "tests/integration/daemon.h"
#include "tests/integration/raw.h"

#define FAKE_MS 10000

enum script {
	HELLO_STATUS_EPROTO, /* HELLO answered with status -EPROTO */
	HELLO_PROTO_2,	     /* HELLO answered "I speak protocol 2" */
	HELLO_LAYOUT_2,	     /* HELLO answered "my segments are layout 2" */
	OPEN_LAYOUT_2,	     /* OPEN granted a segment with layout_major 2 */
	OPEN_TINY_FD,	     /* OPEN granted a descriptor smaller than a segment header */
	OPEN_SIZE_MISMATCH,  /* OPEN reply size disagrees with the descriptor */
	OPEN_EMPTY_WITH_FD,  /* OPEN answered by an empty datagram carrying a descriptor */
};

struct fake {
	enum script script;
	int listen_fd;
	int seg_fd; /* the descriptor OPEN grants */
	uint64_t seg_size;
};

static char dir[64];
static char sock[108];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/shmq-integ-fake-XXXXXX");
	cr_assert(mkdtemp(dir) != NULL);
	snprintf(sock, sizeof(sock), "%s/fake.sock", dir);
}

static void teardown(void)
{
	unlink(sock);
	rmdir(dir);
}

TestSuite(client, .init = setup, .fini = teardown, .timeout = 30);

static int reply(int fd, const struct shmq_msg_hdr *req, int32_t status, const void *body,
		 size_t len, int pass_fd)
{
	unsigned char buf[512];
	struct shmq_msg_hdr *h = (struct shmq_msg_hdr *)buf;

	t_raw_build(buf, req->op | SHMQ_OP_REPLY, req->seq, body, len);
	h->status = status;
	return t_raw_send(fd, buf, sizeof(*h) + len, pass_fd);
}

/* The fake daemon: one connection, answered by the script until it hangs up. */
static int fake_daemon(void *arg)
{
	struct fake *f = arg;
	static struct t_reply rq;
	int fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return 1;
	for (;;) {
		const struct shmq_msg_hdr *h = &rq.hdr;
		int n = t_raw_recv(fd, &rq, FAKE_MS);

		if (n <= 0)
			return n == 0 ? 0 : 2;
		if (h->op == SHMQ_OP_HELLO) {
			struct shmq_rep_hello rh = {
				.proto_version = SHMQ_PROTO_VERSION,
				.layout_major = SHMQ_LAYOUT_MAJOR,
				.layout_minor = SHMQ_LAYOUT_MINOR,
				.session_id = 1,
				.daemon_pid = (int32_t)getpid(),
				.daemon_version = "0.0.0-fake",
			};

			if (f->script == HELLO_STATUS_EPROTO) {
				reply(fd, h, -EPROTO, NULL, 0, -1);
				continue;
			}
			if (f->script == HELLO_PROTO_2)
				rh.proto_version = 2;
			if (f->script == HELLO_LAYOUT_2)
				rh.layout_major = SHMQ_LAYOUT_MAJOR + 1;
			reply(fd, h, 0, &rh, sizeof(rh), -1);
		} else if (h->op == SHMQ_OP_OPEN || h->op == SHMQ_OP_CREATE) {
			const struct shmq_req_open *ro = (const void *)rq.body;
			struct shmq_rep_open rp = {
				.object_id = 1,
				.attach_id = 1,
				.size = f->seg_size,
				.session_index = 0,
				.flags = ro->flags & ~(SHMQ_OPEN_CREATE | SHMQ_OPEN_HUGEPAGE),
				.kind = ro->kind,
				.created = 1,
			};

			if (f->script == OPEN_SIZE_MISMATCH)
				rp.size = f->seg_size * 2;
			if (f->script == OPEN_EMPTY_WITH_FD) {
				t_raw_send(fd, "", 0, f->seg_fd);
				continue;
			}
			reply(fd, h, 0, &rp, sizeof(rp), f->seg_fd);
		} else {
			reply(fd, h, 0, NULL, 0, -1); /* CLOSE and the rest: fine */
		}
	}
}

static pid_t fake_start(struct fake *f, enum script script)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	f->script = script;
	f->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	cr_assert(f->listen_fd >= 0);
	strcpy(sa.sun_path, sock);
	cr_assert(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind: %s",
		  strerror(errno));
	cr_assert(listen(f->listen_fd, 4) == 0);
	return t_fork_child(fake_daemon, f);
}

static void fake_finish(struct fake *f, pid_t pid)
{
	int st = t_wait_peer_ms(pid, FAKE_MS);

	close(f->listen_fd);
	cr_assert(eq(int, st, 0), "the fake daemon exited %d", st);
}

static void expect_connect(enum script script, int want)
{
	struct fake f = {.seg_fd = -1};
	struct shmq_client *c = NULL;
	pid_t pid = fake_start(&f, script);

	T_ERR(shmq_client_connect(sock, &c), want);
	cr_assert(c == NULL, "ret_ was written on failure");
	fake_finish(&f, pid);
}

Test(client, connect_to_a_daemon_answering_eproto_returns_eproto)
{
	expect_connect(HELLO_STATUS_EPROTO, -EPROTO);
}

Test(client, connect_to_a_daemon_speaking_another_protocol_version_returns_eproto)
{
	expect_connect(HELLO_PROTO_2, -EPROTO);
}

Test(client, connect_to_a_daemon_with_another_layout_major_returns_eproto)
{
	expect_connect(HELLO_LAYOUT_2, -EPROTO);
}

/* Connect to the fake, open a queue, expect @want; the client still closes cleanly. */
static void expect_open(struct fake *f, enum script script, int want)
{
	struct shmq_client *c = NULL;
	struct shmq_queue *q = NULL;
	pid_t pid = fake_start(f, script);

	T_OK(shmq_client_connect(sock, &c));
	T_ERR(shmq_queue_open(c, "fake", SHMQ_SEND, NULL, &q), want);
	cr_assert(q == NULL, "ret_ was written on failure");
	T_OK(shmq_client_close(c)); /* no handle was left open */
	fake_finish(f, pid);
}

Test(client, open_of_a_segment_with_another_layout_major_returns_eproto)
{
	struct t_seg seg;
	struct fake f;

	t_seg_new_queue(&seg, 8, 64, SHMQ_QMODE_MPMC);
	((struct shmq_segment_hdr *)seg.base)->layout_major = SHMQ_LAYOUT_MAJOR + 1;
	f = (struct fake){.seg_fd = seg.fd, .seg_size = seg.size};
	expect_open(&f, OPEN_LAYOUT_2, -EPROTO);
	t_seg_free(&seg);
}

Test(client, open_of_a_descriptor_smaller_than_a_segment_header_returns_ebadmsg)
{
	int fd = memfd_create("tiny", MFD_CLOEXEC);
	struct fake f = {.seg_fd = fd, .seg_size = 64};

	cr_assert(fd >= 0 && ftruncate(fd, 64) == 0);
	expect_open(&f, OPEN_TINY_FD, -EBADMSG);
	close(fd);
}

Test(client, open_whose_reply_size_disagrees_with_the_descriptor_returns_ebadmsg)
{
	struct t_seg seg;
	struct fake f;

	t_seg_new_queue(&seg, 8, 64, SHMQ_QMODE_MPMC);
	f = (struct fake){.seg_fd = seg.fd, .seg_size = seg.size};
	expect_open(&f, OPEN_SIZE_MISMATCH, -EBADMSG);
	t_seg_free(&seg);
}

static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

/* An empty datagram reads as a hang-up; the descriptor it carried must not leak. */
Test(client, open_answered_by_an_empty_datagram_with_a_descriptor_closes_it)
{
	struct t_seg seg;
	struct fake f;
	int before;

	t_seg_new_queue(&seg, 8, 64, SHMQ_QMODE_MPMC);
	f = (struct fake){.seg_fd = seg.fd, .seg_size = seg.size};
	before = count_fds();
	expect_open(&f, OPEN_EMPTY_WITH_FD, -ECONNRESET);
	cr_assert(eq(int, count_fds(), before), "a descriptor from the reply leaked");
	t_seg_free(&seg);
}

Test(client, connect_where_no_daemon_listens_returns_enoent_or_econnrefused)
{
	struct shmq_client *c = NULL;
	int fd;

	T_ERR(shmq_client_connect(sock, &c), -ENOENT);
	/* A socket file nobody listens on: a daemon that died. */
	{
		struct sockaddr_un sa = {.sun_family = AF_UNIX};

		fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		strcpy(sa.sun_path, sock);
		cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
		close(fd);
	}
	T_ERR(shmq_client_connect(sock, &c), -ECONNREFUSED);
	cr_assert(c == NULL, "ret_ was written on failure");
}

/* --- The default socket of a process that is not root --- */

struct fallback {
	const char *xdg;
	char path[128]; /* shmq_client_socket_path(NULL) in the child */
	int connect;	/* shmq_client_connect(NULL) in the child */
	int status;	/* shmq_daemon_status() over that connection */
	char socket[108];
};

static int fallback_child(void *arg)
{
	struct fallback *f = arg;
	struct shmq_daemon_status st = {.size = sizeof(st)};
	struct shmq_client *c = NULL;

	unsetenv("SHMQ_SOCKET");
	setenv("XDG_RUNTIME_DIR", f->xdg, 1);
	if (shmq_client_socket_path(NULL, f->path, sizeof(f->path)) < 0)
		f->path[0] = '\0';
	f->connect = shmq_client_connect(NULL, &c);
	if (f->connect == 0) {
		f->status = shmq_daemon_status(c, &st);
		snprintf(f->socket, sizeof(f->socket), "%s", st.socket_path);
		shmq_client_close(c);
	}
	return 0;
}

/*
 * A private /run (a mount namespace of this test's own) whose
 * /run/shmq/shmqd.sock leads to @d's socket, as the system daemon's would.
 */
static void system_socket_for(const struct t_daemon *d)
{
	cr_assert(unshare(CLONE_NEWNS) == 0, "unshare: %s", strerror(errno));
	cr_assert(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
	cr_assert(mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") == 0);
	cr_assert(mkdir("/run/shmq", 0755) == 0);
	cr_assert(symlink(d->sock, "/run/shmq/shmqd.sock") == 0);
}

Test(client, a_user_without_a_per_user_daemon_connects_to_the_system_socket)
{
	struct fallback *f = t_shared_alloc(sizeof(*f));
	char xdg[] = "/tmp/shmq-xdg-XXXXXX";
	struct t_daemon d;

	t_need_root("a private /run and a process as another uid");
	cr_assert(mkdtemp(xdg) != NULL);
	cr_assert(chown(xdg, T_UNPRIVILEGED_ID, T_UNPRIVILEGED_ID) == 0);
	t_daemon_start(&d, NULL, NULL);
	system_socket_for(&d);
	f->xdg = xdg;
	cr_assert(eq(
		int,
		t_wait_peer_ms(t_fork_as(T_UNPRIVILEGED_ID, T_UNPRIVILEGED_ID, fallback_child, f),
			       10000),
		0));
	cr_assert(strcmp(f->path, "/run/shmq/shmqd.sock") == 0, "got %s", f->path);
	cr_assert(eq(int, f->connect, 0), "connect: %s", shmq_strerror(f->connect));
	cr_assert(eq(int, f->status, 0));
	cr_assert(strcmp(f->socket, d.sock) == 0, "connected to %s", f->socket);
	t_daemon_fini(&d);
	rmdir(xdg);
}

Test(client, a_user_whose_per_user_daemon_runs_connects_to_it_not_the_system_one)
{
	struct fallback *f = t_shared_alloc(sizeof(*f));
	char xdg[] = "/tmp/shmq-xdg-XXXXXX", own[64], link[96];
	struct t_daemon sys, user;

	t_need_root("a private /run and a process as another uid");
	cr_assert(mkdtemp(xdg) != NULL);
	cr_assert(chown(xdg, T_UNPRIVILEGED_ID, T_UNPRIVILEGED_ID) == 0);
	t_daemon_start(&sys, NULL, NULL);
	t_daemon_start(&user, NULL, NULL);
	system_socket_for(&sys);
	snprintf(own, sizeof(own), "%s/shmq", xdg);
	cr_assert(mkdir(own, 0700) == 0);
	snprintf(link, sizeof(link), "%s/shmqd.sock", own);
	cr_assert(symlink(user.sock, link) == 0);
	cr_assert(chown(own, T_UNPRIVILEGED_ID, T_UNPRIVILEGED_ID) == 0);
	f->xdg = xdg;
	cr_assert(eq(
		int,
		t_wait_peer_ms(t_fork_as(T_UNPRIVILEGED_ID, T_UNPRIVILEGED_ID, fallback_child, f),
			       10000),
		0));
	cr_assert(strcmp(f->path, link) == 0, "got %s", f->path);
	cr_assert(eq(int, f->connect, 0), "connect: %s", shmq_strerror(f->connect));
	cr_assert(strcmp(f->socket, user.sock) == 0, "connected to %s", f->socket);
	t_daemon_fini(&user);
	t_daemon_fini(&sys);
	unlink(link);
	rmdir(own);
	rmdir(xdg);
}

Test(client, with_no_daemon_anywhere_the_error_names_the_per_user_socket)
{
	struct fallback *f = t_shared_alloc(sizeof(*f));
	char xdg[] = "/tmp/shmq-xdg-XXXXXX", want[160];

	t_need_root("a private /run and a process as another uid");
	cr_assert(mkdtemp(xdg) != NULL);
	cr_assert(chown(xdg, T_UNPRIVILEGED_ID, T_UNPRIVILEGED_ID) == 0);
	cr_assert(unshare(CLONE_NEWNS) == 0, "unshare: %s", strerror(errno));
	cr_assert(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
	cr_assert(mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") == 0);
	f->xdg = xdg;
	cr_assert(eq(
		int,
		t_wait_peer_ms(t_fork_as(T_UNPRIVILEGED_ID, T_UNPRIVILEGED_ID, fallback_child, f),
			       10000),
		0));
	snprintf(want, sizeof(want), "%s/shmq/shmqd.sock", xdg);
	cr_assert(strcmp(f->path, want) == 0, "got %s", f->path);
	cr_assert(eq(int, f->connect, -ENOENT), "connect: %s", shmq_strerror(f->connect));
	rmdir(xdg);
}

Test(client, socket_path_rejects_a_buffer_too_small_and_bad_arguments)
{
	char buf[8];

	cr_assert(eq(int, shmq_client_socket_path("/tmp/x.sock", buf, sizeof(buf)), -ERANGE));
	cr_assert(eq(int, shmq_client_socket_path("/a", NULL, 8), -EINVAL));
	cr_assert(eq(int, shmq_client_socket_path("/a", buf, 0), -EINVAL));
	cr_assert(eq(int, shmq_client_socket_path("/a", buf, sizeof(buf)), 2));
	cr_assert(strcmp(buf, "/a") == 0, "got %s", buf);
}
