"""``python -m simplerpc.server``: the Rust WebSocket server with a Python executor.

Each client gets its own :class:`~simplerpc._executor.PythonExecutor`
(isolated globals, its own object table). The server runs on the library's
threads; the GIL is released whenever Rust waits on the network, so a slow
call from one client does not stall the others beyond what the GIL forces.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import List, Optional

from ._executor import PythonExecutor, describe_exception

__all__ = ["serve", "main"]

log = logging.getLogger("simplerpc")


def serve(host: str = "localhost", port: int = 8000, token: Optional[str] = None, *, ready: Optional[threading.Event] = None, stop: Optional[threading.Event] = None) -> None:
    """Serve until ``stop`` is set or Ctrl-C; then stop cleanly.

    Prints the security warning, the bound address, the token and the
    ``export`` lines for the client.
    """
    from . import _native

    _native.forward_logs(True)
    server = _native.NativeServer(host, port, token, PythonExecutor, describe_exception)
    stop = stop or threading.Event()
    try:
        print("=" * 70)
        print("WARNING: this server uses UNENCRYPTED WebSocket (ws://) connections.")
        print("Tokens and data are transmitted in PLAINTEXT. Use it only on localhost")
        print("or a trusted private network (LAN, VPN); never expose it to the internet.")
        print("=" * 70)
        print(f"Serving on ws://{host}:{server.port}")
        print(f"Token: {server.token}")
        print()
        print("Set environment variables:")
        print(f"  export SIMPLERPC_HOST='{host}'")
        print(f"  export SIMPLERPC_PORT='{server.port}'")
        print(f"  export SIMPLERPC_TOKEN='{server.token}'")
        sys.stdout.flush()
        if ready is not None:
            ready.set()
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("Shutting down...", flush=True)
        server.close()
        _native.forward_logs(False)
        print("Server stopped.", flush=True)


def main(argv: Optional[List[str]] = None) -> None:
    """Command line entry point."""
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m simplerpc.server", description="simplerpc server (Python executor)")
    parser.add_argument("--host", default=env("SIMPLERPC_HOST") or "localhost", help="host to bind (default: $SIMPLERPC_HOST or localhost)")
    parser.add_argument("--port", type=int, default=int(env("SIMPLERPC_PORT") or 8000), help="port to bind; 0 picks a free one (default: $SIMPLERPC_PORT or 8000)")
    parser.add_argument("--token", default=env("SIMPLERPC_TOKEN") or None, help="token clients must present (default: $SIMPLERPC_TOKEN or a fresh random one)")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # SIGTERM stops as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        serve(args.host, args.port, args.token)
    except Exception as e:  # a bind failure, say: one clear line, not a traceback
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
