//! Requests and responses of the protocol and their frames.
//!
//! Every frame is one msgpack map with string keys. Keys are written in the
//! order the reference writes them, so our frames match its frames byte for
//! byte. The extension keys `id` (request ids) and `release` (freed object
//! ids) are written last, and only when [`Extensions`] says the peer speaks them.

use bytes::Bytes;

use crate::codec::{
    self, write_array_len, write_bin, write_map_len, write_str, write_uint, DecodeError,
    EncodeError,
};
use crate::extensions::Extensions;
use crate::value::{ObjId, RawValue, Value};

/// A request, as the client sends it.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `import_module`: import a (possibly dotted) module.
    ImportModule {
        /// `"numpy"`, `"os.path"`
        module: String,
    },
    /// `get_builtin`: a builtin by name.
    GetBuiltin {
        /// `"len"`
        name: String,
    },
    /// `getattr`: an attribute of an object (or of the object `path` names).
    GetAttr {
        /// human-readable trail, `"os.path"`
        path: String,
        /// the object, when there is one
        obj_id: Option<ObjId>,
        /// attribute name
        attr: String,
    },
    /// `call`: call an object with arguments.
    Call {
        /// human-readable trail, `"os.getcwd"`
        path: String,
        /// the object, when there is one
        obj_id: Option<ObjId>,
        /// positional arguments
        args: Vec<Value>,
        /// keyword arguments
        kwargs: Vec<(String, Value)>,
    },
    /// `getitem`: `obj[key]`.
    GetItem {
        /// the object
        obj_id: ObjId,
        /// the key (ints, strings, slices, tuples of them, proxies)
        key: Value,
    },
    /// `materialize`: send the object's value.
    Materialize {
        /// the object
        obj_id: ObjId,
    },
    /// `eval`: evaluate an expression in the client's globals.
    Eval {
        /// the expression
        expr: String,
    },
    /// `execute`: run statements in the client's globals.
    Execute {
        /// the code
        code: String,
    },
    /// `teleport`: install a pickled function under a name.
    Teleport {
        /// dill pickle of the function (opaque to the protocol)
        func_bytes: Bytes,
        /// the name it is bound to
        name: String,
    },
    /// `get_namespace`: the names in the client's globals and their types.
    GetNamespace,
    /// `stats` (the `stats` extension): the session's counters, answered by
    /// the server session as a value (see [`SessionStats`]).
    Stats,
}

impl Request {
    /// The wire name of the request type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Request::ImportModule { .. } => "import_module",
            Request::GetBuiltin { .. } => "get_builtin",
            Request::GetAttr { .. } => "getattr",
            Request::Call { .. } => "call",
            Request::GetItem { .. } => "getitem",
            Request::Materialize { .. } => "materialize",
            Request::Eval { .. } => "eval",
            Request::Execute { .. } => "execute",
            Request::Teleport { .. } => "teleport",
            Request::GetNamespace => "get_namespace",
            Request::Stats => "stats",
        }
    }

    /// Whether a successful answer is a new object (an id the client then
    /// holds), rather than a value or nothing.
    pub fn creates_object(&self) -> bool {
        !matches!(
            self,
            Request::Materialize { .. }
                | Request::Execute { .. }
                | Request::GetNamespace
                | Request::Stats
        )
    }
}

/// The answer to a [`Request::Stats`] (the `stats` extension): a session's
/// counters, as the server session reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionStats {
    /// How many objects the client holds ids for, once the releases that
    /// the `stats` request carried are applied.
    pub live_objects: u64,
    /// How many requests the session has handled, the `stats` one included.
    pub requests: u64,
}

impl SessionStats {
    /// The value the server sends: `{"live_objects": n, "requests": m}`.
    pub fn to_value(self) -> Value {
        Value::Map(vec![
            (
                Value::Str("live_objects".into()),
                Value::UInt(self.live_objects),
            ),
            (Value::Str("requests".into()), Value::UInt(self.requests)),
        ])
    }

    /// Read the answer to a `stats` request; a remote error is returned as
    /// it is, anything else that is not the map above is a protocol error.
    pub fn from_response(response: Response) -> Result<SessionStats, RemoteError> {
        let value = match response {
            Response::Value(v) => v,
            Response::Error(e) => return Err(e),
            _ => return Err(not_stats("another kind of answer")),
        };
        let value = match value {
            Value::Raw(raw) => raw.decode().map_err(|e| not_stats(&e.to_string()))?,
            v => v,
        };
        if !matches!(value, Value::Map(_)) {
            return Err(not_stats(value.type_name()));
        }
        let field = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_u64)
                .ok_or_else(|| not_stats(&format!("a map without an unsigned `{name}`")))
        };
        Ok(SessionStats {
            live_objects: field("live_objects")?,
            requests: field("requests")?,
        })
    }
}

fn not_stats(what: &str) -> RemoteError {
    RemoteError::new(
        "simplerpc.ProtocolError",
        format!("the server answered a stats request with {what}, not {{\"live_objects\": n, \"requests\": m}}"),
    )
}

/// A request with its extension fields, as it travels.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestFrame {
    /// Request id (the `request-id` extension).
    pub id: Option<u64>,
    /// Object ids the client dropped since its last request (the `release` extension).
    pub release: Vec<ObjId>,
    /// The request itself.
    pub request: Request,
    /// The value fields of a decoded request as the frame's own bytes, for
    /// executors that take msgpack as it is (empty for other requests).
    pub raw: RawFields,
}

/// The msgpack bytes of a request's value fields, shared with its frame.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawFields {
    /// `args` of a `call`: a msgpack array.
    pub args: Option<RawValue>,
    /// `kwargs` of a `call`: a msgpack map (absent when the frame has none).
    pub kwargs: Option<RawValue>,
    /// `key` of a `getitem`.
    pub key: Option<RawValue>,
}

/// An error raised on the other side, as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// Qualified type name, `"builtins.KeyError"`.
    pub exception_type: String,
    /// The message, `str(exc)`.
    pub message: String,
    /// The formatted traceback, possibly empty.
    pub traceback: String,
    /// The reference's `exception_pickle` (a dill pickle) or another opaque
    /// payload. Never unpickled by the core.
    pub payload: Option<Bytes>,
    /// This error travelled in the reference's short form
    /// `{"type": "error", "error": message}` (it answers unknown request types so).
    pub brief: bool,
    /// With the `promise` extension: the request was not run because it was
    /// built on request [`Cause::get`], which failed with this error.
    pub cause: Cause,
}

/// The request a failure came from, for a request that was not run because
/// it was built on a failed one (the `promise` extension). Eight bytes, so
/// an error stays small enough to return by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Cause(Option<std::num::NonZeroU64>);

impl Cause {
    /// No cause: the request failed by itself.
    pub const NONE: Cause = Cause(None);

