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
 *    -EINTR.  A deadline of 0 is the call's try form: it never waits, and
 *    where it would have to it returns -EAGAIN with nothing changed; a
 *    deadline that passes while waiting (any other past one included)
 *    gives -ETIMEDOUT.  shmq_cond_wait() and shmq_barrier_wait(), whose
 *    waiting is their effect, take 0 as a past deadline: -ETIMEDOUT;
 *  - a NULL handle or a NULL pointer where one is needed gives -EINVAL;
 *  - a control call (connect, open, unlink) waits at most 5 s per round
 *    trip for the daemon: -ETIMEDOUT, never a hang;
 *  - the library never logs and never calls exit().
 *
 * Errors used throughout (each function lists its own):
 *   -EAGAIN      would block: queue full or empty, semaphore at zero (try
 *                forms, and deadline 0)
 *   -ETIMEDOUT   the deadline passed
 *   -EINVAL      bad argument
 *   -EMSGSIZE    message larger than the queue's slot size
 *   -ENOSPC      an object, memory or session limit was reached
 *   -EPROTO      daemon speaks another protocol or layout version
 *   -ECONNRESET  the daemon is gone and did not come back within the call's
 *                time (control calls only: data keeps flowing; the next call
 *                reconnects and takes every open handle back)
 *   -EBADMSG     shared memory failed validation (a corrupt or hostile peer)
 *   -EACCES      permission denied by the object's mode
 *   -ENOENT      no object of that name;  -EEXIST  it exists (exclusive create)
 *   -EOVERFLOW   semaphore post above its maximum
 *   -EBADF       the handle was not opened for that (a view, or no SHMQ_SEND/RECV)
 *   -EBUSY       still in use (open handles, waiters, a request in flight)
 *   -ECANCELED   an asynchronous wait or a future was cancelled
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
struct shmq_event;
struct shmq_lock;

/* --- Open flags (shmq_queue_open(), shmq_sem_open(), shmq_event_open()) --- */

#define SHMQ_CREATE (1u << 0) /* create the object if it does not exist */
#define SHMQ_EXCL   (1u << 1) /* with SHMQ_CREATE: fail with -EEXIST if it exists */
#define SHMQ_SEND   (1u << 2) /* queue: this handle sends */
#define SHMQ_RECV   (1u << 3) /* queue: this handle receives */
/*
 * Read-only view: the whole segment mapped PROT_READ, messages included, so
 * read permission on a queue lets a user read what is queued (as with SysV
 * message queues); a view can change nothing.
 */
#define SHMQ_VIEW      (1u << 4)
#define SHMQ_HUGEPAGES (1u << 5) /* create: back the queue with huge pages */
/*
 * With SHMQ_CREATE: open an existing object whatever its geometry (the
 * attr shapes only a new one).  Without it, SHMQ_CREATE with an attr
 * opens an existing object only if it has the attr's shape (since 1.1).
 */
#define SHMQ_ANY_GEOMETRY (1u << 6)

/* Queue modes (struct shmq_queue_attr.mode). */
#define SHMQ_MPMC 0 /* many producers, many consumers (default) */
#define SHMQ_SPSC 1 /* one producer handle, one consumer handle: the fast path */
#define SHMQ_MPSC 2
#define SHMQ_SPMC 3

/* Semaphore flags (struct shmq_sem_attr.flags). */
#define SHMQ_SEM_ATTR_BOUNDED (1u << 0) /* post above max fails with -EOVERFLOW */
/*
 * Holds of a dead process are posted back: the tokens it took and did not
 * post back itself.  A post by a process beyond what it holds adds new
 * tokens (a producer's post), never returns another's: a token taken by A
 * and posted by B is posted again if A then dies.  Hand a token from
 * process to process on a semaphore without this flag.  (SysV's semadj
 * would instead revert B's post when B exits, which takes a producer's
 * tokens away with it.)
 */
#define SHMQ_SEM_ATTR_UNDO (1u << 1)

/* struct shmq_queue_attr.flags */
#define SHMQ_QUEUE_NUMA	    (1u << 0) /* bind the memory to numa_node */
#define SHMQ_QUEUE_JOINABLE (1u << 1) /* JoinableQueue: shmq_queue_task_done(), _join() */

/**
 * struct shmq_queue_attr - how to create a queue.
 * @size:	sizeof(struct shmq_queue_attr), for extension
 * @n_slots:	capacity in messages, a power of two (0: daemon default)
 * @slot_size:	largest message in bytes (0: daemon default)
 * @mode:	SHMQ_MPMC, SHMQ_SPSC, SHMQ_MPSC or SHMQ_SPMC
 * @numa_node:	with SHMQ_QUEUE_NUMA in @flags: the node to bind the memory to
 * @perm:	permission bits like chmod (0: 0600)
 * @flags:	SHMQ_QUEUE_NUMA, SHMQ_QUEUE_JOINABLE, or 0
 * @max_msg:	the largest message, if larger than @slot_size (0: @slot_size),
 *		up to SHMQ_MSG_SIZE_LIMIT (256 MiB).  Messages above the slot
 *		size go through an arena of twice the largest message after the
 *		slots, in one piece (a peek sees them contiguous); each costs a
 *		slot too.  Needs @slot_size >= 16.
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
	uint32_t max_msg;
};

#define SHMQ_MSG_SIZE_LIMIT (256u << 20) /* struct shmq_queue_attr.max_msg */

/**
 * struct shmq_sem_attr - how to create a semaphore.
 * @size:	sizeof(struct shmq_sem_attr)
 * @initial:	initial value (at most 2147483647; 1048575 with SHMQ_SEM_ATTR_UNDO)
 * @max:	highest value with SHMQ_SEM_ATTR_BOUNDED (the same limits); must
 *		be 0 without it (-EINVAL: a bound that would be ignored)
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
 * struct shmq_event_attr - how to create an event.
 * @size:	sizeof(struct shmq_event_attr)
 * @initial:	0 clear, 1 set
 * @perm:	permission bits (0: 0600)
 */
struct shmq_event_attr {
	uint32_t size;
	uint32_t initial;
	uint32_t perm;
};

/**
 * struct shmq_queue_stats - counters of one queue, summed over all sessions.
 *
 * depth comes from the ring's indices and is always exact.  The counters
 * are each a store after the operation they count, by the process that
 * did it: exact while nobody dies, and a process killed between a publish
 * (or a consume) and its count leaves sent (or received) short by that
 * operation, a batch by up to its size: never over.  A peek counts as
 * received at its release, so a re-delivery after a death is counted once.
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
 * shmq_last_error() - why this thread's last failed control call failed.
 *
 * The daemon's reason, as its log gives it ("4337664 more bytes would
 * exceed max-memory-per-uid (0 in use of 1048576)", "'s1' is of kind
 * semaphore"), or the library's for a request it refused itself; an
 * empty string when the failure came with none (a daemon before 1.1, a
 * lost connection) or the last call succeeded.  Print it after
 * shmq_strerror().
 * Context: thread-local; since 1.1.
 * Return: a string owned by the library, valid until this thread's next
 *         control call.
 */
SHMQ_API const char *shmq_last_error(void);

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
 *		/run/shmq/shmqd.sock for root, else $XDG_RUNTIME_DIR/shmq/shmqd.sock
 *		(/tmp/shmq-$UID/shmqd.sock without XDG_RUNTIME_DIR) and, when no
 *		daemon listens there, the system daemon's /run/shmq/shmqd.sock
 *		(systemd/shmqd.socket lets group shmq connect)
 * @ret:	the new client
 *
 * Context: blocks for one round trip.  The client is thread-safe: control
 * calls from several threads are serialized.  A client and its handles
 * belong to the process that made them: a forked child connects its own.
 * If the daemon dies before it answers, the connect waits for one to come
 * up on the same socket and says HELLO to it, within the 5 s budget.
 * If the daemon restarts, the next control call on @c reconnects to @path
 * and takes every open handle back (REATTACH); see libshmq(3).
 * A failure leaves shmq_last_error() naming the socket tried and the
 * likely fix ("shmqd at PATH: no daemon listens there: start one ..."),
 * or the daemon's own reason for refusing.
 * Return: 0; -ENOENT or -ECONNREFUSED no daemon there; -EACCES; -EINVAL
 *         @path empty or too long for a socket address; -EPROTO version
 *         mismatch; -ENOSPC the daemon's client limit; -ECONNRESET the
 *         daemon hung up; -ETIMEDOUT no answer; -ENOMEM.
 */
SHMQ_API int shmq_client_connect(const char *path, struct shmq_client **ret);

/**
 * shmq_client_socket_path() - the control socket shmq_client_connect() uses.
 * @path:	as for shmq_client_connect(): NULL for the default rules
 * @buf:	receives the path, NUL-terminated
 * @size:	bytes at @buf; 108 always suffice
 *
 * Resolves the defaults the same way, including the fall-back to the system
 * daemon's socket when the per-user one does not exist, so that an error
 * message can name the socket a connect tried.
 *
 * Context: any thread; never blocks.
 * Return: the length of the path; -EINVAL @buf NULL or @size 0, or @path
 *         empty or too long for a socket address; -ERANGE @size too small.
 */
SHMQ_API int shmq_client_socket_path(const char *path, char *buf, size_t size);

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
 * The name goes at once; the memory lives on while anyone has the object
 * open (like shm_unlink()).  What the handles already open see: nothing
 * changes.  Every kind keeps working for them -- sends and receives,
 * waits (a blocked call is not woken by the unlink, and a later send or
 * post still reaches it), asynchronous waits, and the daemon's repair
 * when one of their processes dies -- until the last handle closes, and
 * then the memory is freed.  A new object created under the name is
 * another object: nothing crosses between the two.  To make the users of
 * an object stop, tell them first: shut a queue down
 * (shmq_queue_shutdown_name()), close a pipe's ends, abort a barrier.
 * Context: blocks for one round trip.
 * Return: 0; -ENOENT; -EACCES not the owner (or root); -EINVAL bad name;
 *         -ECONNRESET; -ETIMEDOUT.
 */
SHMQ_API int shmq_unlink(struct shmq_client *c, const char *name);

/* --- Queues --- */

/*
 * Every send, reserve, receive and peek below, blocking or not, batch or
 * not, also returns -EPIPE once the queue is shut down: sends at once,
 * receives when nothing is left to drain (shmq_queue_shutdown()).
 */

/**
 * shmq_queue_open() - open (or create) a queue by name.
 * @c:		client
 * @name:	1-63 bytes of [A-Za-z0-9._-]
 * @flags:	SHMQ_SEND and/or SHMQ_RECV, or SHMQ_VIEW; SHMQ_CREATE,
 *		SHMQ_EXCL, SHMQ_ANY_GEOMETRY, SHMQ_HUGEPAGES (these with
 *		SHMQ_CREATE only: -EINVAL without, where they could only be
 *		ignored)
 * @attr:	with SHMQ_CREATE: geometry and permissions (NULL: defaults);
 *		ignored without SHMQ_CREATE
 * @ret:	the new handle
 *
 * SHMQ_CREATE with an @attr asks for its shape, whichever process comes
 * first (this holds for every kind's open): an existing object is opened
 * only if it has that shape after defaults (a queue's slots, slot size,
 * mode, flags, max_msg and huge pages; a semaphore's bound and flags; a
 * lock's flags; a barrier's parties; a pipe's slots, slot size and
 * flags), else -EEXIST.  A starting state (a semaphore's or an event's
 * initial value), a placement (the NUMA node) and the permissions are no
 * shape: the existing object's stay.  With SHMQ_ANY_GEOMETRY, or a NULL
 * @attr, an existing object is opened as it is.  Permissions: @attr->perm
 * 0 means the default, 0600; an object no one may open (mode 0000) cannot
 * be asked for.
 *
 * Sending and receiving need write permission, a view needs read.  An SPSC
 * queue admits one sending and one receiving handle at a time (-EBUSY).
 * @attr->size must be at least the size of the struct this library knows;
 * a larger one (from a newer header) is accepted if the extra bytes are zero.
 * Context: blocks for one round trip; maps the queue.
 * Return: 0; -ENOENT; -EEXIST it exists and SHMQ_EXCL was given, or it has
 *         another shape (above); -EACCES; -EINVAL bad name, flags, size or
 *         geometry, or the name is a semaphore; -EBUSY; -ENOSPC limit;
 *         -ENODEV no such NUMA node; -ENOMEM (also: no huge pages);
 *         -EMFILE the process has no free descriptor for the queue's memory
 *         (the daemon's grant is given back); -EPROTO; -EBADMSG the segment
 *         failed validation; -ECONNRESET; -ETIMEDOUT.
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
 * Return: 0 (also when the daemon is gone: the mapping is dropped locally);
 *         -EBUSY an asynchronous waiter, watch or future still uses @q
 *         (nothing was closed).
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
 *         -EINVAL @msg NULL with @len > 0, or a reservation is open on @q
 *         (shmq_queue_reserve()); -EBADMSG corrupt queue.
 */
