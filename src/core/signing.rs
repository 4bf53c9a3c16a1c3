//! The sign and authenticate use cases, the one path every front door takes (the CLI, the
//! `/v1` bridge, the BJCA-compatible endpoint): check the signer before any PIN → authorise
//! (the page-PIN rule, a remembered grant, or the PIN prompt, one per requester) → the
//! backend signs → the signature is verified with the certificate's key (a bad one never
//! leaves: `SIGNATURE_INVALID`) → CMS when asked → the token's PIN flags are read again →
//! the audit log.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::approvals::{Approvals, Requester};
use super::audit::{Audit, AuditRecord};
use super::prompt::{PinAnswer, PinRequest, Prompt};
use super::{Error, KeyCache, Live, default_hash, hash_fits, signing_key};
use crate::cms;
use crate::model::{
    CertEntry, CertId, HashAlg, KeyKind, KeyPresence, Pin, SignInput, algorithm_name,
};
use crate::token::pkcs11::Auth;

/// What a signature comes out as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The signature itself (PKCS#1 v1.5 for RSA, DER ECDSA-Sig-Value for EC and SM2).
    Raw,
    /// CMS SignedData, with the content inside or `detached`.
    Cms { detached: bool },
}

impl Format {
    /// The name the wire and the audit log use: `raw`, `cms`, `cms-detached`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Cms { detached: false } => "cms",
            Format::Cms { detached: true } => "cms-detached",
        }
    }
}

/// What to sign, with which certificate, and how.
#[derive(Debug, Clone)]
pub struct SignJob {
    /// The certificate's id (or a unique prefix of 6 characters or more).
    pub certificate: String,
    pub hash: HashAlg,
    pub input: SignInput,
    pub format: Format,
}

/// What the requester brought to authorise the signature.
#[derive(Debug, Default)]
pub struct Credentials {
    /// A PIN in the request itself (only from requesters the page-PIN rule admits).
    pub pin: Option<Pin>,
    /// The person confirmed using the PIN's final try.
    pub force: bool,
}

/// A signature made.
#[derive(Debug, Clone)]
pub struct Signed {
    pub bytes: Vec<u8>,
    /// The certificate whose key signed.
    pub certificate: CertEntry,
    /// e.g. `sha256WithRSAEncryption`, or `cms-signed-data`.
    pub algorithm: String,
}

/// The format of what [`Signing::authenticate`] signs, as recorded and returned.
pub const AUTH_FORMAT: &str = "certray-auth:2";

/// The fixed context every authentication proof starts with: [`AUTH_FORMAT`] and a line
/// feed. What `authenticate` signs is `AUTH_CONTEXT ‖ SHA-256(origin) ‖ SHA-256(challenge)`
/// (79 bytes), hashed with SHA-256 (RSA PKCS#1 v1.5, or ECDSA), or for an SM2 key signed as
/// an SM2 message (SM3, default ID); see [`auth_message`].
pub const AUTH_CONTEXT: &[u8] = b"certray-auth:2\n";

/// Data starting with this is never signed by [`Signing::sign`]: it is reserved for
/// authentication proofs (every version), so that no signature request can mint one.
pub const AUTH_RESERVED_PREFIX: &[u8] = b"certray-auth:";

/// What [`Signing::authenticate`] signs for `origin` and `challenge`: the bytes a verifier
/// rebuilds to check a proof.
pub fn auth_message(origin: &str, challenge: &[u8]) -> Vec<u8> {
    let mut message = AUTH_CONTEXT.to_vec();
    message.extend_from_slice(&Sha256::digest(origin.as_bytes()));
    message.extend_from_slice(&Sha256::digest(challenge));
    message
}

/// A proof of possession of a certificate's key, bound to the requester's origin.
#[derive(Debug, Clone)]
pub struct Proof {
    pub certificate: CertEntry,
    pub signature: Vec<u8>,
    pub algorithm: String,
    /// The origin the proof is bound to (the requester's, never one it chose).
    pub origin: String,
}

/// A certificate id that cannot be one is refused before anything (the audit log
/// included) sees it.
fn well_formed(id: &str) -> Result<(), Error> {
    if CertId::well_formed(id) {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "certificate_id {}: not a certificate id (c- and 4–16 hex digits)",
            crate::text::escape_control(&id.chars().take(40).collect::<String>())
        )))
    }
}

