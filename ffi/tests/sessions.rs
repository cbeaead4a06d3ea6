//! The sans-IO sessions through the C ABI, frames carried by hand: values and
//! arguments cross both sessions byte for byte.

mod common;

use common::{buf_bytes, last_message, marker, promise_marker, s, sl, ODD_BYTES};
use simplerpc::client::SRPC_PROMISE_BIT;
use simplerpc::error::{srpc_last_error_type, srpc_status};
use simplerpc::session::{
    srpc_client_session, srpc_client_session_free, srpc_client_session_is_answered,
    srpc_client_session_new, srpc_client_session_promises, srpc_client_session_receive,
    srpc_client_session_release, srpc_client_session_send, srpc_client_session_send_pipelined,
    srpc_client_session_store, srpc_client_session_take, srpc_client_session_take_failure,
    srpc_server_session, srpc_server_session_free, srpc_server_session_handle,
    srpc_server_session_live_objects, srpc_server_session_new, srpc_server_session_set_max_objects,
    SRPC_EXT_ALL, SRPC_EXT_PROMISE, SRPC_EXT_RELEASE, SRPC_EXT_REQUEST_IDS,
};
use simplerpc::types::{
    srpc_buf, srpc_buf_free, srpc_call, srpc_call_kind, srpc_response, srpc_response_kind,
    SRPC_NO_OBJECT,
};

struct Pair {
    client: *mut srpc_client_session,
    server: *mut srpc_server_session,
}

impl Pair {
    fn new(ext: u32) -> Pair {
        let (ex, _state) = common::executor();
        let (mut client, mut server) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: valid executor and out-pointers.
        unsafe {
            assert_eq!(
                srpc_client_session_new(ext, &mut client),
                srpc_status::SrpcStatusOk
            );
            assert_eq!(
                srpc_server_session_new(&ex, ext, &mut server),
                srpc_status::SrpcStatusOk
            );
        }
        Pair { client, server }
    }

    /// Send `call` through both sessions; the response and the receive status.
    fn roundtrip(&self, call: &srpc_call) -> (srpc_status, srpc_response) {
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
            let st = srpc_client_session_send(self.client, call, &mut req, &mut id);
            assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
            let st = srpc_server_session_handle(self.server, req.data, req.len, &mut resp);
            assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
            let st = srpc_client_session_receive(self.client, resp.data, resp.len, &mut r);
            srpc_buf_free(&mut req);
            srpc_buf_free(&mut resp);
            assert_eq!(r.request_id, id);
            (st, r)
        }
    }

    fn object(&self, call: &srpc_call) -> u64 {
        let (st, r) = self.roundtrip(call);
        assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
        assert_eq!(r.kind, srpc_response_kind::SrpcResponseKindObject);
        r.obj
    }

    fn value(&self, obj: u64) -> Vec<u8> {
        let (st, mut r) =
            self.roundtrip(&call_of(srpc_call_kind::SrpcCallKindMaterialize, obj, ""));
        assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
        let v = buf_bytes(&r.value);
        // SAFETY: from the library, freed once.
        unsafe { srpc_buf_free(&mut r.value) };
        v
    }
}

/// A client and a server session with the frames between them queued, so
/// that a test sees what one round trip carries.
struct Wire {
    pair: Pair,
    /// Request frames written and not yet carried to the server.
    out: Vec<Vec<u8>>,
}

impl Wire {
    fn new(ext: u32) -> Wire {
        Wire {
            pair: Pair::new(ext),
            out: Vec::new(),
        }
    }

    fn take_frame(frame: &mut srpc_buf) -> Vec<u8> {
        let bytes = buf_bytes(frame);
        // SAFETY: from the library, freed once.
        unsafe { srpc_buf_free(frame) };
        bytes
    }

    /// Write `call` pipelined: its promise.
    fn pipelined(&mut self, call: &srpc_call) -> u64 {
        let (mut frame, mut promise) = (srpc_buf::empty(), 0);
        // SAFETY: a live session, valid call and out-pointers.
        let st = unsafe {
            srpc_client_session_send_pipelined(self.pair.client, call, &mut frame, &mut promise)
        };
        assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
        assert_ne!(promise & SRPC_PROMISE_BIT, 0);
        self.out.push(Self::take_frame(&mut frame));
        promise
    }

