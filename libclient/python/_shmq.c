/* SPDX-License-Identifier: MIT */
/*
 * _shmq: the CPython binding of libshmq, under the pure-Python package
 * shmq/ (libclient/python/shmq), which gives it multiprocessing's names.
 * Written against the public shmq.h only and linked with libshmq.a.
 *
 * Errors: a -errno from libshmq becomes OSError(errno, shmq_strerror()),
 * which Python turns into its subclass for that errno (FileNotFoundError,
 * FileExistsError, PermissionError, BlockingIOError for -EAGAIN,
 * TimeoutError for -ETIMEDOUT, BrokenPipeError for -EPIPE); the package
 * maps those to queue.Full, queue.Empty and the like.
 *
 * Blocking: every wait releases the GIL and sleeps in slices of SLICE_NS
 * against one absolute deadline, taking the GIL back between slices to
 * run signal handlers, so Ctrl-C (KeyboardInterrupt) ends a get() or an
 * acquire() that would otherwise wait forever.  timeout=None waits
 * forever, 0 never waits (libshmq's deadline 0, its try form), and a
 * positive number of seconds waits that long, as in threading and queue.
 *
 * Threads: each handle has a mutex of its own, taken with the GIL
 * released, so Python threads may share a handle (libshmq allows one
 * receiving thread per queue handle).  A queue is two handles, a sender
 * and a receiver, so a thread blocked in get() never holds up a put().
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include <shmq/shmq.h>

#define SLICE_NS (UINT64_C(50) * 1000000) /* how often a blocked call looks at signals */

/*
 * A control call's failure: OSError(errno, "strerror: the daemon's
 * reason") when it gave one (shmq_last_error()).
 */
static PyObject *raise_ctl_errno(int r)
{
	const char *why = shmq_last_error();
	PyObject *text = why[0] ? PyUnicode_FromFormat("%s: %s", shmq_strerror(r), why)
				: PyUnicode_FromString(shmq_strerror(r));
	PyObject *args = text ? Py_BuildValue("(iN)", -r, text) : NULL; /* N: takes text */

	if (args) {
		PyErr_SetObject(PyExc_OSError, args);
		Py_DECREF(args);
	}
	return NULL;
}

/* A data-path failure: OSError(errno, strerror); no daemon was asked. */
static PyObject *raise_errno(int r)
{
	PyObject *args = Py_BuildValue("(is)", -r, shmq_strerror(r));

	if (args) {
		PyErr_SetObject(PyExc_OSError, args);
		Py_DECREF(args);
	}
	return NULL;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

/*
 * A Python timeout as a libshmq deadline: None -> SHMQ_FOREVER, 0 (or a
 * negative one, as queue.Queue treats it) -> 0, else now + seconds.
 * Return: 0, or -1 with a TypeError/ValueError set.
 */
static int deadline_of(PyObject *timeout, uint64_t *ret)
{
	double s;

	if (!timeout || timeout == Py_None) {
		*ret = SHMQ_FOREVER;
		return 0;
	}
	s = PyFloat_AsDouble(timeout);
	if (s == -1.0 && PyErr_Occurred())
		return -1;
	if (s != s) {
		PyErr_SetString(PyExc_ValueError, "timeout is NaN");
		return -1;
	}
	if (s <= 0) {
		*ret = 0;
		return 0;
	}
	*ret = s >= 1e9 ? SHMQ_FOREVER : now_ns() + (uint64_t)(s * 1e9);
	return 0;
}

/* The deadline of the next slice of a wait until @deadline_ns (0: the try form, no slice). */
static uint64_t slice_end(uint64_t deadline_ns)
{
	uint64_t end;

	if (deadline_ns == 0)
		return 0;
	end = now_ns() + SLICE_NS;
	return end < deadline_ns ? end : deadline_ns;
}

/*
 * Run @fn(@arg, deadline) with the GIL released, in slices, until it
 * returns anything but -ETIMEDOUT for a slice, or @deadline_ns passes.
 * @lock: the handle's mutex, held across each call, or NULL where calls
 * may run side by side.  Return: @fn's result; INT32_MIN when a signal
 * handler raised (the exception is set).
 */
static int wait_sliced(pthread_mutex_t *lock, int (*fn)(void *arg, uint64_t deadline_ns), void *arg,
		       uint64_t deadline_ns)
{
	int r;

	for (;;) {
		uint64_t slice = slice_end(deadline_ns);

		Py_BEGIN_ALLOW_THREADS
		if (lock)
			pthread_mutex_lock(lock);
		r = fn(arg, slice);
		if (lock)
			pthread_mutex_unlock(lock);
		Py_END_ALLOW_THREADS
		if (r != -ETIMEDOUT || slice == deadline_ns)
			return r;
		if (PyErr_CheckSignals() < 0)
			return INT32_MIN;
	}
}

/* --- Client --- */

typedef struct {
	PyObject_HEAD struct shmq_client *c;
} ClientObject;

static int Client_init(ClientObject *self, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"socket", NULL};
	const char *path = NULL;
	int r;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "|z", kwlist, &path))
		return -1;
	if (self->c) {
		PyErr_SetString(PyExc_RuntimeError, "client already connected");
		return -1;
	}
	Py_BEGIN_ALLOW_THREADS
	r = shmq_client_connect(path, &self->c);
	Py_END_ALLOW_THREADS
	if (r < 0) {
		self->c = NULL;
		raise_ctl_errno(r);
		return -1;
	}
	return 0;
}

static void Client_dealloc(ClientObject *self)
{
	if (self->c)
		shmq_client_close(self->c);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static struct shmq_client *client_of(ClientObject *self)
{
	if (!self->c)
		PyErr_SetString(PyExc_ValueError, "client is closed");
	return self->c;
}

static PyObject *Client_unlink(ClientObject *self, PyObject *args)
{
	struct shmq_client *c = client_of(self);
	const char *name;
	int r;

	if (!c || !PyArg_ParseTuple(args, "s", &name))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = shmq_unlink(c, name);
	Py_END_ALLOW_THREADS
	if (r < 0)
		return raise_ctl_errno(r);
	Py_RETURN_NONE;
}

static PyMethodDef Client_methods[] = {
	{"unlink", (PyCFunction)Client_unlink, METH_VARARGS, "Remove a name."},
	{NULL},
};

static PyTypeObject ClientType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_shmq.Client",
	.tp_basicsize = sizeof(ClientObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "A connection to shmqd: Client(socket=None).",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)Client_init,
	.tp_dealloc = (destructor)Client_dealloc,
	.tp_methods = Client_methods,
};

/* The client argument of every open: a _shmq.Client that is connected. */
static struct shmq_client *client_arg(PyObject *o)
{
	if (!PyObject_TypeCheck(o, &ClientType)) {
		PyErr_SetString(PyExc_TypeError, "expected a _shmq.Client");
		return NULL;
	}
	return client_of((ClientObject *)o);
}

/* --- Queue: one handle, sending or receiving --- */

typedef struct {
	PyObject_HEAD PyObject *client; /* kept alive while the handle is */
	struct shmq_queue *q;
	pthread_mutex_t lock;
	bool sending;
} QueueObject;

static int Queue_init(QueueObject *self, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"client",    "name",	 "sending",  "create", "slots",
				 "slot_size", "max_msg", "joinable", NULL};
	struct shmq_queue_attr a = {.size = sizeof(a), .mode = SHMQ_MPMC, .numa_node = -1};
	unsigned int slots = 0, slot_size = 0, max_msg = 0;
	int sending, create = 0, joinable = 0, r;
	struct shmq_client *c;
	unsigned int flags;
	PyObject *client;
	const char *name;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "Osp|pIIIp", kwlist, &client, &name, &sending,
					 &create, &slots, &slot_size, &max_msg, &joinable))
		return -1;
	c = client_arg(client);
	if (!c)
		return -1;
	if (self->q) {
		PyErr_SetString(PyExc_RuntimeError, "queue already open");
		return -1;
	}
	a.n_slots = slots;
	a.slot_size = slot_size;
	a.max_msg = max_msg;
	a.flags = joinable ? SHMQ_QUEUE_JOINABLE : 0;
	flags = (sending ? SHMQ_SEND : SHMQ_RECV) | (create ? SHMQ_CREATE : 0);
	Py_BEGIN_ALLOW_THREADS
	r = shmq_queue_open(c, name, flags, create ? &a : NULL, &self->q);
	Py_END_ALLOW_THREADS
	if (r < 0) {
		self->q = NULL;
		raise_ctl_errno(r);
		return -1;
	}
	pthread_mutex_init(&self->lock, NULL);
	self->sending = sending;
	Py_INCREF(client);
	self->client = client;
	return 0;
}

