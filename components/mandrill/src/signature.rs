//! Mandrill's webhook signature: base64(HMAC-SHA1(key, url + each POST key
//! and value, keys sorted)).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The signature Mandrill sends for `fields` posted to `url`.
pub(crate) fn sign(key: &str, url: &str, fields: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = fields.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut data = url.to_owned();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `given` is the right signature (compared in constant time).
pub(crate) fn verify(key: &str, url: &str, fields: &[(String, String)], given: Option<&str>) -> bool {
    let Some(given) = given else { return false };
    let expected = sign(key, url, fields);
    expected.len() == given.len() && expected.bytes().zip(given.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}
