//! `dladdr`'s job for minld's objects: which library an address is in, and
//! the nearest exported symbol below it.

use std::path::PathBuf;

use crate::elf::symbols::SymFields;
use goblin::elf::sym as st;

use crate::model::object::{live, Object};

/// What [`addr_info`] knows about an address inside a library minld loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    /// The library's file.
    pub path: PathBuf,
    /// Its load bias (dladdr's `dli_fbase` is the lowest mapped address;
    /// this is the value symbol addresses are relative to).
    pub base: usize,
    /// The nearest dynamic symbol at or below the address (dladdr's
    /// `dli_sname`), if there is one.
    pub symbol: Option<String>,
    /// That symbol's address (`dli_saddr`), or 0 without a symbol.
    pub symbol_addr: usize,
    /// The address's distance from `symbol_addr` (0 without a symbol).
    pub offset: usize,
}

/// The library minld loaded that contains `addr`, and the nearest symbol of
/// its dynamic symbol table: what glibc's `dladdr` answers for its own
/// objects (use `dladdr` for those; this answers `None` for them).
///
/// As with `dladdr`, only exported symbols (`.dynsym`) are known: a static
/// function reports the exported symbol before it, with a large offset.
/// A symbol that contains the address (`st_value <= addr < st_value +
/// st_size`) wins over a closer one without a size.
///
/// ```no_run
/// // SAFETY: the system's libz.
/// let z = unsafe { minld::Library::open("libz.so.1") }?;
/// // SAFETY: zlibVersion is `const char *zlibVersion(void)`.
/// let f = unsafe { z.get::<extern "C" fn() -> *const u8>("zlibVersion") }?;
/// let info = minld::addr_info(*f as usize + 1).unwrap();
/// assert_eq!(info.symbol.as_deref(), Some("zlibVersion"));
/// assert_eq!(info.offset, 1);
/// # Ok::<(), minld::Error>(())
/// ```
pub fn addr_info(addr: usize) -> Option<AddrInfo> {
    let o = live::object_at(addr)?;
    let bias = o.image.bias.0;
    let best = nearest_symbol(&o, addr);
    let (symbol, symbol_addr) = match best {
        Some((i, v)) => {
            let name = o.symbols.sym(i).and_then(|s| {
                o.symbols
                    .name(&s)
                    .map(|n| String::from_utf8_lossy(n).into_owned())
            });
            (name, bias.wrapping_add(v as usize))
        }
        None => (None, 0),
    };
    Some(AddrInfo {
        path: o.path.clone(),
        base: bias,
        offset: if symbol.is_some() {
            addr - symbol_addr
        } else {
            0
        },
        symbol,
        symbol_addr,
    })
}

/// The index and `st_value` of the dynamic symbol of `o` nearest at or
/// below `addr` (one containing it wins over a closer one without a
/// size), as `dladdr` chooses it; None when no symbol lies below.
pub(crate) fn nearest_symbol(o: &Object, addr: usize) -> Option<(usize, u64)> {
    let rel = addr.wrapping_sub(o.image.bias.0) as u64;
    // (value, index, contains)
    let mut best: Option<(u64, usize, bool)> = None;
    for i in 1..o.symbols.len() {
        let Some(s) = o.symbols.sym(i) else { continue };
        let kind = s.kind();
        if !s.defined()
            || s.absolute()
            || kind == st::STT_TLS
            || kind == st::STT_SECTION
            || kind == st::STT_FILE
            || s.st_value > rel
        {
            continue;
        }
        let contains = rel < s.st_value.saturating_add(s.st_size);
        let better = match best {
            None => true,
            Some((v, _, c)) => (contains && !c) || (contains == c && s.st_value > v),
        };
        if better {
            best = Some((s.st_value, i, contains));
        }
    }
    best.map(|(v, i, _)| (i, v))
}
