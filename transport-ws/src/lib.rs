//! # simplerpc-ws
//!
//! simplerpc over WebSocket: drives the sans-IO engine of
//! [`simplerpc_core`] with [tungstenite], blocking I/O and plain threads (no
//! async runtime). It speaks the reference `simplerpyc` protocol, so a stock
//! client can use this server and this client can use a stock server;
//! between two simplerpc peers the extensions (object release, request ids)
//! are negotiated in the handshake header
//! [`simplerpc_core::extensions::HEADER`].
//!
//! - [`Server`]: listens, checks the token before the upgrade (HTTP 401
//!   otherwise), gives each client an executor of its own on a worker thread.
//! - [`Client`]: one connection, shareable between threads; raw
//!   [`Client::request`] and [`Client::pipeline`], and [`Proxy`] objects on top.
//! - [`token`]: the authentication token, made, carried in an
//!   `Authorization: Bearer` header (or, from a stock client, the request
//!   target's `?token=` query) and checked.
//! - TLS (`wss://`) with rustls: [`ServerConfig::certfile`] and
//!   [`ServerConfig::keyfile`] on a server, [`ClientConfig::tls`] and
//!   [`ClientConfig::cafile`] on a client.
//!
//! A Rust server with a registry function that takes and returns an array,
//! and a client that calls it (the examples on [`Client::connect`],
//! [`Proxy::call`], [`Proxy::materialize`], [`Client::pipeline`] and
//! [`Proxy`] itself, for pipelining, each run the same way):
//!
//! ```
//! use std::sync::Arc;
//! use simplerpc_registry::{Module, Registry};
//! use simplerpc_ws::ndarray::{array, Array2};
//! use simplerpc_ws::{Client, ClientConfig, Server, ServerConfig};
//!
//! let registry = Arc::new(Registry::new().module(
//!     Module::new("demo").function("scale", |a: Array2<f64>, k: f64| a * k),
//! ));
//! let server = Server::bind(
//!     ServerConfig { host: "127.0.0.1".into(), port: 0, ..ServerConfig::default() },
//!     move |_: &simplerpc_ws::ClientInfo| registry.executor(), // one per client
//! )?
//! .spawn()?;
//! let client = Client::connect(&ClientConfig::new(
//!     "127.0.0.1",
//!     server.local_addr().port(),
//!     server.token(),
//! ))?;
//! let scale = client.module("demo")?.getattr("scale")?;
//! let doubled: Array2<f64> = scale.call((array![[1.0, 2.0], [3.0, 4.0]], 2.0))?.materialize_as()?;
//! assert_eq!(doubled, array![[2.0, 4.0], [6.0, 8.0]]);
//! # drop((scale, client));
//! server.shutdown();
//! # Ok::<(), simplerpc_ws::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
pub mod config;
mod connection;
mod error;
mod handshake;
mod proxy;
mod server;
mod spin;
mod tls;
pub mod token;
mod wire;

/// The TLS record layer for the fuzz target `tls_records` (feature
/// `fuzzing`): not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use tls::fuzzing;

pub use client::Client;
pub use config::{ClientConfig, ServerConfig};
pub use error::Error;
pub use proxy::Proxy;
pub use server::{ClientInfo, RunningServer, Server, ShutdownHandle};
/// The `ndarray` version values convert to and from (core's): use it
/// through this re-export to match it.
pub use simplerpc_core::ndarray;
pub use simplerpc_core::typed::{IntoArgs, IntoKwargs};
pub use simplerpc_core::{
    from_value, to_value, ConvertError, Extensions, NdArray, NdArrayExt, ObjId, RemoteError,
    Request, Response, SessionStats, Value,
};
