//! The public interface: `Loader` (options and the calls that load),
//! `Library` and `Symbol` (lookups in what was loaded), `MappedObject`
//! (an image mapped for inspection), and `addr_info` for what lies at an
//! address.

pub(crate) mod addr;
pub(crate) mod bytes;
pub(crate) mod dropin;
pub(crate) mod library;
pub(crate) mod loader;
pub(crate) mod mapped;
pub(crate) mod objects;
pub mod pages;
pub(crate) mod smaps;
