//! A namespace's import rules: which of the host's libraries and symbols a
//! library loaded into it may bind to. The namespace API (in `plugin`)
//! builds them; symbol resolution (in `pipeline::reloc`) obeys them.

use std::path::PathBuf;

/// The rules of one namespace, shared by its loads.
#[derive(Debug)]
pub(crate) struct Rules {
    /// Never 0 (the default namespace).
    pub(crate) id: u64,
    pub(crate) permitted: Vec<PathBuf>,
    /// Host symbols the namespace's libraries may bind: name, version.
    pub(crate) imports: Vec<(String, Option<String>)>,
    /// Functions the host exports to them: name, address.
    pub(crate) exports: Vec<(String, usize)>,
}

impl Rules {
    pub(crate) fn allows(&self, name: &[u8], version: Option<&str>) -> bool {
        // What every compiler-built library references from libc for its
        // own start-up and teardown, not the plugin's imports.
        // (`__cxa_finalize` is bound to a wrapper that finalizes only the
        // namespace's own objects: see `interpose::in_namespace`.)
        const RUNTIME: &[&[u8]] = &[
            b"__cxa_finalize",
            b"__gmon_start__",
            b"_ITM_registerTMCloneTable",
            b"_ITM_deregisterTMCloneTable",
            b"__stack_chk_fail",
            b"__tls_get_addr",
        ];
        RUNTIME.contains(&name)
            || self
                .imports
                .iter()
                .any(|(n, v)| n.as_bytes() == name && (v.is_none() || v.as_deref() == version))
    }

    pub(crate) fn export(&self, name: &[u8]) -> Option<usize> {
        self.exports
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|(_, a)| *a)
    }
}
