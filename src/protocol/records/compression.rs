//! The four compression codecs of record batches, all pure Rust, and the [`Compression`] name.
//!
//! What is compressed is the records section of a v2 batch (everything after the 61-byte header); the
//! header itself stays plain. The wire formats, as Java and librdkafka write and read them:
//!
//! | codec | format | encoder here | decoder here |
//! |---|---|---|---|
//! | gzip | RFC 1952 gzip | flate2 on its **zlib-rs** backend, level 6 by default (Java's and librdkafka's), 1..=9 settable (`compression.gzip.level`) | multi-member gzip |
//! | snappy | snappy-java's *xerial* framing: 16-byte header, then `u32` BE length + raw snappy block per 32 KiB of input (Java's `SnappyOutputStream`) | xerial | xerial, or a raw snappy block (librdkafka writes raw; Java's reader falls back to it too) |
//! | lz4 | LZ4 *frame* format, 64 KiB independent blocks (Java's `KafkaLZ4BlockOutputStream`) | lz4_flex | lz4_flex (any valid frame) |
//! | zstd | zstd frame | ruzstd's `Fastest` level (≈ zstd level 1; ruzstd has no other level yet) | ruzstd, concatenated frames accepted |
//!
//! Invariant: decompression never allocates more than the caller's limit plus one codec block, whatever
//! the input claims (a "zip bomb" is an error, not an OOM), and never panics.

use std::cell::RefCell;
use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{CodecError, Error, UnknownCompressionNameSnafu};

/// A record batch's compression codec, as Kafka's `compression.type` names it.
///
/// # Example
///
/// ```
/// use kafka_event_bus::protocol::Compression;
///
/// let c: Compression = "zstd".parse()?;
/// assert_eq!(c, Compression::Zstd);
/// assert_eq!(c.to_string(), "zstd");
/// assert_eq!(c.id(), 4);
/// assert!("ZSTD".parse::<Compression>().is_err()); // Kafka's names are lower case
/// # Ok::<(), kafka_event_bus::protocol::RecordBatchError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compression {
    /// No compression.
    #[default]
    None,
    /// gzip (deflate).
    Gzip,
    /// snappy.
    Snappy,
    /// LZ4 (frame format).
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// Every codec, in attribute-id order.
    pub const ALL: [Self; 5] = [Self::None, Self::Gzip, Self::Snappy, Self::Lz4, Self::Zstd];

    /// The codec's id in the low three bits of a batch's attributes.
    pub fn id(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }

    /// The codec with attribute id `id`, if Kafka defines one.
    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.get(usize::from(id)).copied()
    }

    /// Kafka's name for the codec (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownCompressionNameSnafu { name: s }.build())
    }
}

/// The xerial snappy stream header: magic, version 1, minimum compatible version 1.
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// snappy-java's default block size, which Kafka's Java producer uses.
const XERIAL_BLOCK: usize = 32 * 1024;

/// gzip's default level, as Java's and librdkafka's.
pub(crate) const DEFAULT_GZIP_LEVEL: u32 = 6;

/// Appends `input` compressed with `compression` to `out` (`None` copies it). `gzip_level` (1..=9) is
/// used by gzip only.
pub(crate) fn compress(
    compression: Compression,
    gzip_level: u32,
    input: &[u8],
    out: &mut BytesMut,
) -> Result<(), CodecError> {
    match compression {
        Compression::None => out.extend_from_slice(input),
        Compression::Gzip => gzip_compress(gzip_level, input, out)?,
        Compression::Snappy => {
            out.extend_from_slice(XERIAL_HEADER);
            let mut enc = snap::raw::Encoder::new();
            for block in input.chunks(XERIAL_BLOCK) {
                let len_at = out.len();
                let max = snap::raw::max_compress_len(block.len());
                out.resize(len_at + 4 + max, 0);
                let n = enc.compress(block, &mut out[len_at + 4..])?;
                out.truncate(len_at + 4 + n);
                let n = u32::try_from(n)?;
                out[len_at..len_at + 4].copy_from_slice(&n.to_be_bytes());
            }
        }
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, out.writer());
            enc.write_all(input)?;
            enc.finish()?;
        }
        Compression::Zstd => {
            ruzstd::encoding::compress(input, out.writer(), ruzstd::encoding::CompressionLevel::Fastest);
        }
    }
    Ok(())
}

