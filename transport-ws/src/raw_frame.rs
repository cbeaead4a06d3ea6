//! Writing a large binary message as one WebSocket frame straight to the
//! socket, past tungstenite's write buffer: that buffer keeps the size of the
//! largest message it ever held for the connection's life, so one 1 GiB
//! answer would keep 1 GiB until the client leaves.
//!
//! Only for frames that need no masking (a server's), and only while
//! tungstenite has nothing buffered and is not used until the frame is out:
//! the caller holds the socket for the whole write.

use std::io::{self, IoSlice, Write};
use std::time::{Duration, Instant};

/// How long a write may make no progress before the peer counts as gone.
pub(crate) const STALL_LIMIT: Duration = Duration::from_secs(30);

/// The header of one unmasked, final binary frame of `len` bytes.
pub(crate) fn header(len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x82; // FIN, binary
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if len <= 0xffff {
        h[1] = 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

/// Write the frame carrying `payload`: header and payload handed to the
/// kernel together (a vectored write), the payload never copied. A socket
/// write timeout only makes it try again; no progress for [`STALL_LIMIT`],
/// or `stop()` turning true while the peer does not read, is an error (the
/// frame is then cut short: the connection must end).
pub(crate) fn write_binary<W: Write>(
    w: &mut W,
    payload: &[u8],
    stop: &dyn Fn() -> bool,
) -> io::Result<()> {
    let (h, hlen) = header(payload.len());
    let head = &h[..hlen];
    let total = hlen + payload.len();
    let mut done = 0;
    let mut last_progress = Instant::now();
    while done < total {
        let result = if done < hlen {
            w.write_vectored(&[IoSlice::new(&head[done..]), IoSlice::new(payload)])
        } else {
            w.write(&payload[done - hlen..])
        };
        match result {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the socket took nothing",
                ))
            }
            Ok(n) => {
                done += n;
                last_progress = Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if stop() {
                    return Err(io::Error::new(
                        io::ErrorKind::Interrupted,
                        "the server is shutting down",
                    ));
                }
                if last_progress.elapsed() >= STALL_LIMIT {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the peer read nothing for {} s", STALL_LIMIT.as_secs()),
                    ));
                }
            }
            Err(e) => return Err(e),
        }
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::Role;
    use tungstenite::{Message, WebSocket};

    /// A frame written here is read back by tungstenite as the same message.
    #[test]
    fn tungstenite_reads_what_it_writes() {
        for len in [0usize, 5, 125, 126, 65535, 65536, 300_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut wire = Vec::new();
            write_binary(&mut wire, &payload, &|| false).unwrap();
            let mut ws = WebSocket::from_raw_socket(std::io::Cursor::new(wire), Role::Client, None);
            match ws.read().unwrap() {
                Message::Binary(got) => assert_eq!(got.as_ref(), payload.as_slice(), "{len}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
