//! When a batch may be sent under a producer identity (id, epoch) it was not first sent under.
//!
//! The broker deduplicates a retry by (producer id, epoch, sequence). When the producer must take a new
//! identity (the broker answered OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID, INVALID_PRODUCER_EPOCH
//! or PRODUCER_FENCED: it lost or refused this producer's state), sequences restart at 0 and the broker
//! can no longer recognise a batch it already wrote. So a batch moves to the new identity only if no
//! earlier attempt of it can have been written: every attempt got an answer that rejected it. A batch
//! with an attempt whose outcome is unknown (a timeout, a connection lost after the request went out,
//! a response without its partition) is failed with
//! [`Error::DeliveryUncertain`](super::Error::DeliveryUncertain) instead, as Java's client fails such a
//! batch with OutOfOrderSequenceException: resending it could write it twice.

use super::accumulator::ProducerState;

/// What to do with a batch about to be sent while the producer's identity is `current`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Assignment {
    /// It already carries `current`: resend with its sequence (the broker deduplicates).
    Keep,
    /// Give it the partition's next sequence under `current` (first send, or every earlier attempt was
    /// rejected).
    Next,
    /// An earlier attempt under another identity may have been written: fail it, do not send.
    Uncertain,
}

/// The decision for a batch that carries `assigned` (identity and base sequence, if ever sent) and
/// whose earlier attempts may have been written (`maybe_written`).
pub(crate) fn assignment(
    assigned: Option<(i64, i16, i32)>,
    maybe_written: bool,
    current: ProducerState,
) -> Assignment {
    match assigned {
        None => Assignment::Next,
        Some((id, epoch, _)) if (id, epoch) == current => Assignment::Keep,
        Some(_) if maybe_written => Assignment::Uncertain,
        Some(_) => Assignment::Next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_send_takes_the_next_sequence() {
        assert_eq!(assignment(None, false, (7, 0)), Assignment::Next);
    }

    #[test]
    fn a_retry_under_the_same_identity_keeps_its_sequence() {
        assert_eq!(assignment(Some((7, 0, 40)), false, (7, 0)), Assignment::Keep);
        assert_eq!(assignment(Some((7, 0, 40)), true, (7, 0)), Assignment::Keep);
    }

    #[test]
    fn a_rejected_batch_moves_to_a_new_identity() {
        assert_eq!(assignment(Some((7, 0, 40)), false, (8, 0)), Assignment::Next);
        assert_eq!(assignment(Some((7, 0, 40)), false, (7, 1)), Assignment::Next);
    }

    #[test]
    fn a_batch_that_may_have_been_written_is_never_resent_under_a_new_identity() {
        assert_eq!(assignment(Some((7, 0, 40)), true, (8, 0)), Assignment::Uncertain);
        assert_eq!(assignment(Some((7, 0, 40)), true, (7, 1)), Assignment::Uncertain);
    }
}
