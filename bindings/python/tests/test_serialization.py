"""Protocol values: numpy, markers, reference (simplerpyc / msgpack-numpy) byte compatibility."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from simplerpc._serialization import packb, unpackb

GOLDEN = Path(__file__).resolve().parents[3] / "core" / "tests" / "golden"
GOLDEN_FRAMES = sorted(GOLDEN.glob("*.msgpack"))
VALUE_FRAMES = [p for p in GOLDEN_FRAMES if p.name.startswith("val_")]


def reference():
    """simplerpyc's serialization module (importing it patches the msgpack module process-wide)."""
    return pytest.importorskip("simplerpyc.common.serialization")


def raw(data: bytes) -> Any:
    """The msgpack structure without any marker decoding (msgpack's fallback is never patched)."""
    from msgpack.fallback import unpackb as plain

    return plain(data, raw=False, strict_map_key=False)


def assert_same_array(got: Any, want: np.ndarray) -> None:
    assert type(got) is np.ndarray
    assert got.dtype == want.dtype and got.dtype.str == want.dtype.str
    assert got.shape == want.shape
    assert got.flags.writeable and got.flags.c_contiguous and got.flags.owndata
    assert got.tobytes() == want.tobytes()


# ------------------------------------------------------------ golden frames


def test_golden_dir_is_complete() -> None:
    manifest = json.loads((GOLDEN / "manifest.json").read_text())
    assert len(VALUE_FRAMES) > 150
    assert {e["file"] for e in manifest} == {p.name for p in GOLDEN_FRAMES}


@pytest.mark.parametrize("path", VALUE_FRAMES, ids=lambda p: p.stem)
def test_golden_value_frame_round_trips_byte_for_byte(path: Path) -> None:
    frame = path.read_bytes()
    assert packb(unpackb(frame)) == frame


@pytest.mark.parametrize(
    "path", [p for p in GOLDEN_FRAMES if not p.name.startswith("val_")], ids=lambda p: p.stem
)
def test_golden_message_frame_round_trips_byte_for_byte(path: Path) -> None:
    frame = path.read_bytes()
    assert packb(unpackb(frame)) == frame


def golden(name: str) -> Any:
    return unpackb((GOLDEN / f"{name}.msgpack").read_bytes())


def test_golden_frames_decode_to_the_values_they_encode() -> None:
    a = golden("val_ndarray_f4le_5")
    assert_same_array(a, np.array([0.0, -0.0, 1.5, np.inf, np.nan], "<f4"))
    b = golden("val_ndarray_i4be_2x3x4")
    assert b.dtype.str == ">i4" and b.shape == (2, 3, 4)
    assert golden("val_ndarray_b1_0d").shape == ()
    assert golden("val_ndarray_b1_0d")[()] is np.True_
    assert golden("val_ndarray_f8le_2x0x3").shape == (2, 0, 3)
    f = golden("val_ndarray_i4le_fortran")
    assert f.tolist() == [[0, 1, 2], [3, 4, 5]]  # np.asfortranarray(arange(6).reshape(2, 3))
    assert golden("val_slice_value") == slice(1, None, 2)
    assert golden("val_complex_1p2j") == 1 + 2j
    assert golden("val_complex_inf_nanj").real == float("inf")
    s = golden("val_npscalar_float32")
    assert type(s) is np.float32 and s == 1.5
    u = golden("val_npscalar_uint64")
    assert type(u) is np.uint64 and u == 2**64 - 1
    assert type(golden("val_npscalar_float64")) is float
    c = golden("val_npscalar_complex128")
    assert type(c) is np.complex128
    assert any(isinstance(k, tuple) for k in golden("val_dict_tuple_key"))
    ref = golden("val_proxy_ref_shape")
    assert isinstance(ref, dict) and ref.get("__rpc_proxy__") is True  # stays a dict
    st = golden("val_ndarray_struct_aligned")
    assert st.dtype.names == ("a", "b") and st.dtype.itemsize == 8 and st.dtype.fields["b"][1] == 4
    assert golden("val_ndarray_unicode_U5_be").dtype.str == ">U5"
    assert golden("val_ndarray_datetime64_D").dtype.str == "<M8[D]"


# ---------------------------------------------------------------- dtypes

