//! Standard Webhooks signatures: `v1,<base64(HMAC-SHA256(key, "{id}.{ts}.{body}"))>`,
//! one per secret, space separated, so subscribers can rotate keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

/// The `webhook-signature` header value for `body`, or `None` without secrets.
pub fn signature<'a>(
    secrets: impl IntoIterator<Item = &'a Secret>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<String> {
    let sigs: Vec<String> = secrets
        .into_iter()
        .map(|s| {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(s.key()).expect("HMAC takes any key length");
            mac.update(msg_id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        })
        .collect();
    (!sigs.is_empty()).then(|| sigs.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The published Standard Webhooks test vector.
    const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn standard_webhooks_vector() {
        let s = Secret::parse(KEY).unwrap();
        assert_eq!(signature(&[s], ID, TS, BODY).unwrap(), EXPECTED);
    }

    #[test]
    fn any_change_changes_the_signature() {
        let s = [Secret::parse(KEY).unwrap()];
        assert_ne!(signature(&s, ID, TS + 1, BODY).unwrap(), EXPECTED);
        assert_ne!(signature(&s, "msg_other", TS, BODY).unwrap(), EXPECTED);
        assert_ne!(
            signature(&s, ID, TS, br#"{"test": 2432232315}"#).unwrap(),
            EXPECTED
        );
    }

    #[test]
    fn rotation_sends_every_signature_first_key_first() {
        let other = Secret::parse("whsec_c2Vjb25kLXNlY3JldC1mb3ItdGVzdHM=").unwrap();
        let both = signature(&[Secret::parse(KEY).unwrap(), other.clone()], ID, TS, BODY).unwrap();
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], EXPECTED);
        assert_eq!(parts[1], signature(&[other], ID, TS, BODY).unwrap());
        assert_eq!(signature(&[], ID, TS, BODY), None);
    }
}
