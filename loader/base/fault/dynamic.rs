//! Faults of the dynamic section and the tables it locates:
//! [`DynamicFault`].

/// What was wrong with a tag of the dynamic section or a table it locates
/// (`field` and `found` are the variant's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DynamicFault {
    /// The tag is absent.
    Missing,
    /// The table at `found` does not lie inside the object's readable
    /// memory; `count` of `unit` is its size, where known.
    Outside {
        /// Its size, where known.
        count: Option<u64>,
        /// What `count` counts (`bytes`, `entries`, `symbols`).
        unit: &'static str,
    },
    /// The field must hold `expected`.
    Expected {
        /// The only value accepted.
        expected: u64,
    },
    /// A string offset (`found`) outside DT_STRTAB.
    StringOutside {
        /// DT_STRSZ.
        strsz: u64,
    },
    /// A table size (`found`) given without the table's address.
    SizeWithoutAddress,
    /// A table size (`found`) that is not a multiple of its entry size.
    NotMultiple {
        /// The entry size.
        entry: u64,
    },
    /// An offset (`found`) that overflows the address space.
    Overflows,
    /// The DT_GNU_HASH header (at `found`) is inconsistent.
    GnuHashHeader {
        /// Its nbuckets.
        nbuckets: u64,
        /// Its Bloom filter size, in words.
        bloom_size: u64,
        /// Its Bloom shift.
        shift: u64,
    },
    /// A DT_GNU_HASH bucket (`found`) names no symbol of the table.
    BucketOutside {
        /// The first hashed symbol.
        symoffset: u64,
        /// The symbol count.
        nsyms: u64,
    },
    /// No DT_NULL before the end of the segment (`found` entries read).
    Unterminated,
    /// An init function's address (`found`) is outside the object's code.
    NotInCode,
    /// A TLS symbol (value `found`) in an object without a PT_TLS segment.
    NoTlsSegment,
}

impl DynamicFault {
    /// The message for `field` holding `found`.
    pub(crate) fn render(&self, field: &str, found: u64) -> String {
        match *self {
            DynamicFault::Missing => format!("no {field}"),
            DynamicFault::Outside { count: None, .. } => {
                format!("{field} at {found:#x} outside the image")
            }
            DynamicFault::Outside {
                count: Some(n),
                unit,
            } => format!("{field} at {found:#x} ({n} {unit}) outside the image"),
            DynamicFault::Expected { expected } => format!("{field} {found} (expected {expected})"),
            DynamicFault::StringOutside { strsz } => {
                format!("{field} string offset {found:#x} outside DT_STRTAB (size {strsz})")
            }
            DynamicFault::SizeWithoutAddress => {
                format!("{field} size {found} without an address")
            }
            DynamicFault::NotMultiple { entry } => {
                format!("{field} size {found} is not a multiple of its entry size {entry}")
            }
            DynamicFault::Overflows => format!("{field} {found:#x} overflows"),
            DynamicFault::GnuHashHeader {
                nbuckets,
                bloom_size,
                shift,
            } => format!(
                "{field} header at {found:#x}: nbuckets {nbuckets}, bloom size {bloom_size}, shift {shift}"
            ),
            DynamicFault::BucketOutside { symoffset, nsyms } => {
                format!("{field} {found} outside symbols {symoffset}..{nsyms}")
            }
            DynamicFault::Unterminated => {
                format!("no {field} before the end of the segment ({found} entries)")
            }
            DynamicFault::NotInCode => {
                format!("{field} {found:#x} is outside the object's code")
            }
            DynamicFault::NoTlsSegment => format!(
                "a TLS symbol ({field} {found:#x}) in an object without a PT_TLS segment"
            ),
        }
    }
}
