//! What the host process already has and minld joins: the objects glibc
//! loaded (`host`, read from glibc's list by `link_map`), thread-local
//! storage (`tls`), the debugger's list of objects (`gdb`) and the
//! unwinder's registry of frame tables (`unwind`). The program's own
//! search settings (`program`: its path, DT_RPATH and DF_1_NODEFLIB) are
//! read here too. Nothing here names minld's own objects.

pub(crate) mod gdb;
pub(crate) mod host;
pub(crate) mod link_map;
pub(crate) mod program;
pub(crate) mod tls;
pub(crate) mod unwind;
