# SPDX-License-Identifier: MIT
"""shmq's Python module against multiprocessing, in one run: `make bench-python`.

Two processes (the parent and a forked child, pinned to CPUs 0 and 1 when
there are two): one-way message rates of small pickled objects, of
64-byte bytes and of objects with a 256 KiB buffer (out of band in
shmq, and in the pickle for comparison) through multiprocessing.Queue,
SimpleQueue and Pipe and through shmq.Queue; round trips through multiprocessing.Pipe and
shmq.Pipe.  Each figure is the median of --reps repetitions; every message
is checked by its sequence number.  Targets (ratios within this run):
shmq.Queue >= 10x multiprocessing.Queue's rate for small pickled objects,
>= 30x for bytes, and a shmq.Pipe round trip >= 10x shorter than
multiprocessing.Pipe's.  A private shmqd is started on a temporary socket
($SHMQD, else build/shmqd).
"""

import argparse
import multiprocessing
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CTX = multiprocessing.get_context("fork")


def pin(cpu):
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() >= 2:
        os.sched_setaffinity(0, {cpu})


def start_daemon():
    here = os.path.dirname(os.path.abspath(__file__))
    shmqd = os.environ.get("SHMQD") or os.path.join(here, "..", "..", "build", "shmqd")
    d = tempfile.mkdtemp(prefix="shmq-pybench-")
    sock = os.path.join(d, "shmqd.sock")
    proc = subprocess.Popen([shmqd, "--socket=" + sock, "--config=/dev/null"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ["SHMQ_SOCKET"] = sock
    import shmq._shmq as _shmq

    deadline = time.monotonic() + 10
    while True:
        try:
            _shmq.Client(sock)
            return proc, d
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("pybench: shmqd did not start")
            time.sleep(0.02)


# --- one-way rates ---

BATCH = 64  # messages per put_many()/get_many() call
LARGE = 256 * 1024  # a "large" message's buffer
LARGE_SHARE = 50  # large messages are n / LARGE_SHARE per run


class Block:
    """A buffer that pickles as NumPy arrays do: a PickleBuffer in protocol 5."""

    def __init__(self, data):
        self.data = data

    def __reduce_ex__(self, protocol):
        return Block, (pickle.PickleBuffer(self.data) if protocol >= 5 else bytes(self.data),)


def _message(i, kind):
    if kind == "bytes":
        return i.to_bytes(8, "little") + b"x" * 56
    if kind == "large":
        b = bytearray(LARGE)
        b[:8] = i.to_bytes(8, "little")
        return Block(b)
    return (i, "payload")


def _seq(m, kind):
    if kind == "bytes":
        return int.from_bytes(m[:8], "little")
    if kind == "large":
        return int.from_bytes(m.data[:8], "little")
    return m[0]


def _produce(make_put, q, n, kind, batch):
    pin(1)
    put = make_put(q)
    if batch:
        for i in range(0, n, BATCH):
            put([_message(j, kind) for j in range(i, min(n, i + BATCH))])
    else:
        for i in range(n):
            put(_message(i, kind))


def rate(make_q, make_put, make_get, n, kind, batch=False):
    if kind == "large":
        n = max(1, n // LARGE_SHARE)
    q = make_q()
    p = CTX.Process(target=_produce, args=(make_put, q, n, kind, batch))
    get = make_get(q)
    t0 = time.perf_counter()
    p.start()
    i = 0
    while i < n:
        for m in (get(BATCH) if batch else (get(),)):
            seq = _seq(m, kind)
            if seq != i:
                raise SystemExit("pybench: message %d arrived as %d" % (i, seq))
            i += 1
    t = time.perf_counter() - t0
    p.join()
    if hasattr(q, "close"):
        q.close()
    return n / t


# --- round trips ---

def _echo_pipe(conn, other, n):
    pin(1)
    other.close()
    for _ in range(n):
        conn.send_bytes(conn.recv_bytes())


def rtt(make_pipe, n):
    a, b = make_pipe()
    p = CTX.Process(target=_echo_pipe, args=(b, a, n))
    p.start()
    b.close()
    msg = b"r" * 64
    for _ in range(min(1000, n // 10)):  # warm-up, counted out below
        a.send_bytes(msg)
        a.recv_bytes()
    samples = []
    for _ in range(n - min(1000, n // 10)):
        t0 = time.perf_counter_ns()
        a.send_bytes(msg)
        a.recv_bytes()
        samples.append(time.perf_counter_ns() - t0)
    p.join()
    a.close()
    return statistics.median(samples)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="repetitions; medians are reported")
    ap.add_argument("-n", type=int, default=100000, help="messages per rate run")
    ap.add_argument("--rtt", type=int, default=20000, help="round trips per run")
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.n, args.rtt = 1, 5000, 2000
    pin(0)
    proc, d = start_daemon()
    import shmq

    def mpq():
        return CTX.Queue()

    def mpsq():
        return CTX.SimpleQueue()

    def sq():
        return shmq.Queue(maxsize=1024)

    def in_band_put(q):
        return lambda obj: q.put_bytes(pickle.dumps(obj, protocol=5))

    def in_band_get(q):
        return lambda: pickle.loads(q.get_bytes())

    rows = {
        ("multiprocessing.Queue", "pickled"): (mpq, lambda q: q.put, lambda q: q.get),
        ("multiprocessing.SimpleQueue", "pickled"): (mpsq, lambda q: q.put, lambda q: q.get),
        ("shmq.Queue", "pickled"): (sq, lambda q: q.put, lambda q: q.get),
        ("multiprocessing.Queue", "bytes"): (mpq, lambda q: q.put, lambda q: q.get),
        ("multiprocessing.SimpleQueue", "bytes"): (mpsq, lambda q: q.put, lambda q: q.get),
        ("shmq.Queue", "bytes"): (sq, lambda q: q.put_bytes, lambda q: q.get_bytes),
        ("shmq.Queue put/get_many", "pickled"): (sq, lambda q: q.put_many,
                                                 lambda q: q.get_many),
        ("shmq.Queue put/get_bytes_many", "bytes"): (sq, lambda q: q.put_bytes_many,
                                                     lambda q: q.get_bytes_many),
        ("multiprocessing.Queue", "large"): (mpq, lambda q: q.put, lambda q: q.get),
        ("shmq.Queue, buffer in the pickle", "large"): (sq, in_band_put, in_band_get),
        ("shmq.Queue", "large"): (sq, lambda q: q.put, lambda q: q.get),
    }
    rates = {k: [] for k in rows}
    rtts = {"multiprocessing.Pipe": [], "shmq.Pipe": []}
    try:
        for _ in range(args.reps):
            for k, (mq, mp_, mg) in rows.items():
                rates[k].append(rate(mq, mp_, mg, args.n, k[1], "many" in k[0]))
            rtts["multiprocessing.Pipe"].append(rtt(CTX.Pipe, args.rtt))
            rtts["shmq.Pipe"].append(rtt(shmq.Pipe, args.rtt))
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in rates.items()}
    print("python %s, shmq %s, %d reps (medians), %d messages, %d round trips"
          % (sys.version.split()[0], shmq.version(), args.reps, args.n, args.rtt))
    print("%-32s %-8s %14s %16s" % ("one way", "message", "msg/s", "vs mp.Queue"))
    print("(large: an object with a %d KiB buffer, %d per run)"
          % (LARGE // 1024, max(1, args.n // LARGE_SHARE)))
    for k, v in med.items():
        print("%-32s %-8s %14.0f %15.1fx" % (k[0], k[1], v,
                                            v / med[("multiprocessing.Queue", k[1])]))
    rm = {k: statistics.median(v) for k, v in rtts.items()}
    print("%-30s %14s %16s" % ("round trip, 64 B", "p50 (us)", "vs mp.Pipe"))
    for k, v in rm.items():
        print("%-30s %14.1f %15.2fx" % (k, v / 1000, v / rm["multiprocessing.Pipe"]))
    targets = [
        ("shmq.Queue pickled rate >= 10x multiprocessing.Queue",
         med[("shmq.Queue", "pickled")] / med[("multiprocessing.Queue", "pickled")], 10),
        ("  the same with put_many/get_many",
         med[("shmq.Queue put/get_many", "pickled")]
         / med[("multiprocessing.Queue", "pickled")], 10),
        ("shmq.Queue bytes rate >= 30x multiprocessing.Queue",
         med[("shmq.Queue", "bytes")] / med[("multiprocessing.Queue", "bytes")], 30),
        ("  the same with put_bytes_many/get_bytes_many",
         med[("shmq.Queue put/get_bytes_many", "bytes")]
         / med[("multiprocessing.Queue", "bytes")], 30),
        ("shmq.Pipe round trip >= 10x shorter than multiprocessing.Pipe",
         rm["multiprocessing.Pipe"] / rm["shmq.Pipe"], 10),
    ]
    for what, value, limit in targets:
        print("  %s  %-62s %6.1fx" % ("PASS" if value >= limit else "MISS", what, value))


if __name__ == "__main__":
    main()
