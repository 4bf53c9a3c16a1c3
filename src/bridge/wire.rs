//! Wire types: the JSON shape of tokens, certificates and errors, shared by the bridge
//! and the CLI's `--json`. Field names are part of the public interface; every field is
//! always present (`null` when unknown) so clients can rely on the shape.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use crate::error::Code;
use crate::i18n::Lang;
use crate::model::event::format_atr;
use crate::model::{
    CertEntry, CertRef, Certificate, ChainEnd, Event, Hint, IssuerCheck, IssuerSource,
    IssuerVerdict, Name, Pin, PinState, Snapshot, Token,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PinDto {
    pub min_len: usize,
    pub max_len: usize,
    pub initialized: bool,
    pub count_low: bool,
    pub final_try: bool,
    pub locked: bool,
    pub to_be_changed: bool,
    /// Still the factory PIN (SKF keys say so): offer to change it.
    pub default_pin: bool,
    /// Tries left before the PIN locks; `null` when the token does not say (PKCS#11).
    pub tries_left: Option<u32>,
}

impl From<PinState> for PinDto {
    fn from(p: PinState) -> Self {
        PinDto {
            min_len: p.min_len,
            max_len: p.max_len,
            initialized: p.initialized,
            count_low: p.count_low,
            final_try: p.final_try,
            locked: p.locked,
            to_be_changed: p.to_be_changed,
            default_pin: p.default_pin,
            tries_left: p.tries_left,
        }
    }
}

impl From<&PinDto> for PinState {
    fn from(p: &PinDto) -> Self {
        PinState {
            min_len: p.min_len,
            max_len: p.max_len,
            initialized: p.initialized,
            count_low: p.count_low,
            final_try: p.final_try,
            locked: p.locked,
            to_be_changed: p.to_be_changed,
            default_pin: p.default_pin,
            tries_left: p.tries_left,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenDto {
    pub id: String,
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    /// The library (PKCS#11 module) that serves it.
    pub module: String,
    pub pin: PinDto,
    /// The token holds a seal image (签章图片). The bytes are not part of this shape: they
    /// can be large and most clients never show them.
    pub has_seal: bool,
}

impl From<&Token> for TokenDto {
    fn from(t: &Token) -> Self {
        TokenDto {
            id: t.id.to_string(),
            label: t.label.clone(),
            manufacturer: t.manufacturer.clone(),
            model: t.model.clone(),
            serial: t.serial.clone(),
            module: t.location.library.display().to_string(),
            pin: t.pin.into(),
            has_seal: t.seal.is_some(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NameDto {
    pub cn: Option<String>,
    pub o: Option<String>,
    pub ou: Option<String>,
    pub c: Option<String>,
    pub st: Option<String>,
    pub l: Option<String>,
    pub serial_number: Option<String>,
    pub organization_identifier: Option<String>,
    pub dn: String,
}

impl From<&Name> for NameDto {
    fn from(n: &Name) -> Self {
        NameDto {
            cn: n.cn.clone(),
            o: n.o.clone(),
            ou: n.ou.clone(),
            c: n.c.clone(),
            st: n.st.clone(),
            l: n.l.clone(),
            serial_number: n.serial_number.clone(),
            organization_identifier: n.organization_identifier.clone(),
            dn: n.dn.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyDto {
    pub algorithm: String,
    pub bits: Option<u32>,
    pub curve: Option<String>,
}

/// The Chinese identifiers a certificate carries. Each named value passed its check (GB
/// 32100 for a USCC, GB 11643 for an ID number, GB 11714 for an organisation code); a value
/// that failed it is in `unverified`, never in the named fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IdsDto {
    /// 统一社会信用代码, only with a right check character.
    pub uscc: Option<String>,
    /// `true` when `uscc` is set; `false` when the certificate claims a USCC but none of
    /// the values has a right check character (`uscc` is then `null` and the values are in
    /// `unverified`); `null` when it claims none.
    pub uscc_valid: Option<bool>,
    pub taxpayer_id: Option<String>,
    pub org_code: Option<String>,
    pub business_reg_no: Option<String>,
    pub personal_id: Option<String>,
    pub bjca_unique_id: Option<String>,
    /// The CA's own number for the holder, from a CFCA (`051@name@N5101…@1`) or MCSCA
    /// (`1765…@name@01@012`) common name.
    pub ca_user_id: Option<String>,
    /// Values that claim to be an identifier but fail its check (未验证的标识), in the order
    /// found.
    pub unverified: Vec<UnverifiedIdDto>,
}

/// A value that failed the check of the identifier it was read as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UnverifiedIdDto {
    pub value: String,
    /// What it was read as: `uscc`, `personal_id`, `org_code`, `taxpayer_id`,
    /// `business_reg_no`.
    pub kind: String,
    /// Where it was read: `extension <OID>`, `extension <OID> after SF`, `subject
    /// serialNumber`, …
    pub source: String,
}

/// Whether a certificate's signature verifies with its issuer's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IssuerStatusDto {
    /// The issuer's key made the signature (颁发者已验证).
    Verified,
    /// The issuer was found but its key did not make the signature: the certificate was
    /// altered or forged (签名无效).
    SignatureInvalid,
    /// No issuer certificate on the tokens, in `[trust] ca_paths` or in the system's CA
    /// store (无法验证颁发者).
    IssuerNotFound,
    /// The issuer was found, but its key or the signature algorithm is one certray does not
    /// verify.
    Unsupported,
}

impl From<IssuerVerdict> for IssuerStatusDto {
    fn from(v: IssuerVerdict) -> Self {
        match v {
            IssuerVerdict::Verified => IssuerStatusDto::Verified,
            IssuerVerdict::SignatureInvalid => IssuerStatusDto::SignatureInvalid,
            IssuerVerdict::IssuerNotFound => IssuerStatusDto::IssuerNotFound,
            IssuerVerdict::Unsupported => IssuerStatusDto::Unsupported,
        }
    }
}

/// Where an issuer's certificate was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IssuerSourceDto {
    /// The certificate itself: it is self-signed.
    #[serde(rename = "self")]
    Itself,
    /// On a token (its id is then listed by `/v1/certificates`).
    Token,
    /// The system's CA store.
    System,
    /// The CA files of the configuration's `[trust] ca_paths`.
    CaPaths,
    /// Another certificate file given to `certray inspect`.
    Files,
}

impl From<IssuerSource> for IssuerSourceDto {
    fn from(s: IssuerSource) -> Self {
        match s {
            IssuerSource::Itself => IssuerSourceDto::Itself,
            IssuerSource::Token => IssuerSourceDto::Token,
            IssuerSource::System => IssuerSourceDto::System,
            IssuerSource::CaPaths => IssuerSourceDto::CaPaths,
            IssuerSource::Files => IssuerSourceDto::Files,
        }
    }
}

/// `issuer_verified`: the certificate's signature checked with its issuer's key. It says
/// only that the issuer made the certificate, nothing of dates or revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IssuerVerifiedDto {
    pub status: IssuerStatusDto,
    /// The issuer's certificate id (`c-` + 16 hex chars of its SHA-256) when an issuer was
    /// found (whatever the status), else `null`.
    pub issuer_id: Option<String>,
    /// The issuer's subject DN (RFC 4514) when one was found, else `null`.
    pub issuer_subject: Option<String>,
    /// Where the issuer was found, else `null`.
    pub issuer_source: Option<IssuerSourceDto>,
}

/// Why a chain ends where it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChainEndDto {
    /// A self-signed root that verifies: every link verified.
    Root,
    IssuerNotFound,
    SignatureInvalid,
    Unsupported,
    /// The last certificate's issuer is already in the chain.
    Loop,
    /// Longer than certray follows (8 certificates).
    TooLong,
}

impl From<ChainEnd> for ChainEndDto {
    fn from(e: ChainEnd) -> Self {
        match e {
            ChainEnd::Root => ChainEndDto::Root,
            ChainEnd::IssuerNotFound => ChainEndDto::IssuerNotFound,
            ChainEnd::SignatureInvalid => ChainEndDto::SignatureInvalid,
            ChainEnd::Unsupported => ChainEndDto::Unsupported,
            ChainEnd::Loop => ChainEndDto::Loop,
            ChainEnd::TooLong => ChainEndDto::TooLong,
        }
    }
}

/// One certificate of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChainCertDto {
    pub id: String,
    pub subject: String,
    /// Where it was found (`token` for the certificate itself).
    pub source: IssuerSourceDto,
    /// Its own signature checked with the next certificate's key (its own, for a root).
    pub status: IssuerStatusDto,
}

/// The certificate and the issuers above it, as far as each verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChainDto {
    pub end: ChainEndDto,
    /// The certificate first, its root (when found) last.
    pub certificates: Vec<ChainCertDto>,
}

impl IssuerVerifiedDto {
    fn new(c: &IssuerCheck) -> IssuerVerifiedDto {
        IssuerVerifiedDto {
            status: c.verdict.into(),
            issuer_id: c.issuer.as_ref().map(|i| i.id.to_string()),
            issuer_subject: c.issuer.as_ref().map(|i| i.subject.clone()),
            issuer_source: c.issuer.as_ref().map(|i| i.source.into()),
        }
    }
}

impl ChainDto {
    fn new(c: &IssuerCheck) -> ChainDto {
        let link = |r: &CertRef, v: IssuerVerdict| ChainCertDto {
            id: r.id.to_string(),
            subject: r.subject.clone(),
            source: r.source.into(),
            status: v.into(),
        };
        ChainDto {
            end: c.chain_end.into(),
            certificates: c.chain.iter().map(|l| link(&l.cert, l.verdict)).collect(),
        }
    }
}

/// A certificate as every interface shows it. For an object that does not parse, only
/// `id`, `token_id`, `label`, `sha256`, `status` (`invalid`), `has_private_key` and
/// `error` are set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CertificateDto {
    pub id: String,
    pub token_id: String,
    pub label: String,
    /// The holder (证书持有者) as the CA's own helper names it: the CN, with CFCA/MCSCA
    /// `@` wrappers taken apart.
    pub owner: Option<String>,
    /// The holder's organisation: subject O unless it is the issuing CA's or RA's own name.
    pub organization: Option<String>,
    /// `person` or `organization`, when the certificate says; else `null`.
    pub holder_kind: Option<String>,
    pub subject: Option<NameDto>,
    pub issuer: Option<NameDto>,
    pub serial: Option<String>,
    pub sha256: String,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    pub days_left: Option<i64>,
    pub status: String,
    pub key: Option<KeyDto>,
    pub signature_algorithm: Option<String>,
    pub key_usage: Vec<String>,
    pub extended_key_usage: Vec<String>,
    pub ids: IdsDto,
    /// `null` when the token shows its private keys only after login (登录后确认): the
    /// certificate is offered for signing and the key is looked up after the PIN.
    pub has_private_key: Option<bool>,
    /// The signature checked with the issuer's key; `null` when not checked (an object
    /// that does not parse).
    pub issuer_verified: Option<IssuerVerifiedDto>,
    /// The chain above the certificate; `null` when not checked.
    pub chain: Option<ChainDto>,
    pub error: Option<String>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

impl CertificateDto {
    /// The certificate as seen at `now` with a warning window of `warning_days`.
    pub fn new(e: &CertEntry, now: OffsetDateTime, warning_days: u32) -> CertificateDto {
        match &e.parsed {
            Ok(c) => CertificateDto::parsed(e, c, now, warning_days),
            Err(err) => CertificateDto {
                id: e.id.to_string(),
                token_id: e.token_id.to_string(),
                label: e.label.clone(),
                owner: None,
                organization: None,
                holder_kind: None,
                subject: None,
                issuer: None,
                serial: None,
                sha256: e.sha256.clone(),
                not_before: None,
                not_after: None,
                days_left: None,
                status: "invalid".into(),
                key: None,
                signature_algorithm: None,
                key_usage: Vec::new(),
                extended_key_usage: Vec::new(),
                ids: IdsDto::default(),
                has_private_key: e.has_private_key.known(),
                issuer_verified: None,
                chain: None,
                error: Some(err.to_string()),
            },
        }
    }

    fn parsed(
        e: &CertEntry,
        c: &Certificate,
        now: OffsetDateTime,
        warning_days: u32,
    ) -> CertificateDto {
        let holder = c.holder();
        CertificateDto {
            id: e.id.to_string(),
            token_id: e.token_id.to_string(),
            label: e.label.clone(),
            owner: Some(holder.name),
            organization: holder.organization,
            holder_kind: holder.kind.map(|k| k.as_str().to_string()),
            subject: Some((&c.subject).into()),
            issuer: Some((&c.issuer).into()),
            serial: Some(c.serial.clone()),
            sha256: c.sha256.clone(),
            not_before: Some(rfc3339(c.validity.not_before)),
            not_after: Some(rfc3339(c.validity.not_after)),
            days_left: Some(c.days_left(now)),
            status: c.status(now, warning_days).as_str().into(),
            key: Some(KeyDto {
                algorithm: c.key.algorithm.as_str().into(),
                bits: c.key.bits,
                curve: c.key.curve.clone(),
            }),
            signature_algorithm: Some(c.signature_algorithm.clone()),
            key_usage: c.key_usage.clone(),
            extended_key_usage: c.extended_key_usage.clone(),
            ids: IdsDto {
                uscc: c.ids.uscc.clone(),
                uscc_valid: c.ids.uscc_valid,
                taxpayer_id: c.ids.taxpayer_id.clone(),
                org_code: c.ids.org_code.clone(),
                business_reg_no: c.ids.business_reg_no.clone(),
                personal_id: c.ids.personal_id.clone(),
                bjca_unique_id: c.ids.bjca_unique_id.clone(),
                ca_user_id: c.ids.ca_user_id.clone(),
                unverified: c
                    .ids
                    .unverified
                    .iter()
                    .map(|u| UnverifiedIdDto {
                        value: u.value.clone(),
                        kind: u.kind.as_str().to_string(),
                        source: u.source.clone(),
                    })
                    .collect(),
            },
            has_private_key: e.has_private_key.known(),
            issuer_verified: e.issuer.as_ref().map(IssuerVerifiedDto::new),
            chain: e.issuer.as_ref().map(ChainDto::new),
            error: None,
        }
    }
}

/// `certray list --json` and `GET /v1/tokens` + `/v1/certificates` together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ListDto {
    pub tokens: Vec<TokenDto>,
    pub certificates: Vec<CertificateDto>,
}

impl ListDto {
    pub fn new(snapshot: &Snapshot, now: OffsetDateTime, warning_days: u32) -> ListDto {
        ListDto {
            tokens: snapshot.tokens.iter().map(TokenDto::from).collect(),
            certificates: snapshot
                .certificates
                .iter()
                .map(|c| CertificateDto::new(c, now, warning_days))
                .collect(),
        }
    }
}

/// `{"error":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDto {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    pub hint: String,
    /// The token's PIN flags, for PIN errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinDto>,
    /// PIN attempts left, when the token says (PKCS#11 tokens only give the flags in `pin`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries_left: Option<u32>,
    /// What exactly failed (a path, a PKCS#11 return value); never contains a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ErrorDto {
    pub fn new(code: Code, lang: Lang, pin: Option<PinState>, detail: Option<String>) -> ErrorDto {
        ErrorDto {
            error: ErrorBody {
                code: code.as_str().into(),
                message: code.message(lang).into(),
                hint: code.hint(lang).into(),
                pin: pin.map(Into::into),
                retries_left: None,
                detail,
            },
        }
    }
}

/// `certray sign --json` and the bridge's raw signature answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SignatureDto {
    /// base64
    pub signature: String,
    /// base64 DER of the signer certificate
    pub certificate: String,
    pub algorithm: String,
}