thread_local! {
    /// This thread's deflate state and the level it was made for, reset between batches: setting one
    /// up (allocating and clearing its window and hash tables) costs more than compressing a small
    /// batch, and with many partitions most batches are small.
    static DEFLATE: RefCell<Option<(u32, flate2::Compress)>> = const { RefCell::new(None) };
}

#[cfg(test)]
thread_local! {
    /// How many deflate states this thread has set up (for tests of their reuse).
    static DEFLATE_SETUPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The gzip member header flate2's `GzEncoder` writes: deflate, no flags, no mtime, the extra flags
/// for `level`, OS unknown (255), so that output does not depend on the machine.
fn gzip_header(level: u32) -> [u8; 10] {
    let xfl = match level {
        9.. => 2,
        ..=1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
}

/// Appends one gzip member holding `input` to `out`, deflating with this thread's reused state.
fn gzip_compress(level: u32, input: &[u8], out: &mut BytesMut) -> Result<(), CodecError> {
    let level = level.clamp(1, 9);
    out.extend_from_slice(&gzip_header(level));
    DEFLATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let deflate = match &mut *slot {
            Some((made_for, deflate)) if *made_for == level => {
                deflate.reset();
                deflate
            }
            other => {
                #[cfg(test)]
                DEFLATE_SETUPS.with(|n| n.set(n.get() + 1));
                &mut other
                    .insert((level, flate2::Compress::new(flate2::Compression::new(level), false)))
                    .1
            }
        };
        deflate_into(deflate, input, out)
    })?;
    let mut crc = flate2::Crc::new();
    crc.update(input);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE: the input length modulo 2^32.
    out.extend_from_slice(&(input.len() as u64 as u32).to_le_bytes());
    Ok(())
}

/// Deflates all of `input` into `out` (raw deflate, finished), growing `out` as output comes. The input
/// goes in first and the stream is finished after, as `GzEncoder` does, so the bytes are the same as
/// its (deflate's level 1 writes a different stream when told to finish on the first call).
fn deflate_into(deflate: &mut flate2::Compress, input: &[u8], out: &mut BytesMut) -> Result<(), CodecError> {
    let mut fed = 0usize;
    // Room for incompressible input plus deflate's block overhead, so few calls are needed.
    let mut room = input.len().saturating_add(input.len() / 8).saturating_add(64);
    loop {
        let rest = input.get(fed..).unwrap_or_default();
        let flush = if rest.is_empty() {
            flate2::FlushCompress::Finish
        } else {
            flate2::FlushCompress::None
        };
        let start = out.len();
        out.resize(start.saturating_add(room), 0);
        let (in_before, out_before) = (deflate.total_in(), deflate.total_out());
        let status = deflate.compress(rest, out.get_mut(start..).unwrap_or_default(), flush);
        let written = usize::try_from(deflate.total_out().saturating_sub(out_before))?;
        let read = usize::try_from(deflate.total_in().saturating_sub(in_before))?;
        out.truncate(start.saturating_add(written));
        fed = fed.saturating_add(read);
        match status? {
            flate2::Status::StreamEnd => return Ok(()),
            flate2::Status::BufError if written == 0 && read == 0 => {
                return Err("deflate made no progress".into());
            }
            flate2::Status::Ok | flate2::Status::BufError => room = room.max(32 * 1024),
        }
    }
}

/// Why [`decompress`] failed.
#[derive(Debug)]
pub(crate) enum DecompressError {
    /// The output would exceed the limit.
    TooLarge,
    /// The codec rejected the input.
    Codec(CodecError),
}

impl<E: Into<CodecError>> From<E> for DecompressError {
    fn from(e: E) -> Self {
        Self::Codec(e.into())
    }
}

