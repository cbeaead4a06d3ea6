//! Typed results from Python servers: a Python tuple, dict, numpy array and
//! numpy scalars materialized into Rust types, from our Python package's
//! server (`python -m simplerpc.server`, which speaks the `tuple`
//! extension) and from the stock `python -m simplerpyc.server` (tuples
//! arrive as lists: read alike).
//!
//! The Python is `SIMPLERPC_REFERENCE_PYTHON` (scripts/test.sh points it at
//! its venv, which has both packages and numpy): then any failure to serve
//! fails the test. Unset, `python3` is used if it can import the server and
//! numpy, and the test is skipped (saying so) if it cannot.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use serde::Deserialize;
use simplerpc_ws::ndarray::{array, Array1, Array2, ArrayD};
use simplerpc_ws::{Client, ClientConfig, Error, NdArray, NdArrayExt, Value};

const PYTHON_VAR: &str = "SIMPLERPC_REFERENCE_PYTHON";

struct PyServer {
    child: Child,
    port: u16,
    token: String,
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_for(module: &str) -> Option<String> {
    if let Some(p) = std::env::var(PYTHON_VAR).ok().filter(|p| !p.is_empty()) {
        return Some(p);
    }
    let usable = Command::new("python3")
        .args(["-c", &format!("import {module}, numpy")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if usable {
        return Some("python3".into());
    }
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {PYTHON_VAR} is unset and python3 cannot import {module} and numpy \
         (run scripts/test.sh, or point {PYTHON_VAR} at a venv made by scripts/python-env.sh)"
    );
    None
}

fn start(module: &str) -> Option<PyServer> {
    let python = python_for(module)?;
    let mut child = Command::new(&python)
        .args(["-u", "-m", module, "--host", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; set {PYTHON_VAR}"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut port, mut token) = (None, None);
    // Bounded: the server prints a few dozen lines before its token.
    for line in lines.by_ref().take(200) {
        let line = line.unwrap();
        let value = || line.split('\'').nth(1).unwrap_or_default().to_owned();
        if line.contains("_PORT=") {
            port = value().parse().ok();
        } else if line.contains("_TOKEN=") {
            token = Some(value());
            break;
        }
    }
    let (Some(port), Some(token)) = (port, token) else {
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
        panic!("`{python} -m {module}` did not start: {err}");
    };
    std::thread::spawn(move || for _ in lines {});
    Some(PyServer { child, port, token })
}

#[derive(Deserialize, Debug, PartialEq)]
struct Info {
    pos: (i64, i64),
    name: String,
    lives: Option<u32>,
}

/// A gym-style step, read from a Python tuple of its fields.
#[derive(Deserialize, Debug)]
struct Step {
    obs: Array2<u8>,
    reward: f32,
    done: bool,
    info: Info,
}

const SETUP: &str = "\
import numpy as np
def step():
    return (np.arange(6, dtype=np.uint8).reshape(2, 3), np.float32(0.5), False,
            {'pos': (1, 2), 'name': 'cart', 'lives': None})
big_endian = np.arange(3, dtype='>i4')
cube = np.ones((2, 2, 2), dtype=np.float64)
";

fn check(server: &PyServer, tuples: bool) {
    let client = Client::connect(&ClientConfig::new(
        "127.0.0.1",
        server.port,
        server.token.clone(),
    ))
    .unwrap();
    assert_eq!(client.extensions().tuples(), tuples);
    client.execute(SETUP).unwrap();

    let s = client.eval("step()").unwrap();
    let step: Step = s.materialize_as().unwrap();
    assert_eq!(step.obs, array![[0, 1, 2], [3, 4, 5]]);
    assert_eq!(step.reward, 0.5);
    assert!(!step.done);
    assert_eq!(
        step.info,
        Info {
            pos: (1, 2),
            name: "cart".into(),
            lives: None
        }
    );
    let (obs, reward, done, info): (Array2<u8>, f64, bool, HashMap<String, Value>) =
        s.materialize_as().unwrap();
    assert_eq!(obs.shape(), &[2, 3]);
    assert_eq!((reward, done), (0.5, false));
    assert_eq!(info["name"], Value::str("cart"));
    // The tuple itself: a Tuple with the extension, a List without.
    let v = s.materialize().unwrap();
    assert_eq!(matches!(v, Value::Tuple(_)), tuples, "{v:?}");

    // What does not fit names where.
    let err = s
        .materialize_as::<(Array2<f32>, f32, bool, Info)>()
        .unwrap_err();
    let Error::Convert { source, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        source.to_string(),
        "0: expected an array of f32, found an array of uint8"
    );
    let err = s.materialize_as::<Step>().map(|_| ()).and_then(|_| {
        client
            .eval("step()[3]")?
            .materialize_as::<HashMap<String, u32>>()
            .map(|_| ())
    });
    let Err(Error::Convert { source, .. }) = err else {
        panic!("{err:?}")
    };
    assert_eq!(source.path(), "pos");

    // numpy scalars: np.add returns np.int64.
    let np = client.module("numpy").unwrap();
    let sum = np.getattr("add").unwrap().call((3, 4)).unwrap();
    assert_eq!(sum.materialize_as::<i64>().unwrap(), 7);
    assert_eq!(sum.materialize_as::<f64>().unwrap(), 7.0);
    assert_eq!(sum.materialize().unwrap().as_i64(), Some(7));
    let half = np.getattr("float16").unwrap().call((1.5,)).unwrap();
    assert_eq!(half.materialize().unwrap().as_f64(), Some(1.5));

    // Arrays: the other byte order, any dimension, rows, zero-copy NdArray.
    let be: Array1<i32> = client.eval("big_endian").unwrap().materialize_as().unwrap();
    assert_eq!(be, array![0, 1, 2]);
    let cube = client.eval("cube").unwrap();
    let d: ArrayD<f64> = cube.materialize_as().unwrap();
    assert_eq!(d.shape(), &[2, 2, 2]);
    let rows: Vec<Vec<Vec<f64>>> = cube.materialize_as().unwrap();
    assert_eq!(rows[1][1], vec![1.0, 1.0]);
    let nd: NdArray = cube.materialize_as().unwrap();
    assert_eq!(nd.to_vec::<f64>().unwrap(), vec![1.0; 8]);
    let err = cube.materialize_as::<Array2<f64>>().unwrap_err();
    assert!(err.to_string().contains("shape [2, 2, 2]"), "{err}");

    // Typed arguments: a Rust tuple is a Python tuple (or list), kwargs pairs.
    let zeros = np
        .getattr("zeros")
        .unwrap()
        .call_kw(((2, 3),), [("dtype", "int16")])
        .unwrap();
    let z: Array2<i16> = zeros.materialize_as().unwrap();
    assert_eq!(z, Array2::<i16>::zeros((2, 3)));
    let arr = np
        .getattr("asarray")
        .unwrap()
        .call((Value::from(array![[1.0f32, 2.0]]),))
        .unwrap();
    let back: Array2<f32> = arr.materialize_as().unwrap();
    assert_eq!(back, array![[1.0, 2.0]]);
}

#[test]
fn python_values_read_as_rust_types_from_our_python_server() {
    let Some(server) = start("simplerpc.server") else {
        return;
    };
    check(&server, true);
}

#[test]
fn python_values_read_as_rust_types_from_the_stock_server() {
    let Some(server) = start("simplerpyc.server") else {
        return;
    };
    check(&server, false);
}
