# SPDX-License-Identifier: MIT
"""What shmq adds to multiprocessing, and what it promises that it does not."""

import os
import pickle
import signal
import subprocess
import sys
import time

import pytest

import shmq
from conftest import objects, run_python


def test_unrelated_processes_meet_by_name(shmqd):
    q = shmq.Queue("py-jobs", maxsize=8)
    try:
        r = run_python(
            "import shmq\n"
            "shmq.Queue.open('py-jobs').put(('from', 'a stranger'))\n"
        )
        assert r.returncode == 0, r.stderr
        assert q.get(timeout=10) == ("from", "a stranger")
        q.put("reply")
        r = run_python(
            "import shmq\n"
            "print(shmq.Queue.open('py-jobs').get(timeout=10))\n"
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "reply"
    finally:
        q.close()
        shmq.unlink("py-jobs")


def test_a_queue_pickles_by_name_and_the_copy_reaches_the_same_object():
    q = shmq.Queue()
    q2 = pickle.loads(pickle.dumps(q))
    assert q2.name == q.name
    q2.put("through the copy")
    assert q.get(timeout=5) == "through the copy"


def test_bytes_skip_pickling_and_large_messages_go_through_the_arena():
    q = shmq.Queue(maxsize=4)
    q.put_bytes(b"raw")
    assert q.get_bytes(timeout=5) == b"raw"
    big = os.urandom(300_000)
    q.put_bytes(big)
    assert q.get_bytes(timeout=5) == big
    q.put({"k": big})
    assert q.get(timeout=5) == {"k": big}


def test_put_many_and_get_many():
    q = shmq.Queue(maxsize=64)
    q.put_many(range(10))
    assert q.qsize() == 10
    assert q.get_many(4) == [0, 1, 2, 3]
    assert q.get_many(100, timeout=1) == [4, 5, 6, 7, 8, 9]


def test_opening_a_missing_name_is_file_not_found():
    with pytest.raises(FileNotFoundError):
        shmq.Queue.open("py-no-such-queue")
    with pytest.raises(FileNotFoundError):
        shmq.Lock.open("py-no-such-lock")


def test_a_lock_holder_killed_with_sigkill_does_not_wedge_the_lock():
    lock = shmq.Lock("py-lock-victim")
    try:
        child = subprocess.Popen(
            [sys.executable, "-c",
             "import shmq, sys, time\n"
             "l = shmq.Lock.open('py-lock-victim')\n"
             "l.acquire()\n"
             "print('held', flush=True)\n"
             "time.sleep(60)\n"],
            stdout=subprocess.PIPE, text=True,
        )
        assert child.stdout.readline().strip() == "held"
        assert lock.acquire(False) is False
        child.kill()
        child.wait(10)
        assert lock.acquire(timeout=10), "the dead holder's lock was never freed"
        lock.release()
    finally:
        shmq.unlink("py-lock-victim")


def test_ctrl_c_ends_a_get_blocked_forever():
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import shmq\n"
         "q = shmq.Queue()\n"
         "print('waiting', flush=True)\n"
         "try:\n"
         "    q.get()\n"
         "except KeyboardInterrupt:\n"
         "    print('interrupted', flush=True)\n"],
        stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout.readline().strip() == "waiting"
    time.sleep(0.2)  # well into the wait
    child.send_signal(signal.SIGINT)
    assert child.stdout.readline().strip() == "interrupted"
    assert child.wait(10) == 0


