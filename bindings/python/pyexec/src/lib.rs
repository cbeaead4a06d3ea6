//! `PyExecutor`: simplerpc core's [`Executor`](simplerpc_core::Executor)
//! over CPython, for a Rust host that serves Python objects (cargo feature
//! `pyo3`; without it this crate is empty).
//!
//! Each executor is one client's Python world, with the semantics of the
//! Python package's server: it drives a `simplerpc._executor.PythonExecutor`
//! (per-client globals, the object table, modules, builtins, eval/execute,
//! teleport with dill) and turns every Python exception into an
//! [`ExecError`](simplerpc_core::ExecError) with the qualified type,
//! message, traceback and pickled payload that `describe_exception` gives,
//! so a client sees exactly the errors it would from `python -m
//! simplerpc.server`. The `simplerpc` package (and numpy and dill, for what
//! uses them) must be importable by the interpreter: set `PYTHONPATH` to a
//! venv's site-packages when embedding.
//!
//! The interpreter is the one of the process: embedded (started on first
//! use, pyo3's `auto-initialize`) in a Rust binary such as the example
//! `py_server`, or the hosting one when this runs inside a Python process.

#[cfg(feature = "pyo3")]
mod executor;

#[cfg(feature = "pyo3")]
pub use executor::PyExecutor;
