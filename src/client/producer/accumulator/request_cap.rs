//! The hard cap on a Produce request as sent. A drain fills a request by the expected compressed
//! size of batches not yet encoded; the estimate can be low (a topic whose data stops compressing),
//! so the sender encodes a request's batches in order and sends only those whose encoded bytes fit
//! in `max_request_size` (the first batch always goes, even alone above the cap, as a drain allows).
//! The batches that did not fit go back to the front of their partitions, first in line for the next
//! drain (before partitions parked behind a busy broker meanwhile): they were never sent, so no
//! attempt is counted and they cannot have been written. Each gives its sequence number back to its
//! partition (a batch that then expired unsent would otherwise leave a gap, which the broker answers
//! with OUT_OF_ORDER_SEQUENCE_NUMBER), as does a batch that could not be encoded; drained again, a
//! batch gets its sequence anew, and the one that was encoded keeps its bytes, rewritten with it.
//! Encoding is also when a topic's compression estimate learns from a batch.

use std::sync::Arc;

use bytes::Bytes;

use super::{Accumulator, PartitionQueue, ProducerBatch, key_of, queue_at, sequence_after};
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
        let mut learned: Vec<(Arc<str>, f32)> = Vec::new();
        let mut batches = batches.into_iter();
        for mut batch in batches.by_ref() {
            match batch.encode() {
                Ok(bytes) => {
                    if let Some(ratio) = batch.compression_ratio.take() {
                        learned.push((Arc::clone(&batch.topic), ratio));
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
        self.learn_and_return(learned, unsent, &mut request.failed);
        request
    }

    /// Teaches the topics' estimates what their encoded batches showed, gives back the sequences of
    /// the batches that were never sent (`unsent`, and `failed` ones that could not be encoded), and
    /// puts `unsent` batches back at the front of their partitions, first in line for the next drain.
    pub(super) fn learn_and_return(
        &self,
        learned: Vec<(Arc<str>, f32)>,
        unsent: Vec<ProducerBatch>,
        failed: &mut [(ProducerBatch, records::Error)],
    ) {
        if learned.is_empty() && unsent.is_empty() && failed.is_empty() {
            return;
        }
        let returned = !unsent.is_empty();
        let mut orphans = Vec::new();
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
            for (batch, _) in failed.iter_mut() {
                if let Some(key) = key_of(state, &batch.topic, batch.partition)
                    && let Some(queue) = queue_at(&mut state.topics, key)
                {
                    give_back_sequence(queue, batch);
                }
            }
            for mut batch in unsent {
                batch.in_flight = false;
                let Some(key) = key_of(state, &batch.topic, batch.partition) else {
                    orphans.push(batch);
                    continue;
                };
                let Some(queue) = queue_at(&mut state.topics, key) else {
                    orphans.push(batch);
                    continue;
                };
                queue.in_flight = false;
                give_back_sequence(queue, &mut batch);
                queue.sealed.push_front(batch);
                if !queue.listed {
                    queue.listed = true;
                    state.returned.push(key);
                }
            }
        }
        for batch in orphans {
            self.fail_orphan(batch);
        }
        if returned {
            self.wake_sender.notify_one();
        }
    }
}

/// Takes back the sequence of `batch`, never sent, when it is the last one its partition assigned
/// under the current producer state: the partition's next batch gets it, so a batch that expires or
/// fails unsent leaves no gap the broker would refuse. Drained again, the batch gets a sequence anew
/// (its encoded bytes are then rewritten).
fn give_back_sequence(queue: &mut PartitionQueue, batch: &mut ProducerBatch) {
    if batch.attempts > 0 || batch.maybe_written {
        return;
    }
    let Some((id, epoch, sequence)) = batch.producer else {
        return;
    };
    let count = i32::try_from(batch.record_count()).unwrap_or(i32::MAX);
    if queue.sequence_owner == Some((id, epoch)) && queue.next_sequence == sequence_after(sequence, count) {
        queue.next_sequence = sequence;
        batch.producer = None;
    }
}
