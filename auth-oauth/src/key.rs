//! Verification keys: parsed once from a JWK, each bound to the one algorithm it may
//! verify, with the signature check done by aws-lc-rs on the pre-parsed key.

use std::fmt;

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::Deserialize;

/// A JWS algorithm this library verifies. `none` is not one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// HMAC SHA-256 (only with a locally configured secret, never from a JWKS).
    HS256,
    /// HMAC SHA-384.
    HS384,
    /// HMAC SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 SHA-512.
    RS512,
    /// RSASSA-PSS SHA-256.
    PS256,
    /// RSASSA-PSS SHA-384.
    PS384,
    /// RSASSA-PSS SHA-512.
    PS512,
    /// ECDSA P-256 SHA-256.
    ES256,
    /// ECDSA P-384 SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl Alg {
    /// Parses a JOSE `alg` name; `none` and unknown names are `None`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "HS256" => Self::HS256,
            "HS384" => Self::HS384,
            "HS512" => Self::HS512,
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "PS256" => Self::PS256,
            "PS384" => Self::PS384,
            "PS512" => Self::PS512,
            "ES256" => Self::ES256,
            "ES384" => Self::ES384,
            "EdDSA" => Self::EdDSA,
            _ => return None,
        })
    }

    fn public(self) -> Option<&'static dyn VerificationAlgorithm> {
        Some(match self {
            Self::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Self::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Self::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Self::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Self::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Self::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            Self::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Self::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            Self::EdDSA => &signature::ED25519,
            Self::HS256 | Self::HS384 | Self::HS512 => return None,
        })
    }
}

enum Material {
    Public(ParsedPublicKey),
    Hmac(Box<hmac::Key>),
}

/// A key that verifies exactly one algorithm.
pub struct VerifyingKey {
    /// The key id, if the JWK had one.
    pub kid: Option<String>,
    /// The only algorithm this key verifies.
    pub alg: Alg,
    material: Material,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

/// Why a JWK cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unusable JWK: {0}")]
pub struct KeyError(pub String);

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

fn b64(field: &Option<String>, name: &str) -> Result<Vec<u8>, KeyError> {
    let text = field
        .as_deref()
        .ok_or_else(|| KeyError(format!("missing `{name}`")))?;
    B64URL
        .decode(text)
        .map_err(|_| KeyError(format!("`{name}` is not base64url")))
}

/// DER of a PKCS#1 RSAPublicKey: SEQUENCE { INTEGER n, INTEGER e }.
fn rsa_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn len(out: &mut Vec<u8>, l: usize) {
        if l < 0x80 {
            out.push(l as u8);
        } else {
            let bytes: Vec<u8> = l
                .to_be_bytes()
                .iter()
                .copied()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend_from_slice(&bytes);
        }
    }
    fn integer(out: &mut Vec<u8>, v: &[u8]) {
        let v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
        let pad = v.first().is_some_and(|b| b & 0x80 != 0);
        out.push(0x02);
        len(out, v.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(&v);
    }
    let mut body = Vec::new();
    integer(&mut body, n);
    integer(&mut body, e);
    let mut out = vec![0x30];
    len(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

impl VerifyingKey {
    /// A key from one JWK (JSON object). The algorithm is the JWK's `alg` when it has one
    /// (and it must fit the key type), else the key type's usual one: RSA gives RS256,
    /// P-256 ES256, P-384 ES384, Ed25519 EdDSA. Symmetric (`oct`) keys are refused: an
    /// HMAC secret never comes from a key set meant to be public.
    pub fn from_jwk(value: &serde_json::Value) -> Result<Self, KeyError> {
        let jwk: Jwk =
            serde_json::from_value(value.clone()).map_err(|e| KeyError(e.to_string()))?;
        if jwk.usage.as_deref().is_some_and(|u| u != "sig") {
            return Err(KeyError("not a signing key (`use` is not `sig`)".into()));
        }
        let declared = match jwk.alg.as_deref() {
            Some(a) => {
                Some(Alg::parse(a).ok_or_else(|| KeyError(format!("unsupported alg `{a}`")))?)
            }
            None => None,
        };
        let (alg, bytes) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("RSA", _) => {
                let alg = declared.unwrap_or(Alg::RS256);
                if !matches!(
                    alg,
                    Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512
                ) {
                    return Err(KeyError(format!("alg {alg:?} does not fit an RSA key")));
                }
                (alg, rsa_der(&b64(&jwk.n, "n")?, &b64(&jwk.e, "e")?))
            }
            ("EC", Some(crv @ ("P-256" | "P-384"))) => {
                let expected = if crv == "P-256" {
                    Alg::ES256
                } else {
                    Alg::ES384
                };
                let alg = declared.unwrap_or(expected);
                if alg != expected {
                    return Err(KeyError(format!("alg {alg:?} does not fit curve {crv}")));
                }
                let mut point = vec![0x04];
                point.extend(b64(&jwk.x, "x")?);
                point.extend(b64(&jwk.y, "y")?);
                (alg, point)
            }
            ("OKP", Some("Ed25519")) => {
                let alg = declared.unwrap_or(Alg::EdDSA);
                if alg != Alg::EdDSA {
                    return Err(KeyError(format!("alg {alg:?} does not fit Ed25519")));
                }
                (alg, b64(&jwk.x, "x")?)
            }
            ("oct", _) => {
                return Err(KeyError(
                    "symmetric keys are not accepted from a key set".into(),
                ));
            }
            (kty, crv) => return Err(KeyError(format!("unsupported key type {kty} {crv:?}"))),
        };
        let public = alg
            .public()
            .ok_or_else(|| KeyError("not a public-key algorithm".into()))?;
        let parsed = ParsedPublicKey::new(public, &bytes)
            .map_err(|e| KeyError(format!("key rejected: {e}")))?;
        Ok(Self {
            kid: jwk.kid,
            alg,
            material: Material::Public(parsed),
        })
    }

    /// An HMAC key configured locally (never from a JWKS).
    pub fn hmac(kid: Option<String>, alg: Alg, secret: &[u8]) -> Result<Self, KeyError> {
        let algorithm = match alg {
            Alg::HS256 => hmac::HMAC_SHA256,
            Alg::HS384 => hmac::HMAC_SHA384,
            Alg::HS512 => hmac::HMAC_SHA512,
            other => return Err(KeyError(format!("{other:?} is not an HMAC algorithm"))),
        };
        if secret.len() < 32 {
            return Err(KeyError("an HMAC secret needs at least 32 bytes".into()));
        }
        Ok(Self {
            kid,
            alg,
            material: Material::Hmac(Box::new(hmac::Key::new(algorithm, secret))),
        })
    }

    /// Whether `signature` over `message` verifies, with this key's one algorithm.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            Material::Public(key) => key.verify_sig(message, signature).is_ok(),
            Material::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
        }
    }
}

/// Parses a JWKS document (`{"keys": [...]}`), skipping keys that cannot be used (their
/// errors are returned beside the usable keys, for the log).
pub fn parse_jwks(body: &[u8]) -> Result<(Vec<VerifyingKey>, Vec<KeyError>), KeyError> {
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| KeyError(format!("JWKS is not JSON: {e}")))?;
    let keys = doc
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| KeyError("JWKS without a `keys` array".into()))?;
    let mut usable = Vec::new();
    let mut refused = Vec::new();
    for k in keys {
        match VerifyingKey::from_jwk(k) {
            Ok(key) => usable.push(key),
            Err(e) => refused.push(e),
        }
    }
    Ok((usable, refused))
}
