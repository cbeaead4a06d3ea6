//! The sans-IO sessions through the C ABI, frames carried by hand: values and
//! arguments cross both sessions byte for byte.

mod common;

use common::{buf_bytes, last_message, marker, s, sl, ODD_BYTES};
use simplerpc::error::srpc_status;
use simplerpc::session::{
    srpc_client_session, srpc_client_session_free, srpc_client_session_new,
    srpc_client_session_receive, srpc_client_session_send, srpc_server_session,
    srpc_server_session_free, srpc_server_session_handle, srpc_server_session_new, SRPC_EXT_ALL,
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
