//! Faults of the program headers: [`SegmentFault`] and the
//! [`SegmentName`] it concerns.

use std::fmt;

/// The program header a [`SegmentFault`] concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentName {
    /// The PT_LOAD at this index of the program header table.
    Load(usize),
    /// The PT_LOAD segments as a whole.
    Loads,
    /// PT_DYNAMIC.
    Dynamic,
    /// PT_GNU_RELRO.
    Relro,
    /// PT_TLS.
    Tls,
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentName::Load(i) => write!(f, "PT_LOAD segment {i}"),
            SegmentName::Loads => f.write_str("PT_LOAD"),
            SegmentName::Dynamic => f.write_str("PT_DYNAMIC"),
            SegmentName::Relro => f.write_str("PT_GNU_RELRO"),
            SegmentName::Tls => f.write_str("PT_TLS"),
        }
    }
}

/// What was wrong with a program header's field (`field` and `found` are
/// the variant's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentFault {
    /// `found` + the field `plus` (`size`) overflows 64 bits.
    Overflows {
        /// The field added to `found`.
        plus: &'static str,
        /// Its value.
        size: u64,
    },
    /// `found` + `plus` (`size`) ends past the end of the file.
    PastEndOfFile {
        /// The field added to `found`.
        plus: &'static str,
        /// Its value.
        size: u64,
        /// The size of the file.
        file_size: u64,
    },
    /// The value is larger than the field `than` (`limit`).
    Larger {
        /// The field it must not exceed.
        than: &'static str,
        /// Its value.
        limit: u64,
    },
    /// `found` + `plus` (`size`) is beyond the 47-bit address space.
    BeyondAddressSpace {
        /// The field added to `found`.
        plus: &'static str,
        /// Its value.
        size: u64,
    },
    /// An alignment that is not a power of two.
    NotPowerOfTwo,
    /// The value is above minld's limit for it.
    AboveLimit {
        /// The limit.
        limit: u64,
    },
    /// p_vaddr (`found`) and p_offset differ modulo the page size.
    NotCongruent {
        /// The p_offset.
        offset: u64,
        /// The page size.
        page: u64,
    },
    /// p_vaddr (`found`) is below the end of the PT_LOAD before it.
    Overlaps {
        /// That segment's index.
        previous: usize,
        /// Its end: p_vaddr + p_memsz.
        end: u64,
    },
    /// The file has no such segment (`found` is its p_type).
    Missing,
    /// The segment at p_vaddr `found` is not inside the PT_LOAD memory it
    /// must lie in.
    NotInside {
        /// The size field checked (`p_memsz`, or `p_filesz` for file data).
        size_field: &'static str,
        /// Its value.
        size: u64,
        /// What the PT_LOAD must be: `writable`, `readable`, or a
        /// segment's `file data`.
        within: &'static str,
    },
    /// PT_TLS (p_vaddr `found`) cannot be given a TLS block.
    BadTls {
        /// Its p_filesz.
        filesz: u64,
        /// Its p_memsz.
        memsz: u64,
        /// Its p_align.
        align: u64,
    },
}

impl SegmentFault {
    /// The message for `field` of `seg` holding `found`.
    pub(crate) fn render(&self, seg: SegmentName, field: &str, found: u64) -> String {
        match *self {
            SegmentFault::Overflows { plus, size } => {
                format!("{seg}: {field} {found:#x} + {plus} {size:#x} overflows")
            }
            SegmentFault::PastEndOfFile {
                plus,
                size,
                file_size,
            } => format!(
                "{seg}: {field} {found:#x} + {plus} {size:#x} = {:#x} is past the end of the file ({file_size:#x} bytes)",
                found.wrapping_add(size)
            ),
            SegmentFault::Larger { than, limit } => {
                format!("{seg}: {field} {found:#x} is larger than {than} {limit:#x}")
            }
            SegmentFault::BeyondAddressSpace { plus, size } => {
                format!("{seg}: {field} {found:#x} + {plus} {size:#x} is beyond the address space")
            }
            SegmentFault::NotPowerOfTwo => format!("{seg}: {field} {found:#x} is not a power of two"),
            SegmentFault::AboveLimit { limit } if seg == SegmentName::Tls => format!(
                "{seg}: {field} {found:#x} is larger than minld's limit for a TLS block ({limit:#x})"
            ),
            SegmentFault::AboveLimit { limit } => format!(
                "{seg}: {field} {found:#x} is larger than minld's limit ({limit:#x}): \
                 the reservation would be p_align bytes larger than the image"
            ),
            SegmentFault::NotCongruent { offset, page } => format!(
                "{seg}: {field} {found:#x} and p_offset {offset:#x} are not congruent modulo the page size ({page:#x})"
            ),
            SegmentFault::Overlaps { previous, end } => format!(
                "{seg}: {field} {found:#x} is below the end {end:#x} of PT_LOAD segment {previous}: \
                 segments out of order or overlapping"
            ),
            SegmentFault::Missing if seg == SegmentName::Dynamic => {
                format!("no {seg} segment: not a dynamic object")
            }
            SegmentFault::Missing => format!("no {seg} segment"),
            SegmentFault::NotInside {
                size_field,
                size,
                within,
            } => {
                let what = if seg == SegmentName::Tls {
                    "PT_TLS (its initialisation image)"
                } else {
                    ""
                };
                let what = if what.is_empty() { seg.to_string() } else { what.to_string() };
                if within == "file data" {
                    format!("{what} at {field} {found:#x} ({size_field} {size:#x}) lies outside every PT_LOAD segment's file data")
                } else {
                    format!("{what} at {field} {found:#x} ({size_field} {size:#x}) is not inside a {within} PT_LOAD segment")
                }
            }
            SegmentFault::BadTls {
                filesz,
                memsz,
                align,
            } => format!(
                "{seg}: bad TLS segment (vaddr {found:#x}, filesz {filesz:#x}, memsz {memsz:#x}, align {align:#x})"
            ),
        }
    }
}
