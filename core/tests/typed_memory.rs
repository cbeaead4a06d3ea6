//! Memory a typed read of a peer's array takes: about the result's own,
//! not a `Value` per element first (some forty times the array's bytes for
//! `u8`, from a frame the peer sized).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use simplerpc_core::{from_value, ByteOrder, Bytes, DType, NdArray, Value};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(live, Ordering::SeqCst);
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: allocated above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn a_large_array_reads_as_a_vec_without_a_value_per_element() {
    let n = 4 << 20;
    let a = NdArray::new(
        DType::UInt8,
        ByteOrder::NotApplicable,
        vec![n],
        Bytes::from(vec![7u8; n]),
    )
    .unwrap();
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let v: Vec<u8> = from_value(Value::Array(a)).unwrap();
    let extra = PEAK.load(Ordering::SeqCst) - base;
    assert_eq!(v.len(), n);
    assert!(v.iter().all(|&b| b == 7));
    // The Vec<u8> itself, plus room: far below a Value per element.
    assert!(
        extra < 4 * n,
        "reading {n} bytes took {extra} bytes at the peak"
    );
}
