/* SPDX-License-Identifier: MIT */
/*
 * Integration: every kind of malformed control request, sent by a raw
 * SOCK_SEQPACKET client that speaks shm/protocol.h directly.
 *
 * For each one the daemon must answer with the documented errno (or, where
 * the header itself cannot be trusted, may close the connection), and then
 * still serve: the same connection when the daemon kept it, else a new one.
 * Every test also runs a bystander, a libshmq client with a queue holding a
 * message, and checks at the end that its traffic and its control calls were
 * not disturbed.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "tests/helpers.h"
#include "tests/integration/daemon.h"
#include "tests/integration/raw.h"

#define SEQ 777

static struct t_daemon d;
static struct shmq_client *bystander;
static struct shmq_queue *bq;
static struct t_reply rep;
static unsigned char buf[SHMQ_MSG_MAX + 8192];

static void setup(void)
{
	struct shmq_queue_attr a = {
		.size = sizeof(a), .n_slots = 8, .slot_size = 64, .numa_node = -1, .perm = 0600};

	t_daemon_start(&d, NULL, NULL);
	bystander = t_connect(&d);
	T_OK(shmq_queue_open(bystander, "bystander", SHMQ_CREATE | SHMQ_SEND | SHMQ_RECV, &a, &bq));
	T_OK(shmq_queue_send(bq, "before", 6));
}

TestSuite(protocol, .init = setup, .fini = t_daemon_cleanup_all, .timeout = 30);

/* The bystander's message, its traffic and its control calls are intact; stop the daemon. */
static void finish(void)
{
	struct shmq_queue *q2;
	char m[64];
	int fd;

	cr_assert(eq(int, shmq_queue_recv(bq, m, sizeof(m)), 6), "the bystander lost its message");
	cr_assert(memcmp(m, "before", 6) == 0);
	T_OK(shmq_queue_send(bq, "after", 5));
	cr_assert(eq(int, shmq_queue_recv(bq, m, sizeof(m)), 5));
	T_OK(shmq_queue_open(bystander, "bystander", SHMQ_VIEW, NULL, &q2));
	T_OK(shmq_queue_close(q2));
	T_OK(shmq_queue_close(bq));
	T_OK(shmq_client_close(bystander));
	fd = t_raw_session(d.sock);
	cr_assert(fd >= 0, "a new raw session after the test: %d (%s)", fd, strerror(-fd));
	cr_assert(t_raw_alive(fd));
	close(fd);
	t_daemon_fini(&d);
}

static int session(void)
{
	int fd = t_raw_session(d.sock);

	cr_assert(fd >= 0, "raw session: %d (%s)", fd, strerror(-fd));
	return fd;
}

/*
 * Send @len bytes of buf (with @pass_fd unless < 0) on @fd and check the
 * answer: an error reply of exactly a header, status @want, echoing the
 * request's seq when @echo (the header was long enough to carry it).  Then
 * the daemon must keep serving this connection (docs/protocol.md: "a
 * refused request changes nothing"): HELLO first when @hello (it was never
 * said), then STATUS; and a new session must work too.
 */
