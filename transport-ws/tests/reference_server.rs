//! Our Rust client against the stock `python -m simplerpyc.server` from PyPI.
//!
//! Needs a Python with `simplerpyc==0.0.1a3` and numpy:
//! - `SIMPLERPC_REFERENCE_PYTHON` set (scripts/test.sh points it at its
//!   venv): these tests run with that Python and fail if it cannot serve;
//! - unset: they run with `python3` if it can import simplerpyc and numpy,
//!   and are skipped (saying so) if it cannot, so that `cargo test` passes
//!   on a fresh clone without a venv.

use simplerpc_registry::NdArrayExt;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use simplerpc_core::{DType, Extensions, Request, Response, Value};
use simplerpc_ws::{Client, ClientConfig, Error};

struct Reference {
    child: Child,
    port: u16,
    token: String,
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Names the Python that must run the reference server.
const PYTHON_VAR: &str = "SIMPLERPC_REFERENCE_PYTHON";

/// The Python to run the reference server with, or `None` (after saying
/// why) when the test should be skipped.
fn reference_python(test: &str) -> Option<String> {
    if let Some(python) = std::env::var(PYTHON_VAR).ok().filter(|p| !p.is_empty()) {
        // Asked for explicitly: any failure from here on is a test failure.
        return Some(python);
    }
    let usable = Command::new("python3")
        .args(["-c", "import simplerpyc.server, numpy"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if usable {
        return Some("python3".into());
    }
    // Straight to stderr: the test harness captures eprintln! of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test}: {PYTHON_VAR} is unset and python3 cannot import simplerpyc and numpy \
         (pip install simplerpyc==0.0.1a3 numpy, or run scripts/test.sh)"
    );
    None
}

/// Start the stock server, or `None` when the test is skipped.
fn start_reference(test: &str) -> Option<Reference> {
    let python = reference_python(test)?;
    let mut child = Command::new(&python)
        .args(["-u", "-m", "simplerpyc.server", "--host", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; set {PYTHON_VAR} to a python with simplerpyc==0.0.1a3 (scripts/test.sh does)"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut port, mut token) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        let value = || line.split('\'').nth(1).unwrap_or_default().to_owned();
        if line.contains("SIMPLERPYC_PORT=") {
            port = value().parse().ok();
        } else if line.contains("SIMPLERPYC_TOKEN=") {
            token = Some(value());
            break;
        }
    }
    let (Some(port), Some(token)) = (port, token) else {
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
        panic!("the stock simplerpyc server did not start with {python} (is simplerpyc==0.0.1a3 installed? scripts/test.sh installs it): {err}");
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Some(Reference { child, port, token })
}

#[test]
fn rust_client_against_the_stock_server() {
    let Some(r) = start_reference("rust_client_against_the_stock_server") else {
        return;
    };
    let client = Client::connect(&ClientConfig::new("127.0.0.1", r.port, r.token.clone())).unwrap();
    assert_eq!(
        client.extensions(),
        Extensions::NONE,
        "a stock server negotiates nothing"
    );

    assert!(!client.promises());
    let np = client.module("numpy").unwrap();
    // Without promises every operation waits, and fails at once, as before.
    assert!(np.getattr("no_such_function").is_err());
    let a = np
        .getattr("arange")
        .unwrap()
        .call_kw(
            vec![Value::UInt(12)],
            vec![("dtype".to_owned(), Value::str("float32"))],
        )
        .unwrap();
    let Value::Array(arr) = a.materialize().unwrap() else {
        panic!("not an array")
    };
    assert_eq!(arr.dtype(), DType::Float32);
    assert_eq!(
        arr.to_vec::<f32>().unwrap(),
        (0..12).map(|i| i as f32).collect::<Vec<_>>()
    );

    // getitem with a slice, and a proxy passed as an argument.
    let part = a
        .getitem(Value::slice(Value::UInt(2), Value::UInt(8), Value::UInt(3)))
        .unwrap();
    let total = np
        .getattr("sum")
        .unwrap()
        .call_args(vec![part.as_value()])
        .unwrap();
    let Value::Scalar(sum) = total.materialize().unwrap() else {
        panic!("np.float32 travels as a numpy scalar")
    };
    assert_eq!(
        (sum.dtype, sum.data.as_ref()),
        (DType::Float32, &7.0f32.to_le_bytes()[..])
    );

    // A tuple key indexes per axis (a list would be fancy indexing).
    let grid = np
        .getattr("arange")
        .unwrap()
        .call_args(vec![Value::UInt(6)])
        .unwrap()
        .getattr("reshape")
        .unwrap()
        .call_args(vec![Value::UInt(2), Value::UInt(3)])
        .unwrap();
    let cell = grid
        .getitem_tuple(vec![Value::UInt(1), Value::UInt(2)])
        .unwrap();
    assert_eq!(cell.path(), "numpy.arange().reshape()[1, 2]");
    let Value::Scalar(cell) = cell.materialize().unwrap() else {
        panic!("np.int64 travels as a numpy scalar")
    };
    assert_eq!(cell.data.as_ref(), &5i64.to_le_bytes()[..]);
    let rows = grid
        .getitem(Value::List(vec![Value::UInt(1), Value::UInt(0)]))
        .unwrap();
    let Value::Array(rows) = rows.materialize().unwrap() else {
        panic!("fancy indexing gives an array")
    };
    assert_eq!(rows.shape(), &[2, 3]);

    // eval and execute share the client's globals.
    client.execute("x = 40").unwrap();
    assert_eq!(
        client.eval("x + 2").unwrap().materialize().unwrap(),
        Value::UInt(42)
    );
    assert_eq!(
        client
            .module("os.path")
            .unwrap()
            .getattr("sep")
            .unwrap()
            .materialize()
            .unwrap(),
        Value::str("/")
    );

    // A remote exception, then the connection still works.
    let err = client.eval("1/0").unwrap_err();
    let remote = err.remote().expect("a remote error");
    assert_eq!(remote.exception_type, "builtins.ZeroDivisionError");
    assert!(remote.traceback.contains("ZeroDivisionError"));
    assert!(
        remote.payload.is_some(),
        "the stock server sends its pickle (we never load it)"
    );

    // Pipelined requests work without request ids (responses come in order).
    let responses = client
        .pipeline(&[
            Request::Eval { expr: "1".into() },
            Request::Eval { expr: "2".into() },
            Request::Eval { expr: "3".into() },
        ])
        .unwrap();
    assert!(responses.iter().all(|r| matches!(r, Response::Object(_))));
    // Released proxies are simply not sent to a stock server.
    drop(a);
    assert_eq!(
        client.eval("x").unwrap().materialize().unwrap(),
        Value::UInt(40)
    );
    client.close();
}

#[test]
fn wrong_token_is_unauthorized_against_the_stock_server() {
    let Some(r) = start_reference("wrong_token_is_unauthorized_against_the_stock_server") else {
        return;
    };
    let client = Client::connect(&ClientConfig::new("127.0.0.1", r.port, "wrong"));
    // The reference accepts the upgrade and then closes with 1008: reported
    // at connect or at the first request.
    let err = match client {
        Err(e) => e,
        Ok(c) => c.eval("1").unwrap_err(),
    };
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
}
