"""Build hook: compile libsimplerpc (../../ffi) with cargo via setuptools-rust.

The library has no Python bindings of its own (Binding.NoBinding); the
package loads it with ctypes, whatever the file ends up being called.
"""

import os

from setuptools import setup
from setuptools_rust import Binding, RustExtension

HERE = os.path.dirname(os.path.abspath(__file__))

setup(
    rust_extensions=[
        RustExtension(
            "simplerpc._libsimplerpc",
            path=os.path.relpath(os.path.join(HERE, "..", "..", "ffi", "Cargo.toml"), HERE),
            binding=Binding.NoBinding,
            py_limited_api=True,
            debug=False,
        )
    ],
    zip_safe=False,
)
