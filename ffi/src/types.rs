//! Plain C types: borrowed strings and bytes, owned buffers, calls and responses.

use std::ffi::c_char;

use simplerpc_core::{codec, Bytes, ObjId, Request, Response, Value};

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

/// Bytes owned by the caller, allocated by the library: free with srpc_buf_free().
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct srpc_buf {
    /// The bytes (NULL when empty).
    pub data: *mut u8,
    /// Their length.
    pub len: usize,
    /// Private: the allocation's capacity. Do not change.
    pub capacity: usize,
}

impl srpc_buf {
    pub fn empty() -> Self {
        srpc_buf {
            data: std::ptr::null_mut(),
            len: 0,
            capacity: 0,
        }
    }

    pub fn from_vec(v: Vec<u8>) -> Self {
        if v.capacity() == 0 {
            return srpc_buf::empty();
        }
        let mut v = std::mem::ManuallyDrop::new(v);
        srpc_buf {
            data: v.as_mut_ptr(),
            len: v.len(),
            capacity: v.capacity(),
        }
    }
}

/// Free a buffer the library handed out, and reset it to empty. Freeing an
/// empty buffer, or passing NULL, does nothing.
///
/// # Safety
/// `buf` is NULL or points to an srpc_buf filled by this library and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn srpc_buf_free(buf: *mut srpc_buf) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: NULL is checked; otherwise the caller passes a valid srpc_buf.
        let Some(b) = (unsafe { buf.as_mut() }) else {
            return;
        };
        if !b.data.is_null() {
            // SAFETY: data/len/capacity came from a Vec<u8> in srpc_buf::from_vec
            // and the caller has not freed it (documented precondition).
            drop(unsafe { Vec::from_raw_parts(b.data, b.len, b.capacity) });
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
/// request to serve (there `obj` is the executor's own handle, and object
/// references inside `args`, `kwargs` and `key` are msgpack maps
/// `{"__rpc_proxy__": true, "obj_id": HANDLE}` naming executor handles).
/// Fields a kind does not use are ignored (set them to zero).
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
    /// msgpack array of positional arguments (SRPC_CALL_KIND_CALL).
    pub args: srpc_slice,
    /// msgpack map of keyword arguments (SRPC_CALL_KIND_CALL); empty means none.
    pub kwargs: srpc_slice,
    /// msgpack key (SRPC_CALL_KIND_GET_ITEM).
    pub key: srpc_slice,
    /// opaque bytes (SRPC_CALL_KIND_TELEPORT).
    pub payload: srpc_slice,
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
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct srpc_response {
    /// What came back.
    pub kind: srpc_response_kind,
    /// The new object's id (SRPC_RESPONSE_KIND_OBJECT).
    pub obj: u64,
    /// The id of the request this answers (counting from 0 per session), from
    /// srpc_client_session_receive(); srpc_client_request() answers one call
    /// at a time and sets 0.
    pub request_id: u64,
    /// msgpack bytes (SRPC_RESPONSE_KIND_VALUE, SRPC_RESPONSE_KIND_NAMESPACE), else empty.
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

    /// Decode as one msgpack value (copied once; arrays share that copy).
    ///
    /// # Safety
    /// As [`srpc_slice::as_bytes`].
    pub unsafe fn decode(&self, what: &str) -> Result<Value, FfiError> {
        // SAFETY: forwarded precondition.
        let bytes = Bytes::copy_from_slice(unsafe { self.as_bytes(what)? });
        codec::from_bytes(&bytes)
            .map_err(|e| FfiError::invalid(format!("{what} is not valid msgpack: {e}")))
    }
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

impl srpc_call {
    /// Build the core request this call describes.
    ///
    /// # Safety
    /// Every pointer field is NULL with length 0 or valid for its length.
    pub unsafe fn to_request(&self) -> Result<Request, FfiError> {
        // SAFETY (all blocks below): forwarded precondition on the fields.
        let name = || unsafe { self.name.as_str("name") }.map(str::to_owned);
        let path = || unsafe { self.path.as_str("path") }.map(str::to_owned);
        let kind = srpc_call_kind::from_u32(self.kind).ok_or_else(|| {
            FfiError::invalid(format!("call kind {} is not an srpc_call_kind", self.kind))
        })?;
        Ok(match kind {
            srpc_call_kind::SrpcCallKindImportModule => Request::ImportModule { module: name()? },
            srpc_call_kind::SrpcCallKindGetBuiltin => Request::GetBuiltin { name: name()? },
            srpc_call_kind::SrpcCallKindGetAttr => Request::GetAttr {
                path: path()?,
                obj_id: obj(self.obj),
                attr: name()?,
            },
            srpc_call_kind::SrpcCallKindCall => {
                let args = match unsafe { self.args.decode("args")? } {
                    Value::List(items) => items,
                    Value::Nil => Vec::new(),
                    other => {
                        return Err(FfiError::invalid(format!(
                            "args must be a msgpack array, got {}",
                            other.type_name()
                        )))
                    }
                };
                let kwargs = if self.kwargs.len == 0 {
                    Vec::new()
                } else {
                    match unsafe { self.kwargs.decode("kwargs")? } {
                        Value::Map(pairs) => pairs
                            .into_iter()
                            .map(|(k, v)| match k {
                                Value::Str(k) => Ok((k, v)),
                                other => Err(FfiError::invalid(format!(
                                    "kwargs keys must be str, got {}",
                                    other.type_name()
                                ))),
                            })
                            .collect::<Result<_, _>>()?,
                        Value::Nil => Vec::new(),
                        other => {
                            return Err(FfiError::invalid(format!(
                                "kwargs must be a msgpack map, got {}",
                                other.type_name()
                            )))
                        }
                    }
                };
                Request::Call {
                    path: path()?,
                    obj_id: obj(self.obj),
                    args,
                    kwargs,
                }
            }
            srpc_call_kind::SrpcCallKindGetItem => Request::GetItem {
                obj_id: need_obj(self.obj, "getitem")?,
                key: unsafe { self.key.decode("key")? },
            },
            srpc_call_kind::SrpcCallKindMaterialize => Request::Materialize {
                obj_id: need_obj(self.obj, "materialize")?,
            },
            srpc_call_kind::SrpcCallKindEval => Request::Eval { expr: name()? },
            srpc_call_kind::SrpcCallKindExecute => Request::Execute { code: name()? },
            srpc_call_kind::SrpcCallKindTeleport => Request::Teleport {
                func_bytes: Bytes::copy_from_slice(unsafe { self.payload.as_bytes("payload")? }),
                name: name()?,
            },
            srpc_call_kind::SrpcCallKindGetNamespace => Request::GetNamespace,
        })
    }
}

/// Fill `out` from a core response; an error response becomes `Err(Remote)`.
pub fn fill_response(
    request_id: u64,
    r: Response,
    out: &mut srpc_response,
) -> Result<(), FfiError> {
    let (kind, obj, value) = match r {
        Response::Object(id) => (
            srpc_response_kind::SrpcResponseKindObject,
            id.0,
            srpc_buf::empty(),
        ),
        Response::Value(v) => (
            srpc_response_kind::SrpcResponseKindValue,
            SRPC_NO_OBJECT,
            srpc_buf::from_vec(codec::to_vec(&v).map_err(|e| FfiError::invalid(e.to_string()))?),
        ),
        Response::Done => (
            srpc_response_kind::SrpcResponseKindDone,
            SRPC_NO_OBJECT,
            srpc_buf::empty(),
        ),
        Response::Namespace(names) => (
            srpc_response_kind::SrpcResponseKindNamespace,
            SRPC_NO_OBJECT,
            srpc_buf::from_vec(
                codec::to_vec(&Value::map(names)).map_err(|e| FfiError::invalid(e.to_string()))?,
            ),
        ),
        Response::Error(e) => return Err(FfiError::remote(e)),
    };
    *out = srpc_response {
        kind,
        obj,
        request_id,
        value,
    };
    Ok(())
}
