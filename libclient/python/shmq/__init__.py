# SPDX-License-Identifier: MIT
"""multiprocessing's queues and locks between any processes on the host.

shmq objects live in shmqd and are named: any process (a child, or one
started on its own) opens the same object by its name, and the death of
a process wedges nothing (shmqd repairs what it held).  The names and
signatures are multiprocessing's where the concept exists:

    import shmq
    q = shmq.Queue("jobs", maxsize=64)      # create, or open the existing one
    q.put({"n": 1}); q.get(timeout=1.0)
    q2 = shmq.Queue.open("jobs")            # elsewhere: open by name only

Objects pickle by name, so they can be handed to multiprocessing.Process
children or sent to unrelated processes.  Messages are pickled with
protocol 5; put_bytes()/get_bytes() skip pickling.  Errors from shmqd are
OSError subclasses (FileNotFoundError for a missing name, PermissionError,
...), except where multiprocessing raises something else (queue.Full,
queue.Empty, EOFError, ValueError for an over-released semaphore,
threading.BrokenBarrierError).

The connection to shmqd is made on first use, once per process, on
$SHMQ_SOCKET or libshmq's default socket.  A forked child opens every
object again, lazily, as its own: what the parent held stays the
parent's, so a child's death is repaired as the child's.
"""

import asyncio as _asyncio
import errno as _errno
import itertools as _itertools
import os as _os
import pickle as _pickle
import struct as _struct
import threading as _threading
import time as _time
import weakref as _weakref
from queue import Empty, Full
from threading import BrokenBarrierError

from . import _shmq

__all__ = [
    "BrokenBarrierError",
    "Empty",
    "Full",
    "Queue",
    "SimpleQueue",
    "JoinableQueue",
    "Pipe",
    "Connection",
    "Lock",
    "RLock",
    "Semaphore",
    "BoundedSemaphore",
    "Event",
    "Condition",
    "Barrier",
    "unlink",
    "version",
]

# A queue made without a size: multiprocessing's is unbounded, a ring is
# not.  4096 slots of 512 bytes, messages up to 1 MiB through the arena.
DEFAULT_SLOTS = 4096
DEFAULT_SLOT_SIZE = 512
DEFAULT_MAX_MSG = 1 << 20
# A pipe: 64 messages of up to 64 KiB each way.
PIPE_SLOTS = 64
PIPE_SLOT_SIZE = 64 << 10

_client = None
_client_lock = _threading.Lock()
_names = _itertools.count()
# Bumped in every forked child: handles made before it are the parent's.
_generation = 0
# What a forked child inherited and must never close (closing would detach
# the parent's attachments through the parent's connection): kept alive.
_inherited = []


def _after_fork_in_child():
    global _client, _generation, _client_lock
    _generation += 1
    _client_lock = _threading.Lock()
    if _client is not None:
        _inherited.append(_client)
        _client = None


_os.register_at_fork(after_in_child=_after_fork_in_child)


def _connection():
    """This process's connection to shmqd."""
    global _client
    with _client_lock:
        if _client is None:
            _client = _shmq.Client(None)
        return _client


def version():
    """libshmq's version, "MAJOR.MINOR.PATCH"."""
    return _shmq.version()


def unlink(name):
    """Remove a name: users attached keep the object until they close it."""
    _connection().unlink(name)


def _anonymous(kind):
    """A name for an object made without one: unique on this host."""
    return "py-%s-%d-%d-%s" % (kind, _os.getpid(), next(_names), _os.urandom(4).hex())


def _unlink_if_maker(name, pid):
    """An anonymous object goes with its maker, not with a forked copy of it."""
    if _os.getpid() != pid:
        return
    try:
        unlink(name)
    except OSError:
        pass  # gone already, or shmqd is: nothing to clean


def _slots_for(maxsize):
    """The ring's capacity for multiprocessing's maxsize: a power of two."""
    if maxsize <= 0:
        return DEFAULT_SLOTS
    n = 2
    while n < maxsize:
        n *= 2
    return n


