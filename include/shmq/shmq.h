/* SPDX-License-Identifier: MIT */
/*
 * libshmq: shared-memory queues and semaphores managed by shmqd.
 *
 * A client connects to the daemon (shmq_client_connect()), then opens
 * queues and semaphores by name.  The daemon creates each object's memory
 * and hands it over; from then on sends, receives, waits and posts are
 * atomic operations on shared memory: no system call and no daemon on the
 * data path.  The kernel is entered only to sleep or to wake a sleeper.
 *
 * Conventions:
 *  - every function that can fail returns int: >= 0 on success (it may be a
 *    count or a length), a negative errno on failure;
 *  - output parameters are named ret_* and come last; untouched on failure;
 *  - blocking calls take an absolute CLOCK_MONOTONIC deadline in
 *    nanoseconds (shmq_deadline_after(), SHMQ_FOREVER) and never return
 *    -EINTR;
 *  - a NULL handle or a NULL pointer where one is needed gives -EINVAL;
 *  - a control call (connect, open, unlink) waits at most 5 s per round
 *    trip for the daemon: -ETIMEDOUT, never a hang;
 *  - the library never logs and never calls exit().
 *
 * Errors used throughout (each function lists its own):
 *   -EAGAIN      would block: queue full or empty, semaphore at zero (try forms)
 *   -ETIMEDOUT   the deadline passed
 *   -EINVAL      bad argument
 *   -EMSGSIZE    message larger than the queue's slot size
 *   -ENOSPC      an object, memory or session limit was reached
 *   -EPROTO      daemon speaks another protocol or layout version
 *   -ECONNRESET  the daemon is gone (control calls only: data keeps flowing)
 *   -EBADMSG     shared memory failed validation (a corrupt or hostile peer)
 *   -EACCES      permission denied by the object's mode
 *   -ENOENT      no object of that name;  -EEXIST  it exists (exclusive create)
 *   -EOVERFLOW   semaphore post above its maximum
 *   -EBADF       the handle was not opened for that (a view, or no SHMQ_SEND/RECV)
 */
#ifndef SHMQ_SHMQ_H
#define SHMQ_SHMQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <shmq/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMQ_API __attribute__((visibility("default")))

/* No deadline: wait until the operation succeeds. */
#define SHMQ_FOREVER UINT64_MAX

struct shmq_client;
struct shmq_queue;
struct shmq_sem;

/* --- Open flags (shmq_queue_open(), shmq_sem_open()) --- */

#define SHMQ_CREATE    (1u << 0) /* create the object if it does not exist */
#define SHMQ_EXCL      (1u << 1) /* with SHMQ_CREATE: fail with -EEXIST if it exists */
#define SHMQ_SEND      (1u << 2) /* queue: this handle sends */
#define SHMQ_RECV      (1u << 3) /* queue: this handle receives */
#define SHMQ_VIEW      (1u << 4) /* read-only view: depth and counters only */
#define SHMQ_HUGEPAGES (1u << 5) /* create: back the queue with huge pages */

/* Queue modes (struct shmq_queue_attr.mode). */
#define SHMQ_MPMC 0 /* many producers, many consumers (default) */
#define SHMQ_SPSC 1 /* one producer handle, one consumer handle: the fast path */
#define SHMQ_MPSC 2
#define SHMQ_SPMC 3

/* Semaphore flags (struct shmq_sem_attr.flags). */
#define SHMQ_SEM_ATTR_BOUNDED (1u << 0) /* post above max fails with -EOVERFLOW */
#define SHMQ_SEM_ATTR_UNDO    (1u << 1) /* holds of a dead process are posted back */

/* struct shmq_queue_attr.flags */
#define SHMQ_QUEUE_NUMA (1u << 0) /* bind the memory to numa_node */

