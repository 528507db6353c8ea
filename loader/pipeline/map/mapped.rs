//! Stages 3 and 4 together: a mapped object with the tables read from it,
//! kept in one owning value so that no table outlives the mapping it
//! points into (see [`Mapped`]).

use std::path::Path;

use goblin::elf::program_header as ph;

use crate::base::error::{Error, SegmentName};
use crate::base::mem::Memory;
use crate::elf::dynamic::{self, Dynamic, PtrStyle};
use crate::elf::symbols::{Symbols, VersionNeed};
use crate::model::image::MappedImage;
use crate::os::sys::Sys;
use crate::pipeline::validate::Headers;

use super::{copy_segments, map_segments};

/// A mapped object with the tables read from it: the image, the view of
/// its readable segments, the dynamic section and, once read, the symbol
/// tables. Every table points into the image, so they are kept together:
/// the fields are private, the tables are lent out only for as long as the
/// `Mapped` is borrowed, and the image is the last field (dropped, so
/// unmapped, after the tables). Its parts go to an `Object` only through
/// [`Mapped::into_parts`], an `unsafe fn` whose caller takes over keeping
/// the image mapped while the tables live (`Object` does: its Drop unmaps
/// the image last, after every user of its tables is gone).
pub(crate) struct Mapped {
    /// The symbol tables, once [`Mapped::read_symbols`] has read them.
    symbols: Option<Symbols>,
    /// The dynamic section's tables.
    dynamic: Dynamic,
    /// The readable segments, which every table lies inside.
    mem: Memory,
    /// The mapping itself; dropped last.
    image: MappedImage,
}

/// The parts of a [`Mapped`], for an `Object` to own.
pub(crate) struct Parts {
    /// The mapping.
    pub(crate) image: MappedImage,
    /// The dynamic section's tables, which point into `image`.
    pub(crate) dynamic: Dynamic,
    /// The symbol tables, which point into `image`.
    pub(crate) symbols: Symbols,
    /// A hash of its build-id note (0: none).
    pub(crate) build_id: u64,
}

impl Mapped {
    /// The image.
    pub(crate) fn image(&self) -> &MappedImage {
        &self.image
    }

    /// The dynamic section.
    pub(crate) fn dynamic(&self) -> &Dynamic {
        &self.dynamic
    }

    /// Reads the symbol tables (stage 4, continued); they are kept inside.
    pub(crate) fn read_symbols(&mut self) -> Result<&Symbols, Error> {
        let symbols = Symbols::new(&self.image.path, &self.mem, &self.dynamic)?;
        Ok(self.symbols.insert(symbols))
    }

    /// The symbol tables, if read.
    pub(crate) fn symbols(&self) -> Option<&Symbols> {
        self.symbols.as_ref()
    }

    /// DT_VERNEED: the versions the object requires, read through the
    /// symbol tables (nothing returned points into the image). Reads the
    /// symbol tables first if they have not been.
    pub(crate) fn read_verneeds(&mut self) -> Result<Vec<VersionNeed>, Error> {
        if self.symbols.is_none() {
            self.read_symbols()?;
        }
        match &self.symbols {
            Some(s) => s.read_verneeds(&self.image.path, &self.mem, &self.dynamic),
            None => Ok(Vec::new()),
        }
    }

    /// The image, the dynamic section and the symbol tables, apart (the
    /// symbol tables are read now if they have not been).
    ///
    /// # Safety
    ///
    /// The tables of `dynamic` and `symbols` point into `image`: the caller
    /// must keep `image` alive (mapped) for as long as either of them, or
    /// any table copied out of them, lives.
    pub(crate) unsafe fn into_parts(mut self) -> Result<Parts, Error> {
        let symbols = match self.symbols.take() {
            Some(s) => s,
            None => Symbols::new(&self.image.path, &self.mem, &self.dynamic)?,
        };
        let phdrs = self
            .image
            .phdrs
            .iter()
            .map(|p| (p.p_type, p.p_vaddr, p.p_memsz));
        let build_id = crate::elf::notes::build_id_hash(&self.mem, self.image.bias.0, phdrs);
        let Mapped { dynamic, image, .. } = self;
        Ok(Parts {
            image,
            dynamic,
            symbols,
            build_id,
        })
    }
}

/// Maps a validated file and reads its dynamic section (stages 3 and 4).
pub(crate) fn map_and_read_dynamic(
    sys: &Sys,
    fd: &crate::os::sys::Fd,
    headers: &Headers,
    path: &Path,
) -> Result<Mapped, Error> {
    read_dynamic(map_segments(sys, fd, headers)?, path)
}

/// Copies a validated object from memory into anonymous memory and reads
/// its dynamic section (stages 3 and 4, `Loader::open_bytes`).
pub(crate) fn copy_and_read_dynamic(
    sys: &Sys,
    bytes: &[u8],
    headers: &Headers,
    path: &Path,
) -> Result<Mapped, Error> {
    read_dynamic(copy_segments(sys, bytes, headers)?, path)
}

/// Reads the dynamic section of a mapped image (stage 4); on error the
/// image is dropped, so unmapped.
fn read_dynamic(image: MappedImage, path: &Path) -> Result<Mapped, Error> {
    let ranges = image
        .segments
        .iter()
        .filter(|s| s.prot.read())
        .map(|s| (s.addr, s.addr + s.mem_size as usize))
        .collect();
    // SAFETY: the ranges are the readable segments of `image`, mapped by
    // map_segments; the Memory and every table made from it are kept in
    // the `Mapped` beside the image, which is dropped after them (and
    // handed out only through the unsafe `into_parts`).
    let mem = unsafe { Memory::new(ranges) };
    let Some(dyn_ph) = image.phdr(ph::PT_DYNAMIC) else {
        return Err(Error::missing_segment(
            path,
            SegmentName::Dynamic,
            ph::PT_DYNAMIC,
        ));
    };
    let dynamic = dynamic::parse(
        path,
        &mem,
        image.bias.0,
        image.bias.at(dyn_ph.p_vaddr),
        PtrStyle::Relative,
    )?;
    Ok(Mapped {
        symbols: None,
        dynamic,
        mem,
        image,
    })
}
