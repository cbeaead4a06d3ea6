//! A Rust server exposing a simulator through the registry executor.
//!
//! ```text
//! cargo run --release -p simplerpc-ws --example sim_server -- [--host H] [--port P] [--token T]
//!     [--max-objects N] [--max-connections N] [--stack-size BYTES]
//!     [--handshake-timeout SECONDS] [--max-alloc BYTES]
//! ```
//!
//! Module `sim`:
//! - `make(seed)` returns an `Env` with `reset(seed)` and `step(action)`;
//!   `step` returns `{"obs": uint8[480, 640, 3], "reward": float, "done": bool,
//!   "truncated": bool, "info": {"t": int}}` and `materialize(env)` gives its step count;
//! - `add(a, b)`, `echo(x)`, `zeros(n)` (float64[n]; over `--max-alloc`
//!   bytes, or more than the memory there is, a `MemoryError`), `sleep_ms(ms)`.
//!
//! From Python: `simplerpc.connect(...).modules.sim.make(0).step(1.0)`.

use std::sync::Arc;
use std::time::Duration;

use ndarray::{Array1, Array3};
use simplerpc_core::Value;
use simplerpc_registry::{try_vec, Array, Class, Instance, Module, Registry};
use simplerpc_ws::config::{
    DEFAULT_DEAD_AFTER, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_OBJECTS, DEFAULT_PING_INTERVAL, DEFAULT_STACK_SIZE,
};
use simplerpc_ws::{Server, ServerConfig};

/// A toy environment that renders a fresh image every step.
struct Env {
    t: u64,
    seed: u64,
}

impl Env {
    fn observe(&self) -> Value {
        let shade = (self.seed.wrapping_add(self.t) % 256) as u8;
        Value::from(Array(Array3::<u8>::from_elem((480, 640, 3), shade)))
    }

    fn reset(&mut self, seed: u64) -> Value {
        self.seed = seed;
        self.t = 0;
        self.observe()
    }

    fn step(&mut self, action: f64) -> Value {
        self.t += 1;
        Value::map([
            ("obs", self.observe()),
            ("reward", Value::Float(action * 0.5)),
            ("done", Value::Bool(self.t >= 1000)),
            ("truncated", Value::Bool(false)),
            ("info", Value::map([("t", self.t)])),
        ])
    }
}

fn registry(max_alloc: usize) -> Registry {
    let env = Class::<Env>::new("Env")
        .method("reset", Env::reset)
        .method("step", Env::step)
        .materialize(|e: &Env| e.t)
        .build();
    Registry::new()
        .module(
            Module::new("sim")
                .function("make", move |seed: u64| {
                    Instance::new(&env, Env { t: 0, seed })
                })
                .function("add", |a: f64, b: f64| a + b)
                .function("echo", |v: Value| v)
                // The client picks n: allocated fallibly, within max_alloc.
                .function("zeros", |n: usize| {
                    try_vec(n, 0.0f64).map(|v| Array(Array1::from_vec(v)))
                })
                .function("sleep_ms", |ms: u64| {
                    std::thread::sleep(Duration::from_millis(ms))
                })
                .value("version", env!("CARGO_PKG_VERSION")),
        )
        .max_alloc(max_alloc)
}