def test_ctrl_c_during_a_barrier_wait_raises_and_breaks_it_for_the_others():
    b = shmq.Barrier(2, name="py-barrier-int")
    try:
        child = subprocess.Popen(
            [sys.executable, "-c",
             "import shmq\n"
             "b = shmq.Barrier.open('py-barrier-int')\n"
             "print('waiting', flush=True)\n"
             "try:\n"
             "    b.wait()\n"
             "except KeyboardInterrupt:\n"
             "    print('interrupted', b.broken, flush=True)\n"],
            stdout=subprocess.PIPE, text=True,
        )
        assert child.stdout.readline().strip() == "waiting"
        deadline = time.monotonic() + 10
        while b.n_waiting == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert b.n_waiting == 1
        time.sleep(0.2)  # well into the wait
        child.send_signal(signal.SIGINT)
        assert child.stdout.readline().strip() == "interrupted True"
        assert child.wait(10) == 0
        with pytest.raises(shmq.BrokenBarrierError):
            b.wait(timeout=5)
    finally:
        b.unlink()


def test_a_sender_killed_mid_stream_loses_nothing_it_was_told_was_sent():
    q = shmq.Queue("py-mid-put", maxsize=1024)
    try:
        child = subprocess.Popen(
            [sys.executable, "-c",
             "import shmq, sys\n"
             "q = shmq.Queue.open('py-mid-put')\n"
             "i = 0\n"
             "while True:\n"
             "    q.put(i)\n"
             "    sys.stdout.write('%d\\n' % i); sys.stdout.flush()\n"
             "    i += 1\n"],
            stdout=subprocess.PIPE, text=True,
        )
        acked = -1
        for _ in range(200):
            acked = int(child.stdout.readline())
        child.kill()
        child.wait(10)
        got = []
        while True:
            try:
                got.append(q.get(timeout=0.5))
            except shmq.Empty:
                break
        assert got == list(range(len(got))), "out of order or duplicated"
        assert len(got) >= acked + 1, "a put that returned was lost"
    finally:
        q.close()
        shmq.unlink("py-mid-put")


def test_errors_are_oserrors_with_the_errno_and_the_reason():
    with pytest.raises(OSError) as e:
        shmq.Queue("bad/name")
    assert e.value.errno == 22
    assert "invalid name" in str(e.value)
    shmq.Semaphore(1, "py-why-sem")
    try:
        with pytest.raises(OSError) as e:
            shmq.Queue.open("py-why-sem")
        assert "is of kind semaphore" in str(e.value), str(e.value)
    finally:
        shmq.unlink("py-why-sem")


def test_a_joinable_consumer_killed_holding_a_task_does_not_wedge_join():
    jq = shmq.JoinableQueue("py-jq-victim", maxsize=8)
    try:
        jq.put("task")
        child = subprocess.Popen(
            [sys.executable, "-c",
             "import shmq, time\n"
             "jq = shmq.JoinableQueue.open('py-jq-victim')\n"
             "jq.get(timeout=10)\n"
             "print('took it', flush=True)\n"
             "time.sleep(60)\n"],
            stdout=subprocess.PIPE, text=True,
        )
        assert child.stdout.readline().strip() == "took it"
        assert jq.join(timeout=0.1) is False, "the task is still being worked on"
        child.kill()
        child.wait(10)
        assert jq.join(timeout=10), "the dead consumer's task was never counted done"
    finally:
        jq.close()
        shmq.unlink("py-jq-victim")


def test_a_pipe_end_whose_holder_is_killed_reads_as_end_of_file():
    a, b = shmq.Pipe(name="py-pipe-victim")
    try:
        child = subprocess.Popen(
            [sys.executable, "-c",
             "import pickle, sys, time\n"
             "b = pickle.loads(bytes.fromhex(sys.argv[1]))\n"
             "b.send('hello')\n"
             "time.sleep(60)\n",
             pickle.dumps(b).hex()],
        )
        assert a.recv() == "hello"
        child.kill()
        child.wait(10)
        with pytest.raises(EOFError):
            a.recv()
        with pytest.raises(BrokenPipeError):
            a.send("anyone?")
    finally:
        a.close()
        shmq.unlink("py-pipe-victim")


def test_no_objects_are_left_behind(shmqd):
    """The anonymous objects of the tests above went with their makers."""
    import gc

    gc.collect()
    names = [o.get("name") for o in objects(shmqd)]
    assert names == [], "left behind: %s" % names


