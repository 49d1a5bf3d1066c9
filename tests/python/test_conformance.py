# SPDX-License-Identifier: MIT
"""The same scenarios against multiprocessing and shmq: the drop-in promise.

Each test takes `mp`, either the multiprocessing module or shmq, and uses
only the names both have.  The shmq-only tests (open by name from an
unrelated process, kill -9, Ctrl-C, no leftovers) are in test_shmq.py.
"""

import multiprocessing
import pickle
import queue
import threading
import time

import pytest

import shmq

ctx = multiprocessing.get_context("fork")


class MP:
    """multiprocessing under the signatures shmq shares with it."""

    Queue = staticmethod(lambda maxsize=0: ctx.Queue(maxsize))
    SimpleQueue = staticmethod(ctx.SimpleQueue)
    Lock = staticmethod(ctx.Lock)
    RLock = staticmethod(ctx.RLock)
    Semaphore = staticmethod(ctx.Semaphore)
    BoundedSemaphore = staticmethod(ctx.BoundedSemaphore)
    Event = staticmethod(ctx.Event)
    JoinableQueue = staticmethod(ctx.JoinableQueue)
    Pipe = staticmethod(ctx.Pipe)
    Barrier = staticmethod(ctx.Barrier)
    BrokenBarrierError = threading.BrokenBarrierError
    Condition = staticmethod(ctx.Condition)


class SHMQ:
    Queue = staticmethod(lambda maxsize=0: shmq.Queue(None, maxsize))
    SimpleQueue = staticmethod(shmq.SimpleQueue)
    Lock = staticmethod(shmq.Lock)
    RLock = staticmethod(shmq.RLock)
    Semaphore = staticmethod(shmq.Semaphore)
    BoundedSemaphore = staticmethod(shmq.BoundedSemaphore)
    Event = staticmethod(shmq.Event)
    JoinableQueue = staticmethod(shmq.JoinableQueue)
    Pipe = staticmethod(shmq.Pipe)
    Barrier = staticmethod(shmq.Barrier)
    BrokenBarrierError = shmq.BrokenBarrierError
    Condition = staticmethod(shmq.Condition)


@pytest.fixture(params=[MP, SHMQ], ids=["multiprocessing", "shmq"])
def mp(request):
    return request.param


def _producer(q, n, tag):
    for i in range(n):
        q.put((tag, i, "x" * (i % 50)))


def _consumer(q, out, n):
    got = [q.get(timeout=20) for _ in range(n)]
    out.put(sorted(got))


def test_put_get_nowait_empty_and_timeouts(mp):
    q = mp.Queue()
    with pytest.raises(queue.Empty):
        q.get_nowait()
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)
    assert time.monotonic() - t0 >= 0.19
    q.put({"a": [1, 2, 3]})
    q.put_nowait(b"bytes too")
    assert q.get(timeout=5) == {"a": [1, 2, 3]}
    assert q.get(timeout=5) == b"bytes too"
    with pytest.raises(queue.Empty):
        q.get(block=False)


def test_a_full_bounded_queue_raises_full(mp):
    q = mp.Queue(maxsize=2)
    q.put(1)
    q.put(2)
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.1)
    assert q.get(timeout=5) == 1
    q.put(3, timeout=5)
    assert [q.get(timeout=5), q.get(timeout=5)] == [2, 3]


def test_producers_and_consumers_in_child_processes_move_everything(mp):
    q, out = mp.Queue(), mp.Queue()
    n = 300
    producers = [ctx.Process(target=_producer, args=(q, n, t)) for t in range(2)]
    consumers = [ctx.Process(target=_consumer, args=(q, out, n)) for _ in range(2)]
    for p in producers + consumers:
        p.start()
    got = out.get(timeout=30) + out.get(timeout=30)
    for p in producers + consumers:
        p.join(30)
        assert p.exitcode == 0
    want = sorted((t, i, "x" * (i % 50)) for t in range(2) for i in range(n))
    assert sorted(got) == want


def test_simple_queue(mp):
    q = mp.SimpleQueue()
    assert q.empty()
    q.put("one")
    assert not q.empty()
    assert q.get() == "one"


def _bump(lock, counter_q, n):
    for _ in range(n):
        with lock:
            v = counter_q.get(timeout=10)
            counter_q.put(v + 1)


