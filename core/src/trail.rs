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

use crate::message::Request;
use crate::value::{ObjId, Value};

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