/// Decompresses `input` (a batch's records section) into a new buffer of at most `limit` bytes.
pub(crate) fn decompress(
    compression: Compression,
    input: &[u8],
    limit: usize,
) -> Result<Bytes, DecompressError> {
    // A first guess of the output size; the buffer grows past it only as real output arrives.
    let guess = input.len().saturating_mul(4).min(limit).min(1 << 20);
    let out = match compression {
        Compression::None => {
            if input.len() > limit {
                return Err(DecompressError::TooLarge);
            }
            return Ok(Bytes::copy_from_slice(input));
        }
        Compression::Gzip => super::gunzip::gunzip(input, limit)?,
        Compression::Snappy => snappy_decompress(input, limit)?,
        Compression::Lz4 => read_limited(lz4_flex::frame::FrameDecoder::new(input), guess, limit)?,
        Compression::Zstd => {
            let mut src = input;
            let mut out = Vec::with_capacity(guess);
            while !src.is_empty() {
                let dec = ruzstd::decoding::StreamingDecoder::new(&mut src)?;
                read_into(dec, &mut out, limit)?;
            }
            out
        }
    };
    Ok(Bytes::from(out))
}

fn read_limited(r: impl Read, guess: usize, limit: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::with_capacity(guess);
    read_into(r, &mut out, limit)?;
    Ok(out)
}

/// Appends everything `r` yields to `out`, failing once `out` would pass `limit` bytes.
fn read_into(r: impl Read, out: &mut Vec<u8>, limit: usize) -> Result<(), DecompressError> {
    let room = limit.saturating_sub(out.len());
    // Reading one byte past the room tells "exactly full" from "too large".
    let room = u64::try_from(room).unwrap_or(u64::MAX).saturating_add(1);
    r.take(room).read_to_end(out)?;
    if out.len() > limit {
        return Err(DecompressError::TooLarge);
    }
    Ok(())
}

/// The most a snappy block can expand: a 3-byte copy element yields at most 64 bytes (literals are
/// never shorter than what they yield).
const SNAPPY_MAX_RATIO: usize = 22;

/// The uncompressed length a raw snappy `block` declares, if the block can produce it: never more than
/// `limit` (else [`DecompressError::TooLarge`]) nor than its bytes can expand to, so a short block
/// declaring a huge length is an error before anything is allocated for it.
fn snappy_len(block: &[u8], limit: usize) -> Result<usize, DecompressError> {
    let len = snap::raw::decompress_len(block)?;
    if len > limit {
        return Err(DecompressError::TooLarge);
    }
    if len > block.len().saturating_mul(SNAPPY_MAX_RATIO) {
        return Err(DecompressError::Codec(
            format!(
                "snappy block of {} bytes declares {len} bytes, more than it can hold",
                block.len()
            )
            .into(),
        ));
    }
    Ok(len)
}

