//! What the `eye_event` fuzz target checks: the validation every accepted
//! event and every PUT/PATCH goes through, on any JSON a client sends. The
//! first input byte says PUT (even) or PATCH (odd); the rest is the body.

use serde_json::{Map, Value as Json};

use crate::events::{Fields, SKEW_US, validate_with};
use wharf_guest::reply;

use crate::time;

/// The one session that exists here.
const SESSION: &str = "6f1c1f52-8a3b-4a4e-9c1d-2b7e4f0a9d11";
const FIELDS: [&str; 5] = ["session", "category", "name", "data", "timestamp"];

/// Panics only when an invariant breaks:
/// - a body that is not a JSON object is refused with 400 before validation;
/// - a full event is taken only with every field set and valid (the known
///   session, non-blank strings, a non-empty `data` object, a timestamp not
///   in the future); a patch only with at least one field, and it sets
///   exactly the fields given;
/// - what a full check takes, a patch check takes too;
/// - a refusal names only fields of an event (or `_` for "give one").
pub fn check(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else { return };
    let object = match reply::json_body(body) {
        Ok(Json::Object(object)) => object,
        Ok(_) => return,
        Err(reply) => return assert_eq!(reply.status().as_u16(), 400),
    };
    let exists = |id: &str| Ok(id == SESSION);
    let partial = mode % 2 == 1;
    match validate_with(&object, partial, exists) {
        Ok(fields) if partial => {
            let set = set_fields(&fields);
            assert!(set.iter().any(|s| *s), "a patch with no field was taken");
            for (name, set) in FIELDS.iter().zip(set) {
                assert_eq!(object.contains_key(*name), set, "`{name}` given and set disagree");
            }
            valid(&fields);
        }
        Ok(fields) => {
            assert!(set_fields(&fields).iter().all(|s| *s), "a full event was taken without every field");
            valid(&fields);
            assert!(validate_with(&object, true, exists).is_ok(), "a full event is not a valid patch");
        }
        Err(bad) => refused(&bad),
    }
}

fn set_fields(fields: &Fields) -> [bool; 5] {
    [
        fields.session.is_some(),
        fields.category.is_some(),
        fields.name.is_some(),
        fields.data.is_some(),
        fields.ts_us.is_some(),
    ]
}

fn valid(fields: &Fields) {
    if let Some(session) = &fields.session {
        assert_eq!(session, SESSION);
    }
    for text in [&fields.category, &fields.name].into_iter().flatten() {
        assert!(!text.trim().is_empty(), "a blank string was taken");
    }
    if let Some(data) = &fields.data {
        assert!(data.as_object().is_some_and(|d| !d.is_empty()), "`data` {data} was taken");
    }
    if let Some(us) = fields.ts_us {
        assert!(us <= time::now() + SKEW_US, "a future timestamp was taken");
    }
}

fn refused(bad: &Map<String, Json>) {
    assert!(!bad.is_empty(), "refused without a reason");
    for key in bad.keys() {
        assert!(FIELDS.contains(&key.as_str()) || key == "_", "refused naming `{key}`");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_kept_fuzz_inputs_pass_their_check() {
        let replayed = wharf_fuzz_replay::replay("eye_event", super::check);
        assert!(replayed >= 5, "only {replayed} inputs for eye_event");
    }
}
