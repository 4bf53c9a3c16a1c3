//! Wire types: the JSON shape of tokens, certificates and errors, shared by the bridge
//! and the CLI's `--json`. Field names are part of the public interface; every field is
//! always present (`null` when unknown) so clients can rely on the shape.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use crate::cert::{Certificate, Name};
use crate::error::Code;
use crate::i18n::Lang;
use crate::inventory::{CertEntry, Event, Hint, Inventory};
use crate::token::registry::format_atr;
use crate::token::{PinState, TokenInfo};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PinDto {
    pub min_len: usize,
    pub max_len: usize,
    pub initialized: bool,
    pub count_low: bool,
    pub final_try: bool,
    pub locked: bool,
    pub to_be_changed: bool,
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
    pub module: String,
    pub slot: u64,
    pub pin: PinDto,
    /// The token holds a seal image (签章图片). The bytes are not part of this shape: they
    /// can be large and most clients never show them.
    pub has_seal: bool,
}

impl From<&TokenInfo> for TokenDto {
    fn from(t: &TokenInfo) -> Self {
        TokenDto {
            id: t.id.clone(),
            label: t.label.clone(),
            manufacturer: t.manufacturer.clone(),
            model: t.model.clone(),
            serial: t.serial.clone(),
            module: t.module.display().to_string(),
            slot: t.slot,
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

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IdsDto {
    pub uscc: Option<String>,
    pub uscc_valid: Option<bool>,
    pub taxpayer_id: Option<String>,
    pub org_code: Option<String>,
    pub business_reg_no: Option<String>,
    pub personal_id: Option<String>,
    pub bjca_unique_id: Option<String>,
}

/// A certificate as every interface shows it. For an object that does not parse, only
/// `id`, `token_id`, `label`, `sha256`, `status` (`invalid`), `has_private_key` and
/// `error` are set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CertificateDto {
    pub id: String,
    pub token_id: String,
    pub label: String,
    pub owner: Option<String>,
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
    pub has_private_key: bool,
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
                id: e.id.clone(),
                token_id: e.token_id.clone(),
                label: e.label.clone(),
                owner: None,
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
                has_private_key: e.has_private_key,
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
        CertificateDto {
            id: e.id.clone(),
            token_id: e.token_id.clone(),
            label: e.label.clone(),
            owner: Some(c.owner()),
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
            },
            has_private_key: e.has_private_key,
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
    pub fn from_inventory(inv: &Inventory, now: OffsetDateTime) -> ListDto {
        ListDto {
            tokens: inv.tokens().iter().map(TokenDto::from).collect(),
            certificates: inv
                .certificates()
                .iter()
                .map(|c| CertificateDto::new(c, now, inv.warning_days()))
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
                token_id: token_id.clone(),
            },
            Event::CertificatesChanged {
                token_id,
                certificates,
            } => EventDto::CertificatesChanged {
                token_id: token_id.clone(),
                certificates: certs(certificates),
            },
            Event::PinStateChanged { token_id, pin } => EventDto::PinStateChanged {
                token_id: token_id.clone(),
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

/// `POST /v1/sign`: exactly one of `data` and `digest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequestDto {
    pub certificate_id: String,
    /// base64 of the data to sign.
    #[serde(default)]
    pub data: Option<String>,
    /// base64 of a precomputed digest (`raw` format only).
    #[serde(default)]
    pub digest: Option<String>,
    /// sha256 (default), sha1, sha384, sha512.
    #[serde(default)]
    pub hash: Option<String>,
    /// raw (default), cms, cms-detached.
    #[serde(default)]
    pub format: Option<String>,
    /// Only from local programs and `[bridge] page_pin_origins`.
    #[serde(default)]
    pub pin: Option<String>,
}

/// `POST /v1/authenticate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthenticateRequestDto {
    pub certificate_id: String,
    /// base64 of 32–128 random bytes chosen by the server that checks the proof.
    pub challenge: String,
    #[serde(default)]
    pub pin: Option<String>,
}

/// The proof of `POST /v1/authenticate`: a signature over SHA-256(origin) ‖ SHA-256(challenge).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuthenticationDto {
    /// base64 DER of the certificate.
    pub certificate: String,
    /// base64 signature (PKCS#1 v1.5 or DER ECDSA, SHA-256).
    pub signature: String,
    pub algorithm: String,
    /// The origin that was proven: the request's Origin header, or `local`.
    pub origin: String,
    /// `certray-auth:1`.
    pub format: String,
}