    /// Caused by request `n`.
    pub fn of(n: u64) -> Cause {
        Cause(std::num::NonZeroU64::new(n.wrapping_add(1)))
    }

    /// The request, if any.
    pub fn get(self) -> Option<u64> {
        self.0.map(|v| v.get() - 1)
    }
}

impl RemoteError {
    /// A full error response body.
    pub fn new(exception_type: impl Into<String>, message: impl Into<String>) -> Self {
        RemoteError {
            exception_type: exception_type.into(),
            message: message.into(),
            traceback: String::new(),
            payload: None,
            brief: false,
            cause: Cause::NONE,
        }
    }
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.exception_type, self.message)
    }
}

impl std::error::Error for RemoteError {}

/// A response body.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// `{"type": "success", "obj_id": N}`
    Object(ObjId),
    /// `{"type": "success", "value": v}`
    Value(Value),
    /// `{"type": "success"}` (answers `execute`)
    Done,
    /// `{"type": "success", "namespace": {name: type}}`
    Namespace(Vec<(String, String)>),
    /// `{"type": "error", ...}`
    Error(RemoteError),
}

/// A response with its extension fields, as it travels.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseFrame {
    /// The id of the request it answers (the `request-id` extension).
    pub id: Option<u64>,
    /// The response itself.
    pub response: Response,
}

/// Why a frame is not a valid request or response.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// Not msgpack.
    #[error("frame is not valid msgpack: {0}")]
    Decode(#[from] DecodeError),
    /// A value field a host gave as msgpack (`args`, `kwargs`, `key`) is
    /// not valid msgpack.
    #[error("{field} is not valid msgpack: {error}")]
    BadField {
        /// field name
        field: &'static str,
        /// what is wrong with it
        error: DecodeError,
    },
    /// Not a map.
    #[error("frame is a msgpack {0}, not a map")]
    NotAMap(&'static str),
    /// No `type`, or it is not a string.
    #[error("frame has no string field \"type\"")]
    NoType,
    /// An unknown request type (the reference answers it with an error too).
    #[error("Unknown message type: {0}")]
    UnknownType(String),
    /// A field is missing.
    #[error("{kind} message lacks the field \"{field}\"")]
    MissingField {
        /// message type
        kind: String,
        /// field name
        field: &'static str,
    },
    /// A request could not be encoded.
    #[error("the request cannot be encoded: {0}")]
    Encode(String),
    /// A field has the wrong type.
    #[error("field \"{field}\" of a {kind} message must be {want}, got {got}")]
    WrongField {
        /// message type
        kind: String,
        /// field name
        field: &'static str,
        /// expected type
        want: &'static str,
        /// what came
        got: &'static str,
    },
}

// ---------------------------------------------------------------- encoding

/// An object id, or a promise's `{"__rpc_promise__": n}`.
fn write_obj_id(buf: &mut Vec<u8>, id: ObjId) {
    if id.as_promise().is_some() {
        codec::write_proxy(buf, id).expect("a promise marker always encodes");
    } else {
        write_uint(buf, id.0);
    }
}

fn write_opt_id(buf: &mut Vec<u8>, id: Option<ObjId>) {
    match id {
        Some(id) => write_obj_id(buf, id),
        None => buf.push(0xc0),
    }
}

/// A frame to send: its bytes built in one buffer, with large payloads
/// spliced in by reference rather than copied (each `P` is one, inserted at
/// its offset). A transport writes [`SplicedFrame::parts`] in order (a
/// vectored write), so an array's memory goes from where it lies to the
/// socket; [`SplicedFrame::into_vec`] joins them for a caller that needs one
/// buffer. A frame without large payloads is one part.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SplicedFrame<P> {
    buf: Vec<u8>,
    splices: Vec<(usize, P)>,
}

/// A frame whose spliced payloads are shared (`Bytes`): the payloads of
/// large arrays and bins (from [`codec::SPLICE_MIN`] bytes) of the values
/// it was encoded from.
pub type OutFrame = SplicedFrame<Bytes>;

/// A frame built from msgpack a host holds in parts ([`Raw::Parts`]), whose
/// spliced parts are borrowed from the host for `'a`. A part is spliced in
/// when it has at least [`codec::SPLICE_MIN`] bytes and is exactly the
/// payload of a bin (the bytes before it end with that bin's header);
/// everything else is copied into the frame's own buffer. A transport
/// writes [`SplicedFrame::parts`] before the call that built it returns, so
/// the host's memory goes to the socket from where it lies and is free
/// again once the call is done.
pub type BorrowedFrame<'a> = SplicedFrame<&'a [u8]>;

impl<P: AsRef<[u8]>> SplicedFrame<P> {
    /// The frame's length in bytes, spliced payloads included.
    pub fn len(&self) -> usize {
        self.buf.len()
            + self
                .splices
                .iter()
                .map(|(_, b)| b.as_ref().len())
                .sum::<usize>()
    }

    /// Whether the frame has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the frame is in one buffer (nothing spliced in).
    pub fn is_one(&self) -> bool {
        self.splices.is_empty()
    }

    /// The bytes the frame holds in its own buffer (the spliced payloads
    /// left out): the memory it took.
    pub fn own_len(&self) -> usize {
        self.buf.len()
    }

    /// The frame's bytes as the buffers to write in order (never an empty
    /// one, unless the frame is empty).
    pub fn parts(&self) -> Vec<&[u8]> {
        let mut out = Vec::with_capacity(2 * self.splices.len() + 1);
        let mut at = 0;
        for (offset, bytes) in &self.splices {
            let bytes = bytes.as_ref();
            if *offset > at {
                out.push(&self.buf[at..*offset]);
            }
            if !bytes.is_empty() {
                out.push(bytes);
            }
            at = *offset;
        }
        if at < self.buf.len() || out.is_empty() {
            out.push(&self.buf[at..]);
        }
        out
    }

    /// The frame in one buffer: the spliced payloads are copied in (the
    /// frame's own buffer when there are none).
    pub fn into_vec(self) -> Vec<u8> {
        if self.splices.is_empty() {
            return self.buf;
        }
        let mut out = Vec::with_capacity(self.len());
        for p in self.parts() {
            out.extend_from_slice(p);
        }
        out
    }

    /// The frame's own buffer, for reuse once the frame is written (see
    /// [`ServerSession::recycle`](crate::ServerSession::recycle) and
    /// [`ClientSession::recycle`](crate::ClientSession::recycle)); the
    /// spliced payloads are let go.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }
}

impl<P> From<Vec<u8>> for SplicedFrame<P> {
    fn from(buf: Vec<u8>) -> Self {
        SplicedFrame {
            buf,
            splices: Vec::new(),
        }
    }
}

