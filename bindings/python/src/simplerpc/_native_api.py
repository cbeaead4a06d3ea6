"""The interface the Python client expects from the native (libsimplerpc) client.

``simplerpc._native.NativeClient(host, port, token)`` provides it over ctypes
(its constructor connects; it raises :class:`simplerpc.AuthenticationError`
when the server refuses the token, :class:`simplerpc.ConnectionRefusedError`
when nothing listens there, and another :class:`simplerpc.ConnectionError`
when it cannot connect). :class:`simplerpc.Connection` is written against this protocol
only, so it can be tested with any object that follows it.
"""

from __future__ import annotations

from typing import Optional, Protocol

__all__ = ["NativeClientAPI", "NativeRemoteError"]


class NativeRemoteError(Exception):
    """The server answered a request with an error.

    Raised by every :class:`NativeClientAPI` request method; the Connection
    turns it into a :class:`simplerpc.RemoteException`.

    Attributes:
        exception_type: qualified name of the remote exception's type
            (``"builtins.ValueError"``), or ``"builtins.Exception"`` when the
            server gave none.
        message: the exception's message.
        traceback: the formatted remote traceback ("" when the server gave none).
        payload: the server's ``exception_pickle`` bytes, or None. Opaque:
            the client unpickles it only if the user opted in.
    """

    def __init__(
        self, exception_type: str, message: str, traceback: str, payload: Optional[bytes]
    ) -> None:
        super().__init__(f"{exception_type}: {message}")
        self.exception_type = exception_type
        self.message = message
        self.traceback = traceback
        self.payload = payload


class NativeClientAPI(Protocol):
    """One connection to a server, one request at a time.

    Object ids are the protocol's ids. Byte arguments and results are msgpack
    values in the protocol's format (see ``simplerpc._serialization``).
    Request methods raise :class:`NativeRemoteError` for an error response,
    :class:`simplerpc.errors.ConnectionClosedError` when the connection is
    gone and :class:`simplerpc.errors.ProtocolError` for a frame that cannot
    be understood.

    An implementation may also have a ``tuples`` attribute: true when the
    server accepted the ``tuple`` extension, so values (arguments in, values
    out) carry tuples as ``{"__tuple__": [...]}``; absent or false, tuples
    travel as arrays.
    """

    def import_module(self, name: str) -> int:
        """``import_module``: the id of module ``name``."""
        ...

    def get_builtin(self, name: str) -> int:
        """``get_builtin``: the id of builtin ``name``."""
        ...

    def getattr(self, obj_id: Optional[int], path: str, attr: str) -> int:
        """``getattr``: the id of ``attr`` of ``obj_id`` (nil: of what ``path`` names)."""
        ...

    def call(self, obj_id: Optional[int], path: str, args: bytes, kwargs: bytes) -> int:
        """``call``: ``args`` is a msgpack array, ``kwargs`` a msgpack map; the result's id."""
        ...

    def getitem(self, obj_id: int, key: bytes) -> int:
        """``getitem``: ``key`` is one msgpack value; the result's id."""
        ...

    def materialize(self, obj_id: int) -> bytes:
        """``materialize``: the object's value as msgpack."""
        ...

    def eval(self, expr: str) -> int:
        """``eval``: the result's id."""
        ...

    def execute(self, code: str) -> None:
        """``execute``."""
        ...

    def teleport(self, func_bytes: bytes, name: str) -> int:
        """``teleport``: ``func_bytes`` is a dill pickle; the function's id."""
        ...

    def namespace(self) -> bytes:
        """``get_namespace``: the msgpack map ``{name: "<class '...'>"}``."""
        ...

    def release(self, obj_id: int) -> None:
        """The client no longer uses ``obj_id``.

        Must never block or raise: it is called from ``__del__`` and the
        garbage collector, on any thread, possibly while another request is
        in flight. Queue the id and send it with a later request (a no-op
        when the server does not speak the release extension or the
        connection is closed).
        """
        ...

    def close(self) -> None:
        """Close the connection (idempotent)."""
        ...