# --- pickling: protocol 5, large buffers out of band ---
#
# An object with large buffers (a PickleBuffer, a NumPy array, ...) is not
# copied into its pickle: the message is a frame, gathered in one copy
# straight into the queue (send_parts), and unpickled over the received
# bytes without copying the buffers again.  Frame: _OOB_HEAD (mark, count),
# the pickle's length and each buffer's (u64 LE), the pickle, then each
# buffer at a 64-byte-aligned offset.  The mark is not 0x80, the PROTO
# opcode a pickle starts with, so a plain pickle is never taken for one.

_OOB_MARK = 1
_OOB_MIN = 4096  # smaller buffers stay in the pickle: a frame costs more than their copy
_OOB_ALIGN = 64
_OOB_HEAD = _struct.Struct("<B3xI")
_OOB_PAD = bytes(_OOB_ALIGN)
_dumps = _pickle.dumps
_loads = _pickle.loads


class _OutOfBand(Exception):
    pass


def _in_band_unless_large(pb):
    """buffer_callback of a first dumps(): stop at the first buffer worth a frame."""
    try:
        if pb.raw().nbytes < _OOB_MIN:
            return True  # in band
    except BufferError:
        return True  # not contiguous: pickle copies it
    raise _OutOfBand


def _frame(obj):
    """obj as the parts of a frame: for an obj whose dumps() raised _OutOfBand."""
    bufs = []

    def out_of_band(pb):
        try:
            raw = pb.raw()
        except BufferError:
            return True
        if raw.nbytes < _OOB_MIN:
            return True
        bufs.append(raw)
        return False

    data = _dumps(obj, 5, buffer_callback=out_of_band)
    head = _OOB_HEAD.pack(_OOB_MARK, len(bufs)) + _struct.pack(
        "<%dQ" % (len(bufs) + 1), len(data), *(b.nbytes for b in bufs))
    parts = [head, data]
    at = len(head) + len(data)
    for b in bufs:
        pad = -at % _OOB_ALIGN
        if pad:
            parts.append(_OOB_PAD[:pad])
        parts.append(b)
        at += pad + b.nbytes
    return parts


def _message(obj):
    """obj as (pickle, None), or (None, the parts of a frame)."""
    try:
        return _dumps(obj, 5, buffer_callback=_in_band_unless_large), None
    except _OutOfBand:
        return None, _frame(obj)


def _bad_frame(why):
    return _pickle.UnpicklingError("bad out-of-band frame: " + why)


def _loads_frame(data):
    """Unpickle a frame (a bytearray: its buffers come back writable, as they went)."""
    mv = memoryview(data)
    if len(mv) < _OOB_HEAD.size:
        raise _bad_frame("truncated header")
    _, n = _OOB_HEAD.unpack_from(mv, 0)
    at = _OOB_HEAD.size + 8 * (n + 1)
    if at > len(mv):
        raise _bad_frame("%d buffers in %d bytes" % (n, len(mv)))
    lens = _struct.unpack_from("<%dQ" % (n + 1), mv, _OOB_HEAD.size)
    if lens[0] > len(mv) - at:
        raise _bad_frame("the pickle runs past the end")
    pickled = mv[at:at + lens[0]]
    at += lens[0]
    bufs = []
    for length in lens[1:]:
        at += -at % _OOB_ALIGN
        if at > len(mv) or length > len(mv) - at:
            raise _bad_frame("a buffer runs past the end")
        bufs.append(mv[at:at + length])
        at += length
    return _pickle.loads(pickled, buffers=bufs)


def _timeout(block, timeout):
    """queue's (block, timeout) as the module's timeout: None forever, 0 never."""
    if not block:
        return 0
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return timeout


