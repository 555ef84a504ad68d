//! Maps a request's path and method to the component that serves it. Built
//! from component specs and the hub's endpoints; building it is also where
//! overlapping routes between components are found and refused.

use std::collections::{BTreeSet, HashMap};

use crate::component::{ComponentSpec, WebSocketSpec};
use crate::name::ComponentName;
use crate::route::{RateLimit, RoutePattern};

/// Two components claiming the same requests.
#[derive(Debug)]
pub struct RouteOverlap {
    /// The component whose route was refused.
    pub component: ComponentName,
    /// The route's field in the manifest (`routes[N].path`).
    pub field: String,
    /// What it overlaps with.
    pub message: String,
}

#[derive(Debug, Clone)]
struct Entry {
    pattern: RoutePattern,
    methods: Option<BTreeSet<http::Method>>,
    component: ComponentName,
    max_body: u64,
    too_large_code: Option<String>,
    rate_limit: Option<RateLimit>,
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteMatch<'a> {
    /// To this component, with this body cap.
    Component {
        /// The component.
        component: &'a ComponentName,
        /// Body cap for the matched route.
        max_body: u64,
        /// `error.code` of a 413 on this route, if not the default.
        too_large_code: Option<&'a str>,
        /// The route that matched, as written in the manifest.
        route: &'a RoutePattern,
        /// Requests per client address the route allows, if limited.
        rate_limit: Option<RateLimit>,
    },
    /// The path is routed but not for this method.
    MethodNotAllowed {
        /// The methods the path accepts, for the `Allow` header.
        allowed: Vec<http::Method>,
    },
    /// No component serves this path.
    NotFound,
}

/// The routes of every component of a manifest.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    exact: HashMap<String, Vec<Entry>>,
    /// Longest prefix first, so the first match is the most specific.
    prefixes: Vec<Entry>,
}

impl RouteTable {
    /// Builds the table from the components' routes and the hub's
    /// endpoints, refusing routes of different components that could
    /// receive the same request.
    pub fn build<'a>(
        components: impl IntoIterator<Item = &'a ComponentSpec>,
        websockets: &[WebSocketSpec],
    ) -> Result<Self, RouteOverlap> {
        let mut all: Vec<(String, Entry)> = Vec::new();
        for spec in components {
            for (i, route) in spec.routes.iter().enumerate() {
                let entry = Entry {
                    pattern: route.pattern.clone(),
                    methods: route.methods.clone(),
                    component: spec.name.clone(),
                    max_body: route.max_body,
                    too_large_code: route.too_large_code.clone(),
                    rate_limit: route.rate_limit,
                };
                if let Some((_, other)) = all.iter().find(|(_, other)| {
                    other.component != entry.component
                        && other.pattern.overlaps(&entry.pattern)
                        && methods_overlap(&other.methods, &entry.methods)
                }) {
                    return Err(RouteOverlap {
                        component: entry.component.clone(),
                        field: format!("routes[{i}].path"),
                        message: format!(
                            "route `{}` overlaps route `{}` of component `{}`",
                            entry.pattern, other.pattern, other.component
                        ),
                    });
                }
                all.push((format!("routes[{i}]"), entry));
            }
        }

        // WebSocket endpoints belong to the hub; no component route may take them.
        for ws in websockets {
            if let Some((field, entry)) = all.iter().find(|(_, e)| e.pattern.matches(&ws.path)) {
                return Err(RouteOverlap {
                    component: entry.component.clone(),
                    field: format!("{field}.path"),
                    message: format!(
                        "route `{}` overlaps WebSocket endpoint `{}` ({})",
                        entry.pattern, ws.name, ws.path
                    ),
                });
            }
        }

        let mut table = Self::default();
        for (_, entry) in all {
            match &entry.pattern {
                RoutePattern::Exact(path) => table.exact.entry(path.clone()).or_default().push(entry),
                RoutePattern::Prefix(_) => table.prefixes.push(entry),
            }
        }
        table.prefixes.sort_by_key(|e| std::cmp::Reverse(e.pattern.root().len()));
        Ok(table)
    }

    /// Finds the component for `method` on `path`. Empty segments (`//`)
    /// are ignored, as components ignore them, so a route's own limits
    /// cannot be stepped around by doubling a slash.
    pub fn route(&self, method: &http::Method, path: &str) -> RouteMatch<'_> {
        let collapsed;
        let path = if path.contains("//") {
            collapsed = collapse_slashes(path);
            collapsed.as_str()
        } else {
            path
        };
        let exact: Vec<&Entry> = self.exact.get(path).into_iter().flatten().collect();
        let prefixes = self.prefixes.iter().filter(|e| e.pattern.matches(path));
        let (mut exact_allowed, mut prefix_allowed) = (BTreeSet::new(), BTreeSet::new());
        for (entry, is_exact) in exact.iter().map(|e| (*e, true)).chain(prefixes.map(|e| (e, false))) {
            match &entry.methods {
                Some(methods) if !methods.contains(method) => {
                    let allowed = if is_exact { &mut exact_allowed } else { &mut prefix_allowed };
                    allowed.extend(methods.iter().cloned());
                }
                _ => {
                    return RouteMatch::Component {
                        component: &entry.component,
                        max_body: entry.max_body,
                        too_large_code: entry.too_large_code.as_deref(),
                        route: &entry.pattern,
                        rate_limit: entry.rate_limit,
                    };
                }
            }
        }
        // `Allow` names what the most specific routes of the path accept:
        // an exact route's methods, not those of a prefix it sits on.
        let allowed = if exact_allowed.is_empty() { prefix_allowed } else { exact_allowed };
        if allowed.is_empty() {
            RouteMatch::NotFound
        } else {
            RouteMatch::MethodNotAllowed { allowed: allowed.into_iter().collect() }
        }
    }
}