SHMQ_API int shmq_queue_send(struct shmq_queue *q, const void *msg, size_t len);

/**
 * shmq_queue_send_wait() - send, waiting for room until @deadline_ns.
 * @q:		queue opened with SHMQ_SEND
 * @msg:	message bytes
 * @len:	0..shmq_queue_max_msg(q)
 * @deadline_ns: 0 for never block, else absolute CLOCK_MONOTONIC or SHMQ_FOREVER
 *
 * Spins briefly, then sleeps on a futex; never returns -EINTR.
 * Context: one sending thread per handle; may block.
 * Return: 0; -EAGAIN (deadline 0); -ETIMEDOUT; -EMSGSIZE; -EBADF; -EINVAL as shmq_queue_send();
 *         -EBADMSG.
 */
SHMQ_API int shmq_queue_send_wait(struct shmq_queue *q, const void *msg, size_t len,
				  uint64_t deadline_ns);

/**
 * shmq_queue_sendv() - send one message gathered from several buffers.
 * @q:		queue opened with SHMQ_SEND
 * @parts:	@n buffers, copied one after the other into the message
 * @n:		number of parts; 0 sends an empty message
 * @deadline_ns: 0 for never block, else absolute CLOCK_MONOTONIC or SHMQ_FOREVER
 *
 * As shmq_queue_send_wait() of the parts joined (a header and a body,
 * say), without joining them first: the bytes are copied once, straight
 * into the slot or the arena, and a receiver gets the whole message or
 * nothing of it.
 * Context: one sending thread per handle; may block.
 * Return: as shmq_queue_send_wait(); -EMSGSIZE the parts add up to more
 *         than shmq_queue_max_msg(q); -EINVAL @parts NULL with @n > 0, or
 *         a part with a NULL base and a length.
 */
SHMQ_API int shmq_queue_sendv(struct shmq_queue *q, const struct iovec *parts, unsigned int n,
			      uint64_t deadline_ns);

/**
 * shmq_queue_recv() - take one message; never blocks.
 * @q:		queue opened with SHMQ_RECV
 * @buf:	where to copy it
 * @size:	bytes at @buf; a longer message is consumed and -EMSGSIZE returned
 *
 * Context: one receiving thread per handle.
 * Return: the message length (>= 0); -EAGAIN empty; -EMSGSIZE; -EBADF;
 *         -EINVAL @buf NULL with @size > 0, or a peek is open on @q
 *         (shmq_queue_peek()); -EBADMSG (the corrupt slot was consumed).
 */
SHMQ_API int shmq_queue_recv(struct shmq_queue *q, void *buf, size_t size);

/**
 * shmq_queue_recv_wait() - receive, waiting until @deadline_ns.
 * @q:		queue opened with SHMQ_RECV
 * @buf:	where to copy the message
 * @size:	bytes at @buf
 * @deadline_ns: 0 for never block, else absolute CLOCK_MONOTONIC or SHMQ_FOREVER
 *
 * Context: one receiving thread per handle; may block.  An idle waiter
 * past its spin budget sleeps in the kernel and uses no CPU.
 * Return: the message length; -EAGAIN (deadline 0); -ETIMEDOUT; -EMSGSIZE; -EBADF; -EINVAL as
 *         shmq_queue_recv(); -EBADMSG.
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
 *         (a later one stops the batch before it); -EINVAL @msgs NULL with
 *         @n > 0, or an iov_base NULL with iov_len > 0 (nothing sent);
 *         -EBADF; -EBADMSG.
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
 *         first message (consumed); -EINVAL @msgs NULL with @n > 0, or an
 *         iov_base NULL with iov_len > 0 (nothing received); -EBADF.
 */
SHMQ_API int shmq_queue_recv_batch(struct shmq_queue *q, struct iovec *msgs, unsigned int n);

/* shmq_queue_shutdown() flags */
#define SHMQ_SHUTDOWN_IMMEDIATE (1u << 0) /* receivers get nothing more, queued or not */

/**
 * shmq_queue_shutdown() - shut the queue down (Python 3.13's Queue.shutdown()).
 * @q:		queue opened with SHMQ_SEND or SHMQ_RECV (any role)
 * @flags:	0: receivers drain what is queued; SHMQ_SHUTDOWN_IMMEDIATE: they
 *		get nothing more
 *
 * From then on every send and reserve fails with -EPIPE; every receive,
 * peek and batch receive returns what is still queued (not with
 * SHMQ_SHUTDOWN_IMMEDIATE) and then -EPIPE, the end of the queue.  Every
 * thread blocked on the queue, in any process, and every asynchronous
 * waiter and poller watch on it is woken, and its attempt returns -EPIPE.
 * A message sent before the shutdown (in happens-before order) is never
 * lost to a drain; a send racing with it may go either way.  Irreversible:
 * remove the queue and create it again.  A drain shutdown may be made
 * immediate later.  Messages left by an immediate shutdown stay in the
 * segment until the queue is removed.
 * Context: any thread; never blocks.
 * Return: 0; -EINVAL @flags; -EBADF a view.
 */
SHMQ_API int shmq_queue_shutdown(struct shmq_queue *q, unsigned int flags);

/**
 * shmq_queue_is_shut_down() - whether the queue is shut down (a snapshot).
 * @q:		queue (a view may look)
 *
 * Return: 0 open; 1 shut down, draining; 2 shut down immediately; -EINVAL.
 */
SHMQ_API int shmq_queue_is_shut_down(const struct shmq_queue *q);

/*
 * Joinable queues (multiprocessing.JoinableQueue): a queue created with
 * SHMQ_QUEUE_JOINABLE counts every message sent as an unfinished task,
 * until a receiver that took it calls shmq_queue_task_done();
 * shmq_queue_join() waits for the count to reach zero.  Every receive
 * counts (copy, batch, peek at its release); a message a receive consumed
 * without handing it over (-EMSGSIZE, -EBADMSG) is done at once.  A handle
 * may mark done only the tasks it took: one call more is -EINVAL (Python's
 * ValueError).  When a handle is closed, or its process dies, the tasks it
 * took and had not marked done are counted done (the daemon settles them,
 * exactly, however the process died); a message it was sending when it
 * died is either delivered and counted or not counted at all.  A
 * half-read message of a dead receiver is redelivered and stays
 * unfinished.  At most SHMQ_QUEUE_UNFINISHED_LIMIT tasks may be unfinished:
 * a send past that fails with -EOVERFLOW.  An immediate shutdown makes
 * join() return -EPIPE (what was queued will never be done); a drain
 * shutdown does not change it.
 */
#define SHMQ_QUEUE_UNFINISHED_LIMIT 1048575

/**
 * shmq_queue_task_done() - one task this handle received is finished.
 * @q:		joinable queue opened with SHMQ_RECV
 *
 * Return: 0; -EINVAL not joinable, or this handle holds no unfinished task;
 *         -EBADF no SHMQ_RECV; -EBUSY a peer scribbled an owner tag on the
 *         count.
 */
SHMQ_API int shmq_queue_task_done(struct shmq_queue *q);

/**
 * shmq_queue_join() - wait until every task sent has been marked done.
 * @q:		joinable queue opened with SHMQ_SEND and/or SHMQ_RECV
 * @deadline_ns: 0 for never block, else absolute CLOCK_MONOTONIC or SHMQ_FOREVER
 *
 * Return: 0 no task is unfinished; -EAGAIN some are (deadline 0);
 *         -ETIMEDOUT; -EPIPE the queue was shut down immediately; -EINVAL
 *         not joinable; -EBADF a view.
 */
SHMQ_API int shmq_queue_join(struct shmq_queue *q, uint64_t deadline_ns);

/**
 * shmq_queue_unfinished() - tasks sent and not yet marked done (a snapshot).
 * @q:		joinable queue
 *
 * Return: the count; -EINVAL not joinable.
 */
SHMQ_API int shmq_queue_unfinished(const struct shmq_queue *q);

/**
 * shmq_queue_send_batch_wait() - send up to @n messages, waiting for room for one.
 * @q:		queue opened with SHMQ_SEND
 * @msgs:	the messages
 * @n:		how many, at least 1
 * @deadline_ns: 0 for never block, else absolute CLOCK_MONOTONIC or SHMQ_FOREVER
 *
 * Spins briefly, then sleeps, until at least one message fits; then sends
 * as many as fit, in order, waking receivers once.  A producer with a
 * burst sends it with one call, and one wake-up, per run of free slots.
 * Context: one sending thread per handle; may block; never -EINTR.
 * Return: number sent (1..n); -EAGAIN (deadline 0); -ETIMEDOUT; -EMSGSIZE the first is too large;
 *         -EINVAL @msgs NULL, @n == 0, an iov_base NULL with iov_len > 0,
 *         or a reservation is open; -EBADF; -EBADMSG.
 */
SHMQ_API int shmq_queue_send_batch_wait(struct shmq_queue *q, const struct iovec *msgs,
					unsigned int n, uint64_t deadline_ns);

/**
 * shmq_queue_recv_batch_wait() - receive up to @n messages, waiting for one.
 * @q:		queue opened with SHMQ_RECV
 * @msgs:	iov_len is the buffer size on entry, the message length on return
 * @n:		how many, at least 1
 * @deadline_ns: 0 for never block, else absolute CLOCK_MONOTONIC or SHMQ_FOREVER
 *
 * Spins briefly, then sleeps, until a message is there; then takes what is
 * queued, up to @n, waking senders once: a consumer drains a burst with one
 * call.
 * Context: one receiving thread per handle; may block; never -EINTR.
 * Return: number received (1..n); -EAGAIN (deadline 0); -ETIMEDOUT; -EMSGSIZE/-EBADMSG for a bad
 *         first message (consumed); -EINVAL as shmq_queue_send_batch_wait(),
 *         or a peek is open; -EBADF.
 */
SHMQ_API int shmq_queue_recv_batch_wait(struct shmq_queue *q, struct iovec *msgs, unsigned int n,
					uint64_t deadline_ns);

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
 * Return: bytes (> 0): the queue's max_msg if it was created with one,
 *         else its slot size.
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
 * @flags:	0, or SHMQ_CREATE [| SHMQ_EXCL or SHMQ_ANY_GEOMETRY]; SHMQ_VIEW for read-only
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
 * Return: 0; -EBUSY an asynchronous waiter, watch or future still uses @s
 *         (nothing was closed).
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
 * @deadline_ns: 0 for never block, else absolute CLOCK_MONOTONIC or SHMQ_FOREVER
 *
 * A post happens-before the wait that takes its token.
 * Context: may block; never -EINTR.
 * Return: 0; -EAGAIN (deadline 0); -ETIMEDOUT; -EBADF.
 */