    /// Write `call` to be waited for: its request id.
    fn send(&mut self, call: &srpc_call) -> u64 {
        let (mut frame, mut id) = (srpc_buf::empty(), 0);
        // SAFETY: as above.
        let st = unsafe { srpc_client_session_send(self.pair.client, call, &mut frame, &mut id) };
        assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
        self.out.push(Self::take_frame(&mut frame));
        id
    }

    /// Carry every written frame to the server and every answer back into
    /// the client session: the ids the answers were for, in order.
    fn round_trip(&mut self) -> Vec<u64> {
        let mut ids = Vec::new();
        for f in std::mem::take(&mut self.out) {
            let mut resp = srpc_buf::empty();
            let mut id = u64::MAX;
            // SAFETY: live sessions; the frames are valid for their lengths.
            unsafe {
                let st =
                    srpc_server_session_handle(self.pair.server, f.as_ptr(), f.len(), &mut resp);
                assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
                let st = srpc_client_session_store(self.pair.client, resp.data, resp.len, &mut id);
                assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
                srpc_buf_free(&mut resp);
            }
            ids.push(id);
        }
        ids
    }

    fn is_answered(&self, id: u64) -> bool {
        // SAFETY: a live session.
        unsafe { srpc_client_session_is_answered(self.pair.client, id) }
    }

    /// Take the answer of `id`: the status and the response (if written).
    fn take(&self, id: u64) -> (srpc_status, Option<srpc_response>) {
        let mut r = std::mem::MaybeUninit::<srpc_response>::uninit();
        // SAFETY: a live session; `r` is valid for writing.
        let st = unsafe { srpc_client_session_take(self.pair.client, id, r.as_mut_ptr()) };
        let written = matches!(
            st,
            srpc_status::SrpcStatusOk | srpc_status::SrpcStatusErrRemote
        );
        // SAFETY: written whole on these two statuses.
        (st, written.then(|| unsafe { r.assume_init() }))
    }

    /// The next failure nobody reported: its status and the id written.
    fn take_failure(&self) -> (srpc_status, u64) {
        let mut id = u64::MAX;
        // SAFETY: a live session, a valid out-pointer.
        let st = unsafe { srpc_client_session_take_failure(self.pair.client, &mut id) };
        (st, id)
    }
}

