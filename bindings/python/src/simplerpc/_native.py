"""ctypes bindings to libsimplerpc: the one module that knows the C ABI.

Every function's ``argtypes``/``restype`` is declared once, here. Buffers the
library hands out are copied into Python objects and freed at once with
``srpc_buf_free``. ctypes releases the GIL while a ``CDLL`` call runs, so a
client waiting on the network never blocks other Python threads.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import glob
import itertools
import math
import os
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    byref,
    c_char_p,
    c_size_t,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

from ._native_api import NativeRemoteError
from .errors import (
    AuthenticationError,
    ConnectionClosedError,
    ConnectionError,
    ConnectionRefusedError,
    ConnectTimeoutError,
    ProtocolError,
    RequestTimeoutError,
    SimpleRPCError,
)

# The header's constants, by their C names.
# srpc_status
(
    SRPC_STATUS_OK,
    SRPC_STATUS_ERR_NULL_ARGUMENT,
    SRPC_STATUS_ERR_INVALID_UTF8,
    SRPC_STATUS_ERR_INVALID_ARGUMENT,
    SRPC_STATUS_ERR_IO,
    SRPC_STATUS_ERR_UNAUTHORIZED,
    SRPC_STATUS_ERR_CLOSED,
    SRPC_STATUS_ERR_REMOTE,
    SRPC_STATUS_ERR_PROTOCOL,
    SRPC_STATUS_ERR_PANIC,
    SRPC_STATUS_ERR_STATE,
    SRPC_STATUS_ERR_TIMEOUT,
    SRPC_STATUS_INTERRUPTED,
    SRPC_STATUS_ERR_REFUSED,
) = range(14)
# srpc_call_kind
(
    SRPC_CALL_KIND_IMPORT_MODULE,
    SRPC_CALL_KIND_GET_BUILTIN,
    SRPC_CALL_KIND_GET_ATTR,
    SRPC_CALL_KIND_CALL,
    SRPC_CALL_KIND_GET_ITEM,
    SRPC_CALL_KIND_MATERIALIZE,
    SRPC_CALL_KIND_EVAL,
    SRPC_CALL_KIND_EXECUTE,
    SRPC_CALL_KIND_TELEPORT,
    SRPC_CALL_KIND_GET_NAMESPACE,
) = range(10)
# srpc_response_kind
(
    SRPC_RESPONSE_KIND_OBJECT,
    SRPC_RESPONSE_KIND_VALUE,
    SRPC_RESPONSE_KIND_DONE,
    SRPC_RESPONSE_KIND_NAMESPACE,
    SRPC_RESPONSE_KIND_ERROR,
) = range(5)
# srpc_log_level
(
    SRPC_LOG_LEVEL_OFF,
    SRPC_LOG_LEVEL_ERROR,
    SRPC_LOG_LEVEL_WARN,
    SRPC_LOG_LEVEL_INFO,
    SRPC_LOG_LEVEL_DEBUG,
    SRPC_LOG_LEVEL_TRACE,
) = range(6)
# srpc_input
SRPC_INPUT_ARGS, SRPC_INPUT_KWARGS, SRPC_INPUT_KEY = range(3)
# srpc_trail_kind
(
    SRPC_TRAIL_KIND_MODULE,
    SRPC_TRAIL_KIND_BUILTIN,
    SRPC_TRAIL_KIND_EVAL,
    SRPC_TRAIL_KIND_TELEPORT,
    SRPC_TRAIL_KIND_GETATTR,
    SRPC_TRAIL_KIND_CALL,
    SRPC_TRAIL_KIND_GETITEM,
    SRPC_TRAIL_KIND_GETITEM_TUPLE,
) = range(8)
# Extension bits (SRPC_EXT_*): the tuple extension, and all of them.
SRPC_EXT_TUPLE = 8
SRPC_EXT_STATS = 16
SRPC_EXT_ALL = 31
SRPC_NO_OBJECT = (1 << 64) - 1
SRPC_PROMISE_BIT = 1 << 63
# srpc_mp_type: the item types of the library's msgpack reader for C hosts
# (Python reads msgpack with the msgpack package; declared for the ABI check).
(
    SRPC_MP_TYPE_NIL,
    SRPC_MP_TYPE_BOOL,
    SRPC_MP_TYPE_INT,
    SRPC_MP_TYPE_UINT,
    SRPC_MP_TYPE_FLOAT,
    SRPC_MP_TYPE_STR,
    SRPC_MP_TYPE_BIN,
    SRPC_MP_TYPE_ARRAY,
    SRPC_MP_TYPE_MAP,
    SRPC_MP_TYPE_EXT,
) = range(10)
SRPC_NDARRAY_MAX_DIMS = 64

# Each Structure names its C type in ``_c_type_``: tests/test_abi_header.py
# compiles a C program against include/simplerpc.h and checks every size,
# field offset and SRPC_* constant here against it.


class Str(Structure):
    _c_type_ = "srpc_str"
    _fields_ = [("ptr", c_void_p), ("len", c_size_t)]


class Slice(Structure):
    _c_type_ = "srpc_slice"
    _fields_ = [("ptr", c_void_p), ("len", c_size_t)]


class Buf(Structure):
    _c_type_ = "srpc_buf"
    # ``owner`` is private: what keeps ``data`` alive until srpc_buf_free()
    # (for a value, the received frame itself).
    _fields_ = [("data", c_void_p), ("len", c_size_t), ("owner", c_void_p)]


class Call(Structure):
    _c_type_ = "srpc_call"
    _fields_ = [
        ("kind", c_uint32),
        ("obj", c_uint64),
        ("name", Str),
        ("path", Str),
        ("args", Slice),
        ("kwargs", Slice),
        ("key", Slice),
        ("payload", Slice),
        ("args_parts", POINTER(Slice)),
        ("args_parts_len", c_size_t),
        ("kwargs_parts", POINTER(Slice)),
        ("kwargs_parts_len", c_size_t),
        ("key_parts", POINTER(Slice)),
        ("key_parts_len", c_size_t),
        ("refs", POINTER(c_uint64)),
        ("refs_len", c_size_t),
    ]


class Response(Structure):
    _c_type_ = "srpc_response"
    _fields_ = [("kind", c_uint32), ("obj", c_uint64), ("request_id", c_uint64), ("value", Buf)]


# The msgpack helpers' structs, for C hosts; unused here, declared so that
# the ABI check covers every struct of the header.
class MpItem(Structure):
    _c_type_ = "srpc_mp_item"
    _fields_ = [
        ("type", c_uint32),
        ("boolean", ctypes.c_bool),
        ("i", ctypes.c_int64),
        ("u", c_uint64),
        ("f", ctypes.c_double),
        ("bytes", Slice),
        ("count", c_uint32),
        ("ext_type", ctypes.c_int8),
    ]


class MpReader(Structure):
    _c_type_ = "srpc_mp_reader"
    _fields_ = [("data", c_void_p), ("len", c_size_t), ("pos", c_size_t)]


class NdArray(Structure):
    _c_type_ = "srpc_ndarray"
    _fields_ = [("dtype", Str), ("ndim", c_size_t), ("shape", c_uint64 * SRPC_NDARRAY_MAX_DIMS), ("data", Slice)]


OPEN_FN = CFUNCTYPE(c_uint32, c_void_p, POINTER(c_void_p))
CLOSE_FN = CFUNCTYPE(None, c_void_p, c_void_p)
CALL_FN = CFUNCTYPE(c_uint32, c_void_p, c_void_p, POINTER(Call), c_void_p)
RELEASE_FN = CFUNCTYPE(None, c_void_p, c_void_p, c_uint64)
FREE_FN = CFUNCTYPE(None, c_void_p)


class Executor(Structure):
    _c_type_ = "srpc_executor"
    _fields_ = [
        ("userdata", c_void_p),
        ("open", OPEN_FN),
        ("close", CLOSE_FN),
        ("call", CALL_FN),
        ("release", RELEASE_FN),
        ("free_userdata", FREE_FN),
    ]


class StreamConfig(Structure):
    _c_type_ = "srpc_stream_config"
    _fields_ = [
        ("max_message_size", c_uint64),
        ("max_objects", c_uint64),
        ("hello_timeout_ms", c_uint64),
        ("extensions", c_uint32),
    ]


class ServerConfig(Structure):
    _c_type_ = "srpc_server_config"
    _fields_ = [
        ("host", Str),
        ("port", c_uint16),
        ("token", Str),
        ("max_message_size", c_uint64),
        ("max_objects", c_uint64),
        ("max_connections", c_uint32),
        ("stack_size", c_uint64),
        ("handshake_timeout_ms", c_uint64),
        ("ping_interval_ms", c_uint64),
        ("dead_after_ms", c_uint64),
        ("extensions", c_uint32),
        ("certfile", Str),
        ("keyfile", Str),
    ]


class ClientConfig(Structure):
    _c_type_ = "srpc_client_config"
    _fields_ = [
        ("host", Str),
        ("port", c_uint16),
        ("token", Str),
        ("extensions", c_uint32),
        ("tls", ctypes.c_bool),
        ("cafile", Str),
        ("timeout_ms", c_uint64),
    ]


def _find_library() -> str:
    override = os.environ.get("SIMPLERPC_LIBRARY")
    if override:
        return override
    here = os.path.dirname(os.path.abspath(__file__))
    # setuptools-rust names a binding-less library with Python's extension
    # suffix (setuptools-rust #47), so look for any of the usual names.
    for pattern in ("_libsimplerpc*.so", "_libsimplerpc*.pyd", "_libsimplerpc*.dylib", "libsimplerpc.so", "libsimplerpc.dylib", "simplerpc.dll"):
        found = sorted(glob.glob(os.path.join(here, pattern)))
        if found:
            return found[0]
    raise ImportError(
        f"libsimplerpc was not found next to {here}; install the package with "
        "`pip install ./bindings/python` (it builds the Rust library with cargo), "
        "or point SIMPLERPC_LIBRARY at a built libsimplerpc.so"
    )


_lib = ctypes.CDLL(_find_library())


def _declare(name: str, restype: Any, *argtypes: Any) -> Any:
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_last_message = _declare("srpc_last_error_message", c_void_p)
_last_type = _declare("srpc_last_error_type", c_void_p)
_last_traceback = _declare("srpc_last_error_traceback", c_void_p)
_last_payload = _declare("srpc_last_error_payload", c_void_p, POINTER(c_size_t))
_buf_free = _declare("srpc_buf_free", None, POINTER(Buf))
_client_connect_config = _declare("srpc_client_connect_config", c_uint32, POINTER(ClientConfig), POINTER(c_void_p))
_client_request = _declare("srpc_client_request", c_uint32, c_void_p, POINTER(Call), POINTER(Response))
_client_send = _declare("srpc_client_send", c_uint32, c_void_p, POINTER(Call), POINTER(c_uint64))
_client_send_pipelined = _declare("srpc_client_send_pipelined", c_uint32, c_void_p, POINTER(Call), POINTER(c_uint64))
_client_wait = _declare("srpc_client_wait", c_uint32, c_void_p, c_uint64, POINTER(Response))
_client_take_failure = _declare("srpc_client_take_failure", c_uint32, c_void_p, POINTER(c_uint64))
_client_promises = _declare("srpc_client_promises", ctypes.c_bool, c_void_p)
_client_round_trips = _declare("srpc_client_round_trips", c_uint64, c_void_p)
_client_live_objects = _declare("srpc_client_live_objects", c_uint32, c_void_p, POINTER(c_uint64))
_client_max_message_size = _declare("srpc_client_max_message_size", c_uint64, c_void_p)
_value_split = _declare("srpc_value_split", c_uint32, Slice, c_size_t, POINTER(Buf), POINTER(Buf))
_client_release = _declare("srpc_client_release", c_uint32, c_void_p, c_uint64)
_client_set_timeout = _declare("srpc_client_set_timeout", c_uint32, c_void_p, c_uint64)
_client_set_interruptible = _declare("srpc_client_set_interruptible", c_uint32, c_void_p, ctypes.c_bool)
_client_abandon = _declare("srpc_client_abandon", c_uint32, c_void_p, c_uint64)
_client_set_liveness = _declare("srpc_client_set_liveness", c_uint32, c_void_p, c_uint64, c_uint64)
_client_extensions = _declare("srpc_client_extensions", c_uint32, c_void_p)
_client_free = _declare("srpc_client_free", None, c_void_p)
_client_connect_fd = _declare("srpc_client_connect_fd", c_uint32, POINTER(StreamConfig), ctypes.c_int, POINTER(c_void_p))
_server_serve_fd = _declare("srpc_server_serve_fd", c_uint32, POINTER(StreamConfig), POINTER(Executor), ctypes.c_int)
_server_start = _declare("srpc_server_start", c_uint32, POINTER(ServerConfig), POINTER(Executor), POINTER(c_void_p))
_server_port = _declare("srpc_server_port", c_uint16, c_void_p)
_server_token = _declare("srpc_server_token", c_void_p, c_void_p)
_server_stop = _declare("srpc_server_stop", c_uint32, c_void_p)
_server_free = _declare("srpc_server_free", None, c_void_p)
LOG_FN = CFUNCTYPE(None, c_void_p, c_uint32, Str, Str)
_set_log_callback = _declare("srpc_set_log_callback", None, LOG_FN, c_void_p, c_uint32)
_reply_handle = _declare("srpc_reply_handle", c_uint32, c_void_p, c_uint64)
_reply_extensions = _declare("srpc_reply_extensions", c_uint32, c_void_p)
_reply_value = _declare("srpc_reply_value", c_uint32, c_void_p, c_void_p, c_size_t)
_reply_value_parts = _declare("srpc_reply_value_parts", c_uint32, c_void_p, POINTER(Slice), c_size_t)
LENT_RELEASE_FN = CFUNCTYPE(None, c_void_p)
_reply_value_lent = _declare(
    "srpc_reply_value_lent", c_uint32, c_void_p, POINTER(Slice), c_size_t, LENT_RELEASE_FN, c_void_p
)
# Parts from this size up are lent to the library (srpc_reply_value_lent), not
# copied: the library's SPLICE_MIN.
_LEND_MIN = 64 << 10
_reply_keep_input = _declare("srpc_reply_keep_input", c_uint32, c_void_p, c_uint32, POINTER(Buf))
_reply_error = _declare("srpc_reply_error", c_uint32, c_void_p, Str, Str, Str, Slice)
_trail = _declare("srpc_trail", c_uint32, c_uint32, Str, Str, Slice, POINTER(Buf))
_trail_parts = _declare("srpc_trail_parts", c_uint32, c_uint32, Str, Str, POINTER(Slice), c_size_t, POINTER(Buf))
_trail_tuple_builtin = _declare("srpc_trail_tuple_builtin", c_void_p)


def _load_speedups() -> Any:
    """The accelerator ``simplerpc._speedups`` (a Rust extension, built only
    on request: ``SIMPLERPC_SPEEDUPS=1 pip install ./bindings/python``),
    bound to this library; None when it is absent, cannot be bound, or
    ``SIMPLERPC_NO_SPEEDUPS`` is set to anything but ``0`` (everything then
    goes through ctypes, as without it)."""
    if os.environ.get("SIMPLERPC_NO_SPEEDUPS", "0") not in ("", "0"):
        return None
    try:
        from . import _speedups  # type: ignore[attr-defined]
    except ImportError:
        return None
    names = (
        "srpc_client_request", "srpc_client_send", "srpc_client_send_pipelined", "srpc_client_wait",
        "srpc_trail", "srpc_buf_free", "srpc_reply_handle", "srpc_reply_extensions",
        "srpc_reply_value", "srpc_reply_value_parts", "srpc_reply_value_lent", "srpc_reply_error",
    )
    try:
        _speedups.bind({name: ctypes.cast(getattr(_lib, name), c_void_p).value for name in names})
    except Exception:  # another library than the one it was bound to: ctypes it is
        return None
    return _speedups


#: The accelerator, or None (see :func:`_load_speedups`).
_sp = _load_speedups()


def speedups_enabled() -> bool:
    """Whether the accelerator ``simplerpc._speedups`` is in use."""
    return _sp is not None


_gil_ensure = ctypes.pythonapi.PyGILState_Ensure
_gil_ensure.restype = ctypes.c_int
_gil_ensure.argtypes = []
_gil_release = ctypes.pythonapi.PyGILState_Release
_gil_release.restype = None
_gil_release.argtypes = [ctypes.c_int]


def _cstr(p: Optional[int]) -> str:
    return ctypes.string_at(p).decode("utf-8", "replace") if p else ""


def trail(kind: int, parent: str = "", a: str = "", key: Any = b"") -> str:
    """The path trail core prescribes (``srpc_trail``): ``kind`` is an
    ``SRPC_TRAIL_KIND_*``, ``parent`` the parent's trail, ``a`` the name
    (module, builtin, attribute, expression) and ``key`` a msgpack key:
    bytes, or a list of buffers that make it when joined (``srpc_trail_parts``,
    which does not read a large array's data)."""
    keep = _Keep()
    out = Buf()
    if isinstance(key, list):
        parts = (Slice * len(key))(*(keep.readonly_slice(p) for p in key))
        st = _trail_parts(kind, keep.str(parent), keep.str(a), parts, len(key), byref(out))
        if st != SRPC_STATUS_OK:
            _raise(st)
        return _take(out).decode("utf-8")
    if _sp is not None:
        text: Optional[str] = _sp.trail(kind, parent, a, key)
        if text is not None:
            return text
    st = _trail(kind, keep.str(parent), keep.str(a), keep.slice(key), byref(out))
    if st != SRPC_STATUS_OK:
        _raise(st)
    return _take(out).decode("utf-8")


#: The builtin a tuple key is built with on the server (core decides: ``"tuple"``).
TUPLE_BUILTIN = _cstr(_trail_tuple_builtin())


def _raise(status: int) -> None:
    if status == SRPC_STATUS_ERR_REMOTE:
        # Every part is read before any is turned into a Python object:
        # making one may run a finaliser that calls into the library.
        # (bytes objects are no containers: making them runs no collection.)
        n = c_size_t(0)
        p_message, p_type, p_tb = _last_message(), _last_type(), _last_traceback()
        p_payload = _last_payload(byref(n))
        raw_message = ctypes.string_at(p_message) if p_message else b""
        raw_type = ctypes.string_at(p_type) if p_type else b""
        raw_tb = ctypes.string_at(p_tb) if p_tb else b""
        payload = ctypes.string_at(p_payload, n.value) if p_payload and n.value else None
        message = raw_message.decode("utf-8", "replace")
        etype = raw_type.decode("utf-8", "replace")
        raise NativeRemoteError(etype or "builtins.Exception", message, raw_tb.decode("utf-8", "replace"), payload)
    raise _error(status, _cstr(_last_message()))


def _error(status: int, message: str) -> Exception:
    """The public exception for a failed call's ``status`` (never a private
    class: users see and catch these). The library's messages name no Rust
    or C API; a message for which the Python API matters is reworded where
    the Python side knows more (``connect``)."""
    if status == SRPC_STATUS_ERR_UNAUTHORIZED:
        return AuthenticationError(message)
    if status == SRPC_STATUS_ERR_REFUSED:
        e = ConnectionRefusedError(message)
        e.errno = errno.ECONNREFUSED
        return e
    if status == SRPC_STATUS_ERR_CLOSED:
        return ConnectionClosedError(message)
    if status == SRPC_STATUS_ERR_TIMEOUT:
        # The library's two waits, with the Python setting that governs each.
        if "not even a pong" in message:
            message += " (connect(dead_after=...) sets how long to wait)"
        elif message.startswith("the server did not answer within"):
            message += " (the timeout=... given to connect() or spawn() sets the limit)"
        return RequestTimeoutError(message)
    if status == SRPC_STATUS_ERR_PROTOCOL:
        return ProtocolError(message)
    if status == SRPC_STATUS_ERR_IO:
        return ConnectionError(message)
    if status in (SRPC_STATUS_ERR_INVALID_ARGUMENT, SRPC_STATUS_ERR_INVALID_UTF8):
        return ValueError(message)
    return SimpleRPCError(message or f"libsimplerpc failed with status {status}")


def _take(buf: Buf) -> bytes:
    try:
        return ctypes.string_at(buf.data, buf.len) if buf.data else b""
    finally:
        _buf_free(byref(buf))


# A value this large, holding bins of at least _SPLIT_BIN bytes, is decoded
# with its large bins taken out (srpc_value_split): each array's data is then
# copied once, from the frame into the numpy array, instead of twice.
_SPLIT_VALUE = 256 << 10
_SPLIT_BIN = 64 << 10


_NO_ARRAYS = object()


def _decode_split(addr: int, size: int, allow_pickle: bool = False, on_proxy: Any = None, owner: Any = None, tuples: bool = False) -> Any:
    """Decode the msgpack value at ``addr`` (``size`` bytes, alive during the
    call) with its arrays' data taken out by the library, each array made
    with ``np.empty`` and filled straight from there: one copy; or, given
    the ``owner`` of the memory (a :class:`_Frame`), made over it in place
    where it lies aligned. Returns ``_NO_ARRAYS`` when there is no large
    array to take out (decode as usual)."""
    import struct

    from ._serialization import unpackb_split

    skeleton, bins = Buf(), Buf()
    if _value_split(Slice(addr, size), _SPLIT_BIN, byref(skeleton), byref(bins)) != SRPC_STATUS_OK:
        return _NO_ARRAYS
    try:
        table = struct.unpack(f"={bins.len // 8}Q", ctypes.string_at(bins.data, bins.len)) if bins.data else ()
        if not table:
            return _NO_ARRAYS
        payloads = [(addr + table[i], table[i + 1]) for i in range(0, len(table), 2)]
        view = memoryview((ctypes.c_char * skeleton.len).from_address(skeleton.data)).cast("B")
        try:
            return unpackb_split(view, payloads, allow_pickle=allow_pickle, on_proxy=on_proxy, owner=owner, tuples=tuples)
        finally:
            view.release()
    finally:
        _buf_free(byref(skeleton))
        _buf_free(byref(bins))


class _Frame:
    """A received frame that arrays were made over in place: freed when the
    last of them is (they refer to it), or at once if none was made."""

    __slots__ = ("buf", "taken")

    def __init__(self, buf: Buf) -> None:
        self.buf = Buf(buf.data, buf.len, buf.owner)
        self.taken = False

    # The functions are bound here: at interpreter shutdown the module's
    # globals may already be None when the last array goes.
    def __del__(self, _free: Any = _buf_free, _byref: Any = byref) -> None:
        if self.buf.owner or self.buf.data:
            _free(_byref(self.buf))


def _decode_value_and_free(buf: Buf, allow_pickle: bool, tuples: bool = False) -> Any:
    """A value from the library's buffer, decoded; the buffer is freed.

    A large value's arrays are made over the frame in place where their data
    lies aligned for their dtype (the frame is then freed with the last of
    them), else copied once, from the frame straight into their numpy
    arrays (see ``_decode_split``)."""
    from . import _serialization
    from ._serialization import local_numpy, unpackb

    # The frame owns the buffer from here on, and frees it when nothing
    # refers to it any more: at the end of this function, or with the last
    # array made over it.
    frame = _Frame(buf)
    buf.owner = buf.data = None
    buf.len = 0
    data, size = frame.buf.data, frame.buf.len
    if _serialization._rs is not None and data:
        # The accelerator reads the frame where it lies; large arrays are
        # made over it (or copied once), as _decode_split does.
        big = size >= _SPLIT_VALUE and local_numpy(import_it=False) is not None
        return _serialization.unpackb_at(data, size, allow_pickle=allow_pickle, owner=frame if big else None, split_min=_SPLIT_BIN, tuples=tuples)
    if size >= _SPLIT_VALUE and local_numpy(import_it=False) is not None:
        value = _decode_split(data, size, allow_pickle, owner=frame, tuples=tuples)
        if value is not _NO_ARRAYS:
            return value
    if not data:
        return unpackb(b"", allow_pickle=allow_pickle)
    view = memoryview((ctypes.c_char * size).from_address(data)).cast("B")
    try:
        return unpackb(view, allow_pickle=allow_pickle, tuples=tuples)
    finally:
        view.release()


def _decode_borrowed(data: Any, *, on_proxy: Any = None, keep: Any = None, tuples: bool = False) -> Any:
    """Decode call arguments lent by the library for one callback: large
    arrays are made over the request frame in place where their data lies
    aligned, the frame kept alive by them (``keep(addr)`` gives an owned
    buffer over the bytes at ``addr``: srpc_reply_keep_input), else copied
    once, straight from the frame."""
    from ._serialization import local_numpy, unpackb

    view = memoryview(data)
    if view.nbytes >= _SPLIT_VALUE:
        np = local_numpy(import_it=False)
        if np is not None:
            addr = np.frombuffer(view, np.uint8).ctypes.data
            owner = None
            if keep is not None:
                kept = keep(addr)
                if kept is not None:
                    owner = _Frame(kept)
            value = _decode_split(addr, view.nbytes, False, on_proxy, owner=owner, tuples=tuples)
            if value is not _NO_ARRAYS:
                return value
    return unpackb(view, on_proxy=on_proxy, tuples=tuples)


@contextlib.contextmanager
def _borrowed(s: Slice, empty: bytes) -> Iterator[memoryview]:
    """A view of bytes the library lends for one callback (no copy), released
    after it; ``empty`` stands in when the slice is empty."""
    if not s.ptr or not s.len:
        yield memoryview(empty)
        return
    view = memoryview((ctypes.c_char * s.len).from_address(s.ptr)).cast("B")
    try:
        yield view
    finally:
        view.release()


class _Keep:
    """Keeps Python bytes alive while their pointers sit in a C struct."""

    def __init__(self) -> None:
        self.items: list = []

    def str(self, s: str) -> Str:
        return self.slice(s.encode("utf-8"), Str)

    def readonly_slice(self, b: Any) -> Slice:
        """A Slice over any buffer the library will only read, without a copy
        (ctypes cannot take the address of a read-only buffer: numpy can)."""
        if isinstance(b, bytes):
            return self.slice(b)
        mv = memoryview(b)
        if mv.nbytes == 0:
            return Slice(None, 0)
        if not mv.readonly:
            return self.slice(mv)
        from ._serialization import local_numpy

        np = local_numpy(import_it=False)
        if np is None or not mv.c_contiguous:
            return self.slice(bytes(mv))
        arr = np.frombuffer(mv, dtype=np.uint8)
        self.items.append(arr)
        return Slice(arr.ctypes.data, mv.nbytes)

    def slice(self, b: Any, cls: Any = Slice) -> Any:
        if not b:
            return cls(None, 0)
        if isinstance(b, (bytes, bytearray)):
            buf = ctypes.c_char_p(bytes(b)) if isinstance(b, bytearray) else ctypes.c_char_p(b)
            self.items.append(buf)
            return cls(ctypes.cast(buf, c_void_p), len(b))
        mv = memoryview(b).cast("B")
        arr = (ctypes.c_char * len(mv)).from_buffer_copy(mv) if mv.readonly else (ctypes.c_char * len(mv)).from_buffer(mv)
        self.items.append(arr)
        return cls(ctypes.addressof(arr), len(mv))


def _ms(seconds: float) -> int:
    """Seconds as milliseconds for the library (0 keeps its default; a
    positive time under a millisecond is still one)."""
    return max(1, round(seconds * 1000)) if seconds > 0 else 0


# No request: what a blank response's request_id and an unwritten out-id hold.
_NO_REQUEST = 2**64 - 1


def _blank_response() -> Response:
    """A response the library has not written: no request, no object, no value."""
    r = Response()
    r.kind = SRPC_RESPONSE_KIND_DONE
    r.obj = SRPC_NO_OBJECT
    r.request_id = _NO_REQUEST
    return r


def _run_signal_handlers() -> None:
    """Nothing: calling a Python function is where the interpreter runs the
    signal handlers that are due (in the main thread), raising what they raise."""


class NativeClient:
    """A connection through libsimplerpc (the ``NativeClientAPI`` of ``_native_api``)."""

    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        timeout: Optional[float] = None,
        dead_after: Optional[float] = 30.0,
        tls: bool = False,
        cafile: Optional[str] = None,
    ) -> None:
        # Finite: None is "no limit" (an infinite one cannot be given to the library).
        if timeout is not None and not 0 < timeout < math.inf:
            raise ValueError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
        if dead_after is not None and not 0 < dead_after < math.inf:
            raise ValueError(f"dead_after must be a positive number of seconds or None, not {dead_after!r}")
        keep = _Keep()
        handle = c_void_p()
        # Every extension, tuple included: this package reads and writes
        # the tuple marker (a stock server accepts none of them). The
        # timeout bounds connecting too (TCP connection, TLS and handshake).
        connect_ms = 0 if timeout is None else max(1, int(timeout * 1000))
        cfg = ClientConfig(
            keep.str(host), port, keep.str(token), SRPC_EXT_ALL,
            bool(tls or cafile), keep.str(os.fspath(cafile) if cafile else ""), connect_ms,
        )
        st = _client_connect_config(byref(cfg), byref(handle))
        if st == SRPC_STATUS_ERR_TIMEOUT:
            raise ConnectTimeoutError(_cstr(_last_message()))
        if st != SRPC_STATUS_OK:
            _raise(st)
        self._handle: Optional[int] = handle.value
        # Whether tuples travel as tuples (the server accepted `tuple`).
        self.tuples = bool(_client_extensions(self._handle) & SRPC_EXT_TUPLE)
        # A signal ends a wait so that its Python handler runs (see _resume).
        _client_set_interruptible(self._handle, True)
        if dead_after is None:
            _client_set_liveness(self._handle, 0, 0)
        else:
            ping = min(10.0, dead_after / 3)
            _client_set_liveness(self._handle, _ms(ping), _ms(dead_after))
        if timeout is not None:
            _client_set_timeout(self._handle, max(1, int(timeout * 1000)))

    @classmethod
    def from_fd(cls, fd: int, *, hello_timeout: Optional[float] = None, timeout: Optional[float] = None, max_message_size: int = 0) -> "NativeClient":
        """A client over the connected stream socket ``fd`` (taken over, closed
        with the client), whose other end a stream server serves
        (``python -m simplerpc.server --fd N``). ``hello_timeout``: seconds
        to wait for the server's hello (None: no limit)."""
        try:
            for name, value in (("timeout", timeout), ("hello_timeout", hello_timeout)):
                if value is not None and not 0 < value < math.inf:
                    raise ValueError(f"{name} must be a positive number of seconds or None, not {value!r}")
            # Every extension, tuple included, as connect() offers them.
            cfg = StreamConfig(max_message_size, 0, _ms(hello_timeout) if hello_timeout else 0, SRPC_EXT_ALL)
        except BaseException:
            os.close(fd)  # taken over in every case, as the library does
            raise
        self = cls.__new__(cls)
        self._handle = None
        handle = c_void_p()
        st = _client_connect_fd(byref(cfg), fd, byref(handle))
        if st != SRPC_STATUS_OK:
            _raise(st)
        self._handle = handle.value
        self.tuples = bool(_client_extensions(self._handle) & SRPC_EXT_TUPLE)
        _client_set_interruptible(self._handle, True)
        if timeout is not None:
            _client_set_timeout(self._handle, max(1, int(timeout * 1000)))
        return self

    def abandon(self, request: int) -> None:
        """Give request ``request`` (from :meth:`send`) up: its answer is
        dropped when it comes, an object it returns released. No I/O."""
        if self._handle:
            _client_abandon(self._handle, request)

    @property
    def extensions(self) -> int:
        """The negotiated extension bits (0 against a stock simplerpyc server)."""
        return _client_extensions(self._handle) if self._handle else 0

    def _call(self, keep: "_Keep", kind: int, obj: Optional[int], name: str, path: str, args: Any, kwargs: Any, key: Any, payload: bytes) -> Call:
        """The srpc_call; ``args``, ``kwargs`` and ``key`` are each bytes,
        or a list of buffers that make them when joined (a large array's own
        memory, written to the socket from where it lies: ``keep`` holds the
        buffers until the call returns)."""
        if not self._handle:
            raise ConnectionClosedError("the connection is closed")

        def one(b: Any) -> Slice:
            return Slice(None, 0) if isinstance(b, list) else keep.slice(b)

        call = Call(
            kind,
            SRPC_NO_OBJECT if obj is None else obj,
            keep.str(name),
            keep.str(path),
            one(args),
            one(kwargs),
            one(key),
            keep.slice(payload),
        )
        for field, value in (("args", args), ("kwargs", kwargs), ("key", key)):
            if isinstance(value, list):
                parts = (Slice * len(value))(*(keep.readonly_slice(p) for p in value))
                keep.items.append(parts)
                setattr(call, field + "_parts", ctypes.cast(parts, POINTER(Slice)))
                setattr(call, field + "_parts_len", len(value))
        return call

    def _answer(self, resp: Response, allow_pickle: Optional[bool] = None) -> Tuple[int, Any]:
        """The response's kind and object id or value: the value's msgpack
        bytes, or with ``allow_pickle`` given, the value decoded straight
        from the library's buffer (large arrays copied once)."""
        if resp.kind in (SRPC_RESPONSE_KIND_VALUE, SRPC_RESPONSE_KIND_NAMESPACE):
            if allow_pickle is None:
                return resp.kind, _take(resp.value)
            return resp.kind, _decode_value_and_free(resp.value, allow_pickle, self.tuples)
        return resp.kind, resp.obj

    def _request(self, kind: int, obj: Optional[int] = None, name: str = "", path: str = "", args: Any = b"", kwargs: Any = b"", key: Any = b"", payload: bytes = b"", allow_pickle: Optional[bool] = None) -> Tuple[int, Any]:
        if _sp is not None:
            if not self._handle:
                raise ConnectionClosedError("the connection is closed")
            resp = _blank_response()
            no_obj = SRPC_NO_OBJECT if obj is None else obj
            try:
                st = _sp.client_call(0, self._handle, ctypes.addressof(resp), kind, no_obj, name, path, args, kwargs, key, payload)
                if st == SRPC_STATUS_INTERRUPTED:
                    st = self._resume(resp)
            except BaseException:
                self._give_up(resp)
                raise
            if st != SRPC_STATUS_OK:
                _raise(st)
            return self._answer(resp, allow_pickle)
        keep = _Keep()
        call = self._call(keep, kind, obj, name, path, args, kwargs, key, payload)
        resp = _blank_response()
        try:
            st = _client_request(self._handle, byref(call), byref(resp))
            if st == SRPC_STATUS_INTERRUPTED:
                st = self._resume(resp)
        except BaseException:
            # A signal handler raised (Ctrl-C), perhaps as the call returned.
            self._give_up(resp)
            raise
        if st != SRPC_STATUS_OK:
            _raise(st)
        return self._answer(resp, allow_pickle)

    def _resume(self, resp: Response) -> int:
        """A signal interrupted the wait for request ``resp.request_id``:
        let Python run its handlers, then wait again. A handler that raises
        propagates (the caller gives the request up, see :meth:`_give_up`)."""
        request = resp.request_id
        while True:
            _run_signal_handlers()
            st = self._wait_into(request, resp)
            if st != SRPC_STATUS_INTERRUPTED:
                return st

    def _wait_into(self, request: int, resp: Response) -> int:
        """srpc_client_wait into ``resp`` (the accelerator's, or ctypes')."""
        if _sp is not None:
            st: int = _sp.client_wait(self._handle, request, ctypes.addressof(resp))
            return st
        return _client_wait(self._handle, request, byref(resp))

    def _give_up(self, resp: Response, request: Optional[int] = None) -> None:
        """The caller is gone (an exception from a signal handler, Ctrl-C's
        KeyboardInterrupt): give request ``request`` (or the one ``resp``
        names) up, so its late answer is dropped when it comes and the object
        it makes is released; an answer already written to ``resp`` is freed
        (its value) or released (its object). Nothing leaks on either side."""
        if not self._handle:
            return
        if request is None and resp.request_id != _NO_REQUEST:
            request = resp.request_id
        if request is not None:
            _client_abandon(self._handle, request)
        if resp.value.owner:
            _buf_free(byref(resp.value))
        elif resp.kind == SRPC_RESPONSE_KIND_OBJECT and resp.obj != SRPC_NO_OBJECT:
            _client_release(self._handle, resp.obj)

    # -- pipelining (the promise extension)

    @property
    def promises(self) -> bool:
        """Whether the server accepted promise pipelining (a stock simplerpyc server does not)."""
        return bool(self._handle and _client_promises(self._handle))

    @property
    def max_message_size(self) -> int:
        """The largest message this connection sends or accepts, in bytes."""
        return _client_max_message_size(self._handle) if self._handle else 0

    @property
    def round_trips(self) -> int:
        """How many times this connection waited for the server (for tests and benchmarks)."""
        return _client_round_trips(self._handle) if self._handle else 0

    def live_objects(self) -> int:
        """How many objects this connection holds on the server (a ``stats``
        request: one round trip, carrying the releases queued before it).
        Raises :class:`simplerpc.SimpleRPCError` against a server without the
        ``stats`` extension (a stock simplerpyc server), sending nothing."""
        if not self._handle:
            raise ConnectionClosedError("the connection is closed")
        if not _client_extensions(self._handle) & SRPC_EXT_STATS:
            raise SimpleRPCError(
                "this server does not report its live objects (a stock simplerpyc server has no "
                "stats request): connect to a simplerpc server to count them"
            )
        out = c_uint64(0)
        while True:
            st = _client_live_objects(self._handle, byref(out))
            if st != SRPC_STATUS_INTERRUPTED:
                break
            # A signal ended the wait (the request was given up): let Python
            # run its handlers (one that raises propagates), then ask again.
            _run_signal_handlers()
        if st != SRPC_STATUS_OK:
            _raise(st)
        return int(out.value)

    def send_pipelined(self, kind: int, obj: Optional[int] = None, name: str = "", path: str = "", args: Any = b"", kwargs: Any = b"", key: Any = b"") -> int:
        """Send without waiting; the promise of the object it will return (an id with SRPC_PROMISE_BIT)."""
        out = c_uint64(_NO_REQUEST)
        if _sp is not None:
            if not self._handle:
                raise ConnectionClosedError("the connection is closed")
            no_obj = SRPC_NO_OBJECT if obj is None else obj
            try:
                st = _sp.client_call(2, self._handle, ctypes.addressof(out), kind, no_obj, name, path, args, kwargs, key, b"")
            except BaseException:
                if out.value != _NO_REQUEST and self._handle:
                    _client_release(self._handle, out.value)
                raise
            if st != SRPC_STATUS_OK:
                _raise(st)
            return out.value
        keep = _Keep()
        call = self._call(keep, kind, obj, name, path, args, kwargs, key, b"")
        try:
            st = _client_send_pipelined(self._handle, byref(call), byref(out))
        except BaseException:
            # Raised as the call returned: the promise is nobody's; release it.
            if out.value != _NO_REQUEST and self._handle:
                _client_release(self._handle, out.value)
            raise
        if st != SRPC_STATUS_OK:
            _raise(st)
        return out.value

    def send(self, kind: int, obj: Optional[int] = None, name: str = "", path: str = "", args: Any = b"", kwargs: Any = b"", key: Any = b"", payload: bytes = b"") -> int:
        """Send and return the request id without waiting (see :meth:`wait`)."""
        out = c_uint64(_NO_REQUEST)
        if _sp is not None:
            if not self._handle:
                raise ConnectionClosedError("the connection is closed")
            no_obj = SRPC_NO_OBJECT if obj is None else obj
            try:
                st = _sp.client_call(1, self._handle, ctypes.addressof(out), kind, no_obj, name, path, args, kwargs, key, payload)
            except BaseException:
                if out.value != _NO_REQUEST and self._handle:
                    _client_abandon(self._handle, out.value)
                raise
            if st != SRPC_STATUS_OK:
                _raise(st)
            return out.value
        keep = _Keep()
        call = self._call(keep, kind, obj, name, path, args, kwargs, key, payload)
        try:
            st = _client_send(self._handle, byref(call), byref(out))
        except BaseException:
            if out.value != _NO_REQUEST and self._handle:
                _client_abandon(self._handle, out.value)
            raise
        if st != SRPC_STATUS_OK:
            _raise(st)
        return out.value

    def wait(self, request: int, allow_pickle: Optional[bool] = None) -> Tuple[int, Any]:
        """The answer of request ``request``, as :meth:`_request` gives it
        (and raising as it does). An exception from a signal handler gives
        the request up (see :meth:`_give_up`)."""
        if not self._handle:
            raise ConnectionClosedError("the connection is closed")
        resp = _blank_response()
        try:
            st = self._wait_into(request, resp)
            if st == SRPC_STATUS_INTERRUPTED:
                st = self._resume(resp)
        except BaseException:
            self._give_up(resp, request)
            raise
        if st != SRPC_STATUS_OK:
            _raise(st)
        return self._answer(resp, allow_pickle)

    def wait_value(self, request: int, allow_pickle: bool = False) -> Any:
        """The value request ``request`` (a materialize) answered, decoded with
        each large array copied once, from the frame into its numpy array."""
        return self.wait(request, allow_pickle)[1]

    def take_failure(self) -> Optional[Tuple[int, NativeRemoteError]]:
        """The oldest error of a pipelined request no wait has reported, with its request id."""
        if not self._handle:
            return None
        rid = c_uint64()
        st = _client_take_failure(self._handle, byref(rid))
        if st == SRPC_STATUS_OK:
            return None
        try:
            _raise(st)
        except NativeRemoteError as e:
            return rid.value, e
        return None  # pragma: no cover - _raise always raises

    def import_module(self, name: str) -> int:
        return self._request(SRPC_CALL_KIND_IMPORT_MODULE, name=name)[1]

    def get_builtin(self, name: str) -> int:
        return self._request(SRPC_CALL_KIND_GET_BUILTIN, name=name)[1]

    def getattr(self, obj_id: Optional[int], path: str, attr: str) -> int:
        return self._request(SRPC_CALL_KIND_GET_ATTR, obj_id, name=attr, path=path)[1]

    def call(self, obj_id: Optional[int], path: str, args: Any, kwargs: Any) -> int:
        return self._request(SRPC_CALL_KIND_CALL, obj_id, path=path, args=args, kwargs=kwargs)[1]

    def getitem(self, obj_id: int, key: Any) -> int:
        return self._request(SRPC_CALL_KIND_GET_ITEM, obj_id, key=key)[1]

    def materialize(self, obj_id: int) -> bytes:
        return self._request(SRPC_CALL_KIND_MATERIALIZE, obj_id)[1]

    def materialize_value(self, obj_id: int, allow_pickle: bool = False) -> Any:
        """The object's value, decoded straight from the library's buffer
        (large arrays copied once, from the frame into their numpy arrays)."""
        return self._request(SRPC_CALL_KIND_MATERIALIZE, obj_id, allow_pickle=allow_pickle)[1]

    def eval(self, expr: str) -> int:
        return self._request(SRPC_CALL_KIND_EVAL, name=expr)[1]

    def execute(self, code: str) -> None:
        self._request(SRPC_CALL_KIND_EXECUTE, name=code)

    def teleport(self, func_bytes: bytes, name: str) -> int:
        return self._request(SRPC_CALL_KIND_TELEPORT, name=name, payload=func_bytes)[1]

    def namespace(self) -> bytes:
        return self._request(SRPC_CALL_KIND_GET_NAMESPACE)[1]

    def release(self, obj_id: int) -> None:
        """Queue a release; it rides on the next request. Never blocks, never raises."""
        h = self._handle
        if h:
            _client_release(h, obj_id)

    def close(self) -> None:
        h, self._handle = self._handle, None
        if h:
            _client_free(h)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


