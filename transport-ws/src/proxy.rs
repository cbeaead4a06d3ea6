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
//! ```no_run
//! use simplerpc_ws::{Client, ClientConfig, Value};
//!
//! let client = Client::connect(&ClientConfig::from_env()?)?;
//! let np = client.module("numpy")?;
//! let zeros = np.getattr("zeros")?.call_args(vec![Value::from(3u64)])?;
//! let value = zeros.materialize()?;
//! # let _ = value;
//! # Ok::<(), simplerpc_ws::Error>(())
//! ```

use std::sync::Arc;

use bytes::Bytes;
use simplerpc_core::{trail, ObjId, Request, Response, Value};

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

    /// `obj(*args, **kwargs)`.
    pub fn call(&self, args: Vec<Value>, kwargs: Vec<(String, Value)>) -> Result<Proxy, Error> {
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
        self.call(Vec::new(), Vec::new())
    }

    /// `obj(*args)`.
    pub fn call_args(&self, args: Vec<Value>) -> Result<Proxy, Error> {
        self.call(args, Vec::new())
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