/**
 * struct shmq_queue_attr - how to create a queue.
 * @size:	sizeof(struct shmq_queue_attr), for extension
 * @n_slots:	capacity in messages, a power of two (0: daemon default)
 * @slot_size:	largest message in bytes (0: daemon default)
 * @mode:	SHMQ_MPMC, SHMQ_SPSC, SHMQ_MPSC or SHMQ_SPMC
 * @numa_node:	with SHMQ_QUEUE_NUMA in @flags: the node to bind the memory to
 * @perm:	permission bits like chmod (0: 0600)
 * @flags:	SHMQ_QUEUE_NUMA, or 0
 * @reserved:	zero
 *
 * A zero-initialised struct (with @size set) asks for every default and no
 * NUMA binding: node 0 is a real node, so binding needs an explicit flag.
 */
struct shmq_queue_attr {
	uint32_t size;
	uint32_t n_slots;
	uint32_t slot_size;
	uint32_t mode;
	int32_t numa_node;
	uint32_t perm;
	uint32_t flags;
	uint32_t reserved;
};

/**
 * struct shmq_sem_attr - how to create a semaphore.
 * @size:	sizeof(struct shmq_sem_attr)
 * @initial:	initial value
 * @max:	highest value with SHMQ_SEM_ATTR_BOUNDED
 * @flags:	SHMQ_SEM_ATTR_*
 * @perm:	permission bits (0: 0600)
 */
struct shmq_sem_attr {
	uint32_t size;
	uint32_t initial;
	uint32_t max;
	uint32_t flags;
	uint32_t perm;
};

/**
 * struct shmq_queue_stats - counters of one queue, summed over all sessions.
 */
struct shmq_queue_stats {
	uint32_t size;	   /* in: sizeof(struct shmq_queue_stats) */
	uint32_t depth;	   /* messages queued now */
	uint32_t capacity; /* n_slots */
	uint32_t slot_size;
	uint32_t high_water; /* deepest seen (sampled) */
	uint32_t repairs;
	uint64_t sent;
	uint64_t received;
	uint64_t full;
	uint64_t empty;
	uint64_t sleeps;
	uint64_t wakes;
};

/* --- Library --- */

/**
 * shmq_version() - the runtime library version, "MAJOR.MINOR.PATCH".
 *
 * Context: any thread.  Compare with SHMQ_VERSION_STRING (compile time).
 * Return: a static string.
 */
SHMQ_API const char *shmq_version(void);

/**
 * shmq_strerror() - describe a negative errno returned by libshmq.
 * @r:		a value returned by a libshmq function
 *
 * Context: any thread.
 * Return: a static string; "Success" for r >= 0.
 */
SHMQ_API const char *shmq_strerror(int r);

/**
 * shmq_deadline_after() - absolute deadline @timeout_ns from now.
 * @timeout_ns:	nanoseconds; saturates at SHMQ_FOREVER
 *
 * Context: any thread.
 * Return: CLOCK_MONOTONIC nanoseconds.
 */
SHMQ_API uint64_t shmq_deadline_after(uint64_t timeout_ns);

/* --- Client --- */

/**
 * shmq_client_connect() - connect to shmqd and say hello.
 * @path:	control socket; NULL for the default: $SHMQ_SOCKET, else
 *		/run/shmq/shmqd.sock for root, else $XDG_RUNTIME_DIR/shmq/shmqd.sock,
 *		else /tmp/shmq-$UID/shmqd.sock
 * @ret:	the new client
 *
 * Context: blocks for one round trip.  The client is thread-safe: control
 * calls from several threads are serialized.  A client and its handles
 * belong to the process that made them: a forked child connects its own.
 * Return: 0; -ENOENT or -ECONNREFUSED no daemon there; -EACCES; -EINVAL
 *         @path empty or too long for a socket address; -EPROTO version
 *         mismatch; -ENOSPC the daemon's client limit; -ECONNRESET the
 *         daemon hung up; -ETIMEDOUT no answer; -ENOMEM.
 */
SHMQ_API int shmq_client_connect(const char *path, struct shmq_client **ret);

/**
 * shmq_client_close() - disconnect.  Open handles must be closed first.
 * @c:		client, or NULL (no-op)
 *
 * Context: no other thread may use @c or its handles.
 * Return: 0; -EBUSY handles are still open (nothing was closed).
 */
SHMQ_API int shmq_client_close(struct shmq_client *c);

