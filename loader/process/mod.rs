//! What the host process already has and minld joins: the objects glibc
//! loaded (`host`), thread-local storage (`tls`), the debugger's list of
//! objects (`gdb`) and the unwinder's registry of frame tables (`unwind`).
//! The program's own DT_RPATH (`program`) is read here too. Nothing here
//! names minld's own objects.

pub(crate) mod gdb;
pub(crate) mod host;
pub(crate) mod program;
pub(crate) mod tls;
pub(crate) mod unwind;
