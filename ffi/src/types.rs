//! Plain C types: borrowed strings and bytes, owned buffers, calls and responses.

use std::ffi::{c_char, c_void};

use simplerpc_core::message::FrameError;
use simplerpc_core::{codec, Bytes, ObjId, Raw, RawRequest, RawValue, Request, Response, Value};

use crate::error::{FfiError, SrpcStatusErrInvalidUtf8};

/// "No object": pass as `obj` where a call has no object (it then acts on `path`).
pub const SRPC_NO_OBJECT: u64 = u64::MAX;

/// A borrowed UTF-8 string: pointer and length (no NUL needed). A NULL `ptr`
/// with `len` 0 is the empty string. Valid for the duration of the call.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct srpc_str {
    /// First byte, or NULL when `len` is 0.
    pub ptr: *const c_char,
    /// Length in bytes.
    pub len: usize,
}

/// Borrowed bytes: pointer and length. A NULL `ptr` with `len` 0 is empty.
/// Valid for the duration of the call.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct srpc_slice {
    /// First byte, or NULL when `len` is 0.
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

/// Bytes handed to the caller: free with srpc_buf_free(). The library keeps
/// what `data` points into alive until then: its own allocation (a frame it
/// built), or, for a value taken from a response, the received frame itself,
/// which the value's bytes are a part of (they are not copied out of it).
/// Zero it (`{NULL, 0, NULL}`) before a call that may leave it unwritten.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct srpc_buf {
    /// The bytes, read-only (NULL when empty).
    pub data: *const u8,
    /// Their length.
    pub len: usize,
    /// Private: what keeps the bytes alive (the library's allocation or the
    /// received frame), released by srpc_buf_free(). Do not change.
    pub owner: *mut c_void,
}

/// What an srpc_buf's `owner` points to (boxed).
enum Owner {
    /// Bytes the library produced.
    Vec(#[allow(dead_code)] Vec<u8>),
    /// A value's bytes, shared with the frame they arrived in.
    Raw(#[allow(dead_code)] RawValue),
}

impl srpc_buf {
    /// No bytes.
    pub fn empty() -> Self {
        srpc_buf {
            data: std::ptr::null(),
            len: 0,
            owner: std::ptr::null_mut(),
        }
    }

    /// Hand out `v` (moved, not copied).
    pub fn from_vec(v: Vec<u8>) -> Self {
        if v.is_empty() {
            return srpc_buf::empty();
        }
        let (data, len) = (v.as_ptr(), v.len());
        // Moving the Vec into the box does not move its heap buffer: `data` stays valid.
        srpc_buf::owned(data, len, Owner::Vec(v))
    }

    /// Hand out a value's bytes where they lie (in the frame they arrived in,
    /// or the buffer they were copied into once): no copy.
    pub fn from_raw(r: RawValue) -> Self {
        if r.is_empty() {
            return srpc_buf::empty();
        }
        let bytes = r.as_bytes();
        let (data, len) = (bytes.as_ptr(), bytes.len());
        // Moving the RawValue does not move the bytes it shares or owns.
        srpc_buf::owned(data, len, Owner::Raw(r))
    }

    fn owned(data: *const u8, len: usize, owner: Owner) -> Self {
        srpc_buf {
            data,
            len,
            owner: Box::into_raw(Box::new(owner)).cast(),
        }
    }
}

/// Free a buffer the library handed out, and reset it to empty. Freeing an
/// empty buffer, or passing NULL, does nothing. The bytes it pointed to may
/// be gone at once (with the frame they were part of).
///
/// # Safety
/// `buf` is NULL or points to an srpc_buf filled by this library (or zeroed)
/// and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn srpc_buf_free(buf: *mut srpc_buf) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: NULL is checked; otherwise the caller passes a valid srpc_buf.
        let Some(b) = (unsafe { buf.as_mut() }) else {
            return;
        };
        if !b.owner.is_null() {
            // SAFETY: `owner` came from Box::into_raw in srpc_buf::owned and
            // has not been freed (documented precondition; freeing resets it).
            drop(unsafe { Box::from_raw(b.owner.cast::<Owner>()) });
        }
        *b = srpc_buf::empty();
    });
}