SHMQ_API int shmq_sem_wait(struct shmq_sem *s, uint64_t deadline_ns);

/**
 * shmq_sem_post() - add @n tokens, waking sleepers only if there are any.
 * @s:		semaphore
 * @n:		tokens, >= 1
 *
 * On an undo semaphore (SHMQ_SEM_ATTR_UNDO) a post waits while another
 * process's operation on it is half done: a few instructions, or, if that
 * process died there, until the daemon repairs it (microseconds).
 * Return: 0; -EOVERFLOW above the bound (nothing posted); -EINVAL n == 0;
 *         -EBADF a view; -EBADMSG a peer keeps rewriting the word (hostile);
 *         -EBUSY undo: a process died mid-operation and no daemon repaired
 *         it within 2 s (nothing posted).
 */
SHMQ_API int shmq_sem_post(struct shmq_sem *s, unsigned int n);

/**
 * shmq_sem_value() - the current value (a snapshot).
 * @s:		semaphore
 *
 * Return: the value (>= 0).
 */
SHMQ_API int shmq_sem_value(const struct shmq_sem *s);

/* --- Events --- */

/*
 * An event is threading.Event between processes: a flag that
 * shmq_event_set() raises, waking every waiter, and shmq_event_clear()
 * lowers.  A waiter that was waiting when a set happened returns 0 even if
 * a clear followed before it looked: a set and a clear racing never lose a
 * wake-up.  Asynchronous waits (shmq_waiter_new(), shmq_poller_add() on
 * shmq_event_object(), SHMQ_POLL_RECV) are level-triggered on the flag:
 * ready while it is set, so a set that a clear undoes before the waiter
 * looks may go unseen there; use shmq_event_wait() where that matters.
 */

/**
 * shmq_event_open() - open (or create) an event by name.
 * @c:		client
 * @name:	1-63 bytes of [A-Za-z0-9._-]
 * @flags:	0, or SHMQ_CREATE [| SHMQ_EXCL or SHMQ_ANY_GEOMETRY]; SHMQ_VIEW for read-only
 * @attr:	with SHMQ_CREATE: the initial state (NULL: clear)
 * @ret:	the new handle
 *
 * Setting, clearing and waiting need write permission.
 * Context: blocks for one round trip.
 * Return: as shmq_queue_open(); -EINVAL @attr->initial is not 0 or 1.
 */
SHMQ_API int shmq_event_open(struct shmq_client *c, const char *name, unsigned int flags,
			     const struct shmq_event_attr *attr, struct shmq_event **ret);

/**
 * shmq_event_close() - detach and free the handle.
 * @e:		event, or NULL (no-op)
 *
 * Return: 0; -EBUSY an asynchronous waiter or watch still uses @e.
 */
SHMQ_API int shmq_event_close(struct shmq_event *e);

/**
 * shmq_event_set() - raise the flag and wake every waiter.
 * @e:		event
 *
 * A set happens-before every wait that returns because of it.  Enters the
 * kernel only when somebody sleeps.
 * Context: any thread; never blocks.
 * Return: 1 raised now; 0 already set; -EINVAL; -EBADF a view.
 */
SHMQ_API int shmq_event_set(struct shmq_event *e);

/**
 * shmq_event_clear() - lower the flag.
 * @e:		event
 *
 * Return: 1 lowered now; 0 already clear; -EINVAL; -EBADF a view.
 */
SHMQ_API int shmq_event_clear(struct shmq_event *e);

/**
 * shmq_event_is_set() - the flag now (a snapshot).
 * @e:		event (a view may look)
 *
 * Return: 1 set; 0 clear; -EINVAL.
 */
SHMQ_API int shmq_event_is_set(const struct shmq_event *e);

/**
 * shmq_event_try_wait() - whether a wait would return at once; never blocks.
 * @e:		event
 *
 * Return: 0 set; -EAGAIN clear; -EINVAL; -EBADF a view.
 */
SHMQ_API int shmq_event_try_wait(struct shmq_event *e);

/**
 * shmq_event_wait() - wait until the flag is set, or until @deadline_ns.
 * @e:		event
 * @deadline_ns: 0 for never block, else absolute CLOCK_MONOTONIC or SHMQ_FOREVER
 *
 * Returns 0 at once if the flag is set; else spins briefly, then sleeps,
 * and returns 0 once a set happened since the call began, whatever
 * clear() did afterwards.
 * Context: may block; never -EINTR.
 * Return: 0; -EAGAIN (deadline 0); -ETIMEDOUT; -EINVAL; -EBADF a view.
 */
SHMQ_API int shmq_event_wait(struct shmq_event *e, uint64_t deadline_ns);

/**
 * shmq_event_set_spin() - spin budget before shmq_event_wait() sleeps.
 * @e:		event
 * @spin_ns:	nanoseconds (0: sleep at once; default 20 µs)
 *
 * Return: 0; -EINVAL; -EBADF a view.
 */
SHMQ_API int shmq_event_set_spin(struct shmq_event *e, uint64_t spin_ns);

/**
 * shmq_event_object() - an event handle as a struct shmq_object.
 * @e:		event, or NULL
 *
 * Return: the object, valid until shmq_event_close(); NULL for a NULL @e.
 */
SHMQ_API struct shmq_object *shmq_event_object(struct shmq_event *e);

/* --- Locks --- */

/*
 * A lock is threading.Lock (or, created with SHMQ_LOCK_ATTR_RECURSIVE,
 * threading.RLock) between processes, robust like a PTHREAD_MUTEX_ROBUST
 * mutex.  Its holder is a thread of a process that opened it: only that
 * thread may release it (an RLock counts the holder's acquisitions, and is
 * free once each is released).  When the holder's process dies, the daemon
 * takes the lock back at once and wakes a waiter; every acquisition from
 * then on returns -EOWNERDEAD -- the lock is held, and what it protects may
 * be half-changed -- until a holder that has repaired it calls
 * shmq_lock_consistent().  A thread that exits holding it, while its
 * process lives, leaves it held.  Uncontended acquire and release are one
 * atomic instruction each, with no system call; a release enters the
 * kernel only when somebody sleeps.  Asynchronous waits (shmq_waiter_new(),
 * shmq_poller_add() on shmq_lock_object(), SHMQ_POLL_RECV) report that the
 * lock looks free; the caller then tries shmq_lock_try_acquire().
 */

#define SHMQ_LOCK_ATTR_RECURSIVE (1u << 0) /* an RLock */

/**
 * struct shmq_lock_attr - how to create a lock.
 * @size:	sizeof(struct shmq_lock_attr)
 * @flags:	0 or SHMQ_LOCK_ATTR_RECURSIVE
 * @perm:	permission bits (0: 0600)
 */
struct shmq_lock_attr {
	uint32_t size;
	uint32_t flags;
	uint32_t perm;
};

/**
 * shmq_lock_open() - open (or create) a lock by name.
 * @c:		client
 * @name:	1-63 bytes of [A-Za-z0-9._-]
 * @flags:	0, or SHMQ_CREATE [| SHMQ_EXCL or SHMQ_ANY_GEOMETRY]; SHMQ_VIEW for read-only
 * @attr:	with SHMQ_CREATE: plain or recursive (NULL: plain)
 * @ret:	the new handle
 *
 * Acquiring needs write permission.  Threads may share a handle; each is
 * its own holder.
 * Context: blocks for one round trip.
 * Return: as shmq_queue_open(); -EINVAL unknown @attr->flags.
 */
SHMQ_API int shmq_lock_open(struct shmq_client *c, const char *name, unsigned int flags,
			    const struct shmq_lock_attr *attr, struct shmq_lock **ret);

/**
 * shmq_lock_close() - detach and free the handle.
 * @l:		lock, or NULL (no-op)
 *
 * Return: 0; -EBUSY the calling thread holds it, or an asynchronous waiter
 * or watch, or a condition handle bound to it, still uses @l.
 */
SHMQ_API int shmq_lock_close(struct shmq_lock *l);

/**
 * shmq_lock_acquire() - take the lock, waiting until @deadline_ns.
 * @l:		lock
 * @deadline_ns: 0 for never block, else absolute CLOCK_MONOTONIC or SHMQ_FOREVER
 *
 * Spins briefly, then sleeps.  An RLock its holder acquires again is
 * counted and returns at once.
 * Context: may block; never -EINTR.
 * Return: 0 held; -EOWNERDEAD held, and a holder died holding it (see
 *         above); -EAGAIN held (deadline 0); -ETIMEDOUT; -EDEADLK a plain lock the calling thread
 *         holds; -EAGAIN an RLock held 2^31 - 1 times; -EINVAL; -EBADF a view.
 */
SHMQ_API int shmq_lock_acquire(struct shmq_lock *l, uint64_t deadline_ns);

/**
 * shmq_lock_try_acquire() - take the lock if it is free; never blocks.
 * @l:		lock
 *
 * Return: as shmq_lock_acquire(), with -EAGAIN for a held lock.
 */
SHMQ_API int shmq_lock_try_acquire(struct shmq_lock *l);

/**
 * shmq_lock_release() - give up one acquisition; a free lock wakes one waiter.
 * @l:		lock
 *
 * A release happens-before the acquisition that follows it.
 * Return: 0; -EPERM the calling thread does not hold it; -EINVAL; -EBADF.
 */
SHMQ_API int shmq_lock_release(struct shmq_lock *l);

/**
 * shmq_lock_consistent() - after -EOWNERDEAD: what the lock protects is repaired.
 * @l:		lock, held by the calling thread
 *
 * Later acquisitions return 0 again.
 * Return: 0; -EPERM not the holder; -EINVAL no holder had died; -EBADF.
 */
SHMQ_API int shmq_lock_consistent(struct shmq_lock *l);

/**
 * shmq_lock_is_locked() - whether anyone holds it now (a snapshot).
 * @l:		lock (a view may look)
 *
 * Return: 1 held; 0 free; -EINVAL.
 */
SHMQ_API int shmq_lock_is_locked(const struct shmq_lock *l);

/**
 * shmq_lock_is_mine() - whether the calling thread holds it.
 * @l:		lock
 *
 * Return: 1 yes; 0 no; -EINVAL.
 */
SHMQ_API int shmq_lock_is_mine(const struct shmq_lock *l);

/**
 * shmq_lock_set_spin() - spin budget before shmq_lock_acquire() sleeps.
 * @l:		lock
 * @spin_ns:	nanoseconds (0: sleep at once, the default; see shm/lock.h for why)
 *
 * Return: 0; -EINVAL; -EBADF a view.
 */
SHMQ_API int shmq_lock_set_spin(struct shmq_lock *l, uint64_t spin_ns);

/**
 * shmq_lock_object() - a lock handle as a struct shmq_object.
 * @l:		lock, or NULL
 *
 * Return: the object, valid until shmq_lock_close(); NULL for a NULL @l.
 */
SHMQ_API struct shmq_object *shmq_lock_object(struct shmq_lock *l);

/* --- Conditions --- */

