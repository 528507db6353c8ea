//! After the load set is gathered (`gather`): the versions each new object
//! requires are checked against the dependencies that provide them
//! ([`check_versions`]), and the new objects put in the order they are
//! relocated and initialised, dependencies first ([`topological`]).

use std::sync::Arc;

use crate::base::error::Error;
use crate::model::object::{Dep, Object};
use crate::os::debug::{self, Category};

/// DT_VERNEED: every required version must be defined by the dependency
/// that provides it (glibc's `_dl_check_map_versions`).
pub(crate) fn check_versions(o: &Object) -> Result<(), Error> {
    for need in &o.needs {
        let dep = o.deps().iter().find(|d| {
            d.with(|s| s.soname().as_bytes() == need.file())
                .unwrap_or(false)
        });
        let Some(dep) = dep else { continue };
        for (v, _, weak) in &need.versions {
            let ok = dep.with(|s| s.symbols().defines_version(v)).unwrap_or(true);
            debug::print_if(Category::Versions, || {
                format!(
                    "checking for version `{}' in file {} [0] required by file {} [0]{}",
                    String::from_utf8_lossy(v.name()),
                    dep.path().display(),
                    o.path.display(),
                    if ok { "" } else { ": NOT FOUND" }
                )
            });
            if !ok && !weak {
                return Err(Error::MissingVersion {
                    path: dep.path(),
                    version: String::from_utf8_lossy(v.name()).into_owned(),
                    needed_by: o.path.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Dependencies before dependents: post-order DFS from the root over the
/// objects new in this load.
pub(crate) fn topological(root: &Arc<Object>, new: &[Arc<Object>]) -> Vec<Arc<Object>> {
    fn visit(
        o: &Arc<Object>,
        new: &[Arc<Object>],
        seen: &mut Vec<*const Object>,
        out: &mut Vec<Arc<Object>>,
    ) {
        if seen.contains(&Arc::as_ptr(o)) {
            return;
        }
        seen.push(Arc::as_ptr(o));
        for d in o.deps() {
            let child = match d {
                Dep::Minld(c) => Some(c.clone()),
                Dep::Back(w) => w.upgrade(),
                Dep::Host(..) => None,
            };
            if let Some(c) = child {
                visit(&c, new, seen, out);
            }
        }
        if new.iter().any(|n| Arc::ptr_eq(n, o)) {
            out.push(o.clone());
        }
    }
    let mut out = Vec::new();
    let mut seen = Vec::new();
    visit(root, new, &mut seen, &mut out);
    // Objects reachable only through script members come last.
    for n in new {
        if !out.iter().any(|o| Arc::ptr_eq(o, n)) {
            out.push(n.clone());
        }
    }
    out
}
