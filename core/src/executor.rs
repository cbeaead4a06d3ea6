//! The executor: what a host (Rust, C, Python) implements to serve requests.
//!
//! One executor instance serves one client. It holds the objects it returned,
//! each under a [`Handle`] of its own choosing; the server session maps the
//! protocol's object ids to those handles and tells the executor when a handle
//! is no longer used ([`Executor::release`]).
//!
//! Call arguments and `getitem` keys reach the executor in two forms at once
//! ([`Arguments`], [`Key`]): decoded, with proxy references already resolved
//! to [`Value::Handle`]s, for executors written in Rust; and as the frame's
//! own msgpack bytes plus the resolved handles in order, for executors that
//! decode msgpack themselves (C, Python), so nothing is encoded twice.

use bytes::Bytes;

use crate::message::RemoteError;
use crate::value::{Handle, RawValue, Value};

/// The arguments of a `call`.
///
/// `args` and `kwargs` are decoded, each proxy reference replaced by the
/// [`Value::Handle`] it names. `raw_args` and `raw_kwargs` are the same
/// arguments as the frame carried them (a msgpack array and a msgpack map,
/// shared with the frame, not copied); in them each proxy reference is still
/// the reference's marker map `{"__rpc_proxy__": true, "obj_id": N}` with the
/// *client's* id, and `refs` holds the handle each marker stands for, in the
/// order the markers appear in `raw_args` and then `raw_kwargs`. The session
/// has checked every marker: an executor that decodes the bytes replaces the
/// i-th map holding the key `"__rpc_proxy__"` by the object of `refs[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Arguments {
    /// Positional arguments, decoded, references resolved.
    pub args: Vec<Value>,
    /// Keyword arguments, decoded, references resolved.
    pub kwargs: Vec<(String, Value)>,
    /// The positional arguments as a msgpack array, as the frame carried them.
    pub raw_args: RawValue,
    /// The keyword arguments as a msgpack map, as the frame carried them
    /// (an empty map when the frame had none).
    pub raw_kwargs: RawValue,
    /// The handle of each proxy reference in `raw_args` then `raw_kwargs`.
    pub refs: Vec<Handle>,
}

impl Arguments {
    /// Arguments built from values (a Rust caller, a test): the raw forms are
    /// encoded from them, with handles as markers naming the handle itself.
    pub fn from_values(args: Vec<Value>, kwargs: Vec<(String, Value)>) -> Self {
        let mut refs = Vec::new();
        let raw_args = raw_for(&Value::List(args.clone()), &mut refs);
        let raw_kwargs = raw_for(&Value::map(kwargs.clone()), &mut refs);
        Arguments {
            args,
            kwargs,
            raw_args,
            raw_kwargs,
            refs,
        }
    }
}

/// The key of a `getitem`, in the two forms [`Arguments`] describes.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key, decoded, references resolved.
    pub value: Value,
    /// The key as the frame carried it.
    pub raw: RawValue,
    /// The handle of each proxy reference in `raw`, in order.
    pub refs: Vec<Handle>,
}

impl Key {
    /// A key built from a value (see [`Arguments::from_values`]).
    pub fn from_value(value: Value) -> Self {
        let mut refs = Vec::new();
        let raw = raw_for(&value, &mut refs);
        Key { value, raw, refs }
    }
}

/// Encode `v` with each handle written as a marker naming itself.
fn raw_for(v: &Value, refs: &mut Vec<Handle>) -> RawValue {
    let mut v = v.clone();
    let _ = v.walk_mut(&mut |x: &mut Value| {
        if let Value::Handle(h) = *x {
            refs.push(h);
            *x = Value::Proxy(crate::ObjId(h.0));
        }
        Ok::<(), ()>(())
    });
    let bytes = crate::codec::to_vec(&v).unwrap_or_else(|_| vec![0xc0]);
    RawValue::new(Bytes::from(bytes)).expect("the codec writes valid msgpack")
}

/// An error an executor operation raised; it reaches the client as a remote exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecError {
    /// Qualified exception type, `"builtins.ValueError"`.
    pub exception_type: String,
    /// The message.
    pub message: String,
    /// A formatted traceback, possibly empty.
    pub traceback: String,
    /// An optional opaque payload (the Python executor puts a pickle of the
    /// exception here, as the reference does).
    pub payload: Option<Bytes>,
}

impl ExecError {
    /// An error with a type and a message.
    pub fn new(exception_type: impl Into<String>, message: impl Into<String>) -> Self {
        ExecError {
            exception_type: exception_type.into(),
            message: message.into(),
            traceback: String::new(),
            payload: None,
        }
    }

    /// Attach a traceback text.
    pub fn with_traceback(mut self, traceback: impl Into<String>) -> Self {
        self.traceback = traceback.into();
        self
    }

    /// `builtins.TypeError` with a message.
    pub fn type_error(message: impl Into<String>) -> Self {
        ExecError::new("builtins.TypeError", message)
    }

    /// `builtins.ValueError` with a message.
    pub fn value_error(message: impl Into<String>) -> Self {
        ExecError::new("builtins.ValueError", message)
    }

    /// `builtins.AttributeError` with a message.
    pub fn attribute_error(message: impl Into<String>) -> Self {
        ExecError::new("builtins.AttributeError", message)
    }

    /// `builtins.NotImplementedError`: the operation is not offered by this executor.
    pub fn unsupported(op: &str) -> Self {
        ExecError::new(
            "builtins.NotImplementedError",
            format!("this server's executor does not support {op}"),
        )
    }
}

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.exception_type, self.message)
    }
}

impl std::error::Error for ExecError {}

