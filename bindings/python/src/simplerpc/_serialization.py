"""Protocol values: msgpack with numpy support, in the msgpack-numpy wire format.

Byte-compatible with the reference (``simplerpyc``, which uses msgpack-numpy),
implemented here without msgpack-numpy and with these differences, all on
inputs the reference cannot handle or should not:

* object arrays (dtype kind ``'O'``) are refused when encoding, and decoded
  (by unpickling) only with ``allow_pickle=True``;
* C-contiguous datetime/timedelta arrays and numpy datetime/timedelta scalars
  encode (the reference fails on them);
* a map key that is an array decodes to a tuple (the reference fails:
  unhashable list), so ``{(1, 2): x}`` round-trips;
* structured dtypes with padding decode to the same layout and re-encode to
  the same descr;
* decoded arrays are writable and own their data (one copy out of the frame).

With ``tuples=True`` (the connection negotiated the ``tuple`` extension,
never with a stock peer) tuples travel as the marker map
``{"__tuple__": [items...]}`` and decode back to tuples, at any depth.

numpy is optional: it is never imported to encode (a numpy object can only
exist if numpy is already imported), and imported on decode only when an
array or numpy scalar arrives.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import types
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from msgpack import ExtType, Timestamp

try:  # The implementation classes, not the ``msgpack`` module attributes, which
    # msgpack_numpy.patch() (run by simplerpyc on import) replaces process-wide.
    from msgpack._cmsgpack import Packer as _Packer
    from msgpack._cmsgpack import unpackb as _unpackb
except ImportError:  # pragma: no cover - pure-Python msgpack
    from msgpack.fallback import Packer as _Packer
    from msgpack.fallback import unpackb as _unpackb

__all__ = ["packb", "unpackb"]


def _load_codec() -> Any:
    """The accelerator (``simplerpc._speedups``, built on request: see
    ``_native._load_speedups``), whose ``packb_parts`` and ``unpackb`` do the
    work of this module's for plain values and ask this module for the rest;
    None when it is absent or ``SIMPLERPC_NO_SPEEDUPS`` is set (not ``0``)."""
    if os.environ.get("SIMPLERPC_NO_SPEEDUPS", "0") not in ("", "0"):
        return None
    try:
        from . import _speedups  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _speedups


_rs = _load_codec()

_SLICE_KEYS = frozenset(("__slice__", "start", "stop", "step"))
_Buffer = Union[bytes, bytearray, memoryview]
# Array data at least this large is not copied into msgpack's buffer: packb
# packs a placeholder and splices the array's memory into the result.
_SPLICE_MIN = 1 << 16
_PLACEHOLDER_CODE = 42


# An object id with this bit names a promise (the promise extension): the
# object a request still in flight will return. Servers never allocate such ids.
_PROMISE_BIT = 1 << 63

# The tuple extension's marker: {"__tuple__": [items...]}.
_TUPLE_KEY = "__tuple__"
# With strict_types the packer sends every instance of a subclass of these
# to ``default`` (np.float64 is a float, IntEnum an int, OrderedDict a
# dict): packed as the base type, as without strict_types.
_PLAIN_BASES = (bool, int, float, str, bytes, bytearray, dict, list)


def packb(obj: Any, *, proxy_owner: Any = None, tuples: bool = False) -> bytes:
    """Encode ``obj`` as one msgpack value in the protocol's format
    (:func:`packb_parts` joined into one ``bytes``).

    Tuples travel as arrays (with ``tuples``, as the ``tuple`` extension's
    marker maps), bytes as bin, str as str. numpy arrays and scalars,
    Python complex numbers, slices and proxies (objects with an
    ``_rpc_obj_id`` attribute) use the protocol's marker maps.

    Args:
        obj: the value.
        proxy_owner: if given, every proxy in ``obj`` must belong to this
            connection (its ``_rpc_connection``); a proxy of another
            connection raises ValueError.
        tuples: write tuples (and their subclasses, named tuples) as
            ``{"__tuple__": [items...]}``; only for a connection that
            negotiated the ``tuple`` extension.

    Raises:
        TypeError: a value of a type the protocol cannot carry (including
            numpy object arrays, which would need pickle).
        ValueError: a proxy of another connection (see ``proxy_owner``).
    """

    parts = packb_parts(obj, proxy_owner=proxy_owner, tuples=tuples)
    return parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)


def packb_parts(obj: Any, *, proxy_owner: Any = None, tuples: bool = False) -> List[Any]:
    """:func:`packb` as a list of buffers that make the msgpack when joined:
    large arrays are their own memory (not copied), so a caller that can
    take the parts as they are (``srpc_reply_value_parts``) copies each once."""
    if _rs is not None:
        parts: List[Any] = _rs.packb_parts(obj, tuples, lambda o: _special(o, proxy_owner, tuples))
        return parts
    spliced: List[Tuple[bytes, Any]] = []

    if tuples:
        # strict_types: tuples are not packed as arrays but given to default.
        def default(o: Any) -> Any:
            if isinstance(o, tuple):
                return {_TUPLE_KEY: list(o)}
            if isinstance(o, _PLAIN_BASES):
                return _plain_base(o)
            return _encode_special(o, proxy_owner, spliced)

        packer = _Packer(default=default, use_bin_type=True, strict_types=True)
    else:

        def default(o: Any) -> Any:
            return _encode_special(o, proxy_owner, spliced)

        packer = _Packer(default=default, use_bin_type=True)
    packed: bytes = packer.pack(obj)
    if not spliced:
        return [packed]
    # Each placeholder is a fixext16 with a random token; they occur in the
    # output in the order default() made them.
    view, pieces, start = memoryview(packed), [], 0
    for token, data in spliced:
        marker = bytes((0xD8, _PLACEHOLDER_CODE)) + token
        at = packed.index(marker, start)
        pieces += [view[start:at], b"\xc6" + len(data).to_bytes(4, "big"), data]
        start = at + len(marker)
    pieces.append(view[start:])
    return pieces


def unpackb(data: _Buffer, *, allow_pickle: bool = False, on_proxy: Optional[Callable[[Dict[str, Any]], Any]] = None, tuples: bool = False) -> Any:
    """Decode one msgpack value in the protocol's format.

    Marker maps come back as numpy arrays (writable, C-ordered, dtype and
    byte order as sent, shape preserved), numpy scalars, complex numbers and
    slices. Proxy reference maps stay dicts unless ``on_proxy`` is given.
    Arrays decode to lists.

    Args:
        data: the encoded value (bytes, bytearray or memoryview).
        allow_pickle: decode object arrays (kind ``b"O"``) by unpickling
            them. Unpickling runs code chosen by whoever produced ``data``:
            enable only for a trusted peer.
        on_proxy: called with each reference marker map
            (``{"__rpc_proxy__": True, "obj_id": N}`` or a promise
            ``{"__rpc_promise__": n}``, recognised exactly as the core
            recognises one), in the order the markers appear in ``data``;
            what it returns replaces the marker.
        tuples: decode ``{"__tuple__": [items...]}`` (exactly that one
            entry) to a tuple; only for a connection that negotiated the
            ``tuple`` extension (from another peer it is just a dict).

    Raises:
        ValueError: malformed data, or an object array without ``allow_pickle``.
        ImportError: an array or numpy scalar arrived and numpy is not installed.
    """

    def hook(pairs: List[Tuple[Any, Any]]) -> Any:
        return _decode_map(pairs, allow_pickle, on_proxy, tuples)

    if _rs is not None:
        return _rs.unpackb(data, hook, _ext_hook, tuples)
    return _unpackb(data, raw=False, strict_map_key=False, object_pairs_hook=hook)


def _ext_hook(code: int, data: bytes) -> Any:
    """An ext type as msgpack decodes it (the accelerator asks)."""
    return Timestamp.from_bytes(data) if code == -1 else ExtType(code, data)


def unpackb_at(addr: int, size: int, *, allow_pickle: bool = False, owner: Any = None, split_min: int = 0, tuples: bool = False) -> Any:
    """With the accelerator only: :func:`unpackb` of the ``size`` bytes at
    ``addr`` (alive during the call). Given ``owner`` (see :class:`_Payload`),
    an array whose data (``split_min`` bytes or more) lies aligned there is
    made over it in place, else copied once into its array."""

    def hook(pairs: List[Tuple[Any, Any]]) -> Any:
        return _decode_map(pairs, allow_pickle, None, tuples)

    def payload(at: int, n: int) -> _Payload:
        return _Payload(at, n, owner)

    if owner is None:
        return _rs.unpackb(None, hook, _ext_hook, tuples, addr, size)
    return _rs.unpackb(None, hook, _ext_hook, tuples, addr, size, payload, split_min)


# The ext type the library writes in place of a large bin it took out of a
# value (srpc_value_split): an array's data, left in the frame (_Payload)
# and copied once, straight into the array.
_SPLIT_BIN_EXT = 43


class _Payload:
    """An array's data still in the received frame: its address and length.
    Valid only while the frame is (during :func:`unpackb_split`), unless
    ``owner`` is given: an object that keeps the frame alive while something
    refers to it, so that an array may be made over the data in place."""

    __slots__ = ("addr", "size", "owner")

    def __init__(self, addr: int, size: int, owner: Any = None) -> None:
        self.addr = addr
        self.size = size
        self.owner = owner

    def tobytes(self) -> bytes:
        import ctypes

        return ctypes.string_at(self.addr, self.size)


def _plain(v: Any) -> Any:
    """A payload that is not an array's data after all: bytes, as usual."""
    return v.tobytes() if isinstance(v, _Payload) else v