/*
 * A condition is threading.Condition between processes, bound to one lock
 * (or RLock) for its whole life: it is created with a lock, and every
 * handle opens it with a handle of that same lock.  shmq_cond_wait() gives
 * the lock up (every recursive acquisition), sleeps until notified, and
 * takes it back; shmq_cond_notify() and shmq_cond_notify_all() are called
 * holding the lock, like Python's, and count exactly that many of the
 * threads waiting at the time (not FIFO) -- a thread that starts waiting
 * later is never woken by them.  A waiter killed while waiting is uncounted
 * by the daemon and the others woken, so it never takes a notification
 * from them; the price is that a wait may return 0 without a notify of its
 * own in the instant a process dies, so wait for a predicate
 * (shmq_cond_wait_for()) as with any condition variable.  When the lock's
 * holder dies, a wait that takes it back returns -EOWNERDEAD (the lock
 * held; see shmq_lock_consistent()).
 *
 * Asynchronous waits come in steps a completion can drive, as asyncio's
 * Condition.wait() does: holding the lock (once), shmq_cond_wait_begin()
 * joins the waiters and gives the lock up; a waiter or poller on
 * shmq_cond_object() for SHMQ_POLL_RECV completes when a notification may
 * be pending; the caller takes the lock again (an asynchronous wait on the
 * lock and shmq_lock_try_acquire(), or shmq_lock_acquire()) and calls
 * shmq_cond_wait_end(): 0 notified, or -EAGAIN not yet -- then
 * shmq_cond_wait_begin() gives the lock up again, still joined, and the
 * wait goes on.  shmq_cond_wait_cancel() leaves.  One asynchronous wait at
 * a time per handle.
 */

struct shmq_cond;

/**
 * struct shmq_cond_attr - how to create a condition.
 * @size:	sizeof(struct shmq_cond_attr)
 * @perm:	permission bits (0: 0600)
 */
struct shmq_cond_attr {
	uint32_t size;
	uint32_t perm;
};

/**
 * shmq_cond_open() - open (or create) a condition by name, bound to @lock.
 * @c:		client
 * @name:	1-63 bytes of [A-Za-z0-9._-]
 * @flags:	0, or SHMQ_CREATE [| SHMQ_EXCL or SHMQ_ANY_GEOMETRY]; SHMQ_VIEW for read-only
 * @lock:	a handle (not a view) of the condition's lock; NULL for a view
 * @attr:	with SHMQ_CREATE: permissions (NULL: 0600)
 * @ret:	the new handle
 *
 * A created condition is bound to @lock's object; opening an existing one
 * with a handle of another lock is -EXDEV.  @lock must outlive the
 * condition's handle: shmq_lock_close() is -EBUSY until then.
 * Context: blocks for one round trip.
 * Return: as shmq_queue_open(); -EXDEV not the condition's lock; -EINVAL
 *         no @lock, or a view of one.
 */
SHMQ_API int shmq_cond_open(struct shmq_client *c, const char *name, unsigned int flags,
			    struct shmq_lock *lock, const struct shmq_cond_attr *attr,
			    struct shmq_cond **ret);

/**
 * shmq_cond_close() - detach and free the handle; its lock may then be closed.
 * @cv:		condition, or NULL (no-op)
 *
 * Return: 0.
 */
SHMQ_API int shmq_cond_close(struct shmq_cond *cv);

/**
 * shmq_cond_wait() - give the lock up, wait for a notify, take it back.
 * @cv:		condition; the calling thread holds its lock
 * @deadline_ns: absolute CLOCK_MONOTONIC, or SHMQ_FOREVER; a past one (0
 *		too: a wait has no try form) returns -ETIMEDOUT at once,
 *		keeping the lock
 *
 * The lock is held again, at the same depth, on every return but -EPERM,
 * -EINVAL and -EBADF.  A notify that races the deadline wins.
 * Context: may block; never -EINTR.
 * Return: 0 notified (see above for the spare wake-up); -ETIMEDOUT;
 *         -EOWNERDEAD held, and a holder of the lock died; -EPERM the
 *         calling thread does not hold the lock; -EINVAL; -EBADF a view.
 */
SHMQ_API int shmq_cond_wait(struct shmq_cond *cv, uint64_t deadline_ns);

/* A predicate for shmq_cond_wait_for(), called holding the lock: nonzero when satisfied. */
typedef int shmq_cond_pred_fn(void *arg);

/**
 * shmq_cond_wait_for() - wait until @pred(@arg) is true, or until @deadline_ns.
 * @cv:		condition; the calling thread holds its lock
 * @pred:	called with the lock held, first before any wait
 * @arg:	passed to @pred
 * @deadline_ns: absolute CLOCK_MONOTONIC, or SHMQ_FOREVER
 *
 * Python's Condition.wait_for(): the loop of waits every caller of a
 * condition variable needs, with one deadline for all of them.
 * Return: 0 @pred is true; -ETIMEDOUT it is still false at the deadline;
 *         -EOWNERDEAD (the lock held, @pred not re-evaluated); as
 *         shmq_cond_wait() otherwise.
 */
SHMQ_API int shmq_cond_wait_for(struct shmq_cond *cv, shmq_cond_pred_fn *pred, void *arg,
				uint64_t deadline_ns);

/**
 * shmq_cond_notify() - wake up to @n of the threads waiting now.
 * @cv:		condition; the calling thread holds its lock
 * @n:		how many
 *
 * Enters the kernel only when somebody waits.
 * Return: the number of waiters counted (0 with nobody waiting); -EPERM
 *         the calling thread does not hold the lock; -EINVAL; -EBADF a view.
 */
SHMQ_API int shmq_cond_notify(struct shmq_cond *cv, unsigned int n);

/**
 * shmq_cond_notify_all() - wake every thread waiting now.
 * @cv:		condition; the calling thread holds its lock
 *
 * Return: as shmq_cond_notify().
 */
SHMQ_API int shmq_cond_notify_all(struct shmq_cond *cv);

/**
 * shmq_cond_wait_begin() - join the waiters and give the lock up (asynchronous wait).
 * @cv:		condition; the calling thread holds its lock, once
 *
 * A notify from now on may count this wait.  Called again after
 * shmq_cond_wait_end() said -EAGAIN, it only gives the lock up again.
 * Return: 0; -EPERM not the holder; -EDEADLK an RLock held more than once;
 *         -EBUSY another thread's asynchronous wait uses this handle;
 *         -EINVAL; -EBADF a view.
 */
SHMQ_API int shmq_cond_wait_begin(struct shmq_cond *cv);

/**
 * shmq_cond_wait_end() - with the lock held again: was the wait notified?
 * @cv:		condition; the calling thread holds its lock
 *
 * Return: 0 notified, and the asynchronous wait is over; -EAGAIN not yet
 *         (call shmq_cond_wait_begin() to go on waiting, or
 *         shmq_cond_wait_cancel()); -EPERM not the holder; -EINVAL no
 *         asynchronous wait; -EBADF a view.
 */
SHMQ_API int shmq_cond_wait_end(struct shmq_cond *cv);

/**
 * shmq_cond_wait_cancel() - leave an asynchronous wait, lock held or not.
 * @cv:		condition
 *
 * shmq_cond_close() cancels one too.
 * Return: 1 a notification had come, and is taken: treat the wait as
 *         notified; 0 left; -EINVAL no asynchronous wait; -EBADF a view.
 */
SHMQ_API int shmq_cond_wait_cancel(struct shmq_cond *cv);

/**
 * shmq_cond_object() - a condition handle as a struct shmq_object.
 * @cv:		condition, or NULL
 *
 * Return: the object, valid until shmq_cond_close(); NULL for a NULL @cv.
 */
SHMQ_API struct shmq_object *shmq_cond_object(struct shmq_cond *cv);

/* --- Barriers --- */

/*
 * A barrier is threading.Barrier between processes: shmq_barrier_wait()
 * returns once `parties` threads have called it, each with a different
 * arrival index (0 for the first .. parties - 1 for the last, which may do
 * the cycle's housekeeping, as Python's action would), and then the
 * barrier is ready for the next cycle.  A wait that times out, an abort,
 * or the death of a process that has it open breaks it: every wait of the
 * broken cycle and every later one fails with -EPIPE (BrokenBarrierError)
 * until shmq_barrier_reset().  A barrier that nobody has open any more
 * starts its next users with a fresh, unbroken cycle.
 *
 * Asynchronous waits, as asyncio's Barrier: shmq_barrier_arrive() counts
 * the arrival without waiting; a waiter or poller on shmq_barrier_object()
 * for SHMQ_POLL_RECV completes when that cycle has ended, and
 * shmq_barrier_arrival() gives the arrival index or -EPIPE.  One pending
 * arrival per handle.  shmq_barrier_await() waits for it in slices; a
 * party that gives up calls shmq_barrier_cancel(), and the cycle breaks as
 * for a timeout.
 */

#define SHMQ_BARRIER_PARTIES_LIMIT 32767

struct shmq_barrier;

/**
 * struct shmq_barrier_attr - how to create a barrier.
 * @size:	sizeof(struct shmq_barrier_attr)
 * @parties:	1..SHMQ_BARRIER_PARTIES_LIMIT
 * @perm:	permission bits (0: 0600)
 */
struct shmq_barrier_attr {
	uint32_t size;
	uint32_t parties;
	uint32_t perm;
};

/**
 * shmq_barrier_open() - open (or create) a barrier by name.
 * @c:		client
 * @name:	1-63 bytes of [A-Za-z0-9._-]
 * @flags:	0, or SHMQ_CREATE [| SHMQ_EXCL or SHMQ_ANY_GEOMETRY]; SHMQ_VIEW for read-only
 * @attr:	with SHMQ_CREATE: required (the parties)
 * @ret:	the new handle
 *
 * Context: blocks for one round trip.
 * Return: as shmq_queue_open(); -EINVAL SHMQ_CREATE without @attr, or
 *         parties out of range.
 */
SHMQ_API int shmq_barrier_open(struct shmq_client *c, const char *name, unsigned int flags,
			       const struct shmq_barrier_attr *attr, struct shmq_barrier **ret);

/**
 * shmq_barrier_close() - detach and free the handle.
 * @b:		barrier, or NULL (no-op)
 *
 * Return: 0.
 */
SHMQ_API int shmq_barrier_close(struct shmq_barrier *b);

/**
 * shmq_barrier_wait() - arrive, and wait for the other parties of the cycle.
 * @b:		barrier
 * @deadline_ns: absolute CLOCK_MONOTONIC, or SHMQ_FOREVER; 0 is a deadline
 *		that has passed (arriving is the call's effect: it has no
 *		try form), so a party that is not the last times out
 *
 * Everything any party did before its wait of a cycle happens-before what
 * each of them does after it returns.
 * Context: may block; never -EINTR.
 * Return: the arrival index (>= 0); -EPIPE broken; -ETIMEDOUT the deadline
 *         passed first, and the barrier is now broken for the others;
 *         -EINVAL; -EBADF a view.
 */
SHMQ_API int shmq_barrier_wait(struct shmq_barrier *b, uint64_t deadline_ns);

/**
 * shmq_barrier_arrive() - arrive without waiting (asynchronous wait).
 * @b:		barrier
 *
 * Return: the arrival index (>= 0) when this arrival ended the cycle;
 *         -EINPROGRESS arrived: wait for the cycle to end, then
 *         shmq_barrier_arrival(); -EPIPE broken; -EBUSY an arrival of this
 *         handle is pending; -EINVAL; -EBADF a view.
 */
SHMQ_API int shmq_barrier_arrive(struct shmq_barrier *b);

/**
 * shmq_barrier_arrival() - how the handle's pending arrival's cycle ended.
 * @b:		barrier
 *
 * Return: the arrival index (>= 0); -EPIPE the cycle broke; -EAGAIN it has
 *         not ended yet; -EINVAL no arrival pending; -EBADF a view.  After
 *         an index or -EPIPE nothing is pending any more.
 */
SHMQ_API int shmq_barrier_arrival(struct shmq_barrier *b);