static void queue_close(QueueObject *self)
{
	if (!self->q)
		return;
	Py_BEGIN_ALLOW_THREADS
	pthread_mutex_lock(&self->lock);
	shmq_queue_close(self->q);
	self->q = NULL;
	pthread_mutex_unlock(&self->lock);
	Py_END_ALLOW_THREADS
	pthread_mutex_destroy(&self->lock);
}

static void Queue_dealloc(QueueObject *self)
{
	queue_close(self);
	Py_XDECREF(self->client);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static struct shmq_queue *queue_of(QueueObject *self)
{
	if (!self->q)
		PyErr_SetString(PyExc_ValueError, "queue is closed");
	return self->q;
}

/* A send for wait_sliced(): @h the queue or the pipe end, one message. */
struct send_call {
	void *h;
	const void *buf;
	size_t len;
};

static int send_fn(void *arg, uint64_t deadline_ns)
{
	struct send_call *s = arg;

	return shmq_queue_send_wait(s->h, s->buf, s->len, deadline_ns);
}

static PyObject *Queue_send(QueueObject *self, PyObject *args)
{
	PyObject *timeout = Py_None;
	struct send_call s;
	uint64_t deadline;
	Py_buffer view;
	int r = -EAGAIN;

	if (!queue_of(self) || !PyArg_ParseTuple(args, "y*|O", &view, &timeout))
		return NULL;
	if (deadline_of(timeout, &deadline) < 0) {
		PyBuffer_Release(&view);
		return NULL;
	}
	/*
	 * First a try with the GIL held: no system call, and none of the cost
	 * of handing the GIL over, when there is room (the common case).
	 */
	if (pthread_mutex_trylock(&self->lock) == 0) {
		r = shmq_queue_send(self->q, view.buf, (size_t)view.len);
		pthread_mutex_unlock(&self->lock);
	}
	if (r == -EAGAIN && deadline != 0) {
		s = (struct send_call){.h = self->q, .buf = view.buf, .len = (size_t)view.len};
		r = wait_sliced(&self->lock, send_fn, &s, deadline);
	}
	PyBuffer_Release(&view);
	if (r == INT32_MIN)
		return NULL;
	if (r < 0)
		return raise_errno(r);
	Py_RETURN_NONE;
}

/*
 * A gathered send: @n parts of one message, each a contiguous buffer of
 * the caller's (kept by @views until parts_release()).
 */
struct parts_call {
	void *h;
	int (*sendv)(void *h, const struct iovec *parts, unsigned int n, uint64_t deadline_ns);
	struct iovec *iov;
	Py_buffer *views;
	unsigned int n;
};

static void parts_release(struct parts_call *c)
{
	for (unsigned int i = 0; i < c->n; i++)
		PyBuffer_Release(&c->views[i]);
	PyMem_Free(c->views);
	PyMem_Free(c->iov);
}

/* Take the buffers of the sequence @seq.  Return: 0; -1 with the exception set. */
static int parts_get(struct parts_call *c, PyObject *seq)
{
	PyObject *fast = PySequence_Fast(seq, "parts must be a sequence of buffers");
	Py_ssize_t n;

	if (!fast)
		return -1;
	n = PySequence_Fast_GET_SIZE(fast);
	if (n > (Py_ssize_t)UINT16_MAX) {
		Py_DECREF(fast);
		PyErr_SetString(PyExc_ValueError, "too many parts");
		return -1;
	}
	c->n = 0;
	c->views = PyMem_Calloc((size_t)n + 1, sizeof(*c->views));
	c->iov = PyMem_Calloc((size_t)n + 1, sizeof(*c->iov));
	if (!c->views || !c->iov) {
		Py_DECREF(fast);
		parts_release(c);
		PyErr_NoMemory();
		return -1;
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(fast, i), &c->views[i],
				       PyBUF_SIMPLE) < 0) {
			Py_DECREF(fast);
			parts_release(c);
			return -1;
		}
		c->n++;
		c->iov[i] = (struct iovec){.iov_base = c->views[i].buf,
					   .iov_len = (size_t)c->views[i].len};
	}
	Py_DECREF(fast);
	return 0;
}

static int parts_fn(void *arg, uint64_t deadline_ns)
{
	struct parts_call *c = arg;

	return c->sendv(c->h, c->iov, c->n, deadline_ns);
}

/* send_parts(parts, timeout=None): one message made of the buffers of @parts, copied once. */
static PyObject *send_parts(void *h, pthread_mutex_t *lock,
			    int (*sendv)(void *, const struct iovec *, unsigned int, uint64_t),
			    PyObject *args)
{
	PyObject *seq, *timeout = Py_None;
	struct parts_call c = {.h = h, .sendv = sendv};
	uint64_t deadline;
	int r;

	if (!PyArg_ParseTuple(args, "O|O", &seq, &timeout) || deadline_of(timeout, &deadline) < 0 ||
	    parts_get(&c, seq) < 0)
		return NULL;
	r = wait_sliced(lock, parts_fn, &c, deadline);
	parts_release(&c);
	if (r == INT32_MIN)
		return NULL;
	if (r < 0)
		return raise_errno(r);
	Py_RETURN_NONE;
}

static int queue_sendv(void *h, const struct iovec *parts, unsigned int n, uint64_t deadline_ns)
{
	return shmq_queue_sendv(h, parts, n, deadline_ns);
}

static PyObject *Queue_send_parts(QueueObject *self, PyObject *args)
{
	return queue_of(self) ? send_parts(self->q, &self->lock, queue_sendv, args) : NULL;
}

struct peek_call {
	struct shmq_queue *q;
	const void *msg;
};

static int peek_fn(void *arg, uint64_t deadline_ns)
{
	struct peek_call *p = arg;

	return shmq_queue_peek(p->q, deadline_ns, &p->msg);
}

/*
 * The first byte of a message the shmq package framed with out-of-band
 * pickle buffers (shmq/__init__.py, _OOB_MARK): a plain pickle starts with
 * 0x80, the PROTO opcode.  Such a message is received into a bytearray,
 * so the buffers unpickled over it are writable, as they were when dumped.
 */
#define OOB_MARK 0x01

/* A received message as a Python object: bytes, or a bytearray for an @oob frame. */
static PyObject *msg_object(const void *msg, int len, bool oob)
{
	if (oob && len > 0 && *(const unsigned char *)msg == OOB_MARK)
		return PyByteArray_FromStringAndSize(msg, len);
	return PyBytes_FromStringAndSize(msg, len);
}

/*
 * recv(timeout=None, oob=False) -> bytes (a bytearray for an out-of-band
 * frame, when @oob).  The message is read in place (a peek), copied once
 * into the object, then released: a process killed in between has it
 * delivered again to another receiver.
 */
