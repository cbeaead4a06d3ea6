//! Shared pieces of the benchmark binaries: the bounded timing loop (the same
//! rules as `bench/peers.py`), a tiny argument parser and JSON output.
//!
//! Every loop is bounded by a count and by time, so a slow or stuck peer
//! cannot make a run endless.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long and how often one workload runs.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Warm-up iterations (not recorded), at most.
    pub warmup: usize,
    /// Measured iterations, at most.
    pub iters: usize,
    /// Stop measuring after this long once `min_iters` are done.
    pub seconds: f64,
    /// Measured iterations wanted even past `seconds` ...
    pub min_iters: usize,
    /// ... unless this much time has gone by.
    pub hard_seconds: f64,
}

impl Policy {
    /// The policy for a sweep point of `size` bytes: at most `budget_bytes`
    /// moved per point (so big sizes get fewer iterations), never more than
    /// `self.iters` nor fewer than `self.min_iters`.
    pub fn for_size(self, size: usize, seconds: f64, budget_bytes: usize) -> Policy {
        let iters = self
            .iters
            .min((budget_bytes / size.max(1)).max(self.min_iters));
        Policy {
            warmup: self.warmup.min((iters / 10).max(1)),
            iters,
            seconds,
            ..self
        }
    }
}

/// Run `op` for warm-up, then time it; returns the samples in microseconds.
/// Stops at the first error.
pub fn measure<E>(p: Policy, mut op: impl FnMut() -> Result<(), E>) -> Result<Vec<f64>, E> {
    let start = Instant::now();
    let warm_limit = Duration::from_secs_f64((p.seconds / 4.0).min(2.0));
    for _ in 0..p.warmup {
        op()?;
        if start.elapsed() > warm_limit {
            break;
        }
    }
    let mut out = Vec::with_capacity(p.iters);
    let start = Instant::now();
    while out.len() < p.iters {
        let t = Instant::now();
        op()?;
        out.push(t.elapsed().as_secs_f64() * 1e6);
        let el = start.elapsed().as_secs_f64();
        if el >= p.hard_seconds || (el >= p.seconds && out.len() >= p.min_iters) {
            break;
        }
    }
    Ok(out)
}

/// `--name value` and `--name=value` options from the command line (the
/// second for values that may start with `-`, such as a token).
pub fn args() -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let Some(name) = k.strip_prefix("--") else {
            panic!("unexpected argument {k:?}");
        };
        if let Some((name, v)) = name.split_once('=') {
            out.insert(name.to_string(), v.to_string());
            continue;
        }
        let v = it
            .next()
            .unwrap_or_else(|| panic!("--{name} needs a value"));
        out.insert(name.to_string(), v);
    }
    out
}

/// The value of `--name`, parsed, or `default`.
pub fn arg<T: std::str::FromStr>(a: &HashMap<String, String>, name: &str, default: T) -> T {
    match a.get(name) {
        Some(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("--{name}: cannot parse {v:?}")),
        None => default,
    }
}

/// A comma-separated list of sizes.
pub fn sizes(a: &HashMap<String, String>) -> Vec<usize> {
    a.get("sizes")
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().parse().expect("--sizes: integers"))
                .collect()
        })
        .unwrap_or_default()
}

/// The policy from `--warmup --iters --seconds --min-iters --hard-seconds`.
pub fn policy(a: &HashMap<String, String>) -> Policy {
    Policy {
        warmup: arg(a, "warmup", 100),
        iters: arg(a, "iters", 2000),
        seconds: arg(a, "seconds", 5.0),
        min_iters: arg(a, "min-iters", 5),
        hard_seconds: arg(a, "hard-seconds", 30.0),
    }
}

/// Samples as a JSON array, 0.1 µs resolution.
pub fn json_samples(v: &[f64]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("{:.1}", x)).collect();
    format!("[{}]", items.join(","))
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `n` bytes of a fixed pseudo-random pattern (xorshift), so that nothing on
/// the path can compress them away.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}