/// The sign and authenticate use cases over the live inventory.
pub struct Signing {
    live: Arc<Live>,
    approvals: Arc<Approvals>,
    audit: Arc<Audit>,
    prompt: Arc<dyn Prompt>,
    /// The keys every signature is checked with before it leaves.
    keys: KeyCache,
}

impl Signing {
    pub fn new(
        live: Arc<Live>,
        approvals: Arc<Approvals>,
        audit: Arc<Audit>,
        prompt: Arc<dyn Prompt>,
    ) -> Signing {
        Signing {
            live,
            approvals,
            audit,
            prompt,
            keys: KeyCache::default(),
        }
    }

    /// The use cases with approvals and the audit log kept in `state_dir` (`None`: in
    /// memory only, no audit log), under `config`'s origin lists.
    pub fn open(
        live: Arc<Live>,
        config: &crate::config::BridgeConfig,
        prompt: Arc<dyn Prompt>,
        state_dir: Option<&std::path::Path>,
    ) -> Arc<Signing> {
        Arc::new(Signing::new(
            live,
            Arc::new(Approvals::new(config, state_dir)),
            Arc::new(Audit::open(state_dir)),
            prompt,
        ))
    }

    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    pub fn approvals(&self) -> &Arc<Approvals> {
        &self.approvals
    }

    pub fn prompt(&self) -> &Arc<dyn Prompt> {
        &self.prompt
    }

    /// Sign `job` for `who`. Every outcome, refusals included, goes into the audit log.
    pub async fn sign(
        &self,
        who: &Requester,
        job: SignJob,
        credentials: Credentials,
    ) -> Result<Signed, Error> {
        self.sign_via(None, who, job, credentials).await
    }

    /// [`Signing::sign`] for a request that came in by `protocol` (e.g. `xtx`), which the
    /// audit record names.
    pub async fn sign_via(
        &self,
        protocol: Option<&str>,
        who: &Requester,
        job: SignJob,
        credentials: Credentials,
    ) -> Result<Signed, Error> {
        well_formed(&job.certificate)?;
        let record = AuditRecord {
            time: String::new(),
            origin: who.name().to_string(),
            operation: "sign".into(),
            certificate_id: job.certificate.clone(),
            format: job.format.name().into(),
            bytes: job.input.len(),
            result: String::new(),
            protocol: protocol.map(str::to_string),
        };
        let result = self.sign_unaudited(who, job, credentials).await;
        self.audited(record, &result);
        result
    }

    async fn sign_unaudited(
        &self,
        who: &Requester,
        job: SignJob,
        credentials: Credentials,
    ) -> Result<Signed, Error> {
        let (cert, kind) = self.check(&job)?;
        // A precomputed digest can be the digest of anything, an authentication proof for
        // another site included: websites sign data, which certray hashes itself.
        if matches!(job.input, SignInput::Digest(_)) && matches!(who, Requester::Website(_)) {
            return Err(Error::BadRequest(
                "a website signs data; only programs on this computer may sign a precomputed digest"
                    .into(),
            ));
        }
        let operation = format!("{}, {} bytes", job.format.name(), job.input.len());
        let bytes = self
            .authorised(who, &cert, credentials, &operation, |auth| {
                self.run(&cert, kind, auth, &job)
            })
            .await?;
        let algorithm = match job.format {
            Format::Raw => algorithm_name(kind, job.hash),
            Format::Cms { .. } => "cms-signed-data".to_string(),
        };
        Ok(Signed {
            bytes,
            certificate: cert,
            algorithm,
        })
    }

    /// Whether `job` can be signed at all, with the certificate and its key type: what
    /// cannot be signed is refused before any PIN is asked for (a front door that asks for
    /// the PIN itself calls this first).
    pub fn check(&self, job: &SignJob) -> Result<(CertEntry, KeyKind), Error> {
        match &job.input {
            SignInput::Digest(_) => {
                job.input
                    .digest(job.hash)
                    .map_err(|e| Error::BadRequest(e.to_string()))?;
            }
            // Domain separation: what an authentication proof signs is never signed here.
            SignInput::Data(d) if d.starts_with(AUTH_RESERVED_PREFIX) => {
                return Err(Error::BadRequest(
                    "data starting with `certray-auth:` is reserved for authentication proofs"
                        .into(),
                ));
            }
            SignInput::Data(_) => {}
        }
        if let (Format::Cms { .. }, SignInput::Digest(_)) = (job.format, &job.input) {
            return Err(Error::BadRequest(
                "CMS formats sign the data, not a digest".into(),
            ));
        }
        let (cert, kind) = self.signer(&job.certificate)?;
        hash_fits(kind, job.hash)?;
        Ok((cert, kind))
    }

