//! Requests whose fields a host holds as msgpack in parts ([`Raw::Parts`],
//! what the Python package hands over): the parts that are whole payloads
//! of large bins go into the frame by reference ([`BorrowedFrame`]), the
//! rest is copied, and the frame is the one built in one buffer, byte for
//! byte, checked with the same errors.

use simplerpc_core::codec::{self, SPLICE_MIN};
use simplerpc_core::message::{
    encode_request_raw, encode_request_raw_parts_in, BorrowedFrame, FrameError, Raw, RawRequest,
};
use simplerpc_core::{ByteOrder, ClientSession, DType, Extensions, NdArray, ObjId, Value};

fn array(len: usize, seed: u8) -> Value {
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    Value::Array(
        NdArray::new(
            DType::UInt8,
            ByteOrder::NotApplicable,
            vec![len],
            data.into(),
        )
        .unwrap(),
    )
}

/// `encoded` cut as `packb_parts` cuts it: the data of each numpy array
/// (of at least `min` bytes) a part of its own, its bin header ending the
/// part before.
fn cut(encoded: &[u8], min: usize) -> Vec<&[u8]> {
    let (_, ranges) = codec::split_bins(encoded, min).unwrap();
    let mut parts = Vec::new();
    let mut at = 0;
    for r in ranges {
        parts.push(&encoded[at..r.start]);
        parts.push(&encoded[r.clone()]);
        at = r.end;
    }
    parts.push(&encoded[at..]);
    parts
}

fn call<'a>(args: Raw<'a>, kwargs: Raw<'a>) -> RawRequest<'a> {
    RawRequest::Call {
        path: "m.f",
        obj_id: Some(ObjId(7)),
        args,
        kwargs,
    }
}

const RELEASE: [ObjId; 2] = [ObjId(3), ObjId(5)];

/// The frame in parts and the frame in one buffer, for the same request.
fn both<'a>(
    r: &RawRequest<'a>,
) -> (
    Result<BorrowedFrame<'a>, FrameError>,
    Result<Vec<u8>, FrameError>,
) {
    let ext = Extensions::ALL;
    (
        encode_request_raw_parts_in(r, Some(9), &RELEASE, ext, Vec::new()),
        encode_request_raw(r, Some(9), &RELEASE, ext),
    )
}

/// Whether some part of `frame` is `part` itself (not a copy).
fn holds(frame: &BorrowedFrame<'_>, part: &[u8]) -> bool {
    frame
        .parts()
        .iter()
        .any(|p| p.as_ptr() == part.as_ptr() && p.len() == part.len())
}

/// The frame in parts equals the joined one; returns it.
fn same<'a>(r: &RawRequest<'a>) -> BorrowedFrame<'a> {
    let (parts, one) = both(r);
    let (parts, one) = (parts.unwrap(), one.unwrap());
    assert_eq!(parts.len(), one.len());
    assert_eq!(parts.clone().into_vec(), one);
    parts
}

#[test]
fn arrays_around_the_splice_size_give_the_same_frame() {
    for len in [
        0,
        1,
        SPLICE_MIN - 2,
        SPLICE_MIN - 1,
        SPLICE_MIN,
        SPLICE_MIN + 1,
        2 * SPLICE_MIN + 3,
    ] {
        let encoded = codec::to_vec(&Value::List(vec![
            Value::Int(-3),
            array(len, 1),
            Value::Nil,
        ]))
        .unwrap();
        let parts = cut(&encoded, 1);
        let r = call(Raw::Parts(&parts), Raw::One(b""));
        let frame = same(&r);
        let data = parts.iter().find(|p| p.len() == len && len > 0);
        if len >= SPLICE_MIN {
            assert!(!frame.is_one(), "{len}: spliced");
            assert!(holds(&frame, data.unwrap()), "{len}: by reference");
            assert!(frame.own_len() < 1024, "{len}: {}", frame.own_len());
        } else {
            assert!(frame.is_one(), "{len}: copied");
        }
    }
}