static PyObject *Queue_recv(QueueObject *self, PyObject *args)
{
	PyObject *timeout = Py_None, *out;
	struct peek_call p;
	uint64_t deadline;
	int r, oob = 0;

	if (!queue_of(self) || !PyArg_ParseTuple(args, "|Op", &timeout, &oob))
		return NULL;
	if (deadline_of(timeout, &deadline) < 0)
		return NULL;
	p = (struct peek_call){.q = self->q};
	/* A try with the GIL held first, as in send(). */
	if (pthread_mutex_trylock(&self->lock) == 0) {
		r = shmq_queue_peek(self->q, 0, &p.msg);
		if (r >= 0)
			goto got; /* the mutex stays held until the release */
		pthread_mutex_unlock(&self->lock);
		if (r != -EAGAIN || deadline == 0)
			return raise_errno(r);
	}
	/* The mutex stays held from the peek to the release: the slot is this handle's. */
	for (;;) {
		uint64_t slice = slice_end(deadline);

		Py_BEGIN_ALLOW_THREADS
		pthread_mutex_lock(&self->lock);
		r = peek_fn(&p, slice);
		if (r < 0)
			pthread_mutex_unlock(&self->lock);
		Py_END_ALLOW_THREADS
		if (r != -ETIMEDOUT || slice == deadline)
			break;
		if (PyErr_CheckSignals() < 0)
			return NULL;
	}
	if (r < 0)
		return raise_errno(r);
got:
	out = msg_object(p.msg, r, oob);
	shmq_queue_release(self->q);
	pthread_mutex_unlock(&self->lock);
	return out;
}

#define MANY_MAX 256 /* messages per send_many()/recv_many() batch call */

struct batch_call {
	struct shmq_queue *q;
	struct iovec *iov;
	unsigned int n;
};

static int send_batch_fn(void *arg, uint64_t deadline_ns)
{
	struct batch_call *b = arg;

	return shmq_queue_send_batch_wait(b->q, b->iov, b->n, deadline_ns);
}

/*
 * send_many(list of bytes-likes, timeout=None) -> how many were sent: all
 * of them, unless the timeout passed first (then the count so far).  Up to
 * MANY_MAX go in one call of the batch API.
 */
static PyObject *Queue_send_many(QueueObject *self, PyObject *args)
{
	PyObject *seq, *fast, *timeout = Py_None;
	Py_buffer views[MANY_MAX];
	struct iovec iov[MANY_MAX];
	Py_ssize_t total, done = 0;
	uint64_t deadline;
	int r = 0;

	if (!queue_of(self) || !PyArg_ParseTuple(args, "O|O", &seq, &timeout) ||
	    deadline_of(timeout, &deadline) < 0)
		return NULL;
	fast = PySequence_Fast(seq, "send_many() takes a sequence of bytes-like objects");
	if (!fast)
		return NULL;
	total = PySequence_Fast_GET_SIZE(fast);
	while (done < total && r >= 0) {
		unsigned int n = 0, sent = 0;

		for (; n < MANY_MAX && done + n < total; n++) {
			PyObject *o = PySequence_Fast_GET_ITEM(fast, done + n);

			if (PyObject_GetBuffer(o, &views[n], PyBUF_SIMPLE) < 0)
				break;
			iov[n] = (struct iovec){views[n].buf, (size_t)views[n].len};
		}
		while (sent < n) {
			struct batch_call b = {.q = self->q, .iov = iov + sent, .n = n - sent};

			r = wait_sliced(&self->lock, send_batch_fn, &b, deadline);
			if (r <= 0)
				break;
			sent += (unsigned int)r;
		}
		for (unsigned int i = 0; i < n; i++)
			PyBuffer_Release(&views[i]);
		done += sent;
		if (PyErr_Occurred() || sent < n)
			break;
	}
	Py_DECREF(fast);
	if (PyErr_Occurred())
		return NULL;
	if (r < 0 && r != -ETIMEDOUT && r != -EAGAIN)
		return raise_errno(r);
	return PyLong_FromSsize_t(done);
}

/*
 * recv_many(n, timeout=None, oob=False) -> list of bytes (as recv()), 1..n of them: waits for
 * the first as recv() does, then takes what is queued behind it, up to n,
 * each read in place and copied once, all under one hold of the handle's
 * mutex and the GIL: no system call and no GIL hand-over per message.
 */
static PyObject *Queue_recv_many(QueueObject *self, PyObject *args)
{
	PyObject *timeout = Py_None, *first_args, *first, *out;
	unsigned int n;
	int oob = 0;

	if (!queue_of(self) || !PyArg_ParseTuple(args, "I|Op", &n, &timeout, &oob))
		return NULL;
	if (n == 0)
		return PyList_New(0);
	first_args = Py_BuildValue("(OO)", timeout, oob ? Py_True : Py_False);
	if (!first_args)
		return NULL;
	first = Queue_recv(self, first_args);
	Py_DECREF(first_args);
	if (!first)
		return NULL;
	out = PyList_New(1);
	if (!out) {
		Py_DECREF(first);
		return NULL;
	}
	PyList_SET_ITEM(out, 0, first);
	if (pthread_mutex_trylock(&self->lock) != 0)
		return out; /* another thread receives: the first alone is an answer */
	while (--n > 0) {
		const void *msg;
		PyObject *b;
		int r = shmq_queue_peek(self->q, 0, &msg);

		if (r < 0)
			break; /* empty (or a bad message, which the next recv() reports) */
		b = msg_object(msg, r, oob);
		shmq_queue_release(self->q);
		if (!b || PyList_Append(out, b) < 0) {
			Py_XDECREF(b);
			pthread_mutex_unlock(&self->lock);
			Py_DECREF(out);
			return NULL;
		}
		Py_DECREF(b);
	}
	pthread_mutex_unlock(&self->lock);
	return out;
}

static PyObject *Queue_stats(QueueObject *self, PyObject *unused)
{
	struct shmq_queue_stats st = {.size = sizeof(st)};
	int r;

	(void)unused;
	if (!queue_of(self))
		return NULL;
	r = shmq_queue_stats(self->q, &st);
	if (r < 0)
		return raise_errno(r);
	return Py_BuildValue("{s:I,s:I,s:I,s:K,s:K}", "depth", st.depth, "capacity", st.capacity,
			     "slot_size", st.slot_size, "sent", (unsigned long long)st.sent,
			     "received", (unsigned long long)st.received);
}

static PyObject *Queue_max_msg(QueueObject *self, PyObject *unused)
{
	(void)unused;
	if (!queue_of(self))
		return NULL;
	return PyLong_FromLong(shmq_queue_max_msg(self->q));
}

static PyObject *Queue_shutdown(QueueObject *self, PyObject *args)
{
	int immediate = 0, r;

	if (!queue_of(self) || !PyArg_ParseTuple(args, "|p", &immediate))
		return NULL;
	r = shmq_queue_shutdown(self->q, immediate ? SHMQ_SHUTDOWN_IMMEDIATE : 0);
	if (r < 0)
		return raise_errno(r);
	Py_RETURN_NONE;
}

static PyObject *Queue_task_done(QueueObject *self, PyObject *unused)
{
	int r;

	(void)unused;
	if (!queue_of(self))
		return NULL;
	r = shmq_queue_task_done(self->q);
	if (r < 0)
		return raise_errno(r);
	Py_RETURN_NONE;
}

static int join_fn(void *arg, uint64_t deadline_ns)
{
	return shmq_queue_join(arg, deadline_ns);
}

/* join(timeout=None) -> bool: False when the timeout passed first. */
static PyObject *Queue_join(QueueObject *self, PyObject *args)
{
	PyObject *timeout = Py_None;
	uint64_t deadline;
	int r;

	if (!queue_of(self) || !PyArg_ParseTuple(args, "|O", &timeout) ||
	    deadline_of(timeout, &deadline) < 0)
		return NULL;
	/* Joins may run side by side with anything on the handle: no mutex. */
	r = wait_sliced(NULL, join_fn, self->q, deadline);
	if (r == INT32_MIN)
		return NULL;
	if (r == -EAGAIN || r == -ETIMEDOUT)
		Py_RETURN_FALSE;
	if (r < 0)
		return raise_errno(r);
	Py_RETURN_TRUE;
}

static PyObject *Queue_close(QueueObject *self, PyObject *unused)
{
	(void)unused;
	queue_close(self);
	Py_RETURN_NONE;
}