/**
 * shmq_unlink() - remove an object's name.
 * @c:		client
 * @name:	object name
 *
 * The memory lives on while anyone has the object open (like shm_unlink()).
 * Context: blocks for one round trip.
 * Return: 0; -ENOENT; -EACCES not the owner (or root); -EINVAL bad name;
 *         -ECONNRESET; -ETIMEDOUT.
 */
SHMQ_API int shmq_unlink(struct shmq_client *c, const char *name);

/* --- Queues --- */

/**
 * shmq_queue_open() - open (or create) a queue by name.
 * @c:		client
 * @name:	1-63 bytes of [A-Za-z0-9._-]
 * @flags:	SHMQ_SEND and/or SHMQ_RECV, or SHMQ_VIEW; SHMQ_CREATE,
 *		SHMQ_EXCL, SHMQ_HUGEPAGES
 * @attr:	with SHMQ_CREATE: geometry and permissions (NULL: defaults);
 *		ignored without SHMQ_CREATE
 * @ret:	the new handle
 *
 * Sending and receiving need write permission, a view needs read.  An SPSC
 * queue admits one sending and one receiving handle at a time (-EBUSY).
 * @attr->size must be at least the size of the struct this library knows;
 * a larger one (from a newer header) is accepted if the extra bytes are zero.
 * Context: blocks for one round trip; maps the queue.
 * Return: 0; -ENOENT; -EEXIST; -EACCES; -EINVAL bad name, flags, size or
 *         geometry, or the name is a semaphore; -EBUSY; -ENOSPC limit;
 *         -ENODEV no such NUMA node; -ENOMEM (also: no huge pages);
 *         -EPROTO; -EBADMSG the segment failed validation; -ECONNRESET;
 *         -ETIMEDOUT.
 */
SHMQ_API int shmq_queue_open(struct shmq_client *c, const char *name, unsigned int flags,
			     const struct shmq_queue_attr *attr, struct shmq_queue **ret);

/**
 * shmq_queue_close() - detach from a queue and free the handle.
 * @q:		queue, or NULL (no-op)
 *
 * An open reservation is cancelled (nothing is delivered); an open peek is
 * released (the message counts as received, as after shmq_queue_release()).
 * Context: no other thread may use @q.
 * Return: 0 (also when the daemon is gone: the mapping is dropped locally).
 */
SHMQ_API int shmq_queue_close(struct shmq_queue *q);

/**
 * shmq_queue_send() - copy one message into the queue; never blocks.
 * @q:		queue opened with SHMQ_SEND
 * @msg:	message bytes
 * @len:	0..shmq_queue_max_msg(q)
 *
 * A successful send happens-before the receive that returns the message.
 * Context: one sending thread per handle.
 * Return: 0; -EAGAIN full; -EMSGSIZE; -EBADF not opened for sending;
 *         -EBADMSG corrupt queue.
 */
SHMQ_API int shmq_queue_send(struct shmq_queue *q, const void *msg, size_t len);

/**
 * shmq_queue_send_wait() - send, waiting for room until @deadline_ns.
 * @q:		queue opened with SHMQ_SEND
 * @msg:	message bytes
 * @len:	0..shmq_queue_max_msg(q)
 * @deadline_ns: absolute CLOCK_MONOTONIC, or SHMQ_FOREVER
 *
 * Spins briefly, then sleeps on a futex; never returns -EINTR.
 * Context: one sending thread per handle; may block.
 * Return: 0; -ETIMEDOUT; -EMSGSIZE; -EBADF; -EBADMSG.
 */
SHMQ_API int shmq_queue_send_wait(struct shmq_queue *q, const void *msg, size_t len,
				  uint64_t deadline_ns);

/**
 * shmq_queue_recv() - take one message; never blocks.
 * @q:		queue opened with SHMQ_RECV
 * @buf:	where to copy it
 * @size:	bytes at @buf; a longer message is consumed and -EMSGSIZE returned
 *
 * Context: one receiving thread per handle.
 * Return: the message length (>= 0); -EAGAIN empty; -EMSGSIZE; -EBADF;
 *         -EBADMSG (the corrupt slot was consumed).
 */
