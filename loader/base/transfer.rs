//! What went wrong moving an object's bytes when no system call failed: a
//! read that ended early, a stream longer than minld takes, data that is
//! not where the headers put it. These are minld's own findings, so they
//! carry the sizes involved and never an errno the kernel did not return
//! (see [`crate::Error::Transfer`]).

use std::fmt;

use nix::errno::Errno;

/// What was wrong with a transfer of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferFault {
    /// A stream (a pipe, a socket) went on past the most minld reads for
    /// one object; reading stopped there.
    StreamTooLong {
        /// The most minld reads from a stream, in bytes.
        limit: u64,
        /// The bytes read when the limit was passed.
        read: u64,
    },
    /// A read returned 0 (the end of the file) before all it was asked for.
    ShortRead {
        /// The bytes asked for.
        wanted: u64,
        /// The bytes read before the end.
        got: u64,
    },
    /// A write returned 0 (nothing written) before all of it was written.
    ShortWrite {
        /// The bytes to write.
        wanted: u64,
        /// The bytes written before it stopped.
        written: u64,
    },
    /// A segment's file data lies outside the bytes given.
    DataOutside {
        /// Where the data starts in the bytes.
        offset: u64,
        /// Its length.
        len: u64,
        /// The length of the bytes.
        size: u64,
    },
}

impl fmt::Display for TransferFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TransferFault::StreamTooLong { limit, read } => write!(
                f,
                "the stream is longer than the {limit} bytes minld reads for one object \
                 ({read} bytes read)"
            ),
            TransferFault::ShortRead { wanted, got } => {
                write!(f, "end of file after {got} of {wanted} bytes")
            }
            TransferFault::ShortWrite { wanted, written } => {
                write!(f, "write returned 0 after {written} of {wanted} bytes")
            }
            TransferFault::DataOutside { offset, len, size } => write!(
                f,
                "file data {offset:#x}..{:#x} lies outside the {size} bytes given",
                offset.saturating_add(len)
            ),
        }
    }
}

/// A failure of a system-call layer function that may fail without the
/// kernel failing: the kernel's error, or minld's own finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failed {
    /// A call failed with this error.
    Kernel(Errno),
    /// Every call succeeded, but the transfer did not complete.
    Short(TransferFault),
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failed::Kernel(e) => e.fmt(f),
            Failed::Short(fault) => fault.fmt(f),
        }
    }
}

impl From<Errno> for Failed {
    fn from(e: Errno) -> Self {
        Failed::Kernel(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_sizes() {
        let f = TransferFault::StreamTooLong {
            limit: 1 << 31,
            read: (1 << 31) + 10,
        };
        assert_eq!(
            f.to_string(),
            "the stream is longer than the 2147483648 bytes minld reads for one object \
             (2147483658 bytes read)"
        );
        let s = TransferFault::ShortRead { wanted: 16, got: 8 };
        assert_eq!(s.to_string(), "end of file after 8 of 16 bytes");
        let d = TransferFault::DataOutside {
            offset: 0x1000,
            len: 0x20,
            size: 100,
        };
        assert_eq!(
            d.to_string(),
            "file data 0x1000..0x1020 lies outside the 100 bytes given"
        );
        assert_eq!(
            Failed::Kernel(Errno::EIO).to_string(),
            Errno::EIO.to_string()
        );
    }
}
