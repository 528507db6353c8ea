//! The one symbol resolution: what a name (and version) means to an
//! object, used by relocation (`Pass::resolve`), lazy binding
//! (`bind_lazily`) and `Library::get`/`find` alike. Each caller says where
//! it looks ([`Scope`]), which unique-symbol table it sees
//! ([`UniqueTable`]) and the namespace's rules; the rules themselves are
//! written once, here:
//!
//! 1. **exports**: a namespace's host exports come first ([`Rules::export`]);
//! 2. **self-binding**: a reference through a defined local symbol, or one
//!    of protected (or hidden) visibility, binds to its own object
//!    ([`binds_to_itself`]);
//! 3. **versions**: otherwise the first definition in the scope, in the
//!    version the reference needs ([`Want`]);
//! 4. **imports**: a host definition a namespace's rules do not allow is
//!    noted (relocation refuses the load with all of them);
//! 5. **STB_GNU_UNIQUE**: the namespace's first definition of the name
//!    wins ([`unique`]);
//! 6. **interposition**: some host functions are bound to minld's own
//!    versions (`interpose`);
//! 7. **weak undefined**, **undefined**: [`Reference::undefined`];
//! 8. **ifunc**: a resolver runs only where allowed ([`Def::target`]);
//! 9. **TLS**: a TLS symbol's value is its offset in the block; its
//!    placement is in [`Tls`] ([`Def::tls_address`] for one thread's
//!    address).

use goblin::elf::section_header::SHN_UNDEF;
use goblin::elf::sym as st;
use goblin::elf64::sym::Sym;

use crate::base::error::{Error, RelocFault, Requester};
use crate::base::rules::Rules;
use crate::elf::symbols::{NameHash, Symbols, Version, Want};
use crate::model::object::{Dep, Object, ScopeRef};
use crate::model::registry::Uniques;
use crate::os::debug::{self, Category};
use crate::pipeline::reloc::interpose;
use crate::process::tls;

/// A resolved symbol: where it is and who defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Def {
    /// Real address (for TLS symbols: st_value, the offset in the block).
    pub(crate) value: usize,
    /// `st_size` of the definition.
    pub(crate) size: u64,
    /// `STT_*` of the definition.
    pub(crate) kind: u8,
    /// TLS placement of the definer.
    pub(crate) tls: Tls,
    /// Defined by one of minld's objects: an ifunc's resolver is then that
    /// object's code, which may run only once the object is relocated
    /// (and never after `Loader::link`). The host's resolvers are glibc's
    /// objects' code, which already runs.
    pub(crate) own: bool,
    /// Where it was found, as the link cache records it.
    pub(crate) origin: Origin,
}

/// Where a definition was found, in terms that survive address-space
/// randomisation: the link cache (`pipeline::cache`) records a binding as
/// this, and recomputes the address in the next process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The member's position in the scope relocation walked
    /// ([`Scope::Refs`]), or [`Origin::ITSELF`] or [`Origin::NOWHERE`].
    pub(crate) member: u32,
    /// `st_value` of the symbol found.
    pub(crate) st_value: u64,
    /// The value is the namespace's first STB_GNU_UNIQUE definition of
    /// the name, not necessarily the member's.
    pub(crate) unique: bool,
    /// The value is minld's replacement of a host function.
    pub(crate) interposed: bool,
}

impl Origin {
    /// Bound to the referencing object itself (the self-binding rule).
    pub(crate) const ITSELF: u32 = u32::MAX - 1;
    /// Not found in a scope: a namespace's export, minld's stub, a lookup
    /// outside relocation.
    pub(crate) const NOWHERE: u32 = u32::MAX;

    /// No scope member: see [`Origin::NOWHERE`].
    pub(crate) const fn nowhere() -> Origin {
        Origin {
            member: Origin::NOWHERE,
            st_value: 0,
            unique: false,
            interposed: false,
        }
    }
}

/// Where a definer's thread-local storage is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tls {
    /// Not a TLS definition.
    None,
    /// A block glibc placed: a host module's, or the block in glibc's
    /// static TLS held for one of minld's (initial-exec TLS, see
    /// [`Tls::of_module`]): glibc's module id and static offset from %fs.
    Host {
        /// glibc's module id.
        modid: usize,
        /// Offset of its static block from the thread pointer, if it has one.
        offset: Option<isize>,
    },
    /// A module of minld's, with its module id (None: it has no PT_TLS).
    Minld {
        /// minld's module id.
        modid: Option<usize>,
    },
}

