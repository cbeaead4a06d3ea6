"""Proxies for remote objects, and materialization.

A proxy answers everything Python asks of an object with the remote
object's meaning (the *proxy protocol*). The rule of thumb:

* What Python needs as a local value is asked of the server and
  materialized: ``bool``, ``len``, ``int``, ``float``, ``complex``,
  ``operator.index`` (so ``range(p)`` and ``seq[p]`` work), ``in``,
  ``hash``, ``str``, ``format``, ``bytes``, ``dir``, ``__array__``
  (``np.asarray(p)`` is the real array) and ``__array_function__``
  (``np.sum(p)`` runs here on the value).
* What gives a new object stays remote and lazy: comparisons, arithmetic
  (reflected and in-place too), unary operators, ``abs``, ``round``,
  ``math.floor/ceil/trunc``, ``divmod``, ``pow``: each returns a proxy of
  the result, computed on the server with ``operator``/``builtins``/``math``
  (so ``bool(p == q)`` asks the server whether they are equal).
* Changes are done remotely and wait for the answer (an error is raised at
  the statement): ``p.attr = v``, ``del p.attr``, ``p[k] = v``, ``del p[k]``.
* Iteration (``for x in p``, ``reversed(p)``, ``next(p)``) runs on the
  server in batches (up to 1,024 items per round trip): items of simple
  immutable types arrive as values, anything else as a proxy.
* ``with p:`` runs the remote ``__enter__``/``__exit__``.

Against a stock ``simplerpyc`` server all of this is expressed with the
reference protocol's own requests (calls of ``builtins``, ``operator`` and
``math``, and ``eval``); against ours it is pipelined, so an operation and
the materialize that needs it cost one round trip.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any, Deque, Iterator, List, NoReturn, Optional

if TYPE_CHECKING:
    from ._client import Connection

__all__ = ["RPCProxy", "materialize", "is_proxy"]

# Looked up by Python's own machinery (imports, copy, numpy, inspect) with
# getattr(): answered locally, never with a round trip to the server.
# (``__array__`` and ``__array_function__`` are real methods: they materialize.)
_LOCAL_ONLY = frozenset(
    {
        "__spec__", "__path__", "__file__", "__loader__", "__package__",
        "__array_interface__", "__array_struct__", "__array_priority__",
        "__array_ufunc__", "__dlpack__",
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

    The rest of Python's object protocol works with the remote object's
    meaning (see the module docstring): ``bool(p)``, ``len(p)``, ``p == q``,
    ``p + 1``, ``for x in p``, ``p.attr = v``, ``with p:``, ``np.asarray(p)``.
    Decisions worth knowing:

    * ``repr(p)`` is local and says it is a proxy; ``str(p)`` (and
      ``print(p)``, ``f"{p}"``) is the remote object's ``str``, fetched.
    * ``hash(p)`` is the remote object's hash (fetched once, then kept), so
      proxies may be dict keys and set members: equal remote objects hash
      alike. Do not mix proxies and local values as keys of one dict: the
      server's ``hash("a")`` is not this process's. A proxy of an unhashable
      object (a list) raises ``TypeError``, as the object would.
    * ``callable(p)`` is always True (Python looks at the proxy's type, which
      can be called); calling a remote object that cannot be called raises
      a remote error (a ``TypeError``, or an ``AttributeError`` where the
      reference protocol looks up the attribute the proxy's path names).
      Ask the server with ``materialize(conn.builtins.callable(p))``.
    * Iteration fetches items ahead in batches: breaking out of a loop over
      a remote *iterator* (a generator) leaves it advanced past the items
      fetched. ``next(p)`` takes exactly one item. Items of simple immutable
      types (None, bool, int, float, complex, str, bytes, numpy scalars, and
      tuples, element by element) arrive as values, so ``for k in d`` gives
      usable keys; anything else (lists, arrays, objects) as a proxy, by
      reference as the lazy model has it.
    * With a local numpy array or a local numpy function on the outside
      (``arr + p``, ``np.sum(p)``), numpy materializes the proxy
      (``__array__``, ``__array_function__``) and computes here; ``p + arr``
      computes on the server, as does ``conn.modules.numpy.sum(p)``.
    * ``with p:`` tells the remote ``__exit__`` of an exception by its type
      (rebuilt on the server from the name, ``Exception`` when unknown there)
      and message, without a traceback; if ``__exit__`` returns true the
      exception is suppressed here.
    """

    __slots__ = ("_rpc_connection", "_rpc_obj_id", "_rpc_path", "_rpc_hash", "__weakref__")

    _rpc_connection: "Connection"
    _rpc_obj_id: int
    _rpc_path: str
    _rpc_hash: Optional[int]

    def __init__(self, connection: "Connection", obj_id: int, path: str) -> None:
        object.__setattr__(self, "_rpc_connection", connection)
        object.__setattr__(self, "_rpc_obj_id", obj_id)
        object.__setattr__(self, "_rpc_path", path)
        object.__setattr__(self, "_rpc_hash", None)

    def __getattr__(self, name: str) -> "RPCProxy":
        if name.startswith("_rpc_"):
            raise AttributeError(name)
        if name in _LOCAL_ONLY:
            # A bare AttributeError("__file__") read as "the remote module
            # has no file"; say why and how to ask the server.
            raise AttributeError(
                f"{name} of a proxy is not asked of the server (Python's own machinery probes it on "
                f"every object): read the remote one with materialize(conn.builtins.getattr(p, {name!r}))"
            )
        return self._rpc_connection._getattr(self, name)

    def __call__(self, *args: Any, **kwargs: Any) -> "RPCProxy":
        return self._rpc_connection._call(self, args, kwargs)

    def __getitem__(self, key: Any) -> "RPCProxy":
        return self._rpc_connection._getitem(self, key)

    # -- changes, done remotely (they wait: an error is raised here)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_rpc_"):
            object.__setattr__(self, name, value)
            return
        self._rpc_connection._mutate("setattr", self, name, value)

    def __delattr__(self, name: str) -> None:
        if name.startswith("_rpc_"):
            raise AttributeError(f"cannot delete {name!r}: it is the proxy's own state")
        self._rpc_connection._mutate("delattr", self, name)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._rpc_connection._mutate("setitem", self, key, value)

    def __delitem__(self, key: Any) -> None:
        self._rpc_connection._mutate("delitem", self, key)

    # -- values Python needs locally: asked of the server and materialized

    def __bool__(self) -> bool:
        return bool(self._rpc_connection._value("builtins", "bool", self))

    def __len__(self) -> int:
        return int(self._rpc_connection._value("builtins", "len", self))

    def __int__(self) -> int:
        return int(self._rpc_connection._value("builtins", "int", self))

    def __float__(self) -> float:
        return float(self._rpc_connection._value("builtins", "float", self))

    def __complex__(self) -> complex:
        return complex(self._rpc_connection._value("builtins", "complex", self))

    def __index__(self) -> int:
        return int(self._rpc_connection._value("operator", "index", self))

    def __contains__(self, item: Any) -> bool:
        return bool(self._rpc_connection._value("operator", "contains", self, item))

    def __hash__(self) -> int:
        h = self._rpc_hash
        if h is None:
            h = int(self._rpc_connection._value("builtins", "hash", self))
            object.__setattr__(self, "_rpc_hash", h)
        return h

    def __str__(self) -> str:
        return str(self._rpc_connection._value("builtins", "str", self))

    def __format__(self, spec: str) -> str:
        return str(self._rpc_connection._value("builtins", "format", self, spec))

    def __bytes__(self) -> bytes:
        return bytes(self._rpc_connection._value("builtins", "bytes", self))

    def __dir__(self) -> List[str]:
        return list(self._rpc_connection._value("builtins", "dir", self))

    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> Any:
        """The remote value as a local numpy array (``np.asarray(proxy)``).

        The value is materialized, so the array is always new: ``copy=False``
        (numpy 2: "never copy") raises ValueError, as it does for a list.
        """
        from ._serialization import local_numpy

        np = local_numpy(import_it=True)
        if np is None:  # pragma: no cover - numpy calls this, so it is there
            raise ImportError("numpy is not installed")
        if copy is False:
            raise ValueError(
                "a proxy's data is on the server, so an array of it is always a new copy: "
                "use np.asarray(proxy) (copy=None) or materialize(proxy)"
            )
        return np.asarray(materialize(self), dtype=dtype)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        """A numpy function of this numpy (``np.sum(p)``, ``np.concatenate([p, a])``)
        runs here, on the materialized values of the proxies among its
        arguments. (Without this numpy would call ``p.sum()`` on the server,
        which a remote list does not have.) For the server's numpy, call it:
        ``conn.modules.numpy.sum(p)``."""
        return func(*_materialized(args), **_materialized(kwargs))

    # -- iteration, on the server in batches

    def __iter__(self) -> Iterator[Any]:
        return self._rpc_connection._iterate(self, "iter")

    def __reversed__(self) -> Iterator[Any]:
        return self._rpc_connection._iterate(self, "reversed")

    def __next__(self) -> Any:
        return self._rpc_connection._next(self)

    # -- the context manager protocol, remotely

    def __enter__(self) -> "RPCProxy":
        return self._rpc_connection._enter(self)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return self._rpc_connection._exit(self, exc)

    # -- comparisons: lazy proxies of the remote result

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        return self._rpc_connection._compare("eq", self, other)

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        return self._rpc_connection._compare("ne", self, other)

    def __lt__(self, other: Any) -> Any:
        return self._rpc_connection._compare("lt", self, other)

    def __le__(self, other: Any) -> Any:
        return self._rpc_connection._compare("le", self, other)

    def __gt__(self, other: Any) -> Any:
        return self._rpc_connection._compare("gt", self, other)

    def __ge__(self, other: Any) -> Any:
        return self._rpc_connection._compare("ge", self, other)

    # -- arithmetic: lazy proxies of the remote result

    def __add__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "add", self, o)

    def __radd__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "add", o, self)

    def __iadd__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "iadd", self, o)

    def __sub__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "sub", self, o)

    def __rsub__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "sub", o, self)

    def __isub__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "isub", self, o)

    def __mul__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "mul", self, o)

    def __rmul__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "mul", o, self)

    def __imul__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "imul", self, o)

    def __matmul__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "matmul", self, o)

    def __rmatmul__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "matmul", o, self)

    def __imatmul__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "imatmul", self, o)

    def __truediv__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "truediv", self, o)

    def __rtruediv__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "truediv", o, self)

    def __itruediv__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "itruediv", self, o)

    def __floordiv__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "floordiv", self, o)

    def __rfloordiv__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "floordiv", o, self)

    def __ifloordiv__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "ifloordiv", self, o)

    def __mod__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "mod", self, o)

    def __rmod__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "mod", o, self)

    def __imod__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "imod", self, o)

    def __divmod__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("builtins", "divmod", self, o)

    def __rdivmod__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("builtins", "divmod", o, self)

    def __pow__(self, o: Any, mod: Any = None) -> "RPCProxy":
        if mod is None:
            return self._rpc_connection._operate("operator", "pow", self, o)
        return self._rpc_connection._operate("builtins", "pow", self, o, mod)

    def __rpow__(self, o: Any, mod: Any = None) -> "RPCProxy":
        if mod is None:
            return self._rpc_connection._operate("operator", "pow", o, self)
        return self._rpc_connection._operate("builtins", "pow", o, self, mod)

    def __ipow__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "ipow", self, o)

    def __lshift__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "lshift", self, o)

    def __rlshift__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "lshift", o, self)

    def __ilshift__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "ilshift", self, o)

    def __rshift__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "rshift", self, o)

    def __rrshift__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "rshift", o, self)

    def __irshift__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "irshift", self, o)

    def __and__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "and_", self, o)

    def __rand__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "and_", o, self)

    def __iand__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "iand", self, o)

    def __xor__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "xor", self, o)

    def __rxor__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "xor", o, self)

    def __ixor__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "ixor", self, o)

    def __or__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "or_", self, o)

    def __ror__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "or_", o, self)

    def __ior__(self, o: Any) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "ior", self, o)

    def __neg__(self) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "neg", self)

    def __pos__(self) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "pos", self)

    def __invert__(self) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "invert", self)

    def __abs__(self) -> "RPCProxy":
        return self._rpc_connection._operate("operator", "abs", self)

    def __round__(self, ndigits: Any = None) -> "RPCProxy":
        if ndigits is None:
            return self._rpc_connection._operate("builtins", "round", self)
        return self._rpc_connection._operate("builtins", "round", self, ndigits)

    def __trunc__(self) -> "RPCProxy":
        return self._rpc_connection._operate("math", "trunc", self)

    def __floor__(self) -> "RPCProxy":
        return self._rpc_connection._operate("math", "floor", self)

    def __ceil__(self) -> "RPCProxy":
        return self._rpc_connection._operate("math", "ceil", self)

    # -- local

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


