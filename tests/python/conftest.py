# SPDX-License-Identifier: MIT
"""Fixtures: one private shmqd per test session, on a temporary socket.

Every test runs under a SIGALRM deadline (TEST_SECONDS): a lost wake-up
or a wedged wait fails the test instead of hanging the run, since every
blocking call of the module looks at signals between slices.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

TEST_SECONDS = 60


@pytest.fixture(scope="session", autouse=True)
def shmqd():
    shmqd_path = os.environ.get("SHMQD")
    if not shmqd_path:
        pytest.fail("SHMQD names no daemon: run through build/tests/run-python-tests")
    d = tempfile.mkdtemp(prefix="shmq-py-")
    os.chmod(d, 0o755)  # other uids reach the socket
    sock = os.path.join(d, "shmqd.sock")
    log = open(os.path.join(d, "shmqd.stderr"), "w")
    proc = subprocess.Popen(
        [shmqd_path, "--socket=" + sock, "--config=/dev/null"], stdout=log, stderr=log
    )
    os.environ["SHMQ_SOCKET"] = sock
    import shmq._shmq as _shmq

    deadline = time.monotonic() + 10
    while True:
        try:
            _shmq.Client(sock)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.close()
                pytest.fail("shmqd did not answer: " + open(log.name).read())
            time.sleep(0.02)
    yield sock
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    subprocess.run(["rm", "-rf", d], check=False)


def objects(sock):
    """Every object shmqd holds, from shmqctl ls --json."""
    out = subprocess.run(
        [os.environ["SHMQCTL"], "--socket", sock, "ls", "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    doc = json.loads(out)
    return doc["objects"] if isinstance(doc, dict) else doc


@pytest.fixture(autouse=True)
def deadline():
    def expired(signum, frame):
        raise TimeoutError("test ran past %d s: a lost wake-up?" % TEST_SECONDS)

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_SECONDS)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def run_python(code, *args, timeout=30):
    """Run @code in a new, unrelated interpreter with this one's environment."""
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout
    )