/// One inventory event: `certray watch --json` prints one per line; the bridge's SSE sends
/// the same objects with `event` as the SSE event name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum EventDto {
    ReaderAdded {
        reader: String,
    },
    ReaderRemoved {
        reader: String,
    },
    CardInserted {
        reader: String,
        /// Upper-case hex with spaces, as PC/SC tools print it.
        atr: String,
        /// The card's name when the registry knows it.
        card: Option<String>,
        /// What to do when no loaded module may serve it.
        hint: Option<String>,
    },
    CardRemoved {
        reader: String,
    },
    TokenAdded {
        token: TokenDto,
        certificates: Vec<CertificateDto>,
    },
    TokenRemoved {
        token_id: String,
    },
    CertificatesChanged {
        token_id: String,
        certificates: Vec<CertificateDto>,
    },
    PinStateChanged {
        token_id: String,
        pin: PinDto,
    },
    /// The subscriber fell behind; what follows starts again from the current state.
    Resync {
        missed: u64,
    },
}

impl EventDto {
    pub fn new(e: &Event, now: OffsetDateTime, warning_days: u32, lang: Lang) -> EventDto {
        let certs = |c: &[CertEntry]| -> Vec<CertificateDto> {
            c.iter()
                .map(|c| CertificateDto::new(c, now, warning_days))
                .collect()
        };
        match e {
            Event::ReaderAdded { reader } => EventDto::ReaderAdded {
                reader: reader.clone(),
            },
            Event::ReaderRemoved { reader } => EventDto::ReaderRemoved {
                reader: reader.clone(),
            },
            Event::CardInserted {
                reader,
                atr,
                card,
                hint,
            } => EventDto::CardInserted {
                reader: reader.clone(),
                atr: format_atr(atr),
                card: card.clone(),
                hint: hint.map(|h| hint_text(h, lang).to_string()),
            },
            Event::CardRemoved { reader } => EventDto::CardRemoved {
                reader: reader.clone(),
            },
            Event::TokenAdded {
                token,
                certificates,
            } => EventDto::TokenAdded {
                token: token.into(),
                certificates: certs(certificates),
            },
            Event::TokenRemoved { token_id } => EventDto::TokenRemoved {
                token_id: token_id.to_string(),
            },
            Event::CertificatesChanged {
                token_id,
                certificates,
            } => EventDto::CertificatesChanged {
                token_id: token_id.to_string(),
                certificates: certs(certificates),
            },
            Event::PinStateChanged { token_id, pin } => EventDto::PinStateChanged {
                token_id: token_id.to_string(),
                pin: (*pin).into(),
            },
        }
    }
}