class _Named:
    """A named object: pickles by name, reopens itself in a forked child."""

    _kind = "object"

    def _setup(self, name, create):
        anonymous = name is None
        if anonymous:
            name = _anonymous(self._kind)
        self._name = name
        self._gen = _generation
        self._closed = False
        # An object made without a name goes when its maker drops it (users
        # attached keep it until they close); a named one stays until
        # unlink(), like a file.
        self._finalizer = (
            _weakref.finalize(self, _unlink_if_maker, name, _os.getpid())
            if anonymous and create else None
        )
        self._open(_connection(), create)

    def _open(self, client, create):
        raise NotImplementedError

    def _handles(self):
        """The handles to use: this process's own (opened again after a fork)."""
        if self._closed:
            raise ValueError("%r is closed" % self)
        if self._gen != _generation:
            _inherited.append(self._release())
            self._gen = _generation
            self._open(_connection(), False)

    def _release(self):
        """Detach the handles from self without closing them; return them."""
        raise NotImplementedError

    @classmethod
    def open(cls, name):
        """Open an existing object by name (FileNotFoundError if there is none)."""
        obj = cls.__new__(cls)
        obj._setup(name, False)
        return obj

    def __reduce__(self):
        return (_reopen, (type(self), self._name))

    @property
    def name(self):
        return self._name

    def unlink(self):
        """Remove the name (attached users keep the object)."""
        if self._finalizer is not None:
            self._finalizer.detach()
        unlink(self._name)

    def __repr__(self):
        return "<shmq.%s %r>" % (type(self).__name__, self._name)


def _reopen(cls, name):
    return cls.open(name)


class Queue(_Named):
    """multiprocessing.Queue, between any processes: Queue(name=None, maxsize=0).

    The capacity is maxsize rounded up to a power of two (a ring's), or
    DEFAULT_SLOTS when maxsize <= 0.  Messages up to max_msg bytes once
    pickled (1 MiB by default).
    """

    _kind = "queue"
    _joinable = False

    def __init__(self, name=None, maxsize=0, *, slot_size=DEFAULT_SLOT_SIZE,
                 max_msg=DEFAULT_MAX_MSG):
        self._geometry = (_slots_for(maxsize), slot_size,
                          max_msg if max_msg > slot_size else 0)
        self._setup(name, True)

    def _open(self, client, create):
        slots, slot_size, max_msg = getattr(self, "_geometry", (0, 0, 0))
        self._tx = _shmq.Queue(client, self._name, True, create, slots if create else 0,
                               slot_size if create else 0, max_msg if create else 0,
                               self._joinable)
        self._rx = _shmq.Queue(client, self._name, False)

    def _release(self):
        h = (self._tx, self._rx)
        self._tx = self._rx = None
        return h

    # --- bytes: no pickling ---

    def put_bytes(self, data, block=True, timeout=None):
        self._handles()
        try:
            self._tx.send(data, _timeout(block, timeout))
        except (BlockingIOError, TimeoutError):
            raise Full from None

    def get_bytes(self, block=True, timeout=None):
        self._handles()
        try:
            return self._rx.recv(_timeout(block, timeout))
        except (BlockingIOError, TimeoutError):
            raise Empty from None

    # --- multiprocessing.Queue ---

    def _put_parts(self, parts, block, timeout):
        self._handles()
        try:
            self._tx.send_parts(parts, _timeout(block, timeout))
        except (BlockingIOError, TimeoutError):
            raise Full from None

    # The hot paths below are written out: a call more costs a tenth of a put.

    def put(self, obj, block=True, timeout=None):
        try:
            data = _dumps(obj, 5, buffer_callback=_in_band_unless_large)
        except _OutOfBand:
            return self._put_parts(_frame(obj), block, timeout)
        self.put_bytes(data, block, timeout)

    def get(self, block=True, timeout=None):
        self._handles()
        try:
            data = self._rx.recv(_timeout(block, timeout), True)
        except (BlockingIOError, TimeoutError):
            raise Empty from None
        if type(data) is bytearray:  # recv(oob=True): a frame
            return _loads_frame(data)
        return _loads(data)

    def put_nowait(self, obj):
        self.put(obj, False)

    def get_nowait(self):
        return self.get(False)

    def put_bytes_many(self, datas, block=True, timeout=None):
        """Put every bytes-like of datas, in batches; Full if the timeout passed first."""
        self._handles()
        datas = datas if isinstance(datas, (list, tuple)) else list(datas)
        if self._tx.send_many(datas, _timeout(block, timeout)) < len(datas):
            raise Full

    def get_bytes_many(self, n, block=True, timeout=None):
        """1..n messages: waits for the first as get_bytes(), takes the rest if queued."""
        self._handles()
        try:
            return self._rx.recv_many(n, _timeout(block, timeout))
        except (BlockingIOError, TimeoutError):
            raise Empty from None

    def put_many(self, objs, block=True, timeout=None):
        """put() for each of objs, in batches; Full if the timeout passed first."""
        objs = objs if isinstance(objs, (list, tuple)) else list(objs)
        cb = _in_band_unless_large
        try:
            return self.put_bytes_many([_dumps(o, 5, buffer_callback=cb) for o in objs],
                                       block, timeout)
        except _OutOfBand:
            pass
        batch = []
        for o in objs:
            try:
                batch.append(_dumps(o, 5, buffer_callback=cb))
                continue
            except _OutOfBand:
                pass
            # a frame goes on its own, in order after the batch so far
            # (the timeout then counts from each of the calls)
            if batch:
                self.put_bytes_many(batch, block, timeout)
                batch = []
            self._put_parts(_frame(o), block, timeout)
        if batch:
            self.put_bytes_many(batch, block, timeout)

    def get_many(self, n, block=True, timeout=None):
        """1..n objects: waits for the first as get(), takes the rest only if queued."""
        self._handles()
        try:
            datas = self._rx.recv_many(n, _timeout(block, timeout), True)
        except (BlockingIOError, TimeoutError):
            raise Empty from None
        return [_loads_frame(b) if type(b) is bytearray else _loads(b) for b in datas]

    def qsize(self):
        self._handles()
        return self._rx.stats()["depth"]

    def empty(self):
        return self.qsize() == 0

    def full(self):
        self._handles()
        st = self._rx.stats()
        return st["depth"] >= st["capacity"]

    def close(self):
        """Detach this process from the queue (as multiprocessing's close())."""
        if not self._closed:
            self._closed = True
            if self._gen == _generation:
                self._tx.close()
                self._rx.close()

    def join_thread(self):
        """multiprocessing's: nothing to wait for, puts are done when put() returns."""

    def cancel_join_thread(self):
        """multiprocessing's: nothing to cancel."""