/// A default for clap, which wants it `'static`.
fn shown(v: impl ToString) -> &'static str {
    Box::leak(v.to_string().into_boxed_str())
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = clap::Command::new("sim_server")
        .about("A simplerpc server exposing a Rust simulator registry")
        .arg(clap::arg!(--host <HOST> "host to bind").default_value("localhost"))
        .arg(
            clap::arg!(--port <PORT> "port to bind (0 picks a free one)")
                .value_parser(clap::value_parser!(u16))
                .default_value("8000"),
        )
        .arg(clap::arg!(--token <TOKEN> "token clients must present (default: a fresh one)"))
        .arg(
            clap::arg!(--"max-objects" <N> "most objects one connection may hold")
                .value_parser(clap::value_parser!(usize))
                .default_value(shown(DEFAULT_MAX_OBJECTS)),
        )
        .arg(
            clap::arg!(--"max-connections" <N> "most connections at once; one more is answered HTTP 503")
                .value_parser(clap::value_parser!(usize))
                .default_value(shown(DEFAULT_MAX_CONNECTIONS)),
        )
        .arg(
            clap::arg!(--"stack-size" <BYTES> "stack size of the threads that run calls")
                .value_parser(clap::value_parser!(usize))
                .default_value(shown(DEFAULT_STACK_SIZE)),
        )
        .arg(
            clap::arg!(--"handshake-timeout" <SECONDS> "time a client has to complete the WebSocket handshake")
                .value_parser(clap::value_parser!(f64))
                .default_value(shown(DEFAULT_HANDSHAKE_TIMEOUT.as_secs_f64())),
        )
        .arg(
            clap::arg!(--"ping-interval" <SECONDS> "a client silent this long is pinged")
                .value_parser(clap::value_parser!(f64))
                .default_value(shown(DEFAULT_PING_INTERVAL.as_secs_f64())),
        )
        .arg(
            clap::arg!(--"dead-after" <SECONDS> "a client silent this long (pings unanswered, or an answer unread) is dropped and its objects freed")
                .value_parser(clap::value_parser!(f64))
                .default_value(shown(DEFAULT_DEAD_AFTER.as_secs_f64())),
        )
        .arg(
            clap::arg!(--"max-message-size" <BYTES> "largest message accepted from a client (1009 past it)")
                .value_parser(clap::value_parser!(usize))
                .default_value(shown(DEFAULT_MAX_MESSAGE_SIZE)),
        )
        .arg(
            clap::arg!(--"max-alloc" <BYTES> "largest array a call may make the server allocate (zeros)")
                .value_parser(clap::value_parser!(usize))
                .default_value(shown(simplerpc_registry::DEFAULT_MAX_ALLOC)),
        )
        .arg(clap::arg!(--certfile <PEM> "certificate chain (PEM); with --keyfile the server speaks TLS only (wss://)").required(false))
        .arg(clap::arg!(--keyfile <PEM> "private key of --certfile (PEM)").required(false))
        .get_matches();
    let seconds = |name: &str| {
        let v = *args.get_one::<f64>(name).expect("has a default");
        Duration::try_from_secs_f64(v).unwrap_or_else(|_| {
            eprintln!("error: --{name} {v} is not a number of seconds");
            std::process::exit(2);
        })
    };
    let handshake_timeout = seconds("handshake-timeout");
    let config = ServerConfig {
        host: args.get_one::<String>("host").cloned().unwrap_or_default(),
        port: *args.get_one::<u16>("port").expect("has a default"),
        token: args.get_one::<String>("token").cloned(),
        max_objects: *args.get_one::<usize>("max-objects").expect("has a default"),
        max_connections: *args
            .get_one::<usize>("max-connections")
            .expect("has a default"),
        stack_size: *args.get_one::<usize>("stack-size").expect("has a default"),
        handshake_timeout,
        ping_interval: seconds("ping-interval"),
        dead_after: Some(seconds("dead-after")),
        max_message_size: *args
            .get_one::<usize>("max-message-size")
            .expect("has a default"),
        certfile: args.get_one::<String>("certfile").map(Into::into),
        keyfile: args.get_one::<String>("keyfile").map(Into::into),
        ..ServerConfig::default()
    };
    let max_alloc = *args.get_one::<usize>("max-alloc").expect("has a default");
    let registry = Arc::new(registry(max_alloc));
    let server = match Server::bind(config.clone(), move |_| registry.executor()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let port = server.local_addr().port();
    let scheme = if server.is_tls() {
        println!("TLS: only wss:// connections.");
        "wss"
    } else {
        println!("WARNING: this server speaks plain ws://: tokens and data travel unencrypted. Use it on localhost or a trusted network, or give it --certfile and --keyfile.");
        "ws"
    };
    println!(
        "Serving the Rust registry (module 'sim') on {scheme}://{}:{port}",
        config.host
    );
    println!("Token: {}", server.token());
    println!("export SIMPLERPC_HOST='{}'", config.host);
    println!("export SIMPLERPC_PORT='{port}'");
    println!("export SIMPLERPC_TOKEN='{}'", server.token());
    if let Err(e) = server.serve() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
