//! The sans-IO sessions through the ABI, for hosts that carry frames over a
//! transport of their own (a pipe, shared memory, their own sockets).
//!
//! A client session answers in one of two ways. srpc_client_session_receive()
//! hands out each response frame's answer at once, in request order. A host
//! that pipelines on promises (srpc_client_session_send_pipelined()) reads
//! frames with srpc_client_session_store() instead, which keeps the answers
//! it waits for until srpc_client_session_take() and notes the rest (a
//! promise's object, or its error for srpc_client_session_take_failure()),
//! as core's ClientSession::receive/take do.

use simplerpc_core::{
    Bytes, ClientError, ClientSession, Extensions, ObjId, RequestId, ServerSession,
};

use crate::error::{guard, srpc_status, FfiError, SrpcStatusErrProtocol, SrpcStatusErrState};
use crate::executor::{srpc_executor, CExecutor, Callbacks};
use crate::types::{
    fill_response, raw_slice, refused, srpc_buf, srpc_call, srpc_response, Outgoing,
};

/// Extension bit: batched object release (`release`).
pub const SRPC_EXT_RELEASE: u32 = 1;
/// Extension bit: request ids (`request-id`).
pub const SRPC_EXT_REQUEST_IDS: u32 = 2;
/// Extension bit: promise pipelining (`promise`; only together with
/// SRPC_EXT_REQUEST_IDS, since a promise names a request by its id). See
/// srpc_client_session_send_pipelined() and srpc_client_send_pipelined().
pub const SRPC_EXT_PROMISE: u32 = 4;
/// Extension bit: tuples stay tuples (`tuple`). A tuple travels, at any
/// depth of a value (call arguments, keys, map keys, materialized values),
/// as the marker map `{"__tuple__": [items...]}`: exactly one entry, the
/// str key `"__tuple__"` and an array of the items. A host that reads or
/// writes msgpack itself must then make such maps tuples, and may write
/// tuples so; without the bit a tuple is a plain array and a `__tuple__`
/// map is just a map. See srpc_client_extensions() and
/// srpc_reply_extensions() for what a connection negotiated.
pub const SRPC_EXT_TUPLE: u32 = 8;
/// Extension bit: the `stats` request (`stats`), answered by the server
/// session itself with the connection's counters; see
/// srpc_client_live_objects(). Never sent to a peer that did not accept it.
pub const SRPC_EXT_STATS: u32 = 16;
/// Every extension this library speaks. Use it when both ends are simplerpc
/// (and the hosts handle the tuple marker, see SRPC_EXT_TUPLE); use 0 to
/// speak the reference protocol exactly.
pub const SRPC_EXT_ALL: u32 = 31;
/// The extensions srpc_client_connect() offers and a server started by
/// srpc_server_start() accepts by default: all but SRPC_EXT_TUPLE, which a
/// host asks for (srpc_client_connect_ext(), srpc_server_config.extensions)
/// when its msgpack handles the tuple marker.
pub const SRPC_EXT_DEFAULT: u32 = SRPC_EXT_ALL & !SRPC_EXT_TUPLE;

pub(crate) fn extensions(bits: u32) -> Extensions {
    Extensions::from_bits(bits)
}

/// A client session without a transport: builds request frames and takes
/// response frames. Use from one thread at a time.
#[allow(non_camel_case_types)]
pub struct srpc_client_session(ClientSession);

/// A server session without a transport: takes request frames, returns
/// response frames, calling the executor in between. Use from one thread at a time.
#[allow(non_camel_case_types)]
pub struct srpc_server_session(ServerSession<CExecutor>);

fn out<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, FfiError> {
    // SAFETY: NULL is checked; otherwise the caller passes a valid out-pointer.
    unsafe { p.as_mut() }.ok_or_else(|| FfiError::null(what))
}