/// The advice for an inserted card that may not show up as a token.
pub fn hint_text(h: Hint, lang: Lang) -> &'static str {
    match h {
        Hint::UnknownCard => lang.pick(
            "未识别的卡片：如果没有出现对应的密钥，请在配置文件的 [[cards]] 中按 ATR 为它指定 PKCS#11 驱动模块",
            "Unknown card: if no token shows up for it, map its ATR to a PKCS#11 module in the config's [[cards]]",
        ),
        Hint::ModuleMissing => lang.pick(
            "已识别的卡片，但未安装或未加载它的驱动模块：请安装厂商驱动，或在配置文件中指定模块路径",
            "Known card, but its module is not installed or not loaded: install the vendor's driver or set the module path in the config",
        ),
    }
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusDto {
    pub name: String,
    pub version: String,
    pub tokens: usize,
    pub certificates: usize,
    /// Whether a desktop UI can ask the user (consent, PIN).
    pub ui: bool,
}

/// `GET /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokensDto {
    pub tokens: Vec<TokenDto>,
}

/// `GET /v1/certificates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CertificatesDto {
    pub certificates: Vec<CertificateDto>,
}

/// `GET /v1/certificates/{id}`: the certificate object plus its PEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CertificateWithPemDto {
    #[serde(flatten)]
    pub certificate: CertificateDto,
    pub pem: String,
}