impl Tls {
    /// Where the TLS of one of minld's objects, whose module is `m`, is:
    /// its block in glibc's static TLS once it has one, else minld's
    /// module id.
    pub(crate) fn of_module(m: Option<&tls::Module>) -> Tls {
        match m.and_then(tls::Module::static_block) {
            Some(b) => Tls::Host {
                modid: b.modid,
                offset: Some(b.offset),
            },
            None => Tls::Minld {
                modid: m.map(tls::Module::id),
            },
        }
    }
}

/// What a found ifunc-or-not definition is worth to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The address to bind.
    Now(usize),
    /// An ifunc of minld's whose resolver (this address) may not run yet.
    Later(usize),
}

impl Def {
    /// A reference with symbol index 0: S is 0 and, for a TLS relocation,
    /// the module is the referencing object's own.
    pub(crate) fn this_module(obj: &Object, tls_relocation: bool) -> Def {
        Def {
            value: 0,
            size: 0,
            kind: if tls_relocation {
                st::STT_TLS
            } else {
                st::STT_NOTYPE
            },
            tls: Tls::of_module(obj.tls.as_ref()),
            own: true,
            origin: Origin::nowhere(),
        }
    }

    /// A plain function at `addr` outside every object's tables (a host
    /// export, minld's stub for a missing lazily bound function).
    pub(crate) fn function(addr: usize) -> Def {
        Def {
            value: addr,
            size: 0,
            kind: st::STT_FUNC,
            tls: Tls::None,
            own: false,
            origin: Origin::nowhere(),
        }
    }

    /// The ifunc rule: a resolver of the host runs now (its code already
    /// runs); one of minld's runs now only when `run_own` (its object
    /// relocated and allowed to run code), else it is left for later.
    pub(crate) fn target(&self, run_own: bool) -> Target {
        if self.kind != st::STT_GNU_IFUNC {
            Target::Now(self.value)
        } else if self.own && !run_own {
            Target::Later(self.value)
        } else {
            Target::Now(call_resolver(self.value))
        }
    }

    /// The definition symbol (`st_value`, `st_size`, type `kind`) of member
    /// `m`, at position `at` of the scope, gives before the unique and
    /// interposition rules (relocation's lookups, and the link cache's
    /// recorded bindings).
    #[inline]
    pub(crate) fn in_member(
        m: ScopeRef<'_>,
        at: u32,
        st_value: u64,
        st_size: u64,
        kind: u8,
    ) -> Def {
        let value = if kind == st::STT_TLS {
            st_value as usize
        } else {
            m.bias().wrapping_add(st_value as usize)
        };
        let tls = match m {
            ScopeRef::Host(h) => Tls::Host {
                modid: h.tls_modid,
                offset: h.tls_offset,
            },
            ScopeRef::Minld(o) if kind == st::STT_TLS => Tls::of_module(o.tls.as_ref()),
            ScopeRef::Minld(_) => Tls::None,
        };
        Def {
            value,
            size: st_size,
            kind,
            tls,
            own: matches!(m, ScopeRef::Minld(_)),
            origin: Origin {
                member: at,
                st_value,
                unique: false,
                interposed: false,
            },
        }
    }

    /// The calling thread's address of a TLS definition; None when its
    /// definer has no TLS block.
    pub(crate) fn tls_address(&self) -> Option<usize> {
        match self.tls {
            Tls::Host {
                offset: Some(off), ..
            } => {
                Some((crate::process::host::thread_pointer() as isize + off) as usize + self.value)
            }
            Tls::Host { modid, .. } => Some(tls::address(modid, self.value)),
            Tls::Minld { modid: Some(m) } => Some(tls::address(m, self.value)),
            Tls::Minld { modid: None } | Tls::None => None,
        }
    }
}

/// Calls an ifunc resolver and returns the implementation it chose.
pub(crate) fn call_resolver(resolver: usize) -> usize {
    // SAFETY: `resolver` is the address of an STT_GNU_IFUNC symbol (or an
    // IRELATIVE addend) inside an object that has been relocated up to its
    // ifuncs; on x86-64 glibc calls resolvers with no arguments, and they
    // return the address of the implementation.
    let f: extern "C" fn() -> usize =
        unsafe { std::mem::transmute::<usize, extern "C" fn() -> usize>(resolver) };
    f()
}

