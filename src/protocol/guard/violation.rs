//! What the guard found wrong with a response.

use std::fmt;

/// Why a response was rejected before decoding (see [`Error::Malformed`](crate::protocol::Error::Malformed)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// An array announced more elements than the bytes left can hold.
    CountTooLarge {
        /// The count on the wire.
        count: u64,
        /// The bytes left in the frame.
        left: usize,
    },
    /// A string, bytes or record-set length runs past the end of the frame.
    LengthTooLarge {
        /// The length on the wire.
        length: u64,
        /// The bytes left in the frame.
        left: usize,
    },
    /// A length or count below `-1`.
    NegativeLength {
        /// The length on the wire.
        length: i64,
    },
    /// A null where this version does not allow one.
    UnexpectedNull,
    /// The frame ends inside a field.
    Truncated {
        /// The bytes the field needs.
        needed: usize,
        /// The bytes left in the frame.
        left: usize,
    },
    /// A known tagged field whose value does not fill the size its header announced.
    TaggedFieldSize {
        /// The announced size.
        size: usize,
        /// The bytes its value took.
        used: usize,
    },
    /// A response of an API whose layout the guard does not know.
    UnknownLayout,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::CountTooLarge { count, left } => {
                write!(f, "count {count} cannot fit in the {left} bytes left")
            }
            Violation::LengthTooLarge { length, left } => {
                write!(f, "length {length} runs past the {left} bytes left")
            }
            Violation::NegativeLength { length } => write!(f, "negative length {length}"),
            Violation::UnexpectedNull => f.write_str("null where the version allows none"),
            Violation::Truncated { needed, left } => {
                write!(f, "needs {needed} bytes, {left} left")
            }
            Violation::TaggedFieldSize { size, used } => {
                write!(
                    f,
                    "tagged field announces {size} bytes but its value takes {used}"
                )
            }
            Violation::UnknownLayout => f.write_str("no known layout for this response"),
        }
    }
}
