//! The public interface: `Loader`, `Library`, `Symbol`, `MappedObject`, and
//! `addr_info` for what lies at an address.

pub(crate) mod addr;
pub(crate) mod library;
