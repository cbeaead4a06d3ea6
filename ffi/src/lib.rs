//! # libsimplerpc
//!
//! The C ABI of simplerpc, for C, C++ and ctypes hosts. `include/simplerpc.h`
//! is generated from this crate by cbindgen (see `build.rs`).
//!
//! - [`error`]: `srpc_status`, the per-thread last error, the panic boundary.
//! - [`types`]: borrowed strings and bytes, owned buffers, calls and responses.
//! - [`executor`]: an executor made of C callbacks (`srpc_executor`).
//! - [`session`]: the sans-IO client and server sessions, for custom transports.
//! - [`server`]: the WebSocket server running a C executor.
//! - [`client`]: the client (over WebSocket or a stream socket).
//! - [`stream`]: the stream transport over a socket descriptor: serve one
//!   client with a C executor, or connect a client.
//! - [`msgpack`]: a msgpack writer and reader, and numpy arrays, for C hosts.
//! - [`trail`]: path trails and tuple keys as core decides them, for clients.
//! - [`values`]: large bins taken out of a value, for hosts that decode msgpack.
//! - [`version`]: the library's version, `srpc_version()`.
//!
//! Conventions follow rustls-ffi: `srpc_` names with the object first, a
//! status from every fallible function, out-parameters written only on
//! success, and no panic across the boundary.

#![allow(non_camel_case_types)] // C names: srpc_status, srpc_buf, ...
#![allow(clippy::missing_safety_doc)] // every unsafe fn documents its contract under "# Safety"

pub mod client;
pub mod error;
pub mod executor;
pub mod logging;
pub mod msgpack;
pub mod server;
pub mod session;
pub mod stream;
pub mod trail;
pub mod types;
pub mod values;
pub mod version;
