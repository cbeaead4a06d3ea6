"""The Python executor: what a server does with one client's requests.

Same semantics as the reference's ``ClientExecutor``, but with explicit
handles: every result is stored under a fresh integer handle, which the
caller (the server session in the core) maps to protocol object ids, and
objects are freed by ``release``. Arguments and keys arrive as the msgpack
the client wrote (the request frame's own bytes); a proxy reference in them
is still the client's marker, whose ``obj_id`` is the client's id, and the
handles those markers stand for come alongside, in order (``refs``).
"""

from __future__ import annotations

import builtins
import importlib
from collections.abc import Mapping
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple

from ._messages import no_wire_form, user_traceback
from ._serialization import _Buffer, _hashable, packb, packb_parts, unpackb

__all__ = ["PythonExecutor", "describe_exception"]


def describe_exception(exc: BaseException) -> Tuple[str, str, str, Optional[bytes]]:
    """The parts of an error response for ``exc``.

    Returns:
        ``(exception_type, message, traceback, pickle)``: the type's qualified
        name (``"builtins.ValueError"``), ``str(exc)``, the formatted
        traceback without this package's own frames (it starts at the
        user's code), and ``dill.dumps(exc)`` or None when dill is missing or
        cannot pickle it.
    """
    cls = type(exc)
    exception_type = f"{cls.__module__}.{cls.__qualname__}"
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {cls.__name__} object>"
    try:
        tb = user_traceback(exc)
    except Exception:  # never fail to report an error for want of its traceback
        tb = ""
    try:
        import dill

        payload: Optional[bytes] = dill.dumps(exc)
    except Exception:
        payload = None
    return exception_type, message, tb, payload