/**
 * shmq_barrier_await() - wait until the handle's pending arrival's cycle ends.
 * @b:		barrier
 * @deadline_ns: absolute CLOCK_MONOTONIC, or SHMQ_FOREVER; 0 is the try
 *		form, shmq_barrier_arrival()
 *
 * The blocking half of shmq_barrier_arrive(): with the two, a caller waits
 * in slices (to look at signals between them) and decides itself what a
 * deadline means.  A deadline that passes here breaks nothing; a party
 * that gives up calls shmq_barrier_cancel().
 * Context: may block; never -EINTR.
 * Return: as shmq_barrier_arrival() (the index or -EPIPE, and nothing is
 *         pending any more); -ETIMEDOUT the deadline passed, the arrival
 *         is still pending; -EAGAIN not ended, for a deadline of 0;
 *         -EINVAL no arrival pending; -EBADF a view.
 */
SHMQ_API int shmq_barrier_await(struct shmq_barrier *b, uint64_t deadline_ns);

/**
 * shmq_barrier_cancel() - give up the handle's pending arrival, as a timeout would.
 * @b:		barrier
 *
 * Breaks the arrival's cycle if it has not ended yet.  Unlike
 * shmq_barrier_abort(), it never breaks a later cycle: when the arrival's
 * cycle was released before the call, the call reports that instead.
 * Nothing is pending after it.
 * Return: the arrival index, the cycle was released first; -EPIPE broken
 *         (by this call or before it); -EINVAL no arrival pending; -EBADF
 *         a view.
 */
SHMQ_API int shmq_barrier_cancel(struct shmq_barrier *b);

/**
 * shmq_barrier_abort() - break the barrier (waiters get -EPIPE).
 * @b:		barrier
 *
 * Return: 0; -EINVAL; -EBADF a view.
 */
SHMQ_API int shmq_barrier_abort(struct shmq_barrier *b);

/**
 * shmq_barrier_reset() - an empty, unbroken cycle; its waiters get -EPIPE.
 * @b:		barrier
 *
 * Return: 0; -EINVAL; -EBADF a view.
 */
SHMQ_API int shmq_barrier_reset(struct shmq_barrier *b);

/**
 * shmq_barrier_parties() - the parties a cycle needs.
 * @b:		barrier (a view may look)
 *
 * Return: parties (>= 1); -EINVAL.
 */
SHMQ_API int shmq_barrier_parties(const struct shmq_barrier *b);

/**
 * shmq_barrier_n_waiting() - parties waiting in the current cycle (a snapshot).
 * @b:		barrier (a view may look)
 *
 * Return: the count (0 when broken); -EINVAL.
 */
SHMQ_API int shmq_barrier_n_waiting(const struct shmq_barrier *b);

/**
 * shmq_barrier_is_broken() - whether it is broken now (a snapshot).
 * @b:		barrier (a view may look)
 *
 * Return: 1 broken; 0 not; -EINVAL.
 */
SHMQ_API int shmq_barrier_is_broken(const struct shmq_barrier *b);

/**
 * shmq_barrier_set_spin() - spin budget before shmq_barrier_wait() sleeps.
 * @b:		barrier
 * @spin_ns:	nanoseconds (0: sleep at once; default 20 µs)
 *
 * Return: 0; -EINVAL; -EBADF a view.
 */
SHMQ_API int shmq_barrier_set_spin(struct shmq_barrier *b, uint64_t spin_ns);

/**
 * shmq_barrier_object() - a barrier handle as a struct shmq_object.
 * @b:		barrier, or NULL
 *
 * Return: the object, valid until shmq_barrier_close(); NULL for a NULL @b.
 */
SHMQ_API struct shmq_object *shmq_barrier_object(struct shmq_barrier *b);

/* --- Pipes --- */

/*
 * A pipe is multiprocessing.Pipe between processes: a named channel with
 * two ends, 0 and 1.  Duplex (the default), each end sends to the other
 * and receives what the other sent; one-way (SHMQ_PIPE_ATTR_ONEWAY), end
 * 1 sends and end 0 receives, as Pipe(duplex=False) returns (r, w).  Each
 * direction is an SPSC ring, so a pipe is as fast as a pair of queues, and
 * messages keep their boundaries and order.
 *
 * Each end has one holder at a time: a second open of a held end is
 * -EBUSY.  When the holder closes its end, or dies, or detaches without
 * closing, the end closes for good, and the survivor is told: its sends
 * fail with -EPIPE (BrokenPipeError), its receives return what was sent
 * before the close and then -EPIPE (EOFError), and every blocked call,
 * waiter and poller watch on it is woken.  A closed end cannot be opened
 * again (-EPIPE): a pipe, like pipe(2)'s, serves one pair of ends; unlink
 * it and create another.  Asynchronous waits: shmq_waiter_new() and
 * shmq_poller_add() on shmq_pipe_object(), SHMQ_POLL_RECV and SHMQ_POLL_SEND.
 *
 * An end may be used by one sending and one receiving thread at once.
 */

#define SHMQ_PIPE_ATTR_ONEWAY (1u << 0) /* end 1 sends, end 0 receives */

struct shmq_pipe;

/**
 * struct shmq_pipe_attr - how to create a pipe.
 * @size:	sizeof(struct shmq_pipe_attr)
 * @n_slots:	messages each direction holds: a power of two (0: the
 *		daemon's default-slots)
 * @slot_size:	largest message in bytes (0: default-slot-size)
 * @perm:	permission bits (0: 0600); both ends need write permission
 * @flags:	SHMQ_PIPE_ATTR_ONEWAY, or 0 for duplex
 * @reserved:	zero
 */
struct shmq_pipe_attr {
	uint32_t size;
	uint32_t n_slots;
	uint32_t slot_size;
	uint32_t perm;
	uint32_t flags;
	uint32_t reserved;
};

/**
 * shmq_pipe_open() - open (or create) a pipe by name, and hold one end.
 * @c:		client
 * @name:	1-63 bytes of [A-Za-z0-9._-]
 * @end:	0 or 1 (0 with SHMQ_VIEW)
 * @flags:	0, or SHMQ_CREATE [| SHMQ_EXCL or SHMQ_ANY_GEOMETRY]; SHMQ_VIEW to hold no end (a
 *		read-only handle that can neither send nor receive: how a pipe
 *		is created for two other processes, as shmqctl create pipe does)
 * @attr:	with SHMQ_CREATE: geometry, or NULL for the defaults
 * @ret:	the new handle
 *
 * Context: blocks for one round trip.
 * Return: 0; -EBUSY @end is held; -EPIPE @end has closed; as
 *         shmq_queue_open() otherwise.
 */
SHMQ_API int shmq_pipe_open(struct shmq_client *c, const char *name, unsigned int end,
			    unsigned int flags, const struct shmq_pipe_attr *attr,
			    struct shmq_pipe **ret);

/**
 * shmq_pipe_close() - close the end (for good: see above) and free the handle.
 * @p:		pipe end, or NULL (no-op)
 *
 * Return: 0; -EBUSY an asynchronous waiter is still registered on it.
 */
SHMQ_API int shmq_pipe_close(struct shmq_pipe *p);

/**
 * shmq_pipe_send() - send one message to the other end.
 * @p:		pipe end that may send
 * @msg:	@len bytes (may be NULL if @len is 0)
 * @len:	at most shmq_pipe_max_msg()
 * @deadline_ns: 0 for never block, else absolute CLOCK_MONOTONIC or SHMQ_FOREVER
 *
 * Return: 0; -EAGAIN full (deadline 0); -ETIMEDOUT; -EPIPE the other end
 *         has closed; -EMSGSIZE; -EBADF this end only receives; -EINVAL.
 */
SHMQ_API int shmq_pipe_send(struct shmq_pipe *p, const void *msg, size_t len, uint64_t deadline_ns);

/**
 * shmq_pipe_sendv() - send one message gathered from @n @parts (shmq_queue_sendv()).
 * @p:		pipe end that may send
 * @parts:	@n buffers
 * @n:		number of parts; 0 sends an empty message
 * @deadline_ns: 0 for never block, else absolute CLOCK_MONOTONIC or SHMQ_FOREVER
 *
 * Return: as shmq_pipe_send(); -EMSGSIZE the parts add up to more than
 *         shmq_pipe_max_msg().
 */
SHMQ_API int shmq_pipe_sendv(struct shmq_pipe *p, const struct iovec *parts, unsigned int n,
			     uint64_t deadline_ns);

/**
 * shmq_pipe_recv() - receive the next message from the other end.
 * @p:		pipe end that may receive
 * @buf:	@size bytes
 * @size:	buffer size; a longer message is consumed and -EMSGSIZE returned
 * @deadline_ns: 0 for never block, else absolute CLOCK_MONOTONIC or SHMQ_FOREVER
 *
 * Return: the message length; -EAGAIN empty (deadline 0); -ETIMEDOUT;
 *         -EPIPE end-of-file: the other end has closed and everything it
 *         sent has been received; -EMSGSIZE; -EBADF this end only sends;
 *         -EBADMSG; -EINVAL.
 */
SHMQ_API int shmq_pipe_recv(struct shmq_pipe *p, void *buf, size_t size, uint64_t deadline_ns);

/**
 * shmq_pipe_poll() - wait until a receive would not block (Connection.poll()).
 * @p:		pipe end that may receive
 * @deadline_ns: 0 for a look without waiting, else absolute or SHMQ_FOREVER
 *
 * A message or the end-of-file both count: the receive then says which.
 * Return: 1 ready; 0 not ready by the deadline; -EBADF; -EINVAL.
 */
SHMQ_API int shmq_pipe_poll(struct shmq_pipe *p, uint64_t deadline_ns);

/**
 * shmq_pipe_peer_closed() - has the other end closed?
 * @p:		pipe end
 *
 * Return: 1 closed (messages it sent may still wait to be received); 0 open
 *         or not yet opened; -EINVAL.
 */
SHMQ_API int shmq_pipe_peer_closed(const struct shmq_pipe *p);

/**
 * shmq_pipe_end() - which end this handle holds.
 * @p:		pipe end
 *
 * Return: 0 or 1; -EINVAL.
 */
SHMQ_API int shmq_pipe_end(const struct shmq_pipe *p);

/**
 * shmq_pipe_max_msg() - the largest message the pipe carries.
 * @p:		pipe end
 *
 * Return: bytes; -EINVAL.
 */
SHMQ_API int shmq_pipe_max_msg(const struct shmq_pipe *p);

/**
 * shmq_pipe_set_spin() - how long blocking calls spin before they sleep.
 * @p:		pipe end
 * @spin_ns:	nanoseconds (0: sleep at once)
 *
 * Return: 0; -EINVAL.
 */
SHMQ_API int shmq_pipe_set_spin(struct shmq_pipe *p, uint64_t spin_ns);

/**
 * shmq_pipe_object() - a pipe end as a struct shmq_object.
 * @p:		pipe end, or NULL
 *
 * Return: the object, valid until shmq_pipe_close(); NULL for a NULL @p.
 */
SHMQ_API struct shmq_object *shmq_pipe_object(struct shmq_pipe *p);

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
#define SHMQ_OBJECT_QUEUE   1
#define SHMQ_OBJECT_SEM	    2
#define SHMQ_OBJECT_EVENT   3
#define SHMQ_OBJECT_LOCK    4
#define SHMQ_OBJECT_COND    5
#define SHMQ_OBJECT_BARRIER 6
#define SHMQ_OBJECT_PIPE    7

/* struct shmq_object_info.flags */
#define SHMQ_OBJECT_UNLINKED  (1u << 0) /* name removed; memory lives while attached */
#define SHMQ_OBJECT_HUGEPAGES (1u << 1) /* backed by huge pages */
/* the daemon found its memory corrupt: new opens fail with -EBADMSG until it is removed */
#define SHMQ_OBJECT_QUARANTINED (1u << 2)