SHMQ_API int shmq_queue_recv(struct shmq_queue *q, void *buf, size_t size);

/**
 * shmq_queue_recv_wait() - receive, waiting until @deadline_ns.
 * @q:		queue opened with SHMQ_RECV
 * @buf:	where to copy the message
 * @size:	bytes at @buf
 * @deadline_ns: absolute CLOCK_MONOTONIC, or SHMQ_FOREVER
 *
 * Context: one receiving thread per handle; may block.  An idle waiter
 * past its spin budget sleeps in the kernel and uses no CPU.
 * Return: the message length; -ETIMEDOUT; -EMSGSIZE; -EBADF; -EBADMSG.
 */
SHMQ_API int shmq_queue_recv_wait(struct shmq_queue *q, void *buf, size_t size,
				  uint64_t deadline_ns);

/**
 * shmq_queue_send_batch() - send up to @n messages, waking receivers once.
 * @q:		queue opened with SHMQ_SEND
 * @msgs:	the messages
 * @n:		how many
 *
 * Context: one sending thread per handle; never blocks.
 * Return: number sent (0 when full); -EMSGSIZE the first is too large
 *         (a later one stops the batch before it); -EBADF; -EBADMSG.
 */
SHMQ_API int shmq_queue_send_batch(struct shmq_queue *q, const struct iovec *msgs, unsigned int n);

/**
 * shmq_queue_recv_batch() - receive up to @n messages.
 * @q:		queue opened with SHMQ_RECV
 * @msgs:	iov_len is the buffer size on entry, the message length on return
 * @n:		how many
 *
 * Context: one receiving thread per handle; never blocks.
 * Return: number received (0 when empty); -EMSGSIZE/-EBADMSG for a bad
 *         first message (consumed); -EBADF.
 */
SHMQ_API int shmq_queue_recv_batch(struct shmq_queue *q, struct iovec *msgs, unsigned int n);

/**
 * shmq_queue_reserve() - zero-copy send: reserve the next slot.
 * @q:		queue opened with SHMQ_SEND
 * @deadline_ns: 0 for never block, else absolute CLOCK_MONOTONIC or SHMQ_FOREVER
 * @ret_buf:	where to write up to shmq_queue_max_msg(q) bytes
 *
 * Finish with shmq_queue_commit() or shmq_queue_cancel().  If the process
 * dies holding a reservation, the daemon turns it into a tombstone that
 * receivers skip.
 * Context: one sending thread per handle.
 * Return: 0; -EAGAIN full (deadline 0); -ETIMEDOUT; -EINVAL one is open;
 *         -EBADF.
 */
SHMQ_API int shmq_queue_reserve(struct shmq_queue *q, uint64_t deadline_ns, void **ret_buf);

/**
 * shmq_queue_commit() - publish the reserved slot with @len bytes.
 * @q:		queue with an open reservation
 * @len:	bytes written
 *
 * Return: 0; -EMSGSIZE (the reservation stays open); -EINVAL none open.
 */
SHMQ_API int shmq_queue_commit(struct shmq_queue *q, size_t len);

/**
 * shmq_queue_cancel() - give up the reserved slot; nothing is delivered.
 * @q:		queue with an open reservation
 *
 * Return: 0; -EINVAL none open.
 */
SHMQ_API int shmq_queue_cancel(struct shmq_queue *q);

/**
 * shmq_queue_peek() - zero-copy receive: read the next message in place.
 * @q:		queue opened with SHMQ_RECV
 * @deadline_ns: 0 for never block, else absolute CLOCK_MONOTONIC or SHMQ_FOREVER
 * @ret_msg:	the message bytes, valid until shmq_queue_release()
 *
 * The slot stays held by this handle until released; if the process dies
 * first, the message is delivered again to another receiver.
 * Context: one receiving thread per handle.
 * Return: the message length; -EAGAIN (deadline 0); -ETIMEDOUT;
 *         -EINVAL one is open; -EBADF; -EBADMSG.
 */
