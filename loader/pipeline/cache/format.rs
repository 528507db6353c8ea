//! The link record's layout, and its one parser. A record is read where it
//! is mapped: [`Record`] checks the header, the checksum and every count
//! and offset once, and its accessors then read fields straight from the
//! bytes (little-endian words at fixed offsets), so a cached load touches
//! only the record's pages and builds nothing on the heap from them.
//!
//! The layout, version 2 (every offset from the start of the file, every
//! section 8-byte aligned):
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `minldlc\0` |
//! | 8..12 | format version |
//! | 12..16 | flags (bit 0: bound now) |
//! | 16..24 | total length |
//! | 24..32 | checksum of bytes 32.. ([`checksum`]) |
//! | 32..36, 36..40 | scope members, objects |
//! | 40..48, 48..56 | offset of the scope table, of the object table |
//! | 56..64 | reserved (0) |
//!
//! A scope member ([`MEMBER_SIZE`] bytes): device, inode, size, mtime
//! seconds and nanoseconds, ctime seconds and nanoseconds (all 0 for a
//! host object, recognised by its build-id alone), kind (0 the host's, 1
//! minld's), padding, a hash of its build-id note (0: none).
//!
//! An object ([`OBJECT_SIZE`] bytes): its scope position, its symbol
//! count, its DT_RELA and DT_JMPREL entry counts, the length of DT_RELA's
//! leading run of RELATIVE relocations, that run as RELR words (offset,
//! count), its addends where the file does not hold them in place (offset,
//! or 0), its bindings (offset, count), reserved (0), the lowest address
//! the run writes and the end of the highest.
//!
//! A binding ([`BINDING_SIZE`] bytes): the referencing symbol index, the
//! defining scope position ([`NOWHERE`]: a weak reference nobody defines),
//! the definition's `st_value`, `st_size`, symbol type, flags
//! ([`UNIQUE`], [`INTERPOSED`]), padding.

use thiserror::Error;

/// The file's first eight bytes.
pub(crate) const MAGIC: &[u8; 8] = b"minldlc\0";
/// The layout's version; a record of another version is not read.
pub(crate) const VERSION: u32 = 2;
/// Header flag: the load bound every function now.
pub(crate) const BOUND_NOW: u32 = 1;
/// The header's size.
pub(crate) const HEADER_SIZE: usize = 64;
/// A scope member's size.
pub(crate) const MEMBER_SIZE: usize = 72;
/// An object's size.
pub(crate) const OBJECT_SIZE: usize = 96;
/// A binding's size.
pub(crate) const BINDING_SIZE: usize = 32;
/// A binding's member for a weak reference nobody defines (value 0).
pub(crate) const NOWHERE: u32 = u32::MAX;
/// Binding flag: the namespace's first STB_GNU_UNIQUE definition decides.
pub(crate) const UNIQUE: u8 = 1;
/// Binding flag: minld's replacement of a host function decides.
pub(crate) const INTERPOSED: u8 = 2;

/// Why bytes are not a usable link record, with the values found.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    /// Shorter than a header, or than its own length field says.
    #[error("record is {found} bytes, needs {needed}")]
    Truncated {
        /// Bytes present.
        found: u64,
        /// Bytes the header or a table needs.
        needed: u64,
    },
    /// Not a link record.
    #[error("bad magic {found:02x?}")]
    Magic {
        /// The first eight bytes.
        found: [u8; 8],
    },
    /// Written by another version of the layout.
    #[error("record format version {found}, this minld reads {VERSION}")]
    Version {
        /// The version found.
        found: u32,
    },
    /// Longer than its length field says.
    #[error("record is {found} bytes, its header says {expected}")]
    Length {
        /// Bytes present.
        found: u64,
        /// The header's length.
        expected: u64,
    },
    /// The contents do not match their checksum.
    #[error("checksum {found:#018x}, contents hash to {computed:#018x}")]
    Checksum {
        /// The stored checksum.
        found: u64,
        /// The checksum of the bytes.
        computed: u64,
    },
    /// A table lies outside the record or is misaligned.
    #[error("{table} at offset {offset} with {count} entries lies outside the {len}-byte record")]
    Table {
        /// Which table.
        table: &'static str,
        /// Its offset.
        offset: u64,
        /// Its entry count.
        count: u64,
        /// The record's length.
        len: u64,
    },
    /// A scope position outside the scope table.
    #[error("{what} names scope member {found}, the record has {members}")]
    Member {
        /// What names it.
        what: &'static str,
        /// The position found.
        found: u32,
        /// Scope members recorded.
        members: u32,
    },
    /// A field with a value the layout does not allow.
    #[error("{field} is {found}")]
    Field {
        /// The field.
        field: &'static str,
        /// Its value.
        found: u64,
    },
}

