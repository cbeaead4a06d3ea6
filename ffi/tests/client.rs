//! The WebSocket client through the C ABI, against a server whose executor is
//! C callbacks: what a C host sees.

mod common;

use common::{buf_bytes, last_message, s, sl, Server};
use simplerpc::client::{
    srpc_client, srpc_client_call, srpc_client_connect, srpc_client_connect_ext,
    srpc_client_connect_timeout, srpc_client_extensions, srpc_client_free, srpc_client_getattr,
    srpc_client_getitem, srpc_client_import, srpc_client_materialize, srpc_client_request,
    srpc_client_round_trips, srpc_client_send_pipelined, SRPC_PROMISE_BIT,
};
use simplerpc::error::{srpc_last_error_message, srpc_last_error_status, srpc_status};
use simplerpc::types::{
    srpc_buf, srpc_buf_free, srpc_call, srpc_call_kind, srpc_response, srpc_response_kind,
    srpc_slice, SRPC_NO_OBJECT,
};

struct Client(*mut srpc_client);

impl Client {
    fn connect(server: &Server) -> Client {
        let mut c = std::ptr::null_mut();
        // SAFETY: borrowed strings, valid out-pointer.
        let st =
            unsafe { srpc_client_connect(s("127.0.0.1"), server.port, s(&server.token), &mut c) };
        assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
        Client(c)
    }

    fn import(&self, name: &str) -> u64 {
        let mut id = 0;
        // SAFETY: a live client, valid out-pointer.
        let st = unsafe { srpc_client_import(self.0, s(name), &mut id) };
        assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
        id
    }

    fn getattr(&self, obj: u64, attr: &str) -> u64 {
        let mut id = 0;
        // SAFETY: as above.
        let st = unsafe { srpc_client_getattr(self.0, obj, s("t"), s(attr), &mut id) };
        assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
        id
    }

    fn call(&self, obj: u64, args: &[u8], kwargs: &[u8]) -> Result<u64, srpc_status> {
        let mut id = 0;
        // SAFETY: as above; the slices are valid for the call.
        let st = unsafe { srpc_client_call(self.0, obj, s("t.f"), sl(args), sl(kwargs), &mut id) };
        if st == srpc_status::SrpcStatusOk {
            Ok(id)
        } else {
            Err(st)
        }
    }

    fn round_trips(&self) -> u64 {
        // SAFETY: a live client.
        unsafe { srpc_client_round_trips(self.0) }
    }

    fn materialize(&self, obj: u64) -> Vec<u8> {
        let mut v = srpc_buf::empty();
        // SAFETY: as above.
        let st = unsafe { srpc_client_materialize(self.0, obj, &mut v) };
        assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
        let bytes = buf_bytes(&v);
        // SAFETY: filled by the library, freed once.
        unsafe { srpc_buf_free(&mut v) };
        bytes
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // SAFETY: from srpc_client_connect, freed once.
        unsafe { srpc_client_free(self.0) };
    }
}

