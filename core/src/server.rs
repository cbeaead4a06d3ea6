//! The server session: one state machine per connected client.
//!
//! Feed it each request frame with [`ServerSession::handle_frame`]; it
//! returns exactly one response frame, in order. It owns the client's object
//! table (protocol ids to executor handles), resolves proxy references before
//! the executor sees them, frees what the client releases and everything when
//! it ends. Nothing a client sends can make it panic: every bad frame gets an
//! error response and the session keeps working.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;

use crate::executor::{Arguments, ExecError, Executor, Key, Target};
use crate::extensions::Extensions;
use crate::message::{
    self, FrameError, OutFrame, RawFields, RemoteError, Request, Response, ResponseFrame,
    SessionStats,
};
use crate::value::{Handle, ObjId, RawValue, Value};

/// Exception type of a frame the server could not understand.
pub const PROTOCOL_ERROR: &str = "simplerpc.ProtocolError";
/// Exception type of a request naming an object id the session does not hold.
pub const UNKNOWN_OBJECT: &str = "simplerpc.UnknownObjectError";
/// Exception type of an executor that panicked.
pub const EXECUTOR_PANIC: &str = "simplerpc.ExecutorPanic";
/// Exception type of a request refused because the session already holds
/// [`ServerSession::max_objects`] objects.
pub const OBJECT_LIMIT: &str = "simplerpc.ObjectLimitError";

/// The default [`ServerSession::max_objects`]: a million live objects per
/// client. Far above what a client holding proxies on purpose reaches (an
/// episode that releases its proxies stays at a handful), low enough that a
/// client leaking proxies in a loop is stopped long before the server runs
/// out of memory on its behalf.
pub const DEFAULT_MAX_OBJECTS: usize = 1_000_000;

/// One client's session on the server.
pub struct ServerSession<E: Executor> {
    executor: E,
    extensions: Extensions,
    objects: HashMap<ObjId, Handle>,
    /// How many ids name each handle: an executor may hand out the same
    /// handle twice (a singleton module); it is released when the last goes.
    refs: HashMap<Handle, usize>,
    next_id: u64,
    requests: u64,
    /// `promise` extension: the object each request returned, by request id,
    /// while that object lives (forgotten when it is released).
    promised: HashMap<u64, ObjId>,
    /// The request that returned each promised object.
    promise_of: HashMap<ObjId, u64>,
    /// `promise` extension: the errors of failed requests, by request id,
    /// each with `cause` set to the request that failed first; the newest
    /// [`FAILED_KEPT`] are kept, fewer when they pass [`FAILED_KEPT_BYTES`].
    failed: HashMap<u64, RemoteError>,
    failed_order: VecDeque<u64>,
    /// What the kept errors hold ([`kept_cost`]).
    failed_bytes: usize,
    /// The most objects the client may hold at once.
    max_objects: usize,
    /// A written response frame to build the next one in.
    spare: Option<Vec<u8>>,
}

/// How many failed requests a session remembers for promises built on them.
pub const FAILED_KEPT: usize = 4096;

/// How many bytes of errors (type, message, traceback, payload) a session
/// keeps for promises built on failed requests: past it the oldest are
/// forgotten, the newest is always kept. Without it the kept errors were
/// bounded in count only, and 4096 errors that each carry a large message
/// or pickle (an exception holding an array) could hold gigabytes.
pub const FAILED_KEPT_BYTES: usize = 8 << 20;

/// The bytes a kept error holds, as counted against [`FAILED_KEPT_BYTES`].
fn kept_cost(e: &RemoteError) -> usize {
    std::mem::size_of::<RemoteError>()
        + e.exception_type.len()
        + e.message.len()
        + e.traceback.len()
        + e.payload.as_ref().map_or(0, |p| p.len())
}

/// Why a request stops before (or while) it runs.
enum Stop {
    /// The executor or the session refused it.
    Exec(ExecError),
    /// It was built on a promise whose request failed: that error, as it was.
    Failed(Box<RemoteError>),
}

impl From<ExecError> for Stop {
    fn from(e: ExecError) -> Self {
        Stop::Exec(e)
    }
}