BASIC = ["|b1", "|i1", "|u1"] + [
    f"{order}{kind}{size}"
    for order in "<>"
    for kind, sizes in (("i", (2, 4, 8)), ("u", (2, 4, 8)), ("f", (2, 4, 8)), ("c", (8, 16)))
    for size in sizes
]
SHAPES = [(), (0,), (5,), (2, 3, 4), (2, 0, 3)]


def sample(dtype: str, shape: tuple) -> np.ndarray:
    dt = np.dtype(dtype)
    n = int(np.prod(shape)) if shape else 1
    if dt.kind == "b":
        flat = np.arange(n) % 3 == 0
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        values = [int(info.min), int(info.min) + 1, 0, 1, int(info.max) - 1, int(info.max)]
        flat = np.array([values[i % len(values)] for i in range(n)], dtype=dt)
    elif dt.kind == "f":
        flat = np.array([0.0, -0.0, 1.5, np.inf, np.nan, -2.25, 1e-3][:n] + [0.5] * max(0, n - 7))
    else:
        flat = np.array([1 + 2j, -1.5 - 0.25j, complex(np.inf, -0.0), complex(np.nan, 1)] * n)[:n]
    return np.asarray(flat, dtype=dt).reshape(shape)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", BASIC)
def test_array_round_trip_every_dtype(dtype: str, shape: tuple) -> None:
    a = sample(dtype, shape)
    data = packb(a)
    m = raw(data)
    assert m[b"type"] == dtype and m[b"kind"] == b"" and m[b"shape"] == list(shape)
    assert_same_array(unpackb(data), a)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", BASIC)
def test_array_bytes_equal_the_reference(dtype: str, shape: tuple) -> None:
    ref = reference()
    a = sample(dtype, shape)
    assert packb(a) == ref.serialize(a)
    back = ref.deserialize(packb(a))
    assert back.dtype.str == dtype and back.tobytes() == a.tobytes()


def layouts() -> dict:
    base = np.arange(24, dtype="<f8").reshape(2, 3, 4) * 0.5
    return {
        "strided": np.arange(10, dtype=">i4")[::3],
        "reversed": np.arange(5, dtype="<i2")[::-1],
        "fortran": np.asfortranarray(base),
        "fortran_be": np.asfortranarray(base.astype(">f4")),
        "transposed": base.T,
        "sliced_2d": base[:, 1:, ::2],
        "broadcast": np.broadcast_to(np.arange(3, dtype="<u2"), (4, 3)),
        "readonly": np.frombuffer(b"\x01\x02\x03\x04", dtype="|u1"),
        "subclass": np.arange(6).reshape(2, 3).view(np.matrix),
    }


@pytest.mark.parametrize("name", list(layouts()))
def test_noncontiguous_and_fortran_arrays_travel_in_c_order(name: str) -> None:
    a = layouts()[name]
    got = unpackb(packb(a))
    assert type(got) is np.ndarray and got.flags.writeable
    assert got.dtype == a.dtype and got.shape == a.shape
    np.testing.assert_array_equal(got, np.asarray(a))
    assert got.tobytes() == np.ascontiguousarray(a).tobytes()
    assert packb(a) == reference().serialize(np.asarray(a))


@pytest.mark.parametrize(
    "a",
    [
        np.array(["ab", "héllo", ""], dtype="<U5"),
        np.array(["ab", "xyz"], dtype=">U3"),
        np.array([b"ab", b"xyz"], dtype="S3"),
        np.array(["2020-01-01", "2021-06-30", "NaT"], dtype="datetime64[D]"),
        np.array([1, 2, 3], dtype="datetime64[ns]").astype(">M8[ns]"),
        np.array([5, -7], dtype="timedelta64[s]"),
        np.zeros(3, dtype=[("a", "<i4"), ("b", ">f8", (2,))]),
        np.zeros(2, dtype=np.dtype([("a", "u1"), ("b", "<i4")], align=True)),
        np.zeros(2, dtype=[("p", [("x", "<i2"), ("y", "<f4")]), ("q", "|b1")]),
        np.zeros(2, dtype=[(("Title", "t"), "<i4"), ("u", "<u2")]),
        np.zeros(2, dtype="V4"),
    ],
    ids=lambda a: a.dtype.str if a.dtype.names is None else str(a.dtype.descr),
)
def test_other_dtypes_follow_msgpack_numpy(a: np.ndarray) -> None:
    data = packb(a)
    m = raw(data)
    if a.dtype.kind == "V":
        assert m[b"kind"] == b"V"
        assert m[b"type"] == json.loads(json.dumps(a.dtype.descr))
    else:
        assert m[b"kind"] == b"" and m[b"type"] == a.dtype.str
    got = unpackb(data)
    assert got.dtype.descr == a.dtype.descr and got.shape == a.shape
    assert got.tobytes() == a.tobytes() and got.flags.writeable
    assert packb(got) == data
    if a.dtype.kind not in "Mm":  # the reference cannot encode C-contiguous datetime arrays
        assert data == reference().serialize(a)


