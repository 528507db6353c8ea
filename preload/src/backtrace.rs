//! `backtrace_symbols` and `backtrace_symbols_fd` (`<execinfo.h>`).
//!
//! glibc's name each address through its internal `_dl_addr`, which knows
//! only glibc's objects: a frame in a library minld loaded would print as
//! a bare `[0x…]`. These name minld's frames in glibc's format and hand
//! every other frame to glibc's own function, so a program sees one
//! format for all its frames:
//! - `backtrace_symbols`: `file(symbol+0xoff) [0xaddr]`, or
//!   `file(+0xoff) [0xaddr]` (from the load bias) for an address in no
//!   dynamic symbol; the offset 0 is `+0`;
//! - `backtrace_symbols_fd`: `file(symbol+0xoff)[0xaddr]` and a newline,
//!   one `writev` a frame, the offset 0 being `+0x0`.
//!
//! `backtrace_symbols` returns one `malloc`'d block (the pointers, then
//! the strings), which the caller frees with one `free`, as glibc's.
//! `backtrace_symbols_fd` allocates nothing (it is called from signal
//! handlers and after the heap is damaged): minld's frames are described
//! from [`minld::frame_object_at`], which neither allocates, nor takes the
//! loader's lock, nor waits for minld's index of objects (while a load or
//! unload changes it, a frame is printed as glibc prints it), and written
//! from buffers on the stack.

use std::ffi::{c_char, c_int, c_void};
use std::io::Write as _;

use minld::FrameObject;

use crate::real::real;

/// The hexadecimal digits of `v`, without a prefix, at the end of `buf`.
fn hex(v: usize, buf: &mut [u8; 16]) -> &[u8] {
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[v & 15];
        v >>= 4;
        if v == 0 {
            return &buf[i..];
        }
    }
}

/// The sign and distance of `addr` from `from` (`+` when at or above).
fn offset(addr: usize, from: usize) -> (u8, usize) {
    if addr >= from {
        (b'+', addr - from)
    } else {
        (b'-', from - addr)
    }
}

/// One of minld's frames as `backtrace_symbols` prints it (the names'
/// bytes as they are, as glibc's `%s`).
fn line(o: &FrameObject, addr: usize) -> Vec<u8> {
    let name = o.name();
    let mut v = Vec::new();
    if name.is_empty() {
        let _ = write!(v, "[{addr:#x}]");
        return v;
    }
    v.extend_from_slice(name);
    v.push(b'(');
    let (sym, from) = match o.symbol(addr) {
        Some((n, a)) => (n.to_bytes(), a),
        None => (&b""[..], o.base()),
    };
    v.extend_from_slice(sym);
    if !(sym.is_empty() && from == 0) {
        let (sign, off) = offset(addr, from);
        v.push(sign);
        // (As `%#tx`: no 0x before a zero.)
        let _ = if off == 0 {
            write!(v, "0")
        } else {
            write!(v, "{off:#x}")
        };
    }
    let _ = write!(v, ") [{addr:#x}]");
    v
}

/// The `backtrace_symbols` strings of `array[..size]`: minld's frames
/// named here, the others by glibc's function (called once, its block
/// freed after being copied). None when glibc's fails (no memory).
fn lines(frames: &[usize], array: *const *mut c_void, size: c_int) -> Option<Vec<Vec<u8>>> {
    let objects: Vec<Option<FrameObject>> =
        frames.iter().map(|&a| minld::frame_object_at(a)).collect();
    let glibc = if objects.iter().all(Option::is_some) {
        std::ptr::null_mut()
    } else {
        // SAFETY: glibc's backtrace_symbols on the caller's array.
        let g = unsafe { (real().backtrace_symbols)(array, size) };
        if g.is_null() {
            return None;
        }
        g
    };
    let out = objects
        .iter()
        .zip(frames)
        .enumerate()
        .map(|(i, (o, &addr))| match o {
            Some(o) => line(o, addr),
            // SAFETY: glibc's block holds `size` NUL-terminated strings.
            None => unsafe { std::ffi::CStr::from_ptr(*glibc.add(i)) }
                .to_bytes()
                .to_vec(),
        })
        .collect();
    // SAFETY: glibc's block, malloc'd, freed once (its strings copied).
    unsafe { libc::free(glibc.cast()) };
    Some(out)
}

