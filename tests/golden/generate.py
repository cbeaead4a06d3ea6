#!/usr/bin/env python3
"""Generate golden wire frames from the stock ``simplerpyc`` package (0.0.1a3).

Every frame is produced by the stock package's own code paths:

* requests: the stock client (``Connection``, ``RPCProxy``, ``materialize``)
  builds its message dicts and ``Connection.send`` serializes them with
  ``simplerpyc.common.serialization.serialize``.  The connection's websocket is
  replaced by an in-process loopback that records the bytes and hands them to a
  real ``ClientExecutor`` exactly like ``RPCServer.handler`` does
  (``deserialize`` -> ``handle_message`` -> ``serialize``);
* responses: the bytes that loopback "server" sends back;
* values: ``serialize(value)`` of a bare Python object.

Usage:  python generate.py [OUTPUT_DIR]   (default: <repo>/core/tests/golden)

Writes OUTPUT_DIR/NAME.msgpack for each frame and OUTPUT_DIR/manifest.json, a
list of {"file", "kind" ("request" | "response" | "value"), "note"}.  Stale
*.msgpack files in OUTPUT_DIR that are not in the new manifest are removed.

Needs Python >= 3.10 at run time (the stock package uses ``X | None``
annotations), simplerpyc==0.0.1a3 and its dependencies (msgpack,
msgpack-numpy, numpy, dill, websockets).  The script itself only uses
Python 3.8 syntax.
"""

import asyncio
import json
import logging
import math
import os
import sys

import numpy as np

import simplerpyc
from simplerpyc.client.connection import Connection
from simplerpyc.client.proxy import RemoteException, RPCProxy, materialize
from simplerpyc.common.serialization import deserialize, serialize
from simplerpyc.server.executor import ClientExecutor

EXPECTED_VERSION = "0.0.1a3"

# serialize_exception() logs a warning when dill cannot pickle an exception;
# that case is generated on purpose below.
logging.getLogger("simplerpyc").setLevel(logging.ERROR)


# --------------------------------------------------------------------------
# output bookkeeping
# --------------------------------------------------------------------------