/// `POST /v1/sign`: exactly one of `data` and `digest`. Read only (never written back), so
/// its PIN is a secret from the moment it is parsed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequestDto {
    pub certificate_id: String,
    /// base64 of the data to sign.
    #[serde(default)]
    pub data: Option<String>,
    /// base64 of a precomputed digest (`raw` format only).
    #[serde(default)]
    pub digest: Option<String>,
    /// sha256 (default), sha1, sha384, sha512, sm3 (SM2 keys sign sm3 only and need it).
    #[serde(default)]
    pub hash: Option<String>,
    /// raw (default), cms, cms-detached.
    #[serde(default)]
    pub format: Option<String>,
    /// Only from local programs and `[bridge] page_pin_origins`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub pin: Option<Pin>,
}

/// `POST /v1/authenticate`. Read only, like [`SignRequestDto`].
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthenticateRequestDto {
    pub certificate_id: String,
    /// base64 of 32–128 random bytes chosen by the server that checks the proof.
    pub challenge: String,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub pin: Option<Pin>,
}

/// The proof of `POST /v1/authenticate`: a signature over `"certray-auth:2\n"` ‖
/// SHA-256(origin) ‖ SHA-256(challenge) (README, "The authentication proof").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuthenticationDto {
    /// base64 DER of the certificate.
    pub certificate: String,
    /// base64 signature (PKCS#1 v1.5 or DER ECDSA with SHA-256, DER SM2 with SM3).
    pub signature: String,
    pub algorithm: String,
    /// The origin that was proven: the request's Origin header, or `local`.
    pub origin: String,
    /// `certray-auth:2`.
    pub format: String,
}
