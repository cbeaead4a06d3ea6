//! The release callback of a C executor whose callback answers a handle
//! and then fails: the handle goes back only if no client id names it.

mod common;

use std::ffi::c_void;
use std::sync::Mutex;

use common::{last_message, s, sl};
use simplerpc::error::{srpc_status, srpc_status_in};
use simplerpc::executor::{srpc_executor, srpc_reply, srpc_reply_handle};
use simplerpc::session::{
    srpc_client_session_free, srpc_client_session_new, srpc_client_session_receive,
    srpc_client_session_send, srpc_server_session_free, srpc_server_session_handle,
    srpc_server_session_new, SRPC_EXT_ALL,
};
use simplerpc::types::{
    srpc_buf, srpc_buf_free, srpc_call, srpc_call_kind, srpc_response, srpc_response_kind,
    SRPC_NO_OBJECT,
};

/// The module, a singleton: every import answers it.
const MODULE: u64 = 7;
/// A fresh object `getattr(m, "fresh_then_fail")` answers before failing.
const FRESH: u64 = 9;

/// The handles the release callback got, in order.
static RELEASED: Mutex<Vec<u64>> = Mutex::new(Vec::new());

unsafe extern "C" fn on_call(
    _userdata: *mut c_void,
    _session: *mut c_void,
    call: *const srpc_call,
    reply: *mut srpc_reply,
) -> srpc_status_in {
    // SAFETY: the call is valid for the callback.
    let c = unsafe { &*call };
    // SAFETY: as above.
    let name = unsafe { std::slice::from_raw_parts(c.name.ptr.cast::<u8>(), c.name.len) };
    // SAFETY: the running callback's reply.
    unsafe {
        match srpc_call_kind::from_u32(c.kind) {
            Some(srpc_call_kind::SrpcCallKindImportModule) => {
                srpc_reply_handle(reply, MODULE) as u32
            }
            // Answers the module again (as a host may answer a singleton),
            // then fails: the client's id for the module still names it.
            Some(srpc_call_kind::SrpcCallKindGetAttr) if name == b"module_then_fail" => {
                srpc_reply_handle(reply, MODULE);
                srpc_status::SrpcStatusErrInvalidArgument as u32
            }
            Some(srpc_call_kind::SrpcCallKindGetAttr) if name == b"fresh_then_fail" => {
                srpc_reply_handle(reply, FRESH);
                srpc_status::SrpcStatusErrInvalidArgument as u32
            }
            _ => srpc_status::SrpcStatusErrInvalidArgument as u32,
        }
    }
}

unsafe extern "C" fn on_release(_userdata: *mut c_void, _session: *mut c_void, handle: u64) {
    RELEASED.lock().unwrap().push(handle);
}

fn call(kind: srpc_call_kind, obj: u64, name: &'static str) -> srpc_call {
    srpc_call {
        kind: kind as u32,
        obj,
        name: s(name),
        path: s(""),
        args: sl(&[]),
        kwargs: sl(&[]),
        key: sl(&[]),
        payload: sl(&[]),
        args_parts: std::ptr::null(),
        args_parts_len: 0,
        kwargs_parts: std::ptr::null(),
        kwargs_parts_len: 0,
        key_parts: std::ptr::null(),
        key_parts_len: 0,
        refs: std::ptr::null(),
        refs_len: 0,
    }
}

#[test]
fn a_handle_answered_before_a_failure_is_released_only_when_no_id_names_it() {
    let ex = srpc_executor {
        userdata: std::ptr::null_mut(),
        open: None,
        close: None,
        call: Some(on_call),
        release: Some(on_release),
        free_userdata: None,
    };
    let (mut client, mut server) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: a valid executor and out-pointers.
    unsafe {
        assert_eq!(
            srpc_client_session_new(SRPC_EXT_ALL, &mut client),
            srpc_status::SrpcStatusOk
        );
        assert_eq!(
            srpc_server_session_new(&ex, SRPC_EXT_ALL, &mut server),
            srpc_status::SrpcStatusOk
        );
    }
    let round_trip = |c: &srpc_call| -> (srpc_status, srpc_response) {
        let (mut req, mut resp) = (srpc_buf::empty(), srpc_buf::empty());
        let mut id = 0;
        let mut r = srpc_response {
            kind: srpc_response_kind::SrpcResponseKindDone,
            obj: 0,
            request_id: 0,
            value: srpc_buf::empty(),
        };
        // SAFETY: live sessions, valid call and out-pointers; buffers freed once.
        unsafe {
            let st = srpc_client_session_send(client, c, &mut req, &mut id);
            assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
            let st = srpc_server_session_handle(server, req.data, req.len, &mut resp);
            assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
            let st = srpc_client_session_receive(client, resp.data, resp.len, &mut r);
            srpc_buf_free(&mut req);
            srpc_buf_free(&mut resp);
            (st, r)
        }
    };
    let (st, r) = round_trip(&call(
        srpc_call_kind::SrpcCallKindImportModule,
        SRPC_NO_OBJECT,
        "m",
    ));
    assert_eq!(
        (st, r.kind),
        (
            srpc_status::SrpcStatusOk,
            srpc_response_kind::SrpcResponseKindObject
        )
    );
    let m = r.obj;

    let (st, _) = round_trip(&call(
        srpc_call_kind::SrpcCallKindGetAttr,
        m,
        "module_then_fail",
    ));
    assert_eq!(st, srpc_status::SrpcStatusErrRemote);
    assert_eq!(
        *RELEASED.lock().unwrap(),
        Vec::<u64>::new(),
        "the client's id still names the module"
    );

    let (st, _) = round_trip(&call(
        srpc_call_kind::SrpcCallKindGetAttr,
        m,
        "fresh_then_fail",
    ));
    assert_eq!(st, srpc_status::SrpcStatusErrRemote);
    assert_eq!(
        *RELEASED.lock().unwrap(),
        vec![FRESH],
        "an unnamed handle goes back at once"
    );

    // SAFETY: from the _new functions, freed once.
    unsafe {
        srpc_server_session_free(server);
        srpc_client_session_free(client);
    }
    assert_eq!(
        *RELEASED.lock().unwrap(),
        vec![FRESH, MODULE],
        "the module released once, at the end"
    );
}