# ---------------------------------------------------------------- logging

_LEVELS = {SRPC_LOG_LEVEL_ERROR: 40, SRPC_LOG_LEVEL_WARN: 30, SRPC_LOG_LEVEL_INFO: 20, SRPC_LOG_LEVEL_DEBUG: 10, SRPC_LOG_LEVEL_TRACE: 5}


def _forward_log(_userdata: Any, level: int, target: Str, message: Str) -> None:
    try:
        import logging

        text = ctypes.string_at(message.ptr, message.len).decode("utf-8", "replace")
        logging.getLogger("simplerpc").log(_LEVELS.get(level, 20), text)
    except BaseException:
        pass


_log_callback = LOG_FN(_forward_log)


def forward_logs(enabled: bool = True) -> None:
    """Send the library's log records to the ``simplerpc`` logger (or stop)."""
    if enabled:
        _set_log_callback(_log_callback, None, SRPC_LOG_LEVEL_DEBUG)
    else:
        _set_log_callback(LOG_FN(0), None, SRPC_LOG_LEVEL_OFF)


# ---------------------------------------------------------------- server


class NativeServer:
    """The Rust WebSocket server running a Python executor.

    ``make_executor()`` is called once per client. The executor's methods
    follow ``_executor.PythonExecutor``; ``describe_exception(exc)`` turns an
    exception into ``(type, message, traceback, payload)``.
    """

    def __init__(
        self,
        host: str,
        port: Optional[int],
        token: Optional[str],
        make_executor: Callable[[], Any],
        describe_exception: Callable[[BaseException], Tuple[str, str, str, Optional[bytes]]],
        *,
        max_objects: int = 0,
        max_message_size: int = 0,
        max_connections: int = 0,
        stack_size: int = 0,
        handshake_timeout: float = 0.0,
        ping_interval: float = 0.0,
        dead_after: Optional[float] = 0.0,
        certfile: Optional[str] = None,
        keyfile: Optional[str] = None,
    ) -> None:
        """The limits are the server's (``srpc_server_config``); 0 keeps
        each default; times are in seconds; ``dead_after=None`` never gives
        up on a silent client. With ``certfile`` and ``keyfile`` (PEM paths)
        the server speaks TLS only (``wss://``)."""
        self._make = make_executor
        self._describe = describe_exception
        self._sessions: Dict[int, Any] = {}
        self._gil_states: Dict[int, Tuple[int, int]] = {}
        self._next = 1
        self._lock = threading.Lock()
        # What answers lent to the library keep alive, by token, until it
        # calls back (once the answer is written).
        self._lent: Dict[int, Any] = {}
        self._lent_ids = itertools.count(1)
        self._lent_release = LENT_RELEASE_FN(self._on_lent_release)
        # The CFUNCTYPE objects live as long as the server: Rust holds them.
        self._callbacks = (
            OPEN_FN(self._on_open),
            CLOSE_FN(self._on_close),
            CALL_FN(self._on_call),
            RELEASE_FN(self._on_release),
            FREE_FN(0),
        )
        # With the accelerator, its executor table (Rust callbacks) instead.
        self._dispatcher = _sp.Dispatcher(make_executor, describe_exception, _large_decoder, _log_refused) if _sp is not None else None
        self._handle: Optional[int] = None
        if port is None:  # a stream server: serve_fd() runs it
            return
        ex = self._executor_table()
        keep = _Keep()
        cfg = ServerConfig(
            keep.str(host),
            port,
            keep.str(token or ""),
            max_message_size,
            max_objects,
            max_connections,
            stack_size,
            # A positive timeout under a millisecond is still one.
            max(1, round(handshake_timeout * 1000)) if handshake_timeout > 0 else 0,
            _ms(ping_interval),
            2**64 - 1 if dead_after is None else _ms(dead_after),
        )
        # Every extension, tuple included: the Python executor reads and
        # writes the tuple marker on connections that negotiated it.
        cfg.extensions = SRPC_EXT_ALL
        cfg.certfile = keep.str(os.fspath(certfile) if certfile else "")
        cfg.keyfile = keep.str(os.fspath(keyfile) if keyfile else "")
        self.tls = bool(certfile)
        handle = c_void_p()
        st = _server_start(byref(cfg), byref(ex), byref(handle))
        if st == SRPC_STATUS_ERR_IO:  # cannot listen there: an OS error, not a connection's
            raise OSError(_cstr(_last_message()))
        if st != SRPC_STATUS_OK:
            _raise(st)
        self._handle = handle.value
        self.port = _server_port(self._handle)
        self.token = _cstr(_server_token(self._handle))
        # The server's threads call into Python: they must be stopped before
        # the interpreter shuts down, or a late callback crashes the process.
        atexit.register(self.close)

    @classmethod
    def serve_fd(
        cls,
        fd: int,
        make_executor: Callable[[], Any],
        describe_exception: Callable[[BaseException], Tuple[str, str, str, Optional[bytes]]],
        *,
        max_objects: int = 0,
        max_message_size: int = 0,
    ) -> None:
        """Serve one client over the connected stream socket ``fd`` (taken
        over and closed) on this thread until it closes its end; the calls
        run on this thread. Raises what ended it otherwise (a broken stream,
        a peer that is no simplerpc client)."""
        server = cls("", None, None, make_executor, describe_exception)  # type: ignore[arg-type]
        ex = server._executor_table()
        # Every extension, tuple included, as the WebSocket server accepts them.
        cfg = StreamConfig(max_message_size, max_objects, 0, SRPC_EXT_ALL)
        st = _server_serve_fd(byref(cfg), byref(ex), fd)
        if st != SRPC_STATUS_OK:
            _raise(st)

    def _executor_table(self) -> Executor:
        """The srpc_executor: the accelerator's, or the ctypes callbacks."""
        if self._dispatcher is not None:
            return Executor.from_address(self._dispatcher.address())
        return Executor(None, *self._callbacks)

    def stop(self) -> None:
        """Stop accepting, end every session; returns once all have closed."""
        h = self._handle
        if h:
            _server_stop(h)

    def close(self) -> None:
        """Stop the server (if running) and free it; safe to call twice."""
        h, self._handle = self._handle, None
        if h:
            _server_stop(h)
            _server_free(h)
            atexit.unregister(self.close)

    # The callbacks run on the server's threads, with the GIL taken by ctypes.
    # Each catches every exception: nothing may unwind into Rust.

    def _on_open(self, _userdata: Any, session_out: Any) -> int:
        try:
            ex = self._make()
            with self._lock:
                sid = self._next
                self._next += 1
                self._sessions[sid] = ex
                # A session's callbacks all run on its connection's thread,
                # a thread Python does not know: each callback would create
                # and destroy a Python thread state. One more (nested)
                # PyGILState_Ensure here keeps this thread's state alive
                # until _on_close releases it, so a callback only takes the GIL.
                self._gil_states[sid] = (threading.get_ident(), _gil_ensure())
            session_out[0] = sid
            return SRPC_STATUS_OK
        except BaseException:
            # The executor could not be made: refuse this client's session
            # (every call of it is answered with an error); say why in the log.
            _log_refused(None)
            return SRPC_STATUS_ERR_STATE

    def _on_close(self, _userdata: Any, session: Any) -> None:
        with self._lock:
            self._sessions.pop(session or 0, None)
            state = self._gil_states.pop(session or 0, None)
        # Released on the thread that took it (a host that closed a session
        # on another thread would leave one thread state behind, not crash).
        if state is not None and state[0] == threading.get_ident():
            _gil_release(state[1])

    def _on_release(self, _userdata: Any, session: Any, handle: int) -> None:
        ex = self._sessions.get(session or 0)
        if ex is not None:
            try:
                ex.release(handle)
            except BaseException:
                pass

    def _on_lent_release(self, ctx: Any) -> None:
        # From any thread, once the answer that lent the memory is written.
        self._lent.pop(ctx or 0, None)

    def _on_call(self, _userdata: Any, session: Any, call_p: Any, reply: Any) -> int:
        try:
            ex = self._sessions[session or 0]
            if getattr(ex, "tuples", False) is None:  # the connection's extensions never change: ask once
                ex.tuples = bool(_reply_extensions(reply) & SRPC_EXT_TUPLE)
            c = call_p.contents
            kind = c.kind
            obj = None if c.obj == SRPC_NO_OBJECT else c.obj
            name = ctypes.string_at(c.name.ptr, c.name.len).decode() if c.name.len else ""
            path = ctypes.string_at(c.path.ptr, c.path.len).decode() if c.path.len else ""
            if kind == SRPC_CALL_KIND_IMPORT_MODULE:
                h = ex.import_module(name)
            elif kind == SRPC_CALL_KIND_GET_BUILTIN:
                h = ex.get_builtin(name)
            elif kind == SRPC_CALL_KIND_GET_ATTR:
                h = ex.getattr(obj, path, name)
            elif kind == SRPC_CALL_KIND_CALL:
                # The request frame's own bytes, borrowed for this callback;
                # refs[i] is the handle of the i-th proxy marker in them.
                refs = c.refs[: c.refs_len] if c.refs_len else ()
                decode = _large_decoder(reply, c.args.ptr, c.kwargs.ptr, bool(getattr(ex, "tuples", False)))
                with _borrowed(c.args, b"\x90") as args, _borrowed(c.kwargs, b"\x80") as kwargs:
                    h = ex.call(obj, path, args, kwargs, refs, decode)
            elif kind == SRPC_CALL_KIND_GET_ITEM:
                refs = c.refs[: c.refs_len] if c.refs_len else ()
                with _borrowed(c.key, b"\xc0") as key:
                    h = ex.getitem(obj, key, refs)
            elif kind == SRPC_CALL_KIND_EVAL:
                h = ex.eval(name)
            elif kind == SRPC_CALL_KIND_TELEPORT:
                h = ex.teleport(ctypes.string_at(c.payload.ptr, c.payload.len), name)
            elif kind == SRPC_CALL_KIND_EXECUTE:
                ex.execute(name)
                return SRPC_STATUS_OK
            elif kind in (SRPC_CALL_KIND_MATERIALIZE, SRPC_CALL_KIND_GET_NAMESPACE):
                data = ex.materialize(obj) if kind == SRPC_CALL_KIND_MATERIALIZE else ex.namespace()
                if isinstance(data, list):
                    # Parts (an array's own memory among them). With one
                    # client, a large one is lent: the library writes it to
                    # the socket where it lies, after this callback, and
                    # calls back when done (the array is kept alive till
                    # then). With several, another client's call could
                    # change the array while it is written, so every part
                    # is copied now, into the response frame: a snapshot.
                    keep = _Keep()
                    parts = (Slice * len(data))(*(keep.readonly_slice(p) for p in data))
                    if len(self._sessions) == 1 and any(p.len >= _LEND_MIN for p in parts):
                        token = next(self._lent_ids)
                        self._lent[token] = keep
                        return _reply_value_lent(reply, parts, len(data), self._lent_release, token)
                    return _reply_value_parts(reply, parts, len(data))
                keep = _Keep()
                s = keep.slice(data)
                return _reply_value(reply, s.ptr, s.len)
            else:
                raise NotImplementedError(f"unknown call kind {kind}")
            return _reply_handle(reply, h)
        except BaseException as exc:  # noqa: B902 - nothing may unwind into Rust
            try:
                etype, msg, tb, payload = self._describe(exc)
            except BaseException:
                etype, msg, tb, payload = "builtins.Exception", repr(exc), "", None
            keep = _Keep()
            return _reply_error(reply, keep.str(etype), keep.str(msg), keep.str(tb), keep.slice(payload or b""))