/// The kinds of call, on a client and in an executor callback.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum srpc_call_kind {
    /// Import module `name` (dotted names allowed).
    SrpcCallKindImportModule = 0,
    /// The builtin called `name`.
    SrpcCallKindGetBuiltin = 1,
    /// Attribute `name` of `obj` (or of what `path` names when `obj` is SRPC_NO_OBJECT).
    SrpcCallKindGetAttr = 2,
    /// Call `obj` (or `path`) with `args` (msgpack array) and `kwargs` (msgpack map).
    SrpcCallKindCall = 3,
    /// `obj[key]` with `key` msgpack.
    SrpcCallKindGetItem = 4,
    /// The value of `obj`, as msgpack.
    SrpcCallKindMaterialize = 5,
    /// Evaluate expression `name`.
    SrpcCallKindEval = 6,
    /// Execute code `name`.
    SrpcCallKindExecute = 7,
    /// Install function bytes `payload` under `name`.
    SrpcCallKindTeleport = 8,
    /// The namespace, as a msgpack map of str to str.
    SrpcCallKindGetNamespace = 9,
}

/// An srpc_call_kind as C hands it in: any `uint32_t` (checked on entry).
/// The header calls it `srpc_call_kind` (see cbindgen.toml).
pub type srpc_call_kind_in = u32;

impl srpc_call_kind {
    /// The request's name on the wire (`"getattr"`), for messages.
    pub fn wire_name(self) -> &'static str {
        match self {
            srpc_call_kind::SrpcCallKindImportModule => "import_module",
            srpc_call_kind::SrpcCallKindGetBuiltin => "get_builtin",
            srpc_call_kind::SrpcCallKindGetAttr => "getattr",
            srpc_call_kind::SrpcCallKindCall => "call",
            srpc_call_kind::SrpcCallKindGetItem => "getitem",
            srpc_call_kind::SrpcCallKindMaterialize => "materialize",
            srpc_call_kind::SrpcCallKindEval => "eval",
            srpc_call_kind::SrpcCallKindExecute => "execute",
            srpc_call_kind::SrpcCallKindTeleport => "teleport",
            srpc_call_kind::SrpcCallKindGetNamespace => "get_namespace",
        }
    }

    /// The kind with this number, if there is one.
    pub fn from_u32(k: srpc_call_kind_in) -> Option<Self> {
        use srpc_call_kind::*;
        [
            SrpcCallKindImportModule,
            SrpcCallKindGetBuiltin,
            SrpcCallKindGetAttr,
            SrpcCallKindCall,
            SrpcCallKindGetItem,
            SrpcCallKindMaterialize,
            SrpcCallKindEval,
            SrpcCallKindExecute,
            SrpcCallKindTeleport,
            SrpcCallKindGetNamespace,
        ]
        .into_iter()
        .find(|c| *c as u32 == k)
    }
}