SHMQ_API int shmq_queue_peek(struct shmq_queue *q, uint64_t deadline_ns, const void **ret_msg);

/**
 * shmq_queue_release() - finish with the peeked message.
 * @q:		queue with an open peek
 *
 * Return: 0; -EINVAL none open.
 */
SHMQ_API int shmq_queue_release(struct shmq_queue *q);

/**
 * shmq_queue_max_msg() - the largest message the queue takes.
 * @q:		queue
 *
 * Return: slot size in bytes (> 0).
 */
SHMQ_API int shmq_queue_max_msg(const struct shmq_queue *q);

/**
 * shmq_queue_stats() - depth and counters, summed over every session.
 * @q:		queue (any flags, a view too)
 * @ret:	filled up to @ret->size bytes (set it to sizeof(*ret)); bytes
 *		past the fields this library knows are zeroed
 *
 * Context: any thread; reads shared memory only (a consistent-enough
 * snapshot, not an atomic one).
 * Return: 0; -EINVAL @ret->size smaller than this library's struct.
 */
SHMQ_API int shmq_queue_stats(const struct shmq_queue *q, struct shmq_queue_stats *ret);

/**
 * shmq_queue_set_spin() - spin budget before a blocking call sleeps.
 * @q:		queue
 * @spin_ns:	0 to sleep at once; default 20000
 *
 * Return: 0.
 */
SHMQ_API int shmq_queue_set_spin(struct shmq_queue *q, uint64_t spin_ns);

/* --- Semaphores --- */

/**
 * shmq_sem_open() - open (or create) a counting semaphore by name.
 * @c:		client
 * @name:	1-63 bytes of [A-Za-z0-9._-]
 * @flags:	0, or SHMQ_CREATE [| SHMQ_EXCL]; SHMQ_VIEW for read-only
 * @attr:	with SHMQ_CREATE: initial value, bound, flags (NULL: 0, unbounded)
 * @ret:	the new handle
 *
 * Waiting and posting need write permission.
 * Context: blocks for one round trip.
 * Return: as shmq_queue_open().
 */
SHMQ_API int shmq_sem_open(struct shmq_client *c, const char *name, unsigned int flags,
			   const struct shmq_sem_attr *attr, struct shmq_sem **ret);

/**
 * shmq_sem_close() - detach and free the handle.
 * @s:		semaphore, or NULL (no-op)
 *
 * Return: 0.
 */
SHMQ_API int shmq_sem_close(struct shmq_sem *s);

/**
 * shmq_sem_try_wait() - take one token if there is one; never blocks.
 * @s:		semaphore
 *
 * Return: 0; -EAGAIN zero; -EBADF a view.
 */
SHMQ_API int shmq_sem_try_wait(struct shmq_sem *s);

/**
 * shmq_sem_wait() - take one token, waiting until @deadline_ns.
 * @s:		semaphore
 * @deadline_ns: absolute CLOCK_MONOTONIC, or SHMQ_FOREVER
 *
 * A post happens-before the wait that takes its token.
 * Context: may block; never -EINTR.
 * Return: 0; -ETIMEDOUT; -EBADF.
 */
SHMQ_API int shmq_sem_wait(struct shmq_sem *s, uint64_t deadline_ns);

/**
 * shmq_sem_post() - add @n tokens, waking sleepers only if there are any.
 * @s:		semaphore
 * @n:		tokens, >= 1
 *
 * Return: 0; -EOVERFLOW above the bound (nothing posted); -EINVAL n == 0;
 *         -EBADF a view; -EBADMSG a peer keeps rewriting the word (hostile).
 */
SHMQ_API int shmq_sem_post(struct shmq_sem *s, unsigned int n);

/**
 * shmq_sem_value() - the current value (a snapshot).
 * @s:		semaphore
 *
 * Return: the value (>= 0).
 */
SHMQ_API int shmq_sem_value(const struct shmq_sem *s);

/* --- Administration: what lives in the daemon (shmqctl) --- */