static void expect(int fd, size_t len, int pass_fd, int want, bool echo, bool hello,
		   const char *what)
{
	int r = t_raw_send(fd, buf, len, pass_fd), fd2;

	cr_assert(r == 0, "%s: send: %s", what, strerror(-r));
	r = t_raw_recv(fd, &rep, T_RAW_TIMEOUT_MS);
	cr_assert(r != -ETIMEDOUT, "%s: no answer within %d ms", what, T_RAW_TIMEOUT_MS);
	cr_assert(r >= 0, "%s: recv: %s", what, strerror(-r));
	cr_assert(r > 0, "%s: the daemon closed the connection instead of replying %d (%s)", what,
		  want, strerror(-want));
	if (rep.fd >= 0)
		close(rep.fd);
	cr_assert(rep.n_fds == 0, "%s: an error reply carried a descriptor", what);
	/* The header, and at most a reason: printable ASCII up to its NUL (protocol.h). */
	cr_assert(rep.len == sizeof(rep.hdr) ||
			  (rep.len <= sizeof(rep.hdr) + SHMQ_REASON_MAX &&
			   memchr(rep.body, '\0', rep.len - sizeof(rep.hdr)) ==
				   rep.body + rep.len - sizeof(rep.hdr) - 1),
		  "%s: an error reply of %zu bytes", what, rep.len);
	for (size_t i = 0; i + 1 < rep.len - sizeof(rep.hdr); i++)
		cr_assert(rep.body[i] >= 0x20 && rep.body[i] <= 0x7e, "%s: reason byte %#x", what,
			  rep.body[i]);
	cr_assert(rep.hdr.magic == SHMQ_PROTO_MAGIC && rep.hdr.version == 1,
		  "%s: reply header magic %#x version %u", what, rep.hdr.magic, rep.hdr.version);
	cr_assert(ne(u32, rep.hdr.op & SHMQ_OP_REPLY, 0), "%s: reply op %#x", what, rep.hdr.op);
	cr_assert(rep.hdr.size == rep.len, "%s: reply size %u, datagram %zu", what, rep.hdr.size,
		  rep.len);
	if (echo)
		cr_assert(eq(u32, rep.hdr.seq, SEQ), "%s: reply seq %u", what, rep.hdr.seq);
	cr_assert(rep.hdr.status == want, "%s: status %d (%s), expected %d (%s)", what,
		  rep.hdr.status, strerror(-rep.hdr.status), want, strerror(-want));

	r = hello ? t_raw_hello(fd) : 0;
	if (r == 0)
		r = t_raw_call(fd, SHMQ_OP_STATUS, NULL, 0, NULL);
	cr_assert(r == 0, "%s: afterwards the same connection answered %d (%s)", what, r,
		  r < 0 ? strerror(-r) : "a bad reply");
	fd2 = session();
	close(fd2);
}

static size_t build(uint16_t op, const void *body, size_t body_len)
{
	return t_raw_build(buf, op, SEQ, body, body_len);
}

static struct shmq_msg_hdr *hdr(void)
{
	return (struct shmq_msg_hdr *)buf;
}

static void queue_req(struct shmq_req_open *req, const char *name)
{
	t_raw_queue_req(req, name, SHMQ_OPEN_CREATE | SHMQ_OPEN_SEND, 8, 64, SHMQ_QMODE_MPMC, 0600);
}

/* Send OPEN @req on a fresh session, expect @want, and check nothing named @name exists. */
static void expect_open(const struct shmq_req_open *req, int want, const char *what)
{
	struct shmq_obj_info info;
	int fd = session();
	size_t n = build(SHMQ_OP_OPEN, req, sizeof(*req));

	expect(fd, n, -1, want, true, false, what);
	if (memchr(req->name, 0, sizeof(req->name)) && shmq__name_is_valid(req->name))
		T_ERR(t_raw_stat(fd, req->name, &info), -ENOENT);
	close(fd);
}

Test(protocol, wrong_magic_gets_eproto_and_the_connection_keeps_working)
{
	struct shmq_req_open req;
	int fd = session();
	size_t n;

	queue_req(&req, "magic");
	n = build(SHMQ_OP_OPEN, &req, sizeof(req));
	hdr()->magic = 0x12345678;
	expect(fd, n, -1, -EPROTO, true, false, "wrong magic");
	close(fd);
	finish();
}

Test(protocol, wrong_version_gets_an_eproto_reply_and_the_connection_keeps_working)
{
	int fd = session();
	uint16_t versions[] = {0, 2, 0xffff};

	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		size_t n = build(SHMQ_OP_STATUS, NULL, 0);

		hdr()->version = versions[i];
		expect(fd, n, -1, -EPROTO, true, false, "wrong version");
	}
	close(fd);
	finish();
}

Test(protocol, unknown_op_gets_eopnotsupp)
{
	uint16_t ops[] = {0, SHMQ_OP_COUNT, 999, 0x7fff, SHMQ_OP_REPLY | SHMQ_OP_STATUS};
	int fd = session();

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		size_t n = build(ops[i], NULL, 0);

		expect(fd, n, -1, -EOPNOTSUPP, true, false, "unknown op");
	}
	close(fd);
	finish();
}