/// Create a client session speaking the extension bits `extensions`
/// (SRPC_EXT_*; both ends must agree). Free with srpc_client_session_free().
///
/// # Safety
/// `session_out` is a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_session_new(
    extensions_bits: u32,
    session_out: *mut *mut srpc_client_session,
) -> srpc_status {
    guard(|| {
        let o = out(session_out, "session_out")?;
        *o = Box::into_raw(Box::new(srpc_client_session(ClientSession::new(
            extensions(extensions_bits),
        ))));
        Ok(())
    })
}

/// Free a client session. NULL does nothing.
///
/// # Safety
/// `session` is NULL or from srpc_client_session_new() and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_session_free(session: *mut srpc_client_session) {
    if !session.is_null() {
        // SAFETY: from Box::into_raw in srpc_client_session_new, freed once.
        let _ = std::panic::catch_unwind(|| drop(unsafe { Box::from_raw(session) }));
    }
}

/// Build the frame for `call`. Writes the frame (free with srpc_buf_free())
/// and the request's id. `args`, `kwargs` and `key` go into the frame as they
/// are (checked once, copied once, never re-encoded): the frame is one
/// buffer the host owns, so `args_parts`, `kwargs_parts` and `key_parts`
/// are copied in too (a connection, srpc_client_request(), writes large
/// array payloads from where they lie instead). Requests may be
/// pipelined: send several, then feed their responses in order to
/// srpc_client_session_receive() (or srpc_client_session_store(), then take
/// this request's answer with srpc_client_session_take()).
///
/// # Safety
/// `session` is a live client session; `call` a valid srpc_call; the out-pointers valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_session_send(
    session: *mut srpc_client_session,
    call: *const srpc_call,
    frame_out: *mut srpc_buf,
    request_id_out: *mut u64,
) -> srpc_status {
    guard(|| {
        let s = out(session, "session")?;
        // SAFETY: NULL checked; the caller passes a valid srpc_call.
        let call = unsafe { call.as_ref() }.ok_or_else(|| FfiError::null("call"))?;
        let (fo, io) = (
            out(frame_out, "frame_out")?,
            out(request_id_out, "request_id_out")?,
        );
        // SAFETY: the srpc_call's fields are valid per the caller's contract.
        let (id, frame) = match unsafe { call.to_outgoing()? } {
            Outgoing::Request(r) => s.0.send(&r).map_err(|e| FfiError::invalid(e.to_string()))?,
            Outgoing::Raw(f) => s.0.send_raw(&f.request()).map_err(refused)?,
        };
        *fo = srpc_buf::from_vec(frame);
        *io = id.0;
        Ok(())
    })
}

/// Queue object `obj` for release; it rides on the next request frame
/// (with SRPC_EXT_RELEASE; otherwise nothing happens). `obj` may be a
/// promise (srpc_client_session_send_pipelined()): the object its request
/// returned is released, with the next request if its answer has been read,
/// else with the first request after the answer is read.
///
/// A success leaves this thread's last error as it was (see srpc_client_release()).
///
/// # Safety
/// `session` is a live client session.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_session_release(
    session: *mut srpc_client_session,
    obj: u64,
) -> srpc_status {
    crate::error::guard_keep(|| {
        out(session, "session")?.0.release(ObjId(obj));
        Ok(())
    })
}

/// Take one response frame (in request order). On success writes `*response`
/// (free its `value` with srpc_buf_free()): a value is handed on as the frame
/// holds it, byte for byte, in the library's one copy of `frame` (it is not
/// decoded and encoded again). A remote exception returns
/// SRPC_STATUS_ERR_REMOTE with the details in srpc_last_error_type() and
/// friends, and writes `*response` too, with kind SRPC_RESPONSE_KIND_ERROR
/// and the `request_id` that failed.
///
/// Every answer is handed out here, a request's sent with
/// srpc_client_session_send_pipelined() too (its object is also noted for its
/// promise; release the promise, not that object). So an error handed out
/// here is reported: it is not kept for srpc_client_session_take_failure().
/// Hosts that pipeline usually read frames with srpc_client_session_store()
/// instead, and take only the answers they wait for.
///
/// # Safety
/// `session` is a live client session; `frame` points to `len` bytes;
/// `response` is valid for writing an srpc_response.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_session_receive(
    session: *mut srpc_client_session,
    frame: *const u8,
    len: usize,
    response: *mut srpc_response,
) -> srpc_status {
    guard(|| {
        let s = out(session, "session")?;
        if response.is_null() {
            return Err(FfiError::null("response"));
        }
        // SAFETY: forwarded precondition. The one copy: the frame outlives this call.
        let bytes = Bytes::copy_from_slice(unsafe { raw_slice(frame, len, "frame")? });
        // SAFETY: non-NULL and valid for writing (the caller's contract).
        unsafe { receive(s, bytes, response) }
    })
}

