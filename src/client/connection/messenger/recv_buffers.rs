//! Where one connection's response bodies are read to.
//!
//! A small response gets a heap buffer sized to fit. A large one (a fetch: megabytes) is read into an
//! anonymous mapping, and the mapping is recycled: the records decoded from a response point into its
//! buffer (no copies), so the buffer lives until the application drops the last of them, and then comes
//! back here as the connection's *spare*, which the next large response is read into.
//!
//! Why: a fresh buffer of megabytes per fetch means fresh pages, which the kernel must fault in and zero
//! (measured: ~15 % of a consumer's CPU time), and heap buffers of that size make glibc keep freed
//! megabytes for good (a consumer's resident memory stays at its peak). A recycled mapping costs neither:
//! its pages are already resident, and there are never more of them than one spare holds.
//!
//! # Invariants
//!
//! - A mapping is written again only after every [`Bytes`] pointing into it is gone: it comes back only
//!   through the drop of the owner that [`Bytes::from_owner`] drops with its last reference.
//! - At most one spare per connection; a mapping returned while there is one is unmapped. The spare's
//!   resident memory is bounded by the largest response it held.
//! - A spare that has not been used for [`RecvBuffers::IDLE`] is unmapped (checked on every response),
//!   and so is one returned after the connection closed.