class Golden:
    def __init__(self):
        self.frames = []  # (file, kind, note, bytes)
        self.names = set()

    def add(self, name, kind, note, data):
        assert kind in ("request", "response", "value"), kind
        fname = name + ".msgpack"
        if fname in self.names:
            raise ValueError("duplicate golden name: " + fname)
        self.names.add(fname)
        self.frames.append((fname, kind, note, bytes(data)))

    def write(self, outdir):
        os.makedirs(outdir, exist_ok=True)
        for fname, _kind, _note, data in self.frames:
            with open(os.path.join(outdir, fname), "wb") as f:
                f.write(data)
        for fname in sorted(os.listdir(outdir)):
            if fname.endswith(".msgpack") and fname not in self.names:
                os.remove(os.path.join(outdir, fname))
        manifest = [{"file": fname, "kind": kind, "note": note}
                    for fname, kind, note, _data in self.frames]
        with open(os.path.join(outdir, "manifest.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, ensure_ascii=False)
            f.write("\n")
        return sum(len(d) for _f, _k, _n, d in self.frames)


G = Golden()


# --------------------------------------------------------------------------
# loopback websocket: stock client <-> stock executor, in process
# --------------------------------------------------------------------------

class LoopbackWS:
    """Stands in for the websocket of a connected stock client.

    ``send`` does what ``RPCServer.handler`` does for one message and records
    both the request bytes (as serialized by ``Connection.send``) and the
    response bytes (as serialized by the server loop).
    """

    def __init__(self, executor):
        self.executor = executor
        self.requests = []
        self.responses = []
        self._queue = []

    async def send(self, data):
        data = bytes(data)
        self.requests.append(data)
        message = deserialize(data)
        response = self.executor.handle_message(message)
        response_data = serialize(response)
        self.responses.append(response_data)
        self._queue.append(response_data)

    async def recv(self):
        return self._queue.pop(0)

    async def close(self):
        pass


def new_session():
    executor = ClientExecutor()
    conn = Connection()
    conn.ws = LoopbackWS(executor)
    conn.loop = asyncio.new_event_loop()
    return conn, executor


def exchange(conn, action, req=None, req_note="", resp=None, resp_note=""):
    """Run one stock-client action that sends exactly one message.

    Records the last request/response pair under the given names (None = skip).
    Returns (result, error) where error is the exception the stock client
    raised (RemoteException for error responses), or None.
    """
    ws = conn.ws
    before = len(ws.requests)
    result, error = None, None
    try:
        result = action()
    except Exception as e:  # noqa: BLE001 - error responses are wanted here
        error = e
    sent = len(ws.requests) - before
    if sent != 1:
        raise RuntimeError("expected exactly one message, got %d (%r)" % (sent, error))
    if req is not None:
        G.add(req, "request", req_note, ws.requests[-1])
    if resp is not None:
        G.add(resp, "response", resp_note, ws.responses[-1])
    return result, error


def response_dict(conn):
    """The last response as a stock client decodes it."""
    return deserialize(conn.ws.responses[-1])


# --------------------------------------------------------------------------
# requests and responses
# --------------------------------------------------------------------------

TELEPORT_SRC = '''\
def add(a, b=2):
    """Add two numbers."""
    return a + b
'''


def make_teleport_function():
    # Defined in __main__ (as a user script would) but compiled with a fixed
    # file name so the dill pickle does not depend on how this script was
    # invoked.  dill pickles __main__ functions by value.
    main_ns = sys.modules["__main__"].__dict__
    exec(compile(TELEPORT_SRC, "<golden-teleport>", "exec"), main_ns)
    return main_ns["add"]


def gen_protocol():
    conn, ex = new_session()

    # import_module / get_builtin
    os_p, _ = exchange(conn, lambda: conn.modules.os,
                       "req_import_module", "import_module 'os' (conn.modules.os)",
                       "resp_success_obj_id_0", "success obj_id 0 (import of 'os')")
    ospath_p, _ = exchange(conn, lambda: conn.modules["os.path"],
                           "req_import_module_dotted", "import_module dotted 'os.path'",
                           "resp_success_obj_id_1", "success obj_id 1")
    max_p, _ = exchange(conn, lambda: conn.builtins.max,
                        "req_get_builtin", "get_builtin 'max' (conn.builtins.max)",
                        "resp_success_obj_id_2", "success obj_id 2")
    int_p, _ = exchange(conn, lambda: conn.builtins.int)

    # getattr
    exchange(conn, lambda: os_p.path,
             "req_getattr", "getattr path 'os' obj_id 0 attr 'path'", None)
    exchange(conn, lambda: RPCProxy(path="os.path", obj_id=None, connection=conn).join,
             "req_getattr_obj_id_none",
             "getattr with obj_id nil: server evals path 'os.path' in the client globals",
             None)
    join_p, _ = exchange(conn, lambda: ospath_p.join,
                         "req_getattr_dotted_path", "getattr path 'os.path' obj_id 1 attr 'join'")

    # call
    exchange(conn, lambda: join_p("a", "b", "c"),
             "req_call_args", "call path 'os.path.join' positional args ['a','b','c'], kwargs {}")
    exchange(conn, lambda: max_p(3, 1, 2),
             "req_call_args_ints", "call builtins.max(3, 1, 2)")
    exchange(conn, lambda: int_p("ff", base=16),
             "req_call_kwargs", "call builtins.int('ff', base=16): args ['ff'], kwargs {'base': 16}")
    exchange(conn, lambda: int_p(),
             "req_call_no_args", "call builtins.int(): args [], kwargs {}")
    exchange(conn, lambda: RPCProxy(path="os.path.join", obj_id=None, connection=conn)("x", "y"),
             "req_call_obj_id_none",
             "call with obj_id nil: server evals path 'os.path.join'")

    # objects to reference by proxy
    lst_p, _ = exchange(conn, lambda: conn.eval("[30, 10, 20]"),
                        "req_eval", "eval '[30, 10, 20]'")
    d_p, _ = exchange(conn, lambda: conn.eval("{'a': 1, 'b': [10, 20, 30, 40, 50]}"),
                      "req_eval_dict", "eval of a dict literal")
    rng_p, _ = exchange(conn, lambda: conn.eval("list(range(10))"))
    arr_p, _ = exchange(conn, lambda: conn.eval("__import__('numpy').arange(24).reshape(4, 6)"))

    exchange(conn, lambda: conn.execute(
        "def echo(*args, **kwargs):\n    return [list(args), kwargs]\n"),
        "req_execute", "execute: defines echo(*args, **kwargs)",
        "resp_execute_success", "execute success: {'type': 'success'} only")
    echo_p, _ = exchange(conn, lambda: conn.eval("echo"))

    r_p, _ = exchange(
        conn,
        lambda: echo_p(lst_p, [d_p, {"k": lst_p}], (rng_p, 1), d={"x": [lst_p]}, t=(d_p,)),
        "req_call_proxy_refs",
        "call echo with RPCProxy refs nested in args/list/dict/tuple and kwargs: "
        "{'__rpc_proxy__': true, 'obj_id': N}")
    exchange(conn, lambda: materialize(r_p), None, None,
             "resp_value_echo_resolved_proxies",
             "materialize of echo's result: proxies resolved server side, tuples became lists")

    # call on a non-callable object: server calls getattr(obj, last path component)
    exchange(conn, lambda: RPCProxy(path="lst.count", obj_id=lst_p._rpc_obj_id, connection=conn)(10),
             "req_call_noncallable_path",
             "call whose obj_id is a list (not callable): server calls getattr(obj, 'count')(10)",
             "resp_success_call_noncallable", "success obj_id of the count result")

    # getitem
    exchange(conn, lambda: lst_p[0], "req_getitem_int", "getitem int key 0")
    exchange(conn, lambda: d_p["a"], "req_getitem_str", "getitem str key 'a'")
    exchange(conn, lambda: rng_p[1::2], "req_getitem_slice",
             "getitem key slice(1, None, 2) -> {'__slice__': true, 'start': 1, 'stop': nil, 'step': 2}")
    exchange(conn, lambda: arr_p[1:3, ::2], "req_getitem_tuple_slices",
             "getitem key (slice(1, 3, None), slice(None, None, 2)) -> array of two slice maps")
    exchange(conn, lambda: arr_p[1, -1], "req_getitem_tuple_ints",
             "getitem key (1, -1) -> array")
    idx_p, _ = exchange(conn, lambda: conn.eval("'b'"))
    exchange(conn, lambda: d_p[idx_p], "req_getitem_proxy_key",
             "getitem key is an RPCProxy -> {'__rpc_proxy__': true, 'obj_id': N}")

    # materialize
    exchange(conn, lambda: materialize(lst_p),
             "req_materialize", "materialize obj_id of [30, 10, 20]",
             "resp_value_list_from_eval", "success value [30, 10, 20]")

    # teleport
    add = make_teleport_function()
    add_p, _ = exchange(conn, lambda: conn.teleport(add),
                        "req_teleport",
                        "teleport: func_bytes = dill.dumps(add) (by value, Python-version specific), "
                        "name 'add'",
                        "resp_success_teleport", "success obj_id of the teleported function")
    exchange(conn, lambda: add_p(40), "req_call_teleported", "call the teleported add(40)")

    # namespace
    exchange(conn, lambda: conn.namespace,
                     "req_get_namespace", "get_namespace (no other keys)",
                     "resp_namespace",
                     "namespace: {name: str(type(value))}; '__builtins__' is \"<class 'dict'>\"")

    # unknown type
    exchange(conn, lambda: conn.send({"type": "frobnicate"}),
             "req_unknown_type", "unknown message type 'frobnicate'",
             "resp_unknown_type", "{'type': 'error', 'error': 'Unknown message type: frobnicate'}")
    exchange(conn, lambda: conn.send({"type": "frobnicate", "obj_id": 0, "extra": [1, 2]}),
             "req_unknown_type_extra_keys", "unknown type with extra keys")

    # errors (real exceptions raised inside the executor)
    _, err = exchange(conn, lambda: os_p.no_such_attribute,
                      "req_getattr_missing", "getattr of a missing attribute",
                      "resp_error_getattr_missing",
                      "error: builtins.AttributeError, exception_pickle = dill bytes, traceback text")
    assert isinstance(err, RemoteException) and isinstance(err.__cause__, AttributeError), err
    _, err = exchange(conn, lambda: int_p("not a number"), None, None,
                      "resp_error_call_valueerror", "error: builtins.ValueError from a call")
    assert isinstance(err, RemoteException), err
    _, err = exchange(conn, lambda: conn.eval("1 / 0"), None, None,
                      "resp_error_eval_zerodivision", "error: builtins.ZeroDivisionError from eval")
    assert isinstance(err, RemoteException), err
    _, err = exchange(conn, lambda: materialize(RPCProxy(path="x", obj_id=999999, connection=conn)),
                      "req_materialize_unknown_id", "materialize obj_id 999999 (never allocated)",
                      "resp_error_unknown_obj_id", "error: builtins.KeyError, message '999999'")
    assert isinstance(err, RemoteException), err
    _, err = exchange(conn, lambda: materialize(os_p), None, None,
                      "resp_error_materialize_module",
                      "error: builtins.TypeError \"can not serialize 'module' object\" from materialize")
    assert isinstance(err, RemoteException), err
    _, err = exchange(conn, lambda: conn.send({"type": "getattr", "obj_id": 0}),
                      "req_getattr_missing_fields", "getattr without 'path'/'attr'",
                      "resp_error_missing_field", "error: builtins.KeyError, message \"'path'\"")
    _, err = exchange(conn, lambda: conn.execute(
        "class MyError(Exception):\n    pass\nraise MyError('boom', 42)\n"),
        None, None, "resp_error_custom_class",
        "error: 'builtins.MyError' (class defined by execute, no __name__ in globals), "
        "message \"('boom', 42)\", pickle holds the class by value")
    assert isinstance(err, RemoteException), err
    _, err = exchange(conn, lambda: conn.execute(
        "e = ValueError('unpicklable')\ne.gen = (i for i in ())\nraise e\n"),
        None, None, "resp_error_no_pickle",
        "error whose dill pickle fails: exception_pickle is nil")
    assert response_dict(conn)["exception_pickle"] is None
    dt_p, _ = exchange(conn, lambda: conn.eval(
        "__import__('numpy').array(['2020-01-01', '1970-01-01'], dtype='datetime64[D]')"))
    _, err = exchange(conn, lambda: materialize(dt_p), None, None,
                      "resp_error_materialize_datetime64",
                      "error: a C-contiguous datetime64 array cannot be serialized on Linux "
                      "(ValueError \"cannot include dtype 'M' in a buffer\")")
    assert isinstance(err, RemoteException), err

    # large object ids (use the executor's own allocator, starting elsewhere)
    for start in (128, 65536, 70000, 2 ** 32 + 5):
        ex.next_obj_id = start
        p, _ = exchange(conn, lambda: conn.eval("None"), None, None,
                        "resp_success_obj_id_%d" % start, "success obj_id %d" % start)
        assert p._rpc_obj_id == start
    exchange(conn, lambda: RPCProxy(path="big", obj_id=70000, connection=conn).real,
             "req_getattr_obj_id_70000", "getattr with obj_id 70000 (uint32)",
             None)
    exchange(conn, lambda: materialize(RPCProxy(path="big", obj_id=2 ** 32 + 5, connection=conn)),
             "req_materialize_obj_id_4294967301", "materialize obj_id 2**32+5 (uint64)",
             "resp_value_none", "success value nil")


# --------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------

def pattern_str(n):
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return (alphabet * (n // len(alphabet) + 1))[:n]


def pattern_bytes(n):
    return bytes(i % 256 for i in range(n))


INT_NAMES = {
    2 ** 32 - 1: "2**32-1", 2 ** 32: "2**32", 2 ** 63 - 1: "2**63-1", 2 ** 64 - 1: "2**64-1",
    -2 ** 31: "-2**31", -2 ** 31 - 1: "-2**31-1", -2 ** 63: "-2**63",
}


def values():
    """Yield (name, value, note)."""
    yield "nil", None, "None"
    yield "true", True, "True"
    yield "false", False, "False"

    for i in (0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 63 - 1, 2 ** 64 - 1,
              -1, -32, -33, -128, -129, -32768, -32769, -2 ** 31, -2 ** 31 - 1, -2 ** 63):
        label = INT_NAMES.get(i, str(i))
        slug = label.replace("**", "pow")
        slug = ("neg" + slug[1:] if slug.startswith("-") else slug).replace("-", "_minus_")
        yield "int_" + slug, i, "int " + label

    floats = [("0_0", 0.0), ("neg0_0", -0.0), ("1_5", 1.5), ("1e300", 1e300), ("neg2_5e_neg300", -2.5e-300),
              ("inf", math.inf), ("neginf", -math.inf), ("nan", math.nan)]
    for label, f in floats:
        yield "float_" + label, f, "float %r (always float64)" % f

    yield "str_empty", "", "empty str"
    yield "str_ascii", "hello, world", "ascii str"
    yield "str_nonascii", "h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c \U0001f389", "non-ascii str (2-, 3- and 4-byte UTF-8)"
    for n in (31, 32, 255, 256, 65535, 65536):
        yield "str_len_%d" % n, pattern_str(n), "str of %d ascii chars" % n

    for n in (0, 255, 256, 65536):
        yield "bytes_len_%d" % n, pattern_bytes(n), "bytes of length %d (i %% 256)" % n

    for n in (0, 15, 16, 65536):
        yield "list_len_%d" % n, [i % 128 for i in range(n)], "list of %d ints (i %% 128)" % n
    for n in (0, 15, 16, 65536):
        yield "tuple_len_%d" % n, tuple(i % 128 for i in range(n)), "tuple of %d ints (travels as array)" % n
    yield "list_mixed", [1, "a", b"b", None, True, 1.5, [2], {"k": "v"}, (3, 4)], "list of mixed values"

    yield "dict_empty", {}, "empty dict"
    yield "dict_str_keys", {"a": 1, "b": "two", "c": [3]}, "dict with str keys"
    yield "dict_int_keys", {1: "one", -1: "minus one", 2 ** 40: "big", 0: "zero"}, "dict with int keys"
    yield "dict_bytes_keys", {b"k": b"v", b"": 0}, "dict with bytes keys"
    yield "dict_tuple_key", {(1, "a"): "tuple"}, \
        "dict with a tuple key (key packed as array; the stock deserialize fails on it: unhashable list)"
    yield "dict_mixed_keys", {None: 0, 1.5: 1, "s": 2, 3: 3, b"b": 4, False: 5}, "dict with nil/float/str/int/bytes/bool keys"
    yield "dict_nested", {"outer": {"inner": [1, {"deep": None}], "t": (1, 2)}, "n": {}}, "nested dicts"
    yield "dict_15", {"k%02d" % i: i for i in range(15)}, "dict with 15 entries (fixmap max)"
    yield "dict_16", {"k%02d" % i: i for i in range(16)}, "dict with 16 entries (map16)"
    yield "proxy_ref_shape", {"__rpc_proxy__": True, "obj_id": 3}, "a plain dict shaped like a proxy ref"
    yield "slice_value", slice(1, None, 2), "slice(1, None, 2) -> {'__slice__': true, ...} (converted by serialize)"

    complexes = [("1p2j", 1 + 2j), ("1j", 1j), ("neg0_neg1j", complex(-0.0, -1.0)), ("0_neg1j", 0 - 1j),
                 ("neg0_0j", complex(-0.0, 0.0)), ("0_neg0j", complex(0.0, -0.0)), ("1_neg0j", complex(1.0, -0.0)),
                 ("1_5_neg2_25j", 1.5 - 2.25j), ("1e20_1e_neg7j", 1e20 + 1e-7j),
                 ("inf_nanj", complex(math.inf, math.nan)), ("0j", 0j)]
    for label, c in complexes:
        yield "complex_" + label, c, "Python complex; data is repr(c) = %r" % repr(c)

    # numpy arrays
    for dt, shapes in array_dtypes():
        for shape_label, arr, note in shapes:
            yield "ndarray_%s_%s" % (dtype_label(dt), shape_label), arr, \
                "numpy %s array %s" % (dt.str, note)

    base = np.arange(10, dtype="<f8") * 0.5
    yield "ndarray_f8le_strided", base[::2], "non-contiguous slice arange(10)*0.5 [::2] (C-order copy)"
    yield "ndarray_i4be_strided", np.arange(10, dtype=">i4")[::3], ">i4 arange(10)[::3]"
    yield "ndarray_i2le_reversed", np.arange(5, dtype="<i2")[::-1], "negative stride arange(5)[::-1]"
    yield "ndarray_i4le_fortran", np.asfortranarray(np.arange(6, dtype="<i4").reshape(2, 3)), \
        "Fortran-order 2x3 array (data is C order)"
    yield "ndarray_f4be_fortran_3d", np.asfortranarray(np.arange(24, dtype=">f4").reshape(2, 3, 4)), \
        "Fortran-order 2x3x4 >f4 array"
    yield "ndarray_i8le_transposed", np.arange(6, dtype="<i8").reshape(2, 3).T, "transpose (3x2)"
    yield "ndarray_f8le_2x0x3", np.zeros((2, 0, 3), dtype="<f8"), "empty array shape (2, 0, 3)"

    # numpy scalars
    scalars = [
        ("bool_true", np.bool_(True)), ("bool_false", np.bool_(False)),
        ("int8", np.int8(-5)), ("int16", np.int16(-300)), ("int32", np.int32(-70000)),
        ("int64", np.int64(-3)),
        ("uint8", np.uint8(7)), ("uint16", np.uint16(65535)), ("uint32", np.uint32(4000000000)),
        ("uint64", np.uint64(2 ** 64 - 1)),
        ("float16", np.float16(0.5)), ("float32", np.float32(1.5)), ("float32_nan", np.float32("nan")),
        ("float64", np.float64(2.5)),
        ("complex64", np.complex64(1 + 2j)), ("complex128", np.complex128(1.5 - 2.5j)),
    ]
    for label, s in scalars:
        if label == "float64":
            note = "np.float64(2.5): a float subclass, travels as a plain msgpack float64"
        elif label == "complex128":
            note = "np.complex128: numpy scalar map ('<c16'), not the Python complex form"
        else:
            note = "numpy scalar %s(%r)" % (type(s).__name__, s.item())
        yield "npscalar_" + label, s, note

    # other dtypes
    dts = np.array(["2020-01-01", "1999-12-31", "1970-01-02", "2000-02-29", "NaT", "2038-01-19"],
                   dtype="datetime64[D]")
    yield "ndarray_datetime64_D", dts[::2], \
        "datetime64[D] array (a [::2] slice: C-contiguous datetime arrays fail to serialize on Linux); " \
        "type '<M8[D]', kind b''"
    ns = np.array([0, 1, -1, 1577836800123456789], dtype="<M8[ns]")
    yield "ndarray_datetime64_ns", np.stack([ns, ns], axis=1)[:, 0], "datetime64[ns] array (strided view)"
    td = np.array([1, -2, 3, 4], dtype="timedelta64[s]")
    yield "ndarray_timedelta64_s", td[::2], "timedelta64[s] array (strided view), type '<m8[s]'"
    yield "ndarray_unicode_U5", np.array(["ab", "cd\u00e9fg", ""], dtype="<U5"), \
        "'<U5' array: UTF-32LE code units, kind b''"
    yield "ndarray_unicode_U5_be", np.array(["ab", "cd\u00e9fg", ""], dtype=">U5"), "'>U5' array"
    yield "ndarray_bytes_S3", np.array([b"ab", b"xyz", b""], dtype="S3"), "'|S3' array"
    yield "ndarray_struct_simple", np.array([(1, 2.5), (-3, 4.5)], dtype=[("a", "<i4"), ("b", "<f8")]), \
        "structured array kind b'V', type is the descr list [['a','<i4'],['b','<f8']]"
    yield "ndarray_struct_subarray", np.array([(1, [1.0, 2.0]), (2, [3.0, 4.0])],
                                              dtype=[("a", "<i4"), ("b", ">f8", (2,))]), \
        "structured array with a subarray field: descr entry ['b','>f8',[2]]"
    yield "ndarray_struct_nested", np.array([((1.0, 2.0), 7), ((3.0, 4.0), 8)],
                                            dtype=[("p", [("x", "<f4"), ("y", "<f4")]), ("id", "<u2")]), \
        "structured array with a nested struct field"
    yield "ndarray_struct_aligned", np.array([(1, 2)], dtype=np.dtype([("a", "u1"), ("b", "<i4")], align=True)), \
        "aligned struct: descr has a padding entry ['', '|V3'] (stock decode renames it 'f1')"


def dtype_label(dt):
    order = {"<": "le", ">": "be", "|": ""}[dt.str[0]]
    return dt.str[1:] + order


def array_dtypes():
    """Yield (dtype, [(shape_label, array, note)]) for every basic dtype/byte order."""
    kinds = ["?", "i1", "u1", "i2", "i4", "i8", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]
    for k in kinds:
        orders = ["|"] if np.dtype(k).itemsize == 1 else ["<", ">"]
        for o in orders:
            dt = np.dtype(k)
            if o != "|":
                dt = dt.newbyteorder(o)
            yield dt, [
                ("0d", np.array(scalar_for(dt), dtype=dt), "0-d, shape (), value %r" % (scalar_for(dt),)),
                ("empty", np.zeros((0,), dtype=dt), "shape (0,)"),
                ("5", edge_values(dt), "shape (5,) %s" % edge_note(dt)),
                ("2x3x4", block(dt), "shape (2, 3, 4)"),
            ]


def scalar_for(dt):
    if dt.kind == "b":
        return True
    if dt.kind in "iu":
        return 42 if dt.kind == "u" else -42
    if dt.kind == "f":
        return -1.25
    return 1.5 - 0.5j


def edge_values(dt):
    if dt.kind == "b":
        return np.array([True, False, True, True, False], dtype=dt)
    if dt.kind == "i":
        info = np.iinfo(dt)
        return np.array([info.min, -1, 0, 1, info.max], dtype=dt)
    if dt.kind == "u":
        info = np.iinfo(dt)
        return np.array([0, 1, 2, info.max - 1, info.max], dtype=dt)
    if dt.kind == "f":
        return np.array([0.0, -0.0, 1.5, math.inf, math.nan], dtype=dt)
    return np.array([0, 1 + 2j, -1.5 - 0.25j, complex(math.inf, -0.0), complex(math.nan, 1.0)], dtype=dt)


def edge_note(dt):
    return {"b": "[T, F, T, T, F]", "i": "[min, -1, 0, 1, max]", "u": "[0, 1, 2, max-1, max]",
            "f": "[0.0, -0.0, 1.5, inf, nan]", "c": "[0, 1+2j, -1.5-0.25j, inf-0j, nan+1j]"}[dt.kind]


def block(dt):
    a = np.arange(24)
    if dt.kind == "b":
        v = (a % 3) == 0
    elif dt.kind == "i":
        v = a - 12
    elif dt.kind == "u":
        v = a
    elif dt.kind == "f":
        v = a * 0.5 - 6.0
    else:
        v = a * 0.5 + 1j * (a * 0.25 - 3.0)
    return v.astype(dt).reshape(2, 3, 4)


def gen_values():
    conn, ex = new_session()
    for name, value, note in values():
        G.add("val_" + name, "value", note, serialize(value))
        # The same value as a real materialize response from the stock server.
        obj_id = ex._store_object(value)
        proxy = RPCProxy(path=name, obj_id=obj_id, connection=conn)
        _res, err = exchange(conn, lambda: materialize(proxy), None, None,
                             "resp_value_" + name, "materialize response, value = " + note)
        resp = response_dict_safe(conn)
        if resp is not None and resp.get("type") != "success":
            raise RuntimeError("materialize of %s failed: %r" % (name, resp))
        if err is not None and name != "dict_tuple_key":
            raise RuntimeError("client failed to decode %s: %r" % (name, err))


def response_dict_safe(conn):
    try:
        return response_dict(conn)
    except TypeError:
        return None  # dict_tuple_key: the stock deserialize cannot build it


# --------------------------------------------------------------------------

def main(argv):
    if simplerpyc.__version__ != EXPECTED_VERSION:
        sys.exit("need simplerpyc==%s, found %s" % (EXPECTED_VERSION, simplerpyc.__version__))
    if len(argv) > 1:
        outdir = argv[1]
    else:
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        outdir = os.path.join(repo, "core", "tests", "golden")
    gen_protocol()
    gen_values()
    total = G.write(outdir)
    print("wrote %d frames (%d bytes) + manifest.json to %s" % (len(G.frames), total, outdir))


if __name__ == "__main__":
    main(sys.argv)
