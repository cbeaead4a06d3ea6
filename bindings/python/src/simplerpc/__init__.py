"""SimpleRPC: remote Python objects over WebSocket, lazy by default.

Everything the server returns is an :class:`RPCProxy`; :func:`materialize`
fetches a value. A proxy behaves like the object it stands for (``bool``,
``len``, ``==``, ``+``, ``for``, ``p.x = v``, ``with``, ``np.asarray``: see
:class:`RPCProxy`). Compatible with the ``simplerpyc`` reference protocol.

    >>> import simplerpc
    >>> conn = simplerpc.connect("localhost", 8000)   # token: $SIMPLERPC_TOKEN
    >>> np = conn.modules.numpy
    >>> simplerpc.materialize(np.arange(3))
    array([0, 1, 2])
"""

from ._client import Connection, connect, patch_module
from ._proxy import RPCProxy, is_proxy, materialize
from ._spawn import SpawnedConnection, gather, spawn
from .errors import (
    AuthenticationError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ExecutorPanic,
    ObjectLimitError,
    ProtocolError,
    RemoteException,
    RequestTimeoutError,
    ServerProcessError,
    SimpleRPCError,
    UnknownObjectError,
)

# Public, but not in __all__: a star import would shadow the builtins.
from .errors import ConnectionError, ConnectionRefusedError  # noqa: F401,A004

__version__ = "0.2.0.dev0"

__all__ = [
    "connect",
    "spawn",
    "gather",
    "Connection",
    "SpawnedConnection",
    "RPCProxy",
    "materialize",
    "is_proxy",
    "patch_module",
    "RemoteException",
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
]


def __getattr__(name: str) -> type:
    """``simplerpc.RemoteKeyError`` and the like: the class a remote builtin
    (or simplerpc) exception is raised as, a subclass of both
    :class:`RemoteException` and the original type (made on first use)."""
    if name.startswith("Remote") and len(name) > len("Remote"):
        import builtins

        from . import errors
        from ._client import _remote_class

        base = getattr(builtins, name[len("Remote") :], None) or getattr(errors, name[len("Remote") :], None)
        if isinstance(base, type) and issubclass(base, Exception) and not issubclass(base, RemoteException):
            cls = _remote_class(base)
            if cls is not RemoteException:
                return cls
    raise AttributeError(f"module 'simplerpc' has no attribute {name!r}")
