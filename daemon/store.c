/* SPDX-License-Identifier: MIT */
/*
 * Persistence: what lets a restarted shmqd re-adopt every object, with its
 * messages, and every attachment of every client still alive.
 *
 * DESIGN
 *
 * Two places can hold segments across the death of the daemon process:
 *
 *   state-directory = DIR  every segment is a file DIR/obj-<id> and the
 *                          registry is DIR/registry, on a tmpfs (RAM): they
 *                          survive any process death, and a reboot clears
 *                          them, like the memfds they replace.
 *   fd-store = yes         segments stay sealed memfds; each one, and the
 *                          registry memfd, is handed to systemd with
 *                          FDSTORE=1 and FDNAME=obj-<id> / registry, and
 *                          systemd passes them back (LISTEN_FDS with names)
 *                          when it restarts the daemon.
 *
 * The registry (store.h) is the daemon's private copy of everything a
 * segment header also says (a client can scribble on the header), plus the
 * attachments: which process holds which session record.  Its writes follow
 * the order of the operation they record, so that a SIGKILL between any two
 * steps leaves a state the next start can finish:
 *
 *   create  segment formatted -> (fd store: FDSTORE=1) -> object record
 *           A segment without a record is an orphan: deleted at start.
 *   free    object record freed -> file unlinked / FDSTOREREMOVE=1
 *   attach  session record claimed in the segment -> attach record -> reply
 *           A claimed segment record without an attach record was never
 *           granted (no reply went out): repaired and released at start.
 *   detach  attach record freed -> segment record repaired and released
 *
 * At start (shmqd_store_open()), every object record is re-mapped and
 * validated against its segment; every attach record becomes an attachment
 * of an "adopted" session, one per session id, which watches its process
 * through a pidfd.  A process that died while the daemon was down (or whose
 * pid now names another process: the start time differs) is repaired at
 * once, exactly as if the daemon had seen it die.  A live client takes its
 * attachments back with REATTACH on its next control call (libclient
 * reconnects by itself); until then, the adopted session keeps them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "daemon/kind.h"
#include "daemon/log.h"
#include "daemon/shmqd.h"
#include "shm/atomic.h"

#define REG_FILE "registry"
#define REG_NAME "registry" /* FDNAME in the fd store */

/* --- Record validation (also the fuzzers' entry points) --- */

int shmqd_reg_header_check(const struct shmqd_reg_header *h, uint64_t file_size)
{
	if (file_size < sizeof(*h) || h->magic != SHMQD_REG_MAGIC ||
	    h->version != SHMQD_REG_VERSION || h->record_size != SHMQD_REG_RECORD_SIZE ||
	    h->n_records == 0 || h->n_records > SHMQD_REG_RECORDS_MAX ||
	    (uint64_t)(h->n_records + 1) * SHMQD_REG_RECORD_SIZE > file_size)
		return -EBADMSG;
	return 0;
}

int shmqd_reg_object_check(const struct shmqd_reg_object *r)
{
	if (!r->object_id || !shmqd_kind(r->kind) || r->size < sizeof(struct shmq_segment_hdr) ||
	    (r->mode & ~0777u) ||
	    (load_relaxed(&r->flags) & ~(SHMQD_REG_UNLINKED | SHMQD_REG_HUGETLB)) ||
	    memchr(r->name, '\0', sizeof(r->name)) == NULL || !shmq__name_is_valid(r->name))
		return -EBADMSG;
	return 0;
}

int shmqd_reg_attach_check(const struct shmqd_reg_attach *r)
{
	const uint32_t roles = SHMQ_OPEN_GRANTS;

	if (!r->attach_id || !r->object_id || !load_relaxed(&r->session_id) || r->pid <= 0 ||
	    !r->flags || (r->flags & ~roles) ||
	    ((r->flags & SHMQ_OPEN_VIEW) != 0) != (r->session_index == UINT32_MAX) ||
	    (r->session_index != UINT32_MAX && r->session_index >= SHMQ_SESSIONS_MAX) ||
	    memchr(r->client_name, '\0', sizeof(r->client_name)) == NULL)
		return -EBADMSG;
	return 0;
}

uint64_t shmqd_pid_start_time(int32_t pid)
{
	char path[32], buf[1024], *p;
	unsigned long long start = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%" PRId32 "/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* comm can hold spaces and parentheses: fields resume after the last ')'. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1,
			 " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
			 "%*d %*d %llu",
			 &start) != 1)
		return 0;
	return start;
}