#[test]
fn several_large_parts_in_every_field_are_spliced() {
    let value = Value::List(vec![
        array(SPLICE_MIN, 1),
        Value::List(vec![array(100, 2), array(3 * SPLICE_MIN + 7, 3)]),
        Value::map([("x", array(SPLICE_MIN + 5, 4))]),
    ]);
    let args = codec::to_vec(&value).unwrap();
    let args_parts = cut(&args, SPLICE_MIN);
    assert_eq!(args_parts.len(), 7);
    let kwargs = codec::to_vec(&Value::map([("k", array(2 * SPLICE_MIN, 5))])).unwrap();
    let kwargs_parts = cut(&kwargs, SPLICE_MIN);
    let r = call(Raw::Parts(&args_parts), Raw::Parts(&kwargs_parts));
    let frame = same(&r);
    for p in args_parts.iter().chain(&kwargs_parts) {
        assert_eq!(holds(&frame, p), p.len() >= SPLICE_MIN, "{}", p.len());
    }
    assert!(frame.own_len() < 1024);
    // A getitem key too.
    let key = cut(&args, SPLICE_MIN);
    let r = RawRequest::GetItem {
        obj_id: ObjId(1),
        key: Raw::Parts(&key),
    };
    assert!(holds(&same(&r), key[1]));
    // A plain bin (bytes) whose payload is a part: spliced too.
    let payload = vec![0xabu8; SPLICE_MIN + 1];
    let head = [0x91, 0xc6, 0, 1, 0, 1];
    let parts = [&head[..], &payload[..]];
    let frame = same(&call(Raw::Parts(&parts), Raw::One(b"")));
    assert!(holds(&frame, &payload));
}

#[test]
fn a_large_part_that_is_not_a_whole_bin_payload_is_copied() {
    let payload = vec![b'a'; 2 * SPLICE_MIN];
    let n = (payload.len() as u32).to_be_bytes();
    // The header and the payload in one part.
    let mut whole = vec![0xc6];
    whole.extend_from_slice(&n);
    whole.extend_from_slice(&payload);
    let parts = [&[0x91u8][..], &whole[..]];
    assert!(same(&call(Raw::Parts(&parts), Raw::One(b""))).is_one());
    // The payload in two halves: neither is what the header announces.
    let head = [0x91, 0xc6, n[0], n[1], n[2], n[3]];
    let (a, b) = payload.split_at(SPLICE_MIN);
    let parts = [&head[..], a, b];
    assert!(same(&call(Raw::Parts(&parts), Raw::One(b""))).is_one());
    // A str's content after bytes that look like a bin header.
    let mut head = vec![0x91, 0xdb];
    head.extend_from_slice(&((payload.len() + 5) as u32).to_be_bytes());
    head.extend_from_slice(&[0xc6, n[0], n[1], n[2], n[3]]);
    let parts = [&head[..], &payload[..]];
    let (p, one) = both(&call(Raw::Parts(&parts), Raw::One(b"")));
    assert_eq!(p.map(BorrowedFrame::into_vec), one);
    // A bin holding a bin header and the payload: one bin, read as one.
    let mut head = vec![0x91, 0xc6];
    head.extend_from_slice(&((payload.len() + 5) as u32).to_be_bytes());
    head.extend_from_slice(&[0xc6, n[0], n[1], n[2], n[3]]);
    let parts = [&head[..], &payload[..]];
    assert!(same(&call(Raw::Parts(&parts), Raw::One(b""))).is_one());
    // A large part that is a whole array of small values.
    let ints = codec::to_vec(&Value::List(vec![Value::UInt(1); SPLICE_MIN])).unwrap();
    let parts = [&[0x91u8][..], &ints[..]];
    assert!(same(&call(Raw::Parts(&parts), Raw::One(b""))).is_one());
}