/// Take one response frame the library owns: the value handed out in
/// `*response` is a part of `frame`.
///
/// # Safety
/// `response` is valid for writing an srpc_response.
unsafe fn receive(
    s: &mut srpc_client_session,
    frame: Bytes,
    response: *mut srpc_response,
) -> Result<(), FfiError> {
    let (id, resp, raw) =
        s.0.handle_frame_raw(frame)
            .map_err(|e| FfiError::new(SrpcStatusErrProtocol, e.to_string()))?;
    // SAFETY: forwarded precondition.
    unsafe { fill_response(id.0, resp, raw, response) }
}

/// Whether the session pipelines on promises: it was made with both
/// SRPC_EXT_PROMISE and SRPC_EXT_REQUEST_IDS (SRPC_EXT_ALL has both). The
/// server session at the other end must speak them too. NULL gives false.
///
/// # Safety
/// `session` is NULL or a live client session.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_session_promises(session: *const srpc_client_session) -> bool {
    // SAFETY: NULL checked; otherwise a live client session (the caller's contract).
    unsafe { session.as_ref() }.is_some_and(|s| s.0.promises())
}

/// Build the frame for `call` to be sent without waiting for its answer, and
/// write the frame (free with srpc_buf_free()) and the *promise* of the
/// object the call will return. A promise is the request's id with
/// SRPC_PROMISE_BIT set: use it as `obj`, or inside `args`/`kwargs`/`key` as
/// `{"__rpc_promise__": n}` with `n = promise & ~SRPC_PROMISE_BIT`, in later
/// calls of this session, before its answer has come; release it with
/// srpc_client_session_release() like any object id (the object is freed on
/// the server once its answer has come). So a chain such as getattr, call,
/// materialize is one round trip: write every frame, then read the answers.
///
/// Read the answers with srpc_client_session_store(): a pipelined request's
/// answer is not taken, only noted (its object, for the promise; or its
/// error). If the call fails, the calls built on it are not run and fail
/// with its error (its own exception type): the answer you wait for reports
/// it, and an error no waited-for answer reports is kept for
/// srpc_client_session_take_failure(). For getattr, call, getitem and eval
/// (kinds that return an object). Needs srpc_client_session_promises()
/// (else SRPC_STATUS_ERR_PROTOCOL, and nothing is built). `args`, `kwargs`
/// and `key` are checked and copied as by srpc_client_session_send().
///
/// # Safety
/// `session` is a live client session; `call` a valid srpc_call; the
/// out-pointers valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_session_send_pipelined(
    session: *mut srpc_client_session,
    call: *const srpc_call,
    frame_out: *mut srpc_buf,
    promise_out: *mut u64,
) -> srpc_status {
    guard(|| {
        let s = out(session, "session")?;
        // SAFETY: NULL checked; the caller passes a valid srpc_call.
        let call = unsafe { call.as_ref() }.ok_or_else(|| FfiError::null("call"))?;
        let (fo, po) = (
            out(frame_out, "frame_out")?,
            out(promise_out, "promise_out")?,
        );
        // SAFETY: the srpc_call's fields are valid per the caller's contract.
        let (_, promise, frame) = match unsafe { call.to_outgoing()? } {
            Outgoing::Request(r) => s.0.send_pipelined(&r).map_err(client_error)?,
            Outgoing::Raw(f) => s.0.send_raw_pipelined(&f.request()).map_err(|e| match e {
                ClientError::Frame(e) => refused(e),
                other => client_error(other),
            })?,
        };
        *fo = srpc_buf::from_vec(frame);
        *po = promise.0;
        Ok(())
    })
}