/* --- The registry --- */

static struct shmqd_reg_record *record_at(const struct shmqd_store *st, uint32_t i)
{
	return (struct shmqd_reg_record *)((char *)st->reg +
					   SHMQD_REG_RECORD_SIZE * (uint64_t)(i + 1));
}

static uint64_t reg_bytes(uint32_t n_records)
{
	return SHMQD_REG_RECORD_SIZE * ((uint64_t)n_records + 1);
}

/* Map @n_records of the registry (growing the file if it is smaller). */
static int reg_map(struct shmqd_store *st, uint32_t n_records)
{
	uint64_t size = reg_bytes(n_records);
	struct stat sb;
	void *p;

	if (fstat(st->reg_fd, &sb) < 0)
		return log_errno(-errno, "stat of the registry");
	if ((uint64_t)sb.st_size < size && ftruncate(st->reg_fd, (off_t)size) < 0)
		return log_errno(-errno, "growing the registry to %" PRIu64 " bytes", size);
	if (st->reg)
		p = mremap(st->reg, reg_bytes(st->n_records), size, MREMAP_MAYMOVE);
	else
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, st->reg_fd, 0);
	if (p == MAP_FAILED)
		return log_errno(-errno, "mapping the registry (%" PRIu64 " bytes)", size);
	st->reg = p;
	return 0;
}

static int free_stack_fill(struct shmqd_store *st, uint32_t from, uint32_t to)
{
	uint32_t *stack = realloc(st->free_stack, sizeof(*stack) * to);

	if (!stack)
		return log_errno(-ENOMEM, "allocating the registry's free list");
	st->free_stack = stack;
	/* Highest first, so the lowest index is handed out first: a compact file. */
	for (uint32_t i = to; i > from; i--)
		if (load_relaxed(&record_at(st, i - 1)->type) == SHMQD_REG_FREE)
			st->free_stack[st->n_free++] = i - 1;
	return 0;
}

static int reg_grow(struct shmqd_store *st)
{
	uint32_t n = st->n_records * 2;
	int r;

	if (st->n_records >= SHMQD_REG_RECORDS_MAX)
		return log_client_errno(LOG_WARNING, -ENOSPC, "the registry is full");
	r = reg_map(st, n);
	if (r < 0)
		return r;
	/* The header's capacity is written only once the file is that large. */
	st->reg->n_records = n;
	r = free_stack_fill(st, st->n_records, n);
	st->n_records = n;
	return r;
}

static int record_alloc(struct shmqd_store *st, uint32_t *ret)
{
	int r;

	if (!st->n_free) {
		r = reg_grow(st);
		if (r < 0)
			return r;
		if (!st->n_free)
			return -ENOSPC;
	}
	*ret = st->free_stack[--st->n_free];
	return 0;
}

/* R1: the body is complete before the type says the record exists. */
static void record_publish(struct shmqd_store *st, uint32_t i, uint32_t type, const void *body,
			   size_t size)
{
	struct shmqd_reg_record *rec = record_at(st, i);

	memset(&rec->u, 0, sizeof(rec->u));
	memcpy(&rec->u, body, size);
	store_release(&rec->type, type); /* R1 release; read back by the next start */
}

static void record_free(struct shmqd_store *st, uint32_t i)
{
	store_release(&record_at(st, i)->type, SHMQD_REG_FREE);
	st->free_stack[st->n_free++] = i; /* never overflows: it holds every record */
}

void shmqd_store_sync_ids(struct shmqd *d)
{
	struct shmqd_reg_header *h = d->store.reg;

	if (!h)
		return;
	store_relaxed(&h->next_object_id, d->next_object_id);
	store_relaxed(&h->next_attach_id, d->next_attach_id);
	store_relaxed(&h->next_session_id, d->next_session_id);
}

/* --- Segment files and fd-store entries --- */

static void obj_file_name(char *buf, size_t size, uint64_t object_id)
{
	snprintf(buf, size, "obj-%" PRIu64, object_id);
}

static int fdstore_put(int fd, const char *name)
{
	char msg[96];
	int r;

	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", name);
	r = sd_pid_notify_with_fds(0, 0, msg, &fd, 1);
	if (r < 0)
		return log_client_errno(LOG_WARNING, r, "handing %s to systemd's fd store", name);
	if (r == 0)
		return log_client_errno(LOG_WARNING, -ENOTCONN,
					"fd-store: $NOTIFY_SOCKET is not set; cannot keep %s",
					name);
	return 0;
}

