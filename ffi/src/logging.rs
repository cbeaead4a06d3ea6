//! Forward the library's log records (connects, disconnects, refused tokens)
//! to a host callback, e.g. Python's `logging`.

use std::ffi::c_void;
use std::sync::RwLock;

use crate::types::srpc_str;

/// How much the library logs, from nothing to everything.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum srpc_log_level {
    /// Nothing (as a `max_level`; no record has this level).
    SrpcLogLevelOff = 0,
    /// Failures the library could not hide (a client's connection broke).
    SrpcLogLevelError = 1,
    /// Something looks wrong (a refused token, an executor that refused a session).
    SrpcLogLevelWarn = 2,
    /// Connects and disconnects.
    SrpcLogLevelInfo = 3,
    /// Details for debugging.
    SrpcLogLevelDebug = 4,
    /// Everything.
    SrpcLogLevelTrace = 5,
}

/// An srpc_log_level as C hands it in: any `uint32_t` (above
/// SRPC_LOG_LEVEL_TRACE means TRACE). The header calls it `srpc_log_level`.
pub type srpc_log_level_in = u32;

/// Receives one log record: its `level` (SRPC_LOG_LEVEL_ERROR to
/// SRPC_LOG_LEVEL_TRACE); `target` names the module; both strings are valid
/// only during the call. Called from any of the library's threads.
pub type srpc_log_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        level: srpc_log_level,
        target: srpc_str,
        message: srpc_str,
    ),
>;

struct Sink {
    f: unsafe extern "C" fn(*mut c_void, srpc_log_level, srpc_str, srpc_str),
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
                    match record.level() {
                        log::Level::Error => srpc_log_level::SrpcLogLevelError,
                        log::Level::Warn => srpc_log_level::SrpcLogLevelWarn,
                        log::Level::Info => srpc_log_level::SrpcLogLevelInfo,
                        log::Level::Debug => srpc_log_level::SrpcLogLevelDebug,
                        log::Level::Trace => srpc_log_level::SrpcLogLevelTrace,
                    },
                    as_str(target),
                    as_str(&msg),
                )
            };
        }
    }

    fn flush(&self) {}
}

static FORWARD: Forward = Forward;

/// Send log records up to `max_level` (SRPC_LOG_LEVEL_OFF turns logging off)
/// to `callback`, or stop sending them with a NULL callback. Setting a
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
    max_level: srpc_log_level_in,
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
