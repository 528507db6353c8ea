//! A load, stage by stage: `search` finds the file, `validate` checks its
//! headers, `map` maps its segments, `load` walks its DT_NEEDED entries
//! (`gather`, then `order`) and drives the rest (`scope` builds the lookup
//! scope), `reloc` binds and relocates, `init` runs constructors.
//! `policy` runs the same first stages read-only to vet a library.

pub(crate) mod bytes;
pub(crate) mod cache;
pub(crate) mod gather;
pub(crate) mod init;
pub(crate) mod load;
pub(crate) mod map;
pub(crate) mod object;
pub(crate) mod options;
pub(crate) mod order;
pub mod policy;
pub(crate) mod reloc;
pub(crate) mod scope;
pub(crate) mod search;
pub(crate) mod validate;
