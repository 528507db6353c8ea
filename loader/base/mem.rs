//! Bounds-checked views of a loaded object's memory.
//!
//! The dynamic section hands out addresses: of the string table, the symbol
//! table, hash tables, version tables, relocation tables. A malformed file
//! can point them anywhere. [`Memory`] knows which ranges belong to the
//! object, and a [`Table`] is only made over a range it contains, so every
//! later read is a plain bounds-checked index.

use std::marker::PhantomData;

/// The address ranges of one object's PT_LOAD segments, in real addresses.
#[derive(Debug, Clone, Default)]
pub(crate) struct Memory {
    ranges: Vec<(usize, usize)>,
}

impl Memory {
    pub(crate) fn new(mut ranges: Vec<(usize, usize)>) -> Self {
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
    pub(crate) fn table<T: Copy>(&self, addr: usize, count: usize) -> Option<Table<T>> {
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
    pub(crate) fn read<T: Copy>(&self, addr: usize) -> Option<T> {
        self.table::<T>(addr, 1)?.get(0)
    }

    /// The largest table of `T` starting at `addr` that fits in its range.
    pub(crate) fn table_to_end<T: Copy>(&self, addr: usize) -> Option<Table<T>> {
        let &(_, end) = self.ranges.iter().find(|&&(s, e)| addr >= s && addr < e)?;
        self.table(addr, (end - addr) / std::mem::size_of::<T>())
    }
}

/// A read-only array inside a loaded object, checked against its bounds once.
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

// SAFETY: a Table is a read-only view of memory owned by a loaded object,
// which outlives every Table made over it (tables live inside the object's
// own structures); reads through it are plain loads, safe from any thread.
unsafe impl<T> Send for Table<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Table<T> {}

impl<T: Copy> Table<T> {
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
            // the table lives; `i` is in bounds. Unaligned reads are used
            // because a malformed file may misalign a table.
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
