//! The functions of PORTAL-PROTOCOLS.md §1.2, each translated into core calls and back.
//!
//! Every value answered is a string: booleans `"true"`/`"false"`, numbers in decimal. A
//! failure answers `""` (or `"false"`) and leaves its number and message for
//! `SOF_GetLastError`/`SOF_GetLastErrMsg` of the same connection.
//!
//! Signatures: `SOF_SignData`, `SOF_SignMessage` (CMS) and `SOF_Login` (which proves the
//! PIN with an authentication signature) go through [`crate::core::Signing`], so the
//! page-PIN rule applies and each is audited with the origin and protocol `xtx`. RSA signs
//! with SHA-1 until the page calls `SOF_SetSignMethod` (§1.4); SM2 keys sign with SM3
//! (the core refuses any other pairing), where a backend signs SM2 (SKF).
//!
//! Refused, with `""`/`"false"` and a last error: every function that writes the device or
//! touches files (§1.2), PIN unlocking, and anything else certray does not offer.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use time::OffsetDateTime;

use super::XtxState;
use super::certid::{self, User};
use super::certinfo::{self, decode_cert};
use super::errors::{self, Fail, Reason};
use super::frame::Call;
use super::names::{canonical, is_offered, refused};
use super::session::{SGD_SHA256_RSA, SGD_SM3_RSA, SGD_SM3_SM2, Session};
use crate::cert::{self, KeyAlgorithm, Scheme};
use crate::core::{Credentials, Format, Requester, SignJob};
use crate::error::Code;
use crate::model::{HashAlg, SignInput};

/// What `SOF_GetVersion` answers. Clients compare it `>= "3.0"` as a string before they
/// send `URL`, so it starts with `3.`.
pub const VERSION: &str = "3.4.1.0";

/// The protocol's name in the audit log.
pub const PROTOCOL: &str = "xtx";

/// At most this many random bytes per `SOF_GenRandom`.
const MAX_RANDOM: usize = 4096;

/// A call's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub value: String,
    /// The login token, after a successful `SOF_Login`.
    pub token: Option<String>,
}

impl Answer {
    fn text(v: impl Into<String>) -> Answer {
        Answer {
            value: v.into(),
            token: None,
        }
    }

    fn yes() -> Answer {
        Answer::text("true")
    }
}

