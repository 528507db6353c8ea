//! Unit tests of the resolver's rules that need no loaded object.

use super::*;

/// A symbol with the given binding, type, visibility and section.
fn sym(bind: u8, kind: u8, other: u8, shndx: u16) -> Sym {
    Sym {
        st_name: 0,
        st_info: bind << 4 | kind,
        st_other: other,
        st_shndx: shndx,
        st_value: 0x1000,
        st_size: 8,
    }
}

#[test]
fn defined_local_and_protected_symbols_bind_to_themselves() {
    assert!(binds_to_itself(&sym(st::STB_LOCAL, st::STT_OBJECT, 0, 5)));
    assert!(binds_to_itself(&sym(
        st::STB_GLOBAL,
        st::STT_FUNC,
        st::STV_PROTECTED,
        5
    )));
    assert!(binds_to_itself(&sym(
        st::STB_GLOBAL,
        st::STT_FUNC,
        st::STV_HIDDEN,
        5
    )));
    assert!(!binds_to_itself(&sym(st::STB_GLOBAL, st::STT_FUNC, 0, 5)));
    assert!(!binds_to_itself(&sym(
        st::STB_GNU_UNIQUE,
        st::STT_OBJECT,
        0,
        5
    )));
    // Undefined: looked up, whatever its visibility says.
    assert!(!binds_to_itself(&sym(
        st::STB_GLOBAL,
        st::STT_FUNC,
        st::STV_PROTECTED,
        0
    )));
}

#[test]
fn the_first_unique_definition_wins() {
    let mut table = Uniques::default();
    assert_eq!(unique(&mut table, b"u", 0x10), 0x10);
    assert_eq!(unique(&mut table, b"u", 0x20), 0x10);
    assert_eq!(unique(&mut table, b"v", 0x30), 0x30);
    let mut t = UniqueTable::Load(&mut table);
    assert_eq!(t.resolve(b"u", 0x40), 0x10);
}

/// A stand-in ifunc resolver.
extern "C" fn chosen() -> usize {
    0x1234
}

#[test]
fn an_ifunc_of_minlds_runs_only_when_allowed() {
    let resolver = chosen as *const () as usize;
    let ifunc = |own| Def {
        value: resolver,
        size: 0,
        kind: st::STT_GNU_IFUNC,
        tls: Tls::None,
        own,
        origin: Origin::nowhere(),
    };
    assert_eq!(ifunc(true).target(false), Target::Later(resolver));
    assert_eq!(ifunc(true).target(true), Target::Now(0x1234));
    assert_eq!(ifunc(false).target(false), Target::Now(0x1234));
    assert_eq!(Def::function(7).target(false), Target::Now(7));
}

#[test]
fn a_lookup_from_no_object_names_its_caller_when_undefined() {
    let want = Want::Version {
        hash: crate::elf::symbols::elf_hash(b"V_2"),
        name: b"V_2",
    };
    let r = Reference::by_name(b"missing", want);
    match r.undefined(true) {
        Err(Error::UndefinedSymbol {
            name,
            version,
            needed_by,
        }) => {
            assert_eq!(name, "missing");
            assert_eq!(version.as_deref(), Some("V_2"));
            assert_eq!(needed_by, Requester::Caller);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        r.error(Requester::Lookup("x".into())),
        Error::UndefinedSymbol { needed_by: Requester::Lookup(p), .. } if p == std::path::Path::new("x")
    ));
}

#[test]
fn a_tls_definition_without_a_block_has_no_address() {
    let d = Def {
        value: 8,
        size: 4,
        kind: st::STT_TLS,
        tls: Tls::Minld { modid: None },
        own: true,
        origin: Origin::nowhere(),
    };
    assert_eq!(d.tls_address(), None);
}

#[test]
fn interposition_applies_to_host_definitions_only() {
    let mut table = Uniques::default();
    let mut res = Resolver {
        scope: Scope::Refs {
            members: &[],
            tables: &[],
        },
        uniques: UniqueTable::Load(&mut table),
        rules: None,
        in_namespace: false,
        denied: None,
        lookups: 0,
    };
    let d = Def::function(0x5000);
    let host = res.finish(b"__tls_get_addr", d, st::STB_GLOBAL, true);
    assert_eq!(host.value, tls::tls_get_addr());
    let own = res.finish(b"__tls_get_addr", d, st::STB_GLOBAL, false);
    assert_eq!(own.value, 0x5000);
    let plain = res.finish(b"memcpy", d, st::STB_GLOBAL, true);
    assert_eq!(plain.value, 0x5000);
    assert_eq!(res.resolve(&Reference::by_name(b"x", Want::Default)), None);
    assert_eq!(res.lookups, 1);
}