fn snappy_decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let mut dec = snap::raw::Decoder::new();
    let Some(mut rest) = input.strip_prefix(&XERIAL_HEADER[..8]) else {
        // A raw snappy block (librdkafka's producer writes this).
        let len = snappy_len(input, limit)?;
        let mut out = vec![0; len];
        dec.decompress(input, &mut out)?;
        return Ok(out);
    };
    // Xerial: skip version and compatible version (8 bytes), then length-prefixed blocks. A stream may
    // be a concatenation of streams, each with its own header.
    rest = rest.get(8..).ok_or("truncated xerial snappy header")?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix(&XERIAL_HEADER[..]) {
            rest = after;
            continue;
        }
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or("truncated xerial block length")?;
        let len = usize::try_from(u32::from_be_bytes(*len))?;
        let block = tail.get(..len).ok_or("truncated xerial block")?;
        rest = tail.get(len..).unwrap_or_default();
        let start = out.len();
        let n = snappy_len(block, limit.saturating_sub(start))?;
        out.resize(start + n, 0);
        let written = dec.decompress(block, &mut out[start..])?;
        out.truncate(start + written);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample(n: usize) -> Vec<u8> {
        // Compressible but not trivially so: JSON-ish text with a counter.
        (0..n)
            .flat_map(|i| format!("{{\"id\":{i},\"kind\":\"OrderCreated\"}}").into_bytes())
            .collect()
    }

    #[test]
    fn names_parse_and_display() {
        for c in Compression::ALL {
            assert_eq!(c.name().parse::<Compression>().unwrap(), c);
            assert_eq!(Compression::from_id(c.id()), Some(c));
        }
        assert_eq!(Compression::from_id(5), None);
        let err = "lz5".parse::<Compression>().unwrap_err();
        assert!(err.to_string().contains("lz5"), "{err}");
    }

    #[test]
    fn every_codec_round_trips_and_compresses() {
        let data = sample(8000); // > 2 xerial blocks and > 2 lz4 blocks
        assert!(data.len() > 3 * 64 * 1024);
        for c in Compression::ALL {
            let mut out = BytesMut::from(&b"prefix"[..]);
            compress(c, DEFAULT_GZIP_LEVEL, &data, &mut out).unwrap();
            assert_eq!(&out[..6], b"prefix", "{c} appends");
            let back = decompress(c, &out[6..], data.len()).unwrap();
            assert_eq!(back, data, "{c}");
            if c != Compression::None {
                assert!(out.len() < data.len() / 3, "{c}: {} of {}", out.len(), data.len());
            }
        }
    }

    #[test]
    fn empty_input_round_trips() {
        for c in Compression::ALL {
            let mut out = BytesMut::new();
            compress(c, DEFAULT_GZIP_LEVEL, b"", &mut out).unwrap();
            assert_eq!(decompress(c, &out, 0).unwrap(), Bytes::new(), "{c}");
        }
    }

    #[test]
    fn limit_is_enforced() {
        let data = vec![b'a'; 1 << 20];
        for c in Compression::ALL {
            let mut out = BytesMut::new();
            compress(c, DEFAULT_GZIP_LEVEL, &data, &mut out).unwrap();
            assert!(
                matches!(
                    decompress(c, &out, data.len() - 1),
                    Err(DecompressError::TooLarge)
                ),
                "{c}"
            );
            assert_eq!(decompress(c, &out, data.len()).unwrap().len(), data.len(), "{c}");
        }
    }

    #[test]
    fn snappy_writes_xerial_and_reads_raw() {
        let data = sample(100);
        let mut out = BytesMut::new();
        compress(Compression::Snappy, DEFAULT_GZIP_LEVEL, &data, &mut out).unwrap();
        assert_eq!(&out[..16], XERIAL_HEADER);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(Compression::Snappy, &raw, usize::MAX).unwrap(), data);
        // Two concatenated xerial streams.
        let mut twice = out.clone();
        twice.extend_from_slice(&out);
        let back = decompress(Compression::Snappy, &twice, usize::MAX).unwrap();
        assert_eq!(back.len(), 2 * data.len());
    }

    /// The bytes snappy-java writes for a one-record batch body (from kafka-protocol's tests, which took
    /// them from the Java client).
    #[test]
    fn snappy_matches_java_bytes() {
        let java = b"\x82\x53\x4e\x41\x50\x50\x59\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x0f\x0d\x30\x18\x00\x00\x00\x01\x0csdfdsf\x00";
        let plain = decompress(Compression::Snappy, java, usize::MAX).unwrap();
        let mut again = BytesMut::new();
        compress(Compression::Snappy, DEFAULT_GZIP_LEVEL, &plain, &mut again).unwrap();
        assert_eq!(&again[..], &java[..]);
    }

    #[test]
    fn snappy_never_allocates_more_than_its_input_can_produce() {
        // A raw block and a xerial block of a few bytes declaring 64 MiB (under the limit).
        let mut raw = Vec::new();
        let mut n = 64u32 << 20;
        while n >= 0x80 {
            raw.push((n as u8) | 0x80);
            n >>= 7;
        }
        raw.push(n as u8);
        raw.extend_from_slice(&[0x00, b'x']);
        let mut xerial = XERIAL_HEADER.to_vec();
        xerial.extend_from_slice(&u32::try_from(raw.len()).unwrap().to_be_bytes());
        xerial.extend_from_slice(&raw);
        for input in [&raw[..], &xerial[..]] {
            match decompress(Compression::Snappy, input, 128 << 20) {
                Err(DecompressError::Codec(e)) => {
                    assert!(e.to_string().contains("more than it can hold"), "{e}");
                }
                other => panic!("{other:?}"),
            }
        }
        // Highly compressible data still decodes (its ratio is below the bound).
        let zeros = vec![0u8; 1 << 20];
        let raw = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, 1 << 20).unwrap().len(),
            1 << 20
        );
        let mut out = BytesMut::new();
        compress(Compression::Snappy, DEFAULT_GZIP_LEVEL, &zeros, &mut out).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &out, 1 << 20).unwrap().len(),
            1 << 20
        );
    }

    #[test]
    fn gzip_uses_zlib_rs() {
        // `Compress::new_gzip` exists only when flate2 has a zlib backend (`any_zlib`); with no C
        // backend in the tree that backend is zlib-rs, so this compiling proves miniz_oxide is not used.
        let mut c = flate2::Compress::new_gzip(flate2::Compression::new(6), 15);
        let mut out = Vec::with_capacity(64);
        c.compress_vec(b"hello", &mut out, flate2::FlushCompress::Finish)
            .unwrap();
        assert_eq!(&out[..2], &[0x1f, 0x8b]);
    }

    /// What flate2's `GzEncoder` writes for `input` at `level`.
    fn gz_encoder(level: u32, input: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        enc.write_all(input).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gzip_writes_the_same_bytes_as_gz_encoder_at_every_level() {
        let inputs = [Vec::new(), b"x".to_vec(), sample(10), sample(8000), (0..=255u8).cycle().take(100_000).collect()];
        for level in 1..=9 {
            for input in &inputs {
                let mut out = BytesMut::new();
                compress(Compression::Gzip, level, input, &mut out).unwrap();
                assert!(&out[..] == gz_encoder(level, input).as_slice(), "level {level}, {} bytes", input.len());
            }
        }
    }

    #[test]
    fn gzip_reuses_one_deflate_state_per_thread_and_level() {
        // A fresh thread: its own state, counted from zero.
        std::thread::spawn(|| {
            let setups = || DEFLATE_SETUPS.with(std::cell::Cell::get);
            let mut batches = Vec::new();
            for i in 0..50 {
                let mut out = BytesMut::new();
                compress(Compression::Gzip, DEFAULT_GZIP_LEVEL, &sample(i), &mut out).unwrap();
                batches.push(out);
            }
            assert_eq!(setups(), 1, "one deflate state for 50 batches");
            for (i, out) in batches.iter().enumerate() {
                assert_eq!(decompress(Compression::Gzip, out, usize::MAX).unwrap(), sample(i));
            }
            let mut out = BytesMut::new();
            compress(Compression::Gzip, 1, &sample(3), &mut out).unwrap();
            assert_eq!(setups(), 2, "another level, another state");
            assert_eq!(decompress(Compression::Gzip, &out, usize::MAX).unwrap(), sample(3));
        })
        .join()
        .unwrap();
    }

    proptest! {
        #[test]
        fn round_trip_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..4096), id in 0u8..5) {
            let c = Compression::from_id(id).unwrap();
            let mut out = BytesMut::new();
            compress(c, DEFAULT_GZIP_LEVEL, &data, &mut out).unwrap();
            prop_assert_eq!(decompress(c, &out, data.len()).unwrap(), data);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512), id in 0u8..5) {
            let c = Compression::from_id(id).unwrap();
            let _ = decompress(c, &data, 1 << 16);
        }

        #[test]
        fn damaged_output_never_panics(seed in proptest::collection::vec(any::<u8>(), 1..2048),
                                       id in 1u8..5, at in any::<usize>(), bit in 0u8..8) {
            let c = Compression::from_id(id).unwrap();
            let mut out = BytesMut::new();
            compress(c, DEFAULT_GZIP_LEVEL, &seed, &mut out).unwrap();
            let i = at % out.len();
            out[i] ^= 1 << bit;
            let _ = decompress(c, &out, 1 << 16);
        }
    }
}
