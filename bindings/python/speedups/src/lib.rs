//! `simplerpc._speedups`: an optional accelerator for the Python package.
//!
//! The package (`bindings/python/src/simplerpc`) talks to libsimplerpc with
//! ctypes, which works on every CPython from one build. This extension, an
//! abi3 module for CPython 3.8 and later, takes over the hot paths where
//! ctypes costs the most, calling the *same* loaded libsimplerpc through the
//! function pointers the package hands it (`bind`), never a second copy:
//!
//! * the client's requests: the `srpc_call` is built from the Python
//!   arguments here (no ctypes structures, no keep-alive lists), and the
//!   library is called with the GIL released;
//! * path trails (`srpc_trail`);
//! * the server's dispatch: an `srpc_executor` whose callbacks are Rust
//!   functions calling the Python executor's methods, instead of ctypes
//!   callbacks that build ctypes objects for every call.
//!
//! Without the `pyo3` cargo feature this crate is empty, so that the
//! workspace builds without Python. The package uses the module when it is
//! installed (`SIMPLERPC_SPEEDUPS=1 pip install ./bindings/python`) unless
//! `SIMPLERPC_NO_SPEEDUPS=1` is set.

#[cfg(feature = "pyo3")]
mod abi;
#[cfg(feature = "pyo3")]
mod buffer;
#[cfg(feature = "pyo3")]
mod client;
#[cfg(feature = "pyo3")]
mod codec;
#[cfg(feature = "pyo3")]
mod server;

#[cfg(feature = "pyo3")]
use pyo3::prelude::*;

/// The extension module `simplerpc._speedups`.
#[cfg(feature = "pyo3")]
#[pymodule]
fn _speedups(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(abi::bind, m)?)?;
    m.add_function(wrap_pyfunction!(abi::layout, m)?)?;
    m.add_function(wrap_pyfunction!(client::client_call, m)?)?;
    m.add_function(wrap_pyfunction!(client::client_wait, m)?)?;
    m.add_function(wrap_pyfunction!(client::trail, m)?)?;
    m.add_function(wrap_pyfunction!(codec::packb_parts, m)?)?;
    m.add_function(wrap_pyfunction!(codec::unpackb, m)?)?;
    m.add_class::<server::Dispatcher>()?;
    Ok(())
}
