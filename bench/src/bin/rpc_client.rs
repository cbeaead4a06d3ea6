//! The Rust client of the "simplerpc Rust" pairing: the harness's workloads
//! against `bench-rpc-server`, through nothing but `Client`, `Proxy::getattr`,
//! `call_args` and `materialize`.
//!
//! ```text
//! bench-rpc-client --port P --token T [--host 127.0.0.1] [--sizes 8,32,...]
//!                  [--warmup 100] [--iters 2000] [--seconds 5] [--min-iters 5]
//!                  [--hard-seconds 30] [--sweep-seconds 2] [--budget-bytes N]
//!                  [--cafile PEM]   (TLS: wss://, trusting this CA)
//!                  [--only f1,env_step,down,up]   (a subset, for profiling by hand)
//! ```
//! Prints one JSON object per line, as `bench/peers.py` does:
//! `{"workload": W, "size": N or null, "samples": [µs, ...]}`, or `"error"`
//! instead of `"samples"`; a direction of the sweep stops at its first error.

use simplerpc_bench::{arg, args, json_samples, json_str, measure, noise, policy, sizes};

/// Print one record; false if it was an error.
fn emit(workload: &str, size: Option<usize>, r: Result<Vec<f64>, Error>) -> bool {
    let size = size.map_or("null".to_string(), |n| n.to_string());
    let (ok, body) = match r {
        Ok(s) => (true, format!("\"samples\":{}", json_samples(&s))),
        Err(e) => (false, format!("\"error\":{}", json_str(&e.to_string()))),
    };
    println!("{{\"workload\":\"{workload}\",\"size\":{size},{body}}}");
    ok
}
use simplerpc_core::{NdArray, Value};
use simplerpc_registry::NdArrayExt;
use simplerpc_ws::{Client, ClientConfig, Error};

fn check(ok: bool, what: &str) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(Error::Io(std::io::Error::other(format!(
            "wrong result: {what}"
        ))))
    }
}

fn main() {
    let a = args();
    let p = policy(&a);
    let sweep_seconds: f64 = arg(&a, "sweep-seconds", 2.0);
    let budget: usize = arg(&a, "budget-bytes", 1 << 30);
    let mut config = ClientConfig::new(
        arg(&a, "host", "127.0.0.1".to_string()),
        arg(&a, "port", 0u16),
        arg(&a, "token", String::new()),
    );
    // Optional: TLS (wss://) trusting this CA file.
    config.cafile = a.get("cafile").map(Into::into);
    let only: Option<Vec<String>> = a
        .get("only")
        .map(|s| s.split(',').map(str::to_string).collect());
    const WORKLOADS: [&str; 4] = ["f1", "env_step", "down", "up"];
    if let Some(bad) = only
        .iter()
        .flatten()
        .find(|w| !WORKLOADS.contains(&w.as_str()))
    {
        eprintln!("--only: no workload {bad:?} (the workloads: {WORKLOADS:?})");
        std::process::exit(2);
    }
    let wanted = |w: &str| only.as_ref().map_or(true, |o| o.iter().any(|x| x == w));
    let client = Client::connect(&config).expect("connect to bench-rpc-server");
    let m = client.module("bench").expect("module bench");

    // materialize(f(1)): call (returns a proxy), then materialize.
    let f = m.getattr("f").expect("bench.f");
    if wanted("f1") {
        let r = measure(p, || {
            let v = f.call_args(vec![Value::UInt(1)])?.materialize()?;
            check(v.as_u64() == Some(1), "f(1)")
        });
        emit("f1", None, r);
    }

    // materialize(env.step(a)) with the bound method fetched once.
    if wanted("env_step") {
        let step = (|| m.getattr("make_env")?.call0()?.getattr("step"))().expect("env.step");
        let r = measure(p, || {
            let v = step.call_args(vec![Value::Float(0.0)])?.materialize()?;
            let ok = matches!(&v, Value::List(x) if matches!(&x[0], Value::Array(o) if o.shape() == [480, 640, 3]));
            check(ok, "env.step")
        });
        emit("env_step", None, r);
    }

    let sizes = sizes(&a);
    let make_array = m.getattr("make_array").expect("bench.make_array");
    let nbytes = m.getattr("nbytes").expect("bench.nbytes");
    for dir in ["down", "up"].into_iter().filter(|d| wanted(d)) {
        for &n in &sizes {
            let pn = p.for_size(n, sweep_seconds, budget);
            let r = if dir == "down" {
                // materialize of an array built once on the server
                make_array.call_args(vec![Value::from(n)]).and_then(|arr| {
                    measure(pn, || {
                        let v = arr.materialize()?;
                        check(matches!(&v, Value::Array(x) if x.data().len() == n), "down")
                    })
                })
            } else {
                // nbytes(arr) with a client array (sharing one buffer), then
                // materialize of the small result
                let arr = Value::Array(
                    NdArray::from_vec::<u8>(vec![n], noise(n, 5)).expect("shape matches"),
                );
                measure(pn, || {
                    let v = nbytes.call_args(vec![arr.clone()])?.materialize()?;
                    check(v.as_u64() == Some(n as u64), "up")
                })
            };
            if !emit(dir, Some(n), r) {
                break;
            }
        }
    }
    client.close();
}
