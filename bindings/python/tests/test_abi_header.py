"""The ctypes declarations of ``simplerpc._native`` against ``include/simplerpc.h``.

ctypes cannot read a C header, so ``_native.py`` restates the ABI by hand:
the ``srpc_*`` structs (each ctypes ``Structure`` names its C type in
``_c_type_``) and the ``SRPC_*`` enum constants. A C program compiled
against the committed header prints what C sees: every struct's size and
every field's offset, and the value of every enum constant of the header.
The test compares them with what ctypes sees, so a field added, moved or
resized in Rust fails here before it corrupts memory at run time.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess

import pytest

from simplerpc import _native

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
HEADER = os.path.join(ROOT, "include", "simplerpc.h")


def _structs():
    return {
        cls._c_type_: cls
        for cls in vars(_native).values()
        if isinstance(cls, type) and issubclass(cls, ctypes.Structure) and hasattr(cls, "_c_type_")
    }


def _header_constants():
    with open(HEADER, encoding="utf-8") as f:
        text = f.read()
    return sorted(set(re.findall(r"^\s+(SRPC_[A-Z0-9_]+) = -?\d+,?$", text, re.M)))


@pytest.fixture(scope="module")
def c_view(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler: the ABI check needs one (scripts/test.sh runs on a machine with gcc)")
    structs = _structs()
    lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "simplerpc.h"', "int main(void) {"]
    for cname, cls in structs.items():
        lines.append(f'  printf("size {cname} %zu\\n", sizeof({cname}));')
        for field, _ in cls._fields_:
            lines.append(f'  printf("offset {cname}.{field} %zu\\n", offsetof({cname}, {field}));')
    for const in _header_constants():
        lines.append(f'  printf("const {const} %lld\\n", (long long){const});')
    lines += ["  return 0;", "}"]
    d = tmp_path_factory.mktemp("abi")
    src, exe = d / "abi.c", d / "abi"
    src.write_text("\n".join(lines) + "\n")
    subprocess.run([cc, "-std=c11", "-Wall", "-Werror", "-I", os.path.dirname(HEADER), str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    view = {}
    for line in out.splitlines():
        kind, name, value = line.split()
        view[(kind, name)] = int(value)
    return view


def test_every_struct_is_declared():
    with open(HEADER, encoding="utf-8") as f:
        declared = set(re.findall(r"^typedef struct (srpc_\w+) \{", f.read(), re.M))
    assert declared, "no struct definitions found in the header"
    assert declared <= set(_structs()), f"structs of the header with no ctypes declaration: {sorted(declared - set(_structs()))}"


def test_struct_sizes_and_field_offsets_match(c_view):
    for cname, cls in _structs().items():
        assert ctypes.sizeof(cls) == c_view[("size", cname)], f"sizeof({cname})"
        for field, _ in cls._fields_:
            assert getattr(cls, field).offset == c_view[("offset", f"{cname}.{field}")], f"offsetof({cname}, {field})"


def test_the_accelerators_structs_match_the_header(c_view):
    """``simplerpc._speedups`` mirrors some structs in Rust (it fills an
    ``srpc_call`` and reads one in its executor callbacks): each struct it
    mirrors has the header's size, and each of its fields (the accelerator
    names every field the header has, no more, no fewer) the header's offset."""
    try:
        from simplerpc import _speedups  # type: ignore[attr-defined]
    except ImportError:
        pytest.skip("simplerpc._speedups is not built (SIMPLERPC_SPEEDUPS=1 pip install ./bindings/python)")
    mirrored = _speedups.layout()
    assert {"srpc_call", "srpc_response", "srpc_executor"} <= set(mirrored)
    structs = _structs()
    for cname, fields in mirrored.items():
        assert fields.pop("size") == c_view[("size", cname)], f"sizeof({cname})"
        declared = [f for f, _ in structs[cname]._fields_]
        assert sorted(fields) == sorted(declared), f"{cname}: the accelerator mirrors {sorted(fields)}, the header has {sorted(declared)}"
        for field, offset in fields.items():
            assert offset == c_view[("offset", f"{cname}.{field}")], f"offsetof({cname}, {field})"


def test_every_enum_constant_matches(c_view):
    constants = _header_constants()
    assert constants, "no SRPC_ constants found in the header"
    missing = [c for c in constants if not hasattr(_native, c)]
    assert not missing, f"header constants with no Python twin in _native: {missing}"
    for c in constants:
        assert getattr(_native, c) == c_view[("const", c)], c


def test_the_clients_own_copies_of_constants_match():
    """``_client`` keeps a few numbers so that ``import simplerpc`` needs no library."""
    from simplerpc import _client

    assert _client._KIND_GET_ATTR == _native.SRPC_CALL_KIND_GET_ATTR
    assert _client._KIND_CALL == _native.SRPC_CALL_KIND_CALL
    assert _client._KIND_GET_ITEM == _native.SRPC_CALL_KIND_GET_ITEM
    assert _client._KIND_MATERIALIZE == _native.SRPC_CALL_KIND_MATERIALIZE
    assert _client._KIND_EVAL == _native.SRPC_CALL_KIND_EVAL
    assert _client._PROMISE_BIT == _native.SRPC_PROMISE_BIT
    from simplerpc import _serialization

    assert _serialization._PROMISE_BIT == _native.SRPC_PROMISE_BIT


def test_defines_match():
    with open(HEADER, encoding="utf-8") as f:
        text = f.read()
    assert re.search(r"^#define SRPC_PROMISE_BIT 9223372036854775808ull$", text, re.M)
    assert _native.SRPC_PROMISE_BIT == 1 << 63
    assert re.search(r"^#define SRPC_NO_OBJECT UINT64_MAX$", text, re.M)
    assert _native.SRPC_NO_OBJECT == (1 << 64) - 1
