"""Exceptions of simplerpc.

Every class here reports its module as ``simplerpc`` so that its qualified
name is the one the server puts on the wire (``"simplerpc.ProtocolError"``,
``"simplerpc.UnknownObjectError"``); a client that receives such a remote
error can rebuild the original exception from that name.
"""

from __future__ import annotations

import builtins
from typing import Optional

__all__ = [
    "SimpleRPCError",
    "ProtocolError",
    "UnknownObjectError",
    "ObjectLimitError",
    "ExecutorPanic",
    "ConnectionClosedError",
    "ServerProcessError",
    "AuthenticationError",
    "RequestTimeoutError",
    "ConnectTimeoutError",
    "RemoteException",
]
# ``ConnectionError`` and ``ConnectionRefusedError`` are public too (as
# ``simplerpc.ConnectionError``), but left out of ``__all__``: a star import
# would shadow the builtins of the same names.


class SimpleRPCError(Exception):
    """Base class of the errors simplerpc itself raises."""


class ProtocolError(SimpleRPCError):
    """A peer sent a frame that does not follow the protocol."""


class UnknownObjectError(SimpleRPCError, LookupError):
    """A request named an object id the server does not hold (never returned, or released)."""


class ObjectLimitError(SimpleRPCError):
    """A request would create an object while the connection already holds
    the server's ``max_objects``: release some (drop proxies) or start the
    server with a larger ``--max-objects``."""


class ExecutorPanic(SimpleRPCError, RuntimeError):
    """The server's executor failed internally while serving a request."""


class ConnectionError(SimpleRPCError, builtins.ConnectionError):
    """The connection failed: the server cannot be reached, refused the
    client, stopped answering, or the connection is gone. The base of
    :class:`ConnectionRefusedError`, :class:`AuthenticationError`,
    :class:`ConnectionClosedError`, :class:`ConnectTimeoutError` and
    :class:`RequestTimeoutError`; also a builtin ``ConnectionError``."""


class ConnectionRefusedError(ConnectionError, builtins.ConnectionRefusedError):
    """Nothing listens at the address: the server is not running, or runs on
    another host or port. Also a builtin ``ConnectionRefusedError``."""


class ConnectionClosedError(ConnectionError):
    """The connection is closed: it was disconnected, or the peer went away."""


class ServerProcessError(ConnectionClosedError):
    """The server process :func:`simplerpc.spawn` started has died, or could
    not start serving. The message names its exit code or signal and ends
    with the tail of its stderr; :attr:`returncode` (negative: killed by that
    signal, None: still running) and :attr:`stderr_tail` hold them."""

    def __init__(self, message: str, returncode: Optional[int] = None, stderr_tail: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class AuthenticationError(ConnectionError):
    """The server refused the token."""


class ConnectTimeoutError(ConnectionError, builtins.TimeoutError):
    """Connecting took longer than the ``timeout`` given to :func:`simplerpc.connect`
    (or than the operating system waits): the host does not answer."""


class RequestTimeoutError(ConnectionError, builtins.TimeoutError):
    """A request got no answer within the connection's ``timeout``, or the
    server stopped answering even pings for ``dead_after``; the connection
    is closed (connect again)."""


class RemoteException(Exception):
    """An exception raised on the server.

    ``str()`` shows ``"<exception_type>: <message>"`` followed by the remote
    traceback. When the original exception type is known locally the
    exception is raised ``from`` an instance of it, and for builtin
    exception types the raised exception is also an instance of that type
    (``except KeyError`` catches a remote ``KeyError``).

    Attributes:
        remote_traceback: the formatted traceback from the server, or None.
        exception_type: the qualified name of the remote exception's type,
            e.g. ``"builtins.ValueError"``.
    """

    def __init__(
        self,
        message: str,
        traceback: Optional[str] = None,
        exception_type: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.remote_traceback = traceback
        self.exception_type = exception_type

    def __str__(self) -> str:
        text = str(self.args[0]) if self.args else ""
        if self.remote_traceback:
            return f"{text}\n\nRemote traceback:\n{self.remote_traceback}"
        return text

    def __repr__(self) -> str:
        text = str(self.args[0]) if self.args else ""
        return f"RemoteException({text!r})"


for _cls in (
    SimpleRPCError,
    ProtocolError,
    UnknownObjectError,
    ObjectLimitError,
    ExecutorPanic,
    ConnectionError,
    ConnectionRefusedError,
    ConnectionClosedError,
    ServerProcessError,
    AuthenticationError,
    ConnectTimeoutError,
    RequestTimeoutError,
    RemoteException,
):
    _cls.__module__ = "simplerpc"
del _cls
