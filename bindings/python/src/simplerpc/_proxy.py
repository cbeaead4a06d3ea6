"""Proxies for remote objects, and materialization."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from ._client import Connection

__all__ = ["RPCProxy", "materialize", "is_proxy"]

# Looked up by Python's own machinery (imports, copy, numpy, inspect) with
# getattr(): answered locally, never with a round trip to the server.
_LOCAL_ONLY = frozenset(
    {
        "__spec__", "__path__", "__file__", "__loader__", "__package__",
        "__array__", "__array_interface__", "__array_struct__", "__array_priority__",
        "__array_ufunc__", "__array_function__", "__dlpack__",
        "__getstate__", "__setstate__", "__getnewargs__", "__getnewargs_ex__",
        "__length_hint__", "__fspath__", "__wrapped__", "__signature__",
        "__mro_entries__", "__set_name__", "__dataclass_fields__",
    }
)


class RPCProxy:
    """A reference to an object on the server.

    Attribute access, calls and indexing are sent to the server and return
    new proxies; nothing moves the object's data until :func:`materialize`.
    Arguments may be values (including numpy arrays) or proxies of the same
    connection. When a proxy is garbage-collected the server frees its object.
    """

    __slots__ = ("_rpc_connection", "_rpc_obj_id", "_rpc_path", "__weakref__")

    _rpc_connection: "Connection"
    _rpc_obj_id: int
    _rpc_path: str

    def __init__(self, connection: "Connection", obj_id: int, path: str) -> None:
        object.__setattr__(self, "_rpc_connection", connection)
        object.__setattr__(self, "_rpc_obj_id", obj_id)
        object.__setattr__(self, "_rpc_path", path)

    def __getattr__(self, name: str) -> "RPCProxy":
        if name.startswith("_rpc_") or name in _LOCAL_ONLY:
            raise AttributeError(name)
        return self._rpc_connection._getattr(self, name)

    def __call__(self, *args: Any, **kwargs: Any) -> "RPCProxy":
        return self._rpc_connection._call(self, args, kwargs)

    def __getitem__(self, key: Any) -> "RPCProxy":
        return self._rpc_connection._getitem(self, key)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(
            f"cannot set {name!r} on a remote object; use Connection.execute() to change server state"
        )

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"cannot delete {name!r} of a remote object")

    def __repr__(self) -> str:
        return f"<RPCProxy: {self._rpc_path} (id={self._rpc_obj_id})>"

    def __copy__(self) -> "RPCProxy":
        return self

    def __deepcopy__(self, memo: Any) -> "RPCProxy":
        return self

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("an RPCProxy cannot be pickled; materialize() it to get its value")

    def __del__(self) -> None:
        try:
            self._rpc_connection._release(self._rpc_obj_id)
        except Exception:  # interpreter shutdown, half-built proxy: nothing to free
            pass


def materialize(obj: Any) -> Any:
    """Fetch the value of a proxy from the server; anything else is returned unchanged.

    Raises:
        RemoteException: the server could not serialize the object.
    """
    if not isinstance(obj, RPCProxy):
        return obj
    return obj._rpc_connection._materialize(obj)


def is_proxy(obj: Any) -> bool:
    """Whether ``obj`` is a proxy for a remote object."""
    return isinstance(obj, RPCProxy)
