//! What exactly was wrong, per stage of a load: the typed detail of
//! [`crate::Error`]'s variants, each rendered into the variant's message (never
//! stored as text). One file per family of faults: the ELF header
//! (`header`), the program headers (`segment`), the dynamic section
//! (`dynamic`), linker scripts (`script`), relocations (`reloc`), and
//! features minld does not implement (`feature`).

mod dynamic;
mod feature;
mod header;
mod reloc;
mod script;
mod segment;

pub use dynamic::DynamicFault;
pub use feature::Feature;
pub use header::{ExecutableKind, HeaderFault};
pub use reloc::RelocFault;
pub use script::ScriptFault;
pub use segment::{SegmentFault, SegmentName};