/// The record's checksum: each 8-byte word (the tail zero-padded) mixed
/// in by xor, multiplication by an odd constant and rotation. Every step
/// is a bijection of the running value, so changing any one word changes
/// the result; it guards against damage (a truncated or bit-flipped
/// file), not against an adversary (see the README on trust).
pub(crate) fn checksum(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    h = (h ^ u64::from_le_bytes(tail))
        .wrapping_mul(K)
        .rotate_left(29);
    h ^ (h >> 31)
}

/// Stores in `bytes` (a record's, at least a header long) the checksum
/// of what follows its first 32 bytes; shorter bytes are left alone.
pub(crate) fn reseal(bytes: &mut [u8]) {
    if bytes.len() >= HEADER_SIZE {
        let sum = checksum(&bytes[32..]);
        bytes[24..32].copy_from_slice(&sum.to_le_bytes());
    }
}

/// A little-endian u32 at `at`; 0 outside (callers check bounds first).
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// A little-endian u64 at `at`; 0 outside (callers check bounds first).
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// A checked record: the bytes, proven to hold a well-formed layout.
#[derive(Clone, Copy)]
pub(crate) struct Record<'a> {
    /// The whole record.
    bytes: &'a [u8],
}

/// One scope member as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    /// Device, inode, size, mtime (seconds, nanoseconds).
    pub(crate) id: Ident,
    /// Kind: 0 the host's, 1 minld's.
    pub(crate) minld: bool,
    /// A hash of its build-id note (0: none).
    pub(crate) build_id: u64,
}

/// A file's identity as the cache compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Ident {
    /// st_dev.
    pub(crate) dev: u64,
    /// st_ino.
    pub(crate) ino: u64,
    /// st_size.
    pub(crate) size: u64,
    /// st_mtime, seconds and nanoseconds.
    pub(crate) mtime: (i64, i64),
    /// st_ctime, seconds and nanoseconds.
    pub(crate) ctime: (i64, i64),
}

impl std::fmt::Display for Ident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "device {:#x} inode {}, {} bytes, mtime {}.{:09}, ctime {}.{:09}",
            self.dev, self.ino, self.size, self.mtime.0, self.mtime.1, self.ctime.0, self.ctime.1
        )
    }
}

/// One object's entry.
#[derive(Clone, Copy)]
pub(crate) struct ObjectEntry<'a> {
    /// The record.
    bytes: &'a [u8],
    /// The entry's offset.
    at: usize,
}

/// One binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Binding {
    /// The referencing symbol's index.
    pub(crate) symi: u32,
    /// The defining scope member ([`NOWHERE`]: none).
    pub(crate) member: u32,
    /// st_value of the definition.
    pub(crate) st_value: u64,
    /// st_size of the definition.
    pub(crate) st_size: u64,
    /// STT_* of the definition.
    pub(crate) kind: u8,
    /// [`UNIQUE`], [`INTERPOSED`].
    pub(crate) flags: u8,
}

/// A table of `count` entries of `size` bytes at `offset`, checked to lie
/// inside `len` bytes and be 8-byte aligned.
fn table(
    name: &'static str,
    offset: u64,
    count: u64,
    size: u64,
    len: usize,
) -> Result<(), RecordError> {
    let bad = || RecordError::Table {
        table: name,
        offset,
        count,
        len: len as u64,
    };
    let end = count
        .checked_mul(size)
        .and_then(|n| n.checked_add(offset))
        .ok_or_else(bad)?;
    if offset % 8 != 0 || offset < HEADER_SIZE as u64 && count > 0 || end > len as u64 {
        return Err(bad());
    }
    Ok(())
}