static void fdstore_remove(const char *name)
{
	char msg[96];
	int r;

	snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	r = sd_notify(0, msg);
	if (r < 0)
		log_warning_errno(r, "removing %s from systemd's fd store", name);
}

static int passed_take(struct shmqd_store *st, const char *name)
{
	for (uint32_t i = 0; i < st->n_passed; i++) {
		if (st->passed[i].fd >= 0 && !strcmp(st->passed[i].name, name)) {
			int fd = st->passed[i].fd;

			st->passed[i].fd = -1;
			return fd;
		}
	}
	return -ENOENT;
}

static bool is_store_name(const char *name)
{
	return !strcmp(name, REG_NAME) || !strncmp(name, "obj-", 4);
}

int shmqd_store_take_passed(struct shmqd *d, int n_fds, char **names)
{
	struct shmqd_store *st = &d->store;

	for (int i = 0; i < n_fds; i++) {
		struct shmqd_passed_fd *p;

		if (!names || !names[i] || !is_store_name(names[i]))
			continue;
		p = realloc(st->passed, sizeof(*p) * (st->n_passed + 1));
		if (!p)
			return log_errno(-ENOMEM, "keeping the descriptors systemd passed");
		st->passed = p;
		p[st->n_passed].fd = SD_LISTEN_FDS_START + i;
		snprintf(p[st->n_passed].name, sizeof(p->name), "%s", names[i]);
		st->n_passed++;
		/* CLOEXEC: the daemon execs nothing, but a descriptor never leaks. */
		fcntl(SD_LISTEN_FDS_START + i, F_SETFD, FD_CLOEXEC);
		free(names[i]);
		names[i] = NULL;
	}
	return 0;
}

int shmqd_store_object_add(struct shmqd *d, struct shmqd_object *o)
{
	struct shmqd_store *st = &d->store;
	struct shmqd_reg_object r = {
		.object_id = o->object_id,
		.size = o->size,
		.created_realtime_ns = o->created_realtime_ns,
		.kind = o->kind,
		.flags = (o->unlinked ? SHMQD_REG_UNLINKED : 0) |
			 (o->hugetlb ? SHMQD_REG_HUGETLB : 0),
		.numa_node = o->numa_node,
		.owner_uid = o->owner_uid,
		.owner_gid = o->owner_gid,
		.mode = o->mode,
		.geom = o->geom,
	};
	char name[32];
	uint32_t i;
	int ret;

	o->reg = UINT32_MAX;
	if (st->kind == SHMQD_STORE_NONE)
		return 0;
	ret = record_alloc(st, &i);
	if (ret < 0)
		return ret;
	memcpy(r.name, o->name, sizeof(r.name));
	obj_file_name(name, sizeof(name), o->object_id);
	if (st->kind == SHMQD_STORE_FDSTORE) {
		ret = fdstore_put(o->memfd, name);
		if (ret < 0) {
			st->free_stack[st->n_free++] = i;
			return ret;
		}
	}
	shmqd_store_sync_ids(d);
	record_publish(st, i, SHMQD_REG_OBJECT, &r, sizeof(r));
	o->reg = i;
	return 0;
}

void shmqd_store_object_update(struct shmqd *d, const struct shmqd_object *o)
{
	struct shmqd_reg_record *rec;

	if (d->store.kind == SHMQD_STORE_NONE || o->reg == UINT32_MAX)
		return;
	rec = record_at(&d->store, o->reg);
	store_relaxed(&rec->u.obj.flags, (o->unlinked ? SHMQD_REG_UNLINKED : 0) |
						 (o->hugetlb ? SHMQD_REG_HUGETLB : 0));
}

void shmqd_store_object_remove(struct shmqd *d, struct shmqd_object *o)
{
	struct shmqd_store *st = &d->store;
	char name[32];

	if (st->kind == SHMQD_STORE_NONE)
		return;
	if (o->reg != UINT32_MAX)
		record_free(st, o->reg);
	o->reg = UINT32_MAX;
	obj_file_name(name, sizeof(name), o->object_id);
	if (st->kind == SHMQD_STORE_DIR) {
		if (unlinkat(st->dirfd, name, 0) < 0 && errno != ENOENT)
			log_warning_errno(-errno, "removing %s from the state directory", name);
	} else {
		fdstore_remove(name);
	}
}

