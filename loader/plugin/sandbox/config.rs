//! What the host tells the runner at start: the plugin's path, the
//! functions to look up, the paths granted, the shared buffers' sizes.
//! NUL-separated in the request buffer, counted in the header; the runner
//! reads it once, before any plugin code runs, and checks every size
//! against the region it really mapped. And which of the host's
//! environment variables the runner gets ([`kept_env`]).

use std::sync::atomic::Ordering;

use super::landlock::Access;
use super::shm::{self, Region};

/// What is wrong with the configuration the host wrote (the runner reports
/// it before any plugin code runs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ConfigError {
    /// It is longer than the request buffer, or the request buffer does
    /// not fit the region.
    #[error("configuration of {len} bytes does not fit the request buffer ({cap})")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The request buffer's capacity.
        cap: usize,
    },
    /// It has no first field.
    #[error("no plugin path")]
    NoPath,
    /// A shared buffer's size is not a decimal number.
    #[error("shared buffer size {0:?}")]
    SharedSize(String),
    /// The buffers it asks for do not fit the region.
    #[error("buffers larger than the region ({region} bytes)")]
    TooLarge {
        /// The region's length in bytes.
        region: usize,
    },
}

/// The configuration, as the runner uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Config {
    /// The plugin's path.
    pub(super) path: String,
    /// The functions to look up, in the host's order.
    pub(super) names: Vec<String>,
    /// The paths granted and how.
    pub(super) grants: Vec<(String, Access)>,
    /// (offset in the region, length) of each shared buffer.
    pub(super) shared: Vec<(usize, usize)>,
    /// The request buffer's capacity.
    pub(super) req_cap: usize,
    /// The response buffer's capacity.
    pub(super) resp_cap: usize,
}

/// The bytes for the request buffer: the path, the names, the grants
/// (`r` or `w`, then the path), the shared buffers' sizes in decimal.
pub(super) fn encode(
    path: &str,
    names: &[String],
    grants: &[(String, Access)],
    shared: &[usize],
) -> Vec<u8> {
    let mut fields: Vec<Vec<u8>> = vec![path.as_bytes().to_vec()];
    fields.extend(names.iter().map(|n| n.as_bytes().to_vec()));
    for (p, a) in grants {
        let tag = if *a == Access::ReadWrite { b'w' } else { b'r' };
        let mut f = vec![tag];
        f.extend_from_slice(p.as_bytes());
        fields.push(f);
    }
    fields.extend(shared.iter().map(|n| n.to_string().into_bytes()));
    fields.join(&0u8)
}

impl Config {
    /// Reads and checks the configuration the host wrote.
    pub(super) fn read(region: &Region) -> Result<Config, ConfigError> {
        let h = region.header();
        let (req_cap, resp_cap) = (h.req_cap as usize, h.resp_cap as usize);
        let len = h.req_len.load(Ordering::Acquire) as usize;
        if len > req_cap || shm::HEADER_SIZE.saturating_add(req_cap) > region.len {
            return Err(ConfigError::TooLong { len, cap: req_cap });
        }
        // SAFETY: `len` bytes inside the request buffer (checked above);
        // the host is quiet until READY and no plugin code has run.
        let raw = unsafe { std::slice::from_raw_parts(region.req(), len) }.to_vec();
        let mut fields = raw
            .split(|&b| b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned());
        let path = fields.next().ok_or(ConfigError::NoPath)?;
        let names: Vec<String> = fields.by_ref().take(h.nfuncs as usize).collect();
        let mut grants = Vec::new();
        for g in fields.by_ref().take(h.ngrants as usize) {
            let access = match g.as_bytes().first() {
                Some(b'w') => Access::ReadWrite,
                _ => Access::Read,
            };
            grants.push((g.get(1..).unwrap_or_default().to_string(), access));
        }
        let sizes: Vec<usize> = fields
            .map(|f| f.parse::<usize>().map_err(|_| ConfigError::SharedSize(f)))
            .collect::<Result<_, _>>()?;
        let layout = shm::layout(req_cap, resp_cap, &sizes)
            .filter(|l| l.size <= region.len)
            .ok_or(ConfigError::TooLarge { region: region.len })?;
        let mut shared = Vec::new();
        let mut off = layout.shared_off;
        for len in sizes {
            shared.push((off, len));
            off += len.next_multiple_of(4096);
        }
        Ok(Config {
            path,
            names,
            grants,
            shared,
            req_cap,
            resp_cap,
        })
    }
}

/// Whether the host's environment variable `name` goes to the runner.
/// The plugin reads its environment like any memory of its own, and a
/// host's environment holds its secrets (tokens, keys, passwords), so only
/// what the runner itself needs goes: the dynamic linker's search path and
/// preloads (the host's executable may not start without them), the
/// locale and time zone (a plugin formats text and dates as its host
/// does), and minld's own trace switches.
pub(super) fn kept_env(name: &std::ffi::OsStr) -> bool {
    let name = name.as_encoded_bytes();
    matches!(
        name,
        b"LD_LIBRARY_PATH"
            | b"LD_PRELOAD"
            | b"LANG"
            | b"LANGUAGE"
            | b"TZ"
            | b"MINLD_TRACE"
            | b"MINLD_DEBUG"
    ) || name.starts_with(b"LC_")
}

impl Config {
    /// The configuration the runner reads, from the builder's options.
    pub(super) fn for_builder(o: &super::Builder) -> Vec<u8> {
        let grants: Vec<(String, Access)> = o
            .grants
            .iter()
            .map(|(p, a)| (p.display().to_string(), *a))
            .collect();
        encode(&o.path, &o.names, &grants, &o.shared)
    }
}
