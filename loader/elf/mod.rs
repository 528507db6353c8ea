//! ELF tables read in place over mapped memory: the dynamic section, the
//! symbol tables (hash tables, versions) and the build-id note. The same
//! readers serve minld's own objects and the host's, which glibc loaded.

pub(crate) mod dynamic;
pub(crate) mod hash;
pub(crate) mod notes;
pub(crate) mod sym;
pub(crate) mod symbols;
