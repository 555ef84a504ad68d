//! Which origins a component may call, and with which timeouts.

use wasmtime_wasi_http::RequestOptions;

use wharf_spec::component::{Origin, OutboundSpec};

/// Whether `uri` is one of the `allowed` origins (scheme, host and port).
pub(super) fn permits(allowed: &[Origin], uri: &http::Uri) -> bool {
    let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
    let Some(host) = uri.host() else { return false };
    let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
    allowed.iter().any(|o| o.scheme == scheme && o.host.eq_ignore_ascii_case(host) && o.effective_port() == port)
}

/// The manifest's timeouts, or the guest's where it asked for shorter ones:
/// the operator sets the ceiling, the plugin author may tighten it.
pub(super) fn timeouts(guest: Option<RequestOptions>, spec: &OutboundSpec) -> RequestOptions {
    let guest = guest.unwrap_or_default();
    let pick = |asked: Option<std::time::Duration>, ceiling| Some(asked.map_or(ceiling, |a| a.min(ceiling)));
    RequestOptions {
        connect_timeout: pick(guest.connect_timeout, spec.connect_timeout),
        first_byte_timeout: pick(guest.first_byte_timeout, spec.first_byte_timeout),
        between_bytes_timeout: pick(guest.between_bytes_timeout, spec.between_bytes_timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn origin(scheme: &str, host: &str, port: Option<u16>) -> Origin {
        Origin { scheme: scheme.into(), host: host.into(), port }
    }

    #[test]
    fn allow_list_matches_scheme_host_and_port() {
        let allowed = [origin("http", "127.0.0.1", Some(9000)), origin("https", "api.example.com", None)];
        let ok = |u: &str| permits(&allowed, &u.parse().unwrap());
        assert!(ok("http://127.0.0.1:9000/x"));
        assert!(ok("https://API.example.com/x"));
        assert!(ok("https://api.example.com:443/x"));
        assert!(!ok("http://127.0.0.1:9001/x"), "other port");
        assert!(!ok("https://127.0.0.1:9000/x"), "other scheme");
        assert!(!ok("http://api.example.com/x"), "https only");
        assert!(!ok("https://evil.example.com/x"), "other host");
    }

    #[test]
    fn guest_timeouts_are_capped_by_the_manifest() {
        let spec = OutboundSpec { first_byte_timeout: Duration::from_secs(2), ..OutboundSpec::default() };
        let asked = RequestOptions {
            connect_timeout: Some(Duration::from_millis(100)),
            first_byte_timeout: Some(Duration::from_secs(30)),
            between_bytes_timeout: None,
        };
        let got = timeouts(Some(asked), &spec);
        assert_eq!(got.connect_timeout, Some(Duration::from_millis(100)));
        assert_eq!(got.first_byte_timeout, Some(Duration::from_secs(2)));
        assert_eq!(got.between_bytes_timeout, Some(spec.between_bytes_timeout));
    }
}
