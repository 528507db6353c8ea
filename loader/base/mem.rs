//! Bounds-checked views of a loaded object's memory.
//!
//! The dynamic section hands out addresses: of the string table, the symbol
//! table, hash tables, version tables, relocation tables. A malformed file
//! can point them anywhere. [`Memory`] knows which ranges belong to the
//! object, and a [`Table`] is only made over a range it contains, so every
//! later read is a plain bounds-checked index.
//!
//! # Why reading a table is safe
//!
//! A [`Table`] is a raw pointer and a length: it has no lifetime, because
//! the tables of an object live in the object itself beside the mapping
//! they point into. Soundness rests on two rules, both checked by the
//! compiler at the places that could break them:
//!
//! - Making a [`Memory`] is `unsafe` ([`Memory::new`]): its maker promises
//!   that the ranges stay mapped and readable while the `Memory` and every
//!   table made from it (and every copy of such a table) live. minld makes
//!   one in two places: the map stage, which keeps the image, the memory
//!   and the tables together in one owning value (`pipeline::map::Mapped`)
//!   whose parts are handed to an `Object` only through an `unsafe fn`, and
//!   the host's objects, which glibc keeps mapped.
//! - A table holds only [`Plain`] types: integers and the ELF structures
//!   goblin reads, valid for any bit pattern, so a read of whatever bytes a
//!   malformed file holds gives a value, never undefined behaviour. Only
//!   such tables are `Send` and `Sync`.
//!
//! A file's own bytes are checked with [`FileRange`]: an offset and a size
//! from a header must lie inside the file, without overflow.

use std::marker::PhantomData;

use crate::base::error::{Error, HeaderFault, SegmentFault, SegmentName};

/// The difference between where an object is and where it was linked to be.
///
/// Every virtual address of an object (a p_vaddr, a d_ptr, an st_value, an
/// r_offset) becomes a real one through [`LoadBias::at`], the one place the
/// wrapping addition is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadBias(pub usize);

impl LoadBias {
    /// The real address of a virtual address of the object.
    #[inline]
    pub fn at(self, vaddr: u64) -> usize {
        self.0.wrapping_add(vaddr as usize)
    }
}

/// Types a [`Table`] may hold: plain data, valid for any bit pattern, with
/// no pointers or drop glue.
///
/// # Safety
///
/// An implementor must be `Copy`, have no padding that matters and no
/// invalid bit patterns (every bit pattern of its size is a valid value),
/// so that reading it from arbitrary mapped bytes is sound.
pub(crate) unsafe trait Plain: Copy + 'static {}

// SAFETY: integers are valid for any bit pattern.
unsafe impl Plain for u8 {}
// SAFETY: as above.
unsafe impl Plain for u16 {}
// SAFETY: as above.
unsafe impl Plain for u32 {}
// SAFETY: as above.
unsafe impl Plain for u64 {}
// SAFETY: as above.
unsafe impl Plain for usize {}
// SAFETY: Elf64_Dyn is two u64 fields (`repr(C)` in goblin).
unsafe impl Plain for goblin::elf64::dynamic::Dyn {}
// SAFETY: Elf64_Rela is three 64-bit integer fields (`repr(C)` in goblin).
unsafe impl Plain for goblin::elf64::reloc::Rela {}
// SAFETY: Elf64_Sym is integer fields only (`repr(C)` in goblin).
unsafe impl Plain for goblin::elf64::sym::Sym {}

/// The address ranges of one object's PT_LOAD segments, in real addresses.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    ranges: Vec<(usize, usize)>,
}

impl Memory {
    /// The view of `ranges` (start, end), real addresses.
    ///
    /// # Safety
    ///
    /// Every range must be mapped and readable, and stay so while the
    /// returned `Memory` and every [`Table`] made from it (or copied from
    /// such a table) live.
    pub(crate) unsafe fn new(mut ranges: Vec<(usize, usize)>) -> Self {
        ranges.sort_unstable();
        Memory { ranges }
    }