/*
 * These calls read the daemon's registry (objects, clients, configuration)
 * and let the owner of a queue empty it.  Object metadata is not secret,
 * like /proc/sysvipc: listing and stat need no permission on an object.
 * Live figures (depth, counters, attached processes) are in the objects'
 * memory: shmq_view_open() maps it read-only, which needs read permission
 * like any other view.  Structs the library fills for a callback carry
 * their size in @size: a caller built against a newer header must not read
 * fields past it.
 */

struct shmq_view;

/* struct shmq_object_info.kind */
#define SHMQ_OBJECT_QUEUE 1
#define SHMQ_OBJECT_SEM	  2

/* struct shmq_object_info.flags */
#define SHMQ_OBJECT_UNLINKED  (1u << 0) /* name removed; memory lives while attached */
#define SHMQ_OBJECT_HUGEPAGES (1u << 1) /* backed by huge pages */

/* struct shmq_attach_info.role */
#define SHMQ_ATTACH_SEND (1u << 0) /* queue handle opened with SHMQ_SEND */
#define SHMQ_ATTACH_RECV (1u << 1) /* queue handle opened with SHMQ_RECV */
#define SHMQ_ATTACH_SEM	 (1u << 2) /* semaphore handle that waits and posts */
#define SHMQ_ATTACH_VIEW (1u << 3) /* read-only view (SHMQ_VIEW, shmq_view_open()) */

/**
 * struct shmq_daemon_status - the daemon at a glance.
 * @size:	in: sizeof(struct shmq_daemon_status)
 * @pid:	the daemon's pid
 * @version:	the daemon's release, "MAJOR.MINOR.PATCH"
 * @socket_path: the control socket it listens on
 * @n_sessions:	connected clients
 * @uptime_ns:	since the daemon started
 * @n_objects:	live objects, unlinked ones still attached included
 * @max_clients: the current client limit
 * @memory_bytes: all segments together
 */
struct shmq_daemon_status {
	uint32_t size;
	int32_t pid;
	char version[16];
	char socket_path[108];
	uint32_t n_sessions;
	uint64_t uptime_ns;
	uint32_t n_objects;
	uint32_t max_clients;
	uint64_t memory_bytes;
};

/**
 * struct shmq_object_info - one object as the daemon records it.
 * @size:	bytes of the struct that are filled (stat: in, like @ret->size)
 * @kind:	SHMQ_OBJECT_QUEUE or SHMQ_OBJECT_SEM
 * @name:	NUL-terminated
 * @object_id:	unique within the daemon's lifetime
 * @memory_size: segment bytes
 * @created_realtime_ns: CLOCK_REALTIME at creation
 * @owner_uid:	the creator's uid
 * @owner_gid:	the creator's primary gid
 * @perm:	permission bits, 0777 mask
 * @flags:	SHMQ_OBJECT_*
 * @n_attached:	handles open on it, all clients, views included
 * @numa_node:	the node its memory is bound to, or -1
 * @n_slots:	queue: capacity in messages
 * @slot_size:	queue: largest message in bytes
 * @mode:	queue: SHMQ_MPMC, SHMQ_SPSC, SHMQ_MPSC or SHMQ_SPMC
 * @sem_initial: semaphore: value at creation
 * @sem_max:	semaphore: the bound with SHMQ_SEM_ATTR_BOUNDED, else 0
 * @sem_flags:	semaphore: SHMQ_SEM_ATTR_*
 */
struct shmq_object_info {
	uint32_t size;
	uint32_t kind;
	char name[64];
	uint64_t object_id;
	uint64_t memory_size;
	uint64_t created_realtime_ns;
	uint32_t owner_uid;
	uint32_t owner_gid;
	uint32_t perm;
	uint32_t flags;
	uint32_t n_attached;
	int32_t numa_node;
	uint32_t n_slots;
	uint32_t slot_size;
	uint32_t mode;
	uint32_t sem_initial;
	uint32_t sem_max;
	uint32_t sem_flags;
};