/// One call: on a client, the request to send; in an executor callback, the
/// request to serve (there `obj` is the executor's own handle). Fields a kind
/// does not use are ignored (set them to zero).
///
/// In an executor callback, `args`, `kwargs` and `key` are the bytes of the
/// request frame exactly as the client wrote them (borrowed, not copied, not
/// re-encoded). A reference to an object in them is still the client's
/// marker map, in one of two forms:
/// - a proxy, `{"__rpc_proxy__": true, "obj_id": ID}`, whose ID is the
///   *client's* object id;
/// - a promise (the `promise` extension, SRPC_EXT_PROMISE),
///   `{"__rpc_promise__": N}`, whose N is the id of an earlier request of
///   the connection, standing for the object that request returned.
///
/// Neither number is a handle of this executor: `refs` gives the handle each
/// reference stands for. The session has resolved and checked every
/// reference (and refused any other map with the key `"__rpc_proxy__"` or
/// `"__rpc_promise__"`) before calling back; a call built on a promise whose
/// request failed is not passed to the executor at all.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct srpc_call {
    /// What to do (checked: a number that is no srpc_call_kind is
    /// SRPC_STATUS_ERR_INVALID_ARGUMENT).
    pub kind: srpc_call_kind_in,
    /// The object acted on, or SRPC_NO_OBJECT.
    pub obj: u64,
    /// Module, builtin or attribute name, expression, code, or teleport name.
    pub name: srpc_str,
    /// The human-readable trail to the object (`"env.step"`).
    pub path: srpc_str,
    /// msgpack array of positional arguments (SRPC_CALL_KIND_CALL); on a
    /// client, empty means no arguments.
    pub args: srpc_slice,
    /// msgpack map of keyword arguments (SRPC_CALL_KIND_CALL); on a client,
    /// empty means none. An executor always gets a map (`0x80` when none).
    pub kwargs: srpc_slice,
    /// One msgpack value, the key (SRPC_CALL_KIND_GET_ITEM).
    pub key: srpc_slice,
    /// opaque bytes (SRPC_CALL_KIND_TELEPORT).
    pub payload: srpc_slice,
    /// Client only (an executor gets NULL): `args` as several buffers that
    /// make the msgpack array when joined, so that a large array's own
    /// memory is not joined into one buffer first. On a connection
    /// (srpc_client_request() and the send functions), a buffer of at least
    /// 64 KiB that is exactly the payload of a bin (the buffers before it
    /// end with that bin's header, as a msgpack-numpy array's `data` is cut)
    /// is not copied at all: it is written to the socket from where it lies
    /// before the call returns. Other buffers are copied once, into the
    /// frame; a client session (srpc_client_session_send()) copies them
    /// all. Either way the buffers need only live until the call returns.
    /// NULL: `args` holds the array.
    pub args_parts: *const srpc_slice,
    /// The number of buffers in `args_parts`.
    pub args_parts_len: usize,
    /// Client only (an executor gets NULL): `kwargs` as several buffers
    /// that make the msgpack map when joined, taken as `args_parts` is (on
    /// a connection a buffer of at least 64 KiB that is exactly a bin's
    /// payload is written to the socket from where it lies; a client
    /// session copies them all). NULL: `kwargs` holds the map.
    pub kwargs_parts: *const srpc_slice,
    /// The number of buffers in `kwargs_parts`.
    pub kwargs_parts_len: usize,
    /// Client only (an executor gets NULL): `key` as several buffers that
    /// make the msgpack value when joined, taken as `args_parts` is (an
    /// index that is a large array, `p[mask]`; srpc_trail_parts() gives its
    /// trail from the same parts). NULL: `key` holds the value.
    pub key_parts: *const srpc_slice,
    /// The number of buffers in `key_parts`.
    pub key_parts_len: usize,
    /// Executor callbacks only (a client ignores it): the handle each
    /// reference in `args`, then `kwargs` (or in `key`) stands for, in the
    /// order the references appear in the bytes, proxies and promises alike;
    /// the markers themselves carry the client's ids and request ids, not
    /// handles: replace the i-th map whose key is "__rpc_proxy__" or
    /// "__rpc_promise__" (counting both kinds together) by `refs[i]`.
    /// Borrowed for the callback; NULL when `refs_len` is 0.
    pub refs: *const u64,
    /// The number of handles in `refs` (the number of references of both kinds).
    pub refs_len: usize,
}

/// The kinds of successful response.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum srpc_response_kind {
    /// A new object: `obj` holds its id.
    SrpcResponseKindObject = 0,
    /// A value: `value` holds msgpack.
    SrpcResponseKindValue = 1,
    /// Done, nothing returned (execute).
    SrpcResponseKindDone = 2,
    /// A namespace: `value` holds a msgpack map of str to str.
    SrpcResponseKindNamespace = 3,
    /// The remote side raised: see srpc_last_error_type() and friends.
    SrpcResponseKindError = 4,
}

