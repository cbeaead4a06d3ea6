//! srpc_server_serve_fd() through the C ABI: what it does with what it was
//! handed when it cannot serve.

use std::ffi::c_void;
use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};

use simplerpc::error::{srpc_status, srpc_status_in};
use simplerpc::executor::{srpc_executor, srpc_reply};
use simplerpc::stream::srpc_server_serve_fd;
use simplerpc::types::srpc_call;

unsafe extern "C" fn never_called(
    _userdata: *mut c_void,
    _session: *mut c_void,
    _call: *const srpc_call,
    _reply: *mut srpc_reply,
) -> srpc_status_in {
    unreachable!("no client, no call")
}

/// Counts its calls in the AtomicUsize `userdata` points to.
unsafe extern "C" fn count_free(userdata: *mut c_void) {
    // SAFETY: the test's AtomicUsize, alive for the test.
    unsafe { &*(userdata as *const AtomicUsize) }.fetch_add(1, Ordering::SeqCst);
}

/// The header says the userdata is freed before srpc_server_serve_fd()
/// returns, as the fd is closed, "in every case": also when the fd is no
/// socket (the host then has no other moment to free it).
#[test]
fn serve_fd_frees_the_userdata_when_the_fd_is_refused() {
    let freed = AtomicUsize::new(0);
    let ex = srpc_executor {
        userdata: &freed as *const AtomicUsize as *mut c_void,
        open: None,
        close: None,
        call: Some(never_called),
        release: None,
        free_userdata: Some(count_free),
    };
    let file = std::fs::File::open("/dev/null").unwrap();
    for (fd, what) in [(file.into_raw_fd(), "a file"), (-1, "no fd")] {
        let before = freed.load(Ordering::SeqCst);
        // SAFETY: a valid executor; the fd (if any) is handed over.
        let st = unsafe { srpc_server_serve_fd(std::ptr::null(), &ex, fd) };
        assert_eq!(st, srpc_status::SrpcStatusErrInvalidArgument, "{what}");
        assert_eq!(
            freed.load(Ordering::SeqCst),
            before + 1,
            "{what}: userdata freed once"
        );
    }
}
