# SPDX-License-Identifier: MIT
"""asyncio: awaiting shmq objects through one descriptor per loop, no threads."""

import asyncio
import subprocess
import sys
import threading

import shmq


def test_get_async_waits_for_a_put_from_another_process():
    async def main():
        q = shmq.Queue("py-aio", maxsize=8)
        try:
            threads = threading.active_count()
            child = subprocess.Popen(
                [sys.executable, "-c",
                 "import shmq, time\n"
                 "time.sleep(0.2)\n"
                 "q = shmq.Queue.open('py-aio')\n"
                 "for i in range(5):\n"
                 "    q.put(i)\n"])
            got = [await asyncio.wait_for(q.get_async(), 20) for _ in range(5)]
            assert got == list(range(5))
            assert threading.active_count() == threads, "a thread per wait"
            child.wait(10)
        finally:
            q.close()
            shmq.unlink("py-aio")

    asyncio.run(main())


def test_put_async_waits_for_room():
    async def main():
        q = shmq.Queue(maxsize=2)
        await q.put_async("a")
        await q.put_async("b")
        t = asyncio.ensure_future(q.put_async("c"))
        await asyncio.sleep(0.05)
        assert not t.done(), "the queue is full"
        assert q.get(timeout=5) == "a"
        await asyncio.wait_for(t, 10)
        assert [q.get(timeout=5), q.get(timeout=5)] == ["b", "c"]

    asyncio.run(main())


def test_lock_and_event_and_semaphore_async():
    async def main():
        lock, ev, sem = shmq.Lock(), shmq.Event(), shmq.Semaphore(0)
        assert await lock.acquire_async()
        holder = threading.Thread(target=lambda: (lock.acquire(timeout=10), lock.release()))
        holder.start()
        await asyncio.sleep(0.05)
        lock.release()
        holder.join(10)
        assert await asyncio.wait_for(lock.acquire_async(), 10)
        lock.release()
        threading.Timer(0.1, ev.set).start()
        assert await asyncio.wait_for(ev.wait_async(), 10)
        threading.Timer(0.1, sem.release).start()
        assert await asyncio.wait_for(sem.acquire_async(), 10)

    asyncio.run(main())


def test_cancelling_a_waiting_task_cancels_the_wait_and_takes_nothing():
    async def main():
        q = shmq.Queue(maxsize=4)
        t = asyncio.ensure_future(q.get_async())
        await asyncio.sleep(0.05)
        t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            pass
        q.put("after")
        assert q.get(timeout=5) == "after", "the cancelled wait took it"

    asyncio.run(main())


def test_a_poller_in_a_cycle_with_its_watch_is_collected():
    import gc
    from shmq import _shmq

    q = shmq.Queue()
    handle = q._rx
    before = sys.getrefcount(handle)
    p = _shmq.Poller()
    p.watch(handle, 1, lambda ev, p=p: None)  # poller -> watch -> callback -> poller
    assert sys.getrefcount(handle) == before + 1
    del p
    gc.collect()
    assert sys.getrefcount(handle) == before, "the cycle was never collected"
    q.put(1)
    assert q.get(timeout=5) == 1  # the handle still works, its wait was cancelled
