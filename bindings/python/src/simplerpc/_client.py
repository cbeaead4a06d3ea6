"""The client: connections, namespaces, module patching and remote errors."""

from __future__ import annotations

import os
import sys
import types
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, TypeVar

from ._messages import no_wire_form
from ._native_api import NativeClientAPI, NativeRemoteError
from ._proxy import RPCProxy, _RemoteIterator
from ._serialization import local_imports, local_numpy, packb, packb_parts, unpackb
from .errors import AuthenticationError, ConnectionClosedError, ConnectionRefusedError, RemoteException, SimpleRPCError


def _trail(kind: str, parent: str = "", a: str = "", key: Any = b"") -> str:
    """A path trail as core prescribes it (``srpc_trail``); ``kind`` is the
    suffix of an ``SRPC_TRAIL_KIND_*`` name. The library is loaded on first
    use, so ``import simplerpc`` alone needs none."""
    from . import _native

    return _native.trail(getattr(_native, "SRPC_TRAIL_KIND_" + kind), parent, a, key)


# srpc_call_kind values (the library's; checked against the header by
# tests/test_abi_header.py through _native) and the promise bit.
_KIND_GET_ATTR, _KIND_CALL, _KIND_GET_ITEM, _KIND_MATERIALIZE, _KIND_EVAL = 2, 3, 4, 5, 6
_PROMISE_BIT = 1 << 63


def _tuple_builtin() -> str:
    from . import _native

    return _native.TUPLE_BUILTIN


# Server-side helpers of the proxy protocol, run with ``exec`` in a
# dictionary of their own (the user's remote globals are left alone) through
# the reference protocol's ``eval``, once per connection. ``take`` fetches a
# batch of a remote iterator: ``[items, [views, done]]``, where ``items``
# stays remote and ``[views, done]`` is materialized. A view is ``[0, value]``
# for an item of a simple immutable type, ``[2, [views]]`` for a tuple, and
# ``[1]`` for anything else (the client gets it by reference, from
# ``items``). A batch stops after ``n`` items or once its str and bytes
# values pass 256 KiB, whichever comes first (a message stays small), and
# takes exactly the items it returns from the iterator. If the iterator
# raises after some items, the batch holds them, ``done`` is 2 and the
# exception is its third element, raised (``throw``) once they are used.
_HELPERS_SOURCE = """
import sys

_SIMPLE = (type(None), bool, float, complex)
_BUDGET = 1 << 18

def _view(x, size, depth=0):
    t = type(x)
    size[0] += 16
    if t is str or t is bytes:
        size[0] += len(x)
        return [0, x]
    if t is int:
        return [0, x] if -(1 << 63) <= x < (1 << 64) else [1]
    if t in _SIMPLE:
        return [0, x]
    np = sys.modules.get("numpy")
    if np is not None and isinstance(x, (np.bool_, np.number)):
        return [0, x]
    if t is tuple and depth < 4:
        return [2, [_view(e, size, depth + 1) for e in x]]
    return [1]

def take(it, n):
    items, views, size = [], [], [0]
    try:
        for x in it:
            items.append(x)
            views.append(_view(x, size))
            if len(items) >= n or size[0] >= _BUDGET:
                return [items, [views, False]]
    except Exception as e:
        if not items:
            raise
        return [items, [views, 2], e]  # the items first; the error at the next take
    return [items, [views, True]]

def throw(e):
    raise e

def next1(it):
    items = [next(it)]
    return [items, [[_view(x, [0]) for x in items], False]]

def enter(cm):
    try:
        method = type(cm).__enter__
    except AttributeError:
        raise TypeError(f"{type(cm).__name__!r} object does not support the context manager protocol") from None
    return method(cm)

def _exception(name, message):
    module, _, qualname = name.rpartition(".")
    obj = sys.modules.get(module or "builtins")
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and issubclass(obj, BaseException)):
        obj = Exception
    try:
        return obj, obj(message)
    except Exception:
        return Exception, Exception(message)

def exit(cm, name, message):
    if name is None:
        return bool(type(cm).__exit__(cm, None, None, None))
    cls, exc = _exception(name, message)
    return bool(type(cm).__exit__(cm, cls, exc, None))
"""

# The remote function of each change a proxy makes (RPCProxy.__setattr__, ...).
_MUTATIONS = {
    "setattr": ("builtins", "setattr"),
    "delattr": ("builtins", "delattr"),
    "setitem": ("operator", "setitem"),
    "delitem": ("operator", "delitem"),
}

__all__ = ["Connection", "connect", "patch_module"]

_T = TypeVar("_T")
_is_finalizing = sys.is_finalizing