class SimpleQueue(Queue):
    """multiprocessing.SimpleQueue: put, get, empty, close."""

    _kind = "squeue"

    def __init__(self, name=None, **kw):
        super().__init__(name, 0, **kw)


class JoinableQueue(Queue):
    """multiprocessing.JoinableQueue: task_done() and join().

    Every message put is an unfinished task until a task_done() for it; a
    consumer that dies holding tasks it took has them counted done by
    shmqd (docs/design.md, joinable queues).  task_done() more often than
    this process received tasks is a ValueError, as in Python.
    """

    _kind = "jqueue"
    _joinable = True

    def task_done(self):
        self._handles()
        try:
            self._rx.task_done()
        except OSError as e:
            if e.errno == _errno.EINVAL:
                raise ValueError("task_done() called too many times") from None
            raise

    def join(self, timeout=None):
        """Wait until every task put is done.  Returns False if timeout passed first."""
        self._handles()
        return self._tx.join(timeout)


class _LockBase(_Named):
    _recursive = False

    def __init__(self, name=None):
        self._setup(name, True)

    def _open(self, client, create):
        self._l = _shmq.Lock(client, self._name, create, self._recursive)

    def _release(self):
        h, self._l = self._l, None
        return h

    def acquire(self, block=True, timeout=None):
        self._handles()
        if not block:
            timeout = 0
        elif timeout is not None and timeout < 0:
            raise ValueError("timeout value must be positive")
        try:
            return self._l.acquire(timeout)
        except OSError as e:
            if e.errno != _errno.EDEADLK:
                raise
        # This thread holds the (plain) lock: nobody else can free it.  As
        # multiprocessing: no for a try, no after the timeout; waiting
        # forever would never end, so that is an error instead.
        if timeout is None:
            raise RuntimeError("deadlock: this thread already holds %r" % self) from None
        _time.sleep(timeout)
        return False

    def release(self):
        self._handles()
        try:
            self._l.release()
        except PermissionError:
            raise ValueError("lock released by a thread that does not hold it") from None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


