//! Which producer identity (id, epoch) and sequence a batch is sent with, when the identity may have
//! changed since its first attempt.
//!
//! The broker deduplicates a retry by (producer id, epoch, sequence), and keeps those sequences per
//! partition. When it answers OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID, INVALID_PRODUCER_EPOCH
//! or PRODUCER_FENCED for a batch, it lost or refused this producer's sequences *of that partition*
//! (a gap after a batch that expired unwritten, a producer state it dropped): the partition no longer
//! trusts the identity, and the producer takes a new one (an epoch bump, or a new id). Partitions
//! move to the new identity one by one, each at sequence 0 with its next batch not sent before, as
//! Java's client does; meanwhile a retry keeps the identity and sequence it was first sent with as long
//! as its partition still trusts that identity, since the broker still holds those sequences and
//! discards a copy it already wrote.
//!
//! A batch whose partition no longer trusts its identity moves to the current one only if no earlier
//! attempt of it can have been written: every attempt got an answer that rejected it. One with an
//! attempt whose outcome is unknown (a timeout, a connection lost after the request went out, a
//! response without its partition) is failed with
//! [`Error::DeliveryUncertain`](super::Error::DeliveryUncertain) instead: resending it could write it
//! twice. (Java's client, since 2.5, bumps its epoch locally and resends such a batch.)
//!
//! A batch that fails for good once it carries a sequence (it expired, after an unanswered attempt or
//! not, or the broker rejected it) leaves its partition's sequences unresolved: the broker may hold it
//! or not, and a next batch would follow a possible gap (refused with OUT_OF_ORDER_SEQUENCE_NUMBER if
//! it is one). As Java's client bumps its epoch then, the partition sends nothing more under that
//! identity, the producer takes a new one, and the partition restarts at sequence 0 under it; a retry
//! of that next batch is then deduplicated like any other. Whether the partition waits is decided by
//! the renewal generation, not the id and epoch, which a renewal may hand out again.

use super::accumulator::ProducerState;

/// What to do with a batch about to be sent while the producer's identity is `current`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Assignment {
    /// Resend it with the identity and sequence it carries (the broker deduplicates).
    Keep,
    /// Give it the partition's next sequence under `current` (first send, or every earlier attempt was
    /// rejected).
    Next,
    /// An earlier attempt under an identity its partition no longer trusts may have been written: fail
    /// it, do not send.
    Uncertain,
}

/// The decision for a batch that carries `assigned` (identity and base sequence, if ever sent) and
/// whose earlier attempts may have been written (`maybe_written`), in a partition whose sequences
/// belong to `trusted` (`None` once the broker refused them).
pub(crate) fn assignment(
    assigned: Option<(i64, i16, i32)>,
    maybe_written: bool,
    trusted: Option<ProducerState>,
) -> Assignment {
    match assigned {
        None => Assignment::Next,
        Some((id, epoch, _)) if Some((id, epoch)) == trusted => Assignment::Keep,
        Some(_) if maybe_written => Assignment::Uncertain,
        Some(_) => Assignment::Next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_send_takes_the_next_sequence() {
        assert_eq!(assignment(None, false, None), Assignment::Next);
        assert_eq!(assignment(None, false, Some((7, 0))), Assignment::Next);
    }

    #[test]
    fn a_retry_keeps_its_sequence_while_its_partition_trusts_its_identity() {
        assert_eq!(
            assignment(Some((7, 0, 40)), false, Some((7, 0))),
            Assignment::Keep
        );
        assert_eq!(assignment(Some((7, 0, 40)), true, Some((7, 0))), Assignment::Keep);
    }

    #[test]
    fn a_rejected_batch_of_a_refused_partition_moves_to_the_new_identity() {
        assert_eq!(assignment(Some((7, 0, 40)), false, None), Assignment::Next);
    }

    #[test]
    fn a_batch_that_may_have_been_written_is_never_resent_under_a_new_identity() {
        assert_eq!(assignment(Some((7, 0, 40)), true, None), Assignment::Uncertain);
    }
}
