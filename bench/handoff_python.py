"""Python fasteners on the benchmark's side of the fence.

    handoff_python.py handoff ROLE LOCK SHM IN_FD OUT_FD ROUNDS HOLD_US
        one side of bench/handoff's ping-pong, same protocol and shared-memory
        layout as handoff.cpp (see there); started by handoff, not by hand
    handoff_python.py uncontended DIR [SECONDS]
        acquire+release cost without contention, as JSON on stdout (ns per pair)

Exits 2 when fasteners cannot be imported (handoff then reports it skipped).
Run it with the interpreter that has fasteners (Debian: /usr/bin/python3 with
python3-fasteners).
"""
import json
import os
import random
import struct
import sys
import time

try:
    import fasteners
except ImportError:
    print("handoff_python.py: cannot import fasteners", file=sys.stderr)
    sys.exit(2)

HEADER_BYTES = 16


def now_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def send(fd, byte):
    os.write(fd, byte)


def expect(fd, want):
    got = os.read(fd, 1)
    if got != want:
        sys.exit("handoff_python.py: protocol: expected %r, got %r" % (want, got))


def wait_until_asleep(stat_path):
    """Waits until the peer sleeps (state S): blocked, or between two polls."""
    give_up = time.monotonic() + 5
    while time.monotonic() < give_up:
        with open(stat_path, "rb") as f:
            stat = f.read()
        if stat[stat.rindex(b")") + 2:stat.rindex(b")") + 3] == b"S":
            return
        time.sleep(20e-6)


def handoff(role, lock_path, shm_path, in_fd, out_fd, rounds, hold_us):
    import mmap

    with open(shm_path, "r+b") as f:
        shm = mmap.mmap(f.fileno(), HEADER_BYTES + 8 * rounds)
    struct.pack_into("<i", shm, 8 + 4 * role, os.getpid())
    lock = fasteners.InterProcessLock(lock_path)
    rng = random.Random(role + 1)
    holder = role == 0
    if holder:
        lock.acquire()
        send(out_fd, b"a")
    else:
        expect(in_fd, b"a")
    peer_stat = None
    for k in range(rounds):
        if holder:
            expect(in_fd, b"w")
            if peer_stat is None:
                peer_stat = "/proc/%d/stat" % struct.unpack_from("<i", shm, 8 + 4 * (1 - role))[0]
            wait_until_asleep(peer_stat)
            if hold_us > 0:
                time.sleep(rng.randint(0, hold_us * 1000) / 1e9)
            struct.pack_into("<q", shm, 0, now_ns())
            lock.release()
            expect(in_fd, b"a")
        else:
            send(out_fd, b"w")
            lock.acquire()
            acquired = now_ns()
            struct.pack_into("<q", shm, HEADER_BYTES + 8 * k, acquired - struct.unpack_from("<q", shm, 0)[0])
            send(out_fd, b"a")
        holder = not holder
    if holder:
        lock.release()
    shm.close()


def per_pair_ns(acquire, release, seconds):
    """Best of 5 runs of the mean cost of one acquire+release pair (as for the C++ side)."""
    results = []
    for _ in range(5):
        n = 0
        start = time.perf_counter_ns()
        deadline = start + int(seconds * 1e9 / 5)
        while True:
            for _ in range(100):
                acquire()
                release()
            n += 100
            end = time.perf_counter_ns()
            if end >= deadline:
                break
        results.append((end - start) / n)
    return min(results)


def uncontended(directory, seconds):
    lock = fasteners.InterProcessLock(os.path.join(directory, "py_lock.lock"))
    rw = fasteners.InterProcessReaderWriterLock(os.path.join(directory, "py_rw.lock"))
    result = {
        "fasteners_version": getattr(fasteners, "__version__", "unknown"),
        "python_version": sys.version.split()[0],
        "InterProcessLock": per_pair_ns(lock.acquire, lock.release, seconds),
        "InterProcessReaderWriterLock/write": per_pair_ns(rw.acquire_write_lock, rw.release_write_lock, seconds),
        "InterProcessReaderWriterLock/read": per_pair_ns(rw.acquire_read_lock, rw.release_read_lock, seconds),
    }
    json.dump(result, sys.stdout, indent=2)
    print()


def main(argv):
    if len(argv) == 9 and argv[1] == "handoff":
        role, lock_path, shm_path, in_fd, out_fd, rounds, hold_us = argv[2:]
        handoff(int(role), lock_path, shm_path, int(in_fd), int(out_fd), int(rounds), int(hold_us))
        return 0
    if len(argv) in (3, 4) and argv[1] == "uncontended":
        uncontended(argv[2], float(argv[3]) if len(argv) == 4 else 2.0)
        return 0
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