impl<'a> Record<'a> {
    /// Checks `bytes`: header, length, checksum, then every table and
    /// every scope position, so the accessors need no further checks.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Record<'a>, RecordError> {
        let len = bytes.len();
        if len < HEADER_SIZE {
            return Err(RecordError::Truncated {
                found: len as u64,
                needed: HEADER_SIZE as u64,
            });
        }
        let magic: [u8; 8] = bytes[..8].try_into().unwrap_or([0; 8]);
        if &magic != MAGIC {
            return Err(RecordError::Magic { found: magic });
        }
        if u32_at(bytes, 8) != VERSION {
            return Err(RecordError::Version {
                found: u32_at(bytes, 8),
            });
        }
        let expected = u64_at(bytes, 16);
        if expected > len as u64 {
            return Err(RecordError::Truncated {
                found: len as u64,
                needed: expected,
            });
        }
        if expected != len as u64 {
            return Err(RecordError::Length {
                found: len as u64,
                expected,
            });
        }
        let (found, computed) = (u64_at(bytes, 24), checksum(&bytes[32..]));
        if found != computed {
            return Err(RecordError::Checksum { found, computed });
        }
        let r = Record { bytes };
        r.check_tables()?;
        Ok(r)
    }

    /// Every table inside the record, every scope position inside the
    /// scope table.
    fn check_tables(&self) -> Result<(), RecordError> {
        let (b, len) = (self.bytes, self.bytes.len());
        let members = self.members();
        table(
            "scope table",
            u64_at(b, 40),
            u64::from(members),
            MEMBER_SIZE as u64,
            len,
        )?;
        let objects = u32_at(b, 36);
        table(
            "object table",
            u64_at(b, 48),
            u64::from(objects),
            OBJECT_SIZE as u64,
            len,
        )?;
        for i in 0..self.members() as usize {
            let kind = u32_at(b, self.member_at(i) + 56);
            if kind > 1 {
                return Err(RecordError::Field {
                    field: "scope member kind",
                    found: u64::from(kind),
                });
            }
        }
        for i in 0..objects as usize {
            let o = self.object(i);
            if o.member() >= members {
                return Err(RecordError::Member {
                    what: "an object",
                    found: o.member(),
                    members,
                });
            }
            let run_words = u64_at(b, o.at + 40);
            table("RELR words", u64_at(b, o.at + 32), run_words, 8, len)?;
            if o.run() > o.rela_len() {
                return Err(RecordError::Field {
                    field: "RELATIVE run longer than DT_RELA",
                    found: o.run(),
                });
            }
            let addends = u64_at(b, o.at + 48);
            if addends != 0 {
                table("addends", addends, o.run(), 8, len)?;
            }
            table(
                "bindings",
                u64_at(b, o.at + 56),
                o.binding_count() as u64,
                BINDING_SIZE as u64,
                len,
            )?;
            for k in 0..o.binding_count() {
                let m = o.binding(k).member;
                if m != NOWHERE && m >= members {
                    return Err(RecordError::Member {
                        what: "a binding",
                        found: m,
                        members,
                    });
                }
            }
        }
        Ok(())
    }

    /// A record [`Record::parse`] accepted before (the same bytes, still
    /// mapped): its checks are not made again.
    pub(crate) fn already_checked(bytes: &'a [u8]) -> Record<'a> {
        Record { bytes }
    }

    /// The header's flags.
    pub(crate) fn flags(&self) -> u32 {
        u32_at(self.bytes, 12)
    }

    /// Scope members recorded.
    pub(crate) fn members(&self) -> u32 {
        u32_at(self.bytes, 32)
    }

    /// Objects recorded.
    pub(crate) fn objects(&self) -> usize {
        u32_at(self.bytes, 36) as usize
    }

    /// Offset of member `i`.
    fn member_at(&self, i: usize) -> usize {
        u64_at(self.bytes, 40) as usize + i * MEMBER_SIZE
    }

    /// Scope member `i` (< [`Record::members`]).
    pub(crate) fn member(&self, i: usize) -> Member {
        let (b, at) = (self.bytes, self.member_at(i));
        Member {
            id: Ident {
                dev: u64_at(b, at),
                ino: u64_at(b, at + 8),
                size: u64_at(b, at + 16),
                mtime: (u64_at(b, at + 24) as i64, u64_at(b, at + 32) as i64),
                ctime: (u64_at(b, at + 40) as i64, u64_at(b, at + 48) as i64),
            },
            minld: u32_at(b, at + 56) == 1,
            build_id: u64_at(b, at + 64),
        }
    }

    /// Object `i` (< [`Record::objects`]).
    pub(crate) fn object(&self, i: usize) -> ObjectEntry<'a> {
        ObjectEntry {
            bytes: self.bytes,
            at: u64_at(self.bytes, 48) as usize + i * OBJECT_SIZE,
        }
    }
}