class Lock(_LockBase):
    """multiprocessing.Lock: a holder's death frees it for the next one."""

    _kind = "lock"


class RLock(_LockBase):
    """multiprocessing.RLock: its holder may acquire it again."""

    _kind = "rlock"
    _recursive = True


class Semaphore(_Named):
    """multiprocessing.Semaphore(value=1)."""

    _kind = "sem"
    _bounded = False

    def __init__(self, value=1, name=None):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._value = value
        self._setup(name, True)

    def _open(self, client, create):
        value = getattr(self, "_value", 0)
        self._s = _shmq.Semaphore(client, self._name, create, value,
                                  value if self._bounded else 0)

    def _release(self):
        h, self._s = self._s, None
        return h

    def acquire(self, block=True, timeout=None):
        self._handles()
        return self._s.acquire(timeout if block else 0)

    def release(self, n=1):
        self._handles()
        try:
            self._s.release(n)
        except OSError as e:
            if e.errno == _errno.EOVERFLOW:
                raise ValueError("Semaphore released too many times") from None
            raise

    def get_value(self):
        self._handles()
        return self._s.value()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


class BoundedSemaphore(Semaphore):
    """multiprocessing.BoundedSemaphore(value=1): ValueError above value."""

    _kind = "bsem"
    _bounded = True


class Event(_Named):
    """multiprocessing.Event."""

    _kind = "event"

    def __init__(self, name=None):
        self._setup(name, True)

    def _open(self, client, create):
        self._e = _shmq.Event(client, self._name, create)

    def _release(self):
        h, self._e = self._e, None
        return h

    def is_set(self):
        self._handles()
        return self._e.is_set()

    def set(self):
        self._handles()
        self._e.set()

    def clear(self):
        self._handles()
        self._e.clear()

    def wait(self, timeout=None):
        self._handles()
        return self._e.wait(timeout)


class Condition(_Named):
    """multiprocessing.Condition(lock=None): bound to a shmq Lock or RLock.

    Made without a lock, it makes an RLock of its own (named after it).
    notify() and notify_all() need the lock held: AssertionError, as in
    multiprocessing.
    """

    _kind = "cond"

    def __init__(self, lock=None, name=None):
        if lock is None:
            lock = RLock(None if name is None else name + ".lock")
        if not isinstance(lock, _LockBase):
            raise TypeError("a shmq Condition needs a shmq Lock or RLock")
        self._lock = lock
        self._setup(name, True)

    @classmethod
    def open(cls, name, lock):
        """Open an existing condition by name, with (a handle of) its lock."""
        obj = cls.__new__(cls)
        obj._lock = lock
        obj._setup(name, False)
        return obj

    def __reduce__(self):
        return (_reopen_cond, (self._name, self._lock))

    def _open(self, client, create):
        self._lock._handles()
        self._cv = _shmq.Condition(client, self._name, self._lock._l, create)

    def _release(self):
        h, self._cv = self._cv, None
        return h

    def _handles(self):
        # The lock's handle first: after a fork both are opened again.
        self._lock._handles()
        super()._handles()

    def acquire(self, *args, **kw):
        return self._lock.acquire(*args, **kw)

    def release(self):
        self._lock.release()

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)

    def wait(self, timeout=None):
        self._handles()
        try:
            return self._cv.wait(timeout)
        except PermissionError:
            # multiprocessing's own words, and its exception
            raise AssertionError("must acquire() condition before using wait()") from None

    def wait_for(self, predicate, timeout=None):
        endtime = None
        waittime = timeout
        result = predicate()
        while not result:
            if waittime is not None:
                if endtime is None:
                    endtime = _time.monotonic() + waittime
                else:
                    waittime = endtime - _time.monotonic()
                    if waittime <= 0:
                        break
            self.wait(waittime)
            result = predicate()
        return result

    def notify(self, n=1):
        self._handles()
        try:
            self._cv.notify(n)
        except PermissionError:
            raise AssertionError("lock is not owned") from None

    def notify_all(self):
        self._handles()
        try:
            self._cv.notify_all()
        except PermissionError:
            raise AssertionError("lock is not owned") from None