def unpackb_split(skeleton: _Buffer, payloads: List[Tuple[int, int]], *, allow_pickle: bool = False, on_proxy: Optional[Callable[[Dict[str, Any]], Any]] = None, owner: Any = None, tuples: bool = False) -> Any:
    """Decode a value whose arrays' data the library took out
    (``srpc_value_split``): ``payloads[i]`` is the (address, length) of the
    i-th, in a frame that lives until this returns. Each array is made with
    ``np.empty`` and filled from the frame: one copy, and it owns its data.
    With ``owner`` (see :class:`_Payload`), an array whose data lies aligned
    in the frame is made over it in place instead: no copy at all."""

    def ext_hook(code: int, data: bytes) -> Any:
        if code == _SPLIT_BIN_EXT and len(data) == 4:
            return _Payload(*payloads[int.from_bytes(data, "big")], owner)
        return ExtType(code, data)

    def hook(pairs: List[Tuple[Any, Any]]) -> Any:
        out = _decode_map(pairs, allow_pickle, on_proxy, tuples)
        if isinstance(out, tuple):  # the tuple extension's marker
            return tuple(_plain(v) for v in out)
        if isinstance(out, dict):  # not an array after all: its data is bytes
            return {k: _plain(v) for k, v in out.items()}
        return out

    value = _unpackb(skeleton, raw=False, strict_map_key=False, object_pairs_hook=hook, ext_hook=ext_hook)
    return _plain(value)