/// A failed call: its last error and what it answers (`""` or `"false"`).
#[derive(Debug, Clone, Copy)]
struct Failed(Fail, &'static str);

type Outcome = Result<Answer, Failed>;

const EMPTY: &str = "";
const FALSE: &str = "false";

/// Answer one call. Never logs an argument.
pub async fn call(st: &XtxState, s: &mut Session, mut c: Call) -> Answer {
    let name = canonical(&c.func).to_string();
    tracing::debug!(func = %c.func, origin = %s.who.name(), "xtx call");
    if name == "SOF_GetLastError" {
        return Answer::text(s.last_error.map_or(0, |f| f.code).to_string());
    }
    if name == "SOF_GetLastErrMsg" {
        return Answer::text(s.last_error.map(|f| f.message(s.lang)).unwrap_or_default());
    }
    let outcome = if let Some(value) = refused(&name).filter(|_| !is_offered(&name)) {
        tracing::info!(func = %c.func, origin = %s.who.name(), "xtx: refused a device-writing or file function");
        Err(Failed(Fail::refused(), value))
    } else {
        dispatch(st, s, &name, &mut c).await
    };
    match outcome {
        Ok(a) => {
            s.last_error = None;
            a
        }
        Err(Failed(f, value)) => {
            tracing::debug!(func = %c.func, code = f.code, "xtx call failed");
            s.last_error = Some(f);
            Answer::text(value)
        }
    }
}

async fn dispatch(st: &XtxState, s: &mut Session, name: &str, c: &mut Call) -> Outcome {
    let snapshot = st.signing.live().snapshot();
    match name {
        "SOF_GetVersion" => Ok(Answer::text(VERSION)),
        "SOF_GetUserList" => Ok(Answer::text(certid::user_list(&snapshot))),
        "GetDeviceInfo" => {
            if certid::find_token(&snapshot, arg(c, 0)?).is_none() {
                return Err(Failed(Fail::from_code(Code::TokenNotFound), EMPTY));
            }
            match number(c, 1)? {
                // Every key certray serves is hardware (or a PKCS#11 token standing for one).
                7 => Ok(Answer::text("HARD")),
                _ => Err(Failed(
                    Fail::new(errors::SOR_PARAMETER_NOT_SUPPORT, Reason::NotSupported),
                    EMPTY,
                )),
            }
        }
        "GetDeviceCount" => Ok(Answer::text(snapshot.tokens.len().to_string())),
        "GetAllDeviceSN" => Ok(Answer::text(
            snapshot
                .tokens
                .iter()
                .map(|t| format!("{};", certid::device_sn(t)))
                .collect::<String>(),
        )),
        "IsDeviceExist" => Ok(Answer::text(
            certid::find_token(&snapshot, arg(c, 0)?)
                .is_some()
                .to_string(),
        )),
        "SOF_ExportUserCert" => {
            let user = user(&snapshot, c, EMPTY)?;
            Ok(Answer::text(B64.encode(&user.sign.der)))
        }
        "SOF_ExportExChangeUserCert" => {
            let user = user(&snapshot, c, EMPTY)?;
            let cert = user
                .exchange_or_sign()
                .ok_or(Failed(Fail::cert_not_found(), EMPTY))?;
            Ok(Answer::text(B64.encode(&cert.der)))
        }
        "SOF_Login" | "SOF_LoginEx" => login(st, s, &snapshot, c).await,
        "SOF_Logout" => {
            let id = arg(c, 0)?.to_string();
            st.logins.remove(s, &id);
            Ok(Answer::yes())
        }
        "SOF_IsLogin" => {
            let id = arg(c, 0)?;
            Ok(Answer::text(
                st.logins
                    .pin_for(s, id, c.token.as_deref())
                    .is_some()
                    .to_string(),
            ))
        }
        "SOF_GetLastLoginCertID" => Ok(Answer::text(st.logins.last_cert_id(s).unwrap_or_default())),
        "SOF_GetPinRetryCount" => {
            let user = user(&snapshot, c, EMPTY)?;
            let live = st.signing.live().clone();
            let token_id = user.token.id.clone();
            let state = tokio::task::spawn_blocking(move || live.pin_state(&token_id))
                .await
                .map_err(|_| Failed(Fail::from_code(Code::Internal), EMPTY))?
                .map_err(|e| Failed(Fail::from(&e), EMPTY))?;
            Ok(Answer::text(retry_count(state).to_string()))
        }
        "SOF_ChangePassWd" => change_pin(st, s, &snapshot, c).await,
        "SOF_GetCertInfo" => {
            let der = cert_arg(c, 0, EMPTY)?;
            let kind = number(c, 1)?;
            certinfo::cert_info(&der, kind)
                .map(Answer::text)
                .map_err(|f| Failed(f, EMPTY))
        }
        "SOF_GetCertInfoByOid" => {
            let der = cert_arg(c, 0, EMPTY)?;
            let oid = arg(c, 1)?;
            match certinfo::info_by_oid(&der, oid.trim()).map_err(|f| Failed(f, EMPTY))? {
                Some(v) => Ok(Answer::text(v)),
                None => Err(Failed(
                    Fail::new(errors::SOR_NOT_SUPPORT_YET, Reason::Code(Code::CertInvalid)),
                    EMPTY,
                )),
            }
        }
        "SOF_GetCertEntity" => {
            let der = cert_arg(c, 0, EMPTY)?;
            Ok(Answer::text(
                certinfo::cert_entity(&der)
                    .map_err(|f| Failed(f, EMPTY))?
                    .unwrap_or_default(),
            ))
        }
        "SOF_SignData" | "SOF_SignDataBase64" => {
            let data = data_arg(c, 1, name.ends_with("Base64"))?;
            sign(st, s, &snapshot, c, data, Format::Raw).await
        }
        "SOF_SignMessage" | "SOF_SignMessageBase64" => {
            let detached = match arg(c, 0)?.trim() {
                "0" => false,
                "1" => true,
                _ => return Err(Failed(Fail::bad_argument(), EMPTY)),
            };
            // dwFlag, CertID, InData: without the flag, the CertID comes first as in
            // SOF_SignData.
            let data = data_arg(c, 2, name.ends_with("Base64"))?;
            c.params.remove(0);
            sign(st, s, &snapshot, c, data, Format::Cms { detached }).await
        }
        "SOF_VerifySignedData" | "SOF_VerifySignedDataBase64" => {
            let der = cert_arg(c, 0, FALSE)?;
            let data = data_arg(c, 1, name.ends_with("Base64")).map_err(as_false)?;
            let signature = B64
                .decode(arg(c, 2).map_err(as_false)?.trim())
                .map_err(|_| Failed(Fail::bad_argument(), FALSE))?;
            if verify(&der, s.sign_method, &data, &signature) {
                Ok(Answer::yes())
            } else {
                Err(Failed(
                    Fail::new(errors::SOR_VERIFY_SIGN_DATA, Reason::BadSignature),
                    FALSE,
                ))
            }
        }
        "SOF_GenRandom" => {
            let n = number(c, 0)? as usize;
            if !(1..=MAX_RANDOM).contains(&n) {
                return Err(Failed(
                    Fail::new(errors::SOR_INDATA_LEN, Reason::BadArgument),
                    EMPTY,
                ));
            }
            let mut bytes = vec![0u8; n];
            getrandom::fill(&mut bytes)
                .map_err(|_| Failed(Fail::from_code(Code::Internal), EMPTY))?;
            Ok(Answer::text(B64.encode(bytes)))
        }
        "SOF_ValidateCert" => {
            let der = match decode_cert(arg(c, 0)?) {
                Ok(der) => der,
                Err(f) => return Ok(Answer::text(f.code.to_string())),
            };
            Ok(Answer::text(validate(&der, &snapshot).to_string()))
        }
        "SOF_HashData" => {
            let alg = number(c, 0)?;
            let data = arg(c, 1)?.as_bytes();
            let hash = match alg {
                1 => cert::HashAlg::Sm3,
                2 => cert::HashAlg::Sha1,
                4 => cert::HashAlg::Sha256,
                _ => {
                    return Err(Failed(
                        Fail::new(errors::SOR_ALGO_TYPE, Reason::NotSupported),
                        EMPTY,
                    ));
                }
            };
            Ok(Answer::text(B64.encode(hash.digest(data))))
        }
        "SOF_SetSignMethod" => {
            s.sign_method = number(c, 0)?;
            Ok(Answer::text("0"))
        }
        "SOF_GetSignMethod" => Ok(Answer::text(s.sign_method.to_string())),
        "SOF_SetEncryptMethod" => {
            s.encrypt_method = number(c, 0)?;
            Ok(Answer::text("0"))
        }
        "SOF_GetEncryptMethod" => Ok(Answer::text(s.encrypt_method.to_string())),
        "SOF_Base64Encode" => Ok(Answer::text(B64.encode(arg(c, 0)?.as_bytes()))),
        "SOF_Base64Decode" => {
            let bytes = B64
                .decode(arg(c, 0)?.trim())
                .map_err(|_| Failed(Fail::bad_argument(), EMPTY))?;
            Ok(Answer::text(String::from_utf8_lossy(&bytes).into_owned()))
        }
        "GetPic" => {
            let token = certid::find_token(&snapshot, arg(c, 0)?)
                .ok_or(Failed(Fail::from_code(Code::TokenNotFound), EMPTY))?;
            let seal = token.seal.as_ref().ok_or(Failed(
                Fail::new(errors::SOR_FILE, Reason::NotSupported),
                EMPTY,
            ))?;
            Ok(Answer::text(B64.encode(seal.bytes.as_slice())))
        }
        // The picture as it came (browsers show any image format from a data URL).
        "ConvertPicFormat" => Ok(Answer::text(arg(c, 0)?.to_string())),
        _ => Err(Failed(Fail::not_supported(), EMPTY)),
    }
}

fn as_false(f: Failed) -> Failed {
    Failed(f.0, FALSE)
}

/// Argument `i` as text, or a bad-argument failure.
fn arg(c: &Call, i: usize) -> Result<&str, Failed> {
    c.text(i).ok_or(Failed(Fail::bad_argument(), EMPTY))
}

/// Argument `i` as a number (decimal, or `0x` hex as pages write SGD codes).
fn number(c: &Call, i: usize) -> Result<u32, Failed> {
    let t = arg(c, i)?.trim();
    let n = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => t.parse::<u32>().ok(),
    };
    n.ok_or(Failed(Fail::bad_argument(), EMPTY))
}