/// A client session error as a status: a request the session cannot send
/// (no promises) or a frame it cannot take is the protocol's.
fn client_error(e: ClientError) -> FfiError {
    match e {
        ClientError::Frame(simplerpc_core::message::FrameError::Encode(m)) => FfiError::invalid(m),
        other => FfiError::new(SrpcStatusErrProtocol, other.to_string()),
    }
}

/// Read one response frame (in request order) into the session, and write
/// the id of the request it answers to `*request_id_out`. The answer of a
/// request sent with srpc_client_session_send() is kept until
/// srpc_client_session_take(); a pipelined request's answer is noted instead
/// (its object for its promise, or its error for
/// srpc_client_session_take_failure()). A frame that cannot be read still
/// answers its request (the server answers each request once), so later
/// frames stay paired: taking that answer reports what was wrong. Fails
/// (SRPC_STATUS_ERR_PROTOCOL, nothing read) only for a frame that answers
/// no request in flight. The library keeps one copy of `frame`; the
/// caller's buffer is not needed after the call.
///
/// # Safety
/// `session` is a live client session; `frame` points to `len` bytes;
/// `request_id_out` is valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_session_store(
    session: *mut srpc_client_session,
    frame: *const u8,
    len: usize,
    request_id_out: *mut u64,
) -> srpc_status {
    guard(|| {
        let s = out(session, "session")?;
        let o = out(request_id_out, "request_id_out")?;
        // SAFETY: forwarded precondition. The one copy: the frame outlives this call.
        let bytes = Bytes::copy_from_slice(unsafe { raw_slice(frame, len, "frame")? });
        *o = s.0.receive(bytes).map_err(client_error)?.0;
        Ok(())
    })
}

/// Whether request `request_id` needs no more frames: its answer has been
/// read by srpc_client_session_store() and not yet taken, or the request is
/// not in flight at all (answered and taken, a pipelined request already
/// read, or never sent). Read frames until this is true, then call
/// srpc_client_session_take(). NULL gives false.
///
/// # Safety
/// `session` is NULL or a live client session.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_session_is_answered(
    session: *const srpc_client_session,
    request_id: u64,
) -> bool {
    // SAFETY: NULL checked; otherwise a live client session (the caller's contract).
    unsafe { session.as_ref() }.is_some_and(|s| s.0.is_answered(RequestId(request_id)))
}

/// Take the answer of request `request_id` (sent with
/// srpc_client_session_send()) once srpc_client_session_store() has read it,
/// and write it to `*response` as srpc_client_session_receive() does (its
/// `request_id` set; free its `value` with srpc_buf_free()). A remote
/// exception returns SRPC_STATUS_ERR_REMOTE and writes `*response` with kind
/// SRPC_RESPONSE_KIND_ERROR; when the request was built on a pipelined
/// request that failed, that is the failed request's error, with its own
/// exception type, and it is reported now (srpc_client_session_take_failure()
/// will not return it again). A frame that could not be read returns
/// SRPC_STATUS_ERR_PROTOCOL. Each answer is taken once: with no answer to
/// take (not read yet, taken already, pipelined, or never sent) this returns
/// SRPC_STATUS_ERR_STATE and writes nothing.
///
/// # Safety
/// `session` is a live client session; `response` is valid for writing an
/// srpc_response.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_session_take(
    session: *mut srpc_client_session,
    request_id: u64,
    response: *mut srpc_response,
) -> srpc_status {
    guard(|| {
        let s = out(session, "session")?;
        if response.is_null() {
            return Err(FfiError::null("response"));
        }
        let id = RequestId(request_id);
        let Some(answer) = s.0.take(id) else {
            let why = if s.0.is_answered(id) {
                "has no answer to take (taken already, sent pipelined, or never sent)"
            } else {
                "is not answered yet: read more frames with srpc_client_session_store()"
            };
            return Err(FfiError::new(
                SrpcStatusErrState,
                format!("request {request_id} {why}"),
            ));
        };
        let (resp, raw) = answer.map_err(client_error)?;
        // SAFETY: non-NULL and valid for writing (the caller's contract).
        unsafe { fill_response(request_id, resp, raw, response) }
    })
}