/// What a malformed case is called, the parts before the payload, and after.
type Case = (&'static str, Vec<Vec<u8>>, Vec<Vec<u8>>);

#[test]
fn malformed_parts_are_refused_as_in_one_buffer() {
    let payload = vec![7u8; SPLICE_MIN];
    let n = (payload.len() as u32).to_be_bytes();
    let bin = [0xc6, n[0], n[1], n[2], n[3]];
    let cases: Vec<Case> = vec![
        // An array of two with one element: the frame ends early.
        ("short array", vec![vec![0x92], bin.to_vec()], vec![]),
        // An element after the array: trailing bytes.
        ("trailing", vec![vec![0x91], bin.to_vec()], vec![vec![0xc0]]),
        // A marker msgpack never uses, after the payload.
        (
            "bad marker",
            vec![vec![0x92], bin.to_vec()],
            vec![vec![0xc1]],
        ),
        // A str that is not UTF-8 before the payload, split across parts.
        (
            "bad str",
            vec![vec![0x92, 0xa2, 0xff], [&[0xfe][..], &bin].concat()],
            vec![],
        ),
        // A map of two pairs with one: truncated.
        (
            "truncated map",
            vec![vec![0x91, 0x82, 0xa1, b'k'], bin.to_vec()],
            vec![],
        ),
        // An ext type after the payload.
        (
            "ext",
            vec![vec![0x92], bin.to_vec()],
            vec![vec![0xd4, 1, 0]],
        ),
        // Not an array at all.
        ("not an array", vec![bin.to_vec()], vec![]),
    ];
    for (what, before, after) in &cases {
        let mut parts: Vec<&[u8]> = before.iter().map(Vec::as_slice).collect();
        parts.push(&payload);
        parts.extend(after.iter().map(Vec::as_slice));
        let (p, one) = both(&call(Raw::Parts(&parts), Raw::One(b"")));
        let (p, one) = (p.unwrap_err(), one.unwrap_err());
        assert_eq!(p, one, "{what}");
    }
    // A bin header that lies about the length (one more than the part).
    let lying = [0x91, 0xc6, n[0], n[1], n[2], n[3] + 1];
    let parts = [&lying[..], &payload[..]];
    let (p, one) = both(&call(Raw::Parts(&parts), Raw::One(b"")));
    assert!(matches!(
        one,
        Err(FrameError::BadField { field: "args", .. })
    ));
    assert_eq!(p.unwrap_err(), one.unwrap_err());
    // ... or one less.
    let lying = [0x91, 0xc6, n[0], n[1], n[2], n[3].wrapping_sub(1)];
    let parts = [&lying[..], &payload[..]];
    let (p, one) = both(&call(Raw::Parts(&parts), Raw::One(b"")));
    assert_eq!(p.unwrap_err(), one.unwrap_err());
    // A bin that holds what looks like a bin header and the payload, then
    // a bad marker: read past the payload as if it were not there, the
    // rest would make a valid value; joined, it does not.
    let mut head = vec![0x92, 0xc6];
    head.extend_from_slice(&((payload.len() + 5) as u32).to_be_bytes());
    head.extend_from_slice(&bin);
    let mut tail = vec![0u8; payload.len() + 1];
    tail[0] = 0xc1;
    tail[payload.len()] = 0xc0;
    let parts = [&head[..], &payload[..], &tail[..]];
    let (p, one) = both(&call(Raw::Parts(&parts), Raw::One(b"")));
    assert!(matches!(
        one,
        Err(FrameError::BadField { field: "args", .. })
    ));
    assert_eq!(p.unwrap_err(), one.unwrap_err());
    // kwargs with a key that is not a str, its value a spliced payload.
    let head = [0x81, 0x01, 0xc6, n[0], n[1], n[2], n[3]];
    let parts = [&head[..], &payload[..]];
    let (p, one) = both(&call(Raw::One(b"\x90"), Raw::Parts(&parts)));
    assert!(matches!(
        one,
        Err(FrameError::WrongField {
            field: "kwargs",
            ..
        })
    ));
    assert_eq!(p.unwrap_err(), one.unwrap_err());
}

#[test]
fn numpy_maps_with_a_spliced_payload_are_checked_as_in_one_buffer() {
    // Shape and data that disagree (10 elements, 64 KiB of data): the same
    // outcome as the joined bytes give.
    let bad = |shape: usize| {
        let mut v = Vec::new();
        codec::write_ndarray_header(&mut v, "|u1", [shape as u64].into_iter(), SPLICE_MIN).unwrap();
        v
    };
    let payload = vec![1u8; SPLICE_MIN];
    for shape in [10, SPLICE_MIN, SPLICE_MIN + 1] {
        let head = [&[0x91u8][..], &bad(shape)].concat();
        let parts = [&head[..], &payload[..]];
        let (p, one) = both(&call(Raw::Parts(&parts), Raw::One(b"")));
        assert_eq!(p.map(BorrowedFrame::into_vec), one, "shape {shape}");
        // As the kwargs map itself (its keys are bins, not str).
        let head = bad(shape);
        let parts = [&head[..], &payload[..]];
        let (p, one) = both(&call(Raw::One(b"\x90"), Raw::Parts(&parts)));
        assert_eq!(p.map(BorrowedFrame::into_vec), one, "kwargs shape {shape}");
    }
}

#[test]
fn a_64_mib_array_is_referenced_not_copied() {
    let len = 64 << 20;
    let encoded = codec::to_vec(&Value::List(vec![array(len, 9)])).unwrap();
    let parts = cut(&encoded, SPLICE_MIN);
    assert_eq!(parts[1].len(), len);
    let mut session = ClientSession::new(Extensions::ALL);
    let mut joined = ClientSession::new(Extensions::ALL);
    let r = call(Raw::Parts(&parts), Raw::One(b""));
    let (id, frame) = session.send_raw_frame(&r).unwrap();
    let (jid, one) = joined.send_raw(&r).unwrap();
    assert_eq!(id, jid);
    assert!(frame.own_len() < 1024, "{}", frame.own_len());
    assert!(frame.len() > len);
    assert!(holds(&frame, parts[1]));
    assert_eq!(frame.into_vec(), one);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn element() -> impl Strategy<Value = Value> {
        prop_oneof![
            // No byte 0xc6 outside bin headers, so that `payloads` finds them.
            (-1000i64..1000).prop_map(Value::Int),
            "[a-z]{0,20}".prop_map(Value::Str),
            prop::collection::vec(0u8..0x80, 0..40).prop_map(|b| Value::Bin(b.into())),
            prop_oneof![
                Just(SPLICE_MIN - 1),
                Just(SPLICE_MIN),
                Just(SPLICE_MIN + 1),
                Just(2 * SPLICE_MIN + 3)
            ]
            .prop_map(|n| Value::Bin(vec![0; n].into())),
            (0usize..3).prop_map(|k| array([10, SPLICE_MIN, SPLICE_MIN + 9][k], k as u8)),
        ]
    }

    /// Where the payloads of `bytes`' bins of at least [`SPLICE_MIN`] bytes
    /// lie (`bytes` as encoded: large bins hold zeros).
    fn payloads(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
        let mut out: Vec<_> = codec::split_bins(bytes, SPLICE_MIN).unwrap().1;
        let mut i = 0;
        while i + 5 <= bytes.len() {
            if let Some(r) = out.iter().find(|r| r.contains(&i)) {
                i = r.end;
                continue;
            }
            if bytes[i] == 0xc6 {
                let len = u32::from_be_bytes(bytes[i + 1..i + 5].try_into().unwrap()) as usize;
                if len >= SPLICE_MIN {
                    // (An array's data is in `out` already.)
                    if !out.contains(&(i + 5..i + 5 + len)) {
                        out.push(i + 5..i + 5 + len);
                    }
                    i += 5 + len;
                    continue;
                }
            }
            i += 1;
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Any value cut anywhere (and at each bin payload), perhaps with a
        /// byte changed or the end cut off: the frame in parts is the frame
        /// in one buffer, or both are refused with the same error.
        #[test]
        fn parts_give_the_joined_frame_or_its_error(
            items in prop::collection::vec(element(), 0..6),
            as_map in any::<bool>(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            flip in proptest::option::of((any::<prop::sample::Index>(), 1u8..=255)),
            cut_end in proptest::option::of(any::<prop::sample::Index>()),
        ) {
            let value = if as_map {
                Value::Map(items.iter().enumerate().map(|(i, v)| (Value::Str(format!("k{i}")), v.clone())).collect())
            } else {
                Value::List(items)
            };
            let mut bytes = codec::to_vec(&value).unwrap();
            // A byte changed, or the end cut off, where it matters: outside
            // the large payloads (whose bytes any bin may hold).
            let large = payloads(&bytes);
            let outside: Vec<usize> =
                (0..bytes.len()).filter(|i| !large.iter().any(|r| r.contains(i))).collect();
            if let Some((at, x)) = flip {
                bytes[outside[at.index(outside.len())]] ^= x;
            }
            if let Some(end) = cut_end {
                bytes.truncate(outside[end.index(outside.len())]);
            }
            // Cut at every large payload's edges (when the bytes still have
            // them), and at the random points.
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            let mut arrays = Vec::new();
            if let Ok((_, ranges)) = codec::split_bins(&bytes, 1) {
                for r in ranges {
                    at.extend([r.start, r.end]);
                    arrays.push(r);
                }
            }
            // Each bin32 header outside the arrays' data (a large bin's
            // payload is zeros): its payload's edges.
            let mut i = 0;
            while i + 5 <= bytes.len() {
                if let Some(r) = arrays.iter().find(|r| r.contains(&i)) {
                    i = r.end;
                    continue;
                }
                if bytes[i] == 0xc6 {
                    let len = u32::from_be_bytes(bytes[i + 1..i + 5].try_into().unwrap()) as usize;
                    at.extend([i + 5, i + 5 + len]);
                }
                i += 1;
            }
            at.sort_unstable();
            at.dedup();
            let mut parts = Vec::new();
            let mut from = 0;
            for &c in &at {
                if c > from && c <= bytes.len() {
                    parts.push(&bytes[from..c]);
                    from = c;
                }
            }
            parts.push(&bytes[from..]);
            let r = if as_map {
                call(Raw::One(b"\x90"), Raw::Parts(&parts))
            } else {
                call(Raw::Parts(&parts), Raw::One(b""))
            };
            let (p, one) = both(&r);
            if let (Ok(p), None, None, true) = (&p, flip, cut_end, cuts.is_empty()) {
                // Unbroken and cut only at payloads: every large payload is
                // spliced in, by reference.
                for r in &large {
                    prop_assert!(holds(p, &bytes[r.clone()]));
                }
                let spliced: usize = large.iter().map(|r| r.len()).sum();
                prop_assert!(p.own_len() < 1024 + bytes.len() - spliced);
            }
            prop_assert_eq!(p.map(BorrowedFrame::into_vec), one);
        }
    }
}
