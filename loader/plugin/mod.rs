//! Plugin hosting on top of the loader: namespaces that restrict what a
//! library may import, and the sandbox that runs one in its own process.

pub(crate) mod namespace;
pub mod sandbox;