static PyMethodDef Queue_methods[] = {
	{"send", (PyCFunction)Queue_send, METH_VARARGS, "send(data, timeout=None)"},
	{"recv", (PyCFunction)Queue_recv, METH_VARARGS, "recv(timeout=None, oob=False) -> bytes"},
	{"send_parts", (PyCFunction)Queue_send_parts, METH_VARARGS,
	 "send_parts(parts, timeout=None): one message gathered from buffers"},
	{"send_many", (PyCFunction)Queue_send_many, METH_VARARGS,
	 "send_many(seq, timeout=None) -> count sent"},
	{"recv_many", (PyCFunction)Queue_recv_many, METH_VARARGS,
	 "recv_many(n, timeout=None, oob=False) -> [bytes, ...]"},
	{"stats", (PyCFunction)Queue_stats, METH_NOARGS, "depth, capacity and counters"},
	{"max_msg", (PyCFunction)Queue_max_msg, METH_NOARGS, "largest message, bytes"},
	{"shutdown", (PyCFunction)Queue_shutdown, METH_VARARGS, "shutdown(immediate=False)"},
	{"task_done", (PyCFunction)Queue_task_done, METH_NOARGS, "a task received is done"},
	{"join", (PyCFunction)Queue_join, METH_VARARGS, "join(timeout=None) -> bool"},
	{"close", (PyCFunction)Queue_close, METH_NOARGS, "detach"},
	{NULL},
};

static PyTypeObject QueueType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_shmq.Queue",
	.tp_basicsize = sizeof(QueueObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Queue(client, name, sending, create=False, slots=0, slot_size=0, max_msg=0)",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)Queue_init,
	.tp_dealloc = (destructor)Queue_dealloc,
	.tp_methods = Queue_methods,
};

/* --- Semaphore --- */

typedef struct {
	PyObject_HEAD PyObject *client;
	struct shmq_sem *s;
	pthread_mutex_t lock;
} SemObject;

static int Sem_init(SemObject *self, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"client", "name", "create", "value", "bound", "undo", NULL};
	struct shmq_sem_attr a = {.size = sizeof(a)};
	unsigned int value = 1, bound = 0;
	int create = 0, undo = 0, r;
	struct shmq_client *c;
	PyObject *client;
	const char *name;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "Os|pIIp", kwlist, &client, &name, &create,
					 &value, &bound, &undo))
		return -1;
	c = client_arg(client);
	if (!c)
		return -1;
	if (self->s) {
		PyErr_SetString(PyExc_RuntimeError, "semaphore already open");
		return -1;
	}
	a.initial = value;
	a.max = bound;
	a.flags = (bound ? SHMQ_SEM_ATTR_BOUNDED : 0) | (undo ? SHMQ_SEM_ATTR_UNDO : 0);
	Py_BEGIN_ALLOW_THREADS
	r = shmq_sem_open(c, name, create ? SHMQ_CREATE : 0, create ? &a : NULL, &self->s);
	Py_END_ALLOW_THREADS
	if (r < 0) {
		self->s = NULL;
		raise_ctl_errno(r);
		return -1;
	}
	pthread_mutex_init(&self->lock, NULL);
	Py_INCREF(client);
	self->client = client;
	return 0;
}

static void Sem_dealloc(SemObject *self)
{
	if (self->s) {
		shmq_sem_close(self->s);
		pthread_mutex_destroy(&self->lock);
	}
	Py_XDECREF(self->client);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static int sem_wait_fn(void *arg, uint64_t deadline_ns)
{
	return shmq_sem_wait(arg, deadline_ns);
}

/* acquire(timeout=None) -> bool: False when the timeout passed (or 0 and none free). */
static PyObject *Sem_acquire(SemObject *self, PyObject *args)
{
	PyObject *timeout = Py_None;
	uint64_t deadline;
	int r;

	if (!self->s) {
		PyErr_SetString(PyExc_ValueError, "semaphore is closed");
		return NULL;
	}
	if (!PyArg_ParseTuple(args, "|O", &timeout) || deadline_of(timeout, &deadline) < 0)
		return NULL;
	/* A semaphore wait is thread-safe on one handle: the mutex only orders close. */
	r = wait_sliced(&self->lock, sem_wait_fn, self->s, deadline);
	if (r == INT32_MIN)
		return NULL;
	if (r == -EAGAIN || r == -ETIMEDOUT)
		Py_RETURN_FALSE;
	if (r < 0)
		return raise_errno(r);
	Py_RETURN_TRUE;
}

static PyObject *Sem_release(SemObject *self, PyObject *args)
{
	unsigned int n = 1;
	int r;

	if (!self->s) {
		PyErr_SetString(PyExc_ValueError, "semaphore is closed");
		return NULL;
	}
	if (!PyArg_ParseTuple(args, "|I", &n))
		return NULL;
	r = shmq_sem_post(self->s, n);
	if (r < 0)
		return raise_errno(r);
	Py_RETURN_NONE;
}

static PyObject *Sem_value(SemObject *self, PyObject *unused)
{
	int r;

	(void)unused;
	if (!self->s) {
		PyErr_SetString(PyExc_ValueError, "semaphore is closed");
		return NULL;
	}
	r = shmq_sem_value(self->s);
	if (r < 0)
		return raise_errno(r);
	return PyLong_FromLong(r);
}

static PyMethodDef Sem_methods[] = {
	{"acquire", (PyCFunction)Sem_acquire, METH_VARARGS, "acquire(timeout=None) -> bool"},
	{"release", (PyCFunction)Sem_release, METH_VARARGS, "release(n=1)"},
	{"value", (PyCFunction)Sem_value, METH_NOARGS, "the current value"},
	{NULL},
};

static PyTypeObject SemType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_shmq.Semaphore",
	.tp_basicsize = sizeof(SemObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Semaphore(client, name, create=False, value=1, bound=0, undo=False)",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)Sem_init,
	.tp_dealloc = (destructor)Sem_dealloc,
	.tp_methods = Sem_methods,
};

/* --- Lock --- */

typedef struct {
	PyObject_HEAD PyObject *client;
	struct shmq_lock *l;
	pthread_mutex_t lock;
} LockObject;

static int Lock_init(LockObject *self, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"client", "name", "create", "recursive", NULL};
	struct shmq_lock_attr a = {.size = sizeof(a)};
	int create = 0, recursive = 0, r;
	struct shmq_client *c;
	PyObject *client;
	const char *name;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "Os|pp", kwlist, &client, &name, &create,
					 &recursive))
		return -1;
	c = client_arg(client);
	if (!c)
		return -1;
	if (self->l) {
		PyErr_SetString(PyExc_RuntimeError, "lock already open");
		return -1;
	}
	a.flags = recursive ? SHMQ_LOCK_ATTR_RECURSIVE : 0;
	Py_BEGIN_ALLOW_THREADS
	r = shmq_lock_open(c, name, create ? SHMQ_CREATE : 0, create ? &a : NULL, &self->l);
	Py_END_ALLOW_THREADS
	if (r < 0) {
		self->l = NULL;
		raise_ctl_errno(r);
		return -1;
	}
	pthread_mutex_init(&self->lock, NULL);
	Py_INCREF(client);
	self->client = client;
	return 0;
}

