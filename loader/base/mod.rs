//! What every layer shares: the error type, the policy's findings, the
//! namespace import rules, the x86-64 relocation table, and bounds-checked
//! reads of mapped memory. Nothing here knows how a load proceeds.

pub(crate) mod error;
pub(crate) mod fault;
pub(crate) mod findings;
pub(crate) mod mem;
pub(crate) mod relocs;
pub(crate) mod rules;
pub(crate) mod transfer;
