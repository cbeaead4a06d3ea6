//! Closing a WebSocket politely, the same way on both sides: send a close
//! frame, then read (answering nothing more) until the peer's close frame
//! completes the handshake, the socket fails, or a grace period runs out.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use tungstenite::protocol::CloseFrame;
use tungstenite::WebSocket;

use crate::error::would_block;

/// How long closing waits for the peer's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// The socket read timeout while waiting: how often a close frame that the
/// socket would not take yet is flushed again.
pub(crate) const CLOSE_POLL: Duration = Duration::from_millis(10);

/// Send `frame` (a bare close when `None`) and wait up to [`CLOSE_GRACE`]
/// for the peer's answer. Never fails: a connection that breaks meanwhile is
/// closed anyway.
///
/// Leaves the socket's read timeout at [`CLOSE_POLL`] and records that in
/// `read_timeout`, the caller's copy of it.
pub(crate) fn close_with_grace(
    ws: &mut WebSocket<TcpStream>,
    frame: Option<CloseFrame>,
    read_timeout: &mut Option<Duration>,
) {
    match ws.close(frame) {
        Ok(()) => {}
        // Buffered; it goes out with a flush below.
        Err(e) if would_block(&e) => {}
        Err(_) => return,
    }
    if ws.get_ref().set_read_timeout(Some(CLOSE_POLL)).is_err() {
        return;
    }
    *read_timeout = Some(CLOSE_POLL);
    let deadline = Instant::now() + CLOSE_GRACE;
    while Instant::now() < deadline {
        match ws.read() {
            // Whatever else arrives meanwhile is dropped.
            Ok(_) => {}
            Err(e) if would_block(&e) => {
                let _ = ws.flush();
            }
            // The peer answered (ConnectionClosed) or the socket failed.
            Err(_) => return,
        }
    }
}