# ----------------------------------------------------------------- encoding


def _plain_base(o: Any) -> Any:
    """An instance of a subclass of a type msgpack packs natively, as that
    type (what the packer does without strict_types)."""
    if isinstance(o, bool):
        return bool(o)
    if isinstance(o, int):
        return int(o)
    if isinstance(o, float):
        return float(o)
    if isinstance(o, str):
        return str(o)
    if isinstance(o, (bytes, bytearray)):
        return bytes(o)
    if isinstance(o, dict):
        return dict(o)
    return list(o)


def _special(o: Any, proxy_owner: Any, tuples: bool) -> Tuple[str, Any, Any]:
    """What the accelerator's encoder does with a value that is not plain:
    ``("raw", msgpack, None)``, ``("value", v, None)`` (pack v instead) or
    ``("splice", marker, data)`` (an array's marker map whose ``data``,
    None here, is the buffer ``data``, spliced in as it is). The same rules
    as :func:`packb_parts`'s ``default`` and msgpack's own."""
    if isinstance(o, int) and not isinstance(o, bool) and type(o) is int:
        if tuples:  # strict_types: msgpack's own error for it
            raise OverflowError("Integer value out of range")
        return ("value", _encode_special(o, proxy_owner, []), None)
    # What msgpack packs itself before it asks default (strict_types: only
    # the exact ExtType and Timestamp).
    if isinstance(o, memoryview) or (type(o) in (ExtType, Timestamp) if tuples else isinstance(o, (ExtType, Timestamp))):
        return ("raw", _Packer(use_bin_type=True, strict_types=tuples).pack(o), None)
    if tuples:
        if isinstance(o, tuple):
            return ("value", {_TUPLE_KEY: list(o)}, None)
        if isinstance(o, _PLAIN_BASES):
            return ("value", _plain_base(o), None)
    if not tuples and isinstance(o, tuple):  # a tuple subclass, packed as an array
        return ("value", list(o), None)
    np = local_numpy(import_it=False)
    if np is not None and isinstance(o, np.ndarray):
        spliced: List[Tuple[bytes, Any]] = []
        marker = _encode_array(np, o, spliced)
        if spliced:
            marker[b"data"] = None
            return ("splice", marker, spliced[0][1])
        return ("value", marker, None)
    return ("value", _encode_special(o, proxy_owner, []), None)