fn cert_arg(c: &Call, i: usize, value: &'static str) -> Result<Vec<u8>, Failed> {
    decode_cert(arg(c, i).map_err(|f| Failed(f.0, value))?).map_err(|f| Failed(f, value))
}

/// The data to sign or verify: the text's UTF-8 bytes, or base64-decoded for the
/// `…Base64` functions.
fn data_arg(c: &Call, i: usize, base64: bool) -> Result<Vec<u8>, Failed> {
    let t = arg(c, i)?;
    if base64 {
        B64.decode(t.trim())
            .map_err(|_| Failed(Fail::bad_argument(), EMPTY))
    } else {
        Ok(t.as_bytes().to_vec())
    }
}

fn user<'a>(
    snapshot: &'a crate::model::Snapshot,
    c: &Call,
    value: &'static str,
) -> Result<User<'a>, Failed> {
    let id = arg(c, 0).map_err(|f| Failed(f.0, value))?;
    certid::find(snapshot, id.trim()).ok_or(Failed(Fail::cert_not_found(), value))
}

/// The tries left, as far as the token's flags tell: PKCS#11 reports no count, only
/// "locked" (0), "final try" (1) and otherwise at least two.
fn retry_count(pin: crate::model::PinState) -> u32 {
    if pin.locked {
        0
    } else if pin.final_try {
        1
    } else {
        2
    }
}

