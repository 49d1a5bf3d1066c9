#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Check that shmqd's unit allows every system call the daemon makes.

Runs shmqd under strace while clients exercise what the daemon does:
creating queues (one bound to NUMA node 0 when the machine has one) and
semaphores, views, purges, removals, a producer killed while it sleeps on a
full queue (repair), SIGHUP (reload) and SIGTERM.  Then expands the unit's
SystemCallFilter= lines with `systemd-analyze syscall-filter` and fails if
the daemon made a call the filter would refuse.  The daemon runs as root
here; under systemd it runs as user shmq, which only makes fewer calls
succeed, never different ones.
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time


def syscall_groups():
    """{"@group": [members, possibly "@other"]} from systemd-analyze."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], check=True,
                         capture_output=True, text=True).stdout
    groups, current = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            current = line.split()[0]
            groups[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            groups[current].append(line.strip())
        elif not line.strip():
            current = None
    return groups


def expand(names, groups, seen=None):
    seen = set() if seen is None else seen
    calls = set()
    for name in names:
        if name.startswith("@"):
            if name in seen:
                continue
            seen.add(name)
            calls |= expand(groups.get(name, []), groups, seen)
        else:
            calls.add(name)
    return calls


def allowed_by(unit, groups):
    """The calls the unit's SystemCallFilter= lines leave allowed."""
    allow, deny = set(), set()
    for line in open(unit):
        line = line.strip()
        if not line.startswith("SystemCallFilter="):
            continue
        value = line.split("=", 1)[1].strip()
        if value.startswith("~"):
            deny |= expand(value[1:].split(), groups)
        else:
            allow |= expand(value.split(), groups)
    # systemd permits @default whatever the list says.
    return (allow - deny) | expand(["@default"], groups)


# Calls the daemon makes on paths this run may not take: pidfd_open() on
# kernels without SO_PEERPIDFD, futex wakes for undo semaphores, NUMA and
# huge page placement, the descriptor limit, epoll_pwait in other libcs.
ALSO_NEEDED = ["pidfd_open", "futex", "memfd_create", "membarrier", "mbind",
               "set_mempolicy", "get_mempolicy", "madvise", "fchmod",
               "ftruncate", "setrlimit", "prlimit64", "getrlimit", "signalfd4",
               "epoll_pwait", "epoll_wait", "accept4", "getsockopt", "sendmsg",
               "recvmsg"]


def wait_for(path, proc, seconds=10):
    """Until the daemon accepts a connection: the file exists at bind(),
    before listen(), and a re-adopting daemon listens before it serves."""
    end = time.monotonic() + seconds
    while True:
        if proc.poll() is not None or time.monotonic() > end:
            sys.exit(f"shmqd did not answer on {path}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
                s.connect(path)
                return
        except OSError:
            time.sleep(0.02)


def traced_pid(trace):
    """The daemon's pid: strace's first line is the daemon's execve."""
    try:
        with open(trace) as f:
            return int(f.readline().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trace-dir", required=True)
    ap.add_argument("--shmqd", required=True)
    ap.add_argument("--shmqctl", required=True)
    ap.add_argument("--examples", required=True)
    ap.add_argument("--unit", required=True)
    args = ap.parse_args()

    os.makedirs(args.trace_dir, exist_ok=True)
    sock = os.path.join(args.trace_dir, "shmqd.sock")
    trace = os.path.join(args.trace_dir, "strace.out")
    env = dict(os.environ, SHMQ_SOCKET=sock)
    # With a state directory, and a second start that re-adopts from it, so
    # the persistence paths (daemon/store.c) are traced too.
    state = os.path.join(args.trace_dir, "state")
    current = trace  # the running daemon's trace
    daemon = subprocess.Popen(["strace", "-f", "-qq", "-o", trace, args.shmqd,
                               "--config=/dev/null", "--socket=" + sock,
                               "--state-directory=" + state],
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(sock, daemon)

        def ctl(*a):
            subprocess.run([args.shmqctl, *a], env=env, check=True,
                           stdout=subprocess.DEVNULL)

        def example(name, *a):
            subprocess.run([os.path.join(args.examples, name), *a], env=env,
                           check=True, stdout=subprocess.DEVNULL)

        ctl("create", "queue", "kept", "--slots", "64")
        ctl("create", "queue", "q", "--slots", "64")
        if os.path.exists("/sys/devices/system/node/node0"):
            ctl("create", "queue", "numa", "--numa", "0")
        ctl("create", "sem", "s", "--max", "3", "--undo")
        example("hello")
        example("producer", "-q", "pc", "-n", "1000")
        example("consumer", "-q", "pc", "-e", "1000")
        # A producer asleep on a full queue, killed: the daemon repairs.
        prod = subprocess.Popen([os.path.join(args.examples, "producer"), "-q",
                                 "full", "--slots", "4", "-n", "100"], env=env,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        prod.send_signal(signal.SIGKILL)
        prod.wait()
        for verb in (["ls"], ["show", "full"], ["clients"], ["check"],
                     ["purge", "full"], ["status"],
                     ["top", "--iterations", "1", "--interval", "0.05"],
                     ["rm", "q", "s", "full"]):
            ctl(*verb)
        time.sleep(0.1)
        # strace's child is the daemon: signal it, not strace.
        with open(trace) as f:
            daemon_pid = int(f.readline().split()[0])
        os.kill(daemon_pid, signal.SIGHUP)
        time.sleep(0.2)
        ctl("status")
        os.kill(daemon_pid, signal.SIGTERM)
        if daemon.wait(timeout=20) != 0:
            sys.exit("shmqd under strace did not exit cleanly")
        current = trace + ".2"
        daemon = subprocess.Popen(["strace", "-f", "-qq", "-o", trace + ".2",
                                   args.shmqd, "--config=/dev/null",
                                   "--socket=" + sock,
                                   "--state-directory=" + state],
                                  stderr=subprocess.DEVNULL)
        wait_for(sock, daemon)
        ctl("rm", "kept")
        with open(trace + ".2") as f:
            daemon_pid = int(f.readline().split()[0])
        os.kill(daemon_pid, signal.SIGTERM)
        if daemon.wait(timeout=20) != 0:
            sys.exit("shmqd under strace did not exit cleanly after re-adopting")
    finally:
        if daemon.poll() is None:
            # Killing strace detaches the daemon, which would live on.
            pid = traced_pid(current)
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            daemon.kill()

    used = set()
    call = re.compile(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]")
    for path in (trace, trace + ".2"):
        for line in open(path):
            m = call.match(line)
            if m and not line.split(None, 1)[1].startswith("+++") and \
                    not line.split(None, 1)[1].startswith("---"):
                used.add(m.group(1))
    allowed = allowed_by(args.unit, syscall_groups())
    refused = sorted((used | set(ALSO_NEEDED)) - allowed)
    print(f"shmqd made {len(used)} distinct system calls: {' '.join(sorted(used))}")
    if refused:
        print(f"refused by {os.path.basename(args.unit)}'s SystemCallFilter=: "
              f"{' '.join(refused)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