class PythonExecutor:
    """One client's execution context: its globals and the objects it holds.

    Every method that produces an object stores it and returns its handle.
    Errors propagate as ordinary exceptions; turn them into an error
    response with :func:`describe_exception`.

    ``tuples``: whether the client's connection negotiated the ``tuple``
    extension (tuples travel as ``{"__tuple__": [...]}``, both ways); None
    until the server has told (then treated as False).
    """

    tuples: Optional[bool] = None

    def __init__(self) -> None:
        self.globals: Dict[str, Any] = {"__builtins__": builtins, "__name__": "__simplerpc__"}
        self.objects: Dict[int, Any] = {}
        self._next_handle = 0

    # -- object table

    def _store(self, obj: Any) -> int:
        handle = self._next_handle
        self._next_handle += 1
        self.objects[handle] = obj
        return handle

    def _get(self, handle: int) -> Any:
        try:
            return self.objects[handle]
        except KeyError:
            raise KeyError(f"no object with handle {handle} (never returned, or released)") from None

    def _resolver(self, refs: Sequence[int]) -> Tuple[Callable[[Any], Any], Iterator[int]]:
        """What replaces the i-th proxy marker: the object under ``refs[i]``.

        The marker's own ``obj_id`` (the client's id) is never read.
        """
        handles = iter(refs)

        def resolve(_marker: Any) -> Any:
            try:
                handle = next(handles)
            except StopIteration:
                raise ValueError("the arguments hold more proxy references than the handles given for them") from None
            return self._get(handle)

        return resolve, handles

    @staticmethod
    def _all_used(handles: Iterator[int]) -> None:
        if next(handles, None) is not None:
            raise ValueError("the arguments hold fewer proxy references than the handles given for them")

    def release(self, handle: int) -> None:
        """Drop the object stored under ``handle`` (unknown handles are ignored)."""
        self.objects.pop(handle, None)

    # -- requests

    def import_module(self, name: str) -> int:
        """Import module ``name`` (may be dotted) and bind its top package in the globals."""
        module = importlib.import_module(name)
        top = name.partition(".")[0]
        self.globals[top] = importlib.import_module(top)
        return self._store(module)

    def get_builtin(self, name: str) -> int:
        """The builtin called ``name``."""
        return self._store(getattr(builtins, name))

    def getattr(self, handle: Optional[int], path: str, attr: str) -> int:
        """Attribute ``attr`` of the object ``handle``, or of ``eval(path)`` when it is None."""
        obj = self._get(handle) if handle is not None else eval(path, self.globals)
        return self._store(getattr(obj, attr))

    def call(self, handle: Optional[int], path: str, args: _Buffer, kwargs: _Buffer, refs: Sequence[int] = (), decode: Optional[Callable[..., Any]] = None) -> int:
        """Call the object ``handle`` (or ``eval(path)``) with msgpack-encoded args and kwargs.

        ``args`` (an array) and ``kwargs`` (a map) are the bytes the client
        sent; ``refs`` holds the handle each proxy reference marker in them
        stands for, in the order the markers appear in ``args`` then
        ``kwargs``. As in the reference, an object that is not callable has
        the attribute named by the last component of ``path`` called instead.
        ``decode(buffer, on_proxy=...)`` decodes them (default: ``unpackb``,
        with tuples as :attr:`tuples` says; the server passes one that copies
        large arrays once, from the frame).
        """
        if decode is None:
            tuples = bool(self.tuples)

            def decode(data: Any, *, on_proxy: Any = None) -> Any:
                return unpackb(data, on_proxy=on_proxy, tuples=tuples)

        if handle is not None:
            obj = self._get(handle)
            func = obj if callable(obj) else getattr(obj, path.split(".")[-1].rstrip("()"))
        else:
            func = eval(path, self.globals)
        resolve, rest = self._resolver(refs)
        call_args = decode(args, on_proxy=resolve)
        call_kwargs = decode(kwargs, on_proxy=resolve)
        self._all_used(rest)
        if not isinstance(call_args, list) or not isinstance(call_kwargs, dict):
            raise TypeError("call arguments must be an array and keyword arguments a map")
        return self._store(func(*call_args, **call_kwargs))

    def getitem(self, handle: int, key: _Buffer, refs: Sequence[int] = ()) -> int:
        """``obj[key]`` with a msgpack-encoded key (``refs``: as for :meth:`call`).

        With the ``tuple`` extension a tuple key arrives as a tuple. Without
        it tuples travel as arrays, so a key arrives as a list whether the
        client indexed with a tuple or a list. Like the reference, the list
        is used as it is (numpy fancy indexing, pandas column lists), except
        where a list can only have been a tuple: when it holds a slice
        (``a[1:3, 0]``) or indexes a mapping (``d[1, 2]``).
        """
        obj = self._get(handle)
        resolve, rest = self._resolver(refs)
        k = unpackb(key, on_proxy=resolve, tuples=bool(self.tuples))
        self._all_used(rest)
        if isinstance(k, list) and not self.tuples:
            if isinstance(obj, Mapping):
                k = _hashable(k)
            elif any(isinstance(part, slice) for part in k):
                k = tuple(k)
        return self._store(obj[k])

    def materialize(self, handle: int) -> Any:
        """The object's value, msgpack-encoded, as a list of buffers that make
        it when joined (large arrays are their own memory, not copied)."""
        value = self._get(handle)
        try:
            return packb_parts(value, tuples=bool(self.tuples))
        except TypeError as e:
            clear = no_wire_form(e, value, "materialize")
            if clear is None:
                raise
        del value
        try:
            raise clear
        finally:
            del clear  # its traceback holds this frame: no cycle keeping the value alive

    def eval(self, expr: str) -> int:
        """Evaluate ``expr`` in this client's globals."""
        return self._store(eval(expr, self.globals))

    def execute(self, code: str) -> None:
        """Run ``code`` in this client's globals."""
        exec(code, self.globals)

    def teleport(self, func_bytes: bytes, name: str) -> int:
        """Load a dill-pickled function and bind it to ``name`` in the globals."""
        try:
            import dill
        except ImportError:
            raise ImportError("teleport needs dill on the server: pip install dill") from None
        func = dill.loads(func_bytes)
        self.globals[name] = func
        return self._store(func)

    def namespace(self) -> bytes:
        """The globals as msgpack: ``{name: str(type(value))}``."""
        return packb({k: str(type(v)) for k, v in self.globals.items()})
