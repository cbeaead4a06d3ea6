//! A Rust server exposing a simulator through the registry executor.
//!
//! ```text
//! cargo run --release -p simplerpc-ws --example sim_server -- [--host H] [--port P] [--token T]
//!     [--max-objects N] [--max-connections N] [--stack-size BYTES]
//!     [--handshake-timeout SECONDS] [--max-alloc BYTES]
//! ```
//!
//! Host, port and token come from the flags, else from `SIMPLERPC_SERVER_HOST`,
//! `SIMPLERPC_SERVER_PORT` and `SIMPLERPC_SERVER_TOKEN`, else the defaults
//! (`localhost`, 8000, a fresh token), as for `python -m simplerpc.server`;
//! never from the clients' `SIMPLERPC_*`. The server prints where each came from.
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

/// The server's own variables, read when a flag is not given. Never the
/// clients' `SIMPLERPC_HOST/PORT/TOKEN` ([`CLIENT_VARS`]): a shell holding
/// another server's exports must not make this one take that port.
const HOST_VAR: &str = "SIMPLERPC_SERVER_HOST";
const PORT_VAR: &str = "SIMPLERPC_SERVER_PORT";
const TOKEN_VAR: &str = "SIMPLERPC_SERVER_TOKEN";
const CLIENT_VARS: [&str; 3] = ["SIMPLERPC_HOST", "SIMPLERPC_PORT", "SIMPLERPC_TOKEN"];
const DEFAULT_HOST: &str = "localhost";
const DEFAULT_PORT: u16 = 8000;

/// A setting from its flag (`--name`), else from variable `var`, with
/// where it came from; None when neither is given. A variable that does not
/// parse ends the program with a message naming it.
fn setting<T: std::str::FromStr>(flag: Option<T>, name: &str, var: &str) -> Option<(T, String)> {
    if let Some(v) = flag {
        return Some((v, format!("from --{name}")));
    }
    let text = std::env::var(var).ok().filter(|v| !v.is_empty())?;
    match text.trim().parse() {
        Ok(v) => Some((v, format!("from ${var}"))),
        Err(_) => {
            eprintln!("error: {var} is {text:?}, not a valid {name}");
            std::process::exit(2);
        }
    }
}

/// A default for clap, which wants it `'static`.
fn shown(v: impl ToString) -> &'static str {
    Box::leak(v.to_string().into_boxed_str())
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = clap::Command::new("sim_server")
        .about("A simplerpc server exposing a Rust simulator registry")
        .arg(clap::arg!(--host <HOST> "host to bind [default: $SIMPLERPC_SERVER_HOST or localhost]"))
        .arg(
            clap::arg!(--port <PORT> "port to bind, 0 picks a free one [default: $SIMPLERPC_SERVER_PORT or 8000]")
                .value_parser(clap::value_parser!(u16)),
        )
        .arg(clap::arg!(--token <TOKEN> "token clients must present [default: $SIMPLERPC_SERVER_TOKEN or a fresh one]"))
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
    let (host, host_from) = setting(args.get_one::<String>("host").cloned(), "host", HOST_VAR)
        .unwrap_or_else(|| (DEFAULT_HOST.to_string(), "the default".into()));
    let (port, port_from) = match setting(args.get_one::<u16>("port").copied(), "port", PORT_VAR) {
        Some(found) => found,
        None => (DEFAULT_PORT, "the default".into()),
    };
    let (token, token_from) =
        match setting(args.get_one::<String>("token").cloned(), "token", TOKEN_VAR) {
            Some((token, from)) => (Some(token), from),
            None => (None, "generated: a fresh random one".into()),
        };
    let config = ServerConfig {
        host,
        port,
        token,
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
    println!(
        "Where the settings came from (flags, then SIMPLERPC_SERVER_* variables, then defaults):"
    );
    let free = if config.port == 0 {
        ", 0: a free one"
    } else {
        ""
    };
    println!("  host   {}  ({host_from})", config.host);
    println!("  port   {port}  ({port_from}{free})");
    println!("  token  ({token_from})");
    let ignored: Vec<&str> = CLIENT_VARS
        .into_iter()
        .filter(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
        .collect();
    if !ignored.is_empty() {
        println!(
            "  ({} in this environment: for clients, not read by the server; use --host/--port/--token or {HOST_VAR}/{PORT_VAR}/{TOKEN_VAR})",
            ignored.join(", ")
        );
    }
    println!("export SIMPLERPC_HOST='{}'", config.host);
    println!("export SIMPLERPC_PORT='{port}'");
    println!("export SIMPLERPC_TOKEN='{}'", server.token());
    if server.is_tls() {
        // The variables carry no TLS setting: a client that only pastes
        // them speaks ws:// and is refused with HTTP 400.
        println!("and connect with TLS, trusting the CA that signed the certificate:");
        println!("  Python: simplerpc.connect(tls=True, cafile='ca.pem'); Rust: ClientConfig {{ tls: true, cafile: Some(..), ..ClientConfig::from_env()? }}");
    }
    if let Err(e) = server.serve() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
