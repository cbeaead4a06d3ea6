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
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ._executor import PythonExecutor, describe_exception

__all__ = ["serve", "serve_fd", "main"]

log = logging.getLogger("simplerpc")


# The server's defaults (transport-ws config.rs), for --help.
DEFAULT_MAX_OBJECTS = 1_000_000
DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_STACK_SIZE = 8 << 20
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_MAX_MESSAGE_SIZE = 2 << 30
DEFAULT_PING_INTERVAL = 10.0
DEFAULT_DEAD_AFTER = 30.0


def serve(
    host: str = "localhost",
    port: int = 8000,
    token: Optional[str] = None,
    *,
    ready: Optional[threading.Event] = None,
    stop: Optional[threading.Event] = None,
    max_objects: int = DEFAULT_MAX_OBJECTS,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    stack_size: int = DEFAULT_STACK_SIZE,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    ping_interval: float = DEFAULT_PING_INTERVAL,
    dead_after: Optional[float] = DEFAULT_DEAD_AFTER,
    certfile: Optional[str] = None,
    keyfile: Optional[str] = None,
    sources: Optional[Dict[str, str]] = None,
) -> None:
    """Serve until ``stop`` is set or Ctrl-C; then stop cleanly.

    With ``certfile`` and ``keyfile`` (PEM files: the certificate chain and
    its private key) the server speaks TLS only (``wss://``); clients
    connect with ``connect("wss://host:port", cafile=...)``.

    Prints the security warning, the bound address, the token and the
    ``export`` lines for the client; with ``sources`` (``{"host": "--host",
    "port": "$SIMPLERPC_SERVER_PORT", "token": "default"}``), where each of
    host, port and token came from (a token ``None`` is printed as
    generated). The limits: ``max_objects`` per connection (a request past
    it raises :class:`simplerpc.ObjectLimitError` on the client),
    ``max_connections`` at once (one more is refused with
    HTTP 503), ``stack_size`` in bytes of the threads that run calls, and
    ``handshake_timeout`` in seconds for a client to complete its handshake.
    A message from a client over ``max_message_size`` bytes is refused:
    the connection closes with code 1009 and a reason the client reports.
    A client silent for ``ping_interval`` seconds is pinged; one silent for
    ``dead_after`` seconds (pings unanswered, or a response it does not read)
    is dropped and its objects freed (``None``: never).
    """
    from . import _native

    _native.forward_logs(True)
    server = _native.NativeServer(
        host,
        port,
        token,
        PythonExecutor,
        describe_exception,
        max_objects=max_objects,
        max_message_size=max_message_size,
        max_connections=max_connections,
        stack_size=stack_size,
        handshake_timeout=handshake_timeout,
        ping_interval=ping_interval,
        dead_after=dead_after,
        certfile=certfile,
        keyfile=keyfile,
    )
    stop = stop or threading.Event()
    try:
        if server.tls:
            print(f"TLS: only wss:// connections, with the certificate in {certfile}.")
            print(f"Serving on wss://{host}:{server.port}")
        else:
            print("=" * 70)
            print("WARNING: this server uses UNENCRYPTED WebSocket (ws://) connections.")
            print("Tokens and data are transmitted in PLAINTEXT. Use it only on localhost")
            print("or a trusted private network (LAN, VPN); never expose it to the internet.")
            print("For TLS (wss://) start it with --certfile and --keyfile.")
            print("=" * 70)
            print(f"Serving on ws://{host}:{server.port}")
        print(f"Token: {server.token}")
        if sources is not None:
            print()
            print("Where the settings came from (flags, then SIMPLERPC_SERVER_* variables, then defaults):")
            for line in _describe_sources(host, port, server.port, token, sources):
                print(f"  {line}")
        print()
        print("Set environment variables (in the client's shell):")
        print(f"  export SIMPLERPC_HOST='{host}'")
        print(f"  export SIMPLERPC_PORT='{server.port}'")
        print(f"  export SIMPLERPC_TOKEN='{server.token}'")
        if server.tls:
            # The variables carry no TLS setting: a client that only pastes
            # them speaks ws:// and is refused with HTTP 400.
            print("and connect with TLS, trusting the CA that signed the certificate:")
            print("  simplerpc.connect(tls=True, cafile='ca.pem')   (or a wss://host:port URL)")
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