def test_decoded_arrays_are_writable_copies() -> None:
    frame = packb(np.arange(4, dtype="<i8"))
    a, b = unpackb(frame), unpackb(memoryview(frame))
    a[0] = 42
    assert b[0] == 0 and unpackb(bytearray(frame))[0] == 0
    assert unpackb(frame).base is None


def test_encoding_a_contiguous_array_does_not_copy_it_first() -> None:
    # A large C-contiguous array is copied once, into the resulting bytes.
    import tracemalloc

    a = np.ones(16 * 2**20, dtype="<u1")
    tracemalloc.start()
    try:
        data = packb(a)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(data) > a.nbytes
    assert peak < 1.1 * a.nbytes
    assert unpackb(data).tobytes() == a.tobytes() and data == reference().serialize(a)


# ----------------------------------------------------------- object arrays


@pytest.mark.parametrize(
    "a",
    [np.array([1, "a", None], dtype=object), np.zeros(2, dtype=[("x", "<i4"), ("o", "O")])],
    ids=["object", "struct_with_object"],
)
def test_object_arrays_are_refused(a: np.ndarray) -> None:
    with pytest.raises(TypeError, match="object"):
        packb(a)
    with pytest.raises(TypeError, match="object"):
        packb({"nested": [a]})


def test_object_array_frames_are_decoded_only_with_allow_pickle() -> None:
    a = np.array([1, "a", None], dtype=object)
    frame = reference().serialize(a)  # kind b"O", data is a pickle
    with pytest.raises(ValueError, match="allow_pickle"):
        unpackb(frame)
    assert unpackb(frame, allow_pickle=True).tolist() == [1, "a", None]


def test_object_dtype_without_kind_o_is_refused() -> None:
    # An 'object' dtype string would make numpy read pointers out of the frame.
    crafted = packb({b"nd": True, b"type": "|O", b"kind": b"", b"shape": [1], b"data": b"\0" * 8})
    with pytest.raises(ValueError, match="object"):
        unpackb(crafted)
    crafted = packb(
        {b"nd": True, b"type": [["o", "|O"]], b"kind": b"V", b"shape": [1], b"data": b"\0" * 8}
    )
    with pytest.raises(ValueError, match="object"):
        unpackb(crafted)


@pytest.mark.parametrize(
    "frame",
    [
        {b"nd": True, b"type": "<i4", b"kind": b"", b"shape": [3], b"data": b"\0" * 8},
        {b"nd": True, b"type": "<i4", b"kind": b"", b"shape": [-1], b"data": b""},
        {b"nd": True, b"type": "<i4", b"kind": b"", b"shape": 3, b"data": b"\0" * 12},
        {b"nd": True, b"type": "<q9", b"kind": b"", b"shape": [1], b"data": b"\0" * 8},
        {b"nd": True, b"type": "<i4", b"kind": b"", b"shape": [1], b"data": "text"},
        {b"nd": False, b"type": "<i4", b"data": b"\0" * 3},
    ],
)
def test_malformed_arrays_raise_value_error(frame: dict) -> None:
    with pytest.raises(ValueError, match="malformed"):
        unpackb(packb(frame))


# ------------------------------------------------------------------ scalars

SCALARS = [
    np.bool_(True), np.bool_(False), np.int8(-5), np.int16(-300), np.int32(-70000),
    np.int64(-3), np.uint8(7), np.uint16(65535), np.uint32(4000000000),
    np.uint64(2**64 - 1), np.float16(0.5), np.float32(1.5), np.float32("nan"),
    np.complex64(1 + 2j), np.complex128(3 - 4j),
]