    /// Whether `addr..addr+len` lies inside one of the ranges.
    pub(crate) fn contains(&self, addr: usize, len: usize) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        self.ranges.iter().any(|&(s, e)| addr >= s && end <= e)
    }

    /// A table of `count` elements of `T` at `addr`, if it lies inside.
    pub(crate) fn table<T: Plain>(&self, addr: usize, count: usize) -> Option<Table<T>> {
        let size = count.checked_mul(std::mem::size_of::<T>())?;
        if count == 0 {
            return Some(Table::empty());
        }
        self.contains(addr, size).then_some(Table {
            ptr: addr as *const T,
            len: count,
            _t: PhantomData,
        })
    }

    /// Reads one `T` at `addr`, if it lies inside.
    pub(crate) fn read<T: Plain>(&self, addr: usize) -> Option<T> {
        self.table::<T>(addr, 1)?.get(0)
    }

    /// The largest table of `T` starting at `addr` that fits in its range.
    pub(crate) fn table_to_end<T: Plain>(&self, addr: usize) -> Option<Table<T>> {
        let &(_, end) = self.ranges.iter().find(|&&(s, e)| addr >= s && addr < e)?;
        self.table(addr, (end - addr) / std::mem::size_of::<T>())
    }
}

/// A read-only array inside a loaded object, checked against its bounds once.
/// Made only by a [`Memory`], whose maker keeps the memory mapped while the
/// table lives.
pub(crate) struct Table<T> {
    ptr: *const T,
    len: usize,
    _t: PhantomData<T>,
}

impl<T> Clone for Table<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Table<T> {}

impl<T> std::fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({:#x}, {})", self.ptr as usize, self.len)
    }
}

// SAFETY: a Table of plain data is a read-only view of memory that stays
// mapped while it lives (the contract of `Memory::new`); reads through it are
// plain loads of values valid for any bit pattern, safe from any thread.
unsafe impl<T: Plain> Send for Table<T> {}
// SAFETY: as above: nothing is ever written through a Table.
unsafe impl<T: Plain> Sync for Table<T> {}

impl<T: Plain> Table<T> {
    /// A table of no elements, at no address.
    pub(crate) fn empty() -> Self {
        Table {
            ptr: std::ptr::NonNull::dangling().as_ptr(),
            len: 0,
            _t: PhantomData,
        }
    }

    /// The element count.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The real address of the first element.
    pub(crate) fn addr(&self) -> usize {
        self.ptr as usize
    }

    /// Element `i`, or None past the end.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<T> {
        if i < self.len {
            // SAFETY: the table was made by `Memory::table` over a range
            // inside the object's mapped segments, which stay mapped while
            // the table lives (`Memory::new`'s contract); `i` is in bounds
            // and T is `Plain`, valid for any bytes. Unaligned reads are
            // used because a malformed file may misalign a table.
            Some(unsafe { self.ptr.add(i).read_unaligned() })
        } else {
            None
        }
    }

    /// The sub-table `start..start+len`, if in bounds.
    pub(crate) fn slice(&self, start: usize, len: usize) -> Option<Table<T>> {
        let end = start.checked_add(len)?;
        (end <= self.len).then(|| Table {
            // SAFETY: start <= end <= self.len, so the pointer stays inside
            // (or one past) the checked range.
            ptr: unsafe { self.ptr.add(start) },
            len,
            _t: PhantomData,
        })
    }

    /// Iterates over the elements.
    pub(crate) fn iter(&self) -> impl Iterator<Item = T> + '_ {
        (0..self.len).filter_map(move |i| self.get(i))
    }
}

impl Table<u8> {
    /// The bytes of the table.
    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the table covers `len` readable bytes that stay mapped
        // while `self` (and so the returned borrow) lives.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Whether the NUL-terminated string at `offset` is `s` (without
    /// scanning for the NUL first, as strcmp would not).
    #[inline]
    pub(crate) fn c_str_is(&self, offset: usize, s: &[u8]) -> bool {
        let Some(end) = offset.checked_add(s.len()) else {
            return false;
        };
        if end >= self.len {
            return false;
        }
        // SAFETY: offset..=end lies inside the table (end < len), which
        // covers readable bytes that stay mapped while `self` lives.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr.add(offset), s.len() + 1) };
        bytes[s.len()] == 0 && &bytes[..s.len()] == s
    }

    /// The NUL-terminated string starting at `offset`, without the NUL.
    pub(crate) fn c_str(&self, offset: usize) -> Option<&[u8]> {
        if offset >= self.len {
            return None;
        }
        // SAFETY: offset < len and the table covers len readable bytes that
        // stay mapped while `self` (and so the returned borrow) lives.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr.add(offset), self.len - offset) };
        let n = bytes.iter().position(|&b| b == 0)?;
        Some(&bytes[..n])
    }
}