    /// Prove to `who` (a page, by its origin) that the person holds `certificate`'s key: a
    /// signature over [`auth_message`] (a fixed context ‖ SHA-256(origin) ‖
    /// SHA-256(challenge)), so a page cannot choose what it proves, and no signature request
    /// can make one (see [`Signing::check`]).
    pub async fn authenticate(
        &self,
        who: &Requester,
        certificate: &str,
        challenge: &[u8],
        credentials: Credentials,
    ) -> Result<Proof, Error> {
        self.authenticate_via(None, who, certificate, challenge, credentials)
            .await
    }

    /// [`Signing::authenticate`] for a request that came in by `protocol`.
    pub async fn authenticate_via(
        &self,
        protocol: Option<&str>,
        who: &Requester,
        certificate: &str,
        challenge: &[u8],
        credentials: Credentials,
    ) -> Result<Proof, Error> {
        well_formed(certificate)?;
        let record = AuditRecord {
            time: String::new(),
            origin: who.name().to_string(),
            operation: "authenticate".into(),
            certificate_id: certificate.to_string(),
            format: AUTH_FORMAT.into(),
            bytes: challenge.len(),
            result: String::new(),
            protocol: protocol.map(str::to_string),
        };
        let result = async {
            if !(32..=128).contains(&challenge.len()) {
                return Err(Error::BadRequest(format!(
                    "the challenge is {} bytes; 32–128 needed",
                    challenge.len()
                )));
            }
            let (cert, kind) = self.signer(certificate)?;
            let origin = who.name().to_string();
            let message = auth_message(&origin, challenge);
            let hash: HashAlg = default_hash(kind);
            let job = SignJob {
                certificate: certificate.to_string(),
                hash,
                input: SignInput::Data(message),
                format: Format::Raw,
            };
            let operation = format!("authenticate {origin}");
            let signature = self
                .authorised(who, &cert, credentials, &operation, |auth| {
                    self.run(&cert, kind, auth, &job)
                })
                .await?;
            Ok(Proof {
                signature,
                algorithm: algorithm_name(kind, hash),
                certificate: cert,
                origin,
            })
        }
        .await;
        self.audited(record, &result);
        result
    }

    /// The certificate that signs and its key type, checked before any PIN is asked for.
    fn signer(&self, id: &str) -> Result<(CertEntry, KeyKind), Error> {
        let cert = self
            .live
            .snapshot()
            .find_certificate(id)
            .cloned()
            .ok_or_else(|| Error::CertNotFound(id.to_string()))?;
        let kind = signing_key(&cert)?;
        Ok((cert, kind))
    }

    /// Run `attempt` authorised: with the request's PIN where the page-PIN rule allows it,
    /// a remembered grant (asking again once if its login has gone), or the PIN prompt.
    async fn authorised<F, Fut>(
        &self,
        who: &Requester,
        cert: &CertEntry,
        credentials: Credentials,
        operation: &str,
        attempt: F,
    ) -> Result<Vec<u8>, Error>
    where
        F: Fn(Auth) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<u8>, Error>>,
    {
        if let Some(pin) = credentials.pin {
            if !self.approvals.page_pin_allowed(who) {
                return Err(Error::PagePinNotAllowed);
            }
            // Always checked by the token, even when a login is kept (the backend logs out
            // first).
            return attempt(Auth::Pin {
                pin,
                force: credentials.force,
                remember: false,
            })
            .await;
        }
        if self.approvals.granted(who, &cert.id) {
            match attempt(Auth::Session).await {
                // The kept login is gone (a wrong PIN ended it, or the key was re-inserted):
                // forget the grant and ask again.
                Err(e) if e.code() == crate::error::Code::PinRequired => {
                    self.approvals.forget_grant(who, &cert.id);
                }
                other => return other,
            }
        }
        let (pin, remember) = self.ask_pin(who, cert, operation).await?;
        let result = attempt(Auth::Pin {
            pin,
            force: credentials.force,
            remember,
        })
        .await;
        if remember && result.is_ok() {
            self.approvals.grant(who, &cert.id);
        }
        result
    }

