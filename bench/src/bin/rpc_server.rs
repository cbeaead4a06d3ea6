//! The Rust side of the "simplerpc Rust" pairing: a registry server with the
//! harness's workloads, run as its own process like every other peer.
//!
//! ```text
//! bench-rpc-server [--host 127.0.0.1] [--port 0] [--token T] [--certfile PEM --keyfile PEM]
//! ```
//! Module `bench`: `f(x)` returns `x`; `make_env()` returns an `Env` whose
//! `step(a)` returns `[obs, reward, terminated, truncated, info]` with one
//! preallocated 480×640×3 uint8 image (the same buffer every step, shared,
//! not copied); `make_array(n)` `n` bytes of uint8 noise; `nbytes(a)` its byte count.
//! Prints `export SIMPLERPC_PORT='…'` and `export SIMPLERPC_TOKEN='…'` lines.

use std::sync::Arc;

use simplerpc_bench::{arg, args, noise};
use simplerpc_core::{NdArray, Value};
use simplerpc_registry::{Class, Instance, Module, NdArrayExt, Registry};
use simplerpc_ws::{Server, ServerConfig};

struct Env {
    t: u64,
    obs: NdArray,
}

impl Env {
    fn step(&mut self, _action: f64) -> Value {
        self.t += 1;
        Value::List(vec![
            Value::Array(self.obs.clone()),
            Value::Float(1.0),
            Value::Bool(false),
            Value::Bool(false),
            Value::map([("t", self.t)]),
        ])
    }
}

fn bytes_array(n: usize, seed: u64) -> NdArray {
    NdArray::from_vec::<u8>(vec![n], noise(n, seed)).expect("shape matches")
}

fn main() {
    let a = args();
    let image =
        NdArray::from_vec::<u8>(vec![480, 640, 3], noise(480 * 640 * 3, 3)).expect("shape matches");
    let env = Class::<Env>::new("Env").method("step", Env::step).build();
    let registry = Arc::new(
        Registry::new().module(
            Module::new("bench")
                .function("f", |x: Value| x)
                .function("make_env", move || {
                    Instance::new(
                        &env,
                        Env {
                            t: 0,
                            obs: image.clone(),
                        },
                    )
                })
                .function("make_array", |n: usize| Value::Array(bytes_array(n, 4)))
                .function("nbytes", |x: NdArray| x.data().len()),
        ),
    );
    let config = ServerConfig {
        host: arg(&a, "host", "127.0.0.1".to_string()),
        port: arg(&a, "port", 0u16),
        token: a.get("token").cloned(),
        // Optional: with both, TLS only (wss://).
        certfile: a.get("certfile").map(Into::into),
        keyfile: a.get("keyfile").map(Into::into),
        ..ServerConfig::default()
    };
    let server = Server::bind(config, move |_| registry.executor()).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    });
    println!("export SIMPLERPC_PORT='{}'", server.local_addr().port());
    println!("export SIMPLERPC_TOKEN='{}'", server.token());
    if let Err(e) = server.serve() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
