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
    ExecutorPanic,
    ObjectLimitError,
    ProtocolError,
    RemoteException,
    RequestTimeoutError,
    ServerProcessError,
    SimpleRPCError,
    UnknownObjectError,
)

__version__ = "0.1.0.dev0"

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
]
