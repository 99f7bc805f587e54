//! What the sender does with a batch, given the error code its partition was answered with in a
//! Produce response.

use crate::protocol::ResponseError;

/// The sender's next step for a batch its partition answered with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartitionAnswer {
    /// The broker already holds the batch (a retry of a write that succeeded): it is acknowledged.
    Duplicate,
    /// The broker refused the producer identity's sequences for the partition: retried under a new
    /// identity (see `idempotence`).
    SequenceRefused,
    /// Retried after the backoff.
    Retry {
        /// The leader may have moved: metadata is refreshed first.
        refresh: bool,
        /// The leader may have appended the batch before answering (it waited for replicas in vain):
        /// the batch counts as possibly written.
        maybe_written: bool,
    },
    /// Failed for good.
    Reject,
}

/// The step for an error `code` in a partition's answer.
pub(crate) fn partition_answer(code: ResponseError) -> PartitionAnswer {
    match code {
        ResponseError::DuplicateSequenceNumber => PartitionAnswer::Duplicate,
        ResponseError::OutOfOrderSequenceNumber
        | ResponseError::UnknownProducerId
        | ResponseError::InvalidProducerEpoch
        | ResponseError::ProducerFenced => PartitionAnswer::SequenceRefused,
        code if code.is_retriable() => PartitionAnswer::Retry {
            refresh: matches!(
                code,
                ResponseError::NotLeaderOrFollower
                    | ResponseError::LeaderNotAvailable
                    | ResponseError::UnknownTopicOrPartition
                    | ResponseError::FencedLeaderEpoch
                    | ResponseError::KafkaStorageError
            ),
            maybe_written: matches!(
                code,
                ResponseError::RequestTimedOut | ResponseError::NotEnoughReplicasAfterAppend
            ),
        },
        _ => PartitionAnswer::Reject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_waiting_for_replicas_may_have_been_appended() {
        for code in [
            ResponseError::RequestTimedOut,
            ResponseError::NotEnoughReplicasAfterAppend,
        ] {
            assert_eq!(
                partition_answer(code),
                PartitionAnswer::Retry {
                    refresh: false,
                    maybe_written: true
                },
                "{code:?}"
            );
        }
    }

    #[test]
    fn a_refusal_before_appending_was_not_written() {
        for code in [
            ResponseError::NotEnoughReplicas,
            ResponseError::CorruptMessage,
            ResponseError::NetworkException,
        ] {
            assert!(
                matches!(
                    partition_answer(code),
                    PartitionAnswer::Retry {
                        maybe_written: false,
                        ..
                    }
                ),
                "{code:?}"
            );
        }
        assert_eq!(
            partition_answer(ResponseError::NotLeaderOrFollower),
            PartitionAnswer::Retry {
                refresh: true,
                maybe_written: false
            }
        );
        assert_eq!(
            partition_answer(ResponseError::MessageTooLarge),
            PartitionAnswer::Reject
        );
    }

    #[test]
    fn sequence_answers_concern_the_identity() {
        assert_eq!(
            partition_answer(ResponseError::DuplicateSequenceNumber),
            PartitionAnswer::Duplicate
        );
        assert_eq!(
            partition_answer(ResponseError::OutOfOrderSequenceNumber),
            PartitionAnswer::SequenceRefused
        );
    }
}