def test_lock_gives_mutual_exclusion_between_processes(mp):
    lock, q = mp.Lock(), mp.Queue()
    q.put(0)
    ps = [ctx.Process(target=_bump, args=(lock, q, 200)) for _ in range(3)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(30)
        assert p.exitcode == 0
    assert q.get(timeout=5) == 600


def test_lock_acquire_without_blocking_and_with_a_timeout(mp):
    lock = mp.Lock()
    assert lock.acquire()
    assert lock.acquire(False) is False
    t0 = time.monotonic()
    assert lock.acquire(timeout=0.2) is False
    assert time.monotonic() - t0 >= 0.19
    lock.release()
    assert lock.acquire(timeout=1)
    lock.release()


def test_rlock_is_reentrant(mp):
    r = mp.RLock()
    with r:
        with r:
            assert r.acquire(False)
            r.release()


def test_semaphore_counts_and_bounded_semaphore_refuses_over_release(mp):
    s = mp.Semaphore(2)
    assert s.acquire(False) and s.acquire(False)
    assert s.acquire(False) is False
    s.release()
    assert s.acquire(timeout=1)
    b = mp.BoundedSemaphore(1)
    assert b.acquire()
    b.release()
    with pytest.raises(ValueError):
        b.release()


def _set_later(ev, delay):
    time.sleep(delay)
    ev.set()


def test_event_wakes_a_waiter_in_another_process(mp):
    ev = mp.Event()
    assert not ev.is_set()
    assert ev.wait(0.05) is False
    p = ctx.Process(target=_set_later, args=(ev, 0.2))
    p.start()
    assert ev.wait(20) is True
    assert ev.is_set()
    ev.clear()
    assert not ev.is_set()
    p.join(10)
    assert p.exitcode == 0


def _worker(jq, results):
    while True:
        job = jq.get(timeout=20)
        if job is None:
            jq.task_done()
            return
        results.put(job * job)
        jq.task_done()


def test_a_joinable_queue_joins_when_every_task_is_done(mp):
    jq, results = mp.JoinableQueue(), mp.Queue()
    workers = [ctx.Process(target=_worker, args=(jq, results)) for _ in range(2)]
    for w in workers:
        w.start()
    for n in range(50):
        jq.put(n)
    for _ in workers:
        jq.put(None)
    jq.join()
    assert sorted(results.get(timeout=5) for _ in range(50)) == [n * n for n in range(50)]
    for w in workers:
        w.join(10)
        assert w.exitcode == 0
    with pytest.raises(ValueError):
        jq.task_done()


def _echo(conn, other):
    other.close()  # the parent's end, inherited: EOF needs every copy closed
    while True:
        try:
            obj = conn.recv()
        except EOFError:
            return
        conn.send(("echo", obj))


def test_a_duplex_pipe_echoes_and_ends_with_eoferror(mp):
    a, b = mp.Pipe()
    p = ctx.Process(target=_echo, args=(b, a))
    p.start()
    b.close()  # the child's end: this process keeps no copy
    assert a.poll(0) is False
    for obj in [1, "two", {"three": [3]}, b"four" * 1000]:
        a.send(obj)
        assert a.poll(10)
        assert a.recv() == ("echo", obj)
    a.send_bytes(pickle.dumps("raw"))
    assert a.recv() == ("echo", "raw")
    a.close()
    p.join(10)
    assert p.exitcode == 0


def _write_and_close(w):
    for i in range(20):
        w.send(i)
    w.close()


def test_a_one_way_pipe_carries_everything_then_eof(mp):
    r, w = mp.Pipe(duplex=False)
    p = ctx.Process(target=_write_and_close, args=(w,))
    p.start()
    w.close()  # the child's end: this process keeps no copy
    got = []
    while True:
        try:
            got.append(r.recv())
        except EOFError:
            break
    assert got == list(range(20))
    p.join(10)
    assert p.exitcode == 0


def _party(b, out):
    out.put(b.wait(timeout=20))


def test_a_barrier_lets_all_parties_through_with_distinct_indices(mp):
    b, out = mp.Barrier(3), mp.Queue()
    ps = [ctx.Process(target=_party, args=(b, out)) for _ in range(2)]
    for p in ps:
        p.start()
    mine = b.wait(timeout=20)
    got = sorted([mine, out.get(timeout=10), out.get(timeout=10)])
    assert got == [0, 1, 2]
    for p in ps:
        p.join(10)
        assert p.exitcode == 0


def test_a_barrier_wait_that_times_out_breaks_it(mp):
    b = mp.Barrier(2)
    with pytest.raises(mp.BrokenBarrierError):
        b.wait(timeout=0.1)
    assert b.broken
    b.reset()
    assert not b.broken


def _turns(cond, state, me, n):
    for _ in range(n):
        with cond:
            cond.wait_for(lambda: state.value % 2 == me, timeout=20)
            state.value += 1
            cond.notify_all()


def test_a_condition_passes_turns_between_processes(mp):
    cond = mp.Condition()
    state = ctx.Value("i", 0, lock=False)
    ps = [ctx.Process(target=_turns, args=(cond, state, me, 50)) for me in (0, 1)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(30)
        assert p.exitcode == 0
    assert state.value == 100


def test_a_condition_wait_times_out_holding_the_lock_again(mp):
    cond = mp.Condition()
    with cond:
        t0 = time.monotonic()
        assert cond.wait(0.1) is False
        assert time.monotonic() - t0 >= 0.09
    with pytest.raises(AssertionError):
        cond.notify()