/* struct shmq_attach_info.role */
#define SHMQ_ATTACH_SEND (1u << 0) /* queue handle opened with SHMQ_SEND */
#define SHMQ_ATTACH_RECV (1u << 1) /* queue handle opened with SHMQ_RECV */
#define SHMQ_ATTACH_SEM	 (1u << 2) /* semaphore handle that waits and posts */
#define SHMQ_ATTACH_VIEW (1u << 3) /* read-only view (SHMQ_VIEW, shmq_view_open()) */
#define SHMQ_ATTACH_USE	 (1u << 4) /* event handle that sets, clears and waits */

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
 * @kind:	SHMQ_OBJECT_*
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
 * @n_slots:	queue: capacity in messages; pipe: per direction (since 1.1)
 * @slot_size:	queue, pipe: largest message in bytes
 * @mode:	queue: SHMQ_MPMC, SHMQ_SPSC, SHMQ_MPSC or SHMQ_SPMC
 * @sem_initial: semaphore: value at creation
 * @sem_max:	semaphore: the bound with SHMQ_SEM_ATTR_BOUNDED, else 0
 * @sem_flags:	semaphore: SHMQ_SEM_ATTR_*
 * @event_initial: event: 1 created set, 0 clear (since 1.1)
 * @lock_flags:	lock: SHMQ_LOCK_ATTR_* (since 1.1)
 * @cond_lock_id: condition: the object id of its lock (since 1.1)
 * @barrier_parties: barrier: parties per cycle (since 1.1)
 * @kind_flags:	queue: SHMQ_QUEUE_JOINABLE; pipe: SHMQ_PIPE_ATTR_ONEWAY (since 1.1)
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
	uint32_t event_initial;
	uint32_t lock_flags;
	uint64_t cond_lock_id;
	uint32_t barrier_parties;
	uint32_t kind_flags;
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

/**
 * struct shmq_uid_usage - what one user has of the daemon's per-user limits.
 * @size:	bytes of the struct that are filled
 * @uid:	the user
 * @n_objects:	objects it owns (unlinked ones still attached included)
 * @max_objects: max-objects-per-uid
 * @n_clients:	its connected clients
 * @max_clients: max-clients-per-uid; 0: not limited (uid 0)
 * @memory:	bytes of the segments it owns
 * @max_memory:	max-memory-per-uid
 */
struct shmq_uid_usage {
	uint32_t size;
	uint32_t uid;
	uint32_t n_objects;
	uint32_t max_objects;
	uint32_t n_clients;
	uint32_t max_clients;
	uint64_t memory;
	uint64_t max_memory;
};

/* Callbacks of the listing calls: a negative return stops the listing and is returned. */
typedef int shmq_usage_fn(void *arg, const struct shmq_uid_usage *usage);
typedef int shmq_object_fn(void *arg, const struct shmq_object_info *info);
typedef int shmq_client_fn(void *arg, const struct shmq_client_info *info);
typedef int shmq_attach_fn(void *arg, const struct shmq_attach_info *info);
typedef int shmq_config_fn(void *arg, const char *name, const char *value);
/* The types of shmq_daemon_config_typed()'s values. */
#define SHMQ_CONFIG_STRING 0 /* as it would be written in the file */
#define SHMQ_CONFIG_NUMBER 1 /* a decimal number; sizes in bytes */
#define SHMQ_CONFIG_BOOL   2 /* "yes" or "no" */
typedef int shmq_config_typed_fn(void *arg, const char *name, const char *value, int type);

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
 * shmq_daemon_config_typed() - the configuration in force, with each value's type.
 * @c:		client
 * @fn:		called once per option with its name, its value and its type
 *		(SHMQ_CONFIG_NUMBER: decimal, sizes in bytes rather than "1G";
 *		SHMQ_CONFIG_BOOL: "yes" or "no"; SHMQ_CONFIG_STRING: as in the
 *		file -- paths, modes such as "0660", levels)
 * @arg:	passed to @fn
 *
 * As shmq_daemon_config() otherwise.
 * Return: as shmq_daemon_config(); -EOPNOTSUPP a daemon without this call.
 */
SHMQ_API int shmq_daemon_config_typed(struct shmq_client *c, shmq_config_typed_fn *fn, void *arg);

/**
 * shmq_daemon_usage() - each user's use of the per-user limits.
 * @c:		client
 * @fn:		called once per user
 * @arg:	passed to @fn
 *
 * Root gets every user that owns an object or has a client connected;
 * anyone else gets their own row only (zeros included).  Pages as
 * shmq_daemon_clients() does.
 * Context: blocks; @fn runs without any lock held and may call libshmq.
 * Return: the number of rows reported; @fn's negative return; -EINVAL;
 *         -EOPNOTSUPP a daemon without this call; -ECONNRESET; -ETIMEDOUT;
 *         -EPROTO; -ENOMEM.
 */
SHMQ_API int shmq_daemon_usage(struct shmq_client *c, shmq_usage_fn *fn, void *arg);

/**
 * shmq_daemon_disconnect() - end another client's session, by its process's death.
 * @c:		client
 * @session_id:	the session, as shmq_daemon_clients() gives it
 *
 * Root, or a user for their own sessions, as kill(2).  The only safe end
 * of a live session is its process's, since a process that runs on would
 * keep using records the daemon hands to others: shmqd sends it SIGKILL
 * through the pidfd of exactly the process that connected, and its holds
 * are then repaired as after any death (a moment later; the session is
 * gone from shmq_daemon_clients() once that is done).
 * Context: blocks for one round trip.
 * Return: 0 the signal went (or the process was gone already); -ENOENT no
 *         such session; -EACCES another user's; -EINVAL @session_id 0 or
 *         the caller's own; -EPERM shmqd may not signal that process (kill
 *         it yourself); -EOPNOTSUPP no pidfd for it, or a daemon without
 *         this call; -ECONNRESET; -ETIMEDOUT.
 */
SHMQ_API int shmq_daemon_disconnect(struct shmq_client *c, uint64_t session_id);

/**
 * shmq_daemon_clients() - the connected clients, in connection order.
 * @c:		client
 * @fn:		called once per client
 * @arg:	passed to @fn
 *
 * Root gets every client, anyone else the clients of their own uid (as
 * ipcs shows a user only their own).  Pages through the daemon's list,
 * one round trip per 128 clients; a client that connects or leaves
 * meanwhile may be missed or seen twice.
 * Context: blocks; @fn runs without any lock held and may call libshmq.
 * Return: the number of clients reported; @fn's negative return;
 *         -EINVAL; -ECONNRESET; -ETIMEDOUT; -EPROTO; -ENOMEM.
 */
SHMQ_API int shmq_daemon_clients(struct shmq_client *c, shmq_client_fn *fn, void *arg);

/**
 * shmq_object_list() - every live object one may read, in creation order.
 * @c:		client
 * @fn:		called once per object, unlinked ones still attached included
 * @arg:	passed to @fn
 *
 * Objects without read permission for the caller are left out (root
 * reads everything).  Pages as shmq_daemon_clients() does, with the same
 * caveat.
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
 *         -EACCES no read permission on it; -EINVAL bad name or @ret->size
 *         too small; -ECONNRESET; -ETIMEDOUT; -EPROTO.
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
 * shmq_queue_shutdown_name() - shut a queue down by name, through the daemon.
 * @c:		client
 * @name:	the queue
 * @flags:	0, or SHMQ_SHUTDOWN_IMMEDIATE
 *
 * As shmq_queue_shutdown(), for an administrator (shmqctl shutdown): only
 * the owner (or root) may.
 * Context: blocks for one round trip.
 * Return: 0; -ENOENT; -EINVAL bad name or flags, or not a queue; -EACCES
 *         not the owner (or root); -EOPNOTSUPP a daemon without this call;
 *         -ECONNRESET; -ETIMEDOUT; -EPROTO.
 */
SHMQ_API int shmq_queue_shutdown_name(struct shmq_client *c, const char *name, unsigned int flags);

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
/* --- Asynchronous waits: the low-level API, on the caller's own io_uring --- */

/*
 * A waiter turns "a message arrived", "room freed" or "a token is
 * available" into one io_uring request on a ring the caller owns, next to
 * its own reads, writes and timeouts.  One waiter has at most one request in
 * flight.  The cycle is:
 *
 *	r = shmq_waiter_prep(w, io_uring_get_sqe(&ring), MY_TAG | idx);
 *	if (r == SHMQ_READY)	-> attempt now (shmq_queue_recv() ...); the SQE
 *				   was not touched: use it, or io_uring_prep_nop()
 *	else if (r == 0)	-> io_uring_submit(); later, for the CQE whose
 *				   user_data is MY_TAG | idx:
 *				   shmq_waiter_complete(w, cqe->res), then attempt
 *
 * shmq never submits, never reaps and never looks at other CQEs: every
 * request it prepares carries the user_data the caller passed, which is how
 * the caller tells shmq's completions from its own (tag them, e.g. with a
 * high bit or a pointer to the waiter).  A completion never means "ready":
 * it means "look again".  An attempt may still find nothing (another
 * consumer was faster); then prepare again.  The raw cqe->res is one of
 *   0            woken (kernel FUTEX_WAIT), or
 *   > 0          a poll mask (helper-thread backend),
 *   -EAGAIN      the word had already moved when the kernel issued the wait,
 *   -ECANCELED   cancelled (shmq_waiter_prep_cancel(), or a linked timeout),
 * and shmq_waiter_complete() folds them into 0 / -ECANCELED.
 *
 * Backends.  On Linux 6.7+ the request is an IORING_OP_FUTEX_WAIT on the
 * object's futex word.  Where the kernel or a seccomp policy refuses that
 * (or SHMQ_URING_FUTEX=0 is set in the environment when the waiter is
 * made), it is an IORING_OP_POLL_ADD on an eventfd owned by the waiter,
 * written by a library helper thread blocked in futex_waitv(2).  The API and
 * the semantics are the same; the helper costs one thread per 127 waiters
 * and one descriptor per waiter.
 *
 * Semaphores: an armed semaphore waiter is counted among the semaphore's
 * sleepers, so that a post wakes it; shmq_waiter_complete() withdraws it,
 * exactly once per successful prep.  If a post's wake-up went to this
 * waiter and the caller does not take the token (cancelled, or it wanted
 * readiness only), the withdrawal passes the wake-up on to another sleeper.
 * A process killed while armed leaves the count one too high: posters then
 * pay a spare FUTEX_WAKE, nothing worse.
 */

struct io_uring_sqe;
struct shmq_waiter;

/*
 * What to wait for (shmq_waiter_new(), shmq_poller_add()).  A queue offers
 * both; a semaphore's token is SHMQ_POLL_RECV.
 */
#define SHMQ_POLL_RECV (1u << 0) /* a message can be received; a token taken; an event is set */
#define SHMQ_POLL_SEND (1u << 1) /* there is room to send */

/* shmq_waiter_prep(): ready now, nothing was prepared. */
#define SHMQ_READY 1

/* shmq_waiter_backend(), shmq_poller_backend() */
#define SHMQ_BACKEND_URING_FUTEX   1 /* IORING_OP_FUTEX_WAIT on the shared word */
#define SHMQ_BACKEND_HELPER_THREAD 2 /* helper thread in futex_waitv + eventfd POLL_ADD */

/**
 * struct shmq_object - any object's handle, whatever its kind.
 *
 * One type for the calls that work on every kind: asynchronous waits
 * (shmq_waiter_new(), shmq_poller_add()).  It belongs to the kind's
 * handle: valid while that is open, never freed on its own.
 */
struct shmq_object;