def serve_fd(fd: int, *, max_objects: int = DEFAULT_MAX_OBJECTS, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
    """Serve one client over the connected stream socket ``fd`` (the stream
    transport: a socketpair's end, say) on this thread, until the client
    closes its end. ``fd`` is taken over and closed. Prints nothing: the
    channel is the socket, and stdout and stderr stay the program's own."""
    from . import _native

    _native.NativeServer.serve_fd(
        fd,
        PythonExecutor,
        describe_exception,
        max_objects=max_objects,
        max_message_size=max_message_size,
    )


def _watch_parent(parent: int, pdeathsig: bool) -> None:
    """For a child of :func:`simplerpc.spawn`: end this process when the
    parent process ``parent`` is gone, even if it was killed (SIGKILL).

    On Linux the kernel sends SIGKILL when the parent dies
    (PR_SET_PDEATHSIG, set here, in the child, for the child only); a
    thread also checks the parent id twice a second, which covers other
    systems and a parent whose spawning thread ended (the kernel's signal
    follows that thread, so spawn() asks for it only from the main thread).
    The stream's end of file ends the service too, between calls."""
    if pdeathsig and sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except Exception:  # no prctl: the thread below still watches
            pass
    if os.getppid() != parent:  # the parent died before the watch began
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="simplerpc-parent-watch", daemon=True).start()


def _serve_spawned(fd: int, parent: Optional[int], pdeathsig: bool, max_objects: int, max_message_size: int) -> None:
    """The child side of :func:`simplerpc.spawn`: serve, then exit."""
    # Ctrl-C in the terminal reaches the whole process group: the parent
    # decides what it means (its wait is interrupted); this child goes on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent is not None:
        _watch_parent(parent, pdeathsig)
    code = 0
    try:
        serve_fd(fd, max_objects=max_objects, max_message_size=max_message_size)
    except Exception as e:
        print(f"simplerpc server (fd {fd}): {e}", file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    # The connection is gone and every object freed: exit at once, whatever
    # threads the served code left running.
    os._exit(code)


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: a number of ``kind`` above zero."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not above zero")
        return value

    return parse


# The server's own settings: flags first, then these variables, then the
# defaults. Never the clients' SIMPLERPC_HOST/PORT/TOKEN: a shell that holds
# another server's exports must not make a new server take that port or token.
HOST_VAR, PORT_VAR, TOKEN_VAR = "SIMPLERPC_SERVER_HOST", "SIMPLERPC_SERVER_PORT", "SIMPLERPC_SERVER_TOKEN"
DEFAULT_HOST, DEFAULT_PORT = "localhost", 8000
#: The server's TLS files when --certfile/--keyfile are not given.
CERTFILE_VAR, KEYFILE_VAR = "SIMPLERPC_SERVER_CERTFILE", "SIMPLERPC_SERVER_KEYFILE"
_CLIENT_VARS = ("SIMPLERPC_HOST", "SIMPLERPC_PORT", "SIMPLERPC_TOKEN")


