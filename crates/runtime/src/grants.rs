//! Least privilege, checked when a component loads (never at call time): a
//! component whose imports exceed its manifest grants is refused, with the
//! interface named.

use wasmtime::Engine;
use wasmtime::component::Component;

use wharf_spec::HostInterface;
use wharf_spec::manifest::ComponentSpec;

/// Why a component's imports are refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrantError {
    /// It imports a `wharf:host` interface its grants leave out.
    #[error("imports `{import}` but its grants do not include \"{interface}\" (add it to `grants.interfaces`)")]
    NotGranted {
        /// The full import name.
        import: String,
        /// The short interface name to grant.
        interface: &'static str,
    },
    /// It imports outbound HTTP but may call no origin.
    #[error("imports `{0}` but its grants allow no outbound origin (add one to `grants.outbound`)")]
    NoOutbound(String),
    /// It imports raw sockets, which Wharf never grants.
    #[error("imports `{0}`: raw sockets are never granted; use wasi:http for network access")]
    Sockets(String),
    /// It imports something this host does not provide at all.
    #[error("imports `{0}`, which this host does not provide")]
    Unknown(String),
}

/// WASI interfaces every component gets, sandboxed (no preopens, no
/// environment, no network, stdio to the log).
const ALWAYS_ALLOWED: &[&str] =
    &["wasi:io/", "wasi:clocks/", "wasi:random/", "wasi:cli/", "wasi:filesystem/", "wasi:http/types"];

/// Checks every import of `component` against `spec.grants`.
pub fn check(engine: &Engine, component: &Component, spec: &ComponentSpec) -> Result<(), GrantError> {
    for (import, _) in component.component_type().imports(engine) {
        check_import(import, spec)?;
    }
    Ok(())
}

fn check_import(import: &str, spec: &ComponentSpec) -> Result<(), GrantError> {
    if let Some(interface) = HostInterface::from_import(import) {
        return match interface {
            Ok(i) if spec.grants.interfaces.contains(&i) => Ok(()),
            Ok(i) => Err(GrantError::NotGranted { import: import.to_owned(), interface: i.name() }),
            Err(_) => Err(GrantError::Unknown(import.to_owned())),
        };
    }
    // p2's outgoing-handler and p3's client both send requests out.
    if import.starts_with("wasi:http/outgoing-handler") || import.starts_with("wasi:http/client@") {
        return if spec.grants.outbound.is_empty() { Err(GrantError::NoOutbound(import.to_owned())) } else { Ok(()) };
    }
    if import.starts_with("wasi:sockets/") {
        return Err(GrantError::Sockets(import.to_owned()));
    }
    if ALWAYS_ALLOWED.iter().any(|prefix| import.starts_with(prefix)) {
        return Ok(());
    }
    Err(GrantError::Unknown(import.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use wharf_spec::manifest::Manifest;

    fn spec(grants: &str) -> ComponentSpec {
        let m = Manifest::parse(
            Path::new("components.toml"),
            &format!("[components.c]\nwasm = \"c.wasm\"\nroutes = [{{ path = \"/c/*\" }}]\ngrants = {grants}\n"),
        )
        .unwrap();
        m.components.into_values().next().unwrap()
    }

    #[test]
    fn host_interfaces_need_a_grant() {
        let s = spec(r#"{ interfaces = ["config"] }"#);
        assert_eq!(check_import("wharf:host/config@0.1.0", &s), Ok(()));
        assert_eq!(
            check_import("wharf:host/log@0.1.0", &s).unwrap_err().to_string(),
            "imports `wharf:host/log@0.1.0` but its grants do not include \"log\" (add it to `grants.interfaces`)"
        );
    }

    #[test]
    fn outbound_http_needs_an_origin_and_sockets_are_refused() {
        let none = spec("{}");
        assert!(matches!(check_import("wasi:http/outgoing-handler@0.2.6", &none), Err(GrantError::NoOutbound(_))));
        let some = spec(r#"{ outbound = ["http://127.0.0.1:9000"] }"#);
        assert_eq!(check_import("wasi:http/outgoing-handler@0.2.6", &some), Ok(()));
        assert!(matches!(check_import("wasi:sockets/tcp@0.2.6", &some), Err(GrantError::Sockets(_))));
        assert_eq!(check_import("wasi:io/streams@0.2.6", &none), Ok(()));
        assert!(matches!(check_import("acme:evil/api", &none), Err(GrantError::Unknown(_))));
    }

    #[test]
    fn wasip3_imports_are_checked_like_wasip2_ones() {
        let none = spec("{}");
        assert!(matches!(check_import("wasi:http/client@0.3.0", &none), Err(GrantError::NoOutbound(_))));
        let some = spec(r#"{ outbound = ["http://127.0.0.1:9000"] }"#);
        assert_eq!(check_import("wasi:http/client@0.3.0", &some), Ok(()));
        assert_eq!(check_import("wasi:http/types@0.3.0", &none), Ok(()));
        assert!(matches!(check_import("wasi:sockets/types@0.3.0", &some), Err(GrantError::Sockets(_))));
        // Importing a handler (a middleware's world) is not something this host provides.
        assert!(matches!(check_import("wasi:http/handler@0.3.0", &some), Err(GrantError::Unknown(_))));
    }
}
