//! Access tokens and what a caller may do. Tokens are random, shown once, and stored
//! only as SHA-256 hashes in `nordgeo_tokens`; a token names a role, optionally one
//! municipality and a list of collections.

use std::collections::HashMap;
use std::io::Read;

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::store::LayerMeta;
use crate::store::functions::slug;

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The store refused.
    #[error("token store: {0}")]
    Sql(#[from] rusqlite::Error),
    /// No randomness.
    #[error("cannot read random bytes from the operating system: {0}")]
    Random(std::io::Error),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads restricted data and edits features of its municipality and collections.
    Maintainer,
    /// Everything, everywhere, including imports, rollbacks and other municipalities.
    Admin,
}

impl Role {
    /// Reads `maintainer` or `admin`.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        match s {
            "maintainer" => Ok(Role::Maintainer),
            "admin" => Ok(Role::Admin),
            o => Err(AuthError::Invalid(format!(
                "role '{o}' is not known; use maintainer or admin"
            ))),
        }
    }
}

/// A token as stored (without its secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Token {
    /// Unique name, recorded as the actor of every change made with it.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The municipality whose features it may change (none: any, for admins).
    pub municipality: Option<String>,
    /// The collections it covers (none: all).
    pub collections: Option<Vec<String>>,
    /// Creation time (UTC).
    pub created: String,
    /// Expiry (UTC, RFC 3339), if any.
    pub expires: Option<String>,
    /// Revocation time, if revoked.
    pub revoked: Option<String>,
}

/// SHA-256 of a secret, hex.
pub fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random secret.
pub fn random_secret() -> Result<String, AuthError> {
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(AuthError::Random)?;
    Ok(format!(
        "ngt_{}",
        buf.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// Reads an expiry: an RFC 3339 date/time, or a duration like `90d` or `12h` from now.
pub fn parse_expiry(s: &str) -> Result<String, AuthError> {
    date_or_offset(s, 1.0)
}

/// Reads a cutoff: an RFC 3339 date/time, or an age like `365d` before now.
pub fn parse_cutoff(s: &str) -> Result<String, AuthError> {
    date_or_offset(s, -1.0)
}

fn date_or_offset(s: &str, sign: f64) -> Result<String, AuthError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let bad = || {
        AuthError::Invalid(format!(
            "'{}' is neither a date (2027-01-31, 2027-01-31T12:00:00Z) nor a duration (12h, 90d, 2w, 1y)",
            s.chars().take(40).collect::<String>()
        ))
    };
    let unit = |suffix: char, seconds: f64| -> Option<Result<f64, AuthError>> {
        let n = s.trim().strip_suffix(suffix)?;
        Some(
            n.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(|v| now + sign * v * seconds)
                .ok_or_else(bad),
        )
    };
    let t = match unit('h', 3_600.0)
        .or_else(|| unit('d', 86_400.0))
        .or_else(|| unit('w', 7.0 * 86_400.0))
        .or_else(|| unit('y', 365.0 * 86_400.0))
    {
        Some(t) => t?,
        None => crate::filter::time::parse_instant(s.trim()).ok_or_else(bad)?,
    };
    Ok(crate::filter::time::format_timestamp(t))
}

/// Creates a token and returns its secret (shown once, never stored).
pub fn create(
    conn: &Connection,
    name: &str,
    role: Role,
    municipality: Option<&str>,
    collections: Option<&[String]>,
    expires: Option<&str>,
) -> Result<String, AuthError> {
    check_new(name, role, municipality)?;
    conn.execute_batch(crate::store::schema::TOKENS)?;
    let exists: bool = conn
        .query_row(
            "SELECT 1 FROM nordgeo_tokens WHERE name = ?1",
            [name],
            |_| Ok(true),
        )
        .optional()?
        .is_some();
    if exists {
        return Err(AuthError::Invalid(format!(
            "a token named '{name}' exists; revoke it or pick another name"
        )));
    }
    let secret = random_secret()?;
    let role_s = role_name(role);
    conn.execute(
        "INSERT INTO nordgeo_tokens (name, hash, role, municipality, collections, expires)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            name,
            hash(&secret),
            role_s,
            municipality,
            collections.map(|c| c.join(",")),
            expires
        ],
    )?;
    Ok(secret)
}

/// Checks a new token's name and role (for every store kind).
pub fn check_new(name: &str, role: Role, municipality: Option<&str>) -> Result<(), AuthError> {
    if name.trim().is_empty() || name.len() > 100 {
        return Err(AuthError::Invalid(
            "a token needs a name of 1 to 100 characters".into(),
        ));
    }
    if role == Role::Maintainer && municipality.is_none() {
        return Err(AuthError::Invalid(
            "a maintainer token needs --municipality (admins may omit it)".into(),
        ));
    }
    Ok(())
}

/// The role as stored.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Maintainer => "maintainer",
        Role::Admin => "admin",
    }
}

