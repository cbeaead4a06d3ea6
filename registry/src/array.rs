//! Rust element types and `ndarray` conversions for protocol arrays
//! (they live in `simplerpc_core`, re-exported here).
//!
//! The protocol's [`NdArray`] is a dtype, a shape and bytes; this module says
//! which Rust types those bytes can be read as ([`Element`]) and converts
//! between [`NdArray`] and `ndarray` arrays ([`NdArrayExt`]), copying only
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

use ndarray::ArrayViewD;
use simplerpc_core::{ArrayError, NdArray};

/// A typed, read-only n-d array argument over memory it shares: a registry
/// function that takes `NdView<f32>` gets the client's array where it lies
/// in the received frame, without a copy, and reads it through
/// [`NdView::view`] (an `ndarray` view) or [`NdView::as_slice`]. Only data
/// that cannot be read in place (another byte order, or not aligned for
/// `T`) is copied, once, when the argument is made. Returned as a value, it
/// goes into the answer frame without a copy too. A function that needs to
/// change the array takes `ndarray::ArrayD<T>` (one copy) instead.
///
/// ```
/// use simplerpc_core::NdArray;
/// use simplerpc_registry::{NdArrayExt, NdView};
///
/// let a = NdArray::from_vec(vec![2, 2], vec![1.0f64, 2.0, 3.0, 4.0]).unwrap();
/// let v = NdView::<f64>::new(a).unwrap();
/// assert_eq!(v.view().sum(), 10.0);
/// assert_eq!(v.shape(), &[2, 2]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NdView<T: Element> {
    array: NdArray,
    _element: std::marker::PhantomData<T>,
}

impl<T: Element> NdView<T> {
    /// `array` as elements of `T`: shared when they can be read in place,
    /// else copied once into native order and aligned memory. Fails when
    /// the array holds another dtype (or a bool array a byte other than 0
    /// or 1), or when memory for a needed copy cannot be had.
    pub fn new(array: NdArray) -> Result<Self, ArrayError> {
        let array = match array.view::<T>() {
            Ok(_) => array,
            Err(ArrayError::NotViewable(_)) => {
                NdArray::from_vec(array.shape().to_vec(), array.to_vec::<T>()?)?
            }
            Err(e) => return Err(e),
        };
        Ok(NdView {
            array,
            _element: std::marker::PhantomData,
        })
    }

    /// The elements as an `ndarray` view (C order), without a copy.
    pub fn view(&self) -> ArrayViewD<'_, T> {
        self.array
            .view::<T>()
            .expect("checked viewable when the NdView was made")
    }

    /// The elements in C order, without a copy.
    pub fn as_slice(&self) -> &[T] {
        let data = self.array.data();
        // SAFETY: `new` made sure the data is `T`s in native order, aligned
        // for `T` and valid bit patterns (`NdArrayExt::view` checked it, or
        // the data is a `Vec<T>` of our own); its length is `len` elements
        // (checked by `NdArray::new`), and it lives as long as `&self`.
        unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<T>(), self.array.len()) }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.array.shape()
    }

    /// The protocol array underneath (shares the memory).
    pub fn as_ndarray(&self) -> &NdArray {
        &self.array
    }

    /// Take the protocol array out (no copy).
    pub fn into_inner(self) -> NdArray {
        self.array
    }
}

impl<T: Element> From<NdView<T>> for simplerpc_core::Value {
    fn from(v: NdView<T>) -> Self {
        simplerpc_core::Value::Array(v.array)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use simplerpc_core::DType;

    #[test]
    fn a_view_shares_aligned_native_data_and_copies_the_rest_once() {
        let a = NdArray::from_vec(vec![2, 3], vec![1i32, 2, 3, 4, 5, 6]).unwrap();
        let ptr = a.data().as_ptr();
        let v = NdView::<i32>::new(a.clone()).unwrap();
        assert_eq!(v.as_slice().as_ptr().cast::<u8>(), ptr, "no copy");
        assert_eq!(v.view(), a.to_ndarray::<i32>().unwrap().view());
        assert!(matches!(
            NdView::<i64>::new(a),
            Err(ArrayError::WrongType { .. })
        ));
        // Unaligned: one byte in.
        let bytes = Bytes::from(vec![0u8, 1, 0, 0, 0, 2, 0, 0, 0]).slice(1..);
        let u = NdArray::new(
            DType::Int32,
            simplerpc_core::ByteOrder::Little,
            vec![2],
            bytes,
        )
        .unwrap();
        assert_eq!(NdView::<i32>::new(u).unwrap().as_slice(), &[1, 2]);
        // Big-endian: swapped.
        let b = NdArray::new(
            DType::Int32,
            simplerpc_core::ByteOrder::Big,
            vec![2],
            Bytes::from_static(&[0, 0, 0, 1, 0, 0, 1, 0]),
        )
        .unwrap();
        assert_eq!(NdView::<i32>::new(b).unwrap().as_slice(), &[1, 256]);
        let bad = NdArray::new(
            DType::Bool,
            simplerpc_core::ByteOrder::NotApplicable,
            vec![1],
            Bytes::from_static(&[2]),
        )
        .unwrap();
        assert_eq!(NdView::<bool>::new(bad), Err(ArrayError::InvalidBool));
    }
}
