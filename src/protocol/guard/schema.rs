//! How a response's layout is described: fields, the versions they exist in, and their wire types.

/// The versions `min..=max` (empty when `min > max`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct V(pub(crate) i16, pub(crate) i16);

/// Open-ended upper bound (`"3+"` in Kafka's definitions).
pub(crate) const ANY: i16 = i16::MAX;
/// No version.
pub(crate) const NEVER: V = V(1, 0);

impl V {
    pub(crate) const fn contains(self, version: i16) -> bool {
        self.0 <= version && version <= self.1
    }
}

/// A wire type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Type {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    Uuid,
    /// `i16` length (compact: unsigned varint length + 1), then UTF-8.
    String,
    /// `i32` length (compact: unsigned varint length + 1), then the bytes.
    Bytes,
    /// A record set: bytes on this layer (record batches have their own decoder).
    Records,
    /// `i32` count (compact: unsigned varint count + 1), then the elements.
    Array(&'static Type),
    /// The fields in order; in flexible versions followed by a tagged-field section.
    Struct(&'static [Field]),
}

/// One field of a struct.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    /// The field's name (for errors).
    pub(crate) name: &'static str,
    /// The versions the field exists in.
    pub(crate) versions: V,
    /// The versions in which it may be null.
    pub(crate) nullable: V,
    /// Its tag and the versions in which it is a tagged field rather than a positional one.
    pub(crate) tag: Option<(i32, V)>,
    pub(crate) ty: Type,
}

impl Field {
    /// Whether the field sits in the struct's positional sequence at `version`.
    pub(crate) fn positional(&self, version: i16, flexible: bool) -> bool {
        self.versions.contains(version) && !self.tagged(version, flexible)
    }

    /// Whether the field is carried in the tagged-field section at `version`.
    pub(crate) fn tagged(&self, version: i16, flexible: bool) -> bool {
        flexible
            && self.versions.contains(version)
            && self.tag.is_some_and(|(_, versions)| versions.contains(version))
    }
}

/// A response message.
#[derive(Debug)]
pub(crate) struct Message {
    /// The first flexible version (compact encodings and tagged fields); `i16::MAX` for none.
    pub(crate) flexible_from: i16,
    /// The body's fields.
    pub(crate) fields: &'static [Field],
}

impl Type {
    /// The fewest bytes a value of this type takes on the wire (null where allowed, empty otherwise):
    /// what bounds how many elements a count may announce for the bytes left.
    pub(crate) fn min_size(self, version: i16, flexible: bool) -> usize {
        match self {
            Type::Bool | Type::Int8 => 1,
            Type::Int16 => 2,
            Type::Int32 => 4,
            Type::Int64 => 8,
            Type::Uuid => 16,
            Type::String if !flexible => 2,
            Type::Bytes | Type::Records | Type::Array(_) if !flexible => 4,
            Type::String | Type::Bytes | Type::Records | Type::Array(_) => 1,
            Type::Struct(fields) => {
                let positional: usize = fields
                    .iter()
                    .filter(|f| f.positional(version, flexible))
                    .map(|f| f.ty.min_size(version, flexible))
                    .sum();
                positional + usize::from(flexible)
            }
        }
    }
}
