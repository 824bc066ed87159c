//! Agent tokens: their shape, making them, hashing them for storage,
//! checking them against a stored hash, and the memory of recent successful
//! checks. No I/O.
//!
//! A token is `kefu_<agent id>_<64 lower-case hex digits>`: 256 bits from a
//! CSPRNG after the agent's id. The id in the clear lets kefu look up the one
//! agent the token claims to be and verify one hash, instead of trying every
//! agent's. The whole token (id included) is what is hashed, so a token only
//! ever matches the agent it was made for.
//!
//! Hashes are argon2id PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$…`)
//! with the `argon2` crate's recommended defaults: 19 MiB of memory, 2
//! passes, 1 lane (OWASP's first choice for argon2id). One verification
//! takes tens of milliseconds on purpose; tests could pass cheaper
//! parameters, but production hashes are never weakened for them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every token starts with this, so a leaked one is easy to recognise (and
/// to search for in logs and repositories).
pub const PREFIX: &str = "kefu_";
/// 32 random bytes = 256 bits, written as 64 hex digits.
const SECRET_BYTES: usize = 32;
const SECRET_HEX: usize = SECRET_BYTES * 2;
/// The longest agent id; ids appear in URLs, logs and tokens.
pub const MAX_ID_LEN: usize = 64;

/// Checks an agent id: 1 to 64 lower-case ASCII letters, digits, `-` and `_`.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(format!(
            "agent ids are 1 to {MAX_ID_LEN} characters long; {:?} has {}",
            id,
            id.chars().count()
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
    {
        return Err(format!(
            "agent id {id:?} has {bad:?}; ids are lower-case letters a-z, digits, - and _ (e.g. alice or li-wei)"
        ));
    }
    Ok(())
}

/// A new token for `agent_id` (which must pass [`check_id`]). Drawn from
/// `rand`'s thread-local generator, a ChaCha CSPRNG seeded and periodically
/// reseeded from the operating system.
pub fn generate(agent_id: &str) -> String {
    let mut secret = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut secret);
    format!("{PREFIX}{agent_id}_{}", hex::encode(secret))
}

/// Why a string is not a kefu token; said without echoing the string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("it does not start with `kefu_`")]
    Prefix,
    #[error("it does not end with `_` and 64 lower-case hex digits")]
    Secret,
    #[error("the agent id in it is not valid")]
    Id,
}

/// The agent a token claims to be, if it has a token's shape. Says nothing
/// about whether the token is right.
pub fn agent_id(token: &str) -> Result<&str, FormatError> {
    let rest = token.strip_prefix(PREFIX).ok_or(FormatError::Prefix)?;
    // Hex digits contain no `_`, so the last `_` separates id and secret
    // even for ids that contain `_` themselves.
    let (id, secret) = rest.rsplit_once('_').ok_or(FormatError::Secret)?;
    if secret.len() != SECRET_HEX
        || !secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(FormatError::Secret);
    }
    check_id(id).map_err(|_| FormatError::Id)?;
    Ok(id)
}

/// The argon2id PHC string kefu stores for `token`, with a fresh 16-byte salt.
pub fn hash(token: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    // Encoding 16 bytes as a salt and hashing with the default parameters
    // cannot fail: both are within argon2's limits.
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt length");
    Argon2::default()
        .hash_password(token.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any input")
        .to_string()
}

/// Whether `token` matches the stored `phc` hash. Uses the parameters
/// recorded in the hash; argon2 compares the outputs in constant time. A
/// hash that cannot be read matches nothing.
pub fn verify(token: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(token.as_bytes(), &parsed)
        .is_ok()
}

/// Checks that `phc` is an argon2id PHC string kefu can verify against.
pub fn check_hash(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| {
        format!("not a PHC hash string ({e}); it looks like $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>")
    })?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "the hash is {}, kefu accepts only argon2id",
            parsed.algorithm
        ));
    }
    Params::try_from(&parsed).map_err(|e| format!("the argon2 parameters are invalid: {e}"))?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("the hash string lacks its salt or its hash part".into());
    }
    Ok(())
}