@pytest.mark.parametrize("x", SCALARS, ids=lambda x: f"{type(x).__name__}({x})")
def test_numpy_scalars(x: Any) -> None:
    data = packb(x)
    assert raw(data) == {b"nd": False, b"type": x.dtype.str, b"data": x.tobytes()}
    got = unpackb(data)
    assert type(got) is type(x) and got.tobytes() == x.tobytes()
    assert data == reference().serialize(x)


def test_float64_is_a_plain_float_and_datetime_scalars_travel() -> None:
    assert packb(np.float64(2.5)) == packb(2.5) == reference().serialize(np.float64(2.5))
    d = np.datetime64("2020-01-02", "D")
    assert unpackb(packb(d)) == d
    assert unpackb(packb(np.timedelta64(5, "s"))) == np.timedelta64(5, "s")


# ------------------------------------------------------------- plain values

VALUES = [
    None, True, False, 0, -1, 2**64 - 1, -(2**63), 1.5, float("inf"), "", "héllo ✓ 🐍",
    b"", bytes(range(256)), [], [1, [2, [3]]], (1, 2), {}, {"a": 1, 2: "b", b"c": None},
    {"nested": {"x": [1.5, None]}}, 1 + 2j, -0j, complex(float("inf"), float("nan")),
    slice(1, None, 2), slice(None), [slice(1, 3), slice(None, None, -1)],
    {"__rpc_proxy__": True, "obj_id": 3},
]


@pytest.mark.parametrize("x", VALUES, ids=repr)
def test_plain_values_equal_the_reference(x: Any) -> None:
    assert packb(x) == reference().serialize(x)


@pytest.mark.parametrize("x", VALUES, ids=repr)
def test_plain_values_round_trip(x: Any) -> None:
    got = unpackb(packb(x))
    if isinstance(x, tuple):
        x = list(x)
    if isinstance(x, complex) and x != x:
        assert repr(got) == repr(x)
    else:
        assert got == x and type(got) is type(x)


def test_tuple_keys_come_back_as_tuples() -> None:
    assert unpackb(packb({(1, (2, 3)): "x"})) == {(1, (2, 3)): "x"}


def test_complex_and_slice_markers() -> None:
    assert raw(packb(1 + 2j)) == {b"complex": True, b"data": "(1+2j)"}
    assert raw(packb(slice(1, None, 2))) == {"__slice__": True, "start": 1, "stop": None, "step": 2}
    # a map that only looks like a slice marker stays a map
    assert unpackb(packb({"__slice__": True, "start": 1, "other": 2})) == {
        "__slice__": True, "start": 1, "other": 2,
    }


class FakeProxy:
    def __init__(self, obj_id: int, owner: object) -> None:
        self._rpc_obj_id = obj_id
        self._rpc_connection = owner


def test_proxies_become_references() -> None:
    owner = object()
    p = FakeProxy(7, owner)
    data = packb({"a": [p, (p,)]}, proxy_owner=owner)
    assert raw(data) == {"a": [{"__rpc_proxy__": True, "obj_id": 7}, [{"__rpc_proxy__": True, "obj_id": 7}]]}
    assert unpackb(data)["a"][0] == {"__rpc_proxy__": True, "obj_id": 7}
    with pytest.raises(ValueError, match="another connection"):
        packb([p], proxy_owner=object())


def test_unserializable_objects_raise_type_error() -> None:
    with pytest.raises(TypeError, match="module"):
        packb(sys)
    with pytest.raises(TypeError):
        packb({1, 2})


def test_immune_to_msgpack_numpy_patching() -> None:
    reference()  # patches msgpack.packb/unpackb with msgpack-numpy's
    import msgpack_numpy

    assert msgpack.packb is msgpack_numpy.packb
    with pytest.raises(TypeError, match="object"):
        packb(np.array([None], dtype=object))
    assert unpackb(packb({(1, 2): 3})) == {(1, 2): 3}