/// The hash an RSA signature uses under `method` (§1.4): SHA-1 unless the page chose
/// SHA-256; SM3 with RSA is not offered.
fn rsa_hash(method: u32) -> Result<HashAlg, Fail> {
    match method {
        SGD_SHA256_RSA => Ok(HashAlg::Sha256),
        SGD_SM3_RSA => Err(Fail::from_code(Code::UnsupportedAlgorithm)),
        // The SM2 method says nothing about RSA keys.
        SGD_SM3_SM2 => Ok(HashAlg::Sha1),
        _ => Ok(HashAlg::Sha1),
    }
}

/// The hash for `user`'s key under the connection's sign method, or why it cannot sign.
fn sign_hash(user: &User<'_>, method: u32) -> Result<HashAlg, Fail> {
    let parsed = user
        .sign
        .parsed
        .as_ref()
        .map_err(|_| Fail::from_code(Code::CertInvalid))?;
    match parsed.key.algorithm {
        KeyAlgorithm::Rsa => rsa_hash(method),
        KeyAlgorithm::Ec => Ok(HashAlg::Sha256),
        KeyAlgorithm::Sm2 => Ok(HashAlg::Sm3),
        KeyAlgorithm::Other => Err(Fail::from_code(Code::UnsupportedAlgorithm)),
    }
}