/// Msgpack bytes a host holds: in one buffer, or in several that make the
/// value when joined, so that a large array's own memory goes into the
/// frame without being joined into one buffer first.
#[derive(Debug, Clone, Copy)]
pub enum Raw<'a> {
    /// One buffer.
    One(&'a [u8]),
    /// Buffers to be joined, in order.
    Parts(&'a [&'a [u8]]),
}

impl<'a> Raw<'a> {
    /// The number of bytes.
    pub fn len(&self) -> usize {
        match self {
            Raw::One(b) => b.len(),
            Raw::Parts(parts) => parts.iter().map(|p| p.len()).sum(),
        }
    }

    /// Whether there are no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, when they are in one buffer.
    pub fn as_one(&self) -> Option<&'a [u8]> {
        match *self {
            Raw::One(b) => Some(b),
            Raw::Parts(_) => None,
        }
    }

    fn write_to(&self, buf: &mut Vec<u8>) {
        match self {
            Raw::One(b) => buf.extend_from_slice(b),
            Raw::Parts(parts) => {
                for p in *parts {
                    buf.extend_from_slice(p);
                }
            }
        }
    }
}

impl<'a> From<&'a [u8]> for Raw<'a> {
    fn from(b: &'a [u8]) -> Self {
        Raw::One(b)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Raw<'a> {
    fn from(b: &'a [u8; N]) -> Self {
        Raw::One(b)
    }
}

impl<'a> From<&'a Vec<u8>> for Raw<'a> {
    fn from(b: &'a Vec<u8>) -> Self {
        Raw::One(b)
    }
}

/// A `call` or `getitem` whose value fields a host already holds as msgpack
/// (the C ABI, Python): the bytes are copied once into the frame as they
/// are and checked there, never decoded and encoded again; with
/// [`encode_request_raw_parts_in`], the large bin payloads among
/// [`Raw::Parts`] are not copied at all (see [`BorrowedFrame`]).
#[derive(Debug, Clone, Copy)]
pub enum RawRequest<'a> {
    /// `call` with `args` a msgpack array and `kwargs` a msgpack map (empty: none).
    Call {
        /// human-readable trail, `"os.getcwd"`
        path: &'a str,
        /// the object, when there is one
        obj_id: Option<ObjId>,
        /// msgpack array of positional arguments (empty: none)
        args: Raw<'a>,
        /// msgpack map of keyword arguments (empty: none)
        kwargs: Raw<'a>,
    },
    /// `getitem` with a msgpack `key`.
    GetItem {
        /// the object
        obj_id: ObjId,
        /// msgpack key
        key: Raw<'a>,
    },
}

/// What a raw field must be: its name, and a test of its first byte.
type Shape = Option<(&'static str, fn(u8) -> bool)>;

fn check_raw(kind: &str, field: &'static str, bytes: &[u8], want: Shape) -> Result<(), FrameError> {
    let value =
        codec::decode_field(bytes).map_err(|error| FrameError::BadField { field, error })?;
    check_value(kind, field, &value, bytes[0], want)
}

/// The checks of [`check_raw`] past decoding: `value` decoded from bytes
/// whose first is `first`.
fn check_value(
    kind: &str,
    field: &'static str,
    value: &Value,
    first: u8,
    want: Shape,
) -> Result<(), FrameError> {
    // The server takes keyword arguments by name only.
    if let Value::Map(pairs) = value {
        if field == "kwargs" {
            if let Some((k, _)) = pairs.iter().find(|(k, _)| !matches!(k, Value::Str(_))) {
                return Err(FrameError::WrongField {
                    kind: kind.into(),
                    field,
                    want: "a map with str keys",
                    got: k.type_name(),
                });
            }
        }
    }
    if let Some((what, ok)) = want {
        if !ok(first) {
            return Err(FrameError::WrongField {
                kind: kind.into(),
                field,
                want: what,
                got: "another msgpack type",
            });
        }
    }
    Ok(())
}

fn is_array_marker(m: u8) -> bool {
    matches!(m, 0x90..=0x9f | 0xdc | 0xdd)
}

fn is_map_marker(m: u8) -> bool {
    matches!(m, 0x80..=0x8f | 0xde | 0xdf)
}

/// Copy `raw` (or `empty` when it has no bytes) into `buf` and check it
/// there: one copy of a large value, and no buffer of its own.
fn put_raw(
    buf: &mut Vec<u8>,
    kind: &str,
    field: &'static str,
    raw: Raw<'_>,
    empty: u8,
    want: Shape,
) -> Result<(), FrameError> {
    let at = buf.len();
    if raw.is_empty() {
        buf.push(empty);
    } else {
        raw.write_to(buf);
    }
    check_raw(kind, field, &buf[at..], want)
}

/// As [`put_raw`], splicing the parts of `raw` that are whole large bin
/// payloads in by reference (see [`BorrowedFrame`]) rather than copying
/// them. The rest (the skeleton) is copied and checked with the payloads
/// elided; when that check fails, or a payload turns out to be read as
/// something else than a bin's, the field is copied whole and checked as
/// [`put_raw`] does, so the same bytes give the same error.
fn put_raw_spliced<'a>(
    buf: &mut Vec<u8>,
    kind: &str,
    field: &'static str,
    raw: Raw<'a>,
    empty: u8,
    want: Shape,
    splices: &mut Vec<(usize, &'a [u8])>,
) -> Result<(), FrameError> {
    let Raw::Parts(parts) = raw else {
        return put_raw(buf, kind, field, raw, empty, want);
    };
    let at = buf.len();
    let first = splices.len();
    // (offset in the field's skeleton, length) of each part spliced in.
    let mut holes = Vec::new();
    // Where the bytes since the last spliced part begin: a bin header must
    // be among them, in this field.
    let mut since = at;
    for &p in parts {
        if p.len() >= codec::SPLICE_MIN && ends_with_bin_header(&buf[since..], p.len()) {
            holes.push((buf.len() - at, p.len()));
            splices.push((buf.len(), p));
            since = buf.len();
        } else {
            buf.extend_from_slice(p);
        }
    }
    if holes.is_empty() {
        return put_raw_checked(buf, kind, field, at, empty, want);
    }
    match codec::decode_field_elided(&buf[at..], &holes) {
        Ok(value) => check_value(kind, field, &value, buf[at], want),
        Err(_) => {
            // Not what it looked like: copy it all, and check it as a whole.
            splices.truncate(first);
            buf.truncate(at);
            put_raw(buf, kind, field, raw, empty, want)
        }
    }
}

/// Check the field `put_raw_spliced` copied whole to `buf[at..]` (or write
/// `empty` when it has no bytes).
fn put_raw_checked(
    buf: &mut Vec<u8>,
    kind: &str,
    field: &'static str,
    at: usize,
    empty: u8,
    want: Shape,
) -> Result<(), FrameError> {
    if buf.len() == at {
        buf.push(empty);
    }
    check_raw(kind, field, &buf[at..], want)
}

/// Whether `before` ends with the header of a bin of `len` bytes.
pub(crate) fn ends_with_bin_header(before: &[u8], len: usize) -> bool {
    let n = before.len();
    let be = |b: &[u8]| b.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x));
    (n >= 5 && before[n - 5] == 0xc6 && be(&before[n - 4..]) == len)
        || (n >= 3 && before[n - 3] == 0xc5 && be(&before[n - 2..]) == len)
        || (n >= 2 && before[n - 2] == 0xc4 && usize::from(before[n - 1]) == len)
}

