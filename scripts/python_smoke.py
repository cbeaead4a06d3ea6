"""Smoke test of an installed simplerpc package, run by scripts/python-smoke.sh.

Run it with the Python of a venv holding the package (from a directory other
than bindings/python, so that the installed copy is the one imported). It
starts ``python -m simplerpc.server --host 127.0.0.1 --port 0`` with that same
Python, connects, checks a call, that the server runs in this venv, an array
round trip when numpy is installed (it is optional here), and that the server
exits 0 on SIGINT. Standard library only besides simplerpc; Python 3.8 syntax.
"""

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

STARTUP_TIMEOUT = 60.0
SHUTDOWN_TIMEOUT = 15.0


def fail(msg, output=()):
    print("python smoke test FAILED on %s: %s" % (sys.executable, msg), file=sys.stderr)
    if output:
        print("the server printed:\n" + "".join(output), file=sys.stderr)
    sys.exit(1)


def start_server():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLERPC_")}
    env["PYTHONUNBUFFERED"] = "1"
    argv = [sys.executable, "-m", "simplerpc.server", "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, universal_newlines=True, env=env
    )
    lines = []
    found = queue.Queue()

    def drain():
        # Read all the server prints (a full pipe would block it); hand over
        # each export line as it comes.
        for line in proc.stdout:
            lines.append(line)
            m = re.search(r"export SIMPLERPC_(PORT|TOKEN)='?([^'\s]+)'?", line)
            if m:
                found.put((m.group(1), m.group(2)))
        found.put(None)  # EOF: the server exited

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    values = {}
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while len(values) < 2:
        try:
            item = found.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            item = None
        if item is None:
            proc.kill()
            proc.wait()
            fail("`%s` did not print its export SIMPLERPC_PORT/_TOKEN lines within %.0f s" % (" ".join(argv), STARTUP_TIMEOUT), lines)
        values[item[0]] = item[1]
    return proc, reader, lines, int(values["PORT"]), values["TOKEN"]


def stop_server(proc, reader, lines):
    proc.send_signal(signal.SIGINT)
    try:
        rc = proc.wait(SHUTDOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        fail("the server did not stop within %.0f s of SIGINT" % SHUTDOWN_TIMEOUT, lines)
    reader.join(5)
    if rc != 0:
        fail("the server exited with status %d after SIGINT (expected 0)" % rc, lines)


def main():
    import simplerpc
    from simplerpc import materialize

    here = os.path.realpath(simplerpc.__file__)
    if not here.startswith(os.path.realpath(sys.prefix) + os.sep):
        fail("simplerpc was imported from %s, not from this venv (%s)" % (here, sys.prefix))
    try:
        import numpy
    except ImportError:
        numpy = None

    proc, reader, lines, port, token = start_server()
    try:
        with simplerpc.connect("127.0.0.1", port, token) as conn:
            n = materialize(conn.builtins.len([1, 2, 3]))
            if n != 3:
                fail("len([1, 2, 3]) on the server gave %r" % (n,), lines)
            remote_prefix = materialize(conn.modules.sys.prefix)
            if remote_prefix != sys.prefix:
                fail("the server runs in %r, not in this venv %r" % (remote_prefix, sys.prefix), lines)
            if numpy is not None:
                a = materialize(conn.modules.numpy.arange(6, dtype="int32").reshape(2, 3))
                if not isinstance(a, numpy.ndarray) or a.dtype != numpy.int32 or a.tolist() != [[0, 1, 2], [3, 4, 5]]:
                    fail("arange(6).reshape(2, 3) came back as %r" % (a,), lines)
    except SystemExit:
        proc.kill()
        proc.wait()
        raise
    except BaseException:
        proc.kill()
        proc.wait()
        print("the server printed:\n" + "".join(lines), file=sys.stderr)
        raise
    stop_server(proc, reader, lines)
    arrays = "numpy %s array round trip" % numpy.__version__ if numpy is not None else "no numpy here: array step skipped"
    print("python smoke test ok: Python %s, %s, %s" % (sys.version.split()[0], here, arrays))


if __name__ == "__main__":
    main()
