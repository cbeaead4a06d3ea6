"""Messages for users: the wording of errors the package raises or sends,
kept in one place so that none names a Rust or C API item or leaks the
package's internals."""

from __future__ import annotations

import os
import traceback
from typing import Any, List, Optional, Set

__all__ = ["no_wire_form", "user_traceback"]


def no_wire_form(error: BaseException, value: Any, doing: str) -> Optional[TypeError]:
    """The error to raise instead of ``error``, raised while packing ``value``
    for ``doing`` (``"materialize"`` on a server, ``"send"`` on a client;
    ``value`` None: do not name the container),
    when it is about an object the protocol cannot carry: one line naming the
    type and what to do, to be raised ``from None`` (the packer's frames say
    nothing to a user). None for any other error."""
    if not isinstance(error, TypeError) or not hasattr(error, "unserializable"):
        return None
    obj = error.unserializable
    name = type(obj).__qualname__
    inside = "" if value is None or obj is value else f" (inside the {type(value).__qualname__})"
    if doing == "materialize":
        if hasattr(obj, "read") and hasattr(obj, "close"):
            hint = "read it on the server, e.g. materialize(p.read()) or materialize(conn.builtins.list(p))"
        elif hasattr(obj, "__iter__") or hasattr(obj, "__next__"):
            hint = "convert it on the server, e.g. materialize(conn.builtins.list(p))"
        elif callable(obj):
            hint = "call it through the proxy instead, e.g. materialize(p(...))"
        else:
            hint = "convert it on the server, e.g. materialize(conn.builtins.str(p)) or a list, dict or array of it"
        return TypeError(
            f"cannot materialize an object of type {name!r}{inside}: it has no wire form; "
            f"keep it remote (use the proxy) or {hint}"
        )
    if callable(obj) and not isinstance(obj, type):
        hint = "send a function with conn.teleport(f), or pass a proxy of a remote one"
    elif hasattr(obj, "read") and hasattr(obj, "close"):
        hint = "send its contents (f.read()), or open it on the server (conn.builtins.open(...))"
    elif hasattr(obj, "__iter__") or hasattr(obj, "__next__"):
        hint = "send a list of its items instead (list(x))"
    else:
        hint = "send None, bool, int, float, str, bytes, lists, dicts, numpy arrays or proxies instead"
    return TypeError(f"cannot send an object of type {name!r}{inside}: it has no wire form; {hint}")


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _ours(filename: str) -> bool:
    """A frame of this package's own code."""
    return os.path.abspath(filename).startswith(_PACKAGE_DIR) if filename[:1] not in ("<", "") else False


def _machinery(filename: str) -> bool:
    """A frame of what the package runs on the user's behalf: msgpack's
    packer or unpacker (compiled or pure Python), or the import system
    (``importlib.import_module`` for ``conn.modules.x``)."""
    path = filename.replace("\\", "/")
    return (
        path.startswith("msgpack/")
        or "/msgpack/" in path
        or path.endswith("/importlib/__init__.py")
        or path.startswith("<frozen importlib")
    )


def _strip(te: traceback.TracebackException, seen: Set[int]) -> None:
    if id(te) in seen:
        return
    seen.add(id(te))
    kept: List[traceback.FrameSummary] = []
    after_ours = False
    for frame in te.stack:
        if _ours(frame.filename):
            after_ours = True
            continue
        if after_ours and _machinery(frame.filename):
            continue  # msgpack or the import system, running on our behalf
        after_ours = False
        kept.append(frame)
    te.stack = traceback.StackSummary.from_list(kept)
    for chained in (te.__cause__, te.__context__):
        if chained is not None:
            _strip(chained, seen)
    for member in getattr(te, "exceptions", None) or ():  # an ExceptionGroup's
        _strip(member, seen)


def user_traceback(exc: BaseException) -> str:
    """``exc``'s traceback formatted as ``traceback.format_exception`` does,
    without the frames of this package (the executor, the server's
    callbacks, the serializer) or of msgpack and the import system running
    for it: it starts at the user's code. With no frame left (an error of the package itself,
    such as a value without wire form, or of an operation the client asked
    for, such as a missing key), the header and the exception lines: the
    reference's format, which tools look for."""
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    _strip(te, set())
    text = "".join(te.format())
    if exc.__traceback__ is not None and not te.stack:
        text = "Traceback (most recent call last):\n" + text
    return text
