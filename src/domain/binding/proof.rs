//! A DBSC proof (the JWT in `Secure-Session-Response`) checked for everything but its signature,
//! and the public key it carries, as kept: see the parent module.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::Alg;
use crate::domain::digest::sha256;
use crate::domain::error::Error;
use crate::domain::json;

/// The smallest RSA modulus a key may have.
const MIN_RSA_BITS: usize = 2048;

/// Why a proof was refused; the text goes back to the caller (it holds no secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused(pub &'static str);

impl From<Refused> for Error {
    fn from(refused: Refused) -> Self {
        Error::ProofRefused(refused.0)
    }
}

/// A JSON object as text, held to the worker's one grammar (`domain::json`), read member by
/// member: the JWT's parts and the keys are small, so each read scans again.
pub(super) struct Object(String);

impl Object {
    /// `text` if it is an object under the grammar (duplicate names read as their last, as
    /// JavaScript and RFC 7515's "lexically last" have it).
    pub(super) fn parse(text: String) -> Option<Self> {
        json::members(&text).ok()?;
        Some(Self(text))
    }

    /// The raw value of the member `name`, as written.
    pub(super) fn raw(&self, name: &str) -> Option<&str> {
        let (members, _) = json::members(&self.0).ok()?;
        json::get(&members, name)
    }

    /// The member `name`, if it is a string.
    pub(super) fn text(&self, name: &str) -> Option<String> {
        String::from_utf8(json::string_bytes(self.raw(name)?)?).ok()
    }

    /// The member `name`, if it is an object.
    pub(super) fn object(&self, name: &str) -> Option<Object> {
        let raw = self.raw(name)?;
        json::is_object(raw).then(|| Object(raw.to_owned()))
    }
}

/// A public key as a JWK, reduced to its RFC 7638 members in their canonical order: what is
/// kept, what WebCrypto imports and what the thumbprint hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jwk(String);

impl Jwk {
    /// The key `jwk` describes, if it is one for `alg`: a P-256 point for ES256, an RSA key of
    /// at least 2048 bits for RS256.
    pub(super) fn for_alg(jwk: &Object, alg: Alg) -> Result<Self, Refused> {
        let (x, y, n, e) = (jwk.text("x"), jwk.text("y"), jwk.text("n"), jwk.text("e"));
        let (kty, crv) = (jwk.text("kty"), jwk.text("crv"));
        let decoded = |value: &Option<String>| {
            let value = value.as_deref()?;
            URL_SAFE_NO_PAD.decode(value).ok()
        };
        let canonical = match alg {
            Alg::Es256 => {
                let point_ok = [decoded(&x), decoded(&y)]
                    .iter()
                    .all(|c| c.as_ref().is_some_and(|c| c.len() == 32));
                let curve = kty.as_deref() == Some("EC") && crv.as_deref() == Some("P-256");
                if !curve || !point_ok {
                    return Err(Refused("the jwk is not a P-256 public key for ES256"));
                }
                // Base64url, as decoding just checked: nothing to escape.
                format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    x.unwrap_or_default(),
                    y.unwrap_or_default()
                )
            }
            Alg::Rs256 => {
                let modulus = decoded(&n).unwrap_or_default();
                let bits = modulus.iter().position(|b| *b != 0).map_or(0, |first| {
                    (modulus.len() - first) * 8 - modulus[first].leading_zeros() as usize
                });
                let rsa = kty.as_deref() == Some("RSA");
                if !rsa || bits < MIN_RSA_BITS || decoded(&e).is_none() {
                    return Err(Refused(
                        "the jwk is not an RSA public key of 2048 bits or more",
                    ));
                }
                format!(
                    r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                    e.unwrap_or_default(),
                    n.unwrap_or_default()
                )
            }
        };
        Ok(Self(canonical))
    }

    /// The key as kept (canonical JSON), read back.
    pub fn from_kept(text: &str) -> Option<Self> {
        let jwk = Object::parse(text.to_owned())?;
        let alg = match jwk.text("kty")?.as_str() {
            "EC" => Alg::Es256,
            _ => Alg::Rs256,
        };
        Self::for_alg(&jwk, alg).ok()
    }

    /// The RFC 7638 thumbprint: SHA-256 of the canonical members.
    pub fn thumbprint(&self) -> [u8; 32] {
        sha256(self.0.as_bytes())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A proof as the browser sent it, checked but for its signature.
#[derive(Debug)]
pub struct Proof<'a> {
    pub alg: Alg,
    /// The key the proof carries: at registration only.
    pub jwk: Option<Jwk>,
    /// The challenge it answers.
    pub jti: String,
    /// What the signature covers: the JWT's first two parts.
    pub signed: &'a str,
    /// The signature: r ‖ s for ES256, as WebCrypto verifies it; PKCS #1 v1.5 for RS256.
    pub signature: Vec<u8>,
}

/// When a proof is sent: at registration it must carry its key, at refresh it must not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Registration,
    Refresh,
}

