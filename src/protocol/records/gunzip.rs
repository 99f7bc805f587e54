//! Reading gzip (RFC 1952) members: a batch's records section compressed with gzip is one member, or
//! several concatenated.
//!
//! The inflate state (its 32 KiB window and tables) is made once per thread and reset between members,
//! not set up per batch, and the output buffer is allocated once at the size the last member's trailer
//! declares (ISIZE), within bounds: a batch decompresses into a buffer of its own size, without the
//! slack of a buffer grown by doubling, which its records keep alive while they are worked on. (So
//! every thread that decoded a gzip batch keeps an inflate state, ~46 KiB, while it lives.)

use std::cell::RefCell;

use flate2::{Crc, Decompress, FlushDecompress, Status};

use super::compression::DecompressError;

thread_local! {
    /// This thread's inflate state (raw deflate), reset before each member.
    static INFLATE: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

#[cfg(test)]
thread_local! {
    /// How many inflate states this thread has set up (for tests of their reuse).
    pub(super) static INFLATE_SETUPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The most deflate can expand: a 258-byte match costs at least 2 bits, so about 1,032 to 1 (zlib's
/// bound); a trailer declaring more than this times the input is not believed for the first buffer.
const MAX_RATIO: usize = 1032;

/// The first buffer's size when the trailer cannot be used (less than 8 bytes of input).
const MIN_GUESS: usize = 4 * 1024;

/// How far the trailer is believed for the first buffer: up to this many times the input, or
/// [`BELIEVED_FLOOR`] bytes, whichever is more. Event batches compress a few times; a claim beyond this
/// (a lie, or a batch of very repetitive data) starts the buffer at this size, and it grows as real
/// output arrives, so a trailer cannot reserve much more memory than its input could expand to.
const BELIEVED_RATIO: usize = 64;
const BELIEVED_FLOOR: usize = 1 << 20;

/// The gzip header's flags.
const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
/// Flag bits RFC 1952 reserves: a member that sets one is refused.
const RESERVED: u8 = 0xE0;

/// Decompresses the gzip members of `input` into a new buffer of at most `limit` bytes.
pub(super) fn gunzip(input: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    // Only a gzip member gets a buffer sized from its trailer.
    skip_header(input)?;
    // The first size is a guess (the trailer may lie): refused, it is a small one.
    let mut out = Vec::new();
    if out.try_reserve_exact(first_capacity(input, limit)).is_err() {
        out.reserve_exact(MIN_GUESS);
    }
    let members = |inflate: &mut Decompress, out: &mut Vec<u8>| {
        let mut rest = input;
        loop {
            rest = member(inflate, rest, out, limit)?;
            if rest.is_empty() {
                return Ok(());
            }
        }
    };
    let on_this_thread = INFLATE.try_with(|cell| -> Result<(), DecompressError> {
        let mut slot = cell.borrow_mut();
        let inflate = match &mut *slot {
            Some(inflate) => inflate,
            other => {
                #[cfg(test)]
                INFLATE_SETUPS.with(|n| n.set(n.get() + 1));
                other.insert(Decompress::new(false))
            }
        };
        members(inflate, &mut out)
    });
    match on_this_thread {
        Ok(result) => result?,
        // The thread's locals are being torn down: a state of its own for this batch.
        Err(_) => members(&mut Decompress::new(false), &mut out)?,
    }
    Ok(out)
}


/// The output buffer's first capacity: the last member's declared size (ISIZE, its last 4 bytes) when
/// it is plausible for the input's length, never more than [`BELIEVED_RATIO`] times the input (or
/// [`BELIEVED_FLOOR`]) nor `limit` (plus the byte that tells "too large" from "exactly full").
fn first_capacity(input: &[u8], limit: usize) -> usize {
    let declared = input
        .len()
        .checked_sub(4)
        .and_then(|at| input.get(at..))
        .and_then(|b| b.first_chunk::<4>())
        .map(|b| u32::from_le_bytes(*b) as usize);
    let most = input.len().saturating_mul(MAX_RATIO);
    let believed = input.len().saturating_mul(BELIEVED_RATIO).max(BELIEVED_FLOOR);
    let guess = match declared {
        // A single member's trailer is exact; several members' output is at least the last's.
        Some(declared) if declared <= most => declared.min(believed),
        _ => input.len().saturating_mul(4).max(MIN_GUESS),
    };
    guess.min(limit.saturating_add(1))
}

/// Reads one member at the start of `input`, appending its output to `out`; returns what follows it.
fn member<'a>(
    inflate: &mut Decompress,
    input: &'a [u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<&'a [u8], DecompressError> {
    let body = skip_header(input)?;
    inflate.reset(false);
    let start = out.len();
    let mut fed = 0usize;
    loop {
        if out.len() == out.capacity() {
            if out.len() > limit {
                return Err(DecompressError::TooLarge);
            }
            // Grow by half what is there (at least 4 KiB), up to one byte past the limit.
            let more = (out.len() / 2).max(MIN_GUESS);
            let room = limit.saturating_add(1).saturating_sub(out.len()).min(more).max(1);
            // Output that arrived: like every other allocation, one the system refuses aborts (a
            // codec error would dead-letter a sound batch).
            out.reserve_exact(room);
        }
        let rest = body.get(fed..).unwrap_or_default();
        let in_before = inflate.total_in();
        let len_before = out.len();
        let status = inflate.decompress_vec(rest, out, FlushDecompress::Finish)?;
        let read = usize::try_from(inflate.total_in().saturating_sub(in_before))?;
        fed = fed.saturating_add(read);
        if out.len() > limit {
            return Err(DecompressError::TooLarge);
        }
        match status {
            Status::StreamEnd => break,
            // No progress with room left: the input ended inside the deflate stream.
            _ if read == 0 && out.len() == len_before && out.len() < out.capacity() => {
                return Err(DecompressError::Codec("truncated gzip member".into()));
            }
            Status::Ok | Status::BufError => {}
        }
    }
    let after = body.get(fed..).unwrap_or_default();
    let (trailer, rest) = after
        .split_first_chunk::<8>()
        .ok_or("truncated gzip trailer")?;
    let produced = out.get(start..).unwrap_or_default();
    let mut crc = Crc::new();
    crc.update(produced);
    let (want_crc, want_size) = trailer.split_at(4);
    if want_crc != crc.sum().to_le_bytes() {
        return Err(DecompressError::Codec("gzip member checksum mismatch".into()));
    }
    if want_size != (produced.len() as u64 as u32).to_le_bytes() {
        return Err(DecompressError::Codec("gzip member size mismatch".into()));
    }
    Ok(rest)
}

/// The bytes after a gzip member's header (RFC 1952 §2.3: magic, deflate, flags and their fields).
fn skip_header(input: &[u8]) -> Result<&[u8], DecompressError> {
    let (fixed, mut rest) = input
        .split_first_chunk::<10>()
        .ok_or("truncated gzip header")?;
    if fixed[..3] != [0x1f, 0x8b, 8] {
        return Err(DecompressError::Codec("not a gzip member (bad magic or method)".into()));
    }
    let flags = fixed[3];
    if flags & RESERVED != 0 {
        return Err(DecompressError::Codec("gzip header sets reserved flags".into()));
    }
    if flags & FEXTRA != 0 {
        let (len, tail) = rest.split_first_chunk::<2>().ok_or("truncated gzip extra field")?;
        let len = usize::from(u16::from_le_bytes(*len));
        rest = tail.get(len..).ok_or("truncated gzip extra field")?;
    }
    for field in [FNAME, FCOMMENT] {
        if flags & field != 0 {
            let end = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or("unterminated gzip header string")?;
            rest = rest.get(end + 1..).unwrap_or_default();
        }
    }
    if flags & FHCRC != 0 {
        let (want, tail) = rest.split_first_chunk::<2>().ok_or("truncated gzip header crc")?;
        // The low 16 bits of the CRC-32 of the header's bytes before it.
        let mut crc = Crc::new();
        crc.update(input.get(..input.len() - rest.len()).unwrap_or_default());
        if *want != (crc.sum() as u16).to_le_bytes() {
            return Err(DecompressError::Codec("gzip header checksum mismatch".into()));
        }
        rest = tail;
    }
    Ok(rest)
}

#[cfg(test)]
#[path = "gunzip_tests.rs"]
mod tests;
