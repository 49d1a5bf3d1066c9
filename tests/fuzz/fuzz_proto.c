/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: the daemon's control-protocol path, from the raw
 * datagram to the reply, on a real in-process daemon state without sockets.
 *
 * Each input is a script of datagrams sent by up to four sessions:
 *
 *   byte 0        uids: bit k set -> session k is uid 1000 + k, else root
 *   then records  [u8 ctl][u16 len, little endian][len bytes]
 *       ctl bits 0..1  which session sends it
 *       ctl bit  2     fix up the header (magic, version, size, status,
 *                      reserved) so the fuzzer spends its time on bodies
 *       ctl bit  3     the datagram "carried" control data
 *       ctl bit  4     the datagram was truncated
 *       ctl bit  5     the session dies after this datagram (reaped as the
 *                      loop reaps: repair, undo, release, maybe free)
 *       ctl bit  6     a heartbeat tick runs after it (every validator;
 *                      each tick is 20 s after the last, so full ring checks
 *                      are due)
 *       ctl bit  7     not a datagram: a peer scribbles the bytes into the
 *                      oldest object's segment, at the offset in their first
 *                      two bytes (mod its size)
 *
 * Every datagram goes through shmqd_session_request(): request_check() and
 * shmqd_request_handle() exactly as a socket's would.  Sessions that
 * survive the script are reaped at the end and every object is freed, so
 * each run starts from an empty daemon and leaks show up in LeakSanitizer.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "daemon/config.h"
#include "daemon/log.h"
#include "daemon/shmqd.h"

#define N_SESSIONS 4

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct shmqd_config base_cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char arg0[] = "shmqd", arg1[] = "--config=/dev/null";
	char *av[] = {arg0, arg1, NULL};
	struct shmqd_args args;

	(void)argc;
	(void)argv;
	shmqd_log_init();
	if (shmqd_config_parse_argv(&args, 2, av) <= 0 || shmqd_config_load(&base_cfg, &args) < 0)
		abort();
	/* Small objects: each run creates real memfds, and speed is coverage. */
	base_cfg.max_slots = 64;
	base_cfg.max_slot_size = 4096;
	base_cfg.default_slots = 8;
	base_cfg.default_slot_size = 64;
	base_cfg.sessions_per_object = 4;
	base_cfg.max_objects = 16;
	base_cfg.max_attach_per_session = 8;
	base_cfg.max_memory_per_uid = 1024 * 1024;
	shmqd_log_set_level(getenv("SHMQ_FUZZ_LOG") ? LOG_DEBUG : LOG_EMERG);
	return 0;
}

static void daemon_init(struct shmqd *d)
{
	memset(d, 0, sizeof(*d));
	d->cfg = base_cfg;
	d->epfd = d->sigfd = d->listen_fd = -1;
	d->store.dirfd = d->store.reg_fd = -1; /* no store: persistence is a no-op */
	d->next_session_id = d->next_object_id = d->next_attach_id = 1;
	d->started_ns = shmqd_now_ns();
	list_init(&d->sessions);
	list_init(&d->rejected);
	list_init(&d->dead);
	list_init(&d->objects);
	list_init(&d->uids);
	strcpy(d->socket_path, "/nonexistent/shmqd.sock");
	d->rx = malloc(SHMQ_MSG_MAX);
	d->tx = malloc(SHMQ_MSG_MAX);
	if (!d->rx || !d->tx)
		abort();
}

static struct shmqd_session *session_new(struct shmqd *d, uint32_t uid)
{
	struct shmqd_session *s = calloc(1, sizeof(*s));

	if (!s)
		abort();
	s->fd = -1;
	s->pidfd = -1;
	s->pid = (int32_t)getpid();
	s->uid = uid;
	s->gid = uid;
	s->session_id = d->next_session_id++;
	list_init(&s->attachments);
	list_add_tail(&d->sessions, &s->link);
	d->n_sessions++;
	return s;
}