def _encode_special(obj: Any, proxy_owner: Any, spliced: List[Tuple[bytes, Any]]) -> Any:
    np = local_numpy(import_it=False)
    if np is not None:
        if isinstance(obj, np.ndarray):
            return _encode_array(np, obj, spliced)
        if isinstance(obj, (np.bool_, np.number, np.datetime64, np.timedelta64)):
            # np.float64 never gets here: it is a float, packed natively.
            return {b"nd": False, b"type": obj.dtype.str, b"data": obj.tobytes()}
    if isinstance(obj, complex):
        return {b"complex": True, b"data": repr(obj)}
    if isinstance(obj, slice):
        return {"__slice__": True, "start": obj.start, "stop": obj.stop, "step": obj.step}
    obj_id = getattr(obj, "_rpc_obj_id", None)
    if obj_id is not None:
        if proxy_owner is not None and getattr(obj, "_rpc_connection", None) is not proxy_owner:
            raise ValueError(f"{obj!r} belongs to another connection and cannot be sent on this one")
        if obj_id >= _PROMISE_BIT:  # a promise: the result of a request still in flight
            return {"__rpc_promise__": obj_id & ~_PROMISE_BIT}
        return {"__rpc_proxy__": True, "obj_id": obj_id}
    error = TypeError(f"can not serialize {type(obj).__qualname__!r} object")
    error.unserializable = obj  # type: ignore[attr-defined] # for _messages.no_wire_form()
    try:
        raise error
    finally:
        # A local naming the exception whose traceback holds this frame is a
        # cycle: it kept the packer's frames, and the proxies and arrays
        # being sent, alive until the cyclic GC ran.
        del error


def _encode_array(np: Any, arr: Any, spliced: List[Tuple[bytes, Any]]) -> Dict[bytes, Any]:
    dtype = arr.dtype
    if dtype.hasobject:
        raise TypeError(
            f"can not serialize a numpy array of dtype {dtype} (it holds Python objects, "
            "which would have to be pickled); convert it to a list or to a non-object dtype"
        )
    if dtype.kind == "V":
        # Lists, not the descr's tuples: the reference sends arrays here, also
        # on a connection where tuples travel as tuples.
        kind, type_ = b"V", _lists(dtype.descr)
    else:
        kind, type_ = b"", dtype.str
    if arr.nbytes == 0:
        data: Any = b""
    elif arr.flags.c_contiguous:
        data = memoryview(arr.view(np.ndarray).reshape(-1).view(np.uint8))  # no copy
    else:
        data = arr.tobytes()  # C order
    if len(data) >= _SPLICE_MIN:
        if len(data) >= 1 << 32:
            raise ValueError(f"numpy array of {len(data)} bytes: msgpack bin is limited to 4 GiB")
        token = os.urandom(16)
        spliced.append((token, data))
        data = ExtType(_PLACEHOLDER_CODE, token)
    return {b"nd": True, b"type": type_, b"kind": kind, b"shape": list(arr.shape), b"data": data}


def _lists(descr: Any) -> Any:
    if isinstance(descr, (list, tuple)):
        return [_lists(d) for d in descr]
    return descr


# ----------------------------------------------------------------- decoding


def _is_proxy_marker(obj: Dict[Any, Any]) -> bool:
    """A reference, as the core recognises one: ``{"__rpc_proxy__": True, "obj_id": N}``
    (in either key order) or a promise ``{"__rpc_promise__": n}``, with N and n
    non-negative ints below 2**63."""
    if len(obj) == 1:
        n = obj.get("__rpc_promise__")
        return type(n) is int and 0 <= n < _PROMISE_BIT
    obj_id = obj.get("obj_id")
    return len(obj) == 2 and obj.get("__rpc_proxy__") is True and type(obj_id) is int and 0 <= obj_id < _PROMISE_BIT