/// The frame kept in `slot`, if a frame of about `need` bytes is worth
/// building in it (its capacity at least half of `need` and at most four
/// times it); else an empty buffer, and the kept frame stays. Sessions and
/// executors share this rule for reusing written frames.
pub(crate) fn spare_for(slot: &mut Option<Vec<u8>>, need: usize) -> Vec<u8> {
    match slot.take() {
        Some(v) if v.capacity() >= need / 2 && v.capacity() / 4 <= need => v,
        other => {
            *slot = other;
            Vec::new()
        }
    }
}

/// `spare` emptied, with room for `cap` bytes: a frame built in a buffer an
/// earlier frame was written from (no fresh memory for a large one).
fn reuse(mut spare: Vec<u8>, cap: usize) -> Vec<u8> {
    spare.clear();
    spare.reserve(cap);
    spare
}

/// Encode a [`RawRequest`]: the value bytes are copied once, and checked.
pub fn encode_request_raw(
    r: &RawRequest<'_>,
    id: Option<u64>,
    release: &[ObjId],
    ext: Extensions,
) -> Result<Vec<u8>, FrameError> {
    encode_request_raw_in(r, id, release, ext, Vec::new())
}

/// As [`encode_request_raw`], building the frame in `spare` (see
/// [`ClientSession::recycle`](crate::ClientSession::recycle)).
pub fn encode_request_raw_in(
    r: &RawRequest<'_>,
    id: Option<u64>,
    release: &[ObjId],
    ext: Extensions,
    spare: Vec<u8>,
) -> Result<Vec<u8>, FrameError> {
    encode_request_raw_with(r, id, release, ext, spare, None)
}

/// As [`encode_request_raw_in`], with the parts of [`Raw::Parts`] fields
/// that are whole payloads of large bins (an array's data, from
/// [`codec::SPLICE_MIN`] bytes) spliced in by reference rather than copied
/// (see [`BorrowedFrame`]). The frame is checked as [`encode_request_raw`]
/// checks it, with the same errors; it equals that frame byte for byte.
pub fn encode_request_raw_parts_in<'a>(
    r: &RawRequest<'a>,
    id: Option<u64>,
    release: &[ObjId],
    ext: Extensions,
    spare: Vec<u8>,
) -> Result<BorrowedFrame<'a>, FrameError> {
    let mut splices = Vec::new();
    let buf = encode_request_raw_with(r, id, release, ext, spare, Some(&mut splices))?;
    Ok(BorrowedFrame { buf, splices })
}

/// The bytes of a [`Raw`] field that a [`BorrowedFrame`] may leave out of
/// its buffer: its parts of at least [`codec::SPLICE_MIN`] bytes.
fn raw_spliced(raw: Raw<'_>) -> usize {
    match raw {
        Raw::One(_) => 0,
        Raw::Parts(parts) => parts
            .iter()
            .map(|p| p.len())
            .filter(|&n| n >= codec::SPLICE_MIN)
            .sum(),
    }
}

/// The bytes of `r`'s frame that go into its own buffer when large parts
/// are spliced in (at least; what it reserves).
pub(crate) fn raw_request_buffer_len(r: &RawRequest<'_>, releases: usize) -> usize {
    let spliced = match *r {
        RawRequest::Call { args, kwargs, .. } => raw_spliced(args) + raw_spliced(kwargs),
        RawRequest::GetItem { key, .. } => raw_spliced(key),
    };
    raw_request_size_bound(r, releases).saturating_sub(spliced)
}

fn encode_request_raw_with<'a>(
    r: &RawRequest<'a>,
    id: Option<u64>,
    release: &[ObjId],
    ext: Extensions,
    spare: Vec<u8>,
    mut splices: Option<&mut Vec<(usize, &'a [u8])>>,
) -> Result<Vec<u8>, FrameError> {
    let id = id.filter(|_| ext.request_ids());
    let release = if ext.release() { release } else { &[] };
    let extra = usize::from(id.is_some()) + usize::from(!release.is_empty());
    let enc = |e: EncodeError| FrameError::Encode(e.to_string());
    let mut buf;
    match *r {
        RawRequest::Call {
            path,
            obj_id,
            args,
            kwargs,
        } => {
            let values = if splices.is_some() {
                args.len() - raw_spliced(args) + kwargs.len() - raw_spliced(kwargs)
            } else {
                args.len() + kwargs.len()
            };
            buf = reuse(spare, 96 + path.len() + values + 9 * release.len());
            write_map_len(&mut buf, 5 + extra).map_err(enc)?;
            write_str(&mut buf, "type").map_err(enc)?;
            write_str(&mut buf, "call").map_err(enc)?;
            write_str(&mut buf, "path").map_err(enc)?;
            write_str(&mut buf, path).map_err(enc)?;
            write_str(&mut buf, "obj_id").map_err(enc)?;
            write_opt_id(&mut buf, obj_id);
            write_str(&mut buf, "args").map_err(enc)?;
            let array = Some(("a msgpack array", is_array_marker as fn(u8) -> bool));
            put_field(&mut buf, "call", "args", args, 0x90, array, &mut splices)?;
            write_str(&mut buf, "kwargs").map_err(enc)?;
            let map = Some(("a msgpack map", is_map_marker as fn(u8) -> bool));
            put_field(&mut buf, "call", "kwargs", kwargs, 0x80, map, &mut splices)?;
        }
        RawRequest::GetItem { obj_id, key } => {
            if key.is_empty() {
                return Err(FrameError::MissingField {
                    kind: "getitem".into(),
                    field: "key",
                });
            }
            let values = if splices.is_some() {
                key.len() - raw_spliced(key)
            } else {
                key.len()
            };
            buf = reuse(spare, 64 + values + 9 * release.len());
            write_map_len(&mut buf, 3 + extra).map_err(enc)?;
            write_str(&mut buf, "type").map_err(enc)?;
            write_str(&mut buf, "getitem").map_err(enc)?;
            write_str(&mut buf, "obj_id").map_err(enc)?;
            write_obj_id(&mut buf, obj_id);
            write_str(&mut buf, "key").map_err(enc)?;
            put_field(&mut buf, "getitem", "key", key, 0xc0, None, &mut splices)?;
        }
    }
    write_extension_fields(&mut buf, id, release).map_err(enc)?;
    Ok(buf)
}