/* As the loop does: kill (moves it to d->dead), then reap before sleeping. */
static void session_end(struct shmqd *d, struct shmqd_session *s)
{
	shmqd_session_kill(d, s, "fuzz: ended");
	shmqd_session_reap_dead(d);
}

/* A client with write access writes @len bytes (offset first) into the oldest object. */
static void scribble(struct shmqd *d, const uint8_t *p, size_t len)
{
	struct shmqd_object *o;
	size_t off;

	if (list_is_empty(&d->objects) || len < 2)
		return;
	o = container_of(d->objects.next, struct shmqd_object, link);
	off = ((size_t)p[0] | (size_t)p[1] << 8) % o->size;
	for (size_t i = 2; i < len && off < o->size; i++, off++)
		((volatile unsigned char *)o->seg.base)[off] = p[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct shmqd_session *sess[N_SESSIONS] = {NULL};
	struct shmqd d;
	uint8_t uids;
	size_t at = 1;
	unsigned int body_sum = 0;
	uint64_t tick_ns = shmqd_now_ns();

	if (size < 1)
		return 0;
	uids = data[0];
	daemon_init(&d);

	while (at + 3 <= size) {
		uint8_t ctl = data[at];
		size_t len = (size_t)data[at + 1] | (size_t)data[at + 2] << 8;
		unsigned int k = ctl & 3;
		struct shmq_msg_hdr h;
		struct shmqd_reply rep;
		int r;

		at += 3;
		if (len > size - at)
			len = size - at;
		if (len > SHMQ_MSG_MAX)
			len = SHMQ_MSG_MAX;
		if (ctl & 128) {
			scribble(&d, data + at, len);
			at += len;
			continue;
		}
		if (!sess[k])
			sess[k] = session_new(&d, (uids >> k) & 1 ? 1000 + k : 0);
		memset(d.rx, 0, SHMQ_MSG_MAX);
		memcpy(d.rx, data + at, len);
		at += len;
		if ((ctl & 4) && len >= sizeof(h)) {
			struct shmq_msg_hdr *f = (struct shmq_msg_hdr *)d.rx;

			f->magic = SHMQ_PROTO_MAGIC;
			f->version = SHMQ_PROTO_VERSION;
			f->size = (uint32_t)len;
			f->status = 0;
			f->reserved = 0;
		}
		r = shmqd_session_request(&d, sess[k], len, ctl & 8, ctl & 16, &h, &rep);
		/* What send_reply() relies on: a sane status and a body that fits. */
		if (r > 0 || (r < 0 && rep.len) ||
		    rep.len > SHMQ_MSG_MAX - sizeof(struct shmq_msg_hdr))
			abort();
		/* Read the whole body as send_reply() would: ASan checks it lies in d.tx. */
		for (size_t i = 0; i < rep.len; i++)
			body_sum += ((const volatile unsigned char *)rep.body)[i];
		if (rep.fd_owned && rep.fd >= 0)
			close(rep.fd);
		if (ctl & 32) {
			session_end(&d, sess[k]);
			sess[k] = NULL;
		}
		if (ctl & 64) {
			tick_ns += UINT64_C(20) * 1000000000;
			shmqd_object_heartbeat(&d, tick_ns);
		}
	}

	for (unsigned int k = 0; k < N_SESSIONS; k++)
		if (sess[k])
			session_end(&d, sess[k]);
	/* Heartbeat (and its checks) over whatever the script left behind. */
	shmqd_object_heartbeat(&d, tick_ns + UINT64_C(20) * 1000000000);
	shmqd_session_free_all(&d);
	shmqd_object_free_all(&d);
	if (!list_is_empty(&d.uids) || d.n_objects || d.memory_bytes)
		abort(); /* every charge was returned */
	free(d.rx);
	free(d.tx);
	(void)body_sum;
	return 0;
}
