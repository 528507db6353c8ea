//! Parts of a new object beside its tables (for `gather::object_from`):
//! its required versions by index, its TLS module.

use std::path::Path;

use goblin::elf::program_header as ph;

use crate::base::error::Error;
use crate::elf::symbols::{Version, VersionNeed};
use crate::model::image::MappedImage;
use crate::process::tls;

/// Required versions by their versym index (DT_VERNEED's vna_other).
pub(crate) fn by_index(needs: &[VersionNeed]) -> Vec<Option<Version>> {
    let mut out: Vec<Option<Version>> = Vec::new();
    for n in needs {
        for (v, idx, _) in &n.versions {
            let i = usize::from(*idx);
            if out.len() <= i {
                out.resize(i + 1, None);
            }
            out[i] = Some(*v);
        }
    }
    out
}

/// The object's TLS module, registered, when it has a PT_TLS segment.
pub(crate) fn tls_module(path: &Path, image: &MappedImage) -> Result<Option<tls::Module>, Error> {
    Ok(match image.phdr(ph::PT_TLS) {
        None => None,
        Some(t) => {
            let image_at = image.bias.at(t.p_vaddr);
            let ok = t.p_filesz <= t.p_memsz
                && (t.p_filesz == 0 || image.readable(image_at, t.p_filesz as usize));
            let module = ok
                .then(|| {
                    tls::Module::register(
                        image_at,
                        t.p_filesz as usize,
                        t.p_memsz as usize,
                        t.p_align as usize,
                    )
                })
                .flatten();
            Some(module.ok_or_else(|| {
                Error::segments(
                    path,
                    crate::base::error::SegmentName::Tls,
                    "p_vaddr",
                    t.p_vaddr,
                    crate::base::error::SegmentFault::BadTls {
                        filesz: t.p_filesz,
                        memsz: t.p_memsz,
                        align: t.p_align,
                    },
                )
            })?)
        }
    })
}
