//! Proxies: remote objects held by id, as the reference client's `RPCProxy`.
//!
//! Every operation on a [`Proxy`] returns another proxy; only
//! [`Proxy::materialize`] brings an object's value over. With a server that
//! accepted the `promise` extension (ours), `getattr`, `call`, `getitem`
//! and `eval` return at once with a proxy of the promised result, and the
//! whole chain travels with the next wait: `f.call(..)?.materialize()?` is
//! one round trip. An error of the chain comes back from that wait, with
//! its original type; an error of a request nobody waits for comes back
//! from the next wait, naming the expression it came from. Against a stock
//! server every operation waits for its answer, as before. Dropping the last
//! clone of a proxy queues the release of its object, which rides on the
//! next request (with the `release` extension; a stock server frees objects
//! when the client disconnects).
//!
//! Arguments are tuples of serde types (`call((2, 5))`), keyword arguments
//! pairs (`call_kw((), [("dtype", "float32")])`), and a value comes back as
//! any serde type, `ndarray` array or `Value` ([`Proxy::materialize_as`]):
//!
//! ```no_run
//! use simplerpc_ws::{Client, ClientConfig, ndarray::Array2};
//!
//! let client = Client::connect(&ClientConfig::from_env()?)?;
//! let np = client.module("numpy")?;
//! let zeros = np.getattr("zeros")?.call_kw(((2, 3),), [("dtype", "float32")])?;
//! let a: Array2<f32> = zeros.materialize_as()?;
//! assert_eq!(a.shape(), &[2, 3]);
//! let n: i64 = np.getattr("add")?.call((3, 4))?.materialize_as()?; // np.int64 reads as i64
//! assert_eq!(n, 7);
//! # Ok::<(), simplerpc_ws::Error>(())
//! ```

use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use simplerpc_core::typed::{IntoArgs, IntoKwargs};
use simplerpc_core::{trail, ConvertError, ObjId, Request, Response, Value};

use crate::client::Client;
use crate::error::Error;

/// A remote object. Clones share it; the object is released when the last
/// clone drops.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<ProxyInner>,
}

struct ProxyInner {
    client: Client,
    id: ObjId,
    path: String,
}

