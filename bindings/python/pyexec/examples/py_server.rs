//! A Rust host serving Python objects over WebSocket: each client gets a
//! [`PyExecutor`] (its own globals, modules, eval/execute, teleport) in the
//! CPython this binary embeds.
//!
//! ```text
//! PYTHONPATH=.venv/lib/python3.11/site-packages \
//!   cargo run --release -p simplerpc-pyexec --features pyo3 --example py_server -- [--host H] [--port P] [--token T]
//! ```
//!
//! It prints `export SIMPLERPC_PORT=...` and `SIMPLERPC_TOKEN` lines for the
//! client, then serves until killed. `PYTHONPATH` must reach the simplerpc
//! package (and numpy, dill if the clients use them).

use simplerpc_pyexec::PyExecutor;
use simplerpc_ws::{Server, ServerConfig};

fn main() {
    let mut config = ServerConfig {
        host: "localhost".into(),
        port: 8000,
        ..ServerConfig::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| {
            eprintln!(
                "error: {flag} needs a value (usage: py_server [--host H] [--port P] [--token T])"
            );
            std::process::exit(2);
        });
        match flag.as_str() {
            "--host" => config.host = value,
            "--port" => {
                config.port = value.parse().unwrap_or_else(|_| {
                    eprintln!("error: --port {value:?} is not a port number (0-65535)");
                    std::process::exit(2);
                })
            }
            "--token" => config.token = Some(value),
            _ => {
                eprintln!("error: unknown option {flag} (usage: py_server [--host H] [--port P] [--token T])");
                std::process::exit(2);
            }
        }
    }
    // Fail early, and clearly, when the interpreter cannot import simplerpc.
    if let Err(e) = PyExecutor::new(false) {
        eprintln!("error: {}: {}", e.exception_type, e.message);
        std::process::exit(1);
    }
    let server = match Server::bind(config, |info| {
        PyExecutor::new(info.extensions.tuples()).unwrap_or_else(PyExecutor::failed)
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    println!("WARNING: this server speaks plain ws://: tokens and data travel unencrypted. Use it on localhost or a trusted network.");
    // The address without the token (the export lines carry it): a URL
    // with a token is what shells' histories and logs keep.
    let ip = server.local_addr().ip();
    println!(
        "Serving Python objects on ws://{}:{}",
        if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        },
        server.local_addr().port()
    );
    println!("  export SIMPLERPC_HOST='{ip}'");
    println!("  export SIMPLERPC_PORT='{}'", server.local_addr().port());
    println!("  export SIMPLERPC_TOKEN='{}'", server.token());
    if let Err(e) = server.serve() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
