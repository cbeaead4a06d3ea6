//! Forward the library's log records (connects, disconnects, refused tokens)
//! to a host callback, e.g. Python's `logging`.

use std::ffi::c_void;
use std::sync::RwLock;

use crate::types::srpc_str;

/// Receives one log record: `level` is 1 (error) to 5 (trace); `target` names
/// the module; both strings are valid only during the call. Called from any
/// of the library's threads.
pub type srpc_log_fn = Option<
    unsafe extern "C" fn(userdata: *mut c_void, level: u32, target: srpc_str, message: srpc_str),
>;

struct Sink {
    f: unsafe extern "C" fn(*mut c_void, u32, srpc_str, srpc_str),
    userdata: *mut c_void,
}

// SAFETY: the host promises (header) that the callback and userdata may be
// used from any thread.
unsafe impl Send for Sink {}
// SAFETY: as above.
unsafe impl Sync for Sink {}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

thread_local! {
    /// Set while this thread runs the host's log callback: records logged
    /// from inside it are dropped, and it may not replace itself, so the
    /// lock is never taken twice on one thread.
    static IN_CALLBACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

struct Forward;

impl log::Log for Forward {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if IN_CALLBACK.with(|c| c.get()) {
            return;
        }
        let Ok(sink) = SINK.read() else { return };
        if let Some(s) = sink.as_ref() {
            let msg = record.args().to_string();
            let target = record.target();
            let as_str = |t: &str| srpc_str {
                ptr: t.as_ptr().cast(),
                len: t.len(),
            };
            // SAFETY: the host's callback; the strings live across the call.
            unsafe {
                (s.f)(
                    s.userdata,
                    record.level() as u32,
                    as_str(target),
                    as_str(&msg),
                )
            };
        }
    }

    fn flush(&self) {}
}

static FORWARD: Forward = Forward;

/// Send log records up to `max_level` (1 error .. 5 trace; 0 turns logging
/// off) to `callback`, or stop sending them with a NULL callback. Setting a
/// new callback replaces the old one; once this returns, the old one is no
/// longer called. If the process already has another Rust logger, records go
/// there instead and this does nothing. Calling it from inside the callback
/// does nothing either.
///
/// # Safety
/// `callback` and `userdata` must stay valid, and usable from any thread,
/// until they are replaced or removed.
#[no_mangle]
pub unsafe extern "C" fn srpc_set_log_callback(
    callback: srpc_log_fn,
    userdata: *mut c_void,
    max_level: u32,
) {
    if IN_CALLBACK.with(|c| c.get()) {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        let _ = log::set_logger(&FORWARD);
        let mut sink = SINK.write().unwrap_or_else(|p| p.into_inner());
        *sink = callback.map(|f| Sink { f, userdata });
        log::set_max_level(match (sink.is_some(), max_level) {
            (false, _) | (_, 0) => log::LevelFilter::Off,
            (_, 1) => log::LevelFilter::Error,
            (_, 2) => log::LevelFilter::Warn,
            (_, 3) => log::LevelFilter::Info,
            (_, 4) => log::LevelFilter::Debug,
            _ => log::LevelFilter::Trace,
        });
    });
}