/// A token from its stored columns.
pub fn token_of(
    name: String,
    role: &str,
    municipality: Option<String>,
    collections: Option<String>,
    created: String,
    expires: Option<String>,
    revoked: Option<String>,
) -> Token {
    Token {
        name,
        role: if role == "admin" {
            Role::Admin
        } else {
            Role::Maintainer
        },
        municipality,
        collections: collections.map(|c| c.split(',').map(|s| s.trim().to_string()).collect()),
        created,
        expires,
        revoked,
    }
}

fn has_table(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE name = 'nordgeo_tokens'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )
}

/// Every token by hash (for the server), or by name order (for `token list`).
pub fn load(conn: &Connection) -> rusqlite::Result<Vec<(String, Token)>> {
    if !has_table(conn)? {
        return Ok(Vec::new());
    }
    let mut st = conn.prepare(
        "SELECT hash, name, role, municipality, collections, created, expires, revoked
         FROM nordgeo_tokens ORDER BY name",
    )?;
    st.query_map([], |r| {
        let role: String = r.get(2)?;
        Ok((
            r.get(0)?,
            token_of(
                r.get(1)?,
                &role,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ),
        ))
    })?
    .collect()
}

/// Revokes a token by name.
pub fn revoke(conn: &Connection, name: &str) -> Result<(), AuthError> {
    conn.execute_batch(crate::store::schema::TOKENS)?;
    let n = conn.execute(
        "UPDATE nordgeo_tokens SET revoked = strftime('%Y-%m-%dT%H:%M:%SZ','now')
         WHERE name = ?1 AND revoked IS NULL",
        [name],
    )?;
    if n == 0 {
        return Err(AuthError::Invalid(format!(
            "no active token named '{name}'; `nordgeo token list` shows them"
        )));
    }
    Ok(())
}

/// The tokens the server knows, by hash.
pub type TokenTable = HashMap<String, std::sync::Arc<Token>>;

/// The token in an `Authorization` value: `Bearer <token>`, or HTTP Basic with the token
/// as the password (desktop GIS such as QGIS 3.22 can only send Basic credentials).
fn secret_of(v: &str) -> Option<String> {
    let (scheme, rest) = v.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_string());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_user, password) = text.split_once(':')?;
    Some(password.to_string())
}

/// Who is asking.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No token.
    Anonymous,
    /// A valid token.
    Token(std::sync::Arc<Token>),
}

/// Why a presented token is refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refused {
    /// Not a token of this server.
    #[error("the token is not valid; ask an administrator for one (`nordgeo token create`)")]
    Unknown,
    /// Expired.
    #[error("the token '{0}' expired at {1}; ask an administrator for a new one")]
    Expired(String, String),
    /// Revoked.
    #[error("the token '{0}' was revoked; ask an administrator for a new one")]
    Revoked(String),
    /// Neither a bearer token nor Basic credentials with the token as password.
    #[error(
        "send the token as 'Authorization: Bearer <token>', or as the password of HTTP Basic authentication (any user name)"
    )]
    Malformed,
}