/// Take the oldest error of a pipelined request (srpc_client_session_send_pipelined())
/// that no answer has reported yet, so that no error is lost: raise it at
/// your next wait. Returns SRPC_STATUS_OK (writing nothing) when there is
/// none; otherwise returns SRPC_STATUS_ERR_REMOTE with the error in
/// srpc_last_error_type() and friends, and writes the failed request's id
/// to `*request_id_out` (as srpc_client_session_take() writes its response
/// on SRPC_STATUS_ERR_REMOTE). Each error is returned once.
///
/// # Safety
/// `session` is a live client session; `request_id_out` is valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_session_take_failure(
    session: *mut srpc_client_session,
    request_id_out: *mut u64,
) -> srpc_status {
    guard(|| {
        let s = out(session, "session")?;
        let o = out(request_id_out, "request_id_out")?;
        match s.0.take_failure() {
            None => Ok(()),
            Some((id, e)) => {
                *o = id.0;
                Err(FfiError::remote(e))
            }
        }
    })
}

/// Create a server session over `executor` (copied; its `open` runs now)
/// speaking the extension bits `extensions`. Free with srpc_server_session_free(),
/// which releases every handle, closes the session and frees the userdata.
/// A failure (the `open` callback's, a NULL `session_out`) frees the
/// userdata before it returns, unless `executor` or `executor->call` is
/// NULL: the host must not free it then.
///
/// # Safety
/// `executor` points to a valid srpc_executor; `session_out` is valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_server_session_new(
    executor: *const srpc_executor,
    extensions_bits: u32,
    session_out: *mut *mut srpc_server_session,
) -> srpc_status {
    guard(|| {
        // SAFETY: NULL checked; otherwise a valid srpc_executor.
        let e = unsafe { executor.as_ref() }.ok_or_else(|| FfiError::null("executor"))?;
        // Owned from here: every failure below frees the userdata.
        let callbacks = Callbacks::new(e)?;
        let o = out(session_out, "session_out")?;
        let ex = callbacks.open(extensions(extensions_bits).bits())?;
        *o = Box::into_raw(Box::new(srpc_server_session(ServerSession::new(
            ex,
            extensions(extensions_bits),
        ))));
        Ok(())
    })
}

/// Handle one request frame; writes exactly one response frame (free with
/// srpc_buf_free()). A malformed frame gets an error response, not a failure.
///
/// # Safety
/// `session` is live; `frame` points to `len` bytes; `response_out` is valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_server_session_handle(
    session: *mut srpc_server_session,
    frame: *const u8,
    len: usize,
    response_out: *mut srpc_buf,
) -> srpc_status {
    guard(|| {
        let s = out(session, "session")?;
        let o = out(response_out, "response_out")?;
        // SAFETY: forwarded precondition.
        let bytes = Bytes::copy_from_slice(unsafe { raw_slice(frame, len, "frame")? });
        *o = srpc_buf::from_vec(s.0.handle_frame(bytes));
        Ok(())
    })
}

/// Set the most objects the session's client may hold at once (default
/// 1,000,000; 0 is refused with SRPC_STATUS_ERR_INVALID_ARGUMENT). A request
/// that would create one more is answered with an error of type
/// "simplerpc.ObjectLimitError" until the client releases some.
///
/// # Safety
/// `session` is live.
#[no_mangle]
pub unsafe extern "C" fn srpc_server_session_set_max_objects(
    session: *mut srpc_server_session,
    max_objects: u64,
) -> srpc_status {
    guard(|| {
        let s = out(session, "session")?;
        if max_objects == 0 {
            return Err(FfiError::invalid(
                "max_objects is 0: every request making an object would fail",
            ));
        }
        s.0.set_max_objects(usize::try_from(max_objects).unwrap_or(usize::MAX));
        Ok(())
    })
}