impl Drop for ProxyInner {
    fn drop(&mut self) {
        if let Some(n) = self.id.as_promise() {
            self.client.forget_expr(n);
        }
        self.client.release(self.id);
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("id", &self.inner.id.0)
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Client {
    /// Send `request`; a remote exception becomes [`Error::Remote`].
    ///
    /// Like every wait of the proxy layer, it then reports the error of a
    /// pipelined request nobody waited for, if there is one (see
    /// [`Client::take_failure`]), so that no error is lost. A request that
    /// returned an object is answered by [`Client::call_object`] instead,
    /// which holds the object before it reports such an error.
    pub fn call(&self, request: &Request) -> Result<Response, Error> {
        let response = self.call_quiet(request)?;
        self.check_failures()?;
        Ok(response)
    }

    /// [`Client::call`] without the report of pipelined failures.
    fn call_quiet(&self, request: &Request) -> Result<Response, Error> {
        match self.request(request)? {
            Response::Error(e) => Err(Error::Remote(e)),
            ok => Ok(ok),
        }
    }

    /// The error of a pipelined request nobody waited for, if any, naming
    /// its expression.
    fn check_failures(&self) -> Result<(), Error> {
        let Some((failed, mut e)) = self.take_failure() else {
            return Ok(());
        };
        let expr = self
            .expr_of(failed.0)
            .unwrap_or_else(|| format!("request {}", failed.0));
        e.message = format!(
            "{} (raised by {expr}, whose result nobody waited for)",
            e.message
        );
        Err(Error::Remote(e))
    }

    /// Send `request`, expecting an object id, and hold it as a proxy named
    /// `path`. Waits for the answer.
    pub fn call_object(&self, request: &Request, path: String) -> Result<Proxy, Error> {
        match self.call_quiet(request)? {
            Response::Object(id) => {
                // Held first, so that a failure reported now drops (and so
                // releases) it rather than leaking it.
                let proxy = Proxy::new(self.clone(), id, path);
                self.check_failures()?;
                Ok(proxy)
            }
            other => Err(unexpected(request, &other)),
        }
    }

    /// As [`Client::call_object`], but pipelined when the server accepted
    /// promises: the proxy holds the promise of the result at once.
    fn promise_object(&self, request: &Request, path: String) -> Result<Proxy, Error> {
        if !self.promises() {
            return self.call_object(request, path);
        }
        let promise = self.send_pipelined(request)?;
        self.note_expr(promise, &path);
        Ok(Proxy::new(self.clone(), promise, path))
    }

    /// Send `request` and wait for its answer, then report the error of any
    /// pipelined request that no wait has reported yet (naming its
    /// expression), so that no error is lost.
    fn call_waiting(&self, request: &Request) -> Result<Response, Error> {
        let id = self.send(request)?;
        let (response, _) = self.wait(id)?;
        if let Response::Error(e) = response {
            return Err(Error::Remote(e));
        }
        self.check_failures()?;
        Ok(response)
    }

    /// `import module` on the server (dotted names work: `"os.path"`).
    pub fn module(&self, name: &str) -> Result<Proxy, Error> {
        let req = Request::ImportModule {
            module: name.into(),
        };
        self.call_object(&req, trail::module(name))
    }

    /// A builtin of the server by name (`"len"`).
    pub fn builtin(&self, name: &str) -> Result<Proxy, Error> {
        let req = Request::GetBuiltin { name: name.into() };
        self.call_object(&req, trail::builtin(name))
    }

    /// Evaluate an expression in this client's globals on the server
    /// (pipelined: see the module docs).
    pub fn eval(&self, expr: &str) -> Result<Proxy, Error> {
        let req = Request::Eval { expr: expr.into() };
        self.promise_object(&req, trail::eval(expr))
    }

    /// Execute statements in this client's globals on the server.
    pub fn execute(&self, code: &str) -> Result<(), Error> {
        let req = Request::Execute { code: code.into() };
        match self.call(&req)? {
            Response::Done => Ok(()),
            other => Err(unexpected(&req, &other)),
        }
    }

    /// The names in this client's globals and a description of their types.
    pub fn namespace(&self) -> Result<Vec<(String, String)>, Error> {
        let req = Request::GetNamespace;
        match self.call(&req)? {
            Response::Namespace(names) => Ok(names),
            other => Err(unexpected(&req, &other)),
        }
    }

    /// Install a function sent as opaque bytes (a dill pickle for a Python
    /// server) under `name` in this client's globals.
    pub fn teleport(&self, func: impl Into<Bytes>, name: &str) -> Result<Proxy, Error> {
        let req = Request::Teleport {
            func_bytes: func.into(),
            name: name.into(),
        };
        self.call_object(&req, trail::teleport(name))
    }

    /// A proxy for an object id this client already holds (for example one
    /// from [`Client::request`]); it is released when the proxy drops.
    pub fn proxy(&self, id: ObjId, path: impl Into<String>) -> Proxy {
        Proxy::new(self.clone(), id, path.into())
    }
}

impl Proxy {
    fn new(client: Client, id: ObjId, path: String) -> Proxy {
        Proxy {
            inner: Arc::new(ProxyInner { client, id, path }),
        }
    }

    /// The object's id on the server.
    pub fn id(&self) -> ObjId {
        self.inner.id
    }

    /// The human-readable trail to the object, as the reference client
    /// builds it (`"os.path.join"`, `"builtins.len"`, `"f()"`, `"x[1:3]"`).
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The client the object lives on.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// A reference to this object, to pass as an argument or key. The server
    /// frees released objects only after the request that carries the release
    /// has run, so the reference stays valid for the next request even if the
    /// proxy is dropped first; keep the proxy for any later use.
    pub fn as_value(&self) -> Value {
        Value::Proxy(self.inner.id)
    }

    /// `obj.attr`.
    pub fn getattr(&self, attr: &str) -> Result<Proxy, Error> {
        let path = trail::getattr(&self.inner.path, attr);
        let req = Request::GetAttr {
            path: self.inner.path.clone(),
            obj_id: Some(self.inner.id),
            attr: attr.into(),
        };
        self.inner.client.promise_object(&req, path)
    }

    /// `obj(*args)`: the arguments a tuple of serde types (`(2, 5)`, `(x,)`
    /// for one; a [`Value`], an `NdArray` or a `&Proxy` passes as it is),
    /// `()` for none, or a `Vec<Value>`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use simplerpc_registry::{Module, Registry};
    /// # use simplerpc_ws::{Client, ClientConfig, Server, ServerConfig};
    /// // A Rust server with `operator.add`, on a free port.
    /// let registry = Arc::new(Registry::new().module(
    ///     Module::new("operator").function("add", |a: i64, b: i64| a + b),
    /// ));
    /// let server = Server::bind(
    ///     ServerConfig { host: "127.0.0.1".into(), port: 0, ..ServerConfig::default() },
    ///     move |_| registry.executor(),
    /// )?
    /// .spawn()?;
    /// let client = Client::connect(&ClientConfig::new("127.0.0.1", server.local_addr().port(), server.token()))?;
    ///
    /// let add = client.module("operator")?.getattr("add")?;
    /// let sum: i64 = add.call((2, 5))?.materialize_as()?;
    /// assert_eq!(sum, 7);
    /// # drop((add, client));
    /// # server.shutdown();
    /// # Ok::<(), simplerpc_ws::Error>(())
    /// ```
    pub fn call(&self, args: impl IntoArgs) -> Result<Proxy, Error> {
        self.call_kw(args, ())
    }

    /// `obj(*args, **kwargs)`: the arguments as for [`Proxy::call`], the
    /// keyword arguments pairs of a name and a serde value (`[("seed", 3)]`,
    /// `(("seed", 3), ("name", "cart"))`, or a `Vec<(String, Value)>`).
    pub fn call_kw(&self, args: impl IntoArgs, kwargs: impl IntoKwargs) -> Result<Proxy, Error> {
        let args = args
            .into_args()
            .map_err(|e| argument_error("argument", e))?;
        let kwargs = kwargs
            .into_kwargs()
            .map_err(|e| argument_error("keyword argument", e))?;
        let path = trail::call(&self.inner.path);
        let req = Request::Call {
            path: self.inner.path.clone(),
            obj_id: Some(self.inner.id),
            args,
            kwargs,
        };
        self.inner.client.promise_object(&req, path)
    }

    /// `obj()`.
    pub fn call0(&self) -> Result<Proxy, Error> {
        self.call(())
    }

    /// `obj(*args)`, the arguments given as values.
    pub fn call_args(&self, args: Vec<Value>) -> Result<Proxy, Error> {
        self.call(args)
    }

    /// `obj[key]`; the key may be an int, a string, a slice, a list or a
    /// proxy. A list stays a list (numpy: fancy indexing); for a tuple key
    /// (`a[0, 1]`) use [`Proxy::getitem_tuple`].
    pub fn getitem(&self, key: impl Into<Value>) -> Result<Proxy, Error> {
        let key = key.into();
        let path = trail::getitem(&self.inner.path, &key, false);
        let req = Request::GetItem {
            obj_id: self.inner.id,
            key,
        };
        self.inner.client.promise_object(&req, path)
    }

    /// `obj[a, b, ...]`: a tuple key, built on the server as
    /// [`simplerpc_core::trail`] prescribes (`builtins.tuple` of the items),
    /// so a numpy array is indexed per axis, as `a[0, 1]` is in Python.
    pub fn getitem_tuple(&self, items: Vec<Value>) -> Result<Proxy, Error> {
        let path = trail::getitem(&self.inner.path, &Value::List(items.clone()), true);
        let client = &self.inner.client;
        let tuple = client.call_object(
            &trail::tuple_builtin_request(),
            trail::builtin(trail::TUPLE_BUILTIN),
        )?;
        let key = client.call_object(&trail::tuple_request(tuple.id(), items), String::new())?;
        let req = Request::GetItem {
            obj_id: self.inner.id,
            key: key.as_value(),
        };
        client.call_object(&req, path)
    }

    /// The object's value, sent over: the one wait of a pipelined chain.
    pub fn materialize(&self) -> Result<Value, Error> {
        let req = Request::Materialize {
            obj_id: self.inner.id,
        };
        match self.inner.client.call_waiting(&req)? {
            Response::Value(v) => Ok(v),
            other => Err(unexpected(&req, &other)),
        }
    }
}

impl Proxy {
    /// The object's value, sent over and read as `T`: any serde type (a
    /// struct from a Python `dict`, or from a tuple of its fields), a
    /// primitive (numpy scalars included), `String`, `Vec<T>`, a tuple, a
    /// `HashMap`, an `ndarray` array of exactly the sender's dtype, an
    /// `NdArray` or a [`Value`] (the last two share the frame's memory).
    /// A value that does not fit is [`Error::Convert`], naming the field.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use simplerpc_ws::{ndarray::Array1, Client, ClientConfig, Error};
    /// # use std::sync::Arc;
    /// # use simplerpc_registry::{Module, Registry, Serde};
    /// # use simplerpc_ws::{Server, ServerConfig};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct Step { obs: Array1<f64>, reward: f64, done: bool }
    ///
    /// // A Rust server whose `env.step(n)` returns a `Step`.
    /// let registry = Arc::new(Registry::new().module(Module::new("env").function(
    ///     "step",
    ///     |n: usize| Serde(Step { obs: Array1::zeros(n), reward: 1.0, done: false }),
    /// )));
    /// let server = Server::bind(
    ///     ServerConfig { host: "127.0.0.1".into(), port: 0, ..ServerConfig::default() },
    ///     move |_| registry.executor(),
    /// )?
    /// .spawn()?;
    /// let client = Client::connect(&ClientConfig::new("127.0.0.1", server.local_addr().port(), server.token()))?;
    ///
    /// let result = client.module("env")?.getattr("step")?.call((4,))?;
    /// let step: Step = result.materialize_as()?;
    /// assert_eq!((step.obs.len(), step.reward, step.done), (4, 1.0, false));
    ///
    /// // The wrong type: an error naming the field, nothing remote failed.
    /// #[derive(Deserialize, Debug)]
    /// struct Wrong { obs: Array1<u8> }
    /// let err = result.materialize_as::<Wrong>().unwrap_err();
    /// assert!(matches!(err, Error::Convert { .. }));
    /// assert!(err.to_string().ends_with("obs: expected an array of u8, found an array of float64"));
    /// # drop((result, client));
    /// # server.shutdown();
    /// # Ok::<(), simplerpc_ws::Error>(())
    /// ```
    pub fn materialize_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let value = self.materialize()?;
        simplerpc_core::from_value(value).map_err(|source| Error::Convert {
            what: format!(
                "{} cannot be read as {}",
                self.inner.path,
                short_type_name(std::any::type_name::<T>())
            ),
            source,
        })
    }
}

/// A type's name without module paths (`Vec<my_crate::Step>` -> `Vec<Step>`).
fn short_type_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut segment_start = 0;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            out.truncate(segment_start);
        } else {
            out.push(c);
            if !(c.is_alphanumeric() || c == '_') {
                segment_start = out.len();
            }
        }
    }
    out
}

fn argument_error(kind: &str, e: ConvertError) -> Error {
    Error::Convert {
        what: format!("{kind} {} has no protocol value", e.path()),
        source: ConvertError::new(e.message()),
    }
}

/// A proxy passed as an argument (in a tuple of arguments, or inside a
/// serde value) travels as the reference to its object, as
/// [`Proxy::as_value`] (keep the proxy until the call is sent).
impl serde::Serialize for Proxy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_value().serialize(s)
    }
}

impl From<&Proxy> for Value {
    fn from(p: &Proxy) -> Value {
        p.as_value()
    }
}

fn unexpected(request: &Request, response: &Response) -> Error {
    Error::UnexpectedResponse {
        request: request.type_name(),
        got: match response {
            Response::Object(_) => "an object id",
            Response::Value(_) => "a value",
            Response::Done => "a bare success",
            Response::Namespace(_) => "a namespace",
            Response::Error(_) => "an error",
        },
    }
}
