//! The lookup scope of a load: the list symbols are searched in, in
//! order (the host's objects, the process's global scope, then the load's
//! own breadth-first scope), built once and used by relocation, lazy
//! binding and the link cache alike.

use std::sync::Arc;

use crate::model::object::{Dep, Object, ScopeRef};
use crate::model::registry::Registry;
use crate::pipeline::gather::Gathered;
use crate::pipeline::options::Options;

/// minld's objects in the process's global scope (RTLD_GLOBAL) that this
/// load did not bring in itself: none in a namespace, whose objects see
/// only their own and the host's.
pub(crate) fn global_scope(reg: &Registry, g: &Gathered, opts: &Options) -> Vec<Arc<Object>> {
    if opts.namespace.is_some() {
        return Vec::new();
    }
    reg.global
        .iter()
        .filter_map(std::sync::Weak::upgrade)
        .filter(|o| !g.list.iter().any(|(x, _)| Arc::ptr_eq(x, o)))
        .collect()
}

/// The scope symbols are looked up in, in order: the host's objects (but
/// those this load has its own copy of), minld's objects in the global
/// scope (`globals`, in the order they joined it), then the load's
/// breadth-first scope; in a namespace its own objects come first, so its
/// plugins bind their own definitions before the host's (which they may
/// not import). Relocation and lazy binding both use this one list.
pub(crate) fn lookup_scope(
    reg: &Registry,
    g: &Gathered,
    opts: &Options,
    globals: &[Arc<Object>],
) -> Vec<Dep> {
    let mine = || g.list.iter().map(|(o, _)| (o.soname.as_str(), o.dev_ino));
    let mut scope: Vec<Dep> = reg
        .host
        .objects
        .iter()
        .filter(|h| !h.replaced_by(mine()))
        .map(|h| Dep::Host(h.clone(), None))
        .collect();
    scope.extend(globals.iter().map(|o| Dep::Minld(o.clone())));
    scope.extend(
        g.scope
            .iter()
            .filter(|d| !matches!(d, Dep::Back(_)))
            .cloned(),
    );
    if opts.namespace.is_some() {
        scope.sort_by_key(|d| matches!(d, Dep::Host(..)));
    }
    scope
}

/// The scope borrowed, as the relocation pass reads it.
pub(crate) fn members(scope: &[Dep]) -> Vec<ScopeRef<'_>> {
    scope
        .iter()
        .filter_map(|d| match d {
            Dep::Minld(o) => Some(ScopeRef::Minld(o)),
            Dep::Host(h, _) => Some(ScopeRef::Host(h)),
            Dep::Back(_) => None,
        })
        .collect()
}

/// The scope as an object keeps it for lazy binding: minld's objects held
/// weakly (the scope includes the object itself and its dependents).
pub(crate) fn weak_scope(scope: &[Dep]) -> Vec<Dep> {
    scope
        .iter()
        .map(|d| match d {
            Dep::Minld(o) => Dep::Back(Arc::downgrade(o)),
            other => other.clone(),
        })
        .collect()
}
