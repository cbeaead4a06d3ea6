//! Pipelining at the proxy level over a real WebSocket on 127.0.0.1, against
//! a Rust registry server: a chain of proxy operations and the wait at its
//! end are one round trip (counted by the client, and by the server session
//! through the `stats` request), dropped proxies free their objects (the
//! server's live count goes down with the next request), and an error
//! surfaces at the wait that needs the value. Then the same chain against
//! the stock `simplerpyc` server, which speaks no extension: every operation
//! waits, no promise is sent, and it still works.
//!
//! The stock server runs under `SIMPLERPC_REFERENCE_PYTHON` (scripts/test.sh
//! sets it); unset, `python3` is used if it can import simplerpyc, and that
//! part is skipped (saying so) if it cannot.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use simplerpc_core::codec::EncodeError;
use simplerpc_core::ExecError;
use simplerpc_registry::{Module, Registry, Serde};
use simplerpc_ws::ndarray::Array1;
use simplerpc_ws::{Client, ClientConfig, Error, RunningServer, Server, ServerConfig};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Step {
    obs: Array1<f64>,
    reward: f64,
    done: bool,
}

fn start() -> RunningServer {
    let registry = Arc::new(
        Registry::new().module(
            Module::new("env")
                .function("step", |a: f64| {
                    Serde(Step {
                        obs: Array1::from_elem(3, a),
                        reward: a * 2.0,
                        done: a > 10.0,
                    })
                })
                .function("fail", |why: String| -> Result<i64, ExecError> {
                    Err(ExecError::new("builtins.ValueError", why))
                }),
        ),
    );
    Server::bind(
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 0,
            ..ServerConfig::default()
        },
        move |_| registry.executor(),
    )
    .expect("bind")
    .spawn()
    .expect("spawn")
}

fn connect(server: &RunningServer) -> Client {
    Client::connect(&ClientConfig::new(
        "127.0.0.1",
        server.local_addr().port(),
        server.token(),
    ))
    .expect("connect")
}

#[test]
fn a_chain_is_one_round_trip_by_both_counts() {
    let server = start();
    let client = connect(&server);
    assert!(client.promises() && client.extensions().stats());
    let env = client.module("env").unwrap();
    let before = client.stats().unwrap();
    let trips = client.round_trips();
    let step: Step = env
        .getattr("step")
        .unwrap()
        .call((1.5,))
        .unwrap()
        .materialize_as()
        .unwrap();
    assert_eq!(client.round_trips() - trips, 1, "one wait for the chain");
    assert_eq!(
        step,
        Step {
            obs: Array1::from_elem(3, 1.5),
            reward: 3.0,
            done: false
        }
    );
    // The server handled getattr, call, materialize and the second stats.
    let after = client.stats().unwrap();
    assert_eq!(after.requests - before.requests, 4);
    // Ten chains, ten round trips (plus the one stats request).
    let trips = client.round_trips();
    for i in 0..10 {
        let s: Step = env
            .getattr("step")
            .unwrap()
            .call((f64::from(i),))
            .unwrap()
            .materialize_as()
            .unwrap();
        assert_eq!(s.reward, f64::from(i) * 2.0);
    }
    assert_eq!(client.round_trips() - trips, 10);
    server.shutdown();
}

#[test]
fn dropped_proxies_free_their_objects_with_the_next_request() {
    let server = start();
    let client = connect(&server);
    let env = client.module("env").unwrap();
    let step = env.getattr("step").unwrap();
    let base = client.live_objects().unwrap();
    assert_eq!(base, 2, "env and env.step");
    // Proxies of results, kept: each holds one object on the server.
    let kept: Vec<_> = (0..20)
        .map(|i| step.call((f64::from(i),)).unwrap())
        .collect();
    assert_eq!(kept[19].materialize_as::<Step>().unwrap().reward, 38.0);
    assert_eq!(client.live_objects().unwrap(), base + 20);
    // Dropped after their answers came: freed with the next request.
    drop(kept);
    assert_eq!(client.live_objects().unwrap(), base);
    // Dropped before their answers came (never waited for): freed too, once
    // the answers arrive and the next request carries the releases.
    for i in 0..20 {
        drop(step.call((f64::from(i),)).unwrap());
    }
    let last: Step = step.call((1.0,)).unwrap().materialize_as().unwrap();
    assert_eq!(last.reward, 2.0);
    assert_eq!(client.live_objects().unwrap(), base);
    // A clone keeps the object; the last clone's drop releases it.
    let r = step.call((2.0,)).unwrap();
    let r2 = r.clone();
    drop(r);
    assert_eq!(r2.materialize_as::<Step>().unwrap().reward, 4.0);
    assert_eq!(client.live_objects().unwrap(), base + 1);
    drop(r2);
    assert_eq!(client.live_objects().unwrap(), base);
    drop((step, env));
    assert_eq!(client.live_objects().unwrap(), 0);
    server.shutdown();
}