fn call_of(kind: srpc_call_kind, obj: u64) -> srpc_call {
    srpc_call {
        kind: kind as u32,
        obj,
        name: s(""),
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
fn a_remote_error_writes_an_error_response() {
    let server = Server::start();
    let c = Client::connect(&server);
    let m = c.import("t");
    let fail = c.getattr(m, "fail");
    let mut call = call_of(srpc_call_kind::SrpcCallKindCall, fail);
    call.args = sl(&[0x90]);
    // A response full of garbage: the library writes all of it.
    let mut r = srpc_response {
        kind: srpc_response_kind::SrpcResponseKindObject,
        obj: 77,
        request_id: 77,
        value: srpc_buf::empty(),
    };
    // SAFETY: live client, valid call and response.
    let st = unsafe { srpc_client_request(c.0, &call, &mut r) };
    assert_eq!(st, srpc_status::SrpcStatusErrRemote);
    assert_eq!(r.kind, srpc_response_kind::SrpcResponseKindError);
    assert_eq!(r.obj, SRPC_NO_OBJECT);
    assert!(r.value.data.is_null() && r.value.len == 0);
    assert_eq!(last_message(), "it failed on purpose");
}

#[test]
fn empty_args_mean_no_arguments() {
    let server = Server::start();
    let c = Client::connect(&server);
    let m = c.import("t");
    let echo = c.getattr(m, "echo");
    c.call(echo, &[], &[])
        .expect("an empty args slice is no arguments");
    // The executor got an empty array and an empty map.
    assert_eq!(server.calls()[0].0, vec![0x90]);
    assert_eq!(server.calls()[0].1, vec![0x80]);
}

#[test]
fn a_success_clears_the_last_error() {
    let server = Server::start();
    let c = Client::connect(&server);
    let m = c.import("t");
    let echo = c.getattr(m, "echo");
    assert_eq!(
        c.call(echo, &[0x01], &[]),
        Err(srpc_status::SrpcStatusErrInvalidArgument)
    );
    assert!(last_message().contains("args"), "{}", last_message());
    assert_eq!(
        srpc_last_error_status(),
        srpc_status::SrpcStatusErrInvalidArgument
    );
    c.call(echo, &[0x90], &[]).unwrap();
    assert_eq!(srpc_last_error_status(), srpc_status::SrpcStatusOk);
    assert!(srpc_last_error_message().is_null());
}

#[test]
fn msgpack_the_library_refuses_names_the_field() {
    let server = Server::start();
    let c = Client::connect(&server);
    let m = c.import("t");
    let echo = c.getattr(m, "echo");
    for (args, kwargs, field) in [
        (&[0xc1][..], &[][..], "args is not valid msgpack"),
        (&[0x92, 0x01][..], &[][..], "args is not valid msgpack"),
        (
            &[0x90][..],
            &[0x81, 0xa1][..],
            "kwargs is not valid msgpack",
        ),
        (
            &[0x01][..],
            &[][..],
            "field \"args\" of a call message must be a msgpack array",
        ),
        (
            &[0x90][..],
            &[0x90][..],
            "field \"kwargs\" of a call message must be a msgpack map",
        ),
    ] {
        assert_eq!(
            c.call(echo, args, kwargs),
            Err(srpc_status::SrpcStatusErrInvalidArgument)
        );
        assert!(
            last_message().contains(field),
            "{field}: {}",
            last_message()
        );
    }
    let mut id = 0;
    // SAFETY: live client; the slice is valid for the call.
    let st = unsafe { srpc_client_getitem(c.0, echo, sl(&[]), &mut id) };
    assert_eq!(st, srpc_status::SrpcStatusErrInvalidArgument);
    assert!(last_message().contains("key"), "{}", last_message());
    // SAFETY: as above.
    let st = unsafe { srpc_client_getitem(c.0, echo, sl(&[0x92]), &mut id) };
    assert_eq!(st, srpc_status::SrpcStatusErrInvalidArgument);
    assert!(
        last_message().contains("key is not valid msgpack"),
        "{}",
        last_message()
    );
    // Nothing was sent: the connection goes on.
    assert_eq!(c.materialize(c.getattr(m, "value")), common::ODD_BYTES);
}

#[test]
fn a_c_executor_value_reaches_a_c_client_byte_for_byte() {
    let server = Server::start();
    let c = Client::connect(&server);
    let m = c.import("t");
    let value = c.getattr(m, "value");
    // Key order, a uint8 written as 0xcc 0x05 and an int16 -1: a decode and
    // re-encode anywhere on the way would change these bytes.
    assert_eq!(c.materialize(value), common::ODD_BYTES);
    let mut r = std::mem::MaybeUninit::<srpc_response>::uninit();
    let call = call_of(srpc_call_kind::SrpcCallKindMaterialize, value);
    // SAFETY: live client, valid call, `r` valid for writing.
    let st = unsafe { srpc_client_request(c.0, &call, r.as_mut_ptr()) };
    assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
    // SAFETY: written on success.
    let mut r = unsafe { r.assume_init() };
    assert_eq!(r.kind, srpc_response_kind::SrpcResponseKindValue);
    assert_eq!(buf_bytes(&r.value), common::ODD_BYTES);
    // SAFETY: from the library, freed once.
    unsafe { srpc_buf_free(&mut r.value) };
}

#[test]
fn a_lent_value_is_sent_from_the_hosts_memory_and_released_once() {
    let server = Server::start();
    let c = Client::connect(&server);
    let m = c.import("t");
    let lent = c.getattr(m, "lent");
    let mut want = vec![0xc6];
    want.extend_from_slice(&(common::LENT_LEN as u32).to_be_bytes());
    want.extend((0..common::LENT_LEN).map(|i| (i % 251) as u8));
    // Released once the answer is written: by the time the client has it,
    // or just after (bounded wait).
    let released = |n: usize| {
        let start = std::time::Instant::now();
        while server.lent() != (0, n) && start.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(server.lent(), (0, n), "(out, released)");
    };
    for n in 1..=3 {
        assert_eq!(c.materialize(lent), want);
        released(n);
    }
    // Not msgpack: refused, named, and the memory still released.
    let junk = c.getattr(m, "lent_junk");
    let call = call_of(srpc_call_kind::SrpcCallKindMaterialize, junk);
    let mut r = std::mem::MaybeUninit::<srpc_response>::uninit();
    // SAFETY: live client, valid call, `r` valid for writing.
    let st = unsafe { srpc_client_request(c.0, &call, r.as_mut_ptr()) };
    assert_eq!(st, srpc_status::SrpcStatusErrRemote);
    assert!(
        last_message().contains("invalid msgpack"),
        "{}",
        last_message()
    );
    released(4);
    assert_eq!(c.materialize(lent), want, "the connection goes on");
    released(5);
}

#[test]
fn call_arguments_reach_the_executor_as_the_client_wrote_them() {
    let server = Server::start();
    let c = Client::connect(&server);
    let m = c.import("t"); // handle MODULE
    let value = c.getattr(m, "value"); // handle VALUE
    let echo = c.getattr(m, "echo"); // handle ECHO
    assert_eq!((m, value, echo), (0, 1, 2), "protocol ids count from 0");
    // [ref(echo), {"b": 5 (uint8), "a": ref(m)}] and {"k": ref(value), "n": -1 (int16)}
    let mut args = vec![0x92];
    args.extend(common::marker(echo));
    args.extend([0x82, 0xa1, b'b', 0xcc, 0x05, 0xa1, b'a']);
    args.extend(common::marker(m));
    let mut kwargs = vec![0x82, 0xa1, b'k'];
    kwargs.extend(common::marker(value));
    kwargs.extend([0xa1, b'n', 0xd1, 0xff, 0xff]);
    let result = c.call(echo, &args, &kwargs).unwrap();

    let (got_args, got_kwargs, refs) = server.calls()[0].clone();
    // The frame's own bytes: the markers still carry the client's ids...
    assert_eq!(got_args, args);
    assert_eq!(got_kwargs, kwargs);
    // ...and refs says which handle each stands for, in order.
    assert_eq!(refs, vec![common::ECHO, common::MODULE, common::VALUE]);

    // The executor answers [args, kwargs, refs] by splicing the bytes it got:
    // they come back to this client unchanged.
    let mut expected = vec![0x93];
    expected.extend(&args);
    expected.extend(&kwargs);
    expected.push(0x93);
    for h in [common::ECHO, common::MODULE, common::VALUE] {
        expected.push(0xcf);
        expected.extend(h.to_be_bytes());
    }
    assert_eq!(c.materialize(result), expected);

    // A getitem key likewise, with its own refs.
    let mut key = vec![0x92, 0xcd, 0x00, 0x01];
    key.extend(common::marker(value));
    let mut item = 0;
    // SAFETY: live client; the slice is valid for the call.
    let st = unsafe { srpc_client_getitem(c.0, echo, sl(&key), &mut item) };
    assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
    let (got_key, _, refs) = server.calls()[1].clone();
    assert_eq!(got_key, key);
    assert_eq!(refs, vec![common::VALUE]);
}

#[test]
fn a_value_that_is_not_msgpack_is_refused_once_and_named() {
    let server = Server::start();
    let c = Client::connect(&server);
    let m = c.import("t");
    let junk = c.getattr(m, "junk");
    let mut v = srpc_buf::empty();
    // SAFETY: live client, valid out-pointer.
    let st = unsafe { srpc_client_materialize(c.0, junk, &mut v) };
    assert_eq!(st, srpc_status::SrpcStatusErrRemote);
    assert_eq!(
        server.junk_status(),
        Some(srpc_status::SrpcStatusErrInvalidArgument as u32),
        "srpc_reply_value refuses it"
    );
    let t = simplerpc::error::srpc_last_error_type();
    // SAFETY: NUL-terminated, valid until the next call on this thread.
    let t = unsafe { std::ffi::CStr::from_ptr(t) }
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(t, "simplerpc.ExecutorError");
    assert!(
        last_message().contains("answered a materialize request with invalid msgpack"),
        "{}",
        last_message()
    );
    // The connection goes on.
    assert_eq!(c.materialize(c.getattr(m, "value")), common::ODD_BYTES);
}

#[test]
fn promise_references_reach_the_executor_as_written_with_their_handles() {
    let server = Server::start();
    let c = Client::connect(&server);
    let m = c.import("t"); // handle MODULE
    let value = c.getattr(m, "value"); // handle VALUE
    let before = c.round_trips();
    let pipelined = |call: &srpc_call| {
        let mut p = 0;
        // SAFETY: live client, valid call and out-pointer.
        let st = unsafe { srpc_client_send_pipelined(c.0, call, &mut p) };
        assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
        assert_ne!(p & SRPC_PROMISE_BIT, 0, "a promise has the bit set");
        p
    };
    let mut getattr = call_of(srpc_call_kind::SrpcCallKindGetAttr, m);
    getattr.name = s("echo");
    // Its object will be handle ECHO.
    let echo = pipelined(&getattr);
    // echo(promise(echo), ref(value), k=promise(echo)): both kinds, in byte order.
    let mut args = vec![0x92];
    args.extend(common::promise_marker(echo & !SRPC_PROMISE_BIT));
    args.extend(common::marker(value));
    let mut kwargs = vec![0x81, 0xa1, b'k'];
    kwargs.extend(common::promise_marker(echo & !SRPC_PROMISE_BIT));
    let mut call = call_of(srpc_call_kind::SrpcCallKindCall, echo);
    call.args = sl(&args);
    call.kwargs = sl(&kwargs);
    let result = pipelined(&call);
    assert_eq!(c.round_trips(), before, "nothing waited yet");
    let got = c.materialize(result);
    assert_eq!(c.round_trips(), before + 1, "the chain cost one round trip");

    let (got_args, got_kwargs, refs) = server.calls()[0].clone();
    assert_eq!(
        got_args, args,
        "the promise markers as the client wrote them"
    );
    assert_eq!(got_kwargs, kwargs);
    assert_eq!(refs, vec![common::ECHO, common::VALUE, common::ECHO]);
    let mut expected = vec![0x93];
    expected.extend(&args);
    expected.extend(&kwargs);
    expected.push(0x93);
    for h in [common::ECHO, common::VALUE, common::ECHO] {
        expected.push(0xcf);
        expected.extend(h.to_be_bytes());
    }
    assert_eq!(got, expected);
}

#[test]
fn the_c_config_sets_the_server_limits() {
    let server = Server::start_with(|c| {
        c.max_objects = 1;
        c.max_connections = 1;
        c.stack_size = 16 << 20;
        c.handshake_timeout_ms = 5_000;
    })
    .expect("start");
    let c = Client::connect(&server);
    c.import("t");
    let mut id = 0;
    // SAFETY: a live client, valid out-pointer.
    let st = unsafe { srpc_client_import(c.0, s("t"), &mut id) };
    assert_eq!(st, srpc_status::SrpcStatusErrRemote);
    // SAFETY: NUL-terminated, valid until the next call on this thread.
    let t = unsafe { std::ffi::CStr::from_ptr(simplerpc::error::srpc_last_error_type()) };
    assert_eq!(t.to_str().unwrap(), "simplerpc.ObjectLimitError");
    assert!(
        last_message().contains("max_objects = 1"),
        "{}",
        last_message()
    );
    // A second connection is one over max_connections.
    let mut second = std::ptr::null_mut();
    // SAFETY: borrowed strings, valid out-pointer.
    let st =
        unsafe { srpc_client_connect(s("127.0.0.1"), server.port, s(&server.token), &mut second) };
    assert_ne!(st, srpc_status::SrpcStatusOk);
    assert!(second.is_null());
    let said = last_message();
    assert!(
        said.contains("503") && said.contains("limit of 1 connections"),
        "{said}"
    );
    // A limit that cannot work is refused as an invalid argument.
    let st = Server::start_with(|c| c.stack_size = 1024).err();
    assert_eq!(st, Some(srpc_status::SrpcStatusErrInvalidArgument));
    assert!(last_message().contains("stack_size"), "{}", last_message());
}

#[test]
fn args_in_parts_reach_the_executor_joined() {
    let server = Server::start();
    let c = Client::connect(&server);
    let m = c.import("t");
    let echo = c.getattr(m, "echo");
    // [bin(300 bytes), ref(m)] cut anywhere, a reference marker included.
    let mut args = vec![0x92, 0xc5, 0x01, 0x2c];
    args.extend((0..300u32).map(|i| i as u8));
    args.extend(common::marker(m));
    let cuts = [0usize, 1, 3, 200, args.len() - 5, args.len()];
    let parts: Vec<simplerpc::types::srpc_slice> =
        cuts.windows(2).map(|w| sl(&args[w[0]..w[1]])).collect();
    let mut call = call_of(srpc_call_kind::SrpcCallKindCall, echo);
    call.args_parts = parts.as_ptr();
    call.args_parts_len = parts.len();
    let mut r = srpc_response {
        kind: srpc_response_kind::SrpcResponseKindError,
        obj: 0,
        request_id: 0,
        value: srpc_buf::empty(),
    };
    // SAFETY: live client; the call's parts are valid for the call.
    let st = unsafe { srpc_client_request(c.0, &call, &mut r) };
    assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
    let (got_args, _, refs) = server.calls()[0].clone();
    assert_eq!(got_args, args);
    assert_eq!(refs, vec![common::MODULE]);
    // Parts that do not join into one msgpack array are refused, naming args.
    let bad = [sl(&[0x92, 0x01])];
    call.args_parts = bad.as_ptr();
    call.args_parts_len = 1;
    // SAFETY: as above.
    let st = unsafe { srpc_client_request(c.0, &call, &mut r) };
    assert_eq!(st, srpc_status::SrpcStatusErrInvalidArgument);
    assert!(last_message().contains("args"), "{}", last_message());
}

#[test]
fn kwargs_and_key_in_parts_reach_the_executor_joined() {
    let server = Server::start();
    let c = Client::connect(&server);
    let m = c.import("t");
    let echo = c.getattr(m, "echo");
    // A bin of 70,000 bytes: its payload is a part of its own, large enough
    // to be written from where it lies.
    let payload: Vec<u8> = (0..70_000u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut bin_header = vec![0xc6];
    bin_header.extend((payload.len() as u32).to_be_bytes());
    let mut r = srpc_response {
        kind: srpc_response_kind::SrpcResponseKindError,
        obj: 0,
        request_id: 0,
        value: srpc_buf::empty(),
    };
    // kwargs {"x": bin, "y": ref(m)}, in parts, the payload on its own;
    // args [1] in parts too.
    let mut head = vec![0x82, 0xa1, b'x'];
    head.extend(&bin_header);
    let mut tail = vec![0xa1, b'y'];
    tail.extend(common::marker(m));
    let kwargs: Vec<u8> = [&head[..], &payload, &tail].concat();
    let kw_parts = [sl(&head[..2]), sl(&head[2..]), sl(&payload), sl(&tail)];
    let args = [0x91u8, 0x01];
    let args_parts = [sl(&args[..1]), sl(&args[1..])];
    let mut call = call_of(srpc_call_kind::SrpcCallKindCall, echo);
    call.args_parts = args_parts.as_ptr();
    call.args_parts_len = args_parts.len();
    call.kwargs_parts = kw_parts.as_ptr();
    call.kwargs_parts_len = kw_parts.len();
    // SAFETY: live client; the call's parts are valid for the call.
    let st = unsafe { srpc_client_request(c.0, &call, &mut r) };
    assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
    let (got_args, got_kwargs, refs) = server.calls()[0].clone();
    assert_eq!(got_args, args);
    assert_eq!(got_kwargs, kwargs);
    assert_eq!(refs, vec![common::MODULE]);
    // `kwargs` itself is ignored when `kwargs_parts` is given.
    call.kwargs = sl(&[0x92, 0x01]);
    // SAFETY: as above.
    let st = unsafe { srpc_client_request(c.0, &call, &mut r) };
    assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
    assert_eq!(server.calls()[1].1, kwargs);
    // Parts that do not join into one msgpack map are refused, naming kwargs.
    let bad = [sl(&[0x91]), sl(&[0x01])];
    call.kwargs_parts = bad.as_ptr();
    call.kwargs_parts_len = bad.len();
    // SAFETY: as above.
    let st = unsafe { srpc_client_request(c.0, &call, &mut r) };
    assert_eq!(st, srpc_status::SrpcStatusErrInvalidArgument);
    assert!(last_message().contains("kwargs"), "{}", last_message());
    // A NULL part with a length is refused, naming the list.
    let null = [srpc_slice {
        ptr: std::ptr::null(),
        len: 1,
    }];
    call.kwargs_parts = null.as_ptr();
    call.kwargs_parts_len = 1;
    // SAFETY: as above (the NULL part is what is tested).
    let st = unsafe { srpc_client_request(c.0, &call, &mut r) };
    assert_eq!(st, srpc_status::SrpcStatusErrNullArgument);
    assert!(
        last_message().contains("kwargs_parts"),
        "{}",
        last_message()
    );

    // A key in parts: [bin, ref(m)], the payload on its own.
    let mut key_head = vec![0x92];
    key_head.extend(&bin_header);
    let key_tail = common::marker(m);
    let key: Vec<u8> = [&key_head[..], &payload, &key_tail].concat();
    let key_parts = [sl(&key_head), sl(&payload), sl(&key_tail)];
    let mut get = call_of(srpc_call_kind::SrpcCallKindGetItem, m);
    get.key_parts = key_parts.as_ptr();
    get.key_parts_len = key_parts.len();
    // SAFETY: as above.
    let st = unsafe { srpc_client_request(c.0, &get, &mut r) };
    assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
    let (got_key, _, refs) = server.calls()[2].clone();
    assert_eq!(got_key, key);
    assert_eq!(refs, vec![common::MODULE]);
    // Parts that join into nothing are an empty key, refused.
    let none: [srpc_slice; 0] = [];
    get.key_parts = none.as_ptr();
    get.key_parts_len = 0;
    // SAFETY: as above.
    let st = unsafe { srpc_client_request(c.0, &get, &mut r) };
    assert_eq!(st, srpc_status::SrpcStatusErrInvalidArgument);
    assert!(last_message().contains("key"), "{}", last_message());
}

/// A tuple argument as our Python client writes it with the tuple
/// extension: `[("a", 1)]` as `[{"__tuple__": ["a", 1]}]`.
const TUPLE_ARGS: &[u8] = &[
    0x91, 0x81, 0xa9, b'_', b'_', b't', b'u', b'p', b'l', b'e', b'_', b'_', 0x92, 0xa1, b'a', 0x01,
];

#[test]
fn the_tuple_extension_is_the_c_host_s_choice_and_visible_to_both_sides() {
    use simplerpc::session::{SRPC_EXT_ALL, SRPC_EXT_DEFAULT, SRPC_EXT_TUPLE};
    let connect = |server: &Server, ext: Option<u32>| {
        let mut c = std::ptr::null_mut();
        // SAFETY: borrowed strings, valid out-pointer.
        let st = unsafe {
            match ext {
                None => srpc_client_connect(s("127.0.0.1"), server.port, s(&server.token), &mut c),
                Some(e) => srpc_client_connect_ext(
                    s("127.0.0.1"),
                    server.port,
                    s(&server.token),
                    e,
                    &mut c,
                ),
            }
        };
        assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
        Client(c)
    };
    // A server whose executor asked for tuples, a client that asks too.
    let server = Server::start_with(|cfg| cfg.extensions = SRPC_EXT_ALL).unwrap();
    let c = connect(&server, Some(SRPC_EXT_ALL));
    // SAFETY: a live client.
    assert_eq!(unsafe { srpc_client_extensions(c.0) }, SRPC_EXT_ALL);
    let m = c.import("t");
    let echo = c.getattr(m, "echo");
    let result = c.call(echo, TUPLE_ARGS, &[]).unwrap();
    // The marker reaches the executor as written, and comes back untouched.
    assert_eq!(server.calls()[0].0, TUPLE_ARGS);
    let mut expected = vec![0x93];
    expected.extend(TUPLE_ARGS);
    expected.extend([0x80, 0x90]);
    assert_eq!(c.materialize(result), expected);
    assert!(server.extensions_seen().iter().all(|&e| e == SRPC_EXT_ALL));
    // The same server and a client that did not ask (srpc_client_connect).
    let before = server.extensions_seen().len();
    let c = connect(&server, None);
    // SAFETY: a live client.
    assert_eq!(unsafe { srpc_client_extensions(c.0) }, SRPC_EXT_DEFAULT);
    c.import("t");
    assert_eq!(server.extensions_seen()[before..], [SRPC_EXT_DEFAULT]);
    // A server that did not ask (the default config) leaves tuple out even
    // for a client that asks.
    let server = Server::start();
    let c = connect(&server, Some(SRPC_EXT_ALL));
    // SAFETY: a live client.
    assert_eq!(unsafe { srpc_client_extensions(c.0) } & SRPC_EXT_TUPLE, 0);
    c.import("t");
    assert_eq!(server.extensions_seen(), [SRPC_EXT_DEFAULT]);
    // Outside a callback there is no call to ask about.
    // SAFETY: NULL is allowed.
    assert_eq!(
        unsafe { simplerpc::executor::srpc_reply_extensions(std::ptr::null()) },
        0
    );
}

/// A failed connect: its status, and the message, which must name no Rust
/// API item (a C or Python host cannot act on `ClientConfig::token`).
fn failed_connect(port: u16, token: &str, timeout_ms: u64) -> (srpc_status, String) {
    let mut c = std::ptr::null_mut();
    // SAFETY: borrowed strings, valid out-pointer.
    let st = unsafe {
        srpc_client_connect_timeout(s("127.0.0.1"), port, s(token), 0, timeout_ms, &mut c)
    };
    assert!(c.is_null(), "no client is made when connecting fails");
    let message = last_message();
    for rust in ["::", "ClientConfig", "ServerConfig", "Error::"] {
        assert!(!message.contains(rust), "{rust} in {message:?}");
    }
    (st, message)
}

#[test]
fn connect_failures_have_their_own_statuses_and_neutral_messages() {
    let server = Server::start();
    let (st, message) = failed_connect(server.port, "not-the-token", 0);
    assert_eq!(st, srpc_status::SrpcStatusErrUnauthorized);
    assert!(message.contains("refused the token"), "{message}");

    // Nothing listens on a port just freed.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (st, message) = failed_connect(free, "t", 0);
    assert_eq!(st, srpc_status::SrpcStatusErrRefused);
    assert!(
        message.starts_with(&format!("nothing listens on 127.0.0.1:{free}")),
        "{message}"
    );
    assert!(message.contains("is the server running"), "{message}");

    // A listener that never answers the handshake: the connect timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let (st, message) = failed_connect(port, "t", 200);
    assert_eq!(st, srpc_status::SrpcStatusErrTimeout);
    assert!(message.contains("the connect timeout"), "{message}");
    drop(silent);
}

#[test]
fn live_objects_counts_what_the_connection_holds_and_drops_with_releases() {
    use simplerpc::client::{srpc_client_live_objects, srpc_client_release};
    let server = Server::start();
    let c = Client::connect(&server);
    let live = || {
        let mut n = u64::MAX;
        // SAFETY: a live client, a valid out-pointer.
        let st = unsafe { srpc_client_live_objects(c.0, &mut n) };
        assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
        n
    };
    assert_eq!(live(), 0);
    let m = c.import("t");
    let echo = c.getattr(m, "echo");
    assert_eq!(live(), 2);
    // Released: freed by the next request, the stats request itself.
    // SAFETY: a live client.
    assert_eq!(
        unsafe { srpc_client_release(c.0, echo) },
        srpc_status::SrpcStatusOk
    );
    assert_eq!(live(), 1);
    // A NULL out-pointer is refused, nothing sent.
    // SAFETY: a live client; NULL is checked.
    let st = unsafe { srpc_client_live_objects(c.0, std::ptr::null_mut()) };
    assert_eq!(st, srpc_status::SrpcStatusErrNullArgument);
    // A client that did not offer the extension never sends the request.
    let mut plain = std::ptr::null_mut();
    // SAFETY: borrowed strings, valid out-pointer.
    let st = unsafe {
        srpc_client_connect_ext(
            s("127.0.0.1"),
            server.port,
            s(&server.token),
            simplerpc::session::SRPC_EXT_DEFAULT & !simplerpc::session::SRPC_EXT_STATS,
            &mut plain,
        )
    };
    assert_eq!(st, srpc_status::SrpcStatusOk, "{}", last_message());
    let plain = Client(plain);
    let mut n = 7;
    // SAFETY: a live client, a valid out-pointer.
    let st = unsafe { srpc_client_live_objects(plain.0, &mut n) };
    assert_eq!(st, srpc_status::SrpcStatusErrInvalidArgument);
    assert!(last_message().contains("stats"), "{}", last_message());
    assert_eq!(n, 7, "nothing written");
}