async fn login(
    st: &XtxState,
    s: &mut Session,
    snapshot: &crate::model::Snapshot,
    c: &mut Call,
) -> Outcome {
    let pin = c.take_pin(1).ok_or(Failed(Fail::bad_argument(), FALSE))?;
    let user = user(snapshot, c, FALSE)?;
    let mut challenge = [0u8; 32];
    getrandom::fill(&mut challenge).map_err(|_| Failed(Fail::from_code(Code::Internal), FALSE))?;
    // The token checks the PIN by making an authentication signature (audited as such):
    // PKCS#11 has no "verify PIN" that leaves nothing behind.
    let result = st
        .signing
        .authenticate_via(
            Some(PROTOCOL),
            &s.who,
            user.sign.id.as_str(),
            &challenge,
            Credentials {
                pin: Some(pin.clone()),
                force: false,
            },
        )
        .await;
    match result {
        Ok(_) => {
            let token = st.logins.add(s, &user.id, user.token.id.clone(), pin);
            Ok(Answer {
                value: "true".into(),
                token: Some(token),
            })
        }
        Err(e) => {
            st.logins.remove(s, &user.id);
            Err(Failed(Fail::from(&e), FALSE))
        }
    }
}

async fn sign(
    st: &XtxState,
    s: &mut Session,
    snapshot: &crate::model::Snapshot,
    c: &Call,
    data: Vec<u8>,
    format: Format,
) -> Outcome {
    let user = user(snapshot, c, EMPTY)?;
    let hash = sign_hash(&user, s.sign_method).map_err(|f| Failed(f, EMPTY))?;
    let pin = st
        .logins
        .pin_for(s, &user.id, c.token.as_deref())
        .ok_or(Failed(Fail::not_logged_in(), EMPTY))?;
    let job = SignJob {
        certificate: user.sign.id.to_string(),
        hash,
        input: SignInput::Data(data),
        format,
    };
    let credentials = Credentials {
        pin: Some(pin),
        force: false,
    };
    match st
        .signing
        .sign_via(Some(PROTOCOL), &s.who, job, credentials)
        .await
    {
        Ok(signed) => Ok(Answer::text(B64.encode(signed.bytes))),
        Err(e) => {
            if matches!(e.code(), Code::PinIncorrect | Code::PinLocked) {
                // The PIN changed since the login: it is no good any more.
                st.logins.remove(s, &user.id);
            }
            Err(Failed(Fail::from(&e), EMPTY))
        }
    }
}

async fn change_pin(
    st: &XtxState,
    s: &mut Session,
    snapshot: &crate::model::Snapshot,
    c: &mut Call,
) -> Outcome {
    let allowed = match &s.who {
        Requester::Local | Requester::Program { .. } | Requester::OwnPage(_) => true,
        Requester::Website(o) => st.signing.approvals().page_pin_configured(o),
    };
    let (old, new) = (c.take_pin(1), c.take_pin(2));
    if !allowed {
        return Err(Failed(Fail::from_code(Code::PagePinNotAllowed), FALSE));
    }
    let (Some(old), Some(new)) = (old, new) else {
        return Err(Failed(Fail::bad_argument(), FALSE));
    };
    let user = user(snapshot, c, FALSE)?;
    let live = st.signing.live().clone();
    let token_id = user.token.id.clone();
    let tid = token_id.clone();
    let result = tokio::task::spawn_blocking(move || live.change_pin(&tid, old, new, false))
        .await
        .map_err(|_| Failed(Fail::from_code(Code::Internal), FALSE))?;
    match result {
        Ok(_) => {
            // Logins hold the old PIN.
            st.logins.end_token(&token_id);
            tracing::info!(origin = %s.who.name(), "xtx: user PIN changed by a page-PIN origin");
            Ok(Answer::yes())
        }
        Err(e) => Err(Failed(Fail::from(&e), FALSE)),
    }
}

