//! What minld does not implement: [`Feature`].

/// A feature minld does not implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Feature {
    /// DT_REL or DT_RELSZ (x86-64 uses DT_RELA).
    #[error("DT_REL relocations (x86-64 uses DT_RELA)")]
    Rel,
    /// `Library::get::<T>` with a T that is not pointer-sized.
    #[error("Library::get::<T> with a {bytes}-byte T: symbols are pointer-sized")]
    SymbolSize {
        /// The size of T.
        bytes: usize,
    },
    /// An ifunc looked up in a library linked without running code.
    #[error("{symbol} is an ifunc, whose resolver would run; the library was linked without running code (Loader::link)")]
    IfuncWithoutCode {
        /// The symbol.
        symbol: String,
    },
}