/// The self-binding rule: a defined symbol that is local, or not of
/// default visibility (protected, hidden, internal: `st_other & 3`), binds
/// to the object that references it, never to an earlier definition.
pub(crate) fn binds_to_itself(sym: &Sym) -> bool {
    let bind = sym.st_info >> 4;
    let visibility = sym.st_other & 0x3;
    sym.st_shndx != SHN_UNDEF as u16 && (bind == st::STB_LOCAL || visibility != st::STV_DEFAULT)
}

/// The STB_GNU_UNIQUE rule: the first definition of `name` the namespace
/// met is the one every reference binds; `value` becomes it if there is
/// none yet.
pub(crate) fn unique(table: &mut Uniques, name: &[u8], value: usize) -> usize {
    if let Some(&v) = table.get(name) {
        return v;
    }
    table.insert(name.to_vec(), value);
    value
}

/// Where a lookup walks, first definition wins.
pub(crate) enum Scope<'a> {
    /// A load's members (relocation), with each one's symbols beside it:
    /// the walk, done for every symbol, reads only the tables, and the
    /// member only for the definition found.
    Refs {
        /// The members, in order.
        members: &'a [ScopeRef<'a>],
        /// `members[i].symbols()` at `i`.
        tables: &'a [&'a Symbols],
    },
    /// A handle's scope, or a lazily bound object's. `this`, the object
    /// looking, is searched directly where the scope holds it weakly: while
    /// it is being dropped (a fini function calling its own function for
    /// the first time) its `Weak` no longer upgrades.
    Deps {
        /// The members, in order.
        deps: &'a [Dep],
        /// The referencing object, if any.
        this: Option<&'a Object>,
    },
}

impl Scope<'_> {
    /// The first member for which `f` finds something.
    fn first<R>(&self, mut f: impl FnMut(ScopeRef<'_>) -> Option<R>) -> Option<R> {
        match self {
            Scope::Refs { members, .. } => members.iter().find_map(|&m| f(m)),
            Scope::Deps { deps, this } => deps.iter().find_map(|d| match (d, this) {
                (Dep::Back(w), Some(o)) if std::ptr::eq(w.as_ptr(), *o) => f(ScopeRef::Minld(o)),
                _ => d.with(&mut f).flatten(),
            }),
        }
    }
}

/// Which STB_GNU_UNIQUE definitions a lookup sees.
pub(crate) enum UniqueTable<'a> {
    /// A load's own copy of its namespace's table, committed if the load
    /// succeeds.
    Load(&'a mut Uniques),
    /// After loading (lazy binding, `Library::get`): namespace `.0`'s
    /// committed table, read under the loader lock (recursive: from an
    /// init function or ifunc resolver too). Only while the registry is
    /// mid-update on this thread can it not be read; the definition found
    /// stands then.
    Committed(u64),
}

impl UniqueTable<'_> {
    /// [`unique`] on this table.
    fn resolve(&mut self, name: &[u8], value: usize) -> usize {
        match self {
            UniqueTable::Load(table) => unique(table, name, value),
            UniqueTable::Committed(ns) => crate::model::registry::lock("look up a unique symbol")
                .ok()
                .and_then(|reg| reg.uniques.get(ns).and_then(|t| t.get(name)).copied())
                .unwrap_or(value),
        }
    }
}

/// What is being resolved: a name and version, and, for a reference from
/// an object, that object and its symbol.
pub(crate) struct Reference<'a> {
    /// The symbol's name.
    pub(crate) name: &'a [u8],
    /// Its hash.
    hash: NameHash,
    /// The version it needs.
    pub(crate) want: Want<'a>,
    /// The referencing object, its symbol index and symbol (None for
    /// `Library::get`, which has no symbol of its own).
    from: Option<(&'a Object, usize, Sym)>,
}