Test(protocol, truncated_header_gets_eproto_and_the_connection_keeps_working)
{
	size_t sizes[] = {0, 1, 7, 8, 15, 16, sizeof(struct shmq_msg_hdr) - 1};
	int fd = session();

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		build(SHMQ_OP_STATUS, NULL, 0);
		/* An empty datagram reads like end of file; the daemon answers it all the same. */
		expect(fd, sizes[i], -1, -EPROTO, false, false, "truncated header");
		/* docs/protocol.md: op 0x8000 below 8 bytes, seq 0 below 16. */
		cr_assert(eq(u32, rep.hdr.op,
			     sizes[i] < 8 ? SHMQ_OP_REPLY : SHMQ_OP_REPLY | SHMQ_OP_STATUS),
			  "reply op for a %zu-byte request", sizes[i]);
		cr_assert(eq(u32, rep.hdr.seq, sizes[i] < 16 ? 0 : SEQ),
			  "reply seq for a %zu-byte request", sizes[i]);
	}
	close(fd);
	finish();
}

Test(protocol, header_size_that_disagrees_with_the_datagram_gets_ebadmsg)
{
	uint32_t sizes[] = {0, 10, sizeof(struct shmq_msg_hdr), 200, 0xffffffff};
	int fd = session();

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct shmq_req_name req = {.name = "x"};
		size_t n = build(SHMQ_OP_STAT, &req, sizeof(req));

		hdr()->size = sizes[i];
		expect(fd, n, -1, -EBADMSG, true, false, "header size != datagram");
	}
	close(fd);
	finish();
}

Test(protocol, body_shorter_than_the_op_needs_gets_ebadmsg)
{
	static const struct {
		uint16_t op;
		size_t len;
	} cases[] = {
		{SHMQ_OP_OPEN, sizeof(struct shmq_req_open) - 1},
		{SHMQ_OP_CREATE, 16},
		{SHMQ_OP_CLOSE, 4},
		{SHMQ_OP_UNLINK, 0},
		{SHMQ_OP_STAT, SHMQ_NAME_MAX},
		{SHMQ_OP_LIST, 4},
		{SHMQ_OP_SESSIONS, 0},
		{SHMQ_OP_USAGE, 7},
		{SHMQ_OP_DISCONNECT, 4},
	};
	static const unsigned char zeros[sizeof(struct shmq_req_open)] = {'a'};
	int fd = session();

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = build(cases[i].op, zeros, cases[i].len);

		expect(fd, n, -1, -EBADMSG, true, false, "short body");
	}
	close(fd);
	/* HELLO itself, on a new connection. */
	fd = t_raw_connect(d.sock);
	cr_assert(fd >= 0);
	expect(fd, build(SHMQ_OP_HELLO, zeros, sizeof(struct shmq_req_hello) - 1), -1, -EBADMSG,
	       true, true, "short HELLO");
	close(fd);
	finish();
}

Test(protocol, body_longer_than_the_op_needs_gets_ebadmsg)
{
	static const struct {
		uint16_t op;
		size_t len;
	} cases[] = {
		{SHMQ_OP_OPEN, sizeof(struct shmq_req_open) + 1},
		{SHMQ_OP_CLOSE, 16},
		{SHMQ_OP_STAT, SHMQ_NAME_MAX + 2},
		{SHMQ_OP_LIST, 16},
		{SHMQ_OP_STATUS, 8},
		{SHMQ_OP_CONFIG_TYPED, 1},
		{SHMQ_OP_DISCONNECT, 9},
	};
	static unsigned char body[4096];
	int fd = session();

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n;

		memset(body, 0, sizeof(body));
		if (cases[i].op == SHMQ_OP_OPEN) {
			queue_req((struct shmq_req_open *)body, "longer");
		}
		n = build(cases[i].op, body, cases[i].len);
		expect(fd, n, -1, -EBADMSG, true, false, "long body");
	}
	close(fd);
	finish();
}

Test(protocol, oversized_datagram_gets_eproto_and_the_connection_keeps_working)
{
	static const unsigned char big[SHMQ_MSG_MAX + 4096];
	int fd = session();
	size_t n = build(SHMQ_OP_STAT, big, sizeof(big));

	expect(fd, n, -1, -EPROTO, true, false, "datagram over SHMQ_MSG_MAX");
	close(fd);
	finish();
}

Test(protocol, request_before_hello_gets_eproto)
{
	struct shmq_req_open req;
	struct shmq_req_page page = {0};
	int fd = t_raw_connect(d.sock);

	cr_assert(fd >= 0);
	queue_req(&req, "early");
	expect(fd, build(SHMQ_OP_OPEN, &req, sizeof(req)), -1, -EPROTO, true, true,
	       "OPEN before HELLO");
	close(fd);
	fd = t_raw_connect(d.sock);
	cr_assert(fd >= 0);
	/* expect() says HELLO on the same connection, then STATUS. */
	expect(fd, build(SHMQ_OP_LIST, &page, sizeof(page)), -1, -EPROTO, true, true,
	       "LIST before HELLO");
	{
		struct shmq_obj_info info;

		T_ERR(t_raw_stat(fd, "early", &info), -ENOENT);
	}
	close(fd);
	finish();
}