/// [`put_raw_spliced`] when the frame takes splices, else [`put_raw`].
fn put_field<'a>(
    buf: &mut Vec<u8>,
    kind: &str,
    field: &'static str,
    raw: Raw<'a>,
    empty: u8,
    want: Shape,
    splices: &mut Option<&mut Vec<(usize, &'a [u8])>>,
) -> Result<(), FrameError> {
    match splices {
        Some(sp) => put_raw_spliced(buf, kind, field, raw, empty, want, sp),
        None => put_raw(buf, kind, field, raw, empty, want),
    }
}

fn write_extension_fields(
    buf: &mut Vec<u8>,
    id: Option<u64>,
    release: &[ObjId],
) -> Result<(), EncodeError> {
    if let Some(id) = id {
        write_str(buf, "id")?;
        write_uint(buf, id);
    }
    if !release.is_empty() {
        write_str(buf, "release")?;
        write_array_len(buf, release.len())?;
        for r in release {
            write_uint(buf, r.0);
        }
    }
    Ok(())
}

/// An upper bound of the size of `r`'s frame carrying `releases` released
/// ids, computed without building it: its values are counted exactly, the
/// keys, type, ids and headers as 128 bytes at most.
pub fn request_size_bound(r: &Request, releases: usize) -> usize {
    128 + payload_len(r, codec::exact_len) + 9 * releases
}

/// An upper bound of the size of a [`RawRequest`]'s frame.
pub fn raw_request_size_bound(r: &RawRequest<'_>, releases: usize) -> usize {
    96 + 9 * releases
        + match *r {
            RawRequest::Call {
                path, args, kwargs, ..
            } => path.len() + args.len() + kwargs.len() + 2,
            RawRequest::GetItem { key, .. } => key.len(),
        }
}

/// The text and values of `r`, each value measured by `len` (exact for the
/// size check, a cheaper upper bound to reserve the frame).
fn payload_len(r: &Request, len: fn(&Value) -> usize) -> usize {
    match r {
        Request::ImportModule { module: t }
        | Request::GetBuiltin { name: t }
        | Request::Eval { expr: t }
        | Request::Execute { code: t } => t.len(),
        Request::GetAttr { path, attr, .. } => path.len() + attr.len(),
        Request::Call {
            path, args, kwargs, ..
        } => {
            path.len()
                + args.iter().map(len).sum::<usize>()
                + kwargs
                    .iter()
                    .map(|(k, v)| k.len() + 5 + len(v))
                    .sum::<usize>()
        }
        Request::GetItem { key, .. } => len(key),
        Request::Teleport { name, func_bytes } => name.len() + func_bytes.len(),
        Request::Materialize { .. } | Request::GetNamespace | Request::Stats => 0,
    }
}

/// Encode a request frame. `ext` decides whether the extension keys (`id`,
/// `release`) may be written; without them they are left out.
pub fn encode_request(
    r: &Request,
    id: Option<u64>,
    release: &[ObjId],
    ext: Extensions,
) -> Result<Vec<u8>, EncodeError> {
    encode_request_in(r, id, release, ext, Vec::new())
}

/// As [`encode_request`], building the frame in `spare` (see
/// [`ClientSession::recycle`](crate::ClientSession::recycle)).
pub fn encode_request_in(
    r: &Request,
    id: Option<u64>,
    release: &[ObjId],
    ext: Extensions,
    spare: Vec<u8>,
) -> Result<Vec<u8>, EncodeError> {
    encode_request_with(r, id, release, ext, spare, None)
}

/// As [`encode_request_in`], with the payloads of large arrays and bins
/// spliced in rather than copied (see [`OutFrame`]).
pub fn encode_request_parts_in(
    r: &Request,
    id: Option<u64>,
    release: &[ObjId],
    ext: Extensions,
    spare: Vec<u8>,
) -> Result<OutFrame, EncodeError> {
    let mut splices = Vec::new();
    let buf = encode_request_with(r, id, release, ext, spare, Some(&mut splices))?;
    Ok(OutFrame { buf, splices })
}

/// The bytes of `r`'s frame that go into its own buffer when large
/// payloads are spliced in: what it needs reserved.
pub(crate) fn request_buffer_len(r: &Request, releases: usize) -> usize {
    (128 + payload_len(r, codec::encoded_len) + 9 * releases).saturating_sub(request_spliced(r))
}

/// How many bytes of `r`'s values a frame with splices leaves out of its buffer.
fn request_spliced(r: &Request) -> usize {
    match r {
        Request::Call { args, kwargs, .. } => {
            args.iter().map(codec::spliced_len).sum::<usize>()
                + kwargs
                    .iter()
                    .map(|(_, v)| codec::spliced_len(v))
                    .sum::<usize>()
        }
        Request::GetItem { key, .. } => codec::spliced_len(key),
        _ => 0,
    }
}