impl<'a> Reference<'a> {
    /// The reference through symbol `symi` of `obj`; a symbol index or
    /// name outside the tables is `bad(what)`.
    pub(crate) fn of(
        obj: &'a Object,
        symi: usize,
        bad: impl FnOnce(RelocFault) -> Error,
    ) -> Result<Self, Error> {
        let Some(sym) = obj.symbols.sym(symi) else {
            return Err(bad(RelocFault::SymbolIndex {
                index: symi as u64,
                count: obj.symbols.len() as u64,
            }));
        };
        let Some((name, hash)) = obj.symbols.name_hashed(&sym) else {
            return Err(bad(RelocFault::SymbolName {
                index: symi as u64,
                offset: u64::from(sym.st_name),
            }));
        };
        let want = obj
            .wanted_version(symi)
            .map_or(Want::Default, Version::want);
        Ok(Reference {
            name,
            hash,
            want,
            from: Some((obj, symi, sym)),
        })
    }

    /// A lookup by name, from no object (`Library::get`).
    pub(crate) fn by_name(name: &'a [u8], want: Want<'a>) -> Self {
        Reference {
            name,
            hash: NameHash::new(name),
            want,
            from: None,
        }
    }

    /// The version asked for, by name.
    fn version(&self) -> Option<String> {
        match self.want {
            Want::Version { name, .. } | Want::Exact { name, .. } => {
                Some(String::from_utf8_lossy(name).into_owned())
            }
            Want::Default => None,
        }
    }

    /// The rule for a name nobody defines: a weak reference is 0 (None), a
    /// function reached only through the PLT while binding lazily
    /// (`lazy_plt`) is bound to minld's stub that ends the process when
    /// called; anything else is an undefined symbol.
    pub(crate) fn undefined(&self, lazy_plt: bool) -> Result<Option<Def>, Error> {
        match self.from {
            Some((_, _, sym)) if sym.st_info >> 4 == st::STB_WEAK => Ok(None),
            Some(_) if lazy_plt => Ok(Some(Def::function(
                unresolved_function as *const () as usize,
            ))),
            _ => Err(self.error(Requester::Caller)),
        }
    }

    /// The undefined-symbol error: needed by the referencing object, or
    /// (a lookup from no object) by `lookup`.
    pub(crate) fn error(&self, lookup: Requester) -> Error {
        Error::UndefinedSymbol {
            name: String::from_utf8_lossy(self.name).into_owned(),
            version: self.version(),
            needed_by: match self.from {
                Some((obj, _, _)) => Requester::Library(obj.path.clone()),
                None => lookup,
            },
        }
    }
}

/// The one resolver: a scope, the unique symbols it sees, the namespace's
/// rules.
pub(crate) struct Resolver<'a> {
    /// Where to look.
    pub(crate) scope: Scope<'a>,
    /// The unique definitions.
    pub(crate) uniques: UniqueTable<'a>,
    /// The namespace's rules (None: the default namespace, or a lookup
    /// the rules do not govern).
    pub(crate) rules: Option<&'a Rules>,
    /// Whether the lookup is for a namespace's object (the confined
    /// interpositions of `interpose::in_namespace` apply).
    pub(crate) in_namespace: bool,
    /// Where host definitions the rules do not allow are noted,
    /// `name@version (from soname)` (None: not noted).
    pub(crate) denied: Option<&'a mut Vec<String>>,
    /// Scope walks made (for `MINLD_DEBUG=statistics`).
    pub(crate) lookups: usize,
}

impl Resolver<'_> {
    /// The definition `r` binds to, None when nobody defines it (the
    /// caller applies [`Reference::undefined`] or its own rule).
    pub(crate) fn resolve(&mut self, r: &Reference<'_>) -> Option<Def> {
        if let Some(addr) = self.rules.and_then(|rules| rules.export(r.name)) {
            return Some(Def::function(addr));
        }
        let (def, bind, host) = match r.from {
            Some((obj, symi, sym)) if binds_to_itself(&sym) => {
                found_in(r, (ScopeRef::Minld(obj), Origin::ITSELF), symi, &sym)
            }
            _ => {
                let hash = r.hash;
                self.lookups += 1;
                let (name, want) = (r.name, r.want);
                let (rules, denied) = (self.rules, &mut self.denied);
                let mut found = |m: ScopeRef<'_>, at: u32, index: usize, sym: &Sym| {
                    if let (Some(rules), ScopeRef::Host(_)) = (rules, m) {
                        note_denied(rules, denied.as_deref_mut(), name, m, index);
                    }
                    found_in(r, (m, at), index, sym)
                };
                match &self.scope {
                    // Relocation's walk, the hot one: a plain loop over
                    // borrowed members, the rest done once for the hit.
                    Scope::Refs { members, tables } => {
                        let (at, index, sym) = tables.iter().zip(0u32..).find_map(|(t, at)| {
                            let (index, sym) = t.lookup(name, hash, want)?;
                            Some((at, index, sym))
                        })?;
                        found(*members.get(at as usize)?, at, index, &sym)
                    }
                    scope => scope.first(|m| {
                        let (index, sym) = m.symbols().lookup(name, hash, want)?;
                        Some(found(m, Origin::NOWHERE, index, &sym))
                    })?,
                }
            }
        };
        Some(self.finish(r.name, def, bind, host))
    }

    /// The rules applied after the definition is found: uniques, then
    /// interposition of host definitions.
    #[inline]
    fn finish(&mut self, name: &[u8], mut def: Def, bind: u8, host: bool) -> Def {
        if def.kind == st::STT_TLS {
            return def;
        }
        if bind == st::STB_GNU_UNIQUE {
            def.value = self.uniques.resolve(name, def.value);
            def.origin.unique = true;
        }
        if host {
            if let Some(ours) = interposed(self.in_namespace, name, def.value) {
                def.value = ours;
                def.origin.interposed = true;
            }
        }
        def
    }
}