class _RemoteIterator:
    """Iterates a remote iterator (the proxy ``it``) in batches: each fetch is
    one round trip against our server and takes up to ``_MAX_BATCH`` items
    (fewer when they are long strings), growing from ``_FIRST_BATCH`` so that
    a short loop fetches little."""

    __slots__ = ("_conn", "_it", "_buffer", "_size", "_done", "_error", "__weakref__")

    _FIRST_BATCH = 32
    _MAX_BATCH = 1024

    def __init__(self, conn: "Connection", it: RPCProxy) -> None:
        self._conn = conn
        self._it: Optional[RPCProxy] = it
        self._buffer: Deque[Any] = collections.deque()
        self._size = self._FIRST_BATCH
        self._done = False
        # What the remote iterator raised after the fetched items: raised here once they are used.
        self._error: Optional[RPCProxy] = None
        self._fetch()  # the first batch now: a remote TypeError ("not iterable") is raised by iter()

    def _fetch(self) -> None:
        assert self._it is not None
        label = f"next({self._it._rpc_path})"
        items, done, error = self._conn._take(self._it, self._size)
        self._buffer.extend(items)
        if error is not None:
            self._error = error
            object.__setattr__(error, "_rpc_path", label)
        if done:
            self._done = True
            self._it = None  # frees the remote iterator
        self._size = min(self._size * 4, self._MAX_BATCH)

    def __iter__(self) -> "_RemoteIterator":
        return self

    def __next__(self) -> Any:
        if not self._buffer:
            error, self._error = self._error, None
            if error is not None:
                self._conn._throw(error, str(error._rpc_path))
            if self._done:
                raise StopIteration
            self._fetch()
            if not self._buffer:
                raise StopIteration
        return self._buffer.popleft()

    def __repr__(self) -> str:
        return f"<simplerpc remote iterator, {len(self._buffer)} items fetched ahead>"


def _materialized(obj: Any) -> Any:
    """``obj`` with every proxy in it (in lists, tuples, dicts) materialized."""
    if isinstance(obj, RPCProxy):
        return materialize(obj)
    if type(obj) in (list, tuple):
        return type(obj)(_materialized(x) for x in obj)
    if type(obj) is dict:
        return {k: _materialized(v) for k, v in obj.items()}
    return obj


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