impl From<ExecError> for RemoteError {
    fn from(e: ExecError) -> Self {
        RemoteError {
            exception_type: e.exception_type,
            message: e.message,
            traceback: e.traceback,
            payload: e.payload,
            brief: false,
            cause: crate::message::Cause::NONE,
        }
    }
}

/// What a `getattr` or `call` acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// An object the executor holds. `path` is the client's trail to it; the
    /// reference calls the attribute named by its last component when the
    /// object itself is not callable.
    Object {
        /// the object
        handle: Handle,
        /// the client's human-readable trail (`"env.step"`)
        path: &'a str,
    },
    /// No object: the reference evaluates `path` in the client's globals.
    Path(&'a str),
}

/// Result type of executor operations.
pub type ExecResult<T> = Result<T, ExecError>;

/// The operations a host implements. Defaults answer "not supported", so an
/// executor implements what it offers (a Rust registry has no `eval`).
pub trait Executor {
    /// Import a (possibly dotted) module.
    fn import_module(&mut self, module: &str) -> ExecResult<Handle>;

    /// Look up a builtin by name.
    fn get_builtin(&mut self, name: &str) -> ExecResult<Handle> {
        let _ = name;
        Err(ExecError::unsupported("builtins"))
    }

    /// `getattr(target, attr)`.
    fn getattr(&mut self, target: Target<'_>, attr: &str) -> ExecResult<Handle>;

    /// `target(*args, **kwargs)`.
    fn call(&mut self, target: Target<'_>, args: Arguments) -> ExecResult<Handle>;

    /// `obj[key]`; the key may hold slices and handles.
    fn getitem(&mut self, obj: Handle, key: Key) -> ExecResult<Handle>;

    /// The object's value, to be sent to the client. An executor holding the
    /// value as msgpack answers [`Value::Raw`], which is sent as it is.
    fn materialize(&mut self, obj: Handle) -> ExecResult<Value>;

    /// Evaluate an expression in this client's globals.
    fn eval(&mut self, expr: &str) -> ExecResult<Handle> {
        let _ = expr;
        Err(ExecError::unsupported("eval"))
    }

    /// Execute statements in this client's globals.
    fn execute(&mut self, code: &str) -> ExecResult<()> {
        let _ = code;
        Err(ExecError::unsupported("execute"))
    }

    /// Install a function sent as opaque bytes under `name`.
    fn teleport(&mut self, func: Bytes, name: &str) -> ExecResult<Handle> {
        let _ = (func, name);
        Err(ExecError::unsupported("teleport"))
    }

    /// The names in this client's globals with a description of their types.
    fn namespace(&mut self) -> ExecResult<Vec<(String, String)>> {
        Ok(Vec::new())
    }

    /// The session no longer uses `handle`: drop the object it names.
    fn release(&mut self, handle: Handle);

    /// A handle this executor answered for the request that just failed
    /// (an answer it then withdrew, as a C callback that answers a handle
    /// and returns a failure does). The session takes it after each failed
    /// request and releases it unless one of the client's ids names it (a
    /// singleton answered again), so a handle is released only when the last
    /// id naming it goes. The default: none.
    fn take_withdrawn(&mut self) -> Option<Handle> {
        None
    }

    /// A response frame the transport has written, handed back for reuse:
    /// an executor that copies large values into frames of its own may keep
    /// it and build its next one in it (see
    /// [`RawValue::copy_from_parts_into`](crate::RawValue::copy_from_parts_into)),
    /// so that stepping an environment that answers an image each step
    /// allocates no new frame each step. What it does not keep it gives
    /// back (the session then builds its next response in it); the default
    /// gives it back.
    fn recycle(&mut self, frame: Vec<u8>) -> Option<Vec<u8>> {
        Some(frame)
    }

    /// Drop what [`Executor::recycle`] kept: the connection is idle.
    fn trim(&mut self) {}
}

impl<E: Executor + ?Sized> Executor for Box<E> {
    fn import_module(&mut self, module: &str) -> ExecResult<Handle> {
        (**self).import_module(module)
    }
    fn get_builtin(&mut self, name: &str) -> ExecResult<Handle> {
        (**self).get_builtin(name)
    }
    fn getattr(&mut self, target: Target<'_>, attr: &str) -> ExecResult<Handle> {
        (**self).getattr(target, attr)
    }
    fn call(&mut self, target: Target<'_>, args: Arguments) -> ExecResult<Handle> {
        (**self).call(target, args)
    }
    fn getitem(&mut self, obj: Handle, key: Key) -> ExecResult<Handle> {
        (**self).getitem(obj, key)
    }
    fn materialize(&mut self, obj: Handle) -> ExecResult<Value> {
        (**self).materialize(obj)
    }
    fn eval(&mut self, expr: &str) -> ExecResult<Handle> {
        (**self).eval(expr)
    }
    fn execute(&mut self, code: &str) -> ExecResult<()> {
        (**self).execute(code)
    }
    fn teleport(&mut self, func: Bytes, name: &str) -> ExecResult<Handle> {
        (**self).teleport(func, name)
    }
    fn namespace(&mut self) -> ExecResult<Vec<(String, String)>> {
        (**self).namespace()
    }
    fn recycle(&mut self, frame: Vec<u8>) -> Option<Vec<u8>> {
        (**self).recycle(frame)
    }
    fn trim(&mut self) {
        (**self).trim()
    }
    fn release(&mut self, handle: Handle) {
        (**self).release(handle)
    }
    fn take_withdrawn(&mut self) -> Option<Handle> {
        (**self).take_withdrawn()
    }
}
