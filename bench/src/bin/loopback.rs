//! The loopback floor: what TCP on 127.0.0.1 costs between two threads of
//! one process, with nothing else on the path. Every RPC number of the
//! harness sits on top of this.
//!
//! ```text
//! bench-loopback [--sizes 8,32,...] [--iters 2000] [--seconds 5] [--sweep-seconds 2]
//!                [--budget-bytes N] [--bulk-bytes 1073741824] [--bulk-write 1048576] [--bulk-reps 3]
//! ```
//! Prints one JSON object: `rtt_1b` (samples of a 1-byte ping-pong, µs),
//! `bulk` (seconds to push `bulk_bytes` in `bulk_write`-byte writes, then get
//! an acknowledgement), and per size `down_*` (1 byte out, N bytes back) and
//! `up_*` (N bytes out, 1 byte back), samples in µs. TCP_NODELAY on both ends.
//!
//! Where the two threads run decides the result: a wakeup across CPUs costs
//! far more than one on the same CPU, and unpinned threads (like every RPC
//! peer's) land wherever the scheduler puts them. So the 1-byte ping-pong is
//! timed unpinned (`rtt_1b`), with both threads pinned to one CPU
//! (`rtt_1b_same_cpu`) and to two (`rtt_1b_cross_cpu`), and the sweep pinned
//! both ways (`down_same_cpu`, `down_cross_cpu`, `up_same_cpu`, `up_cross_cpu`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use simplerpc_bench::{arg, args, json_samples, measure, noise, policy, sizes};

/// Pin the calling thread to `cpu`, or let it run anywhere (`None`).
fn pin(cpu: Option<usize>) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside
    // it; sched_setaffinity(0, ..) only reads it and applies to this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let all = std::thread::available_parallelism().map_or(1, |n| n.get());
        for c in 0..all {
            if cpu.map_or(true, |want| want == c) {
                libc::CPU_SET(c, &mut set);
            }
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn serve(mut s: TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut head = [0u8; 10];
    s.read_exact(&mut head)?;
    let n = u64::from_le_bytes(head[1..9].try_into().expect("8 bytes")) as usize;
    pin((head[9] != 0xff).then_some(head[9] as usize));
    if buf.len() < n {
        buf.resize(n, 0x5a);
    }
    let mut one = [0u8; 1];
    match head[0] {
        // 1-byte ping-pong
        b'e' => loop {
            if s.read(&mut one)? == 0 {
                return Ok(());
            }
            s.write_all(&one)?;
        },
        // down: 1 byte in, n bytes out
        b'd' => loop {
            if s.read(&mut one)? == 0 {
                return Ok(());
            }
            s.write_all(&buf[..n])?;
        },
        // up: n bytes in, 1 byte out
        b'u' => loop {
            match s.read_exact(&mut buf[..n]) {
                Ok(()) => s.write_all(&one)?,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        },
        // bulk: count everything until EOF, then say how much
        b'b' => {
            let mut total = 0u64;
            loop {
                let k = s.read(&mut buf[..])?;
                if k == 0 {
                    break;
                }
                total += k as u64;
            }
            s.write_all(&total.to_le_bytes())
        }
        m => panic!("unknown mode {m}"),
    }
}

/// A connection whose server thread works in `mode` with `n` bytes, pinned
/// to `cpu` if given.
fn open(addr: std::net::SocketAddr, mode: u8, n: usize, cpu: Option<usize>) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect to 127.0.0.1");
    s.set_nodelay(true).expect("TCP_NODELAY");
    let mut head = [mode; 10];
    head[1..9].copy_from_slice(&(n as u64).to_le_bytes());
    head[9] = cpu.map_or(0xff, |c| c as u8);
    s.write_all(&head).expect("write header");
    s
}

fn main() {
    let a = args();
    let p = policy(&a);
    let sweep_seconds: f64 = arg(&a, "sweep-seconds", 2.0);
    let budget: usize = arg(&a, "budget-bytes", 1 << 30);
    let bulk_bytes: usize = arg(&a, "bulk-bytes", 1 << 30);
    let bulk_write: usize = arg(&a, "bulk-write", 1 << 20);
    let bulk_reps: usize = arg(&a, "bulk-reps", 3);

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 20];
                let _ = serve(s, &mut buf);
            });
        }
    });

    let mut out = Vec::new();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut placements = vec![
        ("rtt_1b", None, None),
        ("rtt_1b_same_cpu", Some(0), Some(0)),
    ];
    if cpus > 1 {
        placements.push(("rtt_1b_cross_cpu", Some(0), Some(1)));
    }
    for (name, mine, theirs) in placements {
        pin(mine);
        let mut s = open(addr, b'e', 0, theirs);
        let mut one = [7u8; 1];
        let rtt = measure(p, || -> std::io::Result<()> {
            s.write_all(&one)?;
            s.read_exact(&mut one)
        })
        .expect("1-byte ping-pong");
        out.push(format!("\"{name}\":{}", json_samples(&rtt)));
    }
    pin(None);

    let data = noise(bulk_write, 1);
    let mut secs = Vec::new();
    let started = Instant::now();
    for _ in 0..bulk_reps {
        let mut s = open(addr, b'b', 0, None);
        let t = Instant::now();
        let mut left = bulk_bytes;
        while left > 0 {
            let k = left.min(bulk_write);
            s.write_all(&data[..k]).expect("bulk write");
            left -= k;
        }
        s.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let mut ack = [0u8; 8];
        s.read_exact(&mut ack).expect("bulk ack");
        secs.push(t.elapsed().as_secs_f64());
        assert_eq!(u64::from_le_bytes(ack), bulk_bytes as u64);
        if started.elapsed().as_secs_f64() > p.hard_seconds {
            break;
        }
    }
    let secs: Vec<String> = secs.iter().map(|x| format!("{x:.6}")).collect();
    out.push(format!(
        "\"bulk\":{{\"bytes\":{bulk_bytes},\"write_size\":{bulk_write},\"seconds\":[{}]}}",
        secs.join(",")
    ));

    let sizes = sizes(&a);
    let max = sizes.iter().copied().max().unwrap_or(1);
    let payload = noise(max, 2);
    let mut buf = vec![0u8; max];
    let mut sweeps = vec![("same_cpu", Some(0), Some(0))];
    if cpus > 1 {
        sweeps.push(("cross_cpu", Some(0), Some(1)));
    }
    for (placement, mine, theirs) in sweeps {
        pin(mine);
        for (dir, mode) in [("down", b'd'), ("up", b'u')] {
            let mut per = Vec::new();
            for &n in &sizes {
                let mut s = open(addr, mode, n, theirs);
                let samples = measure(p.for_size(n, sweep_seconds, budget), || {
                    if mode == b'd' {
                        s.write_all(&[1])?;
                        s.read_exact(&mut buf[..n])
                    } else {
                        s.write_all(&payload[..n])?;
                        s.read_exact(&mut buf[..1])
                    }
                })
                .expect("sweep");
                per.push(format!("\"{n}\":{}", json_samples(&samples)));
            }
            out.push(format!("\"{dir}_{placement}\":{{{}}}", per.join(",")));
        }
    }
    pin(None);
    println!("{{{}}}", out.join(","));
}
