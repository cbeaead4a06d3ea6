//! A server session over the Rust registry executor, fed a sequence of
//! arbitrary request frames (see `simplerpc_fuzz` for the input format: one
//! byte of extension bits, then length-prefixed frames). Whatever comes, the
//! session answers each frame with exactly one response that decodes and
//! echoes the request's id, never panics (the registry has no function that
//! panics on purpose), holds exactly the objects its executor holds, and
//! frees them all when it closes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use simplerpc_core::message;
use simplerpc_core::{Bytes, Extensions, ServerSession};

fuzz_target!(|data: &[u8]| {
    let mut input = simplerpc_fuzz::Input::new(data);
    let ext = Extensions::from_bits(u32::from(input.byte().unwrap_or(0)));
    let mut server = ServerSession::new(simplerpc_fuzz::registry().executor(), ext);
    while let Some(frame) = input.frame() {
        let frame = Bytes::copy_from_slice(frame);
        let (id, _) = message::decode_request_envelope(&frame);
        let handled = server.requests_handled();
        let response = server.handle_frame(frame);
        assert_eq!(server.requests_handled(), handled + 1);
        let response = message::decode_response(&Bytes::from(response))
            .unwrap_or_else(|e| panic!("the response does not decode: {e}"));
        assert_eq!(response.id, id.filter(|_| ext.request_ids()));
        assert_eq!(
            server.live_objects(),
            server.executor().live_objects(),
            "the session's object table and the executor's disagree"
        );
    }
    server.close();
    assert_eq!(server.live_objects(), 0);
    assert_eq!(server.executor().live_objects(), 0, "close left objects");
});
