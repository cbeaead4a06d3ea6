//! What a client puts in a request besides the user's values: the path trail
//! of each proxy and the form of a tuple key. Every client (Rust, C, Python)
//! asks this module, so all of them send the same frames for the same code.
//!
//! A **path trail** is the human-readable expression that led to an object:
//! `"numpy"`, `"numpy.zeros"`, `"numpy.zeros()"`, `"frames[0]"`,
//! `"builtins.len"`. The reference protocol sends the parent's trail with
//! every `getattr` and `call`: a server evaluates it when no object id is
//! given, and the reference calls the attribute named by its last component
//! when the object itself is not callable. So the trail is part of the wire
//! semantics, not only of a proxy's `repr`.
//!
//! A **tuple key** (`a[0, 1]`, `a[1:3, ::2]`) has no form of its own on the
//! wire: msgpack has one array type, and a server takes an array for a list,
//! which numpy reads as fancy indexing (`a[[0, 1]]`). So a tuple key is built
//! on the server: `builtins.tuple` is looked up once per connection
//! ([`TUPLE_BUILTIN`]), called with the items as one list
//! ([`tuple_request`]), and the `getitem` names the result by reference.
//! A list key stays a list.

use crate::codec::{self, DecodeError, SPLICE_MIN};
use crate::message::{ends_with_bin_header, Request};
use crate::value::{ObjId, Value};
use bytes::Bytes;

/// The trail of an imported module: its name.
pub fn module(name: &str) -> String {
    name.to_owned()
}

/// The trail of a builtin: `"builtins.len"`.
pub fn builtin(name: &str) -> String {
    format!("builtins.{name}")
}

/// The trail of an evaluated expression: `"eval('1 + 1')"`.
pub fn eval(expr: &str) -> String {
    format!("eval({})", py_str(expr))
}

/// The trail of a teleported function: its name.
pub fn teleport(name: &str) -> String {
    name.to_owned()
}

/// The trail of `parent.attr` (just `attr` under an empty trail).
pub fn getattr(parent: &str, attr: &str) -> String {
    if parent.is_empty() {
        attr.to_owned()
    } else {
        format!("{parent}.{attr}")
    }
}

/// The trail of `parent(...)`.
pub fn call(parent: &str) -> String {
    format!("{parent}()")
}

/// The trail of `parent[key]`, with the key written as Python would write
/// the subscript (`x[0]`, `x['a']`, `x[1:3]`, `x[0, ::2]`).
pub fn getitem(parent: &str, key: &Value, is_tuple: bool) -> String {
    let text = match key {
        Value::List(items) if is_tuple => items.iter().map(key_text).collect::<Vec<_>>().join(", "),
        Value::Tuple(items) if !items.is_empty() => {
            items.iter().map(key_text).collect::<Vec<_>>().join(", ")
        }
        other => key_text(other),
    };
    format!("{parent}[{text}]")
}