/**
 * shmq_queue_object() - a queue handle as a struct shmq_object.
 * @q:		queue, or NULL
 *
 * Context: any thread; never blocks.
 * Return: the object, valid until shmq_queue_close(); NULL for a NULL @q.
 */
SHMQ_API struct shmq_object *shmq_queue_object(struct shmq_queue *q);

/**
 * shmq_sem_object() - a semaphore handle as a struct shmq_object.
 * @s:		semaphore, or NULL
 *
 * Context: any thread; never blocks.
 * Return: the object, valid until shmq_sem_close(); NULL for a NULL @s.
 */
SHMQ_API struct shmq_object *shmq_sem_object(struct shmq_sem *s);

/**
 * shmq_waiter_new() - a waiter for one direction of any object.
 * @obj:	object (shmq_queue_object(), shmq_sem_object())
 * @events:	SHMQ_POLL_RECV or SHMQ_POLL_SEND (one of them), one the
 *		object's kind offers: a queue both, a semaphore SHMQ_POLL_RECV
 * @ret:	the new waiter
 *
 * Picks the backend (see above).  Closing the object's handle returns
 * -EBUSY while it has waiters.
 * Context: any thread; may create and destroy a probe ring once per process.
 * Return: 0; -EINVAL @obj or @ret NULL, or @events not one direction its
 *         kind offers; -EBADF the handle was not opened for @events (a
 *         queue without SHMQ_RECV or SHMQ_SEND, a view); -ENOMEM; -EMFILE
 *         (probe).
 */
SHMQ_API int shmq_waiter_new(struct shmq_object *obj, unsigned int events,
			     struct shmq_waiter **ret);

/**
 * shmq_waiter_new_queue() - a waiter for one direction of a queue.
 * (shmq_waiter_new() on shmq_queue_object(@q), kept for SHMQ_1.0.)
 * @q:		queue; opened with SHMQ_RECV for SHMQ_POLL_RECV, SHMQ_SEND for
 *		SHMQ_POLL_SEND
 * @events:	SHMQ_POLL_RECV or SHMQ_POLL_SEND (one of them)
 * @ret:	the new waiter
 *
 * Picks the backend (see above).  shmq_queue_close() returns -EBUSY while
 * the queue has waiters.
 * Context: any thread; may create and destroy a probe ring once per process.
 * Return: 0; -EINVAL; -EBADF the handle cannot do @events; -ENOMEM;
 *         -EMFILE (probe).
 */
SHMQ_API int shmq_waiter_new_queue(struct shmq_queue *q, unsigned int events,
				   struct shmq_waiter **ret);

/**
 * shmq_waiter_new_sem() - a waiter for a semaphore token.
 * (shmq_waiter_new() on shmq_sem_object(@s) for SHMQ_POLL_RECV.)
 * @s:		semaphore (not a view)
 * @ret:	the new waiter
 *
 * shmq_sem_close() returns -EBUSY while the semaphore has waiters.
 * Context: as shmq_waiter_new_queue().
 * Return: 0; -EINVAL; -EBADF a view; -ENOMEM; -EMFILE.
 */
SHMQ_API int shmq_waiter_new_sem(struct shmq_sem *s, struct shmq_waiter **ret);

/**
 * shmq_waiter_free() - free a waiter that has nothing in flight.
 * @w:		waiter, or NULL (no-op)
 *
 * Context: no other thread may use @w.
 * Return: 0; -EBUSY a prepared request's completion has not been passed to
 *         shmq_waiter_complete() (nothing was freed).
 */
SHMQ_API int shmq_waiter_free(struct shmq_waiter *w);

/**
 * shmq_waiter_backend() - how this waiter sleeps.
 * @w:		waiter
 *
 * Return: SHMQ_BACKEND_URING_FUTEX or SHMQ_BACKEND_HELPER_THREAD; -EINVAL.
 */
SHMQ_API int shmq_waiter_backend(const struct shmq_waiter *w);

/**
 * shmq_waiter_is_ready() - would an attempt find work now?
 * @w:		waiter
 *
 * A snapshot that announces nothing; shmq_waiter_prep() checks again.
 * Context: the thread that owns @w.
 * Return: 1 yes (or the object is corrupt and the attempt will say so);
 *         0 no; -EINVAL.
 */
SHMQ_API int shmq_waiter_is_ready(const struct shmq_waiter *w);

/**
 * shmq_waiter_prep() - arm: announce, re-check, and prepare one SQE.
 * @w:		waiter with nothing in flight
 * @sqe:	from io_uring_get_sqe() on the caller's ring
 * @user_data:	stored in @sqe; must be unique among the ring's requests
 *		in flight (shmq_waiter_prep_cancel() finds the request by it)
 *
 * The announcement and the re-check happen here, in the order that makes a
 * lost wake-up impossible; the kernel compares the futex word with the key
 * when it issues the request, so submitting late is safe (the request then
 * completes at once).  On the helper backend, and when this process cannot
 * run the heavy memory barrier (membarrier(2) refused), @sqe polls the
 * waiter's eventfd instead; without the barrier a wake-up may come up to
 * 1 ms late, never not at all.  IOSQE_* flags (links, IOSQE_ASYNC) may be
 * added to @sqe afterwards.
 * Context: the thread that owns @w; never blocks (a membarrier(2) call).
 * Return: 0 @sqe is prepared: submit it and pass its completion to
 *         shmq_waiter_complete(); SHMQ_READY an attempt can proceed now,
 *         @sqe untouched and nothing to complete; -EBUSY a request is in
 *         flight; -EINVAL; helper backend only: -EMFILE, -ENFILE, -ENOMEM
 *         (eventfd or thread).
 */
SHMQ_API int shmq_waiter_prep(struct shmq_waiter *w, struct io_uring_sqe *sqe, uint64_t user_data);

/**
 * shmq_waiter_complete() - consume the completion of the prepared request.
 * @w:		armed waiter
 * @res:	cqe->res of the request's CQE; or -ECANCELED for a request
 *		that was prepared but will never be submitted
 *
 * Must be called exactly once per prep that returned 0, whatever the
 * outcome, including cancellation.  Withdraws a semaphore announcement.
 * Context: the thread that owns @w; never blocks.
 * Return: 0 re-check the object (attempt, then prepare again if nothing
 *         was there); -ECANCELED the request was cancelled; -EINVAL @w
 *         was not armed; -EFAULT, -EINVAL (kernel) the request failed.
 */
SHMQ_API int shmq_waiter_complete(struct shmq_waiter *w, int res);

/**
 * shmq_waiter_prep_cancel() - prepare the cancellation of the request in flight.
 * @w:		armed waiter
 * @sqe:	from io_uring_get_sqe() on the same ring
 * @user_data:	for the cancel request's own CQE
 *
 * An IORING_OP_ASYNC_CANCEL of the request prepared with @w's user_data.
 * The waited request still completes (usually with -ECANCELED; with 0 if a
 * wake-up won the race): pass it to shmq_waiter_complete() as always.  The
 * cancel's own CQE reports how many requests it found (>= 0) or -ENOENT
 * (already completed) and needs nothing from shmq.
 * Context: the thread that owns @w.
 * Return: 0; -EINVAL @w is not armed.
 */
SHMQ_API int shmq_waiter_prep_cancel(struct shmq_waiter *w, struct io_uring_sqe *sqe,
				     uint64_t user_data);

/* --- Asynchronous waits: the poller (an event loop on its own io_uring) --- */

/*
 * A poller is a single-threaded event loop in the manner of asyncio: one
 * thread registers queues, semaphores, file descriptors and timers with
 * callbacks (watches, level-triggered like loop.add_reader()), or starts
 * one-shot operations whose result is delivered later (futures: a received
 * message, an acquired semaphore token), and runs the loop.  Everything
 * sleeps in one io_uring_enter(2); the loop never spins.
 *
 * Callbacks run on the thread that runs the loop, one at a time.  A
 * callback may add and free watches and futures, its own included.  A
 * callback that returns a negative errno stops the run call, which returns
 * that value.  Every poller function except shmq_poller_stop() must be
 * called from the loop's thread.  Queues and semaphores must outlive their
 * watches and futures (their close returns -EBUSY until then).
 */

struct shmq_poller;
struct shmq_watch;
struct shmq_future;

/**
 * typedef shmq_watch_fn - a watch's callback.
 * @w:		the watch
 * @events:	queue: SHMQ_POLL_RECV or SHMQ_POLL_SEND; semaphore: 1;
 *		descriptor: the poll(2) revents; timer: expirations since the
 *		last call (>= 1); a negative errno: the watch failed and is
 *		stopped (free it)
 * @arg:	as registered
 *
 * Return: >= 0 to go on; a negative errno stops the run call with it.
 */
typedef int shmq_watch_fn(struct shmq_watch *w, int events, void *arg);

/**
 * typedef shmq_future_fn - a future's completion callback.
 * @f:		the future, done
 * @result:	shmq_future_result(@f)
 * @arg:	as registered
 *
 * Return: >= 0 to go on; a negative errno stops the run call with it.
 */
typedef int shmq_future_fn(struct shmq_future *f, int result, void *arg);

/* shmq_poller_wait() */
#define SHMQ_WAIT_FIRST 0 /* return when at least one future is done */
#define SHMQ_WAIT_ALL	1 /* return when every future is done */

/**
 * shmq_poller_new() - create an event loop with its own io_uring.
 * @flags:	0
 * @ret:	the new poller
 *
 * Context: any thread; the poller then belongs to the thread that runs it.
 * Return: 0; -EINVAL @flags; -ENOMEM; -EMFILE; -errno from
 *         io_uring_setup(2) (-EPERM, -ENOSYS where io_uring is refused:
 *         the poller needs io_uring even on the helper backend).
 */
SHMQ_API int shmq_poller_new(unsigned int flags, struct shmq_poller **ret);

/**
 * shmq_poller_free() - cancel everything, free every watch and future, close the ring.
 * @p:		poller, or NULL (no-op)
 *
 * Watches and futures of @p are freed too: their pointers die with it.
 * Context: the loop's thread, outside callbacks.
 */
SHMQ_API void shmq_poller_free(struct shmq_poller *p);

/**
 * shmq_poller_backend() - how this poller's waits sleep.
 * @p:		poller
 *
 * Return: SHMQ_BACKEND_URING_FUTEX or SHMQ_BACKEND_HELPER_THREAD; -EINVAL.
 */
SHMQ_API int shmq_poller_backend(const struct shmq_poller *p);

/**
 * shmq_poller_fd() - a descriptor for another event loop (epoll, asyncio).
 * @p:		poller
 *
 * It becomes readable when a wait of @p has completed: call
 * shmq_poller_run_once(@p, 0) then, which dispatches without sleeping.
 * Work that needs no wait (a future done at once, a callback due) does
 * not make it readable, so call shmq_poller_run_once(@p, 0) also after
 * adding a watch or a future: that arms their waits.  Never read it or
 * close it.
 * Context: since 1.1.
 * Return: the descriptor; -EINVAL.
 */
SHMQ_API int shmq_poller_fd(const struct shmq_poller *p);

/**
 * shmq_poller_add() - call @fn whenever any object is ready.
 * @p:		poller
 * @obj:	object (shmq_queue_object(), shmq_sem_object())
 * @events:	SHMQ_POLL_RECV or SHMQ_POLL_SEND, as for shmq_waiter_new()
 * @fn:		callback, called with @events while the object stays ready
 *		(level-triggered: at most once per loop iteration); it does the
 *		operation itself (a receive, shmq_sem_try_wait()), which may lose
 *		to another process
 * @arg:	for @fn
 * @ret:	the watch
 *
 * Return: 0; -EINVAL; -EBADF the handle cannot do @events; -ENOMEM.
 */