def test_numpy_is_not_imported_unless_needed() -> None:
    code = (
        "import sys; from simplerpc._serialization import packb, unpackb\n"
        "assert unpackb(packb({'a': [1, 2.5, b'x', 1j, slice(1)]}))['a'][3] == 1j\n"
        "assert 'numpy' not in sys.modules, 'numpy imported'\n"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": src})



def test_large_arrays_are_spliced_byte_exactly() -> None:
    ref = reference()
    big = np.arange(300_000, dtype=">f8").reshape(3000, 100)
    value = {
        "below": np.ones(65535, "|u1"),  # bin16, packed inline
        "at": np.ones(65536, "|u1"),  # bin32, spliced
        "fortran": np.asfortranarray(big),  # non-contiguous, spliced
        "list": [big, "between", big[::2]],
        "tail": b"x" * 70_000,
    }
    data = packb(value)
    assert data == ref.serialize(value)
    got = unpackb(data)
    assert got["at"].tobytes() == value["at"].tobytes()
    np.testing.assert_array_equal(got["fortran"], big)
    np.testing.assert_array_equal(got["list"][2], big[::2])
    assert got["list"][1] == "between" and got["tail"] == value["tail"]


# ----------------------------------------------------------------- the tuple extension


def test_tuples_pack_as_the_marker_only_when_asked() -> None:
    import collections

    value = (1, (2, ()), [3, (4,)], {(5, 6): (7,)})
    flat = value[:3]
    assert raw(packb(flat)) == [1, [2, []], [3, [4]]]  # the reference's form
    assert raw(packb(flat, tuples=True)) == {"__tuple__": [1, {"__tuple__": [2, {"__tuple__": []}]}, [3, {"__tuple__": [4]}]]}
    assert unpackb(packb(value)) == [1, [2, []], [3, [4]], {(5, 6): [7]}]
    marked = packb(value, tuples=True)
    assert marked[:11] == b"\x81\xa9__tuple__"
    back = unpackb(marked, tuples=True)
    assert back == value and type(back[1]) is tuple and type(back[2]) is list and type(back[2][1]) is tuple
    assert list(back[3]) == [(5, 6)] and type(back[3][(5, 6)]) is tuple
    # a decoder without the extension leaves the marker a dict
    assert unpackb(packb((1, 2), tuples=True)) == {"__tuple__": [1, 2]}
    # ... and one with it keeps look-alikes that are not exactly the marker dicts
    for other in ({"__tuple__": [1], "x": 2}, {"__tuple__": 3}, {b"__tuple__": [1]}):
        assert unpackb(packb(other), tuples=True) == other
    # a named tuple is a tuple
    point = collections.namedtuple("Point", "x y")(1, 2)
    assert packb(point, tuples=True) == packb((1, 2), tuples=True)


def test_tuples_mode_packs_everything_else_as_before() -> None:
    import collections
    import enum

    class Color(enum.IntEnum):
        RED = 3

    class Name(str):
        pass

    class Items(list):
        pass

    class Blob(bytes):
        pass

    values = [
        np.float64(1.5),
        Color.RED,
        Name("n"),
        Items([1, 2]),
        Blob(b"b"),
        bytearray(b"ba"),
        memoryview(b"mv"),
        collections.OrderedDict(a=1),
        collections.defaultdict(int, b=2),
        True,
        None,
        2**64 - 1,
        -(2**63),
        np.float32(2.5),
        np.int64(-4),
        np.bool_(True),
        1 + 2j,
        slice(1, None, 2),
        np.arange(6, dtype=">i4").reshape(2, 3),
        np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8", (2,))]),
        np.arange(1 << 15, dtype=np.float64),  # spliced, not copied into the buffer
    ]
    for v in values:
        assert packb(v, tuples=True) == packb(v), repr(v)
        assert packb([v], tuples=True) == packb([v]), repr(v)


def test_a_large_array_in_a_tuple_is_spliced() -> None:
    from simplerpc._serialization import packb_parts

    big = np.arange(1 << 16, dtype=np.float64)
    parts = packb_parts((big, 1.0, False), tuples=True)
    assert any(isinstance(p, memoryview) and p.obj is not None and p.nbytes == big.nbytes for p in parts)
    back = unpackb(b"".join(parts), tuples=True)
    assert type(back) is tuple and back[1:] == (1.0, False)
    assert_same_array(back[0], big)
