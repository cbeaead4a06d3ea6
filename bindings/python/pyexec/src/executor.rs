//! The executor: every operation a call into the client's
//! `PythonExecutor`, with the GIL held for the call only.

use std::thread::ThreadId;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use pyo3::{ffi, IntoPyObjectExt};
use simplerpc_core::{
    Arguments, Bytes, ExecError, ExecResult, Executor, Handle, Key, RawValue, Target, Value,
};

/// One client's Python executor (see the crate documentation).
pub struct PyExecutor {
    inner: Result<Inner, ExecError>,
}

struct Inner {
    executor: Py<PyAny>,
    describe: Py<PyAny>,
    /// The thread state kept for the thread that made the executor (a
    /// server's worker thread, which Python does not know): each call then
    /// only takes the GIL instead of making and destroying a thread state.
    gil: Option<(ThreadId, ffi::PyGILState_STATE)>,
}

impl std::fmt::Debug for PyExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyExecutor")
            .field("ready", &self.inner.is_ok())
            .finish_non_exhaustive()
    }
}

/// An exception as an [`ExecError`], described by `describe_exception`
/// (`None`: the package is not there; the error then says what to do).
fn exec_error(py: Python<'_>, describe: Option<&Py<PyAny>>, e: PyErr) -> ExecError {
    let value = e.value(py).clone();
    if let Some(describe) = describe {
        if let Ok((etype, message, traceback, payload)) = describe
            .call1(py, (value.clone(),))
            .and_then(|d| d.extract::<(String, String, String, Option<Vec<u8>>)>(py))
        {
            return ExecError {
                exception_type: etype,
                message,
                traceback,
                payload: payload.map(Bytes::from),
            };
        }
    }
    let etype = value
        .get_type()
        .fully_qualified_name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "builtins.Exception".into());
    let etype = if etype.contains('.') {
        etype
    } else {
        format!("builtins.{etype}")
    };
    ExecError::new(
        etype,
        value.str().map(|s| s.to_string()).unwrap_or_default(),
    )
}

impl PyExecutor {
    /// A fresh executor with its own globals and objects. `tuples`: the
    /// client's connection negotiated the `tuple` extension (tuples travel
    /// as tuples both ways; `ClientInfo::extensions.tuples()` for a
    /// WebSocket server). Fails when `simplerpc` cannot be imported.
    pub fn new(tuples: bool) -> ExecResult<PyExecutor> {
        let inner = Python::attach(|py| -> ExecResult<Inner> {
            let module = py.import("simplerpc._executor").map_err(|e| {
                let mut err = exec_error(py, None, e);
                err.message = format!(
                    "{} (PyExecutor needs the simplerpc Python package: pip install ./bindings/python, \
                     and PYTHONPATH pointing at its site-packages when Python is embedded)",
                    err.message
                );
                err
            })?;
            let describe = module
                .getattr("describe_exception")
                .map_err(|e| exec_error(py, None, e))?
                .unbind();
            let executor = module
                .getattr("PythonExecutor")
                .and_then(|cls| cls.call0())
                .and_then(|ex| ex.setattr("tuples", tuples).map(|_| ex))
                .map_err(|e| exec_error(py, Some(&describe), e))?
                .unbind();
            // SAFETY: the GIL is held (attach); the state is released in
            // Drop, on this thread.
            let state = unsafe { ffi::PyGILState_Ensure() };
            Ok(Inner {
                executor,
                describe,
                gil: Some((std::thread::current().id(), state)),
            })
        });
        inner.map(|inner| PyExecutor { inner: Ok(inner) })
    }

    /// An executor that answers every request with `error` (for a server
    /// whose factory could not make one: the client is told why).
    pub fn failed(error: ExecError) -> PyExecutor {
        PyExecutor { inner: Err(error) }
    }

    fn run<T>(
        &mut self,
        f: impl for<'py> FnOnce(Python<'py>, &Bound<'py, PyAny>) -> PyResult<T>,
    ) -> ExecResult<T> {
        let inner = self.inner.as_ref().map_err(Clone::clone)?;
        Python::attach(|py| {
            f(py, inner.executor.bind(py)).map_err(|e| exec_error(py, Some(&inner.describe), e))
        })
    }