def _large_decoder(reply: Any, args_addr: Optional[int], kwargs_addr: Optional[int], tuples: bool) -> Callable[..., Any]:
    """The ``decode`` a server passes to its executor's ``call`` for the
    arguments lent at ``args_addr`` and ``kwargs_addr`` by the call being
    answered with ``reply`` (an ``srpc_reply*``): large arrays made over the
    request frame in place, the frame kept by them (srpc_reply_keep_input)."""
    inputs = {args_addr: SRPC_INPUT_ARGS, kwargs_addr: SRPC_INPUT_KWARGS}

    def keep(addr: int) -> Optional[Buf]:
        which = inputs.get(addr)
        kept = Buf()
        if which is None or _reply_keep_input(reply, which, byref(kept)) != SRPC_STATUS_OK:
            return None
        if kept.data != addr:  # not the bytes being decoded: let them go
            _buf_free(byref(kept))
            return None
        return kept

    def decode(data: Any, *, on_proxy: Any = None) -> Any:
        return _decode_borrowed(data, on_proxy=on_proxy, keep=keep, tuples=tuples)

    return decode


def _log_refused(exc: Optional[BaseException]) -> None:
    """Log that the executor for a new client could not be made (``exc``,
    or the exception being handled)."""
    try:
        import logging

        logging.getLogger("simplerpc").error(
            "the executor for a new client could not be created", exc_info=exc if exc is not None else True
        )
    except BaseException:
        pass
