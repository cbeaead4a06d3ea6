//! The library's version, for hosts that check what they loaded.

use std::ffi::c_char;

/// The crate version as a NUL-terminated string literal.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The version of the loaded libsimplerpc ("0.2.0"): static, NUL-terminated,
/// never NULL; do not free. Compare it with SRPC_VERSION_MAJOR and friends
/// (the header's version) to catch a header and library that do not match.
/// The shared library's SONAME is `libsimplerpc.so.<major>`.
#[no_mangle]
pub extern "C" fn srpc_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// The major version of the library, as a number.
#[no_mangle]
pub extern "C" fn srpc_version_major() -> u32 {
    parse(env!("CARGO_PKG_VERSION_MAJOR"))
}

/// The minor version of the library, as a number.
#[no_mangle]
pub extern "C" fn srpc_version_minor() -> u32 {
    parse(env!("CARGO_PKG_VERSION_MINOR"))
}

/// The patch version of the library, as a number.
#[no_mangle]
pub extern "C" fn srpc_version_patch() -> u32 {
    parse(env!("CARGO_PKG_VERSION_PATCH"))
}

fn parse(s: &str) -> u32 {
    s.parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_crate_version() {
        // SAFETY: srpc_version() returns a static NUL-terminated string.
        let v = unsafe { std::ffi::CStr::from_ptr(srpc_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        let joined = format!(
            "{}.{}.{}",
            srpc_version_major(),
            srpc_version_minor(),
            srpc_version_patch()
        );
        assert_eq!(joined, env!("CARGO_PKG_VERSION"));
    }
}