Test(protocol, hello_with_another_protocol_or_layout_major_gets_eproto)
{
	struct shmq_req_hello h[] = {
		{.proto_version = 2, .layout_major = SHMQ_LAYOUT_MAJOR},
		{.proto_version = 0, .layout_major = SHMQ_LAYOUT_MAJOR},
		{.proto_version = 1, .layout_major = SHMQ_LAYOUT_MAJOR + 1},
		{.proto_version = 1, .layout_major = 0},
	};

	for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++) {
		int fd = t_raw_connect(d.sock);

		cr_assert(fd >= 0);
		expect(fd, build(SHMQ_OP_HELLO, &h[i], sizeof(h[i])), -1, -EPROTO, true, true,
		       "HELLO with another version");
		close(fd);
	}
	finish();
}

Test(protocol, unterminated_names_get_einval)
{
	struct shmq_req_open req;
	struct shmq_req_name nreq;
	int fd;

	queue_req(&req, "");
	memset(req.name, 'a', sizeof(req.name));
	expect_open(&req, -EINVAL, "OPEN with an unterminated name");

	memset(nreq.name, 'b', sizeof(nreq.name));
	fd = session();
	expect(fd, build(SHMQ_OP_UNLINK, &nreq, sizeof(nreq)), -1, -EINVAL, true, false,
	       "UNLINK with an unterminated name");
	expect(fd, build(SHMQ_OP_STAT, &nreq, sizeof(nreq)), -1, -EINVAL, true, false,
	       "STAT with an unterminated name");
	close(fd);
	finish();
}

Test(protocol, invalid_names_get_einval)
{
	static const char *const names[] = {"", "a/b", "sp ace", "../etc", "a\nb", "\xff"};
	struct shmq_req_open req;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		queue_req(&req, names[i]);
		expect_open(&req, -EINVAL, "OPEN with an invalid name");
	}
	/* Garbage after the terminating NUL is not part of the name: still invalid here. */
	queue_req(&req, "");
	memcpy(req.name + 1, "hidden", 6);
	expect_open(&req, -EINVAL, "OPEN with an empty name and bytes after the NUL");
	finish();
}

Test(protocol, unknown_open_flags_get_einval)
{
	static const uint32_t flags[] = {1u << 7, 1u << 15, 1u << 31, ~SHMQ_OPEN_ALL_FLAGS};
	struct shmq_req_open req;

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		queue_req(&req, "flags");
		req.flags |= flags[i];
		expect_open(&req, -EINVAL, "OPEN with unknown flags");
	}
	finish();
}

Test(protocol, nonzero_reserved_fields_get_einval)
{
	struct shmq_req_open req;
	struct shmq_req_page page = {.reserved0 = 1};
	struct shmq_req_hello h = {.proto_version = 1,
				   .layout_major = SHMQ_LAYOUT_MAJOR,
				   .layout_minor = SHMQ_LAYOUT_MINOR,
				   .reserved0 = 1};
	int fd;

	queue_req(&req, "resv");
	req.reserved0 = 1;
	expect_open(&req, -EINVAL, "OPEN reserved0");
	queue_req(&req, "resv");
	req.reserved1 = 0x80000000u;
	expect_open(&req, -EINVAL, "OPEN reserved1");
	queue_req(&req, "resv");
	req.geom.queue.flags = 2; /* bit 0 is JOINABLE (1.7) */
	expect_open(&req, -EINVAL, "queue geometry flags");
	queue_req(&req, "resv");
	req.geom.queue.arena_pages = 1; /* derived by the daemon */
	expect_open(&req, -EINVAL, "queue geometry reserved");

	fd = session();
	expect(fd, build(SHMQ_OP_LIST, &page, sizeof(page)), -1, -EINVAL, true, false,
	       "LIST reserved0");
	expect(fd, build(SHMQ_OP_USAGE, &page, sizeof(page)), -1, -EINVAL, true, false,
	       "USAGE reserved0");
	build(SHMQ_OP_STATUS, NULL, 0);
	hdr()->reserved = 1;
	expect(fd, sizeof(struct shmq_msg_hdr), -1, -EINVAL, true, false, "header reserved");
	close(fd);

	fd = t_raw_connect(d.sock);
	cr_assert(fd >= 0);
	expect(fd, build(SHMQ_OP_HELLO, &h, sizeof(h)), -1, -EINVAL, true, true, "HELLO reserved0");
	close(fd);
	finish();
}