/// A response. `value` is owned by the caller: free it with srpc_buf_free().
///
/// Written on success, and also for SRPC_STATUS_ERR_REMOTE (a remote
/// exception answered the request): then `kind` is SRPC_RESPONSE_KIND_ERROR,
/// `request_id` names the request that failed, `obj` is SRPC_NO_OBJECT and
/// `value` is empty (the exception is in srpc_last_error_type() and friends).
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct srpc_response {
    /// What came back.
    pub kind: srpc_response_kind,
    /// The new object's id (SRPC_RESPONSE_KIND_OBJECT), else SRPC_NO_OBJECT.
    pub obj: u64,
    /// The id of the request this answers (counting from 0 per session), from
    /// srpc_client_session_receive(), srpc_client_session_take(),
    /// srpc_client_wait() and srpc_client_request(), which writes it as soon
    /// as the request is sent (whatever happens next, a host can then give
    /// the request up with srpc_client_abandon()).
    pub request_id: u64,
    /// msgpack bytes (SRPC_RESPONSE_KIND_VALUE, SRPC_RESPONSE_KIND_NAMESPACE),
    /// else empty: the value as the response frame holds it, byte for byte
    /// (not decoded and encoded again), and `value.data` points into that
    /// frame, which the buffer keeps alive until srpc_buf_free().
    pub value: srpc_buf,
}

impl srpc_str {
    /// Borrow as &str.
    ///
    /// # Safety
    /// `ptr` is NULL with `len` 0, or points to `len` readable bytes.
    pub unsafe fn as_str<'a>(&self, what: &str) -> Result<&'a str, FfiError> {
        // SAFETY: forwarded precondition.
        let bytes = unsafe { raw_slice(self.ptr.cast(), self.len, what)? };
        std::str::from_utf8(bytes).map_err(|e| {
            FfiError::new(
                SrpcStatusErrInvalidUtf8,
                format!("{what} is not valid UTF-8: {e}"),
            )
        })
    }
}

impl srpc_slice {
    /// Borrow as bytes.
    ///
    /// # Safety
    /// `ptr` is NULL with `len` 0, or points to `len` readable bytes.
    pub unsafe fn as_bytes<'a>(&self, what: &str) -> Result<&'a [u8], FfiError> {
        // SAFETY: forwarded precondition.
        unsafe { raw_slice(self.ptr, self.len, what) }
    }
}

/// # Safety
/// `ptr` is NULL with `len` 0, or points to `len` srpc_slices for `'a`.
pub unsafe fn raw_parts<'a>(
    ptr: *const srpc_slice,
    len: usize,
    what: &str,
) -> Result<&'a [srpc_slice], FfiError> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(FfiError::null(what))
        };
    }
    if len > isize::MAX as usize / std::mem::size_of::<srpc_slice>() {
        return Err(FfiError::invalid(format!(
            "{what}: length {len} is not plausible"
        )));
    }
    // SAFETY: non-NULL, and `len` slices are readable for 'a (the caller's contract).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// # Safety
/// `ptr` is NULL with `len` 0, or points to `len` readable bytes for `'a`.
pub unsafe fn raw_slice<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8], FfiError> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(FfiError::null(what))
        };
    }
    if len > isize::MAX as usize {
        return Err(FfiError::invalid(format!(
            "{what}: length {len} is not plausible"
        )));
    }
    // SAFETY: non-NULL, length bounded; the caller guarantees `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A C string argument (NUL-terminated) as &str.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub unsafe fn cstr<'a>(p: *const c_char, what: &str) -> Result<&'a str, FfiError> {
    if p.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_str()
        .map_err(|e| {
            FfiError::new(
                SrpcStatusErrInvalidUtf8,
                format!("{what} is not valid UTF-8: {e}"),
            )
        })
}

fn obj(o: u64) -> Option<ObjId> {
    (o != SRPC_NO_OBJECT).then_some(ObjId(o))
}

fn need_obj(o: u64, kind: &str) -> Result<ObjId, FfiError> {
    obj(o)
        .ok_or_else(|| FfiError::invalid(format!("{kind} needs an object (obj is SRPC_NO_OBJECT)")))
}

/// What a client sends for an srpc_call: a request built from values, or a
/// call or getitem whose msgpack goes into the frame as it is.
pub enum Outgoing<'a> {
    /// Everything but call and getitem.
    Request(Request),
    /// call and getitem: args, kwargs or key copied once (large array
    /// payloads in `args_parts`, `kwargs_parts` and `key_parts` not at all,
    /// on a connection), and checked.
    Raw(RawFields<'a>),
}