fn encode_request_with(
    r: &Request,
    id: Option<u64>,
    release: &[ObjId],
    ext: Extensions,
    spare: Vec<u8>,
    mut splices: Option<&mut codec::Splices>,
) -> Result<Vec<u8>, EncodeError> {
    let id = id.filter(|_| ext.request_ids());
    let release = if ext.release() { release } else { &[] };
    let payload = payload_len(r, codec::encoded_len);
    let payload = if splices.is_some() {
        payload.saturating_sub(request_spliced(r))
    } else {
        payload
    };
    if matches!(r, Request::Stats) && !ext.stats() {
        return Err(EncodeError::NotNegotiated {
            request: "stats",
            extension: "stats",
        });
    }
    let mut buf = reuse(spare, 128 + payload + 9 * release.len());
    let fields = match r {
        Request::GetNamespace | Request::Stats => 1,
        Request::ImportModule { .. }
        | Request::GetBuiltin { .. }
        | Request::Materialize { .. }
        | Request::Eval { .. }
        | Request::Execute { .. } => 2,
        Request::GetItem { .. } | Request::Teleport { .. } => 3,
        Request::GetAttr { .. } => 4,
        Request::Call { .. } => 5,
    } + usize::from(id.is_some())
        + usize::from(!release.is_empty());
    write_map_len(&mut buf, fields)?;
    write_str(&mut buf, "type")?;
    write_str(&mut buf, r.type_name())?;
    match r {
        Request::ImportModule { module } => {
            write_str(&mut buf, "module")?;
            write_str(&mut buf, module)?;
        }
        Request::GetBuiltin { name } => {
            write_str(&mut buf, "name")?;
            write_str(&mut buf, name)?;
        }
        Request::GetAttr { path, obj_id, attr } => {
            write_str(&mut buf, "path")?;
            write_str(&mut buf, path)?;
            write_str(&mut buf, "obj_id")?;
            write_opt_id(&mut buf, *obj_id);
            write_str(&mut buf, "attr")?;
            write_str(&mut buf, attr)?;
        }
        Request::Call {
            path,
            obj_id,
            args,
            kwargs,
        } => {
            write_str(&mut buf, "path")?;
            write_str(&mut buf, path)?;
            write_str(&mut buf, "obj_id")?;
            write_opt_id(&mut buf, *obj_id);
            write_str(&mut buf, "args")?;
            write_array_len(&mut buf, args.len())?;
            for a in args {
                codec::encode_spliced(&mut buf, a, ext.tuples(), splices.as_deref_mut())?;
            }
            write_str(&mut buf, "kwargs")?;
            write_map_len(&mut buf, kwargs.len())?;
            for (k, v) in kwargs {
                write_str(&mut buf, k)?;
                codec::encode_spliced(&mut buf, v, ext.tuples(), splices.as_deref_mut())?;
            }
        }
        Request::GetItem { obj_id, key } => {
            write_str(&mut buf, "obj_id")?;
            write_obj_id(&mut buf, *obj_id);
            write_str(&mut buf, "key")?;
            codec::encode_spliced(&mut buf, key, ext.tuples(), splices)?;
        }
        Request::Materialize { obj_id } => {
            write_str(&mut buf, "obj_id")?;
            write_obj_id(&mut buf, *obj_id);
        }
        Request::Eval { expr } => {
            write_str(&mut buf, "expr")?;
            write_str(&mut buf, expr)?;
        }
        Request::Execute { code } => {
            write_str(&mut buf, "code")?;
            write_str(&mut buf, code)?;
        }
        Request::Teleport { func_bytes, name } => {
            write_str(&mut buf, "func_bytes")?;
            write_bin(&mut buf, func_bytes)?;
            write_str(&mut buf, "name")?;
            write_str(&mut buf, name)?;
        }
        Request::GetNamespace | Request::Stats => {}
    }
    write_extension_fields(&mut buf, id, release)?;
    Ok(buf)
}

/// Encode a response frame, taking it by value: a value copied in by
/// [`RawValue::copy_from_slice`] becomes the frame where it lies, with the
/// header written into the room in front of it (no copy).
pub fn encode_response_owned(
    frame: ResponseFrame,
    ext: Extensions,
) -> Result<Vec<u8>, EncodeError> {
    encode_response_owned_in(frame, ext, Vec::new())
}

/// As [`encode_response_owned`], building a frame that needs a buffer of its
/// own in `spare` (see [`ServerSession::recycle`](crate::ServerSession::recycle)).
pub fn encode_response_owned_in(
    frame: ResponseFrame,
    ext: Extensions,
    spare: Vec<u8>,
) -> Result<Vec<u8>, EncodeError> {
    encode_response_parts_in(frame, ext, spare).map(OutFrame::into_vec)
}

/// As [`encode_response_owned_in`], with the payloads of large arrays and
/// bins of the value spliced in rather than copied (see [`OutFrame`]): the
/// frame a transport writes with vectored writes.
pub fn encode_response_parts_in(
    frame: ResponseFrame,
    ext: Extensions,
    spare: Vec<u8>,
) -> Result<OutFrame, EncodeError> {
    let id = frame.id.filter(|_| ext.request_ids());
    match frame.response {
        Response::Value(Value::Raw(raw)) => match raw.into_framed() {
            Ok(mut buf) => {
                let mut head = Vec::with_capacity(RawValue::FRAME_ROOM);
                write_map_len(&mut head, 2 + usize::from(id.is_some()))?;
                write_str(&mut head, "type")?;
                write_str(&mut head, "success")?;
                write_str(&mut head, "value")?;
                debug_assert_eq!(head.len(), RawValue::FRAME_ROOM);
                buf[..RawValue::FRAME_ROOM].copy_from_slice(&head);
                if let Some(id) = id {
                    write_str(&mut buf, "id")?;
                    write_uint(&mut buf, id);
                }
                Ok(buf.into())
            }
            Err(raw) => {
                let mut splices = Vec::new();
                let frame = ResponseFrame {
                    id: frame.id,
                    response: Response::Value(Value::Raw(raw)),
                };
                let buf = encode_response_with(&frame, ext, spare, Some(&mut splices))?;
                Ok(OutFrame { buf, splices })
            }
        },
        response => {
            let mut splices = Vec::new();
            let frame = ResponseFrame {
                id: frame.id,
                response,
            };
            let buf = encode_response_with(&frame, ext, spare, Some(&mut splices))?;
            Ok(OutFrame { buf, splices })
        }
    }
}

/// About how many bytes the frame of `response` takes (what its buffer reserves).
pub(crate) fn response_capacity(response: &Response) -> usize {
    match response {
        Response::Value(v) => 32 + codec::encoded_len(v),
        Response::Error(e) => {
            128 + e.exception_type.len()
                + e.message.len()
                + e.traceback.len()
                + e.payload.as_ref().map_or(0, |p| p.len())
        }
        Response::Namespace(names) => {
            48 + names
                .iter()
                .map(|(k, v)| k.len() + v.len() + 10)
                .sum::<usize>()
        }
        _ => 48,
    }
}

/// Encode a response frame. `ext` decides whether the `id` key may be written.
pub fn encode_response(frame: &ResponseFrame, ext: Extensions) -> Result<Vec<u8>, EncodeError> {
    encode_response_in(frame, ext, Vec::new())
}

/// As [`encode_response`], building the frame in `spare`.
pub fn encode_response_in(
    frame: &ResponseFrame,
    ext: Extensions,
    spare: Vec<u8>,
) -> Result<Vec<u8>, EncodeError> {
    encode_response_with(frame, ext, spare, None)
}

/// The bytes of `response`'s frame that go into its own buffer when large
/// payloads are spliced in: what it needs reserved.
pub(crate) fn response_buffer_len(response: &Response) -> usize {
    let spliced = match response {
        Response::Value(v) => codec::spliced_len(v),
        _ => 0,
    };
    response_capacity(response).saturating_sub(spliced)
}