/// What the cache is keyed by: a SHA-256 of the token, never the token.
pub fn fingerprint(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Tokens verified recently, so that an agent's every request does not pay
/// for argon2. An entry only says "this token matched this hash": the
/// caller still looks up the agent each time and passes the hash it has
/// now, so a rotated token misses at once. Entries expire after `ttl`;
/// when full, the entry closest to expiry makes room.
#[derive(Debug)]
pub struct VerifiedCache {
    capacity: usize,
    ttl: Duration,
    entries: HashMap<[u8; 32], Verified>,
}

#[derive(Debug)]
struct Verified {
    token_hash: String,
    expires: Instant,
}

impl VerifiedCache {
    pub fn new(capacity: usize, ttl: Duration) -> VerifiedCache {
        VerifiedCache {
            capacity: capacity.max(1),
            ttl,
            entries: HashMap::new(),
        }
    }

    /// Whether the token with `key` was verified against `token_hash`
    /// within the time to live. A stale or outdated entry is dropped.
    pub fn hit(&mut self, key: &[u8; 32], token_hash: &str, now: Instant) -> bool {
        let Some(entry) = self.entries.get(key) else {
            return false;
        };
        let fresh = now < entry.expires;
        let same: bool = entry
            .token_hash
            .as_bytes()
            .ct_eq(token_hash.as_bytes())
            .into();
        if fresh && same {
            return true;
        }
        self.entries.remove(key);
        false
    }

    /// Records a successful verification.
    pub fn remember(&mut self, key: [u8; 32], token_hash: String, now: Instant) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, e| now < e.expires);
            if self.entries.len() >= self.capacity {
                if let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| *k)
                {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.insert(
            key,
            Verified {
                token_hash,
                expires: now + self.ttl,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        struct Case {
            id: &'static str,
            ok: bool,
        }
        let cases = [
            Case {
                id: "alice",
                ok: true,
            },
            Case {
                id: "li-wei_2",
                ok: true,
            },
            Case { id: "_", ok: true },
            Case { id: "", ok: false },
            Case {
                id: "Alice",
                ok: false,
            },
            Case {
                id: "li wei",
                ok: false,
            },
            Case {
                id: "李伟",
                ok: false,
            },
            Case {
                id: "a.b",
                ok: false,
            },
        ];
        for case in cases {
            assert_eq!(check_id(case.id).is_ok(), case.ok, "{:?}", case.id);
        }
        assert!(check_id(&"a".repeat(MAX_ID_LEN)).is_ok());
        let err = check_id(&"a".repeat(MAX_ID_LEN + 1)).unwrap_err();
        assert!(err.contains("1 to 64"), "{err}");
        let err = check_id("Bob").unwrap_err();
        assert!(err.contains("lower-case"), "{err}");
    }

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        let token = generate("li_wei");
        assert!(token.starts_with("kefu_li_wei_"), "{token}");
        assert_eq!(token.len(), "kefu_li_wei_".len() + 64);
        assert_eq!(agent_id(&token), Ok("li_wei"));
        assert_ne!(token, generate("li_wei"), "every token is new");
    }

    #[test]
    fn parsing() {
        let hex = "0123456789abcdef".repeat(4);
        struct Case {
            name: &'static str,
            token: String,
            expect: Result<&'static str, FormatError>,
        }
        let cases = [
            Case {
                name: "plain",
                token: format!("kefu_alice_{hex}"),
                expect: Ok("alice"),
            },
            Case {
                name: "id with _ and -",
                token: format!("kefu_li_wei-2_{hex}"),
                expect: Ok("li_wei-2"),
            },
            Case {
                name: "no prefix",
                token: format!("alice_{hex}"),
                expect: Err(FormatError::Prefix),
            },
            Case {
                name: "upper-case hex",
                token: format!("kefu_alice_{}", hex.to_uppercase()),
                expect: Err(FormatError::Secret),
            },
            Case {
                name: "short secret",
                token: format!("kefu_alice_{}", &hex[1..]),
                expect: Err(FormatError::Secret),
            },
            Case {
                name: "no separator",
                token: format!("kefu_{hex}"),
                expect: Err(FormatError::Secret),
            },
            Case {
                name: "empty id",
                token: format!("kefu__{hex}"),
                expect: Err(FormatError::Id),
            },
            Case {
                name: "upper-case id",
                token: format!("kefu_Alice_{hex}"),
                expect: Err(FormatError::Id),
            },
            Case {
                name: "trailing space",
                token: format!("kefu_alice_{hex} "),
                expect: Err(FormatError::Secret),
            },
        ];
        for case in cases {
            assert_eq!(agent_id(&case.token), case.expect, "{}", case.name);
        }
    }

    #[test]
    fn hash_and_verify() {
        let token = generate("alice");
        let stored = hash(&token);
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(
            !stored.contains(&token[12..]),
            "the secret is not in the hash"
        );
        check_hash(&stored).unwrap();
        assert!(verify(&token, &stored));
        assert!(!verify(&generate("alice"), &stored), "another token");
        assert_ne!(stored, hash(&token), "salted: same token, new hash");
        assert!(!verify(&token, "not a hash"));
    }

    #[test]
    fn hash_strings_are_checked() {
        let cases = [
            ("", "not a PHC hash string"),
            ("plaintext-token", "not a PHC hash string"),
            (
                "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g",
                "only argon2id",
            ),
            (
                "$argon2id$v=19$m=1,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g",
                "parameters are invalid",
            ),
            ("$argon2id$v=19$m=19456,t=2,p=1", "lacks its salt"),
        ];
        for (phc, expect) in cases {
            let err = check_hash(phc).unwrap_err();
            assert!(err.contains(expect), "{phc:?}: {err}");
        }
        check_hash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g")
            .unwrap();
    }

    #[test]
    fn cache_hits_only_fresh_entries_for_the_current_hash() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(300);
        let mut cache = VerifiedCache::new(8, ttl);
        let key = fingerprint("kefu_a_token");
        assert!(!cache.hit(&key, "$h1", t0), "empty");
        cache.remember(key, "$h1".into(), t0);
        assert!(cache.hit(&key, "$h1", t0 + ttl - Duration::from_millis(1)));
        assert!(
            !cache.hit(&fingerprint("kefu_a_other"), "$h1", t0),
            "another token"
        );
        assert!(!cache.hit(&key, "$h2", t0), "the hash was rotated");
        assert!(cache.is_empty(), "an outdated entry is dropped");
        cache.remember(key, "$h1".into(), t0);
        assert!(!cache.hit(&key, "$h1", t0 + ttl), "expired");
        assert!(cache.is_empty(), "an expired entry is dropped");
    }

    #[test]
    fn cache_stays_within_its_bound() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(300);
        let mut cache = VerifiedCache::new(2, ttl);
        let (a, b, c) = (fingerprint("a"), fingerprint("b"), fingerprint("c"));
        cache.remember(a, "h".into(), t0);
        cache.remember(b, "h".into(), t0 + Duration::from_secs(1));
        cache.remember(c, "h".into(), t0 + Duration::from_secs(2));
        assert_eq!(cache.len(), 2);
        let now = t0 + Duration::from_secs(3);
        assert!(!cache.hit(&a, "h", now), "the oldest made room");
        assert!(cache.hit(&b, "h", now));
        assert!(cache.hit(&c, "h", now));
        // Expired entries go first, before any live one.
        let later = t0 + ttl + Duration::from_millis(1500);
        cache.remember(a, "h".into(), later);
        assert!(cache.hit(&a, "h", later));
        assert!(cache.hit(&c, "h", later), "c is still fresh");
        assert!(!cache.hit(&b, "h", later), "b expired and was dropped");
    }
}
