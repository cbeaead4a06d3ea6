"""Build hook: compile libsimplerpc (../../ffi) with cargo via setuptools-rust.

The library has no Python bindings of its own (Binding.NoBinding); the
package loads it with ctypes, whatever the file ends up being called. It
therefore does not depend on the Python that builds it, and the wheel is
tagged ``py3-none-<platform>``: built once, it installs on every CPython
(3.8 and later) of that platform.

This file works with every setuptools from 62.4 (the oldest setuptools-rust
1.5 accepts, and one that Python 3.8 still gets) to the newest, and with
the ``bdist_wheel`` of ``wheel`` (setuptools < 70.1) or of setuptools.
"""

import os
import shutil

import setuptools
from setuptools import setup
from setuptools.command.build_py import build_py as _build_py
from setuptools_rust import Binding, RustExtension

try:  # setuptools >= 70.1 has its own bdist_wheel
    from setuptools.command.bdist_wheel import bdist_wheel as _bdist_wheel
except ImportError:  # older setuptools: the one of the `wheel` package
    from wheel.bdist_wheel import bdist_wheel as _bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))


class build_py(_build_py):
    """The build, from a clean package directory.

    pip builds in the source tree, and setuptools leaves ``build/lib*`` in
    place: a file from an earlier build (a module since deleted, or the
    accelerator of a ``SIMPLERPC_SPEEDUPS=1`` build) went into every later
    wheel. The package's build directory is emptied first (build_py runs
    before the extensions are built into it).
    """

    def run(self):
        shutil.rmtree(os.path.join(self.build_lib, "simplerpc"), ignore_errors=True)
        super().run()


class bdist_wheel(_bdist_wheel):
    """A platform wheel (it holds a native library) for any Python 3.

    bdist_wheel tags a wheel with a native file ``cpXY-cpXY-<platform>``,
    since it assumes an extension module built for that interpreter. Ours is
    a plain shared library loaded with ctypes, so only the platform matters.
    (setuptools-rust subclasses this class for its own options and keeps the
    tag we return.)
    """

    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False  # the library goes to platlib

    def get_tag(self):
        _python, _abi, plat = super().get_tag()
        if SPEEDUPS:  # an extension module for the limited API of CPython 3.8+
            return "cp38", "abi3", plat
        return "py3", "none", plat


def _license_metadata():
    # PEP 639: setuptools >= 77 takes an SPDX expression (and deprecates the
    # free-text `license`); older ones, all that Python 3.8 can install, know
    # only the free-text field. pyproject.toml declares `license` dynamic so
    # that each gets the form it understands.
    major = int(setuptools.__version__.split(".")[0])
    return {"license_expression": "MIT"} if major >= 77 else {"license": "MIT"}


# The optional accelerator simplerpc._speedups (bindings/python/speedups, a
# pyo3 extension for the limited API of CPython 3.8+), built only when
# SIMPLERPC_SPEEDUPS=1: the package works without it, through ctypes alone.
# A wheel with it is tied to CPython (cp38-abi3) instead of py3-none.
SPEEDUPS = os.environ.get("SIMPLERPC_SPEEDUPS", "0") not in ("", "0")

extensions = [
    RustExtension(
        "simplerpc._libsimplerpc",
        path=os.path.relpath(os.path.join(HERE, "..", "..", "ffi", "Cargo.toml"), HERE),
        binding=Binding.NoBinding,
        py_limited_api=True,  # names the file _libsimplerpc.abi3.so, not after one Python
        debug=False,
    )
]
if SPEEDUPS:
    extensions.append(
        RustExtension(
            "simplerpc._speedups",
            path=os.path.relpath(os.path.join(HERE, "speedups", "Cargo.toml"), HERE),
            binding=Binding.PyO3,
            features=["pyo3"],
            py_limited_api=True,
            debug=False,
        )
    )

setup(
    rust_extensions=extensions,
    cmdclass={"bdist_wheel": bdist_wheel, "build_py": build_py},
    zip_safe=False,
    **_license_metadata(),
)