    fn handle(
        &mut self,
        f: impl for<'py> FnOnce(Python<'py>, &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>>,
    ) -> ExecResult<Handle> {
        self.run(|py, ex| f(py, ex)?.extract::<u64>().map(Handle))
    }
}

impl Drop for PyExecutor {
    fn drop(&mut self) {
        if let Ok(inner) = &mut self.inner {
            let gil = inner.gil.take();
            Python::attach(|_py| {
                if let Some((thread, state)) = gil {
                    if thread == std::thread::current().id() {
                        // SAFETY: the nested ensure of `new`, on this thread; the GIL is held.
                        unsafe { ffi::PyGILState_Release(state) };
                    }
                }
            });
        }
    }
}

fn target<'py>(py: Python<'py>, t: Target<'_>) -> PyResult<(Bound<'py, PyAny>, String)> {
    Ok(match t {
        Target::Object { handle, path } => (handle.0.into_bound_py_any(py)?, path.to_owned()),
        Target::Path(path) => (py.None().into_bound(py), path.to_owned()),
    })
}

fn handles<'py>(py: Python<'py>, refs: &[Handle]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, refs.iter().map(|h| h.0))
}

impl Executor for PyExecutor {
    fn import_module(&mut self, module: &str) -> ExecResult<Handle> {
        self.handle(|_, ex| ex.call_method1("import_module", (module,)))
    }

    fn get_builtin(&mut self, name: &str) -> ExecResult<Handle> {
        self.handle(|_, ex| ex.call_method1("get_builtin", (name,)))
    }

    fn getattr(&mut self, t: Target<'_>, attr: &str) -> ExecResult<Handle> {
        self.handle(|py, ex| {
            let (obj, path) = target(py, t)?;
            ex.call_method1("getattr", (obj, path, attr))
        })
    }

    fn call(&mut self, t: Target<'_>, args: Arguments) -> ExecResult<Handle> {
        self.handle(|py, ex| {
            let (obj, path) = target(py, t)?;
            let raw_args = PyBytes::new(py, args.raw_args.as_bytes());
            let raw_kwargs = PyBytes::new(py, args.raw_kwargs.as_bytes());
            ex.call_method1(
                "call",
                (obj, path, raw_args, raw_kwargs, handles(py, &args.refs)?),
            )
        })
    }

    fn getitem(&mut self, obj: Handle, key: Key) -> ExecResult<Handle> {
        self.handle(|py, ex| {
            ex.call_method1(
                "getitem",
                (
                    obj.0,
                    PyBytes::new(py, key.raw.as_bytes()),
                    handles(py, &key.refs)?,
                ),
            )
        })
    }

    fn materialize(&mut self, obj: Handle) -> ExecResult<Value> {
        let raw = self.run(|py, ex| {
            let parts = ex.call_method1("materialize", (obj.0,))?;
            // The parts (an array's own memory among them) joined by Python
            // into one bytes object, then checked and copied into the frame.
            let joined = PyBytes::new(py, b"").call_method1("join", (parts,))?;
            let joined = joined.cast::<PyBytes>()?;
            Ok(RawValue::copy_from_slice(joined.as_bytes()))
        })?;
        raw.map(Value::Raw).map_err(|e| {
            ExecError::value_error(format!("the Python executor made invalid msgpack: {e}"))
        })
    }

    fn eval(&mut self, expr: &str) -> ExecResult<Handle> {
        self.handle(|_, ex| ex.call_method1("eval", (expr,)))
    }

    fn execute(&mut self, code: &str) -> ExecResult<()> {
        self.run(|_, ex| ex.call_method1("execute", (code,)).map(|_| ()))
    }

    fn teleport(&mut self, func: Bytes, name: &str) -> ExecResult<Handle> {
        self.handle(|py, ex| ex.call_method1("teleport", (PyBytes::new(py, &func), name)))
    }

    fn namespace(&mut self) -> ExecResult<Vec<(String, String)>> {
        self.run(|_, ex| {
            // As PythonExecutor.namespace: {name: str(type(value))}.
            let globals = ex.getattr("globals")?;
            let globals = globals.cast::<PyDict>()?;
            globals
                .iter()
                .map(|(k, v)| Ok((k.str()?.to_string(), v.get_type().str()?.to_string())))
                .collect()
        })
    }

    fn release(&mut self, handle: Handle) {
        let _ = self.run(|_, ex| ex.call_method1("release", (handle.0,)).map(|_| ()));
    }
}