/**
 * struct shmq_client_info - one connected client (a session of the daemon).
 * @size:	bytes of the struct that are filled
 * @pid:	the client's pid (0 if not visible in the daemon's pid namespace)
 * @session_id:	unique within the daemon's lifetime
 * @connected_ns: CLOCK_MONOTONIC when the daemon accepted the connection
 * @uid:	the client's uid
 * @gid:	the client's primary gid
 * @n_attached:	handles this client has open
 * @reserved:	zero
 * @client_name: the program name it said hello with (may be empty)
 */
struct shmq_client_info {
	uint32_t size;
	int32_t pid;
	uint64_t session_id;
	uint64_t connected_ns;
	uint32_t uid;
	uint32_t gid;
	uint32_t n_attached;
	uint32_t reserved;
	char client_name[32];
};

/**
 * struct shmq_attach_info - one handle open on an object.
 * @size:	bytes of the struct that are filled
 * @role:	SHMQ_ATTACH_*
 * @session_id:	the client that holds it (struct shmq_client_info)
 * @attach_id:	unique within the daemon's lifetime
 * @pid:	the client's pid
 * @uid:	the client's uid
 * @record:	its session record in the segment (docs/shm-layout.md), where
 *		its counters are; UINT32_MAX for a view, which has none
 * @reserved:	zero
 * @client_name: the client's program name
 */
struct shmq_attach_info {
	uint32_t size;
	uint32_t role;
	uint64_t session_id;
	uint64_t attach_id;
	int32_t pid;
	uint32_t uid;
	uint32_t record;
	uint32_t reserved;
	char client_name[32];
};

/* Callbacks of the listing calls: a negative return stops the listing and is returned. */
typedef int shmq_object_fn(void *arg, const struct shmq_object_info *info);
typedef int shmq_client_fn(void *arg, const struct shmq_client_info *info);
typedef int shmq_attach_fn(void *arg, const struct shmq_attach_info *info);
typedef int shmq_config_fn(void *arg, const char *name, const char *value);

/**
 * shmq_daemon_status() - the daemon's version, pid, uptime and counts.
 * @c:		client
 * @ret:	filled up to @ret->size bytes (set it to sizeof(*ret)); bytes
 *		past the fields this library knows are zeroed
 *
 * Context: blocks for one round trip.
 * Return: 0; -EINVAL @ret->size smaller than this library's struct;
 *         -ECONNRESET; -ETIMEDOUT; -EPROTO a malformed reply.
 */
SHMQ_API int shmq_daemon_status(struct shmq_client *c, struct shmq_daemon_status *ret);

/**
 * shmq_daemon_config() - the daemon's configuration in force.
 * @c:		client
 * @fn:		called once per option, in the daemon's table order, with
 *		its name and its value as the config file would spell it
 * @arg:	passed to @fn
 *
 * The strings are valid during the call only.
 * Context: blocks for one round trip; @fn runs without any lock held.
 * Return: the number of options; @fn's negative return; -EINVAL;
 *         -EOPNOTSUPP a daemon without this call; -ECONNRESET;
 *         -ETIMEDOUT; -EPROTO; -ENOMEM.
 */
SHMQ_API int shmq_daemon_config(struct shmq_client *c, shmq_config_fn *fn, void *arg);

/**
 * shmq_daemon_clients() - every connected client, in connection order.
 * @c:		client
 * @fn:		called once per client
 * @arg:	passed to @fn
 *
 * Pages through the daemon's list, one round trip per 128 clients; a
 * client that connects or leaves meanwhile may be missed or seen twice.
 * Context: blocks; @fn runs without any lock held and may call libshmq.
 * Return: the number of clients reported; @fn's negative return;
 *         -EINVAL; -ECONNRESET; -ETIMEDOUT; -EPROTO; -ENOMEM.
 */
SHMQ_API int shmq_daemon_clients(struct shmq_client *c, shmq_client_fn *fn, void *arg);

/**
 * shmq_object_list() - every live object, in creation order.
 * @c:		client
 * @fn:		called once per object, unlinked ones still attached included
 * @arg:	passed to @fn
 *
 * Pages as shmq_daemon_clients() does, with the same caveat.
 * Context: blocks; @fn runs without any lock held and may call libshmq.
 * Return: the number of objects reported; @fn's negative return; -EINVAL;
 *         -ECONNRESET; -ETIMEDOUT; -EPROTO; -ENOMEM.
 */