#[test]
fn errors_surface_at_the_wait_that_needs_the_value() {
    let server = start();
    let client = connect(&server);
    let env = client.module("env").unwrap();
    // A missing attribute, and a call on it: neither waits, neither fails.
    let missing = env.getattr("missing").unwrap();
    let called = missing.call((1,)).unwrap();
    // The wait fails, with the first error of the chain and its own type.
    let err = called.materialize().unwrap_err();
    let Error::Remote(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.exception_type, "builtins.AttributeError", "{e:?}");
    // A function that raises: the error comes from the materialize.
    let failed = env.getattr("fail").unwrap().call(("no luck",)).unwrap();
    let err = failed.materialize_as::<i64>().unwrap_err();
    let Error::Remote(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.exception_type, "builtins.ValueError");
    assert_eq!(e.message, "no luck");
    // Wrong argument types are the server's error, at the wait, too.
    let wrong = env
        .getattr("step")
        .unwrap()
        .call(("not a number",))
        .unwrap();
    assert!(matches!(wrong.materialize(), Err(Error::Remote(_))));
    // Nothing is left over: the next chain is clean, nothing leaked.
    drop((missing, called, failed, wrong));
    let ok: Step = env
        .getattr("step")
        .unwrap()
        .call((0.5,))
        .unwrap()
        .materialize_as()
        .unwrap();
    assert_eq!(ok.reward, 1.0);
    assert_eq!(client.live_objects().unwrap(), 1, "only env");
    server.shutdown();
}

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

const PYTHON_VAR: &str = "SIMPLERPC_REFERENCE_PYTHON";

fn start_python(module: &str) -> Option<PyServer> {
    let python = match std::env::var(PYTHON_VAR).ok().filter(|p| !p.is_empty()) {
        Some(p) => p,
        None => {
            let usable = Command::new("python3")
                .args(["-c", &format!("import {module}, numpy")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !usable {
                let _ = writeln!(
                    std::io::stderr(),
                    "skipped: {PYTHON_VAR} is unset and python3 cannot import {module} and numpy \
                     (run scripts/test.sh, or point {PYTHON_VAR} at a venv made by scripts/python-env.sh)"
                );
                return None;
            }
            "python3".into()
        }
    };
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

#[test]
fn against_the_stock_server_every_operation_waits_and_works() {
    let Some(py) = start_python("simplerpyc.server") else {
        return;
    };
    let client = Client::connect(&ClientConfig::new("127.0.0.1", py.port, py.token.clone()))
        .expect("connect to the stock server");
    // It answers no extension: no promises, no stats.
    assert_eq!(client.extensions(), simplerpc_ws::Extensions::NONE);
    assert!(!client.promises());
    let operator = client.module("operator").unwrap();
    // The same code as against ours: each operation waits for its answer
    // (a promise would be an unknown object id to this server and fail).
    let trips = client.round_trips();
    let sum: i64 = operator
        .getattr("add")
        .unwrap()
        .call((2, 5))
        .unwrap()
        .materialize_as()
        .unwrap();
    assert_eq!(sum, 7);
    assert_eq!(
        client.round_trips() - trips,
        3,
        "getattr, call, materialize"
    );
    // Errors surface at the operation itself, which waits here.
    let err = operator.getattr("missing").unwrap_err();
    assert!(matches!(err, Error::Remote(_)), "{err:?}");
    // No stats request reaches a stock server: refused before it is sent.
    let err = client.live_objects().unwrap_err();
    assert!(
        matches!(err, Error::Encode(EncodeError::NotNegotiated { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("stats"), "{err}");
    // And the connection goes on.
    let n: i64 = operator
        .getattr("mul")
        .unwrap()
        .call((6, 7))
        .unwrap()
        .materialize_as()
        .unwrap();
    assert_eq!(n, 42);
}

#[test]
fn without_the_promise_extension_every_operation_waits_and_still_releases() {
    let server = start();
    let mut config = ClientConfig::new("127.0.0.1", server.local_addr().port(), server.token());
    config.extensions = simplerpc_ws::Extensions::ALL.without(simplerpc_ws::Extensions::PROMISE);
    let client = Client::connect(&config).unwrap();
    assert!(!client.promises());
    let env = client.module("env").unwrap();
    let trips = client.round_trips();
    let step = env.getattr("step").unwrap().call((3.0,)).unwrap();
    assert_eq!(
        client.round_trips() - trips,
        2,
        "getattr and call each waited"
    );
    assert_eq!(step.materialize_as::<Step>().unwrap().reward, 6.0);
    // The error comes from the operation that caused it.
    let err = env.getattr("missing").unwrap_err();
    assert!(matches!(err, Error::Remote(_)), "{err:?}");
    drop(step);
    assert_eq!(client.live_objects().unwrap(), 1, "only env");
    server.shutdown();
}

#[test]
fn a_tuple_key_is_pipelined_too() {
    // Our Python server: promises, and a numpy array to index per axis.
    let Some(py) = start_python("simplerpc.server") else {
        return;
    };
    let client = Client::connect(&ClientConfig::new("127.0.0.1", py.port, py.token.clone()))
        .expect("connect to our Python server");
    assert!(client.promises());
    let a = client
        .eval("__import__('numpy').arange(6).reshape(2, 3)")
        .unwrap();
    let trips = client.round_trips();
    let item = a
        .getitem_tuple(vec![
            simplerpc_ws::Value::UInt(1),
            simplerpc_ws::Value::UInt(2),
        ])
        .unwrap();
    assert_eq!(client.round_trips(), trips, "nothing waited for yet");
    assert_eq!(item.materialize_as::<i64>().unwrap(), 5);
    assert_eq!(
        client.round_trips() - trips,
        1,
        "a[1, 2] and its value: one wait"
    );
    // The builtin and the key made on the way are released.
    let base = client.live_objects().unwrap();
    drop(item);
    assert_eq!(client.live_objects().unwrap(), base - 1);
    drop(a);
    assert_eq!(client.live_objects().unwrap(), 0);
}
