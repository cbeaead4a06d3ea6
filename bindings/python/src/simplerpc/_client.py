"""The client: connections, namespaces, module patching and remote errors."""

from __future__ import annotations

import os
import sys
import types
from typing import Any, Callable, Dict, Optional, Tuple, Type, TypeVar

from ._native_api import NativeClientAPI, NativeRemoteError
from ._proxy import RPCProxy
from ._serialization import local_imports, local_numpy, packb, packb_parts, unpackb
from .errors import ConnectionClosedError, RemoteException


def _trail(kind: str, parent: str = "", a: str = "", key: bytes = b"") -> str:
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
            raise exc from cause
        self._exprs[promise & ~_PROMISE_BIT] = expr
        return RPCProxy(self, promise, expr)

    def _getattr(self, proxy: RPCProxy, name: str) -> RPCProxy:
        path = proxy._rpc_path
        child = _trail("GETATTR", path, name)
        # Names with a leading underscore are what tools probe for with
        # hasattr() or getattr(obj, name, default) (IPython's _repr_html_,
        # _ipython_canary_method_should_not_exist_, dunders): those wait,
        # so that a missing one raises AttributeError here, as they expect.
        if self._pipelining and not name.startswith("_"):
            return self._promise(child, _KIND_GET_ATTR, proxy._rpc_obj_id, name=name, path=path)
        return self._request_object(child, self._native.getattr, proxy._rpc_obj_id, path, name)

    def _pack(self, value: Any, used: int = 0, join: bool = True) -> Tuple[Any, int]:
        """``value`` packed, and the bytes packed so far. Arguments over the
        connection's message limit are refused before they are joined into
        one buffer (``packb_parts`` leaves large arrays where they are). With
        ``join=False`` large arrays stay apart: a list of buffers the library
        copies once, straight into the frame."""
        parts = packb_parts(value, proxy_owner=self, tuples=self._tuples)
        size = used + sum(memoryview(p).nbytes for p in parts)
        limit = self._max_message
        if limit and size > limit:
            raise ValueError(
                f"the arguments take {size} bytes, over the message limit of {limit} bytes; "
                "send the data in smaller parts, or raise the limit on both ends"
            )
        if len(parts) == 1 and isinstance(parts[0], bytes):
            return parts[0], size
        return (b"".join(parts) if join else list(parts)), size

    def _call(self, proxy: RPCProxy, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> RPCProxy:
        path = proxy._rpc_path
        packed_args, used = self._pack(list(args), join=False)
        packed_kwargs, _ = self._pack(kwargs, used)
        child = _trail("CALL", path)
        if self._pipelining:
            return self._promise(child, _KIND_CALL, proxy._rpc_obj_id, path=path, args=packed_args, kwargs=packed_kwargs)
        return self._request_object(child, self._native.call, proxy._rpc_obj_id, path, packed_args, packed_kwargs)

    def _getitem(self, proxy: RPCProxy, key: Any) -> RPCProxy:
        if isinstance(key, tuple) and not self._tuples:
            # No tuple on the wire (a server takes an array for a list, numpy
            # for fancy indexing): the tuple is built on the server with the
            # builtin core names, and indexed with by reference.
            path = _trail("GETITEM_TUPLE", proxy._rpc_path, key=packb(list(key), proxy_owner=self))
            if self._remote_tuple is None:
                self._remote_tuple = getattr(self.builtins, _tuple_builtin())
            key = self._remote_tuple(list(key))
            packed = packb(key, proxy_owner=self)
        else:
            packed, _ = self._pack(key)
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
        raise exc from cause

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
        raise exc from cause


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
        timeout: seconds a request may wait for its answer; ``None`` (the
            default) waits as long as the remote call takes. A request that
            runs out of time raises :class:`RequestTimeoutError` and closes
            the connection.
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
        ConnectionError: the server cannot be reached, or TLS failed (the
            message names the host and the reason: unknown issuer, name
            mismatch, expired, or a server that is not speaking TLS).
    """
    if host is not None and "://" in host:
        host, url_port, url_tls = _parse_url(host)
        if port is None:
            port = url_port
        if tls is None:
            tls = url_tls
        elif tls != url_tls:
            raise ValueError(f"tls={tls} contradicts the URL's scheme ({'wss' if url_tls else 'ws'}://)")
    if host is None:
        host = os.environ.get("SIMPLERPC_HOST", "localhost")
    if port is None:
        port = int(os.environ.get("SIMPLERPC_PORT", "8000"))
    if token is None:
        token = os.environ.get("SIMPLERPC_TOKEN")
        if not token:
            raise ValueError("token must be given or set in the SIMPLERPC_TOKEN environment variable")
    # No malloc tuning: a library leaves its host process's settings alone.
    from ._native import NativeClient

    native = NativeClient(host, port, token, timeout=timeout, dead_after=dead_after, tls=bool(tls), cafile=cafile)
    return Connection(native, allow_pickle=allow_pickle)


def _parse_url(url: str) -> Tuple[str, Optional[int], bool]:
    """Host, port (None if the URL has none) and whether it asks for TLS, of
    ``ws://host:port`` or ``wss://host:port``. A token does not belong in a
    URL (logs record URLs): pass ``token=``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"{url!r}: the URL must start with ws:// or wss://")
    if parts.query or (parts.path not in ("", "/")):
        raise ValueError(f"{url!r}: give only ws(s)://host:port; pass the token as token= (or $SIMPLERPC_TOKEN)")
    if not parts.hostname:
        raise ValueError(f"{url!r}: no host in the URL")
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
