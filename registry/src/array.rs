//! Rust element types and `ndarray` conversions for protocol arrays
//! (they live in `simplerpc_core`, re-exported here).
//!
//! The protocol's [`NdArray`](simplerpc_core::NdArray) is a dtype, a shape and bytes; this module says
//! which Rust types those bytes can be read as ([`Element`]) and converts
//! between `NdArray` and `ndarray` arrays ([`NdArrayExt`]), copying only
//! where it must (a byte swap, or a misaligned or non-contiguous source).
//!
//! Bring the trait into scope and the conversions read as methods:
//!
//! ```
//! use simplerpc_registry::NdArrayExt;
//! use simplerpc_core::NdArray;
//!
//! let a = NdArray::from_vec(vec![2, 2], vec![1.0f64, 2.0, 3.0, 4.0]).unwrap();
//! assert_eq!(a.to_vec::<f64>().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
//! ```

pub use simplerpc_core::element::{Element, NdArrayExt};