def _port(text: str) -> int:
    """An argparse type: a port number, 0 to pick a free one."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return port


def _resolve_settings(flags: Dict[str, Any], environ: Optional[Dict[str, str]] = None) -> Tuple[str, int, Optional[str], Dict[str, str]]:
    """The server's host, port and token, and where each came from
    (``"--port"``, ``"$SIMPLERPC_SERVER_PORT"``, ``"default"``): a flag's
    value (``flags["host"]`` and so on, None when not given) first, then the
    ``SIMPLERPC_SERVER_*`` variable, then the default (a token None: the
    server generates one). The clients' ``SIMPLERPC_*`` variables are not read.

    Raises:
        ValueError: ``SIMPLERPC_SERVER_PORT`` is no port number.
    """
    env = os.environ if environ is None else environ
    values: Dict[str, Any] = {}
    sources: Dict[str, str] = {}
    for name, var, default in (("host", HOST_VAR, DEFAULT_HOST), ("port", PORT_VAR, DEFAULT_PORT), ("token", TOKEN_VAR, None)):
        flag = flags.get(name)
        if flag is not None:
            values[name], sources[name] = flag, f"--{name}"
        elif env.get(var):
            values[name], sources[name] = env[var], f"${var}"
        else:
            values[name], sources[name] = default, "default"
    if isinstance(values["port"], str):
        try:
            values["port"] = _port(values["port"])
        except argparse.ArgumentTypeError as e:
            raise ValueError(f"{PORT_VAR}: {e}") from None
    return values["host"], values["port"], values["token"], sources


def _describe_sources(host: str, asked_port: int, port: int, token: Optional[str], sources: Dict[str, str]) -> List[str]:
    """The lines saying where host, port and token came from."""
    def origin(name: str) -> str:
        source = sources.get(name, "the caller")
        return "the default" if source == "default" else f"from {source}"

    port_origin = origin("port") + (", 0: a free one" if asked_port == 0 and port != 0 else "")
    token_origin = origin("token") if token else "generated: a fresh random one"
    lines = [
        f"host   {host}  ({origin('host')})",
        f"port   {port}  ({port_origin})",
        f"token  ({token_origin})",
    ]
    for name in ("certfile", "keyfile"):
        if name in sources:
            lines.append(f"{name:<6} ({origin(name)})")
    ignored = [v for v in _CLIENT_VARS if os.environ.get(v)]
    if ignored:
        lines.append(
            f"({', '.join(ignored)} in this environment {'is' if len(ignored) == 1 else 'are'} for clients: "
            f"the server does not read {'it' if len(ignored) == 1 else 'them'}; use --host/--port/--token "
            f"or {HOST_VAR}/{PORT_VAR}/{TOKEN_VAR})"
        )
    return lines


def main(argv: Optional[List[str]] = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m simplerpc.server",
        description="simplerpc server (Python executor). It prints the `export SIMPLERPC_*` lines for clients; "
        "it reads its own settings from its flags, then from SIMPLERPC_SERVER_HOST/PORT/TOKEN, "
        "never from the clients' SIMPLERPC_HOST/PORT/TOKEN.",
    )
    parser.add_argument("--host", default=None, help=f"host to bind (default: ${HOST_VAR} or {DEFAULT_HOST})")
    parser.add_argument("--port", type=_port, default=None, help=f"port to bind; 0 picks a free one (default: ${PORT_VAR} or {DEFAULT_PORT})")
    parser.add_argument("--token", default=None, help=f"token clients must present (default: ${TOKEN_VAR} or a fresh random one)")
    parser.add_argument("--max-objects", type=_positive(int), default=DEFAULT_MAX_OBJECTS, metavar="N", help=f"most objects one connection may hold; a request past it raises simplerpc.ObjectLimitError until the client releases some (default: {DEFAULT_MAX_OBJECTS:,})")
    parser.add_argument("--max-message-size", type=_positive(int), default=DEFAULT_MAX_MESSAGE_SIZE, metavar="BYTES", help=f"largest message accepted from a client; a larger one closes the connection with code 1009 and a reason the client reports (default: {DEFAULT_MAX_MESSAGE_SIZE} = 2 GiB)")
    parser.add_argument("--max-connections", type=_positive(int), default=DEFAULT_MAX_CONNECTIONS, metavar="N", help=f"most connections at once; one more is refused with HTTP 503 (default: {DEFAULT_MAX_CONNECTIONS})")
    parser.add_argument("--stack-size", type=_positive(int), default=DEFAULT_STACK_SIZE, metavar="BYTES", help=f"stack size of the threads that run calls; deep recursion (a raised sys.setrecursionlimit) needs more (default: {DEFAULT_STACK_SIZE} = 8 MiB, at least 65536)")
    parser.add_argument("--handshake-timeout", type=_positive(float), default=DEFAULT_HANDSHAKE_TIMEOUT, metavar="SECONDS", help=f"time a client has to complete the WebSocket handshake (default: {DEFAULT_HANDSHAKE_TIMEOUT:g})")
    parser.add_argument("--ping-interval", type=_positive(float), default=DEFAULT_PING_INTERVAL, metavar="SECONDS", help=f"a client silent this long is pinged (default: {DEFAULT_PING_INTERVAL:g})")
    parser.add_argument("--dead-after", type=_positive(float), default=DEFAULT_DEAD_AFTER, metavar="SECONDS", help=f"a client silent this long, its pings unanswered (or a response unread), is dropped and its objects freed; a stock simplerpyc client answers pings only during its calls, so for it only an unread response counts (default: {DEFAULT_DEAD_AFTER:g})")
    parser.add_argument("--certfile", default=None, metavar="PEM", help=f"the server's certificate chain (PEM); with --keyfile the server speaks TLS only (wss://) (default: ${CERTFILE_VAR}, else plain ws://)")
    parser.add_argument("--keyfile", default=None, metavar="PEM", help=f"the private key of --certfile (PEM) (default: ${KEYFILE_VAR})")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    parser.add_argument("--fd", type=int, default=None, metavar="N", help="serve one client over the connected stream socket N (a socketpair's end this process inherited) instead of listening; nothing is printed, and the process exits when the client closes. simplerpc.spawn() starts servers so")
    parser.add_argument("--parent", type=int, default=None, metavar="PID", help="with --fd: exit when process PID (the parent) is gone")
    parser.add_argument("--parent-death-signal", action="store_true", help="with --parent, on Linux: also have the kernel kill this process when the thread that started it ends (PR_SET_PDEATHSIG)")
    args = parser.parse_args(argv)
    if args.fd is not None:
        # A socketpair to the parent: no network, so no TLS. The flags are a
        # mistake worth saying; the variables (which a spawned child inherits
        # from its parent's environment) are for listening servers.
        if args.certfile is not None or args.keyfile is not None:
            parser.error("--fd serves a socketpair to the parent process, which never leaves this machine: TLS does not apply there; leave out --certfile and --keyfile")
        logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
        _serve_spawned(args.fd, args.parent, args.parent_death_signal, args.max_objects, args.max_message_size)
        return
    tls_sources: Dict[str, str] = {}
    for name, var in (("certfile", CERTFILE_VAR), ("keyfile", KEYFILE_VAR)):
        if getattr(args, name) is not None:
            tls_sources[name] = f"--{name}"
        elif os.environ.get(var):
            setattr(args, name, os.environ[var])
            tls_sources[name] = f"${var}"
    if (args.certfile is None) != (args.keyfile is None):
        given = " and ".join(tls_sources.values())
        parser.error(f"--certfile and --keyfile go together (or {CERTFILE_VAR} and {KEYFILE_VAR}): TLS needs both, and only {given} is set")
    try:
        host, port, token, sources = _resolve_settings({"host": args.host, "port": args.port, "token": args.token})
    except ValueError as e:
        parser.error(str(e))
    sources.update(tls_sources)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # SIGTERM stops as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        serve(
            host,
            port,
            token,
            max_objects=args.max_objects,
            max_message_size=args.max_message_size,
            max_connections=args.max_connections,
            stack_size=args.stack_size,
            handshake_timeout=args.handshake_timeout,
            ping_interval=args.ping_interval,
            dead_after=args.dead_after,
            certfile=args.certfile,
            keyfile=args.keyfile,
            sources=sources,
        )
    except Exception as e:  # a bind failure, say: one clear line, not a traceback
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