fn error_type() -> String {
    let p = srpc_last_error_type();
    if p.is_null() {
        return String::new();
    }
    // SAFETY: NUL-terminated, valid until the next call on this thread.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

impl Drop for Pair {
    fn drop(&mut self) {
        // SAFETY: from the _new functions, freed once.
        unsafe {
            srpc_client_session_free(self.client);
            srpc_server_session_free(self.server);
        }
    }
}

fn call_of(kind: srpc_call_kind, obj: u64, name: &'static str) -> srpc_call {
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
fn values_and_arguments_cross_both_sessions_untouched() {
    for ext in [0, SRPC_EXT_ALL] {
        let p = Pair::new(ext);
        let m = p.object(&call_of(
            srpc_call_kind::SrpcCallKindImportModule,
            SRPC_NO_OBJECT,
            "t",
        ));
        let value = p.object(&call_of(srpc_call_kind::SrpcCallKindGetAttr, m, "value"));
        let echo = p.object(&call_of(srpc_call_kind::SrpcCallKindGetAttr, m, "echo"));
        assert_eq!(p.value(value), ODD_BYTES);

        let mut args = vec![0x92, 0xcc, 0x05];
        args.extend(marker(value));
        let mut call = call_of(srpc_call_kind::SrpcCallKindCall, echo, "");
        call.args = sl(&args);
        let result = p.object(&call);
        let mut expected = vec![0x93];
        expected.extend(&args);
        expected.extend([0x80, 0x91, 0xcf]);
        expected.extend(common::VALUE.to_be_bytes());
        assert_eq!(p.value(result), expected);

        // A remote error is written as an error response with its id.
        let fail = p.object(&call_of(srpc_call_kind::SrpcCallKindGetAttr, m, "fail"));
        let (st, r) = p.roundtrip(&call_of(srpc_call_kind::SrpcCallKindCall, fail, ""));
        assert_eq!(st, srpc_status::SrpcStatusErrRemote);
        assert_eq!(r.kind, srpc_response_kind::SrpcResponseKindError);
    }
}

#[test]
fn a_session_copies_kwargs_and_key_parts_into_its_frame() {
    let p = Pair::new(SRPC_EXT_ALL);
    let m = p.object(&call_of(
        srpc_call_kind::SrpcCallKindImportModule,
        SRPC_NO_OBJECT,
        "t",
    ));
    let echo = p.object(&call_of(srpc_call_kind::SrpcCallKindGetAttr, m, "echo"));
    // {"x": bin of 70,000 bytes}, the payload a part of its own.
    let payload: Vec<u8> = (0..70_000u32).map(|i| (i * 13 + 1) as u8).collect();
    let mut head = vec![0x81, 0xa1, b'x', 0xc6];
    head.extend((payload.len() as u32).to_be_bytes());
    let kw_parts = [sl(&head), sl(&payload)];
    let mut call = call_of(srpc_call_kind::SrpcCallKindCall, echo, "");
    call.kwargs_parts = kw_parts.as_ptr();
    call.kwargs_parts_len = kw_parts.len();
    let result = p.object(&call);
    let mut expected = vec![0x93, 0x90];
    expected.extend(&head);
    expected.extend(&payload);
    expected.push(0x90);
    assert_eq!(p.value(result), expected);
    // The key [1, bin] in parts reaches the executor joined: `t[key]`
    // answers an object whose value is what the executor recorded.
    let mut key_head = vec![0x92, 0x01, 0xc6];
    key_head.extend((payload.len() as u32).to_be_bytes());
    let key_parts = [sl(&key_head[..1]), sl(&key_head[1..]), sl(&payload)];
    let mut get = call_of(srpc_call_kind::SrpcCallKindGetItem, m, "");
    get.key_parts = key_parts.as_ptr();
    get.key_parts_len = key_parts.len();
    let item = p.object(&get);
    let mut key_expected = vec![0x93];
    key_expected.extend(&key_head);
    key_expected.extend(&payload);
    key_expected.extend([0x80, 0x90]);
    assert_eq!(p.value(item), key_expected);
}

#[test]
fn a_pipelined_chain_over_the_sessions_is_one_round_trip() {
    let mut w = Wire::new(SRPC_EXT_ALL);
    // SAFETY: a live session.
    assert!(unsafe { srpc_client_session_promises(w.pair.client) });
    let m = w.pair.object(&call_of(
        srpc_call_kind::SrpcCallKindImportModule,
        SRPC_NO_OBJECT,
        "t",
    ));
    let value = w
        .pair
        .object(&call_of(srpc_call_kind::SrpcCallKindGetAttr, m, "value"));
    // echo = t.echo; r = echo(promise(echo), ref(value)); materialize(r)
    let echo = w.pipelined(&call_of(srpc_call_kind::SrpcCallKindGetAttr, m, "echo"));
    let mut args = vec![0x92];
    args.extend(promise_marker(echo & !SRPC_PROMISE_BIT));
    args.extend(marker(value));
    let mut call = call_of(srpc_call_kind::SrpcCallKindCall, echo, "");
    call.args = sl(&args);
    let r = w.pipelined(&call);
    let mat = w.send(&call_of(srpc_call_kind::SrpcCallKindMaterialize, r, ""));
    assert!(!w.is_answered(mat), "nothing read yet");
    assert_eq!(
        w.take(mat).0,
        srpc_status::SrpcStatusErrState,
        "not answered yet"
    );
    assert!(last_message().contains("srpc_client_session_store"));
    let ids = w.round_trip();
    assert_eq!(
        ids,
        vec![echo & !SRPC_PROMISE_BIT, r & !SRPC_PROMISE_BIT, mat],
        "one round trip carried the whole chain, answered in order"
    );
    assert!(w.is_answered(mat));
    let (st, resp) = w.take(mat);
    assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
    let mut resp = resp.unwrap();
    assert_eq!(resp.kind, srpc_response_kind::SrpcResponseKindValue);
    assert_eq!(resp.request_id, mat);
    let mut expected = vec![0x93];
    expected.extend(&args);
    expected.extend([0x80, 0x92, 0xcf]);
    expected.extend(common::ECHO.to_be_bytes());
    expected.push(0xcf);
    expected.extend(common::VALUE.to_be_bytes());
    assert_eq!(buf_bytes(&resp.value), expected);
    // SAFETY: from the library, freed once.
    unsafe { srpc_buf_free(&mut resp.value) };
    // Each answer is taken once; a pipelined one is never taken.
    assert_eq!(w.take(mat).0, srpc_status::SrpcStatusErrState);
    assert_eq!(
        w.take(r & !SRPC_PROMISE_BIT).0,
        srpc_status::SrpcStatusErrState
    );
    assert_eq!(w.take_failure(), (srpc_status::SrpcStatusOk, u64::MAX));

    // Released promises free their objects on the server with the next request.
    // SAFETY: a live server session.
    let live = || unsafe { srpc_server_session_live_objects(w.pair.server) };
    let before = live();
    for p in [echo, r] {
        // SAFETY: a live session.
        let st = unsafe { srpc_client_session_release(w.pair.client, p) };
        assert_eq!(st, srpc_status::SrpcStatusOk);
    }
    let _ = w.pair.value(value);
    assert_eq!(live(), before - 2);
}

#[test]
fn a_chain_on_a_failed_request_fails_with_its_error_once() {
    let mut w = Wire::new(SRPC_EXT_ALL);
    let m = w.pair.object(&call_of(
        srpc_call_kind::SrpcCallKindImportModule,
        SRPC_NO_OBJECT,
        "t",
    ));
    let nope = w.pipelined(&call_of(srpc_call_kind::SrpcCallKindGetAttr, m, "nope"));
    let r = w.pipelined(&call_of(srpc_call_kind::SrpcCallKindCall, nope, ""));
    let mat = w.send(&call_of(srpc_call_kind::SrpcCallKindMaterialize, r, ""));
    w.round_trip();
    let (st, resp) = w.take(mat);
    assert_eq!(st, srpc_status::SrpcStatusErrRemote);
    assert_eq!(
        error_type(),
        "builtins.AttributeError",
        "the failed request's own type"
    );
    let resp = resp.unwrap();
    assert_eq!(resp.kind, srpc_response_kind::SrpcResponseKindError);
    assert_eq!(resp.request_id, mat);
    assert_eq!(
        w.take_failure(),
        (srpc_status::SrpcStatusOk, u64::MAX),
        "reported by the materialize: nothing left, nothing written"
    );
}

#[test]
fn an_error_nobody_waits_for_is_taken_after_a_later_wait() {
    let mut w = Wire::new(SRPC_EXT_ALL);
    let m = w.pair.object(&call_of(
        srpc_call_kind::SrpcCallKindImportModule,
        SRPC_NO_OBJECT,
        "t",
    ));
    let value = w
        .pair
        .object(&call_of(srpc_call_kind::SrpcCallKindGetAttr, m, "value"));
    let lost = w.pipelined(&call_of(srpc_call_kind::SrpcCallKindGetAttr, m, "missing"));
    let mat = w.send(&call_of(srpc_call_kind::SrpcCallKindMaterialize, value, ""));
    w.round_trip();
    let (st, resp) = w.take(mat);
    assert_eq!(st, srpc_status::SrpcStatusOk, "an unrelated wait succeeds");
    let mut resp = resp.unwrap();
    assert_eq!(buf_bytes(&resp.value), ODD_BYTES);
    // SAFETY: from the library, freed once.
    unsafe { srpc_buf_free(&mut resp.value) };
    assert_eq!(
        w.take_failure(),
        (srpc_status::SrpcStatusErrRemote, lost & !SRPC_PROMISE_BIT)
    );
    assert_eq!(error_type(), "builtins.AttributeError");
    assert_eq!(w.take_failure(), (srpc_status::SrpcStatusOk, u64::MAX));
}

#[test]
fn receive_hands_out_a_pipelined_error_once() {
    let mut w = Wire::new(SRPC_EXT_ALL);
    let m = w.pair.object(&call_of(
        srpc_call_kind::SrpcCallKindImportModule,
        SRPC_NO_OBJECT,
        "t",
    ));
    let lost = w.pipelined(&call_of(srpc_call_kind::SrpcCallKindGetAttr, m, "missing"));
    let f = w.out.pop().unwrap();
    let mut resp = srpc_buf::empty();
    let mut r = std::mem::MaybeUninit::<srpc_response>::uninit();
    // SAFETY: live sessions, valid frames and out-pointers.
    let st = unsafe {
        srpc_server_session_handle(w.pair.server, f.as_ptr(), f.len(), &mut resp);
        let st = srpc_client_session_receive(w.pair.client, resp.data, resp.len, r.as_mut_ptr());
        srpc_buf_free(&mut resp);
        st
    };
    assert_eq!(st, srpc_status::SrpcStatusErrRemote);
    // SAFETY: written on SRPC_STATUS_ERR_REMOTE.
    assert_eq!(
        unsafe { r.assume_init() }.request_id,
        lost & !SRPC_PROMISE_BIT
    );
    assert_eq!(
        w.take_failure(),
        (srpc_status::SrpcStatusOk, u64::MAX),
        "handed out by receive: not kept to report again"
    );
}

#[test]
fn without_the_promise_extension_nothing_is_pipelined() {
    for ext in [0, SRPC_EXT_RELEASE | SRPC_EXT_REQUEST_IDS, SRPC_EXT_PROMISE] {
        let p = Pair::new(ext);
        // SAFETY: a live session.
        assert!(!unsafe { srpc_client_session_promises(p.client) });
        let call = call_of(srpc_call_kind::SrpcCallKindEval, SRPC_NO_OBJECT, "1");
        let mut frame = srpc_buf::empty();
        let mut promise = 7;
        // SAFETY: a live session, valid call and out-pointers.
        let st = unsafe {
            srpc_client_session_send_pipelined(p.client, &call, &mut frame, &mut promise)
        };
        assert_eq!(st, srpc_status::SrpcStatusErrProtocol);
        assert!(frame.data.is_null() && promise == 7, "nothing written");
    }
    // SAFETY: NULL is reported, not dereferenced.
    unsafe {
        assert!(!srpc_client_session_promises(std::ptr::null()));
        assert!(!srpc_client_session_is_answered(std::ptr::null(), 0));
        let p = Pair::new(SRPC_EXT_ALL);
        let call = call_of(srpc_call_kind::SrpcCallKindEval, SRPC_NO_OBJECT, "1");
        let mut promise = 0;
        assert_eq!(
            srpc_client_session_send_pipelined(p.client, &call, std::ptr::null_mut(), &mut promise),
            srpc_status::SrpcStatusErrNullArgument
        );
        assert_eq!(
            srpc_client_session_take(p.client, 0, std::ptr::null_mut()),
            srpc_status::SrpcStatusErrNullArgument
        );
        assert_eq!(
            srpc_client_session_take_failure(p.client, std::ptr::null_mut()),
            srpc_status::SrpcStatusErrNullArgument
        );
        let mut id = 0;
        assert_eq!(
            srpc_client_session_store(p.client, [0x80].as_ptr(), 1, &mut id),
            srpc_status::SrpcStatusErrProtocol,
            "a frame that answers no request"
        );
    }
}

#[test]
fn a_bare_server_session_takes_an_object_limit() {
    let p = Pair::new(SRPC_EXT_ALL);
    // SAFETY: a live session.
    unsafe {
        assert_eq!(
            srpc_server_session_set_max_objects(p.server, 0),
            srpc_status::SrpcStatusErrInvalidArgument
        );
        assert_eq!(
            srpc_server_session_set_max_objects(p.server, 1),
            srpc_status::SrpcStatusOk
        );
    }
    let import = call_of(
        srpc_call_kind::SrpcCallKindImportModule,
        SRPC_NO_OBJECT,
        "t",
    );
    p.object(&import);
    let (st, r) = p.roundtrip(&import);
    assert_eq!(st, srpc_status::SrpcStatusErrRemote);
    assert_eq!(r.kind, srpc_response_kind::SrpcResponseKindError);
    assert_eq!(error_type(), "simplerpc.ObjectLimitError");
    // SAFETY: a live session.
    assert_eq!(unsafe { srpc_server_session_live_objects(p.server) }, 1);
}
