//! The msgpack codec and the message decoders on arbitrary bytes: every
//! decoder either decodes or says why not, never panics, and what it decodes
//! re-encodes to a fixed point (encoding a decoded value and decoding that
//! again gives the same bytes), with the sizes the encoder promises.

#![no_main]

use libfuzzer_sys::fuzz_target;
use simplerpc_core::codec;
use simplerpc_core::message::{self, ResponseFrame};
use simplerpc_core::{Bytes, Extensions, RawValue, Value};

/// `value` encodes, with `exact_len` exact and `encoded_len` an upper bound,
/// and decodes back to a value that encodes to the same bytes.
fn fixed_point(value: &Value) {
    let once = codec::to_vec(value).expect("a decoded value encodes");
    assert_eq!(
        codec::exact_len(value),
        once.len(),
        "exact_len of {value:?}"
    );
    assert!(
        codec::encoded_len(value) >= once.len(),
        "encoded_len of {value:?}"
    );
    let again = codec::from_bytes(&Bytes::from(once.clone())).expect("an encoding decodes");
    assert_eq!(codec::to_vec(&again).expect("encodes again"), once);
}

fn response_fixed_point(frame: &ResponseFrame) {
    let once =
        message::encode_response(frame, Extensions::ALL).expect("a decoded response encodes");
    let again =
        message::decode_response(&Bytes::from(once.clone())).expect("an encoded response decodes");
    assert_eq!(again.id, frame.id);
    assert_eq!(
        message::encode_response(&again, Extensions::ALL).expect("encodes again"),
        once
    );
}

fuzz_target!(|data: &[u8]| {
    let frame = Bytes::copy_from_slice(data);

    // The value decoder, and the check of a frame's field (one level down,
    // so whatever it accepts a whole frame accepts too).
    let decoded = codec::from_bytes(&frame);
    let valid = codec::validate(data);
    if valid.is_ok() {
        assert!(
            decoded.is_ok(),
            "validate accepts what from_bytes refuses: {decoded:?}"
        );
        let raw = RawValue::new(frame.clone()).expect("validated");
        assert!(raw.decode().is_ok());
        let copied = RawValue::copy_from_slice(data).expect("validated");
        assert_eq!(copied.as_bytes(), data);
        // Array payloads taken out at a threshold the first byte picks.
        let min = data.first().map_or(0, |&b| usize::from(b) * 4);
        let (skeleton, bins) = codec::split_bins(data, min).expect("validated");
        let mut last = 0;
        for r in &bins {
            assert!(last <= r.start && r.start <= r.end && r.end <= data.len());
            assert!(r.len() >= min);
            last = r.end;
        }
        let taken: usize = bins.iter().map(|r| r.len()).sum();
        assert!(skeleton.len() + taken <= data.len() + 6 * bins.len());
    } else {
        assert!(RawValue::new(frame.clone()).is_err());
    }
    if let Ok(v) = &decoded {
        fixed_point(v);
        // The decoder counts the depth a frame's field may have as nesting does.
        let fits = codec::nesting(v, codec::MAX_DEPTH) <= codec::MAX_DEPTH;
        assert_eq!(fits, valid.is_ok(), "nesting disagrees with validate");
    }

    // Requests: the envelope reads what the full decoder reads.
    let envelope = message::decode_request_envelope(&frame);
    if let Ok(req) = message::decode_request(&frame) {
        assert_eq!(envelope, (req.id, req.release.clone()));
        let once = message::encode_request(&req.request, req.id, &req.release, Extensions::ALL)
            .expect("a decoded request encodes");
        let again = message::decode_request(&Bytes::from(once.clone()))
            .expect("an encoded request decodes");
        assert_eq!((again.id, &again.release), (req.id, &req.release));
        let twice =
            message::encode_request(&again.request, again.id, &again.release, Extensions::ALL)
                .expect("encodes again");
        assert_eq!(twice, once);
        for raw in [&req.raw.args, &req.raw.kwargs, &req.raw.key]
            .into_iter()
            .flatten()
        {
            codec::validate(raw.as_bytes()).expect("a raw field is valid msgpack");
        }
    }

    // Responses, with and without their raw value bytes.
    let plain = message::decode_response(&frame);
    match message::decode_response_raw(&frame) {
        Ok((resp, raw)) => {
            assert!(plain.is_ok());
            if let Some(raw) = raw {
                codec::validate(raw.as_bytes()).expect("a raw field is valid msgpack");
            }
            response_fixed_point(&resp);
        }
        Err(e) => assert_eq!(plain.err(), Some(e)),
    }
});
