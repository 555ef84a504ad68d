//! What a Wharf host is asked to run, with no runtime attached: the
//! manifest (`components.toml`) parsed and validated into component specs,
//! component names, the `wharf:host` interface names a grant can use, route
//! patterns and the route table built from the specs.
//!
//! Modules depend one way: [`name`] → [`interface`] → [`route`] →
//! [`schedule`] → [`component`] → [`router`] → [`manifest`].

#![deny(missing_docs)]

pub mod component;
pub mod interface;
pub mod manifest;
pub mod name;
pub mod route;
pub mod router;
pub mod schedule;

pub use component::ComponentSpec;
pub use interface::HostInterface;
pub use manifest::{Manifest, ManifestError};
pub use name::ComponentName;
pub use router::{RouteMatch, RouteTable};
