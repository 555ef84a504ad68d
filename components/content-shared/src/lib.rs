//! What the components of the content service (SPEC §4) share: `content`
//! and `interactions` answer in the same shapes ([`reply`]) and check tokens
//! the same way, by asking `users` in-process ([`calls`]).

pub mod calls;
pub mod reply;
