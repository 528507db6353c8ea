//! [`MappedObject`]: an image mapped for inspection, never linked.

use std::path::Path;

use crate::base::error::Error;
use crate::model::image::{MappedImage, Segment, Source};

/// An object validated and mapped, but not linked: nothing of it has run.
/// Dropping it unmaps it.
#[derive(Debug)]
pub struct MappedObject {
    image: MappedImage,
}

impl MappedObject {
    pub(super) fn new(image: MappedImage) -> Self {
        MappedObject { image }
    }

    /// The image itself.
    pub(super) fn image(&self) -> &MappedImage {
        &self.image
    }
    /// The path of the file (for one given as bytes or a descriptor, the
    /// name given: see [`Loader::name`](crate::Loader::name)).
    pub fn path(&self) -> &Path {
        &self.image.path
    }
    /// Where its pages came from: a file's mapping or a copy of bytes.
    pub fn source(&self) -> &Source {
        &self.image.source
    }
    /// The load base: the real address of virtual address 0.
    pub fn base(&self) -> usize {
        self.image.bias.0
    }
    /// The PT_LOAD segments as mapped.
    pub fn segments(&self) -> &[Segment] {
        &self.image.segments
    }
    /// The start and length of the whole mapping.
    pub fn span(&self) -> (usize, usize) {
        (self.image.start, self.image.len)
    }
    /// Makes PT_GNU_RELRO read-only, as the loader does after relocation.
    pub fn protect_relro(&self) -> Result<(), Error> {
        self.image.protect_relro()
    }
}