/// `SOF_VerifySignedData`: RSA PKCS#1 v1.5 (the DigestInfo names the hash, so each hash
/// is tried, the sign method's first), SM2 with SM3 and the default ID (DER or r‖s), ECDSA.
fn verify(der: &[u8], method: u32, data: &[u8], signature: &[u8]) -> bool {
    let Ok(parsed) = cert::parse(der) else {
        return false;
    };
    use cert::HashAlg as H;
    let hashes = |first: H| {
        let mut v = vec![first];
        v.extend(
            [H::Sha1, H::Sha256, H::Sm3, H::Sha384, H::Sha512]
                .into_iter()
                .filter(|h| *h != first),
        );
        v
    };
    let schemes: Vec<Scheme> = match parsed.key.algorithm {
        KeyAlgorithm::Rsa => {
            let first = match method {
                SGD_SHA256_RSA => H::Sha256,
                SGD_SM3_RSA => H::Sm3,
                _ => H::Sha1,
            };
            hashes(first).into_iter().map(Scheme::RsaPkcs1v15).collect()
        }
        KeyAlgorithm::Sm2 => vec![Scheme::Sm2Sm3],
        KeyAlgorithm::Ec => hashes(H::Sha256).into_iter().map(Scheme::Ecdsa).collect(),
        KeyAlgorithm::Other => vec![],
    };
    schemes
        .into_iter()
        .any(|scheme| cert::verify_data(der, scheme, data, signature).is_ok())
}

/// `SOF_ValidateCert`: 0 when the certificate is within its validity period and its
/// signature is not proven wrong by an issuer among the inventory's certificates; else the
/// GM/T 0020 error number. certray carries no CA trust list of its own (the vendor helper
/// ships BJCA's): a certificate whose issuer is not on any key is judged on its dates.
fn validate(der: &[u8], snapshot: &crate::model::Snapshot) -> u32 {
    let Ok(parsed) = cert::parse(der) else {
        return errors::SOR_CERT_ENCODE;
    };
    let now = OffsetDateTime::now_utc();
    if now < parsed.validity.not_before {
        return errors::SOR_CERT_INVALID;
    }
    if now > parsed.validity.not_after {
        return errors::SOR_CERT_HAS_EXPIRED;
    }
    let ders: Vec<&[u8]> = snapshot
        .certificates
        .iter()
        .map(|c| c.der.as_slice())
        .collect();
    match cert::Candidates::new(&ders).verify_issuer(der) {
        Ok(cert::IssuerStatus::SignatureInvalid { .. }) => errors::SOR_CERT_INVALID,
        Ok(_) => errors::SOR_OK,
        Err(_) => errors::SOR_CERT_ENCODE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_methods() {
        assert_eq!(
            rsa_hash(super::super::session::SGD_SHA1_RSA).unwrap(),
            HashAlg::Sha1
        );
        assert_eq!(rsa_hash(SGD_SHA256_RSA).unwrap(), HashAlg::Sha256);
        assert_eq!(rsa_hash(SGD_SM3_SM2).unwrap(), HashAlg::Sha1);
        assert_eq!(
            rsa_hash(SGD_SM3_RSA).unwrap_err().reason,
            Reason::Code(Code::UnsupportedAlgorithm)
        );
        let flags = |locked, final_try| crate::model::PinState {
            locked,
            final_try,
            ..Default::default()
        };
        assert_eq!(retry_count(flags(true, false)), 0);
        assert_eq!(retry_count(flags(false, true)), 1);
        assert_eq!(retry_count(flags(false, false)), 2);
    }

    #[test]
    fn sm2_keys_sign_with_sm3() {
        let der = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/fixtures/real-certs/19-bjca-sm2-personal-multi.der"),
        )
        .unwrap();
        let token = crate::model::Token {
            id: crate::model::TokenId::new("t-1"),
            label: String::new(),
            manufacturer: String::new(),
            model: String::new(),
            serial: "1".into(),
            location: Default::default(),
            pin: Default::default(),
            so_pin: Default::default(),
            seal: None,
        };
        let entry = crate::core::entry(crate::model::CertObject {
            token_id: token.id.clone(),
            label: String::new(),
            key_id: b"c".to_vec(),
            der,
            has_private_key: true.into(),
        });
        let user = User {
            id: "c/1".into(),
            token: &token,
            sign: &entry,
            exchange: None,
        };
        // Whatever the page's sign method: SM2 signs SM3 only.
        for method in [SGD_SM3_SM2, SGD_SHA256_RSA, 0] {
            assert_eq!(sign_hash(&user, method).unwrap(), HashAlg::Sm3);
        }
    }
}
