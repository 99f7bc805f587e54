//! The hard cap on a Produce request as sent. A drain fills a request by the expected compressed
//! size of batches not yet encoded; the estimate can be low (a topic whose data stops compressing),
//! so the sender encodes a request's batches in order and sends only those whose encoded bytes fit
//! in `max_request_size` (the first batch always goes, even alone above the cap, as a drain allows).
//! The batches that did not fit go back to the front of their partitions, ready at once: they were
//! never sent, so no attempt is counted and they cannot have been written (they keep their sequence
//! numbers, and the bytes of the one that was encoded). Encoding is also when a topic's compression
//! estimate learns from a batch.

use bytes::Bytes;

use super::{Accumulator, ProducerBatch, queue_at};
use crate::protocol::records;

/// One drained request after encoding.
#[derive(Debug, Default)]
pub(crate) struct EncodedRequest {
    /// The batches to send, with their bytes, in drain order; within `max_request_size` unless one
    /// batch alone exceeds it.
    pub(crate) sending: Vec<(ProducerBatch, Bytes)>,
    /// Batches that could not be encoded, to be failed.
    pub(crate) failed: Vec<(ProducerBatch, records::Error)>,
}

impl Accumulator {
    /// Encodes (compresses) a drained request's batches, off the lock, up to `max_request_size` of
    /// encoded bytes; the batches beyond it return to their partitions untouched.
    pub(crate) fn encode_request(&self, batches: Vec<ProducerBatch>) -> EncodedRequest {
        let cap = self.config.max_request_size;
        let mut request = EncodedRequest::default();
        let mut used = 0usize;
        let mut unsent = Vec::new();
        let mut learned: Vec<(std::sync::Arc<str>, f32)> = Vec::new();
        let mut batches = batches.into_iter();
        for mut batch in batches.by_ref() {
            match batch.encode() {
                Ok(bytes) => {
                    if let Some(ratio) = batch.compression_ratio.take() {
                        learned.push((std::sync::Arc::clone(&batch.topic), ratio));
                    }
                    if used > 0 && used.saturating_add(bytes.len()) > cap {
                        unsent.push(batch);
                        break;
                    }
                    used += bytes.len();
                    request.sending.push((batch, bytes));
                }
                Err(e) => request.failed.push((batch, e)),
            }
        }
        unsent.extend(batches);
        self.learn_and_return(learned, unsent);
        request
    }

    /// Teaches the topics' estimates what their encoded batches showed, and puts `unsent` batches
    /// back at the front of their partitions, first in line for the next drain.
    fn learn_and_return(&self, learned: Vec<(std::sync::Arc<str>, f32)>, unsent: Vec<ProducerBatch>) {
        if learned.is_empty() && unsent.is_empty() {
            return;
        }
        let returned = !unsent.is_empty();
        {
            let mut guard = self.lock();
            let state = &mut *guard;
            for (topic, ratio) in learned {
                if let Some(&index) = state.topic_index.get(&topic)
                    && let Some(queues) = state.topics.get_mut(index)
                {
                    queues.compression.observe(ratio);
                }
            }
            for mut batch in unsent.into_iter().rev() {
                batch.in_flight = false;
                let Some(&index) = state.topic_index.get(&batch.topic) else {
                    continue;
                };
                let key = (index, batch.partition);
                let Some(queue) = queue_at(&mut state.topics, key) else {
                    continue;
                };
                queue.in_flight = false;
                queue.sealed.push_front(batch);
                if !queue.listed {
                    queue.listed = true;
                    state.ready.push_front(key);
                }
            }
        }
        if returned {
            self.wake_sender.notify_one();
        }
    }
}
