//! The ids every interface uses for tokens and certificates. Both are derived from what the
//! key holds, never from where it sits (a slot, a reader), so they stay the same when a key
//! is plugged in again, on another port or another computer.

use std::fmt;

use sha2::{Digest, Sha256};

/// Defines a string newtype with the conversions ids need.
macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// An id as a person or a page wrote it (not checked: lookups fail on a bad one).
            pub fn new(text: impl Into<String>) -> $name {
                $name(text.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> $name {
                $name(s.to_string())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> $name {
                $name(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
    };
}

string_id!(
    /// `t-` + 16 hex chars of the SHA-256 of manufacturer, model and serial.
    TokenId
);

string_id!(
    /// `c-` + the first 16 hex chars of the SHA-256 of the certificate's bytes.
    CertId
);

impl TokenId {
    /// The id of the token with this manufacturer, model and serial (each trimmed).
    pub fn derive(manufacturer: &str, model: &str, serial: &str) -> TokenId {
        let mut h = Sha256::new();
        for part in [manufacturer.trim(), model.trim(), serial.trim()] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        TokenId(format!("t-{}", &hex::encode(h.finalize())[..16]))
    }
}

impl CertId {
    /// The id for a SHA-256 in hex: `c-` + its first 16 hex chars. Objects that do not
    /// parse as certificates get their id the same way.
    pub fn from_sha256(sha256_hex: &str) -> CertId {
        // `get`: a short string gives a short id, not a panic.
        CertId(format!("c-{}", sha256_hex.get(..16).unwrap_or(sha256_hex)))
    }

    /// Whether `text` names this certificate: its whole id, or a prefix of at least 6
    /// characters (`c-` included).
    pub fn matches_prefix(&self, text: &str) -> bool {
        text.len() >= 6 && self.0.starts_with(text)
    }

    /// Whether `text` can name a certificate at all: `c-` and 4 to 16 lowercase hex digits
    /// (a whole id, or a prefix of one). Anything else is refused before it is looked up,
    /// logged or audited.
    pub fn well_formed(text: &str) -> bool {
        text.strip_prefix("c-").is_some_and(|hex| {
            (4..=16).contains(&hex.len())
                && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_id_is_stable_and_separates_fields() {
        let a = TokenId::derive("SoftHSM project", "SoftHSM v2", "1234");
        assert_eq!(
            a,
            TokenId::derive("SoftHSM project ", "SoftHSM v2", " 1234")
        );
        assert!(a.starts_with("t-") && a.len() == 18);
        assert_ne!(
            TokenId::derive("ab", "c", "d"),
            TokenId::derive("a", "bc", "d")
        );
    }

    #[test]
    fn cert_id_from_a_short_hash_does_not_panic() {
        assert_eq!(CertId::from_sha256("abc"), "c-abc");
        let id = CertId::from_sha256(&"0123456789abcdef".repeat(4));
        assert_eq!(id, "c-0123456789abcdef");
        assert!(id.matches_prefix("c-0123"));
        assert!(!id.matches_prefix("c-01"));
        for ok in ["c-0123456789abcdef", "c-0123"] {
            assert!(CertId::well_formed(ok), "{ok}");
        }
        for bad in [
            "c-012",
            "c-0123456789abcdef0",
            "c-0123\n2026",
            "c-ABCD",
            "t-0123456789abcdef",
            "",
        ] {
            assert!(!CertId::well_formed(bad), "{bad:?}");
        }
    }

    #[test]
    fn ids_serialize_as_plain_strings() {
        let id = TokenId::new("t-00");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"t-00\"");
    }
}