/// A key a host holds in parts (as a frame takes it,
/// [`Raw::Parts`](crate::message::Raw::Parts)), decoded for its trail
/// ([`getitem`]) as [`codec::from_bytes`] decodes the joined bytes, but
/// without reading the parts a frame splices in by reference (at least
/// [`SPLICE_MIN`] bytes, exactly the payload of a bin: an array's data): a
/// trail never shows a large bin's bytes (`x[<ndarray>]`), so those come
/// out as zeros, in memory the allocator hands out zeroed and nothing
/// touches. The other parts are copied once (twice, when some are left
/// out: once more to check that what was left out is bin payloads).
pub fn key_of_parts(parts: &[&[u8]]) -> Result<Value, DecodeError> {
    let len = parts.iter().map(|p| p.len()).sum();
    // Zeroed memory of a large size is fresh pages: only what is written
    // below becomes resident.
    let mut joined = vec![0u8; len];
    // The parts read, and where those left out stood in them, to check
    // as a frame checks them (put_raw_spliced).
    let (mut skeleton, mut holes) = (Vec::new(), Vec::new());
    let (mut at, mut since) = (0, 0);
    for &p in parts {
        let end = at + p.len();
        if p.len() >= SPLICE_MIN && ends_with_bin_header(&joined[since..at], p.len()) {
            holes.push((skeleton.len(), p.len()));
            since = end;
        } else {
            joined[at..end].copy_from_slice(p);
            skeleton.extend_from_slice(p);
        }
        at = end;
    }
    if !holes.is_empty() && codec::decode_field_elided(&skeleton, &holes).is_err() {
        // A part left out is not a bin's payload after all (the bytes
        // before it only looked like a bin's header), or the key is
        // malformed: read every part, so that the key decodes (or fails)
        // as the joined bytes do.
        let mut at = 0;
        for &p in parts {
            joined[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
    }
    codec::from_bytes(&Bytes::from(joined))
}

/// A key as it reads in a subscript.
pub fn key_text(key: &Value) -> String {
    match key {
        Value::Nil => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::F32(f) => format!("{f:?}"),
        Value::Str(s) => py_str(s),
        Value::Proxy(id) => format!("<proxy {}>", id.0),
        Value::Slice(s) => {
            let part = |v: &Value| match v {
                Value::Nil => String::new(),
                v => key_text(v),
            };
            if s.step == Value::Nil {
                format!("{}:{}", part(&s.start), part(&s.stop))
            } else {
                format!("{}:{}:{}", part(&s.start), part(&s.stop), part(&s.step))
            }
        }
        Value::List(items) => format!(
            "[{}]",
            items.iter().map(key_text).collect::<Vec<_>>().join(", ")
        ),
        Value::Tuple(items) if items.len() == 1 => format!("({},)", key_text(&items[0])),
        Value::Tuple(items) => format!(
            "({})",
            items.iter().map(key_text).collect::<Vec<_>>().join(", ")
        ),
        other => format!("<{}>", other.type_name()),
    }
}

/// A Python string literal for `s`, quoted as `repr` quotes it.
fn py_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// The builtin a tuple key is built with (see the module docs).
pub const TUPLE_BUILTIN: &str = "tuple";

/// The request that builds a tuple key on the server: `tuple(items)`, with
/// `tuple_builtin` the object [`TUPLE_BUILTIN`] answered.
pub fn tuple_request(tuple_builtin: ObjId, items: Vec<Value>) -> Request {
    Request::Call {
        path: builtin(TUPLE_BUILTIN),
        obj_id: Some(tuple_builtin),
        args: vec![Value::List(items)],
        kwargs: Vec::new(),
    }
}

/// The request for [`TUPLE_BUILTIN`].
pub fn tuple_builtin_request() -> Request {
    Request::GetBuiltin {
        name: TUPLE_BUILTIN.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trails_read_like_python() {
        assert_eq!(getattr("", "np"), "np");
        assert_eq!(getattr("numpy", "zeros"), "numpy.zeros");
        assert_eq!(call("numpy.zeros"), "numpy.zeros()");
        assert_eq!(builtin("len"), "builtins.len");
        assert_eq!(eval("frames"), "eval('frames')");
        assert_eq!(eval("d['k']"), "eval(\"d['k']\")");
        assert_eq!(getitem("x", &Value::UInt(0), false), "x[0]");
        assert_eq!(getitem("x", &Value::str("a"), false), "x['a']");
        let s = Value::slice(Value::UInt(1), Value::UInt(3), Value::Nil);
        assert_eq!(getitem("x", &s, false), "x[1:3]");
        let t = Value::List(vec![
            Value::Int(-1),
            Value::slice(Value::Nil, Value::Nil, Value::UInt(2)),
        ]);
        assert_eq!(getitem("x", &t, true), "x[-1, ::2]");
        assert_eq!(getitem("x", &t, false), "x[[-1, ::2]]");
    }

    #[test]
    fn a_key_in_parts_has_the_trail_of_the_joined_key() {
        use crate::array::{DType, NdArray};
        let data: Vec<u8> = (0..SPLICE_MIN as u32 + 8)
            .map(|i| (i % 7) as u8 + 1)
            .collect();
        let (dtype, order) = DType::parse("<u8").unwrap();
        let array = NdArray::new(
            dtype,
            order,
            vec![data.len() / 8],
            Bytes::from(data.clone()),
        )
        .expect("an array");
        // The array's data and the bytes differ, so each is found once.
        let other: Vec<u8> = data.iter().map(|b| b + 100).collect();
        let key = Value::List(vec![
            Value::UInt(1),
            Value::Array(array),
            Value::Bin(Bytes::from(other.clone())),
            Value::Tuple(vec![Value::str("a")]),
        ]);
        let joined = codec::to_vec(&key).unwrap();
        // Cut around both large payloads (each a part of its own), and
        // elsewhere: the same trail as the joined bytes give.
        let mut cuts = vec![0, 1];
        for payload in [&data, &other] {
            let at = joined
                .windows(payload.len())
                .position(|w| w == &payload[..])
                .unwrap();
            cuts.extend([at, at + payload.len()]);
        }
        cuts.push(joined.len());
        cuts.dedup();
        let parts: Vec<&[u8]> = cuts.windows(2).map(|w| &joined[w[0]..w[1]]).collect();
        assert!(parts.iter().filter(|p| p.len() >= SPLICE_MIN).count() == 2);
        let whole = codec::from_bytes(&Bytes::from(joined.clone())).unwrap();
        let from_parts = key_of_parts(&parts).unwrap();
        assert_eq!(
            getitem("x", &from_parts, false),
            getitem("x", &whole, false)
        );
        assert_eq!(
            getitem("x", &from_parts, false),
            "x[[1, <ndarray>, <bytes>, ('a',)]]"
        );
        // The large payloads are not read: junk in their place gives the
        // same trail.
        let junk = vec![0xc1u8; data.len()];
        let swapped: Vec<&[u8]> = parts
            .iter()
            .map(|p| if p.len() >= SPLICE_MIN { &junk[..] } else { *p })
            .collect();
        assert_eq!(
            getitem("x", &key_of_parts(&swapped).unwrap(), false),
            getitem("x", &whole, false)
        );
        // A large part that is not a bin's payload is read (copied).
        let not_bin = [&joined[..1], &joined[1..]];
        assert_eq!(key_of_parts(&not_bin).unwrap(), whole);
        // Malformed parts are refused as the joined bytes are.
        assert!(key_of_parts(&[&[0x92, 0x01]]).is_err());
    }

    #[test]
    fn a_large_part_after_bytes_that_only_look_like_a_bin_header_is_read() {
        // [bin "ab" c6 <len>, [1; n]]: the small bin's own bytes end as the
        // header of a bin as long as the next part, which is not a bin's
        // payload but a list of n ones. The frame checks that and copies
        // the part (put_raw_spliced); the trail must read it too.
        let n = SPLICE_MIN as u32 + 10;
        let list_len = 5 + n;
        let mut head = vec![0x92, 0xc4, 7, b'a', b'b', 0xc6];
        head.extend(list_len.to_be_bytes());
        let mut list = vec![0xdd];
        list.extend(n.to_be_bytes());
        list.resize(list_len as usize, 0x01);
        let joined = [&head[..], &list].concat();
        let whole = codec::from_bytes(&Bytes::from(joined)).expect("valid msgpack");
        assert_eq!(key_of_parts(&[&head, &list]).expect("the same key"), whole);
    }

    #[test]
    fn a_tuple_key_is_built_by_the_tuple_builtin() {
        assert_eq!(
            tuple_builtin_request(),
            Request::GetBuiltin {
                name: "tuple".into()
            }
        );
        let r = tuple_request(ObjId(4), vec![Value::UInt(0), Value::UInt(1)]);
        assert_eq!(
            r,
            Request::Call {
                path: "builtins.tuple".into(),
                obj_id: Some(ObjId(4)),
                args: vec![Value::List(vec![Value::UInt(0), Value::UInt(1)])],
                kwargs: vec![],
            }
        );
    }
}
