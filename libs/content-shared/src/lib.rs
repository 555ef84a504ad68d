//! What the components of the content service (SPEC §4) share: `content`
//! and `interactions` check tokens the same way, by asking `users`
//! in-process ([`calls`]). Both answer through `wharf_guest::reply`.

#![deny(missing_docs)]

pub mod calls;