static void Lock_dealloc(LockObject *self)
{
	if (self->l) {
		shmq_lock_close(self->l);
		pthread_mutex_destroy(&self->lock);
	}
	Py_XDECREF(self->client);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static int lock_fn(void *arg, uint64_t deadline_ns)
{
	int r = shmq_lock_acquire(arg, deadline_ns);

	/*
	 * A holder died holding it: the lock is ours, and Python's Lock has
	 * no way to say so.  Declare the state consistent and go on; the
	 * daemon logged the death.
	 */
	if (r == -EOWNERDEAD)
		r = shmq_lock_consistent(arg);
	return r;
}

/* acquire(timeout=None) -> bool */
static PyObject *Lock_acquire(LockObject *self, PyObject *args)
{
	PyObject *timeout = Py_None;
	uint64_t deadline;
	int r;

	if (!self->l) {
		PyErr_SetString(PyExc_ValueError, "lock is closed");
		return NULL;
	}
	if (!PyArg_ParseTuple(args, "|O", &timeout) || deadline_of(timeout, &deadline) < 0)
		return NULL;
	/*
	 * Not under the handle's mutex: the lock itself serialises its
	 * threads, and a thread waiting here must not keep release() out.
	 */
	r = wait_sliced(NULL, lock_fn, self->l, deadline);
	if (r == INT32_MIN)
		return NULL;
	if (r == -EAGAIN || r == -ETIMEDOUT)
		Py_RETURN_FALSE;
	if (r < 0)
		return raise_errno(r);
	Py_RETURN_TRUE;
}

static PyObject *Lock_release(LockObject *self, PyObject *unused)
{
	int r;

	(void)unused;
	if (!self->l) {
		PyErr_SetString(PyExc_ValueError, "lock is closed");
		return NULL;
	}
	r = shmq_lock_release(self->l);
	if (r < 0)
		return raise_errno(r);
	Py_RETURN_NONE;
}

static PyObject *Lock_is_mine(LockObject *self, PyObject *unused)
{
	(void)unused;
	if (!self->l) {
		PyErr_SetString(PyExc_ValueError, "lock is closed");
		return NULL;
	}
	return PyBool_FromLong(shmq_lock_is_mine(self->l) == 1);
}

static PyObject *Lock_is_locked(LockObject *self, PyObject *unused)
{
	(void)unused;
	if (!self->l) {
		PyErr_SetString(PyExc_ValueError, "lock is closed");
		return NULL;
	}
	return PyBool_FromLong(shmq_lock_is_locked(self->l) == 1);
}

static PyMethodDef Lock_methods[] = {
	{"acquire", (PyCFunction)Lock_acquire, METH_VARARGS, "acquire(timeout=None) -> bool"},
	{"release", (PyCFunction)Lock_release, METH_NOARGS, "release()"},
	{"is_mine", (PyCFunction)Lock_is_mine, METH_NOARGS, "held by the calling thread"},
	{"is_locked", (PyCFunction)Lock_is_locked, METH_NOARGS, "held by anyone (a snapshot)"},
	{NULL},
};

static PyTypeObject LockType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_shmq.Lock",
	.tp_basicsize = sizeof(LockObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Lock(client, name, create=False, recursive=False)",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)Lock_init,
	.tp_dealloc = (destructor)Lock_dealloc,
	.tp_methods = Lock_methods,
};

/* --- Event --- */

typedef struct {
	PyObject_HEAD PyObject *client;
	struct shmq_event *e;
	pthread_mutex_t lock;
} EventObject;

static int Event_init(EventObject *self, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"client", "name", "create", NULL};
	struct shmq_event_attr a = {.size = sizeof(a)};
	struct shmq_client *c;
	PyObject *client;
	const char *name;
	int create = 0, r;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "Os|p", kwlist, &client, &name, &create))
		return -1;
	c = client_arg(client);
	if (!c)
		return -1;
	if (self->e) {
		PyErr_SetString(PyExc_RuntimeError, "event already open");
		return -1;
	}
	Py_BEGIN_ALLOW_THREADS
	r = shmq_event_open(c, name, create ? SHMQ_CREATE : 0, create ? &a : NULL, &self->e);
	Py_END_ALLOW_THREADS
	if (r < 0) {
		self->e = NULL;
		raise_ctl_errno(r);
		return -1;
	}
	pthread_mutex_init(&self->lock, NULL);
	Py_INCREF(client);
	self->client = client;
	return 0;
}

static void Event_dealloc(EventObject *self)
{
	if (self->e) {
		shmq_event_close(self->e);
		pthread_mutex_destroy(&self->lock);
	}
	Py_XDECREF(self->client);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static struct shmq_event *event_of(EventObject *self)
{
	if (!self->e)
		PyErr_SetString(PyExc_ValueError, "event is closed");
	return self->e;
}

static int event_wait_fn(void *arg, uint64_t deadline_ns)
{
	return shmq_event_wait(arg, deadline_ns);
}

/* wait(timeout=None) -> bool, as threading.Event.wait() */
static PyObject *Event_wait(EventObject *self, PyObject *args)
{
	PyObject *timeout = Py_None;
	uint64_t deadline;
	int r;

	if (!event_of(self) || !PyArg_ParseTuple(args, "|O", &timeout) ||
	    deadline_of(timeout, &deadline) < 0)
		return NULL;
	/* Waits on one handle may run side by side: no mutex. */
	r = wait_sliced(NULL, event_wait_fn, self->e, deadline);
	if (r == INT32_MIN)
		return NULL;
	if (r == -EAGAIN || r == -ETIMEDOUT)
		Py_RETURN_FALSE;
	if (r < 0)
		return raise_errno(r);
	Py_RETURN_TRUE;
}

static PyObject *Event_set(EventObject *self, PyObject *unused)
{
	int r;

	(void)unused;
	if (!event_of(self))
		return NULL;
	r = shmq_event_set(self->e);
	if (r < 0)
		return raise_errno(r);
	Py_RETURN_NONE;
}

static PyObject *Event_clear(EventObject *self, PyObject *unused)
{
	int r;

	(void)unused;
	if (!event_of(self))
		return NULL;
	r = shmq_event_clear(self->e);
	if (r < 0)
		return raise_errno(r);
	Py_RETURN_NONE;
}

static PyObject *Event_is_set(EventObject *self, PyObject *unused)
{
	int r;

	(void)unused;
	if (!event_of(self))
		return NULL;
	r = shmq_event_is_set(self->e);
	if (r < 0)
		return raise_errno(r);
	return PyBool_FromLong(r);
}

static PyMethodDef Event_methods[] = {
	{"wait", (PyCFunction)Event_wait, METH_VARARGS, "wait(timeout=None) -> bool"},
	{"set", (PyCFunction)Event_set, METH_NOARGS, "set()"},
	{"clear", (PyCFunction)Event_clear, METH_NOARGS, "clear()"},
	{"is_set", (PyCFunction)Event_is_set, METH_NOARGS, "is_set() -> bool"},
	{NULL},
};

static PyTypeObject EventType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_shmq.Event",
	.tp_basicsize = sizeof(EventObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Event(client, name, create=False)",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)Event_init,
	.tp_dealloc = (destructor)Event_dealloc,
	.tp_methods = Event_methods,
};

/* --- Condition: bound to a Lock --- */

typedef struct {
	PyObject_HEAD PyObject *lock; /* the _shmq.Lock it is bound to: kept alive while this is */
	struct shmq_cond *cv;
} CondObject;

static int Cond_init(CondObject *self, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"client", "name", "lock", "create", NULL};
	struct shmq_cond_attr a = {.size = sizeof(a)};
	struct shmq_client *c;
	PyObject *client, *lock;
	const char *name;
	int create = 0, r;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "OsO!|p", kwlist, &client, &name, &LockType,
					 &lock, &create))
		return -1;
	c = client_arg(client);
	if (!c)
		return -1;
	if (self->cv) {
		PyErr_SetString(PyExc_RuntimeError, "condition already open");
		return -1;
	}
	if (!((LockObject *)lock)->l) {
		PyErr_SetString(PyExc_ValueError, "lock is closed");
		return -1;
	}
	Py_BEGIN_ALLOW_THREADS
	r = shmq_cond_open(c, name, create ? SHMQ_CREATE : 0, ((LockObject *)lock)->l,
			   create ? &a : NULL, &self->cv);
	Py_END_ALLOW_THREADS
	if (r < 0) {
		self->cv = NULL;
		raise_ctl_errno(r);
		return -1;
	}
	Py_INCREF(lock);
	self->lock = lock;
	return 0;
}