fn collapse_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

fn methods_overlap(a: &Option<BTreeSet<http::Method>>, b: &Option<BTreeSet<http::Method>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => !a.is_disjoint(b),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Manifest, ManifestError};
    use std::path::Path;

    fn manifest(toml: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(Path::new("components.toml"), toml)
    }

    fn table(m: &Manifest) -> RouteTable {
        RouteTable::build(m.components.values(), &m.websockets).unwrap()
    }

    #[test]
    fn prefix_matches_its_root_and_below_but_not_siblings() {
        let p = RoutePattern::parse("/api/events/*").unwrap();
        assert!(p.matches("/api/events"));
        assert!(p.matches("/api/events/"));
        assert!(p.matches("/api/events/42"));
        assert!(!p.matches("/api/eventsx"));
        assert!(!p.matches("/api"));
    }

    #[test]
    fn routes_to_longest_prefix_and_exact_paths() {
        let m = manifest(
            r#"
            [components.a]
            wasm = "a.wasm"
            routes = [{ path = "/" }, { path = "/api/hook/*", methods = ["GET", "POST"] }]
            [components.b]
            wasm = "b.wasm"
            routes = [{ path = "/api/recent/*" }]
            "#,
        )
        .unwrap();
        let table = table(&m);
        let get = http::Method::GET;
        let name = |r: RouteMatch<'_>| match r {
            RouteMatch::Component { component, .. } => component.to_string(),
            other => format!("{other:?}"),
        };
        assert_eq!(name(table.route(&get, "/")), "a");
        assert_eq!(name(table.route(&get, "/api/hook/")), "a");
        assert_eq!(name(table.route(&get, "/api/recent/bob")), "b");
        assert_eq!(table.route(&get, "/nothing"), RouteMatch::NotFound);
        assert_eq!(
            table.route(&http::Method::DELETE, "/api/hook/"),
            RouteMatch::MethodNotAllowed { allowed: vec![http::Method::GET, http::Method::POST] }
        );
    }

    #[test]
    fn refuses_overlapping_routes_between_components() {
        let err = manifest(
            r#"
            [components.a]
            wasm = "a.wasm"
            routes = [{ path = "/api/*" }]
            [components.b]
            wasm = "b.wasm"
            routes = [{ path = "/api/users/*" }]
            "#,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "components.toml: component `b`: field `routes[0].path`: route `/api/users/*` overlaps route `/api/*` of component `a`"
        );
    }

    #[test]
    fn same_path_with_disjoint_methods_is_not_an_overlap() {
        let m = manifest(
            r#"
            [components.reader]
            wasm = "r.wasm"
            routes = [{ path = "/items/*", methods = ["GET"] }]
            [components.writer]
            wasm = "w.wasm"
            routes = [{ path = "/items/*", methods = ["POST"] }]
            "#,
        )
        .unwrap();
        let table = table(&m);
        let RouteMatch::Component { component, .. } = table.route(&http::Method::POST, "/items/1") else {
            panic!("POST must route");
        };
        assert_eq!(component.as_str(), "writer");
    }

    #[test]
    fn refuses_routes_on_reserved_host_paths() {
        for path in ["/healthz", "/docs/*", "/openapi.json"] {
            assert!(RoutePattern::parse(path).unwrap_err().contains("reserved"), "{path}");
        }
        // A catch-all is allowed: host paths are answered before routing.
        assert!(RoutePattern::parse("/*").is_ok());
    }
}