class Blob:
    """An object with a buffer, pickled as NumPy arrays are: a PickleBuffer in protocol 5."""

    def __init__(self, data):
        self.data = data

    def __reduce_ex__(self, protocol):
        if protocol >= 5:
            return Blob, (pickle.PickleBuffer(self.data),)
        return Blob, (bytes(self.data),)


def test_large_buffers_travel_out_of_band_and_come_back_writable():
    q = shmq.Queue(maxsize=8)
    data = bytearray(os.urandom(100_000))
    q.put(Blob(data))
    raw = q.get_bytes(timeout=5)
    assert type(raw) is bytes and raw[0] == 1, "a frame, not a pickle"
    assert len(raw) < len(data) + 512, "the buffer is in the message once"
    at = raw.index(bytes(data[:64]))
    assert at % 64 == 0 and raw[at:at + len(data)] == data

    q.put(Blob(data))
    got = q.get(timeout=5)
    assert bytes(got.data) == data
    view = memoryview(got.data)
    assert not view.readonly, "unpickled over writable memory, as it was dumped"
    view[0] ^= 0xFF  # and it is its own memory, not the sender's
    assert data[0] != view[0]


def test_small_buffers_stay_in_the_pickle():
    q = shmq.Queue(maxsize=8)
    q.put(Blob(bytearray(b"x" * 100)))
    assert q.get_bytes(timeout=5)[:1] == b"\x80"
    q.put(Blob(bytearray(b"y" * 100)))
    assert bytes(q.get(timeout=5).data) == b"y" * 100


def test_frames_mixed_with_plain_messages_keep_their_order():
    q = shmq.Queue(maxsize=64)
    big = bytearray(range(256)) * 64
    objs = [1, Blob(big), "two", Blob(big), Blob(bytearray(3)), None]
    q.put_many(objs)
    got = q.get_many(len(objs), timeout=5)
    while len(got) < len(objs):
        got += q.get_many(len(objs), timeout=5)
    assert got[0] == 1 and got[2] == "two" and got[5] is None
    assert bytes(got[1].data) == big and bytes(got[3].data) == big
    assert bytes(got[4].data) == bytes(3)


def test_bytes_that_look_like_a_frame_stay_bytes_and_bad_frames_raise():
    q = shmq.Queue(maxsize=8)
    q.put_bytes(b"\x01abc")
    got = q.get_bytes(timeout=5)
    assert type(got) is bytes and got == b"\x01abc"
    for bad in (b"\x01abc",                                          # truncated header
                b"\x01\0\0\0\xff\xff\xff\xff",                       # 2**32-1 buffers
                b"\x01\0\0\0\0\0\0\0" + (10**6).to_bytes(8, "little"),  # pickle past the end
                b"\x01\0\0\0\1\0\0\0" + (1).to_bytes(8, "little")
                + (10**9).to_bytes(8, "little") + b"N"):             # buffer past the end
        q.put_bytes(bad)
        with pytest.raises(pickle.UnpicklingError):
            q.get(timeout=5)


def test_a_pipe_carries_large_buffers_out_of_band_too():
    a, b = shmq.Pipe()
    data = bytearray(os.urandom(50_000))
    a.send(Blob(data))
    got = b.recv()
    assert bytes(got.data) == data and not memoryview(got.data).readonly
    a.send({"small": 1})
    assert b.recv() == {"small": 1}


def test_a_failed_connect_names_the_socket_and_the_fix():
    r = subprocess.run(
        [sys.executable, "-c",
         "import shmq\n"
         "try:\n"
         "    shmq.Queue('x')\n"
         "except FileNotFoundError as e:\n"
         "    print(e)\n"],
        env=dict(os.environ, SHMQ_SOCKET="/tmp/shmq-nowhere/x.sock"),
        capture_output=True, text=True, timeout=30)
    assert "shmqd at /tmp/shmq-nowhere/x.sock: no daemon listens there" in r.stdout, r