static void Cond_dealloc(CondObject *self)
{
	if (self->cv)
		shmq_cond_close(self->cv);
	Py_XDECREF(self->lock);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static int cond_fn(void *arg, uint64_t deadline_ns)
{
	CondObject *self = arg;
	int r = shmq_cond_wait(self->cv, deadline_ns);

	/* The lock came back from a dead holder: ours now, as for acquire(). */
	return r == -EOWNERDEAD ? shmq_lock_consistent(((LockObject *)self->lock)->l) : r;
}

/*
 * wait(timeout=None) -> bool: False when the timeout passed first.  Cut
 * into slices like every wait: between two, this thread holds the lock
 * again, and a notify needs the lock (-EPERM without it), so no notify can
 * fall between the slices and be lost.
 */
static PyObject *Cond_wait(CondObject *self, PyObject *args)
{
	PyObject *timeout = Py_None;
	uint64_t deadline;
	int r;

	if (!self->cv) {
		PyErr_SetString(PyExc_ValueError, "condition is closed");
		return NULL;
	}
	if (!PyArg_ParseTuple(args, "|O", &timeout) || deadline_of(timeout, &deadline) < 0)
		return NULL;
	r = wait_sliced(NULL, cond_fn, self, deadline);
	if (r == INT32_MIN)
		return NULL;
	if (r == -ETIMEDOUT)
		Py_RETURN_FALSE;
	if (r < 0)
		return raise_errno(r);
	Py_RETURN_TRUE;
}

static PyObject *Cond_notify(CondObject *self, PyObject *args)
{
	unsigned int n = 1;
	int r;

	if (!self->cv) {
		PyErr_SetString(PyExc_ValueError, "condition is closed");
		return NULL;
	}
	if (!PyArg_ParseTuple(args, "|I", &n))
		return NULL;
	r = n ? shmq_cond_notify(self->cv, n) : 0;
	if (r < 0)
		return raise_errno(r);
	return PyLong_FromLong(r);
}

static PyObject *Cond_notify_all(CondObject *self, PyObject *unused)
{
	int r;

	(void)unused;
	if (!self->cv) {
		PyErr_SetString(PyExc_ValueError, "condition is closed");
		return NULL;
	}
	r = shmq_cond_notify_all(self->cv);
	if (r < 0)
		return raise_errno(r);
	return PyLong_FromLong(r);
}

static PyMethodDef Cond_methods[] = {
	{"wait", (PyCFunction)Cond_wait, METH_VARARGS, "wait(timeout=None) -> bool"},
	{"notify", (PyCFunction)Cond_notify, METH_VARARGS, "notify(n=1) -> waiters counted"},
	{"notify_all", (PyCFunction)Cond_notify_all, METH_NOARGS, "notify_all()"},
	{NULL},
};

static PyTypeObject CondType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_shmq.Condition",
	.tp_basicsize = sizeof(CondObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Condition(client, name, lock, create=False)",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)Cond_init,
	.tp_dealloc = (destructor)Cond_dealloc,
	.tp_methods = Cond_methods,
};

/* --- Pipe: one end --- */

typedef struct {
	PyObject_HEAD PyObject *client;
	struct shmq_pipe *p;
	pthread_mutex_t send_lock, recv_lock;
} PipeObject;

static int Pipe_init(PipeObject *self, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"client",    "name",	"end",	"create", "slots",
				 "slot_size", "oneway", "view", NULL};
	struct shmq_pipe_attr a = {.size = sizeof(a)};
	unsigned int end, slots = 0, slot_size = 0, flags;
	int create = 0, oneway = 0, view = 0, r;
	struct shmq_client *c;
	PyObject *client;
	const char *name;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "OsI|pIIpp", kwlist, &client, &name, &end,
					 &create, &slots, &slot_size, &oneway, &view))
		return -1;
	c = client_arg(client);
	if (!c)
		return -1;
	if (self->p) {
		PyErr_SetString(PyExc_RuntimeError, "pipe already open");
		return -1;
	}
	a.n_slots = slots;
	a.slot_size = slot_size;
	a.flags = oneway ? SHMQ_PIPE_ATTR_ONEWAY : 0;
	flags = (create ? SHMQ_CREATE : 0) | (view ? SHMQ_VIEW : 0);
	Py_BEGIN_ALLOW_THREADS
	r = shmq_pipe_open(c, name, end, flags, create ? &a : NULL, &self->p);
	Py_END_ALLOW_THREADS
	if (r < 0) {
		self->p = NULL;
		raise_ctl_errno(r);
		return -1;
	}
	pthread_mutex_init(&self->send_lock, NULL);
	pthread_mutex_init(&self->recv_lock, NULL);
	Py_INCREF(client);
	self->client = client;
	return 0;
}

static void pipe_close(PipeObject *self)
{
	if (!self->p)
		return;
	Py_BEGIN_ALLOW_THREADS
	pthread_mutex_lock(&self->send_lock);
	pthread_mutex_lock(&self->recv_lock);
	shmq_pipe_close(self->p);
	self->p = NULL;
	pthread_mutex_unlock(&self->recv_lock);
	pthread_mutex_unlock(&self->send_lock);
	Py_END_ALLOW_THREADS
	pthread_mutex_destroy(&self->send_lock);
	pthread_mutex_destroy(&self->recv_lock);
}

static void Pipe_dealloc(PipeObject *self)
{
	pipe_close(self);
	Py_XDECREF(self->client);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static struct shmq_pipe *pipe_of(PipeObject *self)
{
	if (!self->p)
		PyErr_SetString(PyExc_OSError, "handle is closed");
	return self->p;
}

static int pipe_send_fn(void *arg, uint64_t deadline_ns)
{
	struct send_call *s = arg;

	return shmq_pipe_send(s->h, s->buf, s->len, deadline_ns);
}

static PyObject *Pipe_send(PipeObject *self, PyObject *args)
{
	PyObject *timeout = Py_None;
	struct send_call s;
	uint64_t deadline;
	Py_buffer view;
	int r;

	if (!pipe_of(self) || !PyArg_ParseTuple(args, "y*|O", &view, &timeout))
		return NULL;
	if (deadline_of(timeout, &deadline) < 0) {
		PyBuffer_Release(&view);
		return NULL;
	}
	s = (struct send_call){.h = self->p, .buf = view.buf, .len = (size_t)view.len};
	r = wait_sliced(&self->send_lock, pipe_send_fn, &s, deadline);
	PyBuffer_Release(&view);
	if (r == INT32_MIN)
		return NULL;
	if (r < 0)
		return raise_errno(r);
	Py_RETURN_NONE;
}

static int pipe_sendv(void *h, const struct iovec *parts, unsigned int n, uint64_t deadline_ns)
{
	return shmq_pipe_sendv(h, parts, n, deadline_ns);
}

static PyObject *Pipe_send_parts(PipeObject *self, PyObject *args)
{
	return pipe_of(self) ? send_parts(self->p, &self->send_lock, pipe_sendv, args) : NULL;
}

struct pipe_recv_call {
	struct shmq_pipe *p;
	char *buf;
	size_t size;
};

static int pipe_recv_fn(void *arg, uint64_t deadline_ns)
{
	struct pipe_recv_call *c = arg;

	return shmq_pipe_recv(c->p, c->buf, c->size, deadline_ns);
}

/* recv(timeout=None) -> bytes; BrokenPipeError at the end of the other end's messages. */
static PyObject *Pipe_recv(PipeObject *self, PyObject *args)
{
	PyObject *timeout = Py_None, *out;
	struct pipe_recv_call c;
	uint64_t deadline;
	int r, max;

	if (!pipe_of(self) || !PyArg_ParseTuple(args, "|O", &timeout) ||
	    deadline_of(timeout, &deadline) < 0)
		return NULL;
	max = shmq_pipe_max_msg(self->p);
	if (max < 0)
		return raise_errno(max);
	out = PyBytes_FromStringAndSize(NULL, max);
	if (!out)
		return NULL;
	c = (struct pipe_recv_call){
		.p = self->p, .buf = PyBytes_AS_STRING(out), .size = (size_t)max};
	r = wait_sliced(&self->recv_lock, pipe_recv_fn, &c, deadline);
	if (r < 0) {
		Py_DECREF(out);
		return r == INT32_MIN ? NULL : raise_errno(r);
	}
	if (_PyBytes_Resize(&out, r) < 0)
		return NULL;
	return out;
}

static int pipe_poll_fn(void *arg, uint64_t deadline_ns)
{
	int r = shmq_pipe_poll(arg, deadline_ns);

	return r == 0 && deadline_ns != 0 ? -ETIMEDOUT : r; /* a slice that ended: go on */
}

/* poll(timeout=0) -> bool, as Connection.poll() */
static PyObject *Pipe_poll(PipeObject *self, PyObject *args)
{
	PyObject *timeout = NULL;
	uint64_t deadline = 0;
	int r;

	if (!pipe_of(self) || !PyArg_ParseTuple(args, "|O", &timeout))
		return NULL;
	if (timeout && deadline_of(timeout, &deadline) < 0)
		return NULL;
	r = wait_sliced(NULL, pipe_poll_fn, self->p, deadline);
	if (r == INT32_MIN)
		return NULL;
	if (r == -ETIMEDOUT || r == 0)
		Py_RETURN_FALSE;
	if (r < 0)
		return raise_errno(r);
	Py_RETURN_TRUE;
}

static PyObject *Pipe_close(PipeObject *self, PyObject *unused)
{
	(void)unused;
	pipe_close(self);
	Py_RETURN_NONE;
}

static PyObject *Pipe_max_msg(PipeObject *self, PyObject *unused)
{
	(void)unused;
	if (!pipe_of(self))
		return NULL;
	return PyLong_FromLong(shmq_pipe_max_msg(self->p));
}

static PyMethodDef Pipe_methods[] = {
	{"send", (PyCFunction)Pipe_send, METH_VARARGS, "send(data, timeout=None)"},
	{"send_parts", (PyCFunction)Pipe_send_parts, METH_VARARGS,
	 "send_parts(parts, timeout=None): one message gathered from buffers"},
	{"recv", (PyCFunction)Pipe_recv, METH_VARARGS, "recv(timeout=None) -> bytes"},
	{"poll", (PyCFunction)Pipe_poll, METH_VARARGS, "poll(timeout=0) -> bool"},
	{"max_msg", (PyCFunction)Pipe_max_msg, METH_NOARGS, "largest message, bytes"},
	{"close", (PyCFunction)Pipe_close, METH_NOARGS, "close this end for good"},
	{NULL},
};

static PyTypeObject PipeType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_shmq.Pipe",
	.tp_basicsize = sizeof(PipeObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Pipe(client, name, end, create=False, slots=0, slot_size=0, oneway=False, "
		  "view=False)",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)Pipe_init,
	.tp_dealloc = (destructor)Pipe_dealloc,
	.tp_methods = Pipe_methods,
};

/* --- Barrier --- */

typedef struct {
	PyObject_HEAD PyObject *client;
	struct shmq_barrier *b;
} BarrierObject;

static int Barrier_init(BarrierObject *self, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"client", "name", "create", "parties", NULL};
	struct shmq_barrier_attr a = {.size = sizeof(a)};
	unsigned int parties = 0;
	struct shmq_client *c;
	PyObject *client;
	const char *name;
	int create = 0, r;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "Os|pI", kwlist, &client, &name, &create,
					 &parties))
		return -1;
	c = client_arg(client);
	if (!c)
		return -1;
	if (self->b) {
		PyErr_SetString(PyExc_RuntimeError, "barrier already open");
		return -1;
	}
	a.parties = parties;
	Py_BEGIN_ALLOW_THREADS
	r = shmq_barrier_open(c, name, create ? SHMQ_CREATE : 0, create ? &a : NULL, &self->b);
	Py_END_ALLOW_THREADS
	if (r < 0) {
		self->b = NULL;
		raise_ctl_errno(r);
		return -1;
	}
	Py_INCREF(client);
	self->client = client;
	return 0;
}