class _ModulesNamespace:
    """``conn.modules.os``, ``conn.modules["os.path"]``: remote modules."""

    __slots__ = ("_conn",)

    def __init__(self, conn: "Connection") -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> RPCProxy:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> RPCProxy:
        # Eager (an unknown module raises here), and once per connection: the
        # same proxy the second time, without a request.
        conn = self._conn
        proxy = conn._modules.get(name)
        if proxy is None:
            proxy = conn._request_object(_trail("MODULE", a=name), conn._native.import_module, name)
            conn._modules[name] = proxy
        return proxy


class _BuiltinsNamespace:
    """``conn.builtins.len``: remote builtins."""

    __slots__ = ("_conn",)

    def __init__(self, conn: "Connection") -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> RPCProxy:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        conn = self._conn
        return conn._request_object(_trail("BUILTIN", a=name), conn._native.get_builtin, name)


class Connection:
    """A connection to a simplerpc (or simplerpyc) server. Use :func:`connect`.

    Attributes:
        modules: remote modules, ``conn.modules.numpy`` or ``conn.modules["os.path"]``.
        builtins: remote builtins, ``conn.builtins.len``.
    """

    def __init__(self, native: NativeClientAPI, *, allow_pickle: bool = False) -> None:
        """Wrap a native client. ``allow_pickle``: see :func:`connect`."""
        self._native = native
        self._allow_pickle = allow_pickle
        self._closed = False
        self._patched: Dict[str, Optional[types.ModuleType]] = {}
        self._remote_tuple: Optional[RPCProxy] = None
        self._modules: Dict[str, RPCProxy] = {}
        # The proxy protocol's remote functions (operator.add, builtins.len,
        # ...) and helpers (_HELPERS_SOURCE), looked up once per connection.
        self._functions: Dict[Tuple[str, str], RPCProxy] = {}
        self._helpers: Dict[str, RPCProxy] = {}
        self._helper_ns: Optional[RPCProxy] = None
        # Promise pipelining (our server accepts it, a stock one does not):
        # getattr, call, getitem and eval return at once with a proxy of the
        # promised result, and the next wait carries the whole chain.
        self._pipelining = bool(getattr(native, "promises", False))
        # The tuple extension (our server accepts it, a stock one does not):
        # tuples travel as tuples, both ways.
        self._tuples = bool(getattr(native, "tuples", False))
        self._max_message = int(getattr(native, "max_message_size", 0) or 0)
        # The expression of each pipelined request whose proxy lives, to name
        # it if its error surfaces at a later wait.
        self._exprs: Dict[int, str] = {}
        self.modules = _ModulesNamespace(self)
        self.builtins = _BuiltinsNamespace(self)

    # -- public API

    @property
    def closed(self) -> bool:
        """Whether :meth:`disconnect` was called."""
        return self._closed

    @property
    def namespace(self) -> Dict[Any, Any]:
        """The remote globals: ``{name: "<class '...'>"}``."""
        namespace: Dict[Any, Any] = unpackb(self._request(self._native.namespace))
        return namespace

    def live_objects(self) -> int:
        """How many objects this connection holds on the server.

        One round trip (a ``stats`` request, answered by the server's
        session). Proxies dropped before it are released by it and no
        longer counted, so ``del proxy`` followed by ``conn.live_objects()``
        shows the object gone. Needs a simplerpc server: a stock simplerpyc
        server keeps every object until the client disconnects and cannot
        count them; then :class:`simplerpc.SimpleRPCError` is raised and
        nothing is sent.
        """
        if self._closed:
            raise ConnectionClosedError("the connection is closed")
        live_objects = getattr(self._native, "live_objects", None)
        if live_objects is None:
            raise SimpleRPCError("this native client cannot ask the server for its live objects")
        return int(live_objects())

    def eval(self, expr: str) -> RPCProxy:
        """Evaluate ``expr`` in the remote globals; a proxy for the result."""
        path = _trail("EVAL", a=expr)
        if self._pipelining:
            return self._promise(path, _KIND_EVAL, name=expr)
        return self._request_object(path, self._native.eval, expr)

    def execute(self, code: str) -> None:
        """Run ``code`` in the remote globals."""
        self._request(self._native.execute, code)

    def teleport(self, func: Callable[..., Any]) -> RPCProxy:
        """Send a local function to the server (with dill); a proxy for the remote copy.

        The function is also bound to its ``__name__`` in the remote globals.
        """
        # dill imports logging, which calls os.register_at_fork: with ``os``
        # patched that would be the server's os. Import and pickle locally.
        with local_imports():
            try:
                import dill
            except ImportError:
                raise ImportError("teleport needs dill: pip install 'simplerpc[dill]'") from None
            func_bytes = dill.dumps(func)
        name = func.__name__
        return self._request_object(_trail("TELEPORT", a=name), self._native.teleport, func_bytes, name)

    def patch_module(self, name: str) -> RPCProxy:
        """Import module ``name`` remotely and put its proxy in ``sys.modules``.

        Afterwards ``import name`` gives the remote module. Idempotent; undo
        with :meth:`unpatch_module` or :meth:`unpatch_all` (also done by
        :meth:`disconnect`).
        """
        if self._closed:
            raise ConnectionClosedError("the connection is closed")
        if name.partition(".")[0] == "numpy":
            # Arrays are encoded and decoded with the local numpy: make sure
            # it is loaded (and remembered) before the proxy hides it. It is
            # then what unpatch_module() restores.
            local_numpy(import_it=True)
        current = sys.modules.get(name)
        if name in self._patched and isinstance(current, RPCProxy):
            return current
        proxy = self.modules[name]
        self._patched.setdefault(name, current)
        sys.modules[name] = proxy  # type: ignore[assignment]
        return proxy

    def unpatch_module(self, name: str) -> None:
        """Restore what ``sys.modules[name]`` was before :meth:`patch_module`."""
        if name not in self._patched:
            return
        original = self._patched.pop(name)
        if original is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = original

    def unpatch_all(self) -> None:
        """Undo every :meth:`patch_module` of this connection."""
        for name in list(self._patched):
            self.unpatch_module(name)

    def disconnect(self) -> None:
        """Unpatch modules and close the connection. Idempotent.

        Proxies of a closed connection raise :class:`ConnectionClosedError`.
        """
        if self._closed:
            return
        self.unpatch_all()
        self._closed = True
        self._modules.clear()
        self._functions.clear()
        self._helpers.clear()
        self._helper_ns = None
        self._remote_tuple = None
        self._exprs.clear()
        self._native.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.disconnect()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<simplerpc.Connection {state}>"

    # -- used by RPCProxy

    # Path trails and tuple keys are wire semantics: core decides them
    # (simplerpc_core::trail, through srpc_trail), so every client sends the
    # same frames for the same code.

    def _promise(self, expr: str, kind: int, obj: Optional[int] = None, **fields: Any) -> RPCProxy:
        """Send a request without waiting: a proxy of the promised result."""
        if self._closed:
            raise ConnectionClosedError("the connection is closed")
        try:
            promise = self._native.send_pipelined(kind, obj, **fields)
        except NativeRemoteError as e:  # pragma: no cover - sending raises no remote error
            exc, cause = remote_exception(e, allow_pickle=self._allow_pickle)
            try:
                raise exc from cause
            finally:
                del exc, cause  # no cycle through this frame (see _raise_failure)
        self._exprs[promise & ~_PROMISE_BIT] = expr
        return RPCProxy(self, promise, expr)

    def _getattr(self, proxy: RPCProxy, name: str) -> RPCProxy:
        path = proxy._rpc_path
        child = _trail("GETATTR", path, name)
        # Names with a leading underscore are what tools probe for with
        # hasattr() or getattr(obj, name, default) (IPython's _repr_html_,
        # _ipython_canary_method_should_not_exist_, dunders): those wait,
        # so that a missing one raises AttributeError here, as they expect.
        # So does "keys", which dict(x) and dict.update(x) probe for to tell
        # a mapping from a sequence of pairs.
        if self._pipelining and not name.startswith("_") and name != "keys":
            return self._promise(child, _KIND_GET_ATTR, proxy._rpc_obj_id, name=name, path=path)
        return self._request_object(child, self._native.getattr, proxy._rpc_obj_id, path, name)

    def _pack(self, value: Any, used: int = 0, join: bool = True, what: str = "the arguments take") -> Tuple[Any, int]:
        """``value`` packed, and the bytes packed so far. Arguments over the
        connection's message limit are refused before they are joined into
        one buffer (``packb_parts`` leaves large arrays where they are). With
        ``join=False`` large arrays stay apart: a list of buffers the library
        takes as they are (a large array's data goes to the socket from
        where it lies; the rest is copied once, into the frame)."""
        parts = _packed(packb_parts, value, proxy_owner=self, tuples=self._tuples)
        size = used + sum(memoryview(p).nbytes for p in parts)
        limit = self._max_message
        if limit and size > limit:
            raise ValueError(
                f"{what} {size} bytes, over the message limit of {limit} bytes; "
                "send the data in smaller parts, or raise the limit on both ends"
            )
        if len(parts) == 1 and isinstance(parts[0], bytes):
            return parts[0], size
        return (b"".join(parts) if join else list(parts)), size

    def _call(self, proxy: RPCProxy, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> RPCProxy:
        path = proxy._rpc_path
        packed_args, used = self._pack(list(args), join=False)
        packed_kwargs, _ = self._pack(kwargs, used, join=False)
        child = _trail("CALL", path)
        if self._pipelining:
            return self._promise(child, _KIND_CALL, proxy._rpc_obj_id, path=path, args=packed_args, kwargs=packed_kwargs)
        return self._request_object(child, self._native.call, proxy._rpc_obj_id, path, packed_args, packed_kwargs)

    def _getitem(self, proxy: RPCProxy, key: Any) -> RPCProxy:
        if isinstance(key, tuple) and not self._tuples:
            # No tuple on the wire (a server takes an array for a list, numpy
            # for fancy indexing): the tuple is built on the server with the
            # builtin core names, and indexed with by reference.
            # The trail reads the key in parts: a large array (a mask) in
            # it is not copied for it (srpc_trail_parts).
            parts = _packed(packb_parts, list(key), proxy_owner=self)
            path = _trail("GETITEM_TUPLE", proxy._rpc_path, key=parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else list(parts))
            key = self._wire(key)  # tuples in it too: p[1, (2, 3)]
            packed = packb(key, proxy_owner=self)
        else:
            # A large array in the key stays where it lies, as in a call.
            packed, _ = self._pack(key, join=False, what="the key takes")
            path = _trail("GETITEM", proxy._rpc_path, key=packed)
        if self._pipelining:
            return self._promise(path, _KIND_GET_ITEM, proxy._rpc_obj_id, key=packed)
        return self._request_object(path, self._native.getitem, proxy._rpc_obj_id, packed)

    def _materialize(self, proxy: RPCProxy) -> Any:
        native = self._native
        obj_id = proxy._rpc_obj_id
        if self._pipelining:  # the one wait of a pipelined chain
            return self._request(self._wait_value, obj_id)
        if hasattr(native, "materialize_value"):  # large arrays copied once, straight from the frame
            return self._request(native.materialize_value, obj_id, self._allow_pickle)
        return unpackb(self._request(native.materialize, obj_id), allow_pickle=self._allow_pickle, tuples=self._tuples)

    def _wait_value(self, obj_id: int) -> Any:
        native = self._native
        return native.wait_value(native.send(_KIND_MATERIALIZE, obj_id), self._allow_pickle)

    # -- the proxy protocol (RPCProxy's operators, conversions, iteration)

    def _function(self, module: str, name: str) -> RPCProxy:
        """The remote ``module.name`` (``operator.add``), once per connection:
        the module is imported once (a wait), the attribute pipelined."""
        key = (module, name)
        fn = self._functions.get(key)
        if fn is None:
            try:
                remote_module = self.modules[module]
            except RemoteException as e:
                if not isinstance(e, ImportError):
                    raise
                # A server without Python's modules (a Rust or C executor).
                raise TypeError(
                    f"this operation on a proxy runs {module}.{name} on the server, which has no "
                    f"module {module!r} (it is not a Python server): materialize() the proxy and "
                    "work on the value, or call the server's own functions"
                ) from e
            fn = getattr(remote_module, name)
            self._functions[key] = fn
        return fn

    def _wire(self, value: Any) -> Any:
        """An operand as it must travel: a tuple is built on the server (no
        tuple on the wire, see :meth:`_getitem`), so that ``p == (1, 2)``
        and ``p[0, 1] = v`` mean what they say, also inside lists and
        dict values (``p == [(1, 2)]``) when tuples do not travel as
        tuples; anything else as it is. With the ``tuple`` extension
        everything travels as it is: no request builds it."""
        if self._tuples:
            return value
        if not isinstance(value, tuple):
            if type(value) in (list, dict):
                items = value if type(value) is list else value.values()
                wired = [self._wire(v) for v in items]
                if any(w is not v for w, v in zip(wired, items)):
                    return wired if type(value) is list else dict(zip(value.keys(), wired))
            return value
        if self._remote_tuple is None:
            self._remote_tuple = getattr(self.builtins, _tuple_builtin())
        return self._remote_tuple([self._wire(v) for v in value])

    def _operate(self, module: str, name: str, *args: Any) -> RPCProxy:
        """``module.name(*args)`` on the server: a proxy of the result
        (pipelined against our server, so nothing waits)."""
        fn = self._function(module, name)
        try:
            return self._call(fn, tuple(self._wire(a) for a in args), {})
        except TypeError as e:
            if isinstance(e, RemoteException):  # the server's answer (a stock server answers at once)
                raise
            raise _unsendable(e, f"{module}.{name}") from None

    def _value(self, module: str, name: str, *args: Any) -> Any:
        """``module.name(*args)`` on the server, materialized: one round trip
        against our server (the call is pipelined into the wait)."""
        return self._materialize(self._operate(module, name, *args))

    def _compare(self, name: str, a: Any, b: Any) -> Any:
        """``operator.<name>(a, b)`` on the server, lazily; NotImplemented
        (so ``==`` falls back to identity) for an operand that cannot be sent."""
        try:
            return self._operate("operator", name, a, b)
        except TypeError as e:
            if not getattr(e, "_simplerpc_unsendable", False):
                raise
            return NotImplemented

    def _call_now(self, fn: RPCProxy, args: Tuple[Any, ...], path: str) -> RPCProxy:
        """``fn(*args)`` waiting for the answer even when pipelining, so its
        error is raised here: a proxy of the result."""
        try:
            packed_args, used = self._pack(list(args), join=False)
            packed_kwargs, _ = self._pack({}, used)
        except TypeError as e:
            raise _unsendable(e, fn._rpc_path) from None
        return self._request_object(path, self._native.call, fn._rpc_obj_id, fn._rpc_path, packed_args, packed_kwargs)

    def _mutate(self, kind: str, target: RPCProxy, *args: Any) -> None:
        """``setattr``/``delattr``/``setitem``/``delitem`` on the server; waits."""
        module, name = _MUTATIONS[kind]
        fn = self._function(module, name)
        try:
            args = tuple(self._wire(a) for a in args)
        except TypeError as e:
            if isinstance(e, RemoteException):
                raise
            raise _unsendable(e, fn._rpc_path) from None
        self._call_now(fn, (target,) + args, _trail("CALL", fn._rpc_path))

    def _helper(self, name: str) -> RPCProxy:
        """A function of :data:`_HELPERS_SOURCE` on the server."""
        fn = self._helpers.get(name)
        if fn is None:
            ns = self._helper_ns
            if ns is None:
                expr = f"(lambda ns: (exec({_HELPERS_SOURCE!r}, ns), ns)[1])({{}})"
                what = "<simplerpc proxy helpers>"
                if self._pipelining:
                    ns = self._promise(what, _KIND_EVAL, name=expr)
                else:
                    ns = self._request_object(what, self._native.eval, expr)
                self._helper_ns = ns
            fn = ns[name]
            self._helpers[name] = fn
        return fn

    def _take(self, it: RPCProxy, n: int) -> Tuple[List[Any], bool, Optional[RPCProxy]]:
        """Up to the next ``n`` items of the remote iterator ``it`` (fewer
        when they are large), whether it is exhausted, and the proxy of the
        exception it raised after these items (see :meth:`_throw`), if any."""
        pair = self._helper("take")(it, n)
        views, done = self._materialize(pair[1])
        error = pair[2] if done == 2 else None
        return self._unview(pair, views, f"next({it._rpc_path})"), bool(done), error

    def _throw(self, error: RPCProxy, label: str) -> None:
        """Raise the remote exception ``error`` (of an iterator) here, as the remote error it is."""
        self._call_now(self._helper("throw"), (error,), label)

    def _next(self, proxy: RPCProxy) -> Any:
        """``next(proxy)``: exactly one item (StopIteration at the end)."""
        pair = self._helper("next1")(proxy)
        views, _ = self._materialize(pair[1])
        return self._unview(pair, views, f"next({proxy._rpc_path})")[0]

    def _iterate(self, proxy: RPCProxy, start: str) -> _RemoteIterator:
        """``iter(proxy)`` (``start`` "iter") or ``reversed(proxy)``, run remotely in batches."""
        it = self._operate("builtins", start, proxy)
        self._rename(it, f"{start}({proxy._rpc_path})")
        return _RemoteIterator(self, it)

    def _rename(self, proxy: RPCProxy, name: str) -> None:
        """Name ``proxy`` ``name`` in its repr and in the error of its request."""
        object.__setattr__(proxy, "_rpc_path", name)
        obj_id = proxy._rpc_obj_id
        if obj_id >= _PROMISE_BIT and (obj_id & ~_PROMISE_BIT) in self._exprs:
            self._exprs[obj_id & ~_PROMISE_BIT] = name

    def _unview(self, pair: RPCProxy, view: List[Any], label: str) -> List[Any]:
        """The items of a batch ``pair`` (``[items, view]`` on the server, see
        :data:`_HELPERS_SOURCE`): values, tuples of them, or proxies (of
        ``items[i]``, ``items[i][j]``; pipelined against our server) whose
        repr names them ``label`` (``next(iter(...))``)."""
        batch: List[RPCProxy] = []

        def items() -> RPCProxy:
            if not batch:
                batch.append(pair[0])
            return batch[0]

        def build(entry: List[Any], get: Callable[[], RPCProxy], name: str) -> Any:
            if entry[0] == 0:
                return entry[1]
            if entry[0] == 2:
                parent: List[RPCProxy] = []

                def element(j: int) -> RPCProxy:
                    if not parent:
                        parent.append(get())
                    return parent[0][j]

                return tuple(build(e, lambda j=j: element(j), f"{name}[{j}]") for j, e in enumerate(entry[1]))
            proxy = get()
            self._rename(proxy, name)
            return proxy

        return [build(e, lambda i=i: items()[i], label) for i, e in enumerate(view)]

    def _enter(self, proxy: RPCProxy) -> RPCProxy:
        """``with proxy:``: the remote ``__enter__`` result; waits, so an error is raised here."""
        return self._call_now(self._helper("enter"), (proxy,), f"{proxy._rpc_path}.__enter__()")

    def _exit(self, proxy: RPCProxy, exc: Optional[BaseException]) -> bool:
        """The remote ``__exit__``, told of ``exc`` by its type's name and
        message (the exception itself stays here); True to suppress it."""
        name: Optional[str] = None
        message = ""
        if exc is not None:
            etype = getattr(exc, "exception_type", None)  # a RemoteException: the remote type
            name = etype or f"{type(exc).__module__}.{type(exc).__qualname__}"
            message = str(exc.args[0]) if len(exc.args) == 1 else str(exc)  # KeyError('k'): k
            if etype and message.startswith(f"{etype}: "):
                message = message[len(etype) + 2 :]
        return bool(self._materialize(self._helper("exit")(proxy, name, message)))

    def _release(self, obj_id: int) -> None:
        if obj_id >= _PROMISE_BIT:
            self._exprs.pop(obj_id & ~_PROMISE_BIT, None)
        if not self._closed and not _is_finalizing():
            self._native.release(obj_id)

    def _request(self, method: Callable[..., _T], *args: Any, wrap: Optional[Callable[[Any], Any]] = None) -> _T:
        """Run one request and wait for it; then raise the error of any
        pipelined request that no wait has reported yet, so none is lost.
        ``wrap`` turns the result into what holds it (a proxy) *before*
        such an error is raised, so the result is released, not leaked."""
        if self._closed:
            raise ConnectionClosedError("the connection is closed")
        try:
            result = method(*args)
        except NativeRemoteError as e:
            error = e
        else:
            if wrap is not None:
                result = wrap(result)
            if self._pipelining:
                self._raise_failure()
            return result
        exc, cause = remote_exception(error, allow_pickle=self._allow_pickle)
        del error  # its traceback holds this frame
        try:
            raise exc from cause
        finally:
            del exc, cause  # no cycle through this frame (see _raise_failure)

    def _request_object(self, path: str, method: Callable[..., int], *args: Any) -> RPCProxy:
        """A request that returns an object id, held as a proxy named ``path``."""
        proxy: RPCProxy = self._request(method, *args, wrap=lambda obj_id: RPCProxy(self, obj_id, path))
        return proxy

    def _raise_failure(self) -> None:
        failure = self._native.take_failure()
        if failure is None:
            return
        request, error = failure
        expr = self._exprs.get(request, f"request {request}")
        error.message = f"{error.message} (raised by {expr}, whose result nobody waited for)"
        exc, cause = remote_exception(error, allow_pickle=self._allow_pickle)
        del failure, error
        try:
            raise exc from cause
        finally:
            # The traceback holds this frame and every caller's down to the
            # user's code; a local still naming the exception (or its cause,
            # whose frames lead back here) would make a
            # cycle keeping them, and so the proxy a wait was for (the
            # locals of materialize()), alive until the cyclic GC ran: its
            # server object stayed, against max_objects too.
            del exc, cause


def _unsendable(error: TypeError, what: str) -> TypeError:
    """The TypeError of an operand the protocol cannot carry, saying what to
    do: a plain TypeError (users see it), marked for :meth:`Connection._compare`."""
    if getattr(error, "_simplerpc_hinted", False):  # _packed's: it says what to send already
        message = f"{error} (an argument of {what} on the server), or materialize() the proxy and compute locally"
    else:
        message = (
            f"{error} (an argument of {what} on the server): send a value the protocol "
            "carries (numbers, str, bytes, lists, dicts, numpy arrays, proxies), or "
            "materialize() the proxy and compute locally"
        )
    unsendable = TypeError(message)
    unsendable._simplerpc_unsendable = True  # type: ignore[attr-defined]
    return unsendable


def _packed(pack: Callable[..., _T], value: Any, **kw: Any) -> _T:
    """``pack(value, **kw)``; a value without wire form raises one clear
    TypeError naming its type (not the packer's frames)."""
    try:
        return pack(value, **kw)
    except TypeError as e:
        clear = no_wire_form(e, None, "send")
        if clear is None:
            raise
        clear._simplerpc_hinted = True  # type: ignore[attr-defined]
    try:
        raise clear
    finally:
        del clear  # no cycle through this frame, which holds the value (see _raise_failure)


def connect(
    host: Optional[str] = None,
    port: Optional[int] = None,
    token: Optional[str] = None,
    *,
    allow_pickle: bool = False,
    timeout: Optional[float] = None,
    dead_after: Optional[float] = 30.0,
    tls: Optional[bool] = None,
    cafile: Optional[str] = None,
) -> Connection:
    """Connect to a server.

    Args:
        host: server host; default ``$SIMPLERPC_HOST`` or ``"localhost"``.
            Or a URL, ``"wss://host:port"`` (TLS) or ``"ws://host:port"``.
        port: server port; default ``$SIMPLERPC_PORT`` or 8000.
        token: the token the server printed; default ``$SIMPLERPC_TOKEN``.
        allow_pickle: trust the server with code execution in this process:
            unpickle the exceptions it sends (to re-raise the original
            object) and numpy object arrays. Off by default: remote
            exceptions are rebuilt from their type name and message instead.
        timeout: seconds connecting may take (raising
            :class:`ConnectTimeoutError` past it), and seconds a request may
            wait for its answer; ``None`` (the default) waits as long as the
            remote call takes (and as the operating system lets a connection
            attempt take). A request that runs out of time raises
            :class:`RequestTimeoutError` and closes the connection.
        dead_after: seconds a simplerpc server may stay silent while a
            request waits, not even answering pings, before it counts as
            frozen or unreachable: the request raises
            :class:`RequestTimeoutError` and the connection closes. A healthy
            server answers pings during the longest call, so this does not
            limit how long a call may run. ``None`` waits forever. (A stock
            simplerpyc server cannot answer pings during a call: not applied
            to it.)
        tls: speak TLS (``wss://``): the server's certificate is checked
            against the platform's trusted roots, or against ``cafile``.
            Default: as the URL's scheme says, else off.
        cafile: a PEM file of the CA certificates to trust instead of the
            platform's (a lab's own CA, or a server's self-signed
            certificate); implies ``tls``. Verification is never skipped.

    Raises:
        ValueError: no token given and ``$SIMPLERPC_TOKEN`` is not set.
        AuthenticationError: the server refused the token.
        ConnectionRefusedError: nothing listens at ``host:port``
            (``simplerpc.ConnectionRefusedError``, a builtin one too).
        ConnectTimeoutError: connecting took longer than ``timeout``.
        ConnectionError: another failure to connect
            (``simplerpc.ConnectionError``, the base of the three above
            and a builtin ``ConnectionError`` too), TLS included: the
            message names the host and the reason (unknown issuer, name
            mismatch, expired, or a server that is not speaking TLS).
    """
    # Where each setting came from, for the messages of a failed connect.
    where = {}
    for name, var, value in (("host", "SIMPLERPC_HOST", host), ("port", "SIMPLERPC_PORT", port), ("token", "SIMPLERPC_TOKEN", token)):
        if value is not None:
            where[name] = "from the argument"
        elif os.environ.get(var):
            where[name] = f"from ${var}"
        else:
            where[name] = "by default"
    if host is not None and "://" in host:
        host, url_port, url_tls = _parse_url(host)
        where["host"] = "from the URL"
        if port is None and url_port is not None:
            port = url_port
            where["port"] = "from the URL"
        if tls is None:
            tls = url_tls
        elif tls != url_tls:
            raise ValueError(f"tls={tls} contradicts the URL's scheme ({'wss' if url_tls else 'ws'}://)")
    if host is None:
        host = os.environ.get("SIMPLERPC_HOST") or "localhost"
    if port is None:
        text = os.environ.get("SIMPLERPC_PORT") or "8000"
        try:
            port = int(text)
        except ValueError:
            raise ValueError(f"SIMPLERPC_PORT is {text!r}, not a port number (1-65535)") from None
    if not 0 < port < 65536:
        raise ValueError(f"port {port} ({where['port']}) is not a port number (1-65535)")
    if token is None:
        token = os.environ.get("SIMPLERPC_TOKEN")
        if not token:
            raise ValueError(
                "no token: pass connect(token=...) or set the SIMPLERPC_TOKEN environment variable "
                "to the token the server printed when it started"
            )
    # No malloc tuning: a library leaves its host process's settings alone.
    from ._native import NativeClient

    try:
        native = NativeClient(host, port, token, timeout=timeout, dead_after=dead_after, tls=bool(tls), cafile=cafile)
    except AuthenticationError as e:
        if where["token"] == "from $SIMPLERPC_TOKEN":
            hint = (
                "the token came from $SIMPLERPC_TOKEN, which may be another server's: "
                "export the token this server printed, or pass connect(token=...)"
            )
        else:
            hint = "the token passed to connect(token=...) is not this server's"
        raise AuthenticationError(f"{e} ({hint})") from None
    except ConnectionRefusedError as e:
        if {where["host"], where["port"]} <= {"from the argument", "from the URL"}:
            raise
        refused = ConnectionRefusedError(
            f"{e} (host {host} {where['host']}, port {port} {where['port']}: pass connect(host, port), "
            "or export the SIMPLERPC_HOST and SIMPLERPC_PORT lines the server printed)"
        )
        refused.errno = e.errno
        raise refused from None
    return Connection(native, allow_pickle=allow_pickle)


def _parse_url(url: str) -> Tuple[str, Optional[int], bool]:
    """Host, port (None if the URL has none) and whether it asks for TLS, of
    ``ws://host:port`` or ``wss://host:port``. A token does not belong in a
    URL (logs record URLs): pass ``token=``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    # The URL as the messages quote it: without its query, fragment or
    # password, where a token pasted from the server's banner would be.
    shown = repr(parts._replace(query="", fragment="", netloc=parts.netloc.rpartition("@")[2]).geturl())
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"{shown}: the URL must start with ws:// or wss://")
    if parts.query or parts.fragment or parts.username or (parts.path not in ("", "/")):
        hidden = " (its query and password not repeated here)" if parts.query or parts.fragment or parts.password else ""
        raise ValueError(
            f"{shown}{hidden}: give only ws(s)://host:port; pass the token as token= (or $SIMPLERPC_TOKEN)"
        )
    if not parts.hostname:
        raise ValueError(f"{shown}: no host in the URL")
    return parts.hostname, parts.port, parts.scheme == "wss"


def patch_module(conn: Connection, name: str) -> RPCProxy:
    """Put the remote module ``name`` of ``conn`` in ``sys.modules`` (see :meth:`Connection.patch_module`)."""
    return conn.patch_module(name)


# ------------------------------------------------------------ remote errors


def remote_exception(
    error: NativeRemoteError, *, allow_pickle: bool = False
) -> Tuple[RemoteException, Optional[BaseException]]:
    """The exception to raise for a remote error, and its cause.

    The cause is the original exception: unpickled from the payload when
    ``allow_pickle``, else rebuilt as ``cls(message)`` when the type is a
    builtin or belongs to a module this process has already imported
    (modules are never imported on the server's say-so). For builtin and
    simplerpc exception types the returned RemoteException is also an
    instance of the original type.
    """
    etype, message = error.exception_type, error.message
    cls = _exception_class(etype)
    try:
        exc = _remote_class(cls)(f"{etype}: {message}", error.traceback or None, etype)
    except Exception:
        exc = RemoteException(f"{etype}: {message}", error.traceback or None, etype)
    cause = _unpickle(error.payload) if allow_pickle and error.payload else None
    if cause is None and cls is not None:
        cause = _rebuild(cls, message)
    return exc, cause


def _exception_class(name: str) -> Optional[Type[BaseException]]:
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:i]))
        if not isinstance(module, types.ModuleType):  # absent, or a patched-in proxy
            continue
        obj: Any = module
        try:
            for part in parts[i:]:
                obj = getattr(obj, part)
        except Exception:
            return None
        if isinstance(obj, type) and issubclass(obj, BaseException):
            return obj
        return None
    return None


_remote_classes: Dict[Type[BaseException], Type[RemoteException]] = {}


def _remote_class(cls: Optional[Type[BaseException]]) -> Type[RemoteException]:
    """RemoteException, or for builtin and simplerpc types a subclass of both it and ``cls``."""
    if cls is None or not issubclass(cls, Exception) or cls.__module__ not in ("builtins", "simplerpc"):
        return RemoteException
    if issubclass(cls, RemoteException):
        return cls
    if cls not in _remote_classes:
        try:
            mixed = type(f"Remote{cls.__name__}", (RemoteException, cls), {"__module__": "simplerpc"})
        except TypeError:
            mixed = RemoteException
        _remote_classes[cls] = mixed
    return _remote_classes[cls]


def _rebuild(cls: Type[BaseException], message: str) -> Optional[BaseException]:
    try:
        exc: BaseException = cls(message)
        return exc
    except Exception:
        pass
    try:
        exc = cls.__new__(cls)
        exc.args = (message,)
        return exc
    except Exception:
        return None


def _unpickle(payload: bytes) -> Optional[BaseException]:
    try:
        with local_imports():  # unpickling imports modules: the local ones
            try:
                import dill as loader
            except ImportError:
                import pickle as loader
            obj = loader.loads(payload)
    except Exception:
        return None
    return obj if isinstance(obj, BaseException) else None
