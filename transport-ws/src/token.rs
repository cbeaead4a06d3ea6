//! Authentication tokens: made like the reference's (`secrets.token_urlsafe(32)`),
//! carried in an `Authorization: Bearer` header of the WebSocket upgrade
//! request (ours) or its `?token=` query (a stock client's), and compared
//! in constant time.
//!
//! This lives in the transport, not in the core: how a peer proves who it is
//! belongs to the way it connects, not to the protocol's messages.

use base64::Engine;
use subtle::ConstantTimeEq;

/// A fresh token: 32 bytes from the OS random source as URL-safe base64
/// without padding (43 characters).
pub fn generate() -> Result<String, getrandom::Error> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

/// Compare a presented token with the expected one without leaking, through
/// timing, how much of it matched. (Only the length may show.)
pub fn matches(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// The request target that presents `token`: `/?token=...`, the token
/// percent-encoded. [`from_request_target`] reads it back.
pub fn request_target(token: &str) -> String {
    format!("/?token={}", percent_encode(token))
}

/// The `token` query parameter of a request target (`/?token=abc&x=1`),
/// percent-decoded. `None` when there is none.
pub fn from_request_target(target: &str) -> Option<String> {
    let query = target.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(percent_decode)
}

/// Check a request target's token against the expected token.
pub fn authorize(target: &str, expected: &str) -> bool {
    from_request_target(target).is_some_and(|t| matches(&t, expected))
}

/// The `Authorization` header value that presents `token`: `Bearer `
/// and the token percent-encoded as in the query (a generated token is
/// unchanged; one of the user's may hold spaces or non-ASCII characters,
/// which a header cannot carry).
pub fn bearer(token: &str) -> String {
    format!("Bearer {}", percent_encode(token))
}

/// The token of an `Authorization: Bearer TOKEN` header value (the scheme's
/// name in any case), percent-decoded (a `+` stays a `+`). `None` for
/// another scheme.
pub fn from_authorization(value: &str) -> Option<String> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| decode(token.trim(), false))
}

/// Check an upgrade request: the token of its `Authorization: Bearer`
/// header if it has one, else that of its target's `?token=` query (a
/// stock client's), against the expected token, in constant time.
pub fn authorize_request(authorization: Option<&str>, target: &str, expected: &str) -> bool {
    match authorization.and_then(from_authorization) {
        Some(t) => matches(&t, expected),
        None => authorize(target, expected),
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    decode(s, true)
}

/// Percent-decode `s`; `plus_is_space`: a `+` means a space (a query's
/// convention).
fn decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let t = generate().unwrap();
        assert_eq!(t.len(), 43);
        assert!(t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(t, generate().unwrap());
        assert!(authorize(&format!("/?token={t}"), &t));
        assert!(authorize(&format!("/?a=1&token={t}&b=2"), &t));
        assert!(!authorize("/?token=wrong", &t));
        assert!(!authorize("/", &t));
        assert!(!authorize(&format!("/?token={}", &t[..42]), &t));
        assert_eq!(
            from_request_target("/?token=a%20b%zz%"),
            Some("a b%zz%".into())
        );
    }

    #[test]
    fn bearer_headers() {
        let t = "abc-_123";
        assert_eq!(from_authorization(&bearer(t)).as_deref(), Some(t));
        assert_eq!(from_authorization("bearer  abc ").as_deref(), Some("abc"));
        assert_eq!(
            from_authorization("Bearer a+b/c=").as_deref(),
            Some("a+b/c=")
        );
        for odd in ["a b&c=d/é", "100%+#?/"] {
            assert!(bearer(odd).is_ascii());
            assert_eq!(from_authorization(&bearer(odd)).as_deref(), Some(odd));
        }
        assert_eq!(from_authorization("Basic abc"), None);
        assert!(authorize_request(Some(&bearer(t)), "/", t));
        assert!(!authorize_request(
            Some("Bearer wrong"),
            &format!("/?token={t}"),
            t
        ));
        assert!(authorize_request(None, &format!("/?token={t}"), t));
        assert!(authorize_request(
            Some("Basic x"),
            &format!("/?token={t}"),
            t
        ));
        assert!(!authorize_request(None, "/", t));
    }

    #[test]
    fn encodes_tokens() {
        assert_eq!(percent_encode("aZ09-_.~"), "aZ09-_.~");
        assert_eq!(percent_encode("a b&c=é"), "a%20b%26c%3D%C3%A9");
        for t in ["plain", "a b&c=é", "100%+#?/"] {
            assert_eq!(from_request_target(&request_target(t)).as_deref(), Some(t));
        }
    }
}