int shmqd_store_attach_add(struct shmqd *d, const struct shmqd_session *s, struct shmqd_attach *a)
{
	struct shmqd_store *st = &d->store;
	struct shmqd_reg_attach r = {
		.attach_id = a->attach_id,
		.object_id = a->obj->object_id,
		.session_id = s->session_id,
		.pid_start = s->pid_start,
		.pid = s->pid,
		.uid = s->uid,
		.gid = s->gid,
		.flags = a->flags,
		.session_index = a->session_index,
	};
	uint32_t i;
	int ret;

	a->reg = UINT32_MAX;
	if (st->kind == SHMQD_STORE_NONE)
		return 0;
	/*
	 * A process we cannot identify later (no pid in our namespace) could
	 * never take its attachment back; it still gets one, unrecorded, and a
	 * restart treats it as gone.
	 */
	if (s->pid <= 0)
		return 0;
	ret = record_alloc(st, &i);
	if (ret < 0)
		return ret;
	memcpy(r.client_name, s->client_name, sizeof(r.client_name));
	r.client_name[sizeof(r.client_name) - 1] = '\0';
	shmqd_store_sync_ids(d);
	record_publish(st, i, SHMQD_REG_ATTACH, &r, sizeof(r));
	a->reg = i;
	return 0;
}

void shmqd_store_attach_update(struct shmqd *d, const struct shmqd_session *s,
			       const struct shmqd_attach *a)
{
	if (d->store.kind == SHMQD_STORE_NONE || a->reg == UINT32_MAX)
		return;
	store_relaxed(&record_at(&d->store, a->reg)->u.att.session_id, s->session_id);
}

void shmqd_store_attach_remove(struct shmqd *d, struct shmqd_attach *a)
{
	if (d->store.kind == SHMQD_STORE_NONE || a->reg == UINT32_MAX)
		return;
	record_free(&d->store, a->reg);
	a->reg = UINT32_MAX;
}

/* --- Start: open the store and re-adopt what it holds --- */

/*
 * The state directory must be ours and closed to everyone else: it holds
 * every segment, writable.  Created 0700 if missing (its parent must
 * exist: a tmpfs mount point or /run/...).
 */
static int dir_open(struct shmqd *d)
{
	const char *path = d->cfg.state_directory;
	struct statfs sf;
	struct stat sb;
	int fd;

	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return log_errno(-errno, "creating the state directory %s", path);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return log_errno(-errno, "opening the state directory %s", path);
	if (fstat(fd, &sb) < 0) {
		close(fd);
		return log_errno(-errno, "stat %s", path);
	}
	if (sb.st_uid != geteuid() || (sb.st_mode & 077)) {
		close(fd);
		return log_errno(-EPERM,
				 "state directory %s must be owned by uid %u with mode 0700 "
				 "(it is uid %u, mode %04o)",
				 path, (unsigned)geteuid(), (unsigned)sb.st_uid,
				 (unsigned)(sb.st_mode & 07777));
	}
	if (fstatfs(fd, &sf) == 0 && sf.f_type != TMPFS_MAGIC)
		log_notice("state directory %s is not on a tmpfs: segments are written back to "
			   "its disk, and outlive a reboot",
			   path);
	d->store.dirfd = fd;
	return 0;
}