def _reopen_cond(name, lock):
    return Condition.open(name, lock)


class Barrier(_Named):
    """multiprocessing.Barrier(parties, action=None, timeout=None).

    A wait that times out, an abort() and the death of a party waiting
    all break it: every wait then raises BrokenBarrierError until reset().
    """

    _kind = "barrier"

    def __init__(self, parties, action=None, timeout=None, name=None):
        if parties < 1:
            raise ValueError("parties must be > 0")
        self._parties_asked = parties
        self._action = action
        self._timeout = timeout
        self._setup(name, True)

    def _open(self, client, create):
        self._b = _shmq.Barrier(client, self._name, create, getattr(self, "_parties_asked", 0))

    def _release(self):
        h, self._b = self._b, None
        return h

    def wait(self, timeout=None):
        """The arrival index, 0..parties-1; parties-1 runs the action."""
        self._handles()
        if timeout is None:
            timeout = getattr(self, "_timeout", None)
        try:
            index = self._b.wait(timeout)
        except (BrokenPipeError, TimeoutError):
            raise BrokenBarrierError from None
        action = getattr(self, "_action", None)
        if action is not None and index == self.parties - 1:
            try:
                action()
            except BaseException:
                self.abort()
                raise
        return index

    def abort(self):
        self._handles()
        self._b.abort()

    def reset(self):
        self._handles()
        self._b.reset()

    @property
    def parties(self):
        self._handles()
        return self._b.info()[0]

    @property
    def n_waiting(self):
        self._handles()
        return self._b.info()[1]

    @property
    def broken(self):
        self._handles()
        return bool(self._b.info()[2])


class Connection:
    """One end of a Pipe: multiprocessing.connection.Connection's methods.

    An end is held by one process at a time: it is opened in the process
    that first uses it, so one made by Pipe() and handed to a child is the
    child's as long as the maker has not used it.  close() ends it for
    good: the other end then reads what is left, then EOFError.
    """

    def __init__(self, name, end, readable, writable):
        self._name = name
        self._end = end
        self.readable = readable
        self.writable = writable
        self._p = None
        self._gen = _generation
        self._closed = False

    def __reduce__(self):
        if self._p is not None and self._gen == _generation:
            raise TypeError("this end is held by this process: pass it on before using it")
        return (Connection, (self._name, self._end, self.readable, self.writable))

    def _h(self):
        if self._closed:
            raise OSError("handle is closed")
        if self._p is None or self._gen != _generation:
            if self._p is not None:
                _inherited.append(self._p)
            self._gen = _generation
            self._p = _shmq.Pipe(_connection(), self._name, self._end)
        return self._p

    @property
    def closed(self):
        return self._closed

    def send_bytes(self, buf, offset=0, size=None):
        mv = memoryview(buf).cast("B")
        if offset < 0 or offset > len(mv):
            raise ValueError("offset out of range")
        if size is None:
            size = len(mv) - offset
        if size < 0 or offset + size > len(mv):
            raise ValueError("size out of range")
        self._h().send(mv[offset:offset + size])

    def recv_bytes(self, maxlength=None):
        try:
            data = self._h().recv(None)
        except BrokenPipeError:
            raise EOFError from None
        if maxlength is not None and len(data) > maxlength:
            raise OSError("bad message length")
        return data

    def send(self, obj):
        data, parts = _message(obj)
        if parts is None:
            self.send_bytes(data)
        else:
            self._h().send_parts(parts)

    def recv(self):
        data = self.recv_bytes()
        if data and data[0] == _OOB_MARK:  # a frame: into writable memory
            return _loads_frame(bytearray(data))
        return _loads(data)

    def poll(self, timeout=0.0):
        return self._h().poll(timeout)

    def close(self):
        if not self._closed:
            self._closed = True
            if self._p is not None and self._gen == _generation:
                self._p.close()
            self._p = None

    def fileno(self):
        raise OSError("a shmq pipe end has no file descriptor")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<shmq.Connection %r end %d>" % (self._name, self._end)


