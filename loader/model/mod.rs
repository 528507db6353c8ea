//! minld's loaded objects: their mapped image (`image`), how its segments
//! lie (`layout`), the object itself with the address index of live objects
//! (`object`), the registry of what is loaded under the loader lock
//! (`registry`), and what keeps those locks sound across `fork` (`fork`).

pub(crate) mod fork;
pub(crate) mod image;
pub(crate) mod object;
pub(crate) mod registry;