impl<'a> ObjectEntry<'a> {
    /// Its scope position.
    pub(crate) fn member(&self) -> u32 {
        u32_at(self.bytes, self.at)
    }
    /// Its symbol count.
    pub(crate) fn symbols(&self) -> u64 {
        u64::from(u32_at(self.bytes, self.at + 4))
    }
    /// Its DT_RELA entry count.
    pub(crate) fn rela_len(&self) -> u64 {
        u64_at(self.bytes, self.at + 8)
    }
    /// Its DT_JMPREL entry count.
    pub(crate) fn jmprel_len(&self) -> u64 {
        u64_at(self.bytes, self.at + 16)
    }
    /// DT_RELA's leading RELATIVE relocations the RELR words replace.
    pub(crate) fn run(&self) -> u64 {
        u64_at(self.bytes, self.at + 24)
    }
    /// The run as RELR words.
    pub(crate) fn relr(&self) -> impl Iterator<Item = u64> + 'a {
        let (off, n) = (
            u64_at(self.bytes, self.at + 32) as usize,
            u64_at(self.bytes, self.at + 40) as usize,
        );
        let b = self.bytes;
        (0..n).map(move |k| u64_at(b, off + 8 * k))
    }
    /// The run's addends in the order the RELR words name their
    /// addresses, where the file does not hold them in place.
    pub(crate) fn addends(&self) -> Option<impl Fn(usize) -> u64 + 'a> {
        let off = u64_at(self.bytes, self.at + 48) as usize;
        let b = self.bytes;
        (off != 0).then_some(move |k: usize| u64_at(b, off + 8 * k))
    }
    /// The virtual addresses the run writes: from the lowest to the end of
    /// the highest.
    pub(crate) fn span(&self) -> (u64, u64) {
        (
            u64_at(self.bytes, self.at + 80),
            u64_at(self.bytes, self.at + 88),
        )
    }
    /// Its bindings.
    pub(crate) fn binding_count(&self) -> usize {
        u64_at(self.bytes, self.at + 64) as usize
    }
    /// Binding `k` (< [`ObjectEntry::binding_count`]).
    pub(crate) fn binding(&self, k: usize) -> Binding {
        let at = u64_at(self.bytes, self.at + 56) as usize + k * BINDING_SIZE;
        let b = self.bytes;
        Binding {
            symi: u32_at(b, at),
            member: u32_at(b, at + 4),
            st_value: u64_at(b, at + 8),
            st_size: u64_at(b, at + 16),
            kind: b.get(at + 24).copied().unwrap_or(0),
            flags: b.get(at + 25).copied().unwrap_or(0),
        }
    }
}

/// Appends little-endian fields; what `record` writes records with.
#[derive(Default)]
pub(crate) struct Writer {
    /// The bytes so far.
    pub(crate) out: Vec<u8>,
}

impl Writer {
    /// Appends a u32.
    pub(crate) fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    /// Appends a u64.
    pub(crate) fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    /// The current length (the next field's offset).
    pub(crate) fn len(&self) -> u64 {
        self.out.len() as u64
    }
    /// Overwrites the u64 at `at` (a header field filled in last).
    pub(crate) fn patch_u64(&mut self, at: usize, v: u64) {
        self.out[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
}