def Pipe(duplex=True, name=None):
    """multiprocessing.Pipe: (conn1, conn2); with duplex=False, conn1 only
    receives and conn2 only sends.  Made without a name, it is unlinked
    right away: its ends still open, since the name is only for opening.
    """
    anonymous = name is None
    if anonymous:
        name = _anonymous("pipe")
    # Made here as a view, holding neither end, so each Connection opens
    # its end where it is first used.
    _shmq.Pipe(_connection(), name, 0, True, PIPE_SLOTS, PIPE_SLOT_SIZE, not duplex,
               view=True).close()
    a = Connection(name, 0, True, duplex)
    b = Connection(name, 1, duplex, True)
    if anonymous:
        # The name goes once both ends are dropped here (the processes they
        # went to have opened them by then, or hold a copy that keeps them).
        token = _PipeName()
        a._token = b._token = token
        _weakref.finalize(token, _unlink_if_maker, name, _os.getpid())
    return a, b


class _PipeName:
    """Kept by both ends of an anonymous Pipe: its finalizer removes the name."""


# --- asyncio ---
#
# One _shmq.Poller per event loop, its descriptor added with
# loop.add_reader(): no thread per wait.  An awaiting call first tries the
# operation; only if it would block does it watch the object, await its
# readiness, and try again (another process may have been quicker).
# Cancelling the awaiting task frees the watch, which cancels the wait.

_POLL_RECV = 1
_POLL_SEND = 2
_loop_pollers = _weakref.WeakKeyDictionary()


class _LoopPoller:
    def __init__(self, loop):
        self._p = _shmq.Poller()
        self._fd = self._p.fd()
        self._gen = _generation
        loop.add_reader(self._fd, self._p.run)
        _weakref.finalize(self, loop.remove_reader, self._fd)

    async def ready(self, handle, events):
        loop = _asyncio.get_running_loop()
        fut = loop.create_future()

        def fired(ev):
            if not fut.done():
                fut.set_result(ev)

        w = self._p.watch(handle, events, fired)
        try:
            self._p.run()  # arms the wait (or finds it ready already)
            return await fut
        finally:
            w.free()


def _poller():
    loop = _asyncio.get_running_loop()
    lp = _loop_pollers.get(loop)
    if lp is None or lp._gen != _generation:
        lp = _loop_pollers[loop] = _LoopPoller(loop)
    return lp


async def _queue_get_async(self):
    """await q.get_async(): get() without blocking the event loop."""
    while True:
        try:
            return self.get(False)
        except Empty:
            await _poller().ready(self._rx, _POLL_RECV)


async def _queue_put_async(self, obj):
    """await q.put_async(obj): put() without blocking the event loop."""
    data, parts = _message(obj)
    while True:
        try:
            if parts is None:
                return self.put_bytes(data, False)
            return self._put_parts(parts, False, None)
        except Full:
            await _poller().ready(self._tx, _POLL_SEND)


async def _queue_get_bytes_async(self):
    while True:
        try:
            return self.get_bytes(False)
        except Empty:
            await _poller().ready(self._rx, _POLL_RECV)


async def _lock_acquire_async(self):
    """await lock.acquire_async(): acquire() without blocking the event loop."""
    while not self.acquire(False):
        await _poller().ready(self._l, _POLL_RECV)
    return True


async def _sem_acquire_async(self):
    while not self.acquire(False):
        await _poller().ready(self._s, _POLL_RECV)
    return True


async def _event_wait_async(self):
    """await event.wait_async(): wait() without blocking the event loop."""
    while not self.is_set():
        await _poller().ready(self._e, _POLL_RECV)
    return True


Queue.get_async = _queue_get_async
Queue.put_async = _queue_put_async
Queue.get_bytes_async = _queue_get_bytes_async
_LockBase.acquire_async = _lock_acquire_async
Semaphore.acquire_async = _sem_acquire_async
Event.wait_async = _event_wait_async