impl<E: Executor> ServerSession<E> {
    /// A session over `executor` with the negotiated `extensions`.
    pub fn new(executor: E, extensions: Extensions) -> Self {
        ServerSession {
            executor,
            extensions,
            objects: HashMap::new(),
            refs: HashMap::new(),
            next_id: 0,
            requests: 0,
            promised: HashMap::new(),
            promise_of: HashMap::new(),
            failed: HashMap::new(),
            failed_order: VecDeque::new(),
            failed_bytes: 0,
            max_objects: DEFAULT_MAX_OBJECTS,
            spare: None,
        }
    }

    /// Set the most objects the client may hold at once (default
    /// [`DEFAULT_MAX_OBJECTS`]). A request that would create one more is
    /// answered with an error of type [`OBJECT_LIMIT`] and not run; objects
    /// the same frame releases count as already gone, and releasing objects
    /// makes room again. Lowering it below what the client holds frees
    /// nothing: new objects are refused until enough are released.
    pub fn set_max_objects(&mut self, max: usize) {
        self.max_objects = max;
    }

    /// As [`ServerSession::set_max_objects`], by value.
    #[must_use]
    pub fn with_max_objects(mut self, max: usize) -> Self {
        self.set_max_objects(max);
        self
    }

    /// The most objects the client may hold at once.
    pub fn max_objects(&self) -> usize {
        self.max_objects
    }

    /// The extensions this session speaks.
    pub fn extensions(&self) -> Extensions {
        self.extensions
    }

    /// How many objects the client holds ids for.
    pub fn live_objects(&self) -> usize {
        self.objects.len()
    }

    /// How many requests this session has answered.
    pub fn requests_handled(&self) -> u64 {
        self.requests
    }