fn encode_response_with(
    frame: &ResponseFrame,
    ext: Extensions,
    spare: Vec<u8>,
    splices: Option<&mut codec::Splices>,
) -> Result<Vec<u8>, EncodeError> {
    let id = frame.id.filter(|_| ext.request_ids());
    let extra = usize::from(id.is_some());
    let cap = if splices.is_some() {
        response_buffer_len(&frame.response)
    } else {
        response_capacity(&frame.response)
    };
    let mut buf = reuse(spare, cap);
    match &frame.response {
        Response::Error(e) if e.brief => {
            write_map_len(&mut buf, 2 + extra)?;
            write_str(&mut buf, "type")?;
            write_str(&mut buf, "error")?;
            write_str(&mut buf, "error")?;
            write_str(&mut buf, &e.message)?;
        }
        Response::Error(e) => {
            let cause = e.cause.get().filter(|_| ext.promises());
            write_map_len(&mut buf, 5 + extra + usize::from(cause.is_some()))?;
            write_str(&mut buf, "type")?;
            write_str(&mut buf, "error")?;
            write_str(&mut buf, "exception_type")?;
            write_str(&mut buf, &e.exception_type)?;
            write_str(&mut buf, "exception_message")?;
            write_str(&mut buf, &e.message)?;
            write_str(&mut buf, "exception_pickle")?;
            match &e.payload {
                Some(p) => write_bin(&mut buf, p)?,
                None => buf.push(0xc0),
            }
            write_str(&mut buf, "traceback")?;
            write_str(&mut buf, &e.traceback)?;
            if let Some(cause) = cause {
                write_str(&mut buf, "cause")?;
                write_uint(&mut buf, cause);
            }
        }
        ok => {
            let n = if matches!(ok, Response::Done) { 1 } else { 2 };
            write_map_len(&mut buf, n + extra)?;
            write_str(&mut buf, "type")?;
            write_str(&mut buf, "success")?;
            match ok {
                Response::Object(id) => {
                    write_str(&mut buf, "obj_id")?;
                    write_uint(&mut buf, id.0);
                }
                Response::Value(v) => {
                    write_str(&mut buf, "value")?;
                    codec::encode_spliced(&mut buf, v, ext.tuples(), splices)?;
                }
                Response::Namespace(names) => {
                    write_str(&mut buf, "namespace")?;
                    write_map_len(&mut buf, names.len())?;
                    for (k, v) in names {
                        write_str(&mut buf, k)?;
                        write_str(&mut buf, v)?;
                    }
                }
                Response::Done | Response::Error(_) => {}
            }
        }
    }
    if let Some(id) = id {
        write_str(&mut buf, "id")?;
        write_uint(&mut buf, id);
    }
    Ok(buf)
}

// ---------------------------------------------------------------- decoding

/// The fields of one message map, looked up by name.
struct Fields {
    kind: String,
    frame: Bytes,
    pairs: Vec<(Value, Value, std::ops::Range<usize>)>,
}

impl Fields {
    fn parse(frame: &Bytes, tuples: bool) -> Result<Fields, FrameError> {
        let pairs = match codec::top_level(frame, tuples)? {
            codec::TopLevel::Map(pairs) => pairs,
            codec::TopLevel::Other(other) => return Err(FrameError::NotAMap(other.type_name())),
        };
        let kind = pairs
            .iter()
            .find_map(|(k, v, _)| (k.as_str() == Some("type")).then(|| v.as_str()))
            .flatten()
            .ok_or(FrameError::NoType)?
            .to_owned();
        Ok(Fields {
            kind,
            frame: frame.clone(),
            pairs,
        })
    }

    fn take_opt(&mut self, field: &str) -> Option<Value> {
        self.take_raw(field).map(|(v, _)| v)
    }

    /// A field's value and its bytes in the frame.
    fn take_raw(&mut self, field: &str) -> Option<(Value, RawValue)> {
        let i = self
            .pairs
            .iter()
            .position(|(k, _, _)| k.as_str() == Some(field))?;
        let (_, v, range) = self.pairs.swap_remove(i);
        Some((v, RawValue::trusted(self.frame.slice(range))))
    }

    fn take(&mut self, field: &'static str) -> Result<Value, FrameError> {
        self.take_opt(field)
            .ok_or_else(|| FrameError::MissingField {
                kind: self.kind.clone(),
                field,
            })
    }

    fn wrong(&self, field: &'static str, want: &'static str, got: &Value) -> FrameError {
        FrameError::WrongField {
            kind: self.kind.clone(),
            field,
            want,
            got: got.type_name(),
        }
    }

    fn string(&mut self, field: &'static str) -> Result<String, FrameError> {
        match self.take(field)? {
            Value::Str(s) => Ok(s),
            other => Err(self.wrong(field, "a str", &other)),
        }
    }

    fn obj_id(&mut self, field: &'static str) -> Result<ObjId, FrameError> {
        let v = self.take(field)?;
        as_obj_id(&v)
            .ok_or_else(|| self.wrong(field, "an object id (an int below 2^63, or a promise)", &v))
    }

    fn opt_obj_id(&mut self, field: &'static str) -> Result<Option<ObjId>, FrameError> {
        match self.take_opt(field) {
            None | Some(Value::Nil) => Ok(None),
            Some(v) => as_obj_id(&v)
                .map(Some)
                .ok_or_else(|| self.wrong(field, "an object id, a promise or nil", &v)),
        }
    }

    fn opt_u64(&mut self, field: &'static str) -> Result<Option<u64>, FrameError> {
        match self.take_opt(field) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.wrong(field, "a non-negative int", &v)),
        }
    }
}

/// An object id field: an int below [`ObjId::PROMISE_BIT`], or a promise marker.
fn as_obj_id(v: &Value) -> Option<ObjId> {
    match v {
        Value::Proxy(id) if id.as_promise().is_some() => Some(*id),
        v => v.as_u64().filter(|&i| i < ObjId::PROMISE_BIT).map(ObjId),
    }
}

/// The extension fields of a request frame, as far as they can be read:
/// for a request whose body is malformed, so that its answer still carries
/// its id and the objects it released are still freed.
pub fn decode_request_envelope(frame: &Bytes) -> (Option<u64>, Vec<ObjId>) {
    let Ok(mut f) = Fields::parse(frame, false) else {
        return (None, Vec::new());
    };
    let id = f.opt_u64("id").ok().flatten();
    let release = release_field(&mut f).unwrap_or_default();
    (id, release)
}

fn release_field(f: &mut Fields) -> Result<Vec<ObjId>, FrameError> {
    Ok(match f.take_opt("release") {
        None | Some(Value::Nil) => Vec::new(),
        Some(Value::List(items)) => items
            .iter()
            .map(|v| v.as_u64().filter(|&i| i < ObjId::PROMISE_BIT).map(ObjId))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| f.wrong("release", "a list of ints", &Value::List(Vec::new())))?,
        Some(other) => return Err(f.wrong("release", "a list of ints", &other)),
    })
}

/// Decode a request frame. Extension fields are read whenever present;
/// tuple markers decode to [`Value::Tuple`] (see [`decode_request_with`]).
pub fn decode_request(frame: &Bytes) -> Result<RequestFrame, FrameError> {
    decode_request_with(frame, Extensions::ALL)
}