impl Caller {
    /// Reads an `Authorization` header value against the token table.
    pub fn from_header(value: Option<&str>, tokens: &TokenTable) -> Result<Caller, Refused> {
        let Some(v) = value else {
            return Ok(Caller::Anonymous);
        };
        let secret = secret_of(v).ok_or(Refused::Malformed)?;
        let t = tokens.get(&hash(&secret)).ok_or(Refused::Unknown)?;
        if t.revoked.is_some() {
            return Err(Refused::Revoked(t.name.clone()));
        }
        if let Some(e) = &t.expires {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            if crate::filter::time::parse_instant(e).is_none_or(|x| x <= now) {
                return Err(Refused::Expired(t.name.clone(), e.clone()));
            }
        }
        Ok(Caller::Token(t.clone()))
    }

    /// The name changes are recorded under.
    pub fn actor(&self) -> &str {
        match self {
            Caller::Anonymous => "anonymous",
            Caller::Token(t) => &t.name,
        }
    }

    /// Whether the token covers a collection (any token for admins).
    pub fn covers(&self, collection: &str) -> bool {
        match self {
            Caller::Anonymous => false,
            Caller::Token(t) => {
                t.role == Role::Admin
                    || t.collections
                        .as_ref()
                        .is_none_or(|c| c.iter().any(|x| x == collection))
            }
        }
    }

    /// Whether the caller may read a collection at all.
    pub fn can_read(&self, collection: &str, meta: &LayerMeta) -> bool {
        !meta.restricted || self.covers(collection)
    }

    /// Whether the caller sees internal properties of a collection.
    pub fn sees_internal(&self, collection: &str) -> bool {
        self.covers(collection)
    }

    /// Whether the caller may change features of `collection` in `municipality` (the
    /// feature's value of the layer's municipality column; `None` when the layer has none).
    pub fn can_edit(&self, collection: &str, municipality: Option<&str>) -> bool {
        match self {
            Caller::Anonymous => false,
            Caller::Token(t) if t.role == Role::Admin => true,
            Caller::Token(t) => {
                self.covers(collection)
                    && match (&t.municipality, municipality) {
                        (Some(mine), Some(theirs)) => slug(mine) == slug(theirs),
                        _ => false,
                    }
            }
        }
    }

    /// Whether the caller is an administrator.
    pub fn is_admin(&self) -> bool {
        matches!(self, Caller::Token(t) if t.role == Role::Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(t: Token, secret: &str) -> TokenTable {
        let mut m = TokenTable::new();
        m.insert(hash(secret), std::sync::Arc::new(t));
        m
    }

    fn maintainer() -> Token {
        Token {
            name: "werther-kita".into(),
            role: Role::Maintainer,
            municipality: Some("werther".into()),
            collections: Some(vec!["childcare".into()]),
            created: "2026-01-01T00:00:00Z".into(),
            expires: None,
            revoked: None,
        }
    }

    #[test]
    fn callers_and_rights() {
        let tokens = table(maintainer(), "ngt_secret");
        let c = Caller::from_header(Some("Bearer ngt_secret"), &tokens).unwrap();
        assert!(c.can_edit("childcare", Some("Werther")));
        assert!(!c.can_edit("childcare", Some("Ellrich")));
        assert!(!c.can_edit("parking", Some("Werther")));
        assert!(!c.can_edit("childcare", None));
        assert_eq!(
            Caller::from_header(Some("Bearer nope"), &tokens).unwrap_err(),
            Refused::Unknown
        );
        assert_eq!(
            Caller::from_header(Some("Basic abc"), &tokens).unwrap_err(),
            Refused::Malformed
        );
        // "qgis:ngt_secret" in Basic: the password is the token.
        assert!(Caller::from_header(Some("Basic cWdpczpuZ3Rfc2VjcmV0"), &tokens).is_ok());
        assert_eq!(
            Caller::from_header(Some("Digest x"), &tokens).unwrap_err(),
            Refused::Malformed
        );
        let mut old = maintainer();
        old.expires = Some("2020-01-01T00:00:00Z".into());
        let tokens = table(old, "x");
        assert!(matches!(
            Caller::from_header(Some("Bearer x"), &tokens),
            Err(Refused::Expired(..))
        ));
        assert!(matches!(
            Caller::from_header(None, &tokens),
            Ok(Caller::Anonymous)
        ));
    }
}