SHMQ_API int shmq_poller_add(struct shmq_poller *p, struct shmq_object *obj, unsigned int events,
			     shmq_watch_fn *fn, void *arg, struct shmq_watch **ret);

/**
 * shmq_poller_add_queue() - call @fn whenever a queue is ready.
 * (shmq_poller_add() on shmq_queue_object(@q).)
 * @p:		poller
 * @q:		queue (SHMQ_RECV for SHMQ_POLL_RECV, SHMQ_SEND for SHMQ_POLL_SEND)
 * @events:	SHMQ_POLL_RECV or SHMQ_POLL_SEND
 * @fn:		callback, called with @events while the queue stays ready
 *		(level-triggered: at most once per loop iteration)
 * @arg:	for @fn
 * @ret:	the watch
 *
 * Return: 0; -EINVAL; -EBADF the handle cannot do @events; -ENOMEM.
 */
SHMQ_API int shmq_poller_add_queue(struct shmq_poller *p, struct shmq_queue *q, unsigned int events,
				   shmq_watch_fn *fn, void *arg, struct shmq_watch **ret);

/**
 * shmq_poller_add_sem() - call @fn whenever a semaphore has a token.
 * (shmq_poller_add() on shmq_sem_object(@s) for SHMQ_POLL_RECV.)
 * @p:		poller
 * @s:		semaphore (not a view)
 * @fn:		callback (level-triggered); it takes the token itself with
 *		shmq_sem_try_wait(), which may lose to another process
 * @arg:	for @fn
 * @ret:	the watch
 *
 * Return: 0; -EINVAL; -EBADF a view; -ENOMEM.
 */
SHMQ_API int shmq_poller_add_sem(struct shmq_poller *p, struct shmq_sem *s, shmq_watch_fn *fn,
				 void *arg, struct shmq_watch **ret);

/**
 * shmq_poller_add_fd() - call @fn whenever a file descriptor is ready.
 * @p:		poller
 * @fd:		descriptor, kept open by the caller while watched
 * @events:	poll(2) events (POLLIN, POLLOUT, ...)
 * @fn:		callback with the revents (level-triggered)
 * @arg:	for @fn
 * @ret:	the watch
 *
 * Return: 0; -EINVAL; -ENOMEM.
 */
SHMQ_API int shmq_poller_add_fd(struct shmq_poller *p, int fd, unsigned int events,
				shmq_watch_fn *fn, void *arg, struct shmq_watch **ret);

/**
 * shmq_poller_add_timer() - call @fn at @deadline_ns, then every @interval_ns.
 * @p:		poller
 * @deadline_ns: first expiry, absolute CLOCK_MONOTONIC
 * @interval_ns: period; 0 for a one-shot timer (it stays registered, idle)
 * @fn:		callback with the number of periods since its last call
 * @arg:	for @fn
 * @ret:	the watch
 *
 * Return: 0; -EINVAL; -ENOMEM.
 */
SHMQ_API int shmq_poller_add_timer(struct shmq_poller *p, uint64_t deadline_ns,
				   uint64_t interval_ns, shmq_watch_fn *fn, void *arg,
				   struct shmq_watch **ret);

/**
 * shmq_watch_free() - stop watching and free the watch.
 * @w:		watch, or NULL (no-op)
 *
 * Cancels the watch's request and waits for its completion (the kernel
 * completes a cancelled wait at once), so the watched object may be closed
 * as soon as this returns.  Allowed inside any callback, @w's own too.
 * Context: the loop's thread.
 */
SHMQ_API void shmq_watch_free(struct shmq_watch *w);

/**
 * shmq_poller_recv() - a future that receives one message from a queue.
 * @p:		poller
 * @q:		queue opened with SHMQ_RECV
 * @buf:	where the message goes; must stay valid until the future is done
 * @size:	bytes at @buf
 * @deadline_ns: 0 for never block, else absolute CLOCK_MONOTONIC or SHMQ_FOREVER
 * @fn:		called when done, or NULL
 * @arg:	for @fn
 * @ret:	the future
 *
 * The message is taken from the queue only when it fits the future (as
 * shmq_queue_recv()): the future's result is its length.  A message that is
 * already there completes the future at once, in this call, with no system
 * call and (past the first few futures) no allocation; @fn still runs from
 * the loop, on its next step.  The same holds for shmq_poller_recv_batch()
 * and, with a token free, shmq_poller_acquire().
 * Return: 0; -EINVAL; -EBADF not opened for receiving; -ENOMEM.
 *         The future's result: the length (>= 0); -EAGAIN (deadline 0); -ETIMEDOUT; -ECANCELED;
 *         -EMSGSIZE (consumed); -EBADMSG.
 */
SHMQ_API int shmq_poller_recv(struct shmq_poller *p, struct shmq_queue *q, void *buf, size_t size,
			      uint64_t deadline_ns, shmq_future_fn *fn, void *arg,
			      struct shmq_future **ret);

/**
 * shmq_poller_recv_batch() - a future that receives a burst: at least one
 * message, up to @n, in one completion.
 * @p:		poller
 * @q:		queue opened with SHMQ_RECV
 * @msgs:	@n buffers (iov_len: the size on entry, the message's length
 *		when done); must stay valid until the future is done
 * @n:		at least 1
 * @deadline_ns: 0 for never block, else absolute CLOCK_MONOTONIC or SHMQ_FOREVER
 * @fn:		called when done, or NULL
 * @arg:	for @fn
 * @ret:	the future
 *
 * As shmq_queue_recv_batch() once a message is there: a consumer that
 * awaits one future per burst pays one completion, not one per message.
 * Return: 0; -EINVAL; -EBADF not opened for receiving; -ENOMEM.
 *         The future's result: how many (1..@n); -EAGAIN (deadline 0); -ETIMEDOUT; -ECANCELED;
 *         -EMSGSIZE, -EBADMSG (the first message, consumed); -EPIPE.
 */
SHMQ_API int shmq_poller_recv_batch(struct shmq_poller *p, struct shmq_queue *q, struct iovec *msgs,
				    unsigned int n, uint64_t deadline_ns, shmq_future_fn *fn,
				    void *arg, struct shmq_future **ret);

/**
 * shmq_poller_acquire() - a future that takes one token of a semaphore.
 * @p:		poller
 * @s:		semaphore (not a view)
 * @deadline_ns: 0 for never block, else absolute CLOCK_MONOTONIC or SHMQ_FOREVER
 * @fn:		called when done, or NULL
 * @arg:	for @fn
 * @ret:	the future
 *
 * A result of 0 means the token is the caller's, as after shmq_sem_wait()
 * (counted for SHMQ_SEM_ATTR_UNDO); give it back with shmq_sem_post().
 * Return: 0; -EINVAL; -EBADF a view; -ENOMEM.
 *         The future's result: 0; -EAGAIN (deadline 0); -ETIMEDOUT; -ECANCELED.
 */
SHMQ_API int shmq_poller_acquire(struct shmq_poller *p, struct shmq_sem *s, uint64_t deadline_ns,
				 shmq_future_fn *fn, void *arg, struct shmq_future **ret);

/**
 * shmq_poller_ready() - a future that completes when a queue is ready.
 * @p:		poller
 * @q:		queue
 * @events:	SHMQ_POLL_RECV or SHMQ_POLL_SEND
 * @deadline_ns: 0 for never block, else absolute CLOCK_MONOTONIC or SHMQ_FOREVER
 * @fn:		called when done, or NULL
 * @arg:	for @fn
 * @ret:	the future
 *
 * The multiprocessing.connection.wait() building block: nothing is taken.
 * Return: 0; -EINVAL; -EBADF; -ENOMEM.
 *         The future's result: @events; -EAGAIN (deadline 0); -ETIMEDOUT; -ECANCELED.
 */
SHMQ_API int shmq_poller_ready(struct shmq_poller *p, struct shmq_queue *q, unsigned int events,
			       uint64_t deadline_ns, shmq_future_fn *fn, void *arg,
			       struct shmq_future **ret);

/**
 * shmq_future_result() - the result of a future.
 * @f:		future
 *
 * Return: -EINPROGRESS not done yet; else the result documented by the
 *         function that made it; -EINVAL @f is NULL.
 */
SHMQ_API int shmq_future_result(const struct shmq_future *f);

/**
 * shmq_future_cancel() - complete a pending future with -ECANCELED.
 * @f:		future
 *
 * Nothing is taken after this returns.  The callback runs on the next loop
 * iteration, as for any completion.
 * Context: the loop's thread.
 * Return: 0; -EALREADY already done (the result stands); -EINVAL.
 */
SHMQ_API int shmq_future_cancel(struct shmq_future *f);

/**
 * shmq_future_free() - free a future, cancelling it first if it is pending.
 * @f:		future, or NULL (no-op)
 *
 * The callback is not called for a future freed while pending.  Allowed in
 * any callback.  A received message or a token held by a done future
 * belongs to the caller already.
 * Context: the loop's thread.
 */
SHMQ_API void shmq_future_free(struct shmq_future *f);

/**
 * shmq_poller_run_once() - wait for activity, dispatch it, return.
 * @p:		poller
 * @deadline_ns: absolute CLOCK_MONOTONIC; 0 never sleeps; SHMQ_FOREVER
 *
 * Dispatches everything that is ready, sleeping first until something is
 * or @deadline_ns passes.  Never returns -EINTR.
 * Return: callbacks run plus futures completed (0: the deadline passed, or
 *         shmq_poller_stop()); a callback's negative errno; -EINVAL.
 */
SHMQ_API int shmq_poller_run_once(struct shmq_poller *p, uint64_t deadline_ns);

/**
 * shmq_poller_run_until_idle() - run until nothing is left to wait for.
 * @p:		poller
 * @deadline_ns: absolute CLOCK_MONOTONIC, or SHMQ_FOREVER
 *
 * Idle means no watch is registered and no future is pending (as libuv's
 * default run mode): free your watches to let it return.
 * Return: 0 idle, or shmq_poller_stop(); -ETIMEDOUT; a callback's
 *         negative errno; -EINVAL.
 */
SHMQ_API int shmq_poller_run_until_idle(struct shmq_poller *p, uint64_t deadline_ns);

/**
 * shmq_poller_run() - run until shmq_poller_stop().
 * @p:		poller
 *
 * Return: 0 stopped; a callback's negative errno; -EINVAL.
 */
SHMQ_API int shmq_poller_run(struct shmq_poller *p);

/**
 * shmq_poller_stop() - make the running (or next) run call return.
 * @p:		poller
 *
 * Context: any thread, and signal handlers (an atomic store and a write(2)
 * to an eventfd).
 * Return: 0; -EINVAL.
 */
SHMQ_API int shmq_poller_stop(struct shmq_poller *p);

/**
 * shmq_poller_wait() - run the loop until the first, or all, of some futures are done.
 * @p:		poller
 * @futures:	futures of @p
 * @n:		how many, >= 1
 * @how:	SHMQ_WAIT_FIRST or SHMQ_WAIT_ALL
 * @deadline_ns: absolute CLOCK_MONOTONIC, or SHMQ_FOREVER
 *
 * asyncio.wait() and multiprocessing.connection.wait() in one: every other
 * watch and future of @p is served meanwhile.  Look at each future with
 * shmq_future_result() afterwards.  shmq_poller_stop() does not end it.
 * Callbacks must not free the futures in @futures while it runs.
 * Return: the number of @futures done (>= 1, or @n for SHMQ_WAIT_ALL);
 *         -ETIMEDOUT; a callback's negative errno; -EINVAL.
 */
SHMQ_API int shmq_poller_wait(struct shmq_poller *p, struct shmq_future *const *futures,
			      unsigned int n, unsigned int how, uint64_t deadline_ns);

#ifdef __cplusplus
}
#endif

#endif /* SHMQ_SHMQ_H */