/// Decode a request frame of a connection speaking `ext`: only with the
/// `tuple` extension does `{"__tuple__": [...]}` decode to [`Value::Tuple`]
/// (from a stock client it is the map it says).
pub fn decode_request_with(frame: &Bytes, ext: Extensions) -> Result<RequestFrame, FrameError> {
    let mut f = Fields::parse(frame, ext.tuples())?;
    let id = f.opt_u64("id")?;
    let release = release_field(&mut f)?;
    let mut raw = RawFields::default();
    let request = match f.kind.as_str() {
        "import_module" => Request::ImportModule {
            module: f.string("module")?,
        },
        "get_builtin" => Request::GetBuiltin {
            name: f.string("name")?,
        },
        "getattr" => Request::GetAttr {
            path: f.string("path")?,
            obj_id: f.opt_obj_id("obj_id")?,
            attr: f.string("attr")?,
        },
        "call" => {
            let path = f.string("path")?;
            let obj_id = f.opt_obj_id("obj_id")?;
            let args = match f.take_raw("args") {
                Some((Value::List(items), bytes)) => {
                    raw.args = Some(bytes);
                    items
                }
                Some((other, _)) => return Err(f.wrong("args", "a list", &other)),
                None => {
                    return Err(FrameError::MissingField {
                        kind: f.kind.clone(),
                        field: "args",
                    })
                }
            };
            let kwargs = match f.take_raw("kwargs") {
                None | Some((Value::Nil, _)) => Vec::new(),
                Some((Value::Map(pairs), bytes)) => {
                    raw.kwargs = Some(bytes);
                    pairs
                        .into_iter()
                        .map(|(k, v)| match k {
                            Value::Str(k) => Ok((k, v)),
                            other => Err(f.wrong("kwargs", "a map with str keys", &other)),
                        })
                        .collect::<Result<_, _>>()?
                }
                Some((other, _)) => return Err(f.wrong("kwargs", "a map", &other)),
            };
            Request::Call {
                path,
                obj_id,
                args,
                kwargs,
            }
        }
        "getitem" => {
            let obj_id = f.obj_id("obj_id")?;
            let (key, bytes) = f.take_raw("key").ok_or_else(|| FrameError::MissingField {
                kind: f.kind.clone(),
                field: "key",
            })?;
            raw.key = Some(bytes);
            Request::GetItem { obj_id, key }
        }
        "materialize" => Request::Materialize {
            obj_id: f.obj_id("obj_id")?,
        },
        "eval" => Request::Eval {
            expr: f.string("expr")?,
        },
        "execute" => Request::Execute {
            code: f.string("code")?,
        },
        "teleport" => Request::Teleport {
            func_bytes: match f.take("func_bytes")? {
                Value::Bin(b) => b,
                other => return Err(f.wrong("func_bytes", "bytes", &other)),
            },
            name: f.string("name")?,
        },
        "get_namespace" => Request::GetNamespace,
        // Only where negotiated: else unknown, as the reference answers it.
        "stats" if ext.stats() => Request::Stats,
        other => return Err(FrameError::UnknownType(other.to_owned())),
    };
    Ok(RequestFrame {
        id,
        release,
        request,
        raw,
    })
}

/// Decode a response frame (tuple markers decode to [`Value::Tuple`]).
pub fn decode_response(frame: &Bytes) -> Result<ResponseFrame, FrameError> {
    decode_response_raw(frame).map(|(r, _)| r)
}

/// Decode a response frame, and hand out the bytes of its `value` (or
/// `namespace`) field as they are in the frame, for callers that pass the
/// msgpack on (the C ABI) rather than use the decoded value.
pub fn decode_response_raw(frame: &Bytes) -> Result<(ResponseFrame, Option<RawValue>), FrameError> {
    decode_response_raw_with(frame, Extensions::ALL)
}

/// As [`decode_response_raw`], for a connection speaking `ext` (see
/// [`decode_request_with`] for what the `tuple` extension changes).
pub fn decode_response_raw_with(
    frame: &Bytes,
    ext: Extensions,
) -> Result<(ResponseFrame, Option<RawValue>), FrameError> {
    let mut f = Fields::parse(frame, ext.tuples())?;
    let mut raw = None;
    let id = f.opt_u64("id")?;
    let response = match f.kind.as_str() {
        "success" => {
            if let Some(v) = f.take_opt("obj_id") {
                Response::Object(
                    v.as_u64()
                        .filter(|&i| i < ObjId::PROMISE_BIT)
                        .map(ObjId)
                        .ok_or_else(|| f.wrong("obj_id", "an int below 2^63", &v))?,
                )
            } else if let Some((v, bytes)) = f.take_raw("value") {
                raw = Some(bytes);
                Response::Value(v)
            } else if let Some((v, bytes)) = f.take_raw("namespace") {
                raw = Some(bytes);
                match v {
                    Value::Map(pairs) => Response::Namespace(
                        pairs
                            .into_iter()
                            .map(|(k, v)| match (k, v) {
                                (Value::Str(k), Value::Str(v)) => Ok((k, v)),
                                (_, v) => Err(f.wrong("namespace", "a map of str to str", &v)),
                            })
                            .collect::<Result<_, _>>()?,
                    ),
                    other => return Err(f.wrong("namespace", "a map", &other)),
                }
            } else {
                Response::Done
            }
        }
        "error" => {
            let text = |f: &mut Fields, k: &'static str| -> Result<Option<String>, FrameError> {
                match f.take_opt(k) {
                    None | Some(Value::Nil) => Ok(None),
                    Some(Value::Str(s)) => Ok(Some(s)),
                    Some(other) => Err(f.wrong(k, "a str", &other)),
                }
            };
            if let Some(brief) = text(&mut f, "error")? {
                Response::Error(RemoteError {
                    exception_type: "Exception".into(),
                    message: brief,
                    traceback: String::new(),
                    payload: None,
                    brief: true,
                    cause: Cause::NONE,
                })
            } else {
                Response::Error(RemoteError {
                    exception_type: text(&mut f, "exception_type")?
                        .unwrap_or_else(|| "Exception".into()),
                    message: text(&mut f, "exception_message")?
                        .unwrap_or_else(|| "Unknown error".into()),
                    traceback: text(&mut f, "traceback")?.unwrap_or_default(),
                    payload: match f.take_opt("exception_pickle") {
                        Some(Value::Bin(b)) => Some(b),
                        _ => None,
                    },
                    brief: false,
                    cause: f.opt_u64("cause")?.map_or(Cause::NONE, Cause::of),
                })
            }
        }
        other => return Err(FrameError::UnknownType(other.to_owned())),
    };
    Ok((ResponseFrame { id, response }, raw))
}