/// A msgpack field of a call or getitem as the host handed it in: one
/// buffer, or several that make it when joined.
pub enum RawField<'a> {
    /// One buffer.
    One(&'a [u8]),
    /// Buffers to be joined, in order (gathered once from the host's list).
    Parts(Vec<&'a [u8]>),
}

impl RawField<'_> {
    /// The field as core takes it.
    pub fn raw(&self) -> Raw<'_> {
        match self {
            RawField::One(b) => Raw::One(b),
            RawField::Parts(p) => Raw::Parts(p),
        }
    }

    /// Whether the field has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.raw().is_empty()
    }
}

/// The borrowed msgpack fields of a call or getitem (each perhaps in parts).
pub enum RawFields<'a> {
    /// call
    Call {
        /// the trail
        path: &'a str,
        /// the object
        obj_id: Option<ObjId>,
        /// the positional arguments
        args: RawField<'a>,
        /// the keyword arguments
        kwargs: RawField<'a>,
    },
    /// getitem
    GetItem {
        /// the object
        obj_id: ObjId,
        /// the key
        key: RawField<'a>,
    },
}

impl RawFields<'_> {
    /// The request core builds the frame of.
    pub fn request(&self) -> RawRequest<'_> {
        match self {
            RawFields::Call {
                path,
                obj_id,
                args,
                kwargs,
            } => RawRequest::Call {
                path,
                obj_id: *obj_id,
                args: args.raw(),
                kwargs: kwargs.raw(),
            },
            RawFields::GetItem { obj_id, key } => RawRequest::GetItem {
                obj_id: *obj_id,
                key: key.raw(),
            },
        }
    }
}

/// `one`, or when `parts` is not NULL the `len` buffers it points to.
///
/// # Safety
/// `one` is NULL with length 0 or valid for its length; `parts` is NULL or
/// points to `len` slices each valid for its length, for `'a`.
unsafe fn raw_field<'a>(
    one: &srpc_slice,
    parts: *const srpc_slice,
    len: usize,
    what: &str,
    parts_what: &str,
) -> Result<RawField<'a>, FfiError> {
    if parts.is_null() {
        // SAFETY: forwarded precondition. (A NULL list with a non-zero
        // length is ignored as it always was for `args_parts`.)
        return Ok(RawField::One(unsafe { one.as_bytes(what)? }));
    }
    // SAFETY: forwarded precondition.
    let slices = unsafe { raw_parts(parts, len, parts_what)? };
    let mut out = Vec::with_capacity(slices.len());
    for p in slices {
        // SAFETY: each part is valid for its length (forwarded precondition).
        out.push(unsafe { p.as_bytes(parts_what)? });
    }
    Ok(RawField::Parts(out))
}

