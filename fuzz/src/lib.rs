//! What the fuzz targets share: how one fuzz input is cut into frames, and
//! the registry the server session target serves.
//!
//! ## Input format of the session targets
//!
//! A few control bytes, then frames, each as a little-endian `u16` length
//! and that many bytes (a length past the end takes what is left), so a
//! single golden frame becomes a seed by putting its length in front, and
//! libFuzzer's mutations of a length only move where frames split.
//! `fuzz/seeds.sh` writes seeds in this form.

use std::sync::{Arc, OnceLock};

use ndarray::ArrayD;
use num_complex::Complex;
use simplerpc_core::{Bytes, ExecError, NdArray, Value};
use simplerpc_registry::{Args, Array, Class, Instance, Module, NdArrayExt, Object, Registry};

/// A cursor over one fuzz input.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Read `data` from its start.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, if any.
    pub fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    /// The next length-prefixed frame; `None` once the input is used up.
    pub fn frame(&mut self) -> Option<&'a [u8]> {
        if self.data.is_empty() {
            return None;
        }
        if self.data.len() < 2 {
            return Some(std::mem::take(&mut self.data));
        }
        let n = u16::from_le_bytes([self.data[0], self.data[1]]) as usize;
        let rest = &self.data[2..];
        let (frame, rest) = rest.split_at(n.min(rest.len()));
        self.data = rest;
        Some(frame)
    }
}

/// A toy environment: what a simulator server exposes.
struct Env {
    t: u64,
}

/// The registry every server session target run serves: functions of each
/// argument type the registry converts (ints, floats, text, bytes, lists,
/// options, arrays of several dtypes, raw arguments with keywords), a class
/// with methods and a materialization, and constants to index. Nothing in
/// it panics on purpose, so any panic is a finding.
pub fn registry() -> Arc<Registry> {
    static REGISTRY: OnceLock<Arc<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            let env = Class::<Env>::new("Env")
                .method("reset", |e: &mut Env, seed: u64| {
                    e.t = seed;
                    e.t
                })
                .method("step", |e: &mut Env, action: f64| {
                    e.t = e.t.wrapping_add(1);
                    let obs = ndarray::Array3::<u8>::from_elem((2, 3, 3), e.t as u8);
                    Value::map([
                        ("obs", Value::from(Array(obs))),
                        ("reward", Value::Float(action * 0.5)),
                        ("done", Value::Bool(e.t & 3 == 0)),
                    ])
                })
                .method("seek", |e: &mut Env, to: Option<u32>| {
                    e.t = to.map_or(0, u64::from);
                })
                .materialize(|e: &Env| e.t)
                .build();
            let sim = Module::new("sim")
                .function("make", move |t: u64| Instance::new(&env, Env { t }))
                .function("add", |a: i64, b: i64| a.wrapping_add(b))
                .function("half", |x: f32| x / 2.0)
                .function("echo", |v: Value| v)
                .function("fail", || -> Result<Value, ExecError> {
                    Err(ExecError::value_error("it failed"))
                })
                .function("concat", |s: String, b: Bytes| {
                    format!("{s}{}", String::from_utf8_lossy(&b))
                })
                .function("ints", |v: Vec<i32>, scale: Option<u8>| {
                    let k = i64::from(scale.unwrap_or(1));
                    v.into_iter().map(|x| i64::from(x) * k).collect::<Vec<_>>()
                })
                .function("sum", |a: ArrayD<f64>| a.sum())
                .function("count", |a: ArrayD<bool>| a.iter().filter(|&&b| b).count())
                .function("norm", |a: ArrayD<Complex<f32>>| {
                    a.iter().map(|c| c.norm_sqr() as f64).sum::<f64>()
                })
                .function("shape", |a: NdArray| a.shape().to_vec())
                .function("sum_i32", |a: NdArray| -> Result<i64, ExecError> {
                    // A zero-copy view when the data is aligned and native, else a copy.
                    let sum = match a.view::<i32>() {
                        Ok(v) => v.iter().map(|&x| i64::from(x)).sum(),
                        Err(_) => a
                            .to_vec::<i32>()
                            .map_err(|e| ExecError::type_error(e.to_string()))?
                            .into_iter()
                            .map(i64::from)
                            .sum(),
                    };
                    Ok(sum)
                })
                .raw_function("kw", |args: Args| {
                    let x: i64 = args.get(0, "x")?;
                    let y: Option<String> = args.get(1, "y").unwrap_or(None);
                    Ok(Object::Value(Value::List(vec![
                        Value::Int(x),
                        Value::from(y),
                    ])))
                })
                .value("version", "1.0")
                .value(
                    "table",
                    Value::List(vec![
                        Value::UInt(1),
                        Value::str("two"),
                        Value::map([("k", Value::Int(-3))]),
                        Value::List(vec![Value::Nil, Value::Bool(true)]),
                    ]),
                )
                .value(
                    "grid",
                    NdArray::from_vec(vec![2, 2], vec![1.0f32, 2.0, 3.0, 4.0])
                        .expect("shape and data agree"),
                );
            let builtins = Module::new("builtins")
                .function("len", |v: Vec<Value>| v.len())
                .function("max", |a: i64, b: i64| a.max(b));
            Arc::new(Registry::new().module(sim).builtins(builtins))
        })
        .clone()
}