def _decode_map(pairs: List[Tuple[Any, Any]], allow_pickle: bool, on_proxy: Optional[Callable[[Dict[str, Any]], Any]] = None, tuples: bool = False) -> Any:
    if tuples and len(pairs) == 1:
        key, items = pairs[0]
        if type(key) is str and key == _TUPLE_KEY and type(items) is list:
            return tuple(items)
    try:
        obj = dict(pairs)
    except TypeError:  # an array as a key: make it a tuple
        obj = {_hashable(k): v for k, v in pairs}
    if b"nd" in obj:
        nd = obj[b"nd"]
        if nd is True and b"type" in obj and b"shape" in obj and b"data" in obj:
            return _decode_array(obj, allow_pickle)
        if nd is False and b"type" in obj and b"data" in obj:
            return _decode_scalar(obj)
    elif obj.get(b"complex") is True and b"data" in obj:
        text = obj[b"data"]
        return complex(text.decode() if isinstance(text, bytes) else text)
    elif obj.get("__slice__") is True and obj.keys() <= _SLICE_KEYS:
        return slice(obj.get("start"), obj.get("stop"), obj.get("step"))
    elif on_proxy is not None and _is_proxy_marker(obj):
        # Markers hold no maps, so this hook meets them in the order they
        # appear in the bytes (inner maps complete before outer ones).
        return on_proxy(obj)
    return obj


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    return key


_imports_lock = threading.RLock()


def _is_standin(mod: Any) -> bool:
    # A proxy that patch_module (ours, or the reference's) put in sys.modules.
    return not isinstance(mod, types.ModuleType) and type(mod).__name__ == "RPCProxy"


@contextlib.contextmanager
def local_imports() -> Iterator[None]:
    """Hide the remote modules ``patch_module`` put in ``sys.modules`` for the block.

    simplerpc imports some libraries of this process lazily (numpy, dill,
    pickle), and they import others (``import os``, ``import logging``):
    while ``os`` is patched, ``os`` would be the *server's*. In the block
    every patched-in proxy is lifted from ``sys.modules``; afterwards the
    proxies are put back. Other threads importing meanwhile see the local
    modules too.
    """
    with _imports_lock:
        standins = {name: mod for name, mod in list(sys.modules.items()) if _is_standin(mod)}
        for name in standins:
            del sys.modules[name]
        try:
            yield
        finally:
            sys.modules.update(standins)


_local_numpy: Any = None


def local_numpy(*, import_it: bool) -> Any:
    """This process's own numpy module, never a stand-in from ``patch_module``.

    ``simplerpc.patch_module(conn, "numpy")`` puts a proxy of the *remote*
    numpy in ``sys.modules["numpy"]``, so ``sys.modules`` and ``import numpy``
    cannot be trusted to give the local module: encoding and decoding use
    this instead. The module is remembered once seen (``patch_module`` makes
    sure it is seen before it patches). Returns None when numpy is not
    imported and ``import_it`` is false, or when it is not installed.
    """
    global _local_numpy
    np = _local_numpy
    if np is not None:
        return np
    current = sys.modules.get("numpy")
    if isinstance(current, types.ModuleType):
        if getattr(getattr(current, "__spec__", None), "_initializing", False):
            # Another thread is importing it right now: wait for that import
            # (the import system's module lock) rather than use a module
            # half made (numpy.ndarray missing).
            import importlib

            current = importlib.import_module("numpy")
            if not isinstance(current, types.ModuleType):  # pragma: no cover
                return None
        _local_numpy = current
        return current
    if current is None and not import_it:
        return None  # numpy was never imported: no numpy object can exist
    if current is not None and not _is_standin(current):
        return None  # something we do not know in sys.modules["numpy"]: leave it alone
    # Absent, or hidden by a proxy we did not see before: import the real one.
    with local_imports():
        if _local_numpy is None:
            try:
                import numpy
            except ImportError:
                return None
            _local_numpy = numpy
    return _local_numpy


def _numpy() -> Any:
    np = local_numpy(import_it=True)
    if np is None:  # pragma: no cover - depends on the environment
        raise ImportError(
            "a numpy array or scalar arrived but numpy is not installed in this Python: "
            "pip install numpy here, or convert the value on the server (materialize(p.tolist()))"
        )
    return np