Test(protocol, unknown_object_kind_gets_einval)
{
	static const uint16_t kinds[] = {0, 3, 0xffff};
	struct shmq_req_open req;

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		queue_req(&req, "kind");
		req.kind = kinds[i];
		expect_open(&req, -EINVAL, "OPEN with an unknown kind");
	}
	finish();
}

Test(protocol, absurd_queue_geometry_gets_einval)
{
	static const struct {
		uint32_t n_slots, slot_size, mode;
	} cases[] = {
		{3, 64, SHMQ_QMODE_MPMC},
		{1, 64, SHMQ_QMODE_MPMC},
		{1u << 30, 64, SHMQ_QMODE_MPMC},
		{0x80000000u, 64, SHMQ_QMODE_MPMC},
		{1000, 64, SHMQ_QMODE_MPMC},
		{8, 0xffffffffu, SHMQ_QMODE_MPMC},
		{8, 1u << 30, SHMQ_QMODE_MPMC},
		{8, 64, SHMQ_QMODE_COUNT},
		{8, 64, 0xffffffffu},
	};
	struct shmq_req_open req;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		queue_req(&req, "geom");
		req.geom.queue.n_slots = cases[i].n_slots;
		req.geom.queue.slot_size = cases[i].slot_size;
		req.geom.queue.mode = cases[i].mode;
		expect_open(&req, -EINVAL, "OPEN with absurd geometry");
	}
	queue_req(&req, "stride");
	req.geom.queue.slot_stride = 128;
	expect_open(&req, -EINVAL, "OPEN with a slot_stride (the daemon computes it)");
	queue_req(&req, "numa");
	req.geom.queue.numa_node = -2;
	expect_open(&req, -EINVAL, "OPEN with numa_node -2");
	queue_req(&req, "perm");
	req.mode = 01777;
	expect_open(&req, -EINVAL, "OPEN with mode bits outside 0777");
	finish();
}

Test(protocol, zero_geometry_takes_the_daemon_defaults)
{
	struct shmq_req_open req;
	struct shmq_obj_info info;
	int fd = session();

	/* shmq.h: n_slots 0 and slot_size 0 mean the daemon's default-slots/-slot-size. */
	queue_req(&req, "defaults");
	req.geom.queue.n_slots = 0;
	req.geom.queue.slot_size = 0;
	T_OK(t_raw_call(fd, SHMQ_OP_OPEN, &req, sizeof(req), &rep));
	if (rep.fd >= 0)
		close(rep.fd);
	T_OK(t_raw_stat(fd, "defaults", &info));
	cr_assert(eq(u32, info.geom.queue.n_slots, 1024), "default-slots");
	cr_assert(eq(u32, info.geom.queue.slot_size, 256), "default-slot-size");
	close(fd);
	finish();
}

Test(protocol, absurd_semaphore_attributes_get_einval)
{
	struct shmq_req_open req;

	memset(&req, 0, sizeof(req));
	req.flags = SHMQ_OPEN_CREATE | SHMQ_OPEN_SEM;
	req.kind = SHMQ_KIND_SEM;
	req.mode = 0600;
	strcpy(req.name, "sem");
	req.geom.sem.flags = 1u << 7;
	expect_open(&req, -EINVAL, "semaphore with unknown flags");
	req.geom.sem.flags = SHMQ_SEM_BOUNDED;
	req.geom.sem.initial = 5;
	req.geom.sem.max = 4;
	expect_open(&req, -EINVAL, "bounded semaphore with initial above max");
	req.geom.sem.flags = 0;
	req.geom.sem.initial = SHMQ_SEM_VALUE_MAX + 1u;
	req.geom.sem.max = 0;
	expect_open(&req, -EINVAL, "semaphore initial above SHMQ_SEM_VALUE_MAX");
	req.geom.sem.initial = 0;
	req.geom.sem.max = 5;
	expect_open(&req, -EINVAL, "unbounded semaphore with a max");
	req.geom.sem.flags = SHMQ_SEM_BOUNDED;
	req.geom.sem.max = 0;
	expect_open(&req, -EINVAL, "bounded semaphore with max 0");
	req.geom.sem.flags = 0;
	req.geom.sem.reserved[4] = 1;
	expect_open(&req, -EINVAL, "semaphore geometry reserved");
	finish();
}

