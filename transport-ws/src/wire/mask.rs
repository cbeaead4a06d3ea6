//! The masking of RFC 6455 §5.3: every byte XORed with one of a 4-byte key,
//! done eight bytes at a time.

/// XOR `buf` with `key`, where `buf[0]` is byte `offset` of the frame's
/// payload (so a payload may be unmasked in pieces as it arrives).
pub(crate) fn apply(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let k: [u8; 4] = std::array::from_fn(|i| key[(offset + i) % 4]);
    let word = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ word).to_ne_bytes());
    }
    // The chunks covered a multiple of 4 bytes: the key lines up again.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= k[i % 4];
    }
}

/// `dst = src` XOR `key`, where `src[0]` is byte `offset` of the frame's
/// payload: masking while copying (one pass over the source).
pub(crate) fn copy_masked(dst: &mut [u8], src: &[u8], key: [u8; 4], offset: usize) {
    assert_eq!(dst.len(), src.len());
    let k: [u8; 4] = std::array::from_fn(|i| key[(offset + i) % 4]);
    let word = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let mut w = [0u8; 8];
        w.copy_from_slice(s);
        d.copy_from_slice(&(u64::from_ne_bytes(w) ^ word).to_ne_bytes());
    }
    for (i, (d, s)) in d.into_remainder().iter_mut().zip(s.remainder()).enumerate() {
        *d = s ^ k[i % 4];
    }
}

/// Masking keys for the frames a client sends: unpredictable to anyone on
/// the path (RFC 6455 §5.3), from a seed the OS gives once per connection
/// and a SplitMix64 sequence after it, so a frame costs no system call.
pub(crate) struct KeySource(u64);

impl KeySource {
    /// A source seeded by the OS's random generator (the time and address
    /// of this value if that fails, which only weakens the masking).
    pub(crate) fn new() -> KeySource {
        let mut seed = [0u8; 8];
        if getrandom::fill(&mut seed).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            seed = (t ^ (&seed as *const _ as u64)).to_ne_bytes();
        }
        KeySource(u64::from_ne_bytes(seed))
    }

    /// The next key.
    pub(crate) fn next_key(&mut self) -> [u8; 4] {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let b = z.to_ne_bytes();
        [b[0], b[1], b[2], b[3]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn matches_the_bytewise_definition_at_any_offset_and_length() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for len in 0..40 {
            for offset in 0..9 {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut fast = data.clone();
                let mut bytewise = data.clone();
                apply(&mut fast, key, offset);
                slow(&mut bytewise, key, offset);
                assert_eq!(fast, bytewise, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn unmasking_in_pieces_equals_unmasking_at_once() {
        let key = [9, 8, 7, 6];
        let data: Vec<u8> = (0..1000).map(|i| (i % 251) as u8).collect();
        let mut whole = data.clone();
        apply(&mut whole, key, 0);
        let mut pieces = data.clone();
        let mut at = 0;
        for step in [1, 3, 8, 13, 100, 875] {
            apply(&mut pieces[at..at + step], key, at);
            at += step;
        }
        assert_eq!(at, 1000);
        assert_eq!(whole, pieces);
    }

    #[test]
    fn masking_while_copying_equals_masking_in_place() {
        let key = [0xa1, 0x02, 0xf3, 0x44];
        for len in 0..40 {
            for offset in 0..9 {
                let data: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
                let mut in_place = data.clone();
                apply(&mut in_place, key, offset);
                let mut copied = vec![0u8; len];
                copy_masked(&mut copied, &data, key, offset);
                assert_eq!(copied, in_place, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn keys_vary() {
        let mut k = KeySource::new();
        let a = k.next_key();
        let b = k.next_key();
        let c = k.next_key();
        assert!(a != b || b != c);
    }
}
