//! What the `mandrill_batch` fuzz target checks: the batch decoder and the
//! signature check of `POST /api/hook/`, as a hostile sender would drive
//! them. The first input byte picks how the rest is sent.

use crate::events::Event;
use crate::http::{MAX_EVENTS, Reply, decode_batch};
use crate::signature;

const KEY: &str = "fuzz-webhook-key";
const URL: &str = "https://example.com/api/hook/";

/// Panics only when an invariant breaks:
/// - every refusal is 400, 401, 413 or 415, and a batch is never taken in part;
/// - with a key, a form without the right signature is always 401, and one
///   signed with the key is never 401 (one flipped byte makes it 401 again);
/// - what is taken is at most 1000 events, each with a 64-hex-digit id that
///   is the same when the batch is decoded again.
pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let form = "application/x-www-form-urlencoded";
    match mode % 5 {
        0 => taken_or_refused(|| decode_batch(form, rest, None, URL, None)),
        1 => taken_or_refused(|| decode_batch("application/json", rest, None, URL, None)),
        2 => {
            assert_eq!(status(decode_batch(form, rest, Some(KEY), URL, None)), Some(401), "an unsigned form was taken")
        }
        3 => {
            let body = form_urlencoded::Serializer::new(String::new()).append_pair("mandrill_events", &text).finish();
            let good = signature::sign(KEY, URL, &[("mandrill_events".to_owned(), text.into_owned())]);
            let signed = || decode_batch(form, body.as_bytes(), Some(KEY), URL, Some(&good));
            assert_ne!(status(signed()), Some(401), "a signed form was refused");
            taken_or_refused(signed);
            let mut forged = good.clone().into_bytes();
            forged[0] ^= 1;
            let forged = String::from_utf8_lossy(&forged);
            let result = decode_batch(form, body.as_bytes(), Some(KEY), URL, Some(&forged));
            assert_eq!(status(result), Some(401), "a forged signature was taken");
        }
        _ => {
            let content_type = text.split('\n').next().unwrap_or_default().to_ascii_lowercase();
            let result = decode_batch(&content_type, rest, None, URL, None);
            if content_type != form && content_type != "application/json" {
                assert_eq!(status(result), Some(415), "{content_type:?}");
            }
        }
    }
}

type Decoded = Result<Vec<Event>, Reply>;

fn status(decoded: Decoded) -> Option<u16> {
    decoded.err().map(|reply| reply.status().as_u16())
}

/// Decodes twice: refused with a client error, or taken whole with the same ids.
fn taken_or_refused(decode: impl Fn() -> Decoded) {
    match decode() {
        Err(reply) => {
            let status = reply.status().as_u16();
            assert!(matches!(status, 400 | 401 | 413 | 415), "refused with {status}");
        }
        Ok(events) => {
            assert!(events.len() <= MAX_EVENTS, "{} events taken", events.len());
            for event in &events {
                assert!(event.id().len() == 64 && event.id().bytes().all(|b| b.is_ascii_hexdigit()), "{}", event.id());
            }
            let ids = |events: &[Event]| events.iter().map(|e| e.id().to_owned()).collect::<Vec<_>>();
            let again = decode().unwrap_or_else(|_| panic!("the same batch was refused the second time"));
            assert_eq!(ids(&again), ids(&events), "ids are not stable");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_kept_fuzz_inputs_pass_their_check() {
        let replayed = wharf_fuzz_replay::replay("mandrill_batch", super::check);
        assert!(replayed >= 5, "only {replayed} inputs for mandrill_batch");
    }
}
