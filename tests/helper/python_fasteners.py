"""Python fasteners on the other side of the interop tests.

    python_fasteners.py hold lock|read|write PATH   acquire, print "locked", wait for stdin EOF, release
    python_fasteners.py try  lock|read|write PATH   one non-blocking attempt: exit 0 acquired, 3 busy
"""
import sys

import fasteners


def acquire(kind, path, blocking):
    if kind == "lock":
        lock = fasteners.InterProcessLock(path)
        return lock.acquire(blocking=blocking), lock.release
    lock = fasteners.InterProcessReaderWriterLock(path)
    if kind == "read":
        return lock.acquire_read_lock(blocking=blocking), lock.release_read_lock
    return lock.acquire_write_lock(blocking=blocking), lock.release_write_lock


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("hold", "try") or sys.argv[2] not in ("lock", "read", "write"):
        print(__doc__, file=sys.stderr)
        return 64
    command, kind, path = sys.argv[1:]
    got, release = acquire(kind, path, blocking=(command == "hold"))
    if not got:
        return 3
    if command == "hold":
        print("locked", flush=True)
        sys.stdin.read()
    release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