/// How many objects the session's client holds.
///
/// # Safety
/// `session` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn srpc_server_session_live_objects(
    session: *const srpc_server_session,
) -> usize {
    // SAFETY: NULL checked; otherwise live.
    unsafe { session.as_ref() }.map_or(0, |s| s.0.live_objects())
}

/// Free a server session: release all its handles and close it. NULL does nothing.
///
/// # Safety
/// `session` is NULL or from srpc_server_session_new() and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn srpc_server_session_free(session: *mut srpc_server_session) {
    if !session.is_null() {
        // SAFETY: from Box::into_raw in srpc_server_session_new, freed once.
        let _ = std::panic::catch_unwind(|| drop(unsafe { Box::from_raw(session) }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{srpc_buf_free, srpc_response_kind};
    use simplerpc_core::message::{encode_response, ResponseFrame};
    use simplerpc_core::{RawValue, Request, Response, Value};

    #[test]
    fn the_extension_bits_are_core_s() {
        assert_eq!(SRPC_EXT_RELEASE, Extensions::RELEASE.bits());
        assert_eq!(SRPC_EXT_REQUEST_IDS, Extensions::REQUEST_IDS.bits());
        assert_eq!(SRPC_EXT_PROMISE, Extensions::PROMISE.bits());
        assert_eq!(SRPC_EXT_TUPLE, Extensions::TUPLE.bits());
        assert_eq!(SRPC_EXT_STATS, Extensions::STATS.bits());
        assert_eq!(SRPC_EXT_ALL, Extensions::ALL.bits());
    }

    /// msgpack no encoder writes so: keys out of order, 5 as a uint8.
    const ODD: &[u8] = &[0x82, 0xa1, b'b', 0xcc, 0x05, 0xa1, b'a', 0x01];

    #[test]
    fn a_received_value_is_a_part_of_the_frame() {
        let mut s = srpc_client_session(ClientSession::new(Extensions::ALL));
        let _ =
            s.0.send(&Request::Materialize { obj_id: ObjId(0) })
                .unwrap();
        let value = Value::Raw(RawValue::new(Bytes::from_static(ODD)).unwrap());
        let frame = Bytes::from(
            encode_response(
                &ResponseFrame {
                    id: Some(0),
                    response: Response::Value(value),
                },
                Extensions::ALL,
            )
            .unwrap(),
        );
        let mut r = std::mem::MaybeUninit::<srpc_response>::uninit();
        // SAFETY: `r` is valid for writing an srpc_response.
        unsafe { receive(&mut s, frame.clone(), r.as_mut_ptr()) }.unwrap();
        // SAFETY: written whole by `receive`.
        let mut r = unsafe { r.assume_init() };
        assert_eq!(r.kind, srpc_response_kind::SrpcResponseKindValue);
        // SAFETY: the library's buffer, not yet freed.
        let got = unsafe { std::slice::from_raw_parts(r.value.data, r.value.len) };
        assert_eq!(got, ODD, "byte for byte, not re-encoded");
        let span = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
        assert!(
            span.contains(&(r.value.data as usize))
                && span.contains(&(r.value.data as usize + r.value.len - 1)),
            "the value points into the frame, not into a copy"
        );
        drop(frame);
        // The buffer keeps the frame alive on its own.
        // SAFETY: as above.
        let again = unsafe { std::slice::from_raw_parts(r.value.data, r.value.len) };
        assert_eq!(again, ODD);
        // SAFETY: from the library, freed once.
        unsafe { srpc_buf_free(&mut r.value) };
        assert!(r.value.data.is_null() && r.value.owner.is_null());
    }
}