/// A range of the file named by two header fields: an offset and a size.
/// [`FileRange::end`] checks it once, for every header that locates file
/// data (program headers, PT_LOAD file data), and names the fields when it
/// does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileRange {
    /// The offset field's name and value (`p_offset`, `e_phoff`).
    pub(crate) offset: (&'static str, u64),
    /// The size field's name and value (`p_filesz`).
    pub(crate) size: (&'static str, u64),
}

/// Why a [`FileRange`] does not fit in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeError {
    /// offset + size overflows 64 bits.
    Overflows(FileRange),
    /// offset + size ends past the end of the file (`file_size` bytes).
    PastEnd(FileRange, u64),
}

impl FileRange {
    /// `offset` (field `offset_field`) and `size` (field `size_field`).
    pub(crate) fn new(
        offset_field: &'static str,
        offset: u64,
        size_field: &'static str,
        size: u64,
    ) -> Self {
        FileRange {
            offset: (offset_field, offset),
            size: (size_field, size),
        }
    }

    /// The end of the range, if it lies within `file_size` bytes.
    pub(crate) fn end(self, file_size: u64) -> Result<u64, RangeError> {
        let end = self
            .offset
            .1
            .checked_add(self.size.1)
            .ok_or(RangeError::Overflows(self))?;
        if end > file_size {
            return Err(RangeError::PastEnd(self, file_size));
        }
        Ok(end)
    }
}

impl RangeError {
    /// The error for a program header's range (`seg`).
    pub(crate) fn for_segment(self, path: &std::path::Path, seg: SegmentName) -> Error {
        match self {
            RangeError::Overflows(r) => Error::segments(
                path,
                seg,
                r.offset.0,
                r.offset.1,
                SegmentFault::Overflows {
                    plus: r.size.0,
                    size: r.size.1,
                },
            ),
            RangeError::PastEnd(r, file_size) => Error::segments(
                path,
                seg,
                r.offset.0,
                r.offset.1,
                SegmentFault::PastEndOfFile {
                    plus: r.size.0,
                    size: r.size.1,
                    file_size,
                },
            ),
        }
    }

    /// The error for a range the ELF header locates (the program headers).
    pub(crate) fn for_header(self, path: &std::path::Path) -> Error {
        match self {
            RangeError::Overflows(r) => {
                Error::header(path, r.offset.0, r.offset.1, HeaderFault::Overflows)
            }
            RangeError::PastEnd(r, _) => Error::header(
                path,
                r.offset.0,
                r.offset.1,
                HeaderFault::PastEnd { size: r.size.1 },
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_range_inside_the_file_gives_its_end() {
        let r = FileRange::new("p_offset", 0x1000, "p_filesz", 0x200);
        assert_eq!(r.end(0x1200), Ok(0x1200));
        assert_eq!(r.end(0x10000), Ok(0x1200));
        assert_eq!(
            FileRange::new("p_offset", 0x1200, "p_filesz", 0).end(0x1200),
            Ok(0x1200)
        );
    }

    #[test]
    fn a_range_past_the_end_names_its_fields() {
        let r = FileRange::new("p_offset", 0x1000, "p_filesz", 0x201);
        let e = r.end(0x1200).unwrap_err();
        assert_eq!(e, RangeError::PastEnd(r, 0x1200));
        let err = e.for_segment(Path::new("t.so"), SegmentName::Load(2));
        assert!(matches!(
            err,
            Error::BadSegments {
                segment: SegmentName::Load(2),
                field: "p_offset",
                found: 0x1000,
                fault: SegmentFault::PastEndOfFile {
                    plus: "p_filesz",
                    size: 0x201,
                    file_size: 0x1200
                },
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "t.so: PT_LOAD segment 2: p_offset 0x1000 + p_filesz 0x201 = 0x1201 is past the end of the file (0x1200 bytes)"
        );
    }

    #[test]
    fn an_overflowing_range_is_refused_before_the_size_check() {
        let r = FileRange::new("e_phoff", u64::MAX - 16, "program headers", 56);
        let e = r.end(u64::MAX).unwrap_err();
        assert_eq!(e, RangeError::Overflows(r));
        let err = e.for_header(Path::new("t.so"));
        assert!(matches!(
            err,
            Error::BadHeader {
                field: "e_phoff",
                fault: HeaderFault::Overflows,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            format!(
                "t.so: invalid ELF header: e_phoff {:#x} overflows",
                u64::MAX - 16
            )
        );
        let r = FileRange::new("e_phoff", 0x40, "program headers", 56);
        assert!(matches!(
            r.end(0x50).unwrap_err().for_header(Path::new("t.so")),
            Error::BadHeader {
                field: "e_phoff",
                found: 0x40,
                fault: HeaderFault::PastEnd { size: 56 },
                ..
            }
        ));
    }
}
