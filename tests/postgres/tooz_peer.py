"""The other side of the tooz interop tests: Debian's python3-tooz + psycopg2.

    tooz_peer.py URL NAME hold   acquire (blocking), print "locked", hold until stdin closes
    tooz_peer.py URL NAME try    one non-blocking acquire: exit 0 got, 1 busy
    tooz_peer.py URL NAME wait   blocking acquire, print "locked", release
tooz's timed acquire (blocking=SECONDS) polls and raises instead of
returning False, so only the blocking and non-blocking forms are used.
"""
import sys

from tooz import coordination

url, name, mode = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
coordinator = coordination.get_coordinator(url, b"fasteners-tests")
coordinator.start()
lock = coordinator.get_lock(name)
if mode == "try":
    got = lock.acquire(blocking=False)
    if got:
        lock.release()
    sys.exit(0 if got else 1)
lock.acquire(blocking=True)
print("locked", flush=True)
if mode == "hold":
    sys.stdin.read()
lock.release()
coordinator.stop()