Test(protocol, descriptor_attached_to_a_request_gets_ebadmsg_and_is_closed)
{
	struct shmq_req_name req = {.name = "bystander"};
	struct pollfd pfd;
	int sv[2], fd = session(), r;

	cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	expect(fd, build(SHMQ_OP_STAT, &req, sizeof(req)), sv[1], -EBADMSG, true, false,
	       "request with SCM_RIGHTS");
	/* Our copy goes; once the daemon closed its copy too, the peer end sees a hang-up. */
	close(sv[1]);
	pfd = (struct pollfd){.fd = sv[0], .events = POLLIN};
	r = poll(&pfd, 1, 2000);
	cr_assert(r == 1 && (pfd.revents & (POLLHUP | POLLIN)),
		  "the daemon kept the descriptor passed with a rejected request");
	close(sv[0]);
	close(fd);
	finish();
}

Test(protocol, close_of_another_sessions_attachment_is_refused)
{
	struct shmq_req_open req;
	struct shmq_req_close creq;
	struct shmq_obj_info info;
	const struct shmq_rep_open *ro = (const void *)rep.body;
	int a = session(), b = session();

	queue_req(&req, "theirs");
	T_OK(t_raw_call(a, SHMQ_OP_OPEN, &req, sizeof(req), &rep));
	cr_assert(rep.fd >= 0, "OPEN granted no descriptor");
	close(rep.fd);
	creq.attach_id = ro->attach_id;
	T_ERR(t_raw_call(b, SHMQ_OP_CLOSE, &creq, sizeof(creq), NULL), -ENOENT);
	T_OK(t_raw_stat(b, "theirs", &info));
	cr_assert(eq(u32, info.n_attached, 1), "A's attachment is still there");
	T_OK(t_raw_call(a, SHMQ_OP_CLOSE, &creq, sizeof(creq), NULL));
	T_ERR(t_raw_call(a, SHMQ_OP_CLOSE, &creq, sizeof(creq), NULL), -ENOENT);
	T_OK(t_raw_stat(b, "theirs", &info));
	cr_assert(eq(u32, info.n_attached, 0));
	close(a);
	close(b);
	finish();
}

Test(protocol, role_sets_that_do_not_fit_the_kind_get_einval)
{
	static const struct {
		uint16_t kind;
		uint32_t flags;
		const char *what;
	} cases[] = {
		{SHMQ_KIND_QUEUE, SHMQ_OPEN_CREATE, "a queue with no role"},
		{SHMQ_KIND_QUEUE, SHMQ_OPEN_CREATE | SHMQ_OPEN_SEND | SHMQ_OPEN_VIEW, "SEND|VIEW"},
		{SHMQ_KIND_QUEUE, SHMQ_OPEN_CREATE | SHMQ_OPEN_SEM, "SEM on a queue"},
		{SHMQ_KIND_SEM, SHMQ_OPEN_CREATE | SHMQ_OPEN_SEND, "SEND on a semaphore"},
		{SHMQ_KIND_SEM, SHMQ_OPEN_CREATE | SHMQ_OPEN_SEM | SHMQ_OPEN_VIEW, "SEM|VIEW"},
		{SHMQ_KIND_SEM, SHMQ_OPEN_CREATE | SHMQ_OPEN_SEM | SHMQ_OPEN_HUGEPAGE,
		 "HUGEPAGE on a semaphore"},
		{SHMQ_KIND_QUEUE, SHMQ_OPEN_SEND | SHMQ_OPEN_HUGEPAGE, "HUGEPAGE without create"},
	};
	struct shmq_req_open req;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		queue_req(&req, "roles");
		req.kind = cases[i].kind;
		req.flags = cases[i].flags;
		if (req.kind == SHMQ_KIND_SEM)
			memset(&req.geom, 0, sizeof(req.geom));
		expect_open(&req, -EINVAL, cases[i].what);
	}
	finish();
}

