//! Which functions may be counted and reported (SPEC §4.1), and the report's key for each.
//!
//! Only PostgreSQL's built-in functions and those of the related extensions are ever
//! counted, stored or named: a user's own function, and the schema a user installed an
//! extension into, never appear. A function is named by where it comes from, not by where
//! it lives: `pg_catalog` for a built-in, the extension's name for an extension's.
#![forbid(unsafe_code)]

use crate::related::RELATED_EXTENSIONS;

/// Objects with smaller oids are PostgreSQL's own, made by initdb's bootstrap
/// (`FirstGenbkiObjectId`).
pub const FIRST_NON_BUILTIN_OID: u32 = 10_000;

/// Whether `oid` is a built-in object's.
pub fn is_builtin(oid: u32) -> bool {
    oid != 0 && oid < FIRST_NON_BUILTIN_OID
}

/// Whether `extname` is one of the extensions whose functions are counted.
pub fn is_related_extension(extname: &str) -> bool {
    RELATED_EXTENSIONS.iter().any(|(_, name)| *name == extname)
}

/// What a function's key starts with: `pg_catalog` for a built-in, the extension's name for
/// a function of a related extension; `None` for any other function (never reported).
pub fn origin(func: u32, extension: Option<&str>) -> Option<&str> {
    if is_builtin(func) {
        return Some("pg_catalog");
    }
    extension.filter(|e| is_related_extension(e))
}

/// The key of a function in `functions_used`: `origin.name(type,type)`, as PostgreSQL's
/// `format_procedure_qualified` writes it. An argument type that cannot be named without
/// a schema (`None`) is written `?`.
pub fn key(origin: &str, name: &str, arg_types: &[Option<String>]) -> String {
    let args: Vec<&str> = arg_types.iter().map(|t| t.as_deref().unwrap_or("?")).collect();
    format!("{origin}.{name}({})", args.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_are_named_by_pg_catalog_whatever_extension_claims_them() {
        assert_eq!(origin(2147, None), Some("pg_catalog"));
        assert_eq!(origin(2147, Some("postgis")), Some("pg_catalog"));
    }

    #[test]
    fn functions_of_related_extensions_are_named_by_the_extension() {
        assert_eq!(origin(16_500, Some("postgis")), Some("postgis"));
        assert_eq!(origin(16_500, Some("vector")), Some("vector"));
    }

    #[test]
    fn user_functions_and_other_extensions_are_never_named() {
        assert_eq!(origin(16_500, None), None);
        assert_eq!(origin(16_500, Some("hstore")), None);
        assert_eq!(origin(0, None), None);
        assert_eq!(origin(10_000, None), None);
    }

    #[test]
    fn keys_read_like_format_procedure_qualified() {
        assert_eq!(key("pg_catalog", "count", &[]), "pg_catalog.count()");
        assert_eq!(
            key("pg_catalog", "int4eq", &[Some("integer".into()), Some("integer".into())]),
            "pg_catalog.int4eq(integer,integer)"
        );
        assert_eq!(
            key("postgis", "st_dwithin", &[Some("postgis.geometry".into()), None]),
            "postgis.st_dwithin(postgis.geometry,?)"
        );
    }
}