use std::{
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use memmap2::{MmapMut, MmapOptions};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The spare mapping and when it came back.
type Slot = Mutex<Option<(MmapMut, Instant)>>;

/// One connection's response buffers: see the module docs.
#[derive(Debug)]
pub(super) struct RecvBuffers {
    spare: Arc<Slot>,
    idle: Duration,
}

impl RecvBuffers {
    /// Responses at least this large are read into a recycled mapping.
    pub(super) const LARGE: usize = 1 << 20;
    /// The size of a new mapping (or the response's, if larger): address space only, as a mapping's
    /// pages become resident when written. Large enough that any usual fetch fits the spare.
    const MAPPING: usize = 32 << 20;
    /// How long a spare may go unused before it is unmapped.
    pub(super) const IDLE: Duration = Duration::from_secs(30);

    pub(super) fn new(idle: Duration) -> Self {
        Self {
            spare: Arc::default(),
            idle,
        }
    }

    /// Reads a response body of `len` bytes from `read`.
    pub(super) async fn read<R: AsyncRead + Unpin>(
        &self,
        read: &mut R,
        len: usize,
    ) -> std::io::Result<Bytes> {
        let spare = self.take_spare(len);
        if len < Self::LARGE {
            return read_to_heap(read, len).await;
        }
        let mut map = match spare {
            Some(map) => map,
            None => match MmapOptions::new().len(len.max(Self::MAPPING)).map_anon() {
                Ok(map) => map,
                // No address space for a mapping: the heap still works.
                Err(_) => return read_to_heap(read, len).await,
            },
        };
        read.read_exact(&mut map[..len]).await?;
        Ok(Bytes::from_owner(Recycled {
            map: Some(map),
            len,
            home: Arc::downgrade(&self.spare),
        }))
    }

    /// The spare, if `len` is large and fits it. A spare too small for a large response is unmapped (the
    /// response's mapping takes its place), and so is one idle for longer than `idle`.
    fn take_spare(&self, len: usize) -> Option<MmapMut> {
        let map = {
            let mut slot = self.spare.lock().unwrap_or_else(|p| p.into_inner());
            let (map, since) = slot.take()?;
            if len < Self::LARGE && since.elapsed() < self.idle {
                *slot = Some((map, since));
                return None;
            }
            map
        };
        // Unmapped here, outside the lock, unless it is used.
        (len >= Self::LARGE && map.len() >= len).then_some(map)
    }

    #[cfg(test)]
    fn spare_len(&self) -> Option<usize> {
        let slot = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().map(|(map, _)| map.len())
    }
}

/// Reads `len` bytes into a heap buffer sized to fit (no zeroing first).
async fn read_to_heap<R: AsyncRead + Unpin>(read: &mut R, len: usize) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(len);
    let mut body = read.take(u64::try_from(len).unwrap_or(u64::MAX));
    while buf.len() < len {
        if body.read_buf(&mut buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(buf.freeze())
}

/// The owner of a response read into a mapping: the first `len` bytes are the response. Dropped with
/// the last [`Bytes`] pointing into it, it gives the mapping back to its connection.
struct Recycled {
    map: Option<MmapMut>,
    len: usize,
    home: Weak<Slot>,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        self.map.as_ref().map_or(&[], |map| &map[..self.len])
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        let (Some(map), Some(home)) = (self.map.take(), self.home.upgrade()) else {
            return;
        };
        let mut slot = home.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some((map, Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    async fn read(buffers: &RecvBuffers, data: &[u8]) -> Bytes {
        let mut reader = data;
        buffers.read(&mut reader, data.len()).await.unwrap()
    }

    #[tokio::test]
    async fn small_responses_are_read_whole_into_the_heap() {
        let buffers = RecvBuffers::new(RecvBuffers::IDLE);
        let data = body(1000, 1);
        assert_eq!(read(&buffers, &data).await, data);
        assert_eq!(buffers.spare_len(), None);
        let mut short = &data[..10];
        let err = buffers.read(&mut short, 11).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn a_large_response_comes_back_as_the_spare_only_after_its_last_reference() {
        let buffers = RecvBuffers::new(RecvBuffers::IDLE);
        let first = body(RecvBuffers::LARGE + 5, 1);
        let a = read(&buffers, &first).await;
        assert_eq!(a, first);
        let slice = a.slice(10..20);
        drop(a);
        assert_eq!(buffers.spare_len(), None, "a slice still points into it");
        assert_eq!(slice, first[10..20]);
        let at = slice.as_ptr();
        drop(slice);
        assert_eq!(buffers.spare_len(), Some(RecvBuffers::MAPPING));

        // The next large response is read into the same mapping, and holds only its own bytes.
        let second = body(RecvBuffers::LARGE + 1, 2);
        let b = read(&buffers, &second).await;
        assert_eq!(b, second);
        assert_eq!(b.as_ptr(), back_by(at, 10));
        assert_eq!(buffers.spare_len(), None);

        // While it is held, another large response gets a mapping of its own.
        let third = body(2 * RecvBuffers::LARGE, 3);
        let c = read(&buffers, &third).await;
        assert_eq!(c, third);
        assert_ne!(c.as_ptr(), b.as_ptr());
        assert_eq!(b, second, "the held response is untouched");
        // Both come back: one is kept, the other unmapped.
        drop(b);
        drop(c);
        assert_eq!(buffers.spare_len(), Some(RecvBuffers::MAPPING));
    }

    /// `ptr - offset`, as an address (never dereferenced).
    fn back_by(ptr: *const u8, offset: usize) -> *const u8 {
        ptr.wrapping_sub(offset)
    }

    #[tokio::test]
    async fn a_response_larger_than_the_spare_gets_a_mapping_to_fit() {
        let buffers = RecvBuffers::new(RecvBuffers::IDLE);
        let big = body(RecvBuffers::MAPPING + 3, 4);
        drop(read(&buffers, &big).await);
        assert_eq!(buffers.spare_len(), Some(RecvBuffers::MAPPING + 3));
        let small = body(RecvBuffers::LARGE, 5);
        assert_eq!(read(&buffers, &small).await, small);
    }

    #[tokio::test]
    async fn an_idle_spare_is_unmapped_and_none_outlives_the_connection() {
        let buffers = RecvBuffers::new(Duration::ZERO);
        drop(read(&buffers, &body(RecvBuffers::LARGE, 6)).await);
        assert!(buffers.spare_len().is_some());
        // Any later response notices the spare has been idle too long.
        read(&buffers, &body(10, 7)).await;
        assert_eq!(buffers.spare_len(), None);

        let held = read(&buffers, &body(RecvBuffers::LARGE, 8)).await;
        drop(buffers);
        drop(held); // its mapping has no connection to go back to: unmapped, no panic
    }

    #[tokio::test]
    async fn a_response_cut_short_fails_and_leaves_no_spare() {
        let buffers = RecvBuffers::new(RecvBuffers::IDLE);
        let data = body(RecvBuffers::LARGE, 9);
        let mut reader = &data[..data.len() - 1];
        let err = buffers.read(&mut reader, data.len()).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(buffers.spare_len(), None);
    }
}