    /// The counters a `stats` request reads (the `stats` extension).
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            live_objects: self.objects.len() as u64,
            requests: self.requests,
        }
    }

    /// The errors this session keeps for promises built on failed requests:
    /// how many, and the bytes they hold (at most [`FAILED_KEPT`] and
    /// [`FAILED_KEPT_BYTES`], the newest always kept). For tests and leak checks.
    pub fn failures_kept(&self) -> (usize, usize) {
        (self.failed.len(), self.failed_bytes)
    }

    /// The executor.
    pub fn executor(&self) -> &E {
        &self.executor
    }

    /// The executor, mutably.
    pub fn executor_mut(&mut self) -> &mut E {
        &mut self.executor
    }

    /// Hand a response frame this session made, once written, back for
    /// reuse: the executor may keep it to build its next large value in (see
    /// [`Executor::recycle`]); else the session builds its next response of
    /// about that size in it. [`ServerSession::trim`] drops what is kept.
    pub fn recycle(&mut self, frame: Vec<u8>) {
        if let Some(frame) = self.executor.recycle(frame) {
            self.spare = Some(frame);
        }
    }

    /// Drop the frames kept for reuse (when the connection is idle), here
    /// and in the executor.
    pub fn trim(&mut self) {
        self.spare = None;
        self.executor.trim();
    }

    /// Handle one request frame and return its response frame in one buffer
    /// (large array payloads copied in; a transport uses
    /// [`ServerSession::respond`], which leaves them where they are).
    #[must_use]
    pub fn handle_frame(&mut self, frame: Bytes) -> Vec<u8> {
        self.respond(frame).into_vec()
    }

    /// Handle one request frame and return its response frame, with the
    /// payloads of large arrays and bins spliced in by reference rather than
    /// copied (see [`OutFrame`]). Once it is written, hand
    /// [`OutFrame::into_buffer`] to [`ServerSession::recycle`].
    #[must_use]
    pub fn respond(&mut self, frame: Bytes) -> OutFrame {
        self.requests += 1;
        let mut stats = false;
        let (id, release, response) = match message::decode_request_with(&frame, self.extensions) {
            // Answered below, once the releases it carries are applied.
            Ok(req) if req.request == Request::Stats => {
                stats = true;
                (req.id, req.release, Response::Value(Value::Nil))
            }
            Ok(req) if req.request.creates_object() && self.full(&req.release) => {
                (req.id, req.release, Response::Error(self.object_limit()))
            }
            Ok(req) => {
                let response = self.dispatch(req.request, req.raw);
                (req.id, req.release, response)
            }
            // A malformed body still has its id answered and its releases
            // applied, and fails what is built on it like any failure.
            Err(e) => {
                let (id, release) = message::decode_request_envelope(&frame);
                (id, release, Response::Error(frame_error(e)))
            }
        };
        if let Some(n) = id.filter(|_| self.extensions.promises()) {
            self.remember(n, &response);
        }
        // Released after the request ran, so a proxy dropped while its
        // own request was being built still resolves.
        for obj in &release {
            if let Some(h) = self.objects.remove(obj) {
                if let Some(n) = self.promise_of.remove(obj) {
                    self.promised.remove(&n);
                }
                self.unref(h);
            }
        }
        // The counts once this request's releases are applied: a client
        // that dropped proxies and then asks sees them gone.
        let response = match response {
            Response::Value(Value::Nil) if stats => Response::Value(self.stats().to_value()),
            other => other,
        };
        self.encode(ResponseFrame { id, response })
    }

    fn encode(&mut self, frame: ResponseFrame) -> OutFrame {
        let id = frame.id;
        // The kept frame, if this response is about its size.
        let need = message::response_buffer_len(&frame.response);
        let spare = message::spare_for(&mut self.spare, need);
        match message::encode_response_parts_in(frame, self.extensions, spare) {
            Ok(bytes) => bytes,
            Err(e) => {
                let err = RemoteError::new(
                    "builtins.ValueError",
                    format!("the result cannot be sent: {e}"),
                );
                let fallback = ResponseFrame {
                    id,
                    response: Response::Error(err),
                };
                message::encode_response(&fallback, self.extensions)
                    .expect("a short error response always encodes")
                    .into()
            }
        }
    }

    /// Whether one more object would take the client past `max_objects`,
    /// counting the objects of `release` (applied after the request) as gone.
    fn full(&self, release: &[ObjId]) -> bool {
        if self.objects.len() < self.max_objects {
            return false;
        }
        let mut held: Vec<ObjId> = release
            .iter()
            .copied()
            .filter(|o| self.objects.contains_key(o))
            .collect();
        held.sort_unstable_by_key(|o| o.0);
        held.dedup();
        self.objects.len() - held.len() >= self.max_objects
    }

    fn object_limit(&self) -> RemoteError {
        RemoteError::new(
            OBJECT_LIMIT,
            format!(
                "this connection already holds {} objects, the server's limit (max_objects = {}): \
                 release objects you no longer need (drop their proxies; they are released with the \
                 next request) or start the server with a larger max_objects (--max-objects)",
                self.objects.len(),
                self.max_objects
            ),
        )
    }

    /// Keep what request `n` answered, for later requests built on it.
    fn remember(&mut self, n: u64, response: &Response) {
        match response {
            Response::Object(obj) => {
                // A client that reused an id replaces what it named.
                if let Some(old) = self.promised.insert(n, *obj) {
                    self.promise_of.remove(&old);
                }
                self.promise_of.insert(*obj, n);
            }
            Response::Error(e) => {
                let mut e = e.clone();
                if e.cause.get().is_none() {
                    e.cause = message::Cause::of(n);
                }
                self.failed_bytes += kept_cost(&e);
                match self.failed.insert(n, e) {
                    // A client that reused an id: the new error replaces the
                    // old, and is the newest (kept in the old place, it was
                    // the first the bound in bytes forgot).
                    Some(old) => {
                        self.failed_bytes -= kept_cost(&old);
                        if let Some(at) = self.failed_order.iter().position(|&k| k == n) {
                            self.failed_order.remove(at);
                        }
                        self.failed_order.push_back(n);
                    }
                    None => self.failed_order.push_back(n),
                }
                while self.failed_order.len() > FAILED_KEPT
                    || (self.failed_bytes > FAILED_KEPT_BYTES && self.failed_order.len() > 1)
                {
                    let Some(old) = self.failed_order.pop_front() else {
                        break;
                    };
                    if let Some(e) = self.failed.remove(&old) {
                        self.failed_bytes -= kept_cost(&e);
                    }
                }
            }
            _ => {}
        }
    }

    /// Free every object and end the session; later frames start afresh.
    pub fn close(&mut self) {
        self.promised.clear();
        self.promise_of.clear();
        self.failed.clear();
        self.failed_order.clear();
        self.failed_bytes = 0;
        self.objects.clear();
        let handles: Vec<Handle> = self.refs.drain().map(|(h, _)| h).collect();
        for h in handles {
            self.release_handle(h);
        }
    }

    fn release_handle(&mut self, h: Handle) {
        let executor = &mut self.executor;
        // A panicking release must not stop the others from being freed.
        let _ = catch_unwind(AssertUnwindSafe(|| executor.release(h)));
    }

    /// Drop one id's reference to `h`; release it when none is left.
    fn unref(&mut self, h: Handle) {
        let last = match self.refs.get_mut(&h) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => true,
        };
        if last {
            self.refs.remove(&h);
            self.release_handle(h);
        }
    }

    fn store(&mut self, h: Handle) -> ObjId {
        *self.refs.entry(h).or_insert(0) += 1;
        let id = ObjId(self.next_id);
        self.next_id += 1;
        self.objects.insert(id, h);
        id
    }

    fn lookup(&self, id: ObjId) -> Result<Handle, Stop> {
        let Some(n) = id.as_promise() else {
            return Ok(self.objects.get(&id).copied().ok_or_else(|| unknown(id))?);
        };
        if !self.extensions.promises() {
            return Err(Stop::Exec(ExecError::new(
                PROTOCOL_ERROR,
                "the key \"__rpc_promise__\" is reserved: a map {\"__rpc_promise__\": n} names the result of request n, \
                 which only a connection that negotiated the simplerpc promise extension may do",
            )));
        }
        if let Some(obj) = self.promised.get(&n) {
            return Ok(self
                .objects
                .get(obj)
                .copied()
                .ok_or_else(|| unknown(*obj))?);
        }
        if let Some(e) = self.failed.get(&n) {
            return Err(Stop::Failed(Box::new(e.clone())));
        }
        Err(Stop::Exec(ExecError::new(
            PROTOCOL_ERROR,
            format!(
                "promise {n} names no earlier request of this connection whose object is still held \
                 (the request answered a value, its object was released, it failed before the \
                 newest {FAILED_KEPT} failures or {} MiB of them, or it has not been sent)",
                FAILED_KEPT_BYTES >> 20
            ),
        )))
    }

    /// Replace each proxy reference by its handle, noting the handles in order.
    fn resolve(&self, v: &mut Value, refs: &mut Vec<Handle>) -> Result<(), Stop> {
        v.walk_mut(&mut |v: &mut Value| {
            match v {
                Value::Proxy(id) => {
                    let h = self.lookup(*id)?;
                    refs.push(h);
                    *v = Value::Handle(h);
                }
                // A map that names "__rpc_proxy__" but is not a well-formed
                // reference would reach the executor unresolved, and an
                // executor that takes it for a reference would read its
                // obj_id as one of its own handles: refuse it.
                Value::Map(pairs) if pairs.iter().any(|(k, _)| matches!(k.as_str(), Some("__rpc_proxy__" | "__rpc_promise__"))) => {
                    return Err(Stop::Exec(ExecError::new(
                        PROTOCOL_ERROR,
                        "a map with the reserved key \"__rpc_proxy__\" (or \"__rpc_promise__\") must be exactly \
                         {\"__rpc_proxy__\": true, \"obj_id\": <id below 2^63>} (or {\"__rpc_promise__\": <request id>})",
                    )));
                }
                _ => {}
            }
            Ok(())
        })
    }

    fn dispatch(&mut self, req: Request, raw: RawFields) -> Response {
        let kind = req.type_name();
        let response = self.dispatch_run(kind, req, raw);
        // A handle answered and then withdrawn goes back, unless an id names it.
        let withdrawn = catch_unwind(AssertUnwindSafe(|| self.executor.take_withdrawn()));
        if let Ok(Some(h)) = withdrawn {
            if !self.refs.contains_key(&h) {
                self.release_handle(h);
            }
        }
        response
    }

    fn dispatch_run(&mut self, kind: &'static str, req: Request, raw: RawFields) -> Response {
        match catch_unwind(AssertUnwindSafe(|| self.run(req, raw))) {
            Ok(Ok(r)) => r,
            Ok(Err(Stop::Exec(e))) => Response::Error(e.into()),
            Ok(Err(Stop::Failed(e))) => Response::Error(*e),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Response::Error(RemoteError::new(
                    EXECUTOR_PANIC,
                    format!("the executor panicked during {kind}: {what}"),
                ))
            }
        }
    }

    fn target<'a>(&self, obj_id: Option<ObjId>, path: &'a str) -> Result<Target<'a>, Stop> {
        Ok(match obj_id {
            Some(id) => Target::Object {
                handle: self.lookup(id)?,
                path,
            },
            None => Target::Path(path),
        })
    }

    fn run(&mut self, req: Request, raw: RawFields) -> Result<Response, Stop> {
        let handle = match req {
            Request::ImportModule { module } => self.executor.import_module(&module)?,
            Request::GetBuiltin { name } => self.executor.get_builtin(&name)?,
            Request::GetAttr { path, obj_id, attr } => {
                let target = self.target(obj_id, &path)?;
                self.executor.getattr(target, &attr)?
            }
            Request::Call {
                path,
                obj_id,
                mut args,
                mut kwargs,
            } => {
                let target = self.target(obj_id, &path)?;
                let mut refs = Vec::new();
                for a in &mut args {
                    self.resolve(a, &mut refs)?;
                }
                for (_, v) in &mut kwargs {
                    self.resolve(v, &mut refs)?;
                }
                let (raw_args, raw_kwargs) = match (raw.args, raw.kwargs) {
                    (Some(a), k) => (a, k.unwrap_or_else(empty_map)),
                    // A request built in memory rather than decoded.
                    _ => {
                        let built = Arguments::from_values(args.clone(), kwargs.clone());
                        (built.raw_args, built.raw_kwargs)
                    }
                };
                self.executor.call(
                    target,
                    Arguments {
                        args,
                        kwargs,
                        raw_args,
                        raw_kwargs,
                        refs,
                    },
                )?
            }
            Request::GetItem { obj_id, mut key } => {
                let h = self.lookup(obj_id)?;
                let mut refs = Vec::new();
                self.resolve(&mut key, &mut refs)?;
                let key = match raw.key {
                    Some(raw) => Key {
                        value: key,
                        raw,
                        refs,
                    },
                    None => Key::from_value(key),
                };
                self.executor.getitem(h, key)?
            }
            Request::Materialize { obj_id } => {
                let h = self.lookup(obj_id)?;
                return Ok(Response::Value(self.executor.materialize(h)?));
            }
            Request::Eval { expr } => self.executor.eval(&expr)?,
            Request::Execute { code } => {
                self.executor.execute(&code)?;
                return Ok(Response::Done);
            }
            Request::Teleport { func_bytes, name } => self.executor.teleport(func_bytes, &name)?,
            Request::GetNamespace => return Ok(Response::Namespace(self.executor.namespace()?)),
            // Answered in `respond`, never by the executor.
            Request::Stats => return Ok(Response::Value(self.stats().to_value())),
        };
        Ok(Response::Object(self.store(handle)))
    }
}

impl<E: Executor> Drop for ServerSession<E> {
    fn drop(&mut self) {
        self.close();
    }
}

fn empty_map() -> RawValue {
    RawValue::new(Bytes::from_static(&[0x80])).expect("an empty map is valid msgpack")
}

fn unknown(id: ObjId) -> ExecError {
    ExecError::new(
        UNKNOWN_OBJECT,
        format!(
            "object id {} is not held by this session: it was never issued, or it was released",
            id.0
        ),
    )
}

fn frame_error(e: FrameError) -> RemoteError {
    match e {
        FrameError::UnknownType(t) => {
            RemoteError::new(PROTOCOL_ERROR, format!("Unknown message type: {t}"))
        }
        other => RemoteError::new(PROTOCOL_ERROR, format!("malformed request: {other}")),
    }
}