/// The interposition rule: minld's replacement for the host's definition
/// of `name` at `value`, if it has one (in a namespace, the confined
/// replacements first).
pub(crate) fn interposed(in_namespace: bool, name: &[u8], value: usize) -> Option<usize> {
    let confined = in_namespace
        .then(|| interpose::in_namespace(name, value))
        .flatten();
    confined.or_else(|| interpose::replacement(name, value))
}

/// The definition symbol `index` of member `m` (at position `at` of the
/// scope) gives, its binding, and whether it is the host's; printed for
/// `MINLD_DEBUG=bindings` when an object refers to it. Inlined: the
/// definition is built in place, not returned through a call and copied.
#[inline(always)]
fn found_in(
    r: &Reference<'_>,
    (m, at): (ScopeRef<'_>, u32),
    index: usize,
    sym: &Sym,
) -> (Def, u8, bool) {
    let kind = sym.st_info & 0xf;
    if let Some((obj, _, _)) = r.from {
        if debug::enabled(Category::Bindings) {
            print_binding(obj, r.name, m, index);
        }
    }
    let def = Def::in_member(m, at, sym.st_value, sym.st_size, kind);
    (def, sym.st_info >> 4, matches!(m, ScopeRef::Host(_)))
}

/// The version a member defines symbol `index` in, if any.
fn defined_version<'m>(m: &'m ScopeRef<'_>, index: usize) -> Option<&'m Version> {
    m.symbols().version_def(m.symbols().versym(index))
}

/// The imports rule: notes, in `denied`, a host definition of `name` the
/// rules do not allow.
fn note_denied(
    rules: &Rules,
    denied: Option<&mut Vec<String>>,
    name: &[u8],
    m: ScopeRef<'_>,
    index: usize,
) {
    let version = defined_version(&m, index).map(|v| String::from_utf8_lossy(v.name()));
    let version = version.as_deref();
    if rules.allows(name, version) {
        return;
    }
    let Some(denied) = denied else { return };
    let entry = format!(
        "{}{} (from {})",
        String::from_utf8_lossy(name),
        version.map(|v| format!("@{v}")).unwrap_or_default(),
        m.soname()
    );
    if !denied.contains(&entry) {
        denied.push(entry);
    }
}

/// `MINLD_DEBUG=bindings`: which file `obj`'s reference to `name` binds.
fn print_binding(obj: &Object, name: &[u8], m: ScopeRef<'_>, index: usize) {
    let version = defined_version(&m, index)
        .map(|v| format!(" [{}]", String::from_utf8_lossy(v.name())))
        .unwrap_or_default();
    debug::print(format_args!(
        "binding file {} to {}: normal symbol `{}'{}",
        obj.path.display(),
        if m.path().as_os_str().is_empty() {
            "the main program".into()
        } else {
            m.path().display().to_string()
        },
        String::from_utf8_lossy(name),
        version
    ));
}

/// Where a lazily bound function that does not exist points: calling it is a
/// fatal error, as with glibc's lazy binding.
extern "C" fn unresolved_function() -> ! {
    eprintln!(
        "minld: a library called a function that could not be resolved at load time (lazy binding)"
    );
    std::process::abort()
}

#[cfg(test)]
mod tests;