static void Barrier_dealloc(BarrierObject *self)
{
	if (self->b)
		shmq_barrier_close(self->b);
	Py_XDECREF(self->client);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static struct shmq_barrier *barrier_of(BarrierObject *self)
{
	if (!self->b)
		PyErr_SetString(PyExc_ValueError, "barrier is closed");
	return self->b;
}

static int barrier_await_fn(void *arg, uint64_t deadline_ns)
{
	return shmq_barrier_await(arg, deadline_ns);
}

/*
 * wait(timeout=None) -> the arrival index.  An arrival, then its await in
 * slices (a slice that ends breaks nothing).  As threading.Barrier, a
 * wait that ends without the cycle, by its timeout or by an exception
 * from a signal handler, breaks the barrier for the other parties.
 */
static PyObject *Barrier_wait(BarrierObject *self, PyObject *args)
{
	PyObject *timeout = Py_None;
	uint64_t deadline;
	int r;

	if (!barrier_of(self) || !PyArg_ParseTuple(args, "|O", &timeout) ||
	    deadline_of(timeout, &deadline) < 0)
		return NULL;
	r = shmq_barrier_arrive(self->b);
	if (r == -EINPROGRESS) {
		/* 0 is a deadline that has passed here, as for shmq_barrier_wait() */
		r = wait_sliced(NULL, barrier_await_fn, self->b, deadline ? deadline : 1);
		if (r == INT32_MIN) {
			(void)shmq_barrier_cancel(self->b);
			return NULL;
		}
		if (r == -ETIMEDOUT)
			r = shmq_barrier_cancel(self->b); /* -EPIPE, or released after all */
	}
	if (r < 0)
		return raise_errno(r);
	return PyLong_FromLong(r);
}

static PyObject *barrier_call(BarrierObject *self, int (*fn)(struct shmq_barrier *))
{
	int r;

	if (!barrier_of(self))
		return NULL;
	r = fn(self->b);
	if (r < 0)
		return raise_errno(r);
	return PyLong_FromLong(r);
}

static PyObject *Barrier_abort(BarrierObject *self, PyObject *unused)
{
	(void)unused;
	return barrier_call(self, shmq_barrier_abort);
}

static PyObject *Barrier_reset(BarrierObject *self, PyObject *unused)
{
	(void)unused;
	return barrier_call(self, shmq_barrier_reset);
}

static PyObject *Barrier_info(BarrierObject *self, PyObject *unused)
{
	(void)unused;
	if (!barrier_of(self))
		return NULL;
	return Py_BuildValue("(iii)", shmq_barrier_parties(self->b),
			     shmq_barrier_n_waiting(self->b), shmq_barrier_is_broken(self->b));
}

static PyMethodDef Barrier_methods[] = {
	{"wait", (PyCFunction)Barrier_wait, METH_VARARGS, "wait(timeout=None) -> index"},
	{"abort", (PyCFunction)Barrier_abort, METH_NOARGS, "break it"},
	{"reset", (PyCFunction)Barrier_reset, METH_NOARGS, "mend it"},
	{"info", (PyCFunction)Barrier_info, METH_NOARGS, "(parties, n_waiting, broken)"},
	{NULL},
};

static PyTypeObject BarrierType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_shmq.Barrier",
	.tp_basicsize = sizeof(BarrierObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Barrier(client, name, create=False, parties=0)",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)Barrier_init,
	.tp_dealloc = (destructor)Barrier_dealloc,
	.tp_methods = Barrier_methods,
};

/* --- Poller: waits for another event loop (asyncio) --- */

/*
 * Poller and Watch take part in the cycle collector: a watch's callback
 * is the loop's (a future's setter, a task's frame) and may lead back to
 * the poller, whose set holds the watch.  The other types hold only a
 * Client or a Lock, which hold nothing: they cannot be in a cycle.
 */
typedef struct {
	PyObject_HEAD struct shmq_poller *p;
	PyObject *watches; /* set of live Watch objects, freed with the poller */
} PollerObject;

typedef struct {
	PyObject_HEAD PollerObject *poller; /* NULL once freed */
	PyObject *handle;		    /* the _shmq object watched: kept open while watched */
	PyObject *callback;
	struct shmq_watch *w;
} WatchObject;

static PyTypeObject WatchType;

static void watch_free(WatchObject *self)
{
	if (self->w) {
		shmq_watch_free(self->w);
		self->w = NULL;
	}
	if (self->poller) {
		if (self->poller->watches) /* NULL: the collector cleared the poller first */
			(void)PySet_Discard(self->poller->watches, (PyObject *)self);
		self->poller = NULL;
	}
	Py_CLEAR(self->handle);
	Py_CLEAR(self->callback);
}

static int Watch_traverse(WatchObject *self, visitproc visit, void *arg)
{
	Py_VISIT(self->handle);
	Py_VISIT(self->callback);
	return 0; /* ->poller is not a reference: the poller's set holds the watch */
}

static int Watch_clear(WatchObject *self)
{
	watch_free(self);
	return 0;
}

static void Watch_dealloc(WatchObject *self)
{
	PyObject_GC_UnTrack(self);
	watch_free(self);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Watch_free(WatchObject *self, PyObject *unused)
{
	(void)unused;
	watch_free(self);
	Py_RETURN_NONE;
}

static PyMethodDef Watch_methods[] = {
	{"free", (PyCFunction)Watch_free, METH_NOARGS, "stop watching"},
	{NULL},
};

static PyTypeObject WatchType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_shmq.Watch",
	.tp_basicsize = sizeof(WatchObject),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "A watch of Poller.watch(): free() it when done.",
	.tp_traverse = (traverseproc)Watch_traverse,
	.tp_clear = (inquiry)Watch_clear,
	.tp_free = PyObject_GC_Del,
	.tp_dealloc = (destructor)Watch_dealloc,
	.tp_methods = Watch_methods,
};

static int Poller_init(PollerObject *self, PyObject *args, PyObject *kwds)
{
	int r;

	if (!PyArg_ParseTuple(args, "") || (kwds && PyDict_Size(kwds))) {
		if (!PyErr_Occurred())
			PyErr_SetString(PyExc_TypeError, "Poller() takes no arguments");
		return -1;
	}
	if (self->p) {
		PyErr_SetString(PyExc_RuntimeError, "poller already made");
		return -1;
	}
	self->watches = PySet_New(NULL);
	if (!self->watches)
		return -1;
	r = shmq_poller_new(0, &self->p);
	if (r < 0) {
		self->p = NULL;
		raise_ctl_errno(r);
		return -1;
	}
	return 0;
}

/*
 * Every watch ends with the poller: its wait is cancelled now (the
 * collector may free the Watch before the poller), and its handle says so.
 */
static int Poller_clear(PollerObject *self)
{
	if (self->watches) {
		PyObject *it = PyObject_GetIter(self->watches), *o;

		while (it && (o = PyIter_Next(it))) {
			WatchObject *w = (WatchObject *)o;

			shmq_watch_free(w->w);
			w->w = NULL;
			w->poller = NULL;
			Py_DECREF(o);
		}
		Py_XDECREF(it);
		PyErr_Clear();
		Py_CLEAR(self->watches);
	}
	return 0;
}

static int Poller_traverse(PollerObject *self, visitproc visit, void *arg)
{
	Py_VISIT(self->watches);
	return 0;
}

static void Poller_dealloc(PollerObject *self)
{
	PyObject_GC_UnTrack(self);
	(void)Poller_clear(self);
	if (self->p)
		shmq_poller_free(self->p);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Poller_fd(PollerObject *self, PyObject *unused)
{
	(void)unused;
	return PyLong_FromLong(shmq_poller_fd(self->p));
}

/* run() -> callbacks run: dispatch what is ready, never sleeping. */
static PyObject *Poller_run(PollerObject *self, PyObject *unused)
{
	int r;

	(void)unused;
	r = shmq_poller_run_once(self->p, 0);
	if (r < 0 && PyErr_Occurred())
		return NULL; /* a callback raised */
	if (r < 0)
		return raise_errno(r);
	return PyLong_FromLong(r);
}

static int watch_cb(struct shmq_watch *w, int events, void *arg)
{
	WatchObject *self = arg;
	PyObject *cb = self->callback, *res;

	(void)w;
	if (!cb)
		return 0;
	Py_INCREF(cb);
	res = PyObject_CallFunction(cb, "i", events);
	Py_DECREF(cb);
	if (!res)
		return -ECANCELED; /* ends the run call; Poller_run() raises it */
	Py_DECREF(res);
	return 0;
}

static struct shmq_object *object_of(PyObject *h)
{
	if (PyObject_TypeCheck(h, &QueueType) && ((QueueObject *)h)->q)
		return shmq_queue_object(((QueueObject *)h)->q);
	if (PyObject_TypeCheck(h, &SemType) && ((SemObject *)h)->s)
		return shmq_sem_object(((SemObject *)h)->s);
	if (PyObject_TypeCheck(h, &LockType) && ((LockObject *)h)->l)
		return shmq_lock_object(((LockObject *)h)->l);
	if (PyObject_TypeCheck(h, &EventType) && ((EventObject *)h)->e)
		return shmq_event_object(((EventObject *)h)->e);
	PyErr_SetString(PyExc_TypeError, "expected an open _shmq Queue, Semaphore, Lock or Event");
	return NULL;
}

/*
 * watch(handle, events, callback) -> Watch: callback(events) from run()
 * while the object is ready (level-triggered); free() the watch to stop.
 */
static PyObject *Poller_watch(PollerObject *self, PyObject *args)
{
	PyObject *handle, *callback;
	struct shmq_object *obj;
	unsigned int events;
	WatchObject *w;
	int r;

	if (!PyArg_ParseTuple(args, "OIO", &handle, &events, &callback))
		return NULL;
	if (!PyCallable_Check(callback)) {
		PyErr_SetString(PyExc_TypeError, "callback is not callable");
		return NULL;
	}
	obj = object_of(handle);
	if (!obj)
		return NULL;
	w = PyObject_GC_New(WatchObject, &WatchType);
	if (!w)
		return NULL;
	w->poller = NULL;
	w->w = NULL;
	Py_INCREF(handle);
	w->handle = handle;
	Py_INCREF(callback);
	w->callback = callback;
	PyObject_GC_Track(w);
	r = shmq_poller_add(self->p, obj, events, watch_cb, w, &w->w);
	if (r < 0) {
		w->w = NULL;
		Py_DECREF(w);
		return raise_errno(r);
	}
	if (PySet_Add(self->watches, (PyObject *)w) < 0) {
		Py_DECREF(w);
		return NULL;
	}
	w->poller = self;
	return (PyObject *)w;
}

static PyMethodDef Poller_methods[] = {
	{"fd", (PyCFunction)Poller_fd, METH_NOARGS, "the descriptor for another loop"},
	{"run", (PyCFunction)Poller_run, METH_NOARGS, "dispatch what is ready, never sleep"},
	{"watch", (PyCFunction)Poller_watch, METH_VARARGS, "watch(handle, events, callback)"},
	{NULL},
};

static PyTypeObject PollerType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_shmq.Poller",
	.tp_basicsize = sizeof(PollerObject),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "Poller(): watches driven by another event loop through fd().",
	.tp_traverse = (traverseproc)Poller_traverse,
	.tp_clear = (inquiry)Poller_clear,
	.tp_free = PyObject_GC_Del,
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)Poller_init,
	.tp_dealloc = (destructor)Poller_dealloc,
	.tp_methods = Poller_methods,
};