impl<'a> Proof<'a> {
    /// Reads the `Secure-Session-Response` header's value (an sf-string holding the JWT, or the
    /// JWT bare) as a proof for `stage`.
    pub fn parse(header: &'a str, stage: Stage) -> Result<Self, Refused> {
        let jwt = header.trim();
        let jwt = jwt
            .strip_prefix('"')
            .and_then(|jwt| jwt.strip_suffix('"'))
            .unwrap_or(jwt);
        let malformed = Refused("the proof is not a JWT");
        let mut parts = jwt.split('.');
        let (Some(head), Some(body), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed);
        };
        let object = |part: &str| -> Result<Object, Refused> {
            let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| malformed)?;
            let text = String::from_utf8(bytes).map_err(|_| malformed)?;
            Object::parse(text).ok_or(malformed)
        };
        let (header, claims) = (object(head)?, object(body)?);
        if header.text("typ").as_deref() != Some("dbsc+jwt") {
            return Err(Refused("the proof's typ must be dbsc+jwt"));
        }
        let alg = header
            .text("alg")
            .and_then(|alg| Alg::from_name(&alg))
            .ok_or(Refused("the proof's alg must be ES256 or RS256"))?;
        let jwk = match (stage, header.raw("jwk"), header.object("jwk")) {
            (Stage::Registration, _, Some(jwk)) => Some(Jwk::for_alg(&jwk, alg)?),
            (Stage::Registration, _, None) => {
                return Err(Refused("a registration proof must carry its jwk"))
            }
            (Stage::Refresh, None, _) => None,
            (Stage::Refresh, Some(_), _) => {
                return Err(Refused("a refresh proof must not carry a jwk"))
            }
        };
        let jti = claims.text("jti").ok_or(Refused("the proof has no jti"))?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed)?;
        let signed = &jwt[..head.len() + 1 + body.len()];
        Ok(Self {
            alg,
            jwk,
            jti,
            signed,
            signature,
        })
    }
}

/// Checks a signature with a public key: the runtime's WebCrypto in the Worker, a stand-in in
/// native tests.
#[allow(
    async_fn_in_trait,
    reason = "Workers run single-threaded; futures need not be Send"
)]
pub trait Verify {
    async fn verify(
        &self,
        alg: Alg,
        jwk: &Jwk,
        signed: &[u8],
        signature: &[u8],
    ) -> Result<bool, Error>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn jwt(header: &str, claims: &str) -> String {
        format!(
            "{}.{}.{}",
            b64(header.as_bytes()),
            b64(claims.as_bytes()),
            b64(b"sig")
        )
    }

    fn ec_jwk() -> String {
        format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}","ext":true}}"#,
            b64(&[1; 32]),
            b64(&[2; 32])
        )
    }

    #[test]
    fn a_registration_proof_reads_with_its_key_in_canonical_form() {
        let header = format!(r#"{{"typ":"dbsc+jwt","alg":"ES256","jwk":{}}}"#, ec_jwk());
        let token = jwt(&header, r#"{"jti":"c1"}"#);
        let quoted = format!("\"{token}\"");
        let proof = Proof::parse(&quoted, Stage::Registration).unwrap();
        assert_eq!(proof.alg, Alg::Es256);
        assert_eq!(proof.jti, "c1");
        assert_eq!(proof.signature, b"sig");
        assert_eq!(proof.signed, &token[..token.rfind('.').unwrap()]);
        let jwk = proof.jwk.unwrap();
        // RFC 7638: required members only, sorted, no whitespace.
        assert_eq!(
            jwk.as_str(),
            format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                b64(&[1; 32]),
                b64(&[2; 32])
            )
        );
        assert_eq!(Jwk::from_kept(jwk.as_str()), Some(jwk));
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // RFC 7638, section 3.1's example key and thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let jwk = Object::parse(format!(r#"{{"kty":"RSA","n":"{n}","e":"AQAB"}}"#)).unwrap();
        let jwk = Jwk::for_alg(&jwk, Alg::Rs256).unwrap();
        assert_eq!(
            b64(&jwk.thumbprint()),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn proofs_outside_the_profile_are_refused() {
        let cases = [
            (r#"{"typ":"dbsc+jwt","alg":"none"}"#, Stage::Refresh, "alg"),
            (r#"{"typ":"dbsc+jwt","alg":"HS256"}"#, Stage::Refresh, "alg"),
            (r#"{"typ":"JWT","alg":"ES256"}"#, Stage::Refresh, "typ"),
            (
                r#"{"typ":"dbsc+jwt","alg":"ES256"}"#,
                Stage::Registration,
                "jwk",
            ),
        ];
        for (header, stage, why) in cases {
            let err = Proof::parse(&jwt(header, r#"{"jti":"c"}"#), stage).unwrap_err();
            assert!(err.0.contains(why), "{header}: {}", err.0);
        }
        let with_key = format!(r#"{{"typ":"dbsc+jwt","alg":"ES256","jwk":{}}}"#, ec_jwk());
        let err = Proof::parse(&jwt(&with_key, r#"{"jti":"c"}"#), Stage::Refresh).unwrap_err();
        assert!(err.0.contains("must not carry a jwk"));
        let err = Proof::parse(&jwt(&with_key, "{}"), Stage::Registration).unwrap_err();
        assert!(err.0.contains("jti"));
        // An EC key offered for RS256, and a short RSA key.
        let rs = format!(r#"{{"typ":"dbsc+jwt","alg":"RS256","jwk":{}}}"#, ec_jwk());
        assert!(Proof::parse(&jwt(&rs, r#"{"jti":"c"}"#), Stage::Registration).is_err());
        let short = format!(
            r#"{{"typ":"dbsc+jwt","alg":"RS256","jwk":{{"kty":"RSA","e":"AQAB","n":"{}"}}}}"#,
            b64(&[0xff; 128])
        );
        let err = Proof::parse(&jwt(&short, r#"{"jti":"c"}"#), Stage::Registration).unwrap_err();
        assert!(err.0.contains("2048"));
        for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(Proof::parse(junk, Stage::Refresh).is_err(), "{junk:?}");
        }
    }
}