impl srpc_call {
    /// What this call sends. The msgpack fields are borrowed, not decoded:
    /// they are checked when the frame is built.
    ///
    /// # Safety
    /// Every pointer field is NULL with length 0 or valid for its length,
    /// for as long as the result is used.
    pub unsafe fn to_outgoing(&self) -> Result<Outgoing<'_>, FfiError> {
        // SAFETY: `name` is valid for its length (the caller's contract).
        let name = || unsafe { self.name.as_str("name") }.map(str::to_owned);
        let kind = srpc_call_kind::from_u32(self.kind).ok_or_else(|| {
            FfiError::invalid(format!("call kind {} is not an srpc_call_kind", self.kind))
        })?;
        Ok(Outgoing::Request(match kind {
            srpc_call_kind::SrpcCallKindImportModule => Request::ImportModule { module: name()? },
            srpc_call_kind::SrpcCallKindGetBuiltin => Request::GetBuiltin { name: name()? },
            srpc_call_kind::SrpcCallKindGetAttr => Request::GetAttr {
                // SAFETY: `path` is valid for its length (the caller's contract).
                path: unsafe { self.path.as_str("path")? }.to_owned(),
                obj_id: obj(self.obj),
                attr: name()?,
            },
            srpc_call_kind::SrpcCallKindCall => {
                // A field in one buffer needs no list (no allocation on the
                // common path); parts are gathered once here.
                return Ok(Outgoing::Raw(RawFields::Call {
                    // SAFETY: `path` is valid for its length (the caller's contract).
                    path: unsafe { self.path.as_str("path")? },
                    obj_id: obj(self.obj),
                    // SAFETY: `args` and `args_parts` are valid for their
                    // lengths, for as long as the result is used (the
                    // caller's contract).
                    args: unsafe {
                        raw_field(
                            &self.args,
                            self.args_parts,
                            self.args_parts_len,
                            "args",
                            "args_parts",
                        )?
                    },
                    // SAFETY: as for `args`.
                    kwargs: unsafe {
                        raw_field(
                            &self.kwargs,
                            self.kwargs_parts,
                            self.kwargs_parts_len,
                            "kwargs",
                            "kwargs_parts",
                        )?
                    },
                }));
            }
            srpc_call_kind::SrpcCallKindGetItem => {
                let obj_id = need_obj(self.obj, "getitem")?;
                // SAFETY: `key` and `key_parts` are valid for their lengths,
                // for as long as the result is used (the caller's contract).
                let key = unsafe {
                    raw_field(
                        &self.key,
                        self.key_parts,
                        self.key_parts_len,
                        "key",
                        "key_parts",
                    )?
                };
                if key.is_empty() {
                    return Err(FfiError::invalid(
                        "key must be one msgpack value (it is empty)",
                    ));
                }
                return Ok(Outgoing::Raw(RawFields::GetItem { obj_id, key }));
            }
            srpc_call_kind::SrpcCallKindMaterialize => Request::Materialize {
                obj_id: need_obj(self.obj, "materialize")?,
            },
            srpc_call_kind::SrpcCallKindEval => Request::Eval { expr: name()? },
            srpc_call_kind::SrpcCallKindExecute => Request::Execute { code: name()? },
            srpc_call_kind::SrpcCallKindTeleport => Request::Teleport {
                // SAFETY: `payload` is valid for its length (the caller's contract).
                func_bytes: Bytes::copy_from_slice(unsafe { self.payload.as_bytes("payload")? }),
                name: name()?,
            },
            srpc_call_kind::SrpcCallKindGetNamespace => Request::GetNamespace,
        }))
    }
}

/// The error for msgpack fields core refused to put in a frame (core's
/// message names the field).
pub fn refused(e: FrameError) -> FfiError {
    FfiError::invalid(e.to_string())
}

/// Fill `*out` from a core response and the bytes of its value as the frame
/// holds them. A remote error writes an SRPC_RESPONSE_KIND_ERROR response
/// and becomes `Err(Remote)`.
///
/// # Safety
/// `out` is valid for writing an srpc_response (it need not be initialised).
pub unsafe fn fill_response(
    request_id: u64,
    r: Response,
    raw: Option<RawValue>,
    out: *mut srpc_response,
) -> Result<(), FfiError> {
    let value = |v: Value| match raw {
        Some(raw) => Ok(srpc_buf::from_raw(raw)),
        // Never for a decoded frame (it always hands the bytes on); kept for
        // a response built in memory.
        None => codec::to_vec(&v)
            .map(srpc_buf::from_vec)
            .map_err(|e| FfiError::invalid(e.to_string())),
    };
    let (kind, obj, value, error) = match r {
        Response::Object(id) => (
            srpc_response_kind::SrpcResponseKindObject,
            id.0,
            srpc_buf::empty(),
            None,
        ),
        Response::Value(v) => (
            srpc_response_kind::SrpcResponseKindValue,
            SRPC_NO_OBJECT,
            value(v)?,
            None,
        ),
        Response::Done => (
            srpc_response_kind::SrpcResponseKindDone,
            SRPC_NO_OBJECT,
            srpc_buf::empty(),
            None,
        ),
        Response::Namespace(names) => (
            srpc_response_kind::SrpcResponseKindNamespace,
            SRPC_NO_OBJECT,
            value(Value::map(names))?,
            None,
        ),
        Response::Error(e) => (
            srpc_response_kind::SrpcResponseKindError,
            SRPC_NO_OBJECT,
            srpc_buf::empty(),
            Some(e),
        ),
    };
    // SAFETY: valid for writing (the caller's contract); written whole,
    // without reading what was there (it may be uninitialised).
    unsafe {
        out.write(srpc_response {
            kind,
            obj,
            request_id,
            value,
        })
    };
    match error {
        Some(e) => Err(FfiError::remote(e)),
        None => Ok(()),
    }
}