Test(protocol, second_hello_on_a_connection_gets_einval)
{
	struct shmq_req_hello h = {.proto_version = SHMQ_PROTO_VERSION,
				   .layout_major = SHMQ_LAYOUT_MAJOR,
				   .layout_minor = SHMQ_LAYOUT_MINOR};
	int fd = session();

	expect(fd, build(SHMQ_OP_HELLO, &h, sizeof(h)), -1, -EINVAL, true, false, "second HELLO");
	close(fd);
	finish();
}

Test(protocol, hello_with_an_unterminated_or_unprintable_client_name_gets_einval)
{
	struct shmq_req_hello h = {.proto_version = SHMQ_PROTO_VERSION,
				   .layout_major = SHMQ_LAYOUT_MAJOR,
				   .layout_minor = SHMQ_LAYOUT_MINOR};
	int fd = t_raw_connect(d.sock);

	cr_assert(fd >= 0);
	memset(h.client_name, 'n', sizeof(h.client_name));
	/* A failed HELLO may be retried: expect() says a good one on the same connection. */
	expect(fd, build(SHMQ_OP_HELLO, &h, sizeof(h)), -1, -EINVAL, true, true,
	       "HELLO with an unterminated client name");
	close(fd);
	fd = t_raw_connect(d.sock);
	cr_assert(fd >= 0);
	strcpy(h.client_name, "bad\x1b[2Jname");
	expect(fd, build(SHMQ_OP_HELLO, &h, sizeof(h)), -1, -EINVAL, true, true,
	       "HELLO with control characters in the client name");
	close(fd);
	finish();
}

/* --- The asymmetric fence flag for clients that predate it --- */

/* OPEN "@name" with @flags on a session whose HELLO says layout minor @minor; map its memory. */
static const struct shmq_segment_hdr *open_as(int minor, const char *name, uint32_t flags,
					      int *ret_fd)
{
	struct shmq_req_hello h = {
		.proto_version = SHMQ_PROTO_VERSION,
		.layout_major = SHMQ_LAYOUT_MAJOR,
		.layout_minor = (uint16_t)minor,
		.client_name = "old-client",
	};
	struct shmq_req_open req;
	struct shmq_rep_open ro;
	struct t_reply *r = malloc(sizeof(*r));
	void *base;
	int fd = t_raw_connect(d.sock);

	cr_assert(r && fd >= 0);
	T_OK(t_raw_call(fd, SHMQ_OP_HELLO, &h, sizeof(h), r));
	t_raw_queue_req(&req, name, SHMQ_OPEN_CREATE | flags, 8, 64, SHMQ_QMODE_SPSC, 0600);
	T_OK(t_raw_call(fd, SHMQ_OP_OPEN, &req, sizeof(req), r));
	memcpy(&ro, r->body, sizeof(ro));
	cr_assert(r->fd >= 0);
	base = mmap(NULL, (size_t)ro.size, PROT_READ, MAP_SHARED, r->fd, 0);
	cr_assert(base != MAP_FAILED);
	close(r->fd);
	free(r);
	*ret_fd = fd;
	return base;
}

/*
 * A client from before layout 1.9 may skip the fence before its sleeper
 * check without knowing the segment flag that makes sleepers pay for it
 * (shm/fence.h): shmqd sets the flag for it at attach.  A current client's
 * attach leaves it to the client, and a view never publishes.
 */
Test(protocol, an_attach_by_a_client_older_than_layout_1_9_sets_the_asym_fence_flag)
{
	const struct shmq_segment_hdr *now, *view, *old;
	int fd1, fd2, fd3;

	now = open_as(SHMQ_LAYOUT_MINOR, "fence-now", SHMQ_OPEN_SEND, &fd1);
	cr_assert(eq(u32, atomic_load(&now->asym_fence), 0));
	cr_assert(eq(u32, now->layout_minor, SHMQ_LAYOUT_MINOR));
	view = open_as(1, "fence-now", SHMQ_OPEN_VIEW, &fd2);
	cr_assert(eq(u32, atomic_load(&view->asym_fence), 0), "a view set the flag");
	old = open_as(1, "fence-now", SHMQ_OPEN_RECV, &fd3);
	cr_assert(eq(u32, atomic_load(&old->asym_fence), 1),
		  "an old client's attach left it clear");
	cr_assert(eq(u32, atomic_load(&now->asym_fence), 1), "one segment, one flag");
	close(fd1);
	close(fd2);
	close(fd3);
}