def _decode_array(obj: Dict[Any, Any], allow_pickle: bool) -> Any:
    data = obj[b"data"]
    payload = data if isinstance(data, _Payload) else None
    if payload is not None:
        if obj.get(b"kind") == b"O":
            data = payload.tobytes()
    elif not isinstance(data, bytes):
        raise ValueError("malformed numpy array: data is not bin")
    if obj.get(b"kind") == b"O":
        if not allow_pickle:
            raise ValueError(
                "refusing to decode a numpy object array: it is a pickle, and unpickling runs "
                "code chosen by the sender (pass allow_pickle=True to trust this peer)"
            )
        with local_imports():  # unpickling imports modules: the local ones
            import pickle

            return pickle.loads(data)
    np = _numpy()
    dtype = _dtype(np, obj[b"type"])
    shape = obj[b"shape"]
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise ValueError(f"malformed numpy array: shape {shape!r}")
    count = 1
    for d in shape:
        count *= d
    if (payload.size if payload is not None else len(data)) != count * dtype.itemsize:
        raise ValueError(
            f"malformed numpy array: {len(data)} data bytes for shape {tuple(shape)} of {dtype}"
        )
    if count == 0 or dtype.itemsize == 0:
        return np.zeros(shape, dtype)
    import ctypes

    if payload is not None and payload.owner is not None and payload.addr % dtype.alignment == 0:
        # In place: the array keeps the frame alive (through the ctypes
        # array it is made over), and the frame is freed with the last array.
        mem = (ctypes.c_char * payload.size).from_address(payload.addr)
        mem._simplerpc_frame = payload.owner  # type: ignore[attr-defined]
        payload.owner.taken = True
        return np.frombuffer(mem, dtype).reshape(shape)
    arr = np.empty(shape, dtype)
    if payload is not None:
        # Straight from the frame into the array: the one copy.
        ctypes.memmove(arr.ctypes.data, payload.addr, payload.size)
        return arr
    # Copy the bytes as they are (a dtype-aware copy would skip struct padding).
    arr.reshape(-1).view(np.uint8)[:] = np.frombuffer(data, np.uint8)
    return arr


def _decode_scalar(obj: Dict[Any, Any]) -> Any:
    np = _numpy()
    dtype = _dtype(np, obj[b"type"])
    data = obj[b"data"]
    if not isinstance(data, bytes) or dtype.itemsize == 0 or len(data) != dtype.itemsize:
        raise ValueError(f"malformed numpy scalar of type {dtype}")
    return np.frombuffer(data, dtype)[0]


def _dtype(np: Any, descr: Any) -> Any:
    """A dtype from a dtype string or a structured descr list, refusing object dtypes."""
    try:
        dtype = _dtype_from_descr(np, descr)
    except (TypeError, ValueError) as e:
        raise ValueError(f"malformed numpy dtype {descr!r}: {e}") from None
    if dtype.hasobject:
        raise ValueError(f"refusing to decode a numpy array of dtype {dtype} (it holds Python objects)")
    return dtype


def _dtype_from_descr(np: Any, descr: Any) -> Any:
    # numpy.lib.format.descr_to_dtype, for descrs whose tuples arrived as lists:
    # unnamed void entries are padding, so aligned layouts come back exactly.
    if isinstance(descr, bytes):
        descr = descr.decode()
    if isinstance(descr, str):
        return np.dtype(descr)
    if not isinstance(descr, list):
        raise TypeError("expected a str or a list")
    names: List[str] = []
    formats: List[Any] = []
    titles: List[Optional[str]] = []
    offsets: List[int] = []
    offset = 0
    for field in descr:
        if not isinstance(field, list) or len(field) not in (2, 3):
            raise TypeError(f"bad field {field!r}")
        name, dt = field[0], _dtype_from_descr(np, field[1])
        if len(field) == 3:
            shape = field[2]
            dt = np.dtype((dt, tuple(shape) if isinstance(shape, list) else shape))
        if not (name == "" and dt.type is np.void and dt.names is None):
            title, name = name if isinstance(name, list) and len(name) == 2 else (None, name)
            names.append(name)
            formats.append(dt)
            titles.append(title)
            offsets.append(offset)
        offset += dt.itemsize
    return np.dtype(
        {"names": names, "formats": formats, "titles": titles, "offsets": offsets, "itemsize": offset}
    )
