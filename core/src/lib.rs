//! # simplerpc-core
//!
//! The sans-IO protocol engine of simplerpc: remote calls where every result is
//! a lazy proxy and the user decides when data crosses the wire.
//!
//! Bytes in, bytes out, decisions in between: nothing here opens a socket,
//! spawns a thread, reads a clock or touches a file. A transport moves frames;
//! this crate decides what they mean.
//!
//! - [`value`] and [`array`](mod@array): what the protocol carries ([`Value`], [`NdArray`]).
//! - [`element`] and [`typed`]: Rust types to and from values: [`Element`]
//!   types and `ndarray` arrays ([`NdArrayExt`], `TryFrom<Value>`), and any
//!   serde type ([`to_value`], [`from_value`]).
//! - [`codec`]: msgpack + msgpack-numpy, byte-compatible with `simplerpyc`.
//! - [`message`]: requests, responses and their frames.
//! - [`extensions`]: what we add to the reference protocol, and its negotiation.
//! - [`server`]: [`ServerSession`], one per connected client, over an [`Executor`].
//! - [`client`]: [`ClientSession`], one per connection.
//! - [`trail`]: what every client adds to a request: path trails, tuple keys.
//! - [`pool`]: buffers of large incoming frames, kept for the next ones (the
//!   memory every transport reads into; no I/O).

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod array;
pub mod client;
pub mod codec;
mod complex;
pub mod element;
pub mod executor;
pub mod extensions;
pub mod message;
pub mod pool;
pub mod server;
pub mod trail;
pub mod typed;
pub mod value;

pub use element::{Element, NdArrayExt};
/// The `ndarray` version values convert to and from: use it through this
/// re-export to match it.
pub use ndarray;
pub use typed::{from_value, to_value, ConvertError};

pub use array::{ArrayError, ByteOrder, DType, NdArray};
pub use bytes::Bytes;
pub use client::{ClientError, ClientSession, RequestId};
pub use executor::{Arguments, ExecError, ExecResult, Executor, Key, Target};
pub use extensions::Extensions;
pub use message::{
    BorrowedFrame, Cause, OutFrame, Raw, RawRequest, RemoteError, Request, Response, SessionStats,
    SplicedFrame,
};
pub use server::ServerSession;
pub use value::{Handle, ObjId, RawValue, Scalar, Slice, Value};
