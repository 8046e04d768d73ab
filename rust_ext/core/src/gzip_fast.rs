//! The fast path for a gzip body: libdeflate inflates one whole member into a buffer sized by
//! the member's trailer (ISIZE), about twice as fast as a streaming inflater.
//!
//! It answers only when the body is exactly one member that inflates to its declared size with
//! a correct CRC; anything else (several members, a corrupt or truncated stream, a size above the
//! cap) is left to the streaming reader, which gives the reason.

use std::cell::RefCell;
use std::ptr::NonNull;

use libdeflate_sys::{
    libdeflate_alloc_decompressor, libdeflate_decompressor, libdeflate_free_decompressor,
    libdeflate_gzip_decompress_ex, libdeflate_result_LIBDEFLATE_SUCCESS,
};

/// Header (10 bytes) and trailer (CRC32, ISIZE) of the smallest gzip member.
const MIN_MEMBER: usize = 18;
/// DEFLATE cannot expand its input more than about 1032 times: a trailer declaring more lies,
/// and is not worth the allocation it asks for.
const MAX_RATIO: u64 = 1032;

/// One libdeflate decompressor (about 32 KB of tables), freed on drop.
struct Decompressor(NonNull<libdeflate_decompressor>);

impl Decompressor {
    fn new() -> Option<Self> {
        // SAFETY: takes no arguments; a null return (out of memory) is handled.
        NonNull::new(unsafe { libdeflate_alloc_decompressor() }).map(Self)
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: the pointer came from libdeflate_alloc_decompressor and is freed once.
        unsafe { libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

thread_local! {
    // A decompressor is not thread-safe and costs an allocation: one per thread, reused.
    static DECOMPRESSOR: RefCell<Option<Decompressor>> = const { RefCell::new(None) };
}

/// `body` inflated, when it is one gzip member of at most `max_bytes` inflated; `None` otherwise.
pub fn inflate_single_member(body: &[u8], max_bytes: u64) -> Option<Vec<u8>> {
    let trailer: [u8; 4] = body.get(body.len().checked_sub(4)?..)?.try_into().ok()?;
    let declared = u32::from_le_bytes(trailer);
    let most = max_bytes.min((body.len() as u64).saturating_mul(MAX_RATIO));
    if body.len() < MIN_MEMBER || declared == 0 || u64::from(declared) > most {
        return None;
    }
    let capacity = usize::try_from(declared).ok()?;
    let mut out: Vec<u8> = Vec::with_capacity(capacity);
    let (mut read, mut written) = (0usize, 0usize);
    let result = DECOMPRESSOR.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        if slot.is_none() {
            *slot = Decompressor::new();
        }
        let decompressor = slot.as_ref()?;
        // SAFETY: `body` is readable for body.len() bytes and `out` writable for `capacity`
        // bytes; libdeflate writes at most `capacity` bytes and reports how many it read and
        // wrote through the two pointers, which point at live locals.
        Some(unsafe {
            libdeflate_gzip_decompress_ex(
                decompressor.0.as_ptr(),
                body.as_ptr().cast(),
                body.len(),
                out.as_mut_ptr().cast(),
                capacity,
                &mut read,
                &mut written,
            )
        })
    })?;
    if result != libdeflate_result_LIBDEFLATE_SUCCESS || read != body.len() || written != capacity {
        return None;
    }
    // SAFETY: libdeflate initialised exactly `written` (= capacity) bytes of `out`.
    unsafe { out.set_len(written) };
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inflate::gzip;

    #[test]
    fn one_member_is_inflated() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        assert_eq!(inflate_single_member(&gzip(&data), u64::MAX), Some(data));
    }

    #[test]
    fn everything_else_is_left_to_the_streaming_reader() {
        let member = gzip(b"{\"data\":{}}");
        // Two members, even identical ones (the trailer's size then matches the first alone).
        let two = [member.clone(), member.clone()].concat();
        assert_eq!(inflate_single_member(&two, u64::MAX), None);
        // A corrupt CRC, a truncated stream, a size above the cap, an empty member, not gzip.
        let mut bad_crc = member.clone();
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 1;
        assert_eq!(inflate_single_member(&bad_crc, u64::MAX), None);
        assert_eq!(inflate_single_member(&member[..member.len() - 1], u64::MAX), None);
        assert_eq!(inflate_single_member(&member, 4), None);
        assert_eq!(inflate_single_member(&gzip(b""), u64::MAX), None);
        assert_eq!(inflate_single_member(b"not gzip at all, not at all", u64::MAX), None);
        assert_eq!(inflate_single_member(b"", u64::MAX), None);
    }

    #[test]
    fn a_lying_trailer_is_refused() {
        let mut member = gzip(b"{\"data\":{\"race\":{}}}");
        let at = member.len() - 4;
        member[at] = member[at].wrapping_add(1);
        assert_eq!(inflate_single_member(&member, u64::MAX), None);
    }
}
