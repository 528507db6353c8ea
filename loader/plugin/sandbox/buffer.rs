//! A shared buffer ([`Builder::shared_buffer`](super::Builder::shared_buffer))
//! as the host sees it: bounds-checked copies in and out of pages the plugin
//! maps too.

use super::error::SandboxError;
use super::shm::Region;

/// A shared buffer, seen from the host. The plugin maps the same pages:
/// everything read from it is the plugin's to have changed, so reads copy
/// out and the host checks what it got.
pub struct Buffer<'a> {
    /// The sandbox's shared region.
    pub(super) region: &'a Region,
    /// Where the buffer starts in it.
    pub(super) off: usize,
    /// Its length in bytes.
    pub(super) len: usize,
}

impl Buffer<'_> {
    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Copies `data` in at `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), SandboxError> {
        self.check(offset, data.len())?;
        // SAFETY: inside the buffer (checked); a plain copy into shared
        // memory (the plugin may write it too: no reference is formed).
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.region.at(self.off + offset),
                data.len(),
            )
        };
        Ok(())
    }
    /// Copies `out.len()` bytes out from `offset`.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), SandboxError> {
        self.check(offset, out.len())?;
        // SAFETY: as in `write`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.region.at(self.off + offset),
                out.as_mut_ptr(),
                out.len(),
            )
        };
        Ok(())
    }
    /// The buffer's first byte, for a host that fills it with its own
    /// code (a decoder writing straight into it). Valid while the sandbox
    /// runs; the plugin may change the bytes at any time.
    pub fn as_ptr(&self) -> *mut u8 {
        self.region.at(self.off)
    }
    /// `n` bytes from `offset` lie inside the buffer.
    fn check(&self, offset: usize, n: usize) -> Result<(), SandboxError> {
        match offset.checked_add(n) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(SandboxError::InputTooLarge {
                len: offset.saturating_add(n),
                cap: self.len,
            }),
        }
    }
}