    /// Ask the person for the PIN in certray's own dialog: one dialog at a time per
    /// requester.
    async fn ask_pin(
        &self,
        who: &Requester,
        cert: &CertEntry,
        operation: &str,
    ) -> Result<(Pin, bool), Error> {
        if !self.prompt.available() {
            return Err(Error::PinRequired(
                "no PIN in the request and no dialog to ask for one",
            ));
        }
        let Some(_open) = self.approvals.begin_prompt(who) else {
            return Err(Error::Cancelled(
                "a PIN dialog for this website is already open",
            ));
        };
        let request = PinRequest {
            origin: who.origin().map(str::to_string),
            certificate_id: cert.id.clone(),
            owner: cert.owner(),
            operation: operation.to_string(),
        };
        match self.prompt.pin(request).await {
            PinAnswer::Pin { pin, remember } => Ok((pin, remember)),
            PinAnswer::Cancelled => Err(Error::Cancelled("the PIN dialog was cancelled")),
            PinAnswer::Unavailable => Err(Error::PinRequired("no one answered the PIN dialog")),
        }
    }

    /// One signature on the backend (its reply awaited, no thread blocked), verified with
    /// the certificate's key, wrapped in CMS when asked; the token's PIN flags are read
    /// again when a PIN was used.
    async fn run(
        &self,
        cert: &CertEntry,
        kind: KeyKind,
        auth: Auth,
        job: &SignJob,
    ) -> Result<Vec<u8>, Error> {
        let pin_used = matches!(auth, Auth::Pin { .. });
        let result = match (job.format, &job.input) {
            (Format::Raw, input) => {
                self.verified_sign(cert, kind, job.hash, input.clone(), auth)
                    .await
            }
            (Format::Cms { detached }, SignInput::Data(content)) => {
                let prepared = cms::Prepared::new(&cms::CmsRequest {
                    certificate_der: &cert.der,
                    content,
                    detached,
                    hash: job.hash,
                    key: kind,
                    signing_time: OffsetDateTime::now_utc(),
                })
                .map_err(|e| Error::Cms(e.to_string()))?;
                let signature = self
                    .verified_sign(cert, kind, job.hash, prepared.sign_input(), auth)
                    .await?;
                prepared
                    .finish(signature)
                    .map_err(|e| Error::Cms(e.to_string()))
            }
            (Format::Cms { .. }, SignInput::Digest(_)) => Err(Error::BadRequest(
                "CMS formats sign the data, not a digest".into(),
            )),
        };
        if result.is_ok() && cert.has_private_key == KeyPresence::UnknownUntilLogin {
            // The token showed the key once logged in: it is there.
            self.live.key_confirmed(cert);
        }
        if pin_used {
            // Its PIN flags may have moved (subscribers hear of it), unless the PIN was
            // right and the flags showed nothing a correct PIN clears: then the next
            // request need not wait behind a read that cannot find a change.
            let settled = result.is_ok()
                && self
                    .live
                    .token(&cert.token_id)
                    .is_ok_and(|t| t.pin.unchanged_by_success());
            if !settled {
                self.live.check_pin(&cert.token_id);
            }
        }
        result
    }

    /// The backend's signature over `input`, returned only once it verifies with the
    /// certificate's key ([`KeyCache::verify_signature`]).
    async fn verified_sign(
        &self,
        cert: &CertEntry,
        kind: KeyKind,
        hash: HashAlg,
        input: SignInput,
        auth: Auth,
    ) -> Result<Vec<u8>, Error> {
        let signature = self.live.sign(cert, hash, input.clone(), auth).await?;
        self.keys
            .verify_signature(cert, kind, hash, &input, &signature.bytes)?;
        Ok(signature.bytes)
    }

    fn audited<T>(&self, mut record: AuditRecord, result: &Result<T, Error>) {
        record.result = match result {
            Ok(_) => "ok".into(),
            Err(e) => e.code().as_str().into(),
        };
        self.audit.record(record);
    }
}