SHMQ_API int shmq_object_list(struct shmq_client *c, shmq_object_fn *fn, void *arg);

/**
 * shmq_object_stat() - one object by name.
 * @c:		client
 * @name:	object name
 * @ret:	filled up to @ret->size bytes (set it to sizeof(*ret)); bytes
 *		past the fields this library knows are zeroed
 *
 * Context: blocks for one round trip.
 * Return: 0; -ENOENT no object has that name (an unlinked one has none);
 *         -EINVAL bad name or @ret->size too small; -ECONNRESET;
 *         -ETIMEDOUT; -EPROTO.
 */
SHMQ_API int shmq_object_stat(struct shmq_client *c, const char *name,
			      struct shmq_object_info *ret);

/**
 * shmq_object_attachments() - every handle open on an object.
 * @c:		client
 * @name:	object name
 * @fn:		called once per handle, views included
 * @arg:	passed to @fn
 *
 * Context: blocks; @fn runs without any lock held and may call libshmq.
 * Return: the number of handles reported; @fn's negative return; -ENOENT;
 *         -EINVAL bad name; -EOPNOTSUPP a daemon without this call;
 *         -ECONNRESET; -ETIMEDOUT; -EPROTO; -ENOMEM.
 */
SHMQ_API int shmq_object_attachments(struct shmq_client *c, const char *name, shmq_attach_fn *fn,
				     void *arg);

/**
 * shmq_queue_purge() - drop every message queued in a queue.
 * @c:		client
 * @name:	queue name
 *
 * The daemon receives and discards the messages like one more receiver,
 * at most one lap of the ring, so a producer that keeps sending cannot keep
 * it busy; the dropped messages count as received in the queue's
 * statistics.  Only the owner (or root) may purge.  The one receiver of an
 * SPSC or MPSC queue keeps its read index to itself, so while it is
 * attached the purge is refused; multi-consumer queues are purged while
 * their receivers run.
 * Context: blocks for one round trip.
 * Return: the number of messages dropped (>= 0); -ENOENT; -EINVAL bad
 *         name or a semaphore; -EACCES not the owner (or root); -EBUSY an
 *         SPSC or MPSC queue whose receiver is attached; -EOPNOTSUPP a
 *         daemon without this call; -ECONNRESET; -ETIMEDOUT; -EPROTO.
 */
SHMQ_API int shmq_queue_purge(struct shmq_client *c, const char *name);

/**
 * shmq_view_open() - map any object read-only, for tools.
 * @c:		client
 * @name:	object name (a queue or a semaphore)
 * @ret:	the new view
 *
 * Like shmq_queue_open() or shmq_sem_open() with SHMQ_VIEW, for a caller
 * that reads the segment itself (its format is the documented, versioned
 * layout of docs/shm-layout.md).  Needs read permission.  The segment's
 * header has been validated; everything after it is written by other
 * processes and must be range-checked by the reader.
 * Context: blocks for one or two round trips.
 * Return: 0; -ENOENT; -EACCES; -EINVAL bad name; -EBADMSG the segment failed
 *         validation; -EPROTO; -ENOSPC; -ECONNRESET; -ETIMEDOUT; -ENOMEM.
 */
SHMQ_API int shmq_view_open(struct shmq_client *c, const char *name, struct shmq_view **ret);

/**
 * shmq_view_memory() - where a view's segment is mapped (PROT_READ).
 * @v:		view
 * @ret_base:	the first byte of the segment
 * @ret_size:	its size in bytes
 *
 * The mapping is valid until shmq_view_close().
 * Return: 0; -EINVAL.
 */
SHMQ_API int shmq_view_memory(const struct shmq_view *v, const void **ret_base, size_t *ret_size);

/**
 * shmq_view_close() - unmap and detach a view.
 * @v:		view, or NULL (no-op)
 *
 * Return: 0.
 */
SHMQ_API int shmq_view_close(struct shmq_view *v);

#ifdef __cplusplus
}
#endif

#endif /* SHMQ_SHMQ_H */