/* --- Module --- */

static PyObject *mod_version(PyObject *self, PyObject *unused)
{
	(void)self;
	(void)unused;
	return PyUnicode_FromString(shmq_version());
}

static PyMethodDef module_methods[] = {
	{"version", mod_version, METH_NOARGS, "libshmq's version"},
	{NULL},
};

static struct PyModuleDef shmq_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "_shmq",
	.m_doc = "libshmq for CPython: use the shmq package.",
	.m_size = -1,
	.m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__shmq(void)
{
	PyTypeObject *types[] = {&ClientType, &QueueType,   &SemType,  &LockType,   &EventType,
				 &PipeType,   &BarrierType, &CondType, &PollerType, &WatchType};
	const char *names[] = {"Client", "Queue",   "Semaphore", "Lock",   "Event",
			       "Pipe",	 "Barrier", "Condition", "Poller", "Watch"};
	PyObject *m;

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (PyType_Ready(types[i]) < 0)
			return NULL;
	m = PyModule_Create(&shmq_module);
	if (!m)
		return NULL;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		Py_INCREF(types[i]);
		if (PyModule_AddObject(m, names[i], (PyObject *)types[i]) < 0) {
			Py_DECREF(types[i]);
			Py_DECREF(m);
			return NULL;
		}
	}
	return m;
}