static int reg_open(struct shmqd *d, bool *ret_new)
{
	struct shmqd_store *st = &d->store;
	struct stat sb;
	int fd;

	*ret_new = false;
	if (st->kind == SHMQD_STORE_DIR) {
		fd = openat(st->dirfd, REG_FILE, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 && errno == ENOENT) {
			fd = openat(st->dirfd, REG_FILE,
				    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
			*ret_new = true;
		}
		if (fd < 0)
			return log_errno(-errno, "opening %s/%s", d->cfg.state_directory, REG_FILE);
	} else {
		fd = passed_take(st, REG_NAME);
		if (fd < 0) {
			fd = memfd_create("shmqd-registry", MFD_CLOEXEC);
			if (fd < 0)
				return log_errno(-errno, "memfd_create for the registry");
			*ret_new = true;
		}
	}
	st->reg_fd = fd;
	/* One daemon per state: a second one (another socket path) must not adopt it too. */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return log_errno(errno == EWOULDBLOCK ? -EBUSY : -errno,
				 "the registry is in use by another shmqd");
	if (fstat(fd, &sb) < 0)
		return log_errno(-errno, "stat of the registry");
	if (!S_ISREG(sb.st_mode))
		return log_errno(-EBADMSG, "the registry is not a regular file");
	if (sb.st_size == 0)
		*ret_new = true;
	if (*ret_new) {
		int r = reg_map(st, SHMQD_REG_RECORDS_MIN);

		if (r < 0)
			return r;
		st->n_records = SHMQD_REG_RECORDS_MIN;
		memset(st->reg, 0, reg_bytes(st->n_records));
		st->reg->magic = SHMQD_REG_MAGIC;
		st->reg->version = SHMQD_REG_VERSION;
		st->reg->record_size = SHMQD_REG_RECORD_SIZE;
		st->reg->n_records = st->n_records;
		/* Handed over only once it is a valid (empty) registry. */
		if (st->kind == SHMQD_STORE_FDSTORE)
			return fdstore_put(fd, REG_NAME);
		return 0;
	}
	{
		struct shmqd_reg_header h;
		uint32_t n;
		int r;

		if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
			return log_errno(-EBADMSG, "the registry is shorter than its header");
		r = shmqd_reg_header_check(&h, (uint64_t)sb.st_size);
		if (r < 0)
			return log_errno(r, "the registry's header is corrupt; refusing to start "
					    "over it (move it away to start empty)");
		n = h.n_records;
		r = reg_map(st, n);
		if (r < 0)
			return r;
		st->n_records = n;
	}
	return 0;
}

void shmqd_store_drop(struct shmqd *d, uint32_t reg, const char *why)
{
	log_warning("registry record %" PRIu32 ": %s; dropped", reg, why);
	record_free(&d->store, reg);
}

/* Pass 1 of an adoption (daemon/adopt.c): objects. */
void shmqd_store_each_object(struct shmqd *d,
			     int (*fn)(struct shmqd *d, const struct shmqd_reg_object *r, int fd,
				       uint32_t reg))
{
	struct shmqd_store *st = &d->store;

	for (uint32_t i = 0; i < st->n_records; i++) {
		struct shmqd_reg_record *rec = record_at(st, i);
		struct shmqd_reg_object ro;
		char name[32];
		int fd, r;

		if (load_acquire(&rec->type) != SHMQD_REG_OBJECT) /* R1 acquire */
			continue;
		memcpy(&ro, &rec->u.obj, sizeof(ro));
		if (shmqd_reg_object_check(&ro) < 0) {
			shmqd_store_drop(d, i, "an object record is corrupt");
			continue;
		}
		obj_file_name(name, sizeof(name), ro.object_id);
		if (st->kind == SHMQD_STORE_DIR)
			fd = openat(st->dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		else
			fd = passed_take(st, name);
		if (fd < 0) {
			log_warning("%s '%s' (id %" PRIu64 "): its segment %s is gone; dropped",
				    shmqd_kind_name(ro.kind), ro.name, ro.object_id, name);
			record_free(st, i);
			continue;
		}
		r = fn(d, &ro, fd, i);
		if (r < 0) {
			/* Logged; keep the bytes for a post-mortem, out of the way. */
			if (st->kind == SHMQD_STORE_DIR) {
				char bad[48];

				snprintf(bad, sizeof(bad), "corrupt-%s", name);
				renameat(st->dirfd, name, st->dirfd, bad);
			} else {
				fdstore_remove(name);
			}
			close(fd);
			record_free(st, i);
		}
	}
}

int shmqd_store_each_attach(struct shmqd *d,
			    int (*fn)(struct shmqd *d, const struct shmqd_reg_attach *r,
				      uint32_t reg, void *ctx),
			    void *ctx)
{
	struct shmqd_store *st = &d->store;

	for (uint32_t i = 0; i < st->n_records; i++) {
		struct shmqd_reg_record *rec = record_at(st, i);
		struct shmqd_reg_attach ra;
		int r;

		if (load_acquire(&rec->type) != SHMQD_REG_ATTACH) /* R1 acquire */
			continue;
		memcpy(&ra, &rec->u.att, sizeof(ra));
		if (shmqd_reg_attach_check(&ra) < 0) {
			shmqd_store_drop(d, i, "an attachment record is corrupt");
			continue;
		}
		r = fn(d, &ra, i, ctx);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Segments in the directory (or the fd store) that no record names. */
void shmqd_store_remove_orphans(struct shmqd *d, bool (*known_fn)(const void *ctx, uint64_t id),
				const void *ctx)
{
	struct shmqd_store *st = &d->store;

	if (st->kind == SHMQD_STORE_DIR) {
		int fd = dup(st->dirfd);
		DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
		struct dirent *e;

		if (!dir) {
			if (fd >= 0)
				close(fd);
			return;
		}
		while ((e = readdir(dir))) {
			unsigned long long id;
			char name[32];
			bool known;

			if (strncmp(e->d_name, "obj-", 4))
				continue;
			/* Ours only in the exact form obj_file_name() writes; found by id (sorted). */
			known = sscanf(e->d_name + 4, "%llu", &id) == 1 && known_fn;
			if (known) {
				obj_file_name(name, sizeof(name), id);
				known = !strcmp(name, e->d_name) && known_fn(ctx, id);
			}
			if (!known) {
				log_notice("state directory: %s has no registry record (a create "
					   "or free was cut short); removed",
					   e->d_name);
				unlinkat(st->dirfd, e->d_name, 0);
			}
		}
		closedir(dir);
		return;
	}
	for (uint32_t i = 0; i < st->n_passed; i++) {
		if (st->passed[i].fd < 0)
			continue;
		log_notice("fd store: %s has no registry record; released", st->passed[i].name);
		fdstore_remove(st->passed[i].name);
		close(st->passed[i].fd);
		st->passed[i].fd = -1;
	}
}

int shmqd_store_open(struct shmqd *d)
{
	struct shmqd_store *st = &d->store;
	bool is_new;
	uint64_t v;
	int r;

	st->dirfd = st->reg_fd = -1;
	if (d->cfg.state_directory[0])
		st->kind = SHMQD_STORE_DIR;
	else if (d->cfg.fd_store)
		st->kind = SHMQD_STORE_FDSTORE;
	else
		st->kind = SHMQD_STORE_NONE;
	if (st->kind == SHMQD_STORE_NONE) {
		for (uint32_t i = 0; i < st->n_passed; i++) {
			log_warning("systemd passed %s, but fd-store is off; releasing it",
				    st->passed[i].name);
			close(st->passed[i].fd);
		}
		st->n_passed = 0;
		return 0;
	}
	if (st->kind == SHMQD_STORE_FDSTORE && !getenv("NOTIFY_SOCKET"))
		return log_errno(-EINVAL,
				 "fd-store = yes needs systemd ($NOTIFY_SOCKET is not set; "
				 "use state-directory outside systemd)");
	if (st->kind == SHMQD_STORE_DIR) {
		r = dir_open(d);
		if (r < 0)
			return r;
	}
	r = reg_open(d, &is_new);
	if (r < 0)
		return r;
	r = free_stack_fill(st, 0, st->n_records);
	if (r < 0)
		return r;
	v = load_relaxed(&st->reg->next_object_id);
	if (v > d->next_object_id)
		d->next_object_id = v;
	v = load_relaxed(&st->reg->next_attach_id);
	if (v > d->next_attach_id)
		d->next_attach_id = v;
	v = load_relaxed(&st->reg->next_session_id);
	if (v > d->next_session_id)
		d->next_session_id = v;
	if (is_new) {
		log_info("persistence: %s (empty)", st->kind == SHMQD_STORE_DIR
							    ? d->cfg.state_directory
							    : "systemd's fd store");
		shmqd_store_remove_orphans(d, NULL, NULL);
		return 0;
	}
	return 1; /* records to adopt: shmqd_adopt() */
}

void shmqd_store_close(struct shmqd *d)
{
	struct shmqd_store *st = &d->store;

	/* Everything stays where it is: the next start re-adopts it. */
	if (st->reg)
		munmap(st->reg, reg_bytes(st->n_records));
	st->reg = NULL;
	if (st->reg_fd >= 0)
		close(st->reg_fd);
	if (st->dirfd >= 0)
		close(st->dirfd);
	st->reg_fd = st->dirfd = -1;
	for (uint32_t i = 0; i < st->n_passed; i++)
		if (st->passed[i].fd >= 0)
			close(st->passed[i].fd);
	free(st->passed);
	free(st->free_stack);
	st->passed = NULL;
	st->free_stack = NULL;
	st->n_passed = st->n_free = 0;
	st->kind = SHMQD_STORE_NONE;
}
