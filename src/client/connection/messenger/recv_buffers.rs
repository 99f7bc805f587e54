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
//! - At most one spare per connection; a mapping returned while there is one is unmapped, and so is one
//!   returned after the connection closed.
//! - A mapping keeps resident every page it was ever written to (its *touched* bytes), so a response is
//!   read into the spare only if it is at least half as large as the spare's touched bytes: whatever
//!   the application keeps of a response pins at most twice the response's size.
//! - A spare unused for [`RecvBuffers::IDLE`] is unmapped, whether or not more responses come
//!   ([`RecvBuffers::expire_idle`] runs while the connection waits for one).

use std::{
    convert::Infallible,
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use memmap2::{MmapMut, MmapOptions};
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    sync::Notify,
    time::Instant,
};

/// A mapping waiting for the next large response.
#[derive(Debug)]
struct Spare {
    map: MmapMut,
    /// The most bytes of it ever written (all resident).
    touched: usize,
    /// When it came back.
    since: Instant,
}

/// What the connection and its mappings' owners share.
#[derive(Debug, Default)]
struct Home {
    spare: Mutex<Option<Spare>>,
    /// A mapping came back (wakes [`RecvBuffers::expire_idle`]).
    returned: Notify,
}

impl Home {
    fn spare(&self) -> MutexGuard<'_, Option<Spare>> {
        self.spare.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One connection's response buffers: see the module docs.
#[derive(Debug)]
pub(super) struct RecvBuffers {
    home: Arc<Home>,
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
            home: Arc::default(),
            idle,
        }
    }

    /// Reads a response body of `len` bytes from `read`.
    pub(super) async fn read<R: AsyncRead + Unpin>(
        &self,
        read: &mut R,
        len: usize,
    ) -> std::io::Result<Bytes> {
        if len < Self::LARGE {
            return read_to_heap(read, len).await;
        }
        let (mut map, touched) = match self.take_spare(len) {
            Some(spare) => (spare.map, spare.touched.max(len)),
            None => match MmapOptions::new().len(len.max(Self::MAPPING)).map_anon() {
                Ok(map) => (map, len),
                // No address space for a mapping: the heap still works.
                Err(_) => return read_to_heap(read, len).await,
            },
        };
        read.read_exact(&mut map[..len]).await?;
        Ok(Bytes::from_owner(Recycled {
            map: Some(map),
            len,
            touched,
            home: Arc::downgrade(&self.home),
        }))
    }

    /// The spare, if it can take a response of `len` bytes (see the module docs). An unsuitable one is
    /// unmapped: the response's own mapping takes its place when it comes back.
    fn take_spare(&self, len: usize) -> Option<Spare> {
        let spare = self.home.spare().take()?;
        (spare.map.len() >= len && spare.touched <= len.saturating_mul(2)).then_some(spare)
    }

    /// Unmaps the spare once it has gone unused for the idle time; never returns. The connection runs it
    /// while it waits for the next response (it is cancel-safe: dropping it loses nothing).
    pub(super) async fn expire_idle(&self) -> Infallible {
        loop {
            let since = self.home.spare().as_ref().map(|s| s.since);
            match since {
                None => self.home.returned.notified().await,
                Some(since) => {
                    tokio::time::sleep_until(since + self.idle).await;
                    let expired = {
                        let mut slot = self.home.spare();
                        if slot.as_ref().is_some_and(|s| s.since == since) {
                            slot.take()
                        } else {
                            None
                        }
                    };
                    drop(expired); // unmapped outside the lock
                }
            }
        }
    }

    #[cfg(test)]
    fn spare_len(&self) -> Option<usize> {
        self.home.spare().as_ref().map(|s| s.map.len())
    }

    #[cfg(test)]
    fn spare_touched(&self) -> Option<usize> {
        self.home.spare().as_ref().map(|s| s.touched)
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
    touched: usize,
    home: Weak<Home>,
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
        let kept = {
            let mut slot = home.spare();
            if slot.is_none() {
                *slot = Some(Spare {
                    map,
                    touched: self.touched,
                    since: Instant::now(),
                });
                None
            } else {
                Some(map)
            }
        };
        match kept {
            None => home.returned.notify_one(),
            Some(map) => drop(map), // unmapped outside the lock
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

    /// `ptr - offset`, as an address (never dereferenced).
    fn back_by(ptr: *const u8, offset: usize) -> *const u8 {
        ptr.wrapping_sub(offset)
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
        let third = body(RecvBuffers::LARGE + 2, 3);
        let c = read(&buffers, &third).await;
        assert_eq!(c, third);
        assert_ne!(c.as_ptr(), b.as_ptr());
        assert_eq!(b, second, "the held response is untouched");
        // Both come back: one is kept, the other unmapped.
        drop(b);
        drop(c);
        assert_eq!(buffers.spare_len(), Some(RecvBuffers::MAPPING));
    }

    #[tokio::test]
    async fn a_spare_is_reused_only_by_a_response_at_least_half_its_touched_size() {
        let buffers = RecvBuffers::new(RecvBuffers::IDLE);
        let big = read(&buffers, &body(4 * RecvBuffers::LARGE, 4)).await;
        let at = big.as_ptr();
        drop(big);
        assert_eq!(buffers.spare_touched(), Some(4 * RecvBuffers::LARGE));
        // Half the touched size: reused (and it still keeps the 4 MiB resident).
        let half = read(&buffers, &body(2 * RecvBuffers::LARGE, 5)).await;
        assert_eq!(half.as_ptr(), at);
        drop(half);
        assert_eq!(buffers.spare_touched(), Some(4 * RecvBuffers::LARGE));
        // Less than half of what the mapping keeps resident: a fresh mapping instead, so a small
        // response the application holds on to does not pin the big one's pages.
        let small = body(RecvBuffers::LARGE, 6);
        let kept = read(&buffers, &small).await;
        assert_eq!(kept, small);
        assert_eq!(buffers.spare_len(), None, "the unsuitable spare was unmapped");
        drop(kept);
        assert_eq!(
            buffers.spare_touched(),
            Some(RecvBuffers::LARGE),
            "a fresh mapping came back"
        );
    }

    #[tokio::test]
    async fn a_response_larger_than_the_spare_gets_a_mapping_to_fit() {
        let buffers = RecvBuffers::new(RecvBuffers::IDLE);
        drop(read(&buffers, &body(RecvBuffers::LARGE, 7)).await);
        let big = body(RecvBuffers::MAPPING + 3, 8);
        let b = read(&buffers, &big).await;
        assert_eq!(b, big);
        drop(b);
        assert_eq!(buffers.spare_len(), Some(RecvBuffers::MAPPING + 3));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_spare_is_unmapped_even_if_no_response_comes() {
        let buffers = RecvBuffers::new(Duration::from_secs(30));
        let held = read(&buffers, &body(RecvBuffers::LARGE, 9)).await;
        let expiry = buffers.expire_idle();
        tokio::pin!(expiry);
        // No spare yet: the expiry waits for one.
        assert!(
            tokio::time::timeout(Duration::from_secs(60), &mut expiry)
                .await
                .is_err()
        );
        drop(held); // comes back, and wakes the expiry
        assert!(buffers.spare_len().is_some());
        assert!(
            tokio::time::timeout(Duration::from_secs(29), &mut expiry)
                .await
                .is_err()
        );
        assert!(buffers.spare_len().is_some(), "not before the idle time");
        assert!(
            tokio::time::timeout(Duration::from_secs(2), &mut expiry)
                .await
                .is_err()
        );
        assert_eq!(buffers.spare_len(), None, "unmapped after the idle time");
    }

    #[tokio::test]
    async fn no_mapping_outlives_the_connection_and_a_cut_short_response_leaves_no_spare() {
        let buffers = RecvBuffers::new(RecvBuffers::IDLE);
        let data = body(RecvBuffers::LARGE, 10);
        let mut reader = &data[..data.len() - 1];
        let err = buffers.read(&mut reader, data.len()).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(buffers.spare_len(), None);

        let held = read(&buffers, &data).await;
        drop(buffers);
        drop(held); // its mapping has no connection to go back to: unmapped, no panic
    }
}