/// `char **backtrace_symbols(void *const *array, int size)`.
#[no_mangle]
pub extern "C" fn backtrace_symbols(array: *const *mut c_void, size: c_int) -> *mut *mut c_char {
    crate::guard(std::ptr::null_mut(), || {
        let n = usize::try_from(size).unwrap_or(0);
        if array.is_null() || n == 0 {
            // SAFETY: glibc's function with the caller's arguments.
            return unsafe { (real().backtrace_symbols)(array, size) };
        }
        // SAFETY: the caller's array holds `size` addresses.
        let frames: Vec<usize> = unsafe { std::slice::from_raw_parts(array, n) }
            .iter()
            .map(|&p| p as usize)
            .collect();
        if !frames.iter().any(|&a| minld::frame_object_at(a).is_some()) {
            // SAFETY: as above: no frame of minld's.
            return unsafe { (real().backtrace_symbols)(array, size) };
        }
        let Some(lines) = lines(&frames, array, size) else {
            return std::ptr::null_mut();
        };
        let pointers = n * std::mem::size_of::<*mut c_char>();
        let total = pointers + lines.iter().map(|l| l.len() + 1).sum::<usize>();
        // SAFETY: a block the caller frees with free(), as glibc's.
        let block = unsafe { libc::malloc(total) } as *mut *mut c_char;
        if block.is_null() {
            return block;
        }
        // SAFETY: the block holds `n` pointers, then every string and its
        // NUL (`total` bytes counted above).
        unsafe {
            let mut text = (block as *mut u8).add(pointers);
            for (i, l) in lines.iter().enumerate() {
                *block.add(i) = text.cast();
                std::ptr::copy_nonoverlapping(l.as_ptr(), text, l.len());
                *text.add(l.len()) = 0;
                text = text.add(l.len() + 1);
            }
        }
        block
    })
}

/// Up to nine pieces of one line of [`write_frame`], for one `writev`.
struct Parts<'a> {
    /// The pieces.
    p: [&'a [u8]; 9],
    /// How many are set.
    n: usize,
}

impl<'a> Parts<'a> {
    /// Adds a piece (a line has at most nine).
    fn push(&mut self, piece: &'a [u8]) {
        if let Some(slot) = self.p.get_mut(self.n) {
            *slot = piece;
            self.n += 1;
        }
    }
}

/// Writes one of minld's frames to `fd` as glibc's `backtrace_symbols_fd`
/// does, in one `writev`, from buffers on the stack.
fn write_frame(o: &FrameObject, addr: usize, fd: c_int) {
    let (mut b1, mut b2) = ([0u8; 16], [0u8; 16]);
    let name = o.name();
    let sym = o.symbol(addr);
    let mut parts = Parts { p: [b""; 9], n: 0 };
    if !name.is_empty() {
        parts.push(name);
        if sym.is_some() || o.base() != 0 {
            parts.push(b"(");
            let from = match sym {
                Some((s, a)) => {
                    parts.push(s.to_bytes());
                    a
                }
                None => o.base(),
            };
            let (sign, off) = offset(addr, from);
            parts.push(if sign == b'+' { b"+0x" } else { b"-0x" });
            parts.push(hex(off, &mut b2));
            parts.push(b")");
        }
    }
    parts.push(b"[0x");
    parts.push(hex(addr, &mut b1));
    parts.push(b"]\n");
    let iov: [libc::iovec; 9] = std::array::from_fn(|i| libc::iovec {
        iov_base: parts.p[i].as_ptr() as *mut c_void,
        iov_len: parts.p[i].len(),
    });
    // SAFETY: `parts.n` iovecs over buffers alive until the call returns.
    unsafe { libc::writev(fd, iov.as_ptr(), parts.n as c_int) };
}

/// `void backtrace_symbols_fd(void *const *array, int size, int fd)`:
/// one line a frame, minld's written here, the others by glibc's
/// function (one frame a call, so the lines stay in order).
#[no_mangle]
pub extern "C" fn backtrace_symbols_fd(array: *const *mut c_void, size: c_int, fd: c_int) {
    crate::guard((), || {
        let n = usize::try_from(size).unwrap_or(0);
        if array.is_null() {
            return;
        }
        for i in 0..n {
            // SAFETY: the caller's array holds `size` addresses.
            let frame = unsafe { array.add(i) };
            // SAFETY: as above.
            let addr = unsafe { *frame } as usize;
            match minld::frame_object_at(addr) {
                Some(o) => write_frame(&o, addr, fd),
                // SAFETY: glibc's function on one of the caller's frames.
                None => unsafe { (real().backtrace_symbols_fd)(frame, 1, fd) },
            }
        }
    })
}
