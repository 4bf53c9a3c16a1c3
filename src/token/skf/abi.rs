//! The GM/T 0016-2012 (SKF) C ABI as certray's loader sees it.
//!
//! Written from the specification and the facts in `../shared/docs/SKF.md` §3, and checked
//! by gcc against a header transcribed from the spec (tests/skf_abi.rs):
//! - every struct is `#[repr(C, packed)]` (`#pragma pack(1)`): `DEVINFO` is 294 bytes with
//!   `AlgSymCap` at 198, not the 296 an unpacked struct would have;
//! - `ULONG` and `BOOL` are 32 bits everywhere (never `c_ulong`/`c_long`, 64 bits on LP64);
//! - functions are `extern "system"`: stdcall on 32-bit Windows, C elsewhere; names are
//!   undecorated;
//! - names in lists are bytes, not necessarily UTF-8 (GBK exists): [`Name`] keeps the bytes
//!   to pass back and shows them lossily.
//!
//! These types are certray's own. The test library `softskf` has its own transcription on
//! purpose: two independent readings of the spec, one referee (gcc).

#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::{CString, c_char, c_void};
use std::fmt;
use std::path::{Path, PathBuf};

use libloading::Library;

use crate::text::vendor_text;

pub type Ulong = u32;
pub type Bool = i32;
pub type Handle = *mut c_void;

pub const TRUE: Bool = 1;
pub const FALSE: Bool = 0;

/// `ulPINType` of the PIN calls.
pub const ADMIN_TYPE: Ulong = 0;
pub const USER_TYPE: Ulong = 1;

/// `SKF_GetDevState`.
pub const DEV_ABSENT_STATE: Ulong = 0;
pub const DEV_PRESENT_STATE: Ulong = 1;
pub const DEV_UNKNOW_STATE: Ulong = 2;

/// `SKF_WaitForDevEvent`.
pub const DEV_EVENT_INSERT: Ulong = 1;
pub const DEV_EVENT_REMOVE: Ulong = 2;

/// `SKF_GetContainerType`.
pub const CONTAINER_TYPE_EMPTY: Ulong = 0;
pub const CONTAINER_TYPE_RSA: Ulong = 1;
pub const CONTAINER_TYPE_ECC: Ulong = 2;

/// The default SM2 user ID (GM/T 0009), 16 bytes.
pub const DEFAULT_SM2_ID: &[u8; 16] = b"1234567812345678";

// ---------------------------------------------------------------------------------------------
// Algorithm identifiers
// ---------------------------------------------------------------------------------------------

/// Algorithm ids as SKF libraries number them.
///
/// SM2 is where the headers conflict (SKF.md §3.7): SKF vendor headers (Longmai, Tongsuo,
/// 7 of 10 public headers) have `SGD_SM2_1 = 0x00020100` (sign), `_2 = 0x00020200`
/// (exchange), `_3 = 0x00020400` (encrypt); GM/T 0006 / SDF headers (GmSSL `sgd.h`) shift
/// them by one (`SGD_SM2 = 0x00020100`, `SGD_SM2_1 = 0x00020200`, …), and a library taking the
/// SKF values rejects 0x00020200. Use these SKF values with SKF libraries. The symmetric
/// and hash ids agree between the two.
pub mod alg {
    use super::Ulong;

    pub const SGD_SM1_ECB: Ulong = 0x0000_0101;
    pub const SGD_SM1_CBC: Ulong = 0x0000_0102;
    pub const SGD_SSF33_ECB: Ulong = 0x0000_0201;
    pub const SGD_SSF33_CBC: Ulong = 0x0000_0202;
    pub const SGD_SM4_ECB: Ulong = 0x0000_0401;
    pub const SGD_SM4_CBC: Ulong = 0x0000_0402;
    pub const SGD_SM4_CFB: Ulong = 0x0000_0404;
    pub const SGD_SM4_OFB: Ulong = 0x0000_0408;
    pub const SGD_SM4_MAC: Ulong = 0x0000_0410;
    pub const SGD_RSA: Ulong = 0x0001_0000;
    /// The SKF `SGD_SM2` umbrella value (Tongsuo).
    pub const SGD_SM2: Ulong = 0x0002_0000;
    /// SM2 signature (SKF numbering; GM/T 0006 calls 0x00020100 `SGD_SM2`).
    pub const SGD_SM2_1: Ulong = 0x0002_0100;
    /// SM2 key exchange (SKF numbering).
    pub const SGD_SM2_2: Ulong = 0x0002_0200;
    /// SM2 encryption (SKF numbering).
    pub const SGD_SM2_3: Ulong = 0x0002_0400;
    pub const SGD_SM3: Ulong = 0x0000_0001;
    pub const SGD_SHA1: Ulong = 0x0000_0002;
    pub const SGD_SHA256: Ulong = 0x0000_0004;

    /// The hash-capability bits the spec defines; anything else in `AlgHashCap` is a vendor
    /// bit (Longmai ORs 0x80080000 in).
    pub const HASH_CAPS: Ulong = SGD_SM3 | SGD_SHA1 | SGD_SHA256;
    pub const ASYM_CAPS: Ulong = SGD_RSA | SGD_SM2_1 | SGD_SM2_2 | SGD_SM2_3;
    pub const SYM_CAPS: Ulong = SGD_SM1_ECB
        | SGD_SM1_CBC
        | SGD_SSF33_ECB
        | SGD_SSF33_CBC
        | SGD_SM4_ECB
        | SGD_SM4_CBC
        | SGD_SM4_CFB
        | SGD_SM4_OFB
        | SGD_SM4_MAC;
}

// ---------------------------------------------------------------------------------------------
// Error codes
// ---------------------------------------------------------------------------------------------

pub const SAR_OK: Ulong = 0x0000_0000;
pub const SAR_FAIL: Ulong = 0x0A00_0001;
pub const SAR_NOTSUPPORTYETERR: Ulong = 0x0A00_0003;
pub const SAR_INVALIDHANDLEERR: Ulong = 0x0A00_0005;
pub const SAR_INVALIDPARAMERR: Ulong = 0x0A00_0006;
pub const SAR_INDATALENERR: Ulong = 0x0A00_0010;
pub const SAR_KEYNOTFOUNTERR: Ulong = 0x0A00_001B;
pub const SAR_CERTNOTFOUNTERR: Ulong = 0x0A00_001C;
pub const SAR_BUFFER_TOO_SMALL: Ulong = 0x0A00_0020;
pub const SAR_NOT_EVENTERR: Ulong = 0x0A00_0022;
pub const SAR_DEVICE_REMOVED: Ulong = 0x0A00_0023;
pub const SAR_PIN_INCORRECT: Ulong = 0x0A00_0024;
pub const SAR_PIN_LOCKED: Ulong = 0x0A00_0025;
pub const SAR_PIN_INVALID: Ulong = 0x0A00_0026;
pub const SAR_PIN_LEN_RANGE: Ulong = 0x0A00_0027;
pub const SAR_USER_ALREADY_LOGGED_IN: Ulong = 0x0A00_0028;
pub const SAR_USER_PIN_NOT_INITIALIZED: Ulong = 0x0A00_0029;
pub const SAR_USER_TYPE_INVALID: Ulong = 0x0A00_002A;
pub const SAR_USER_NOT_LOGGED_IN: Ulong = 0x0A00_002D;
pub const SAR_APPLICATION_NOT_EXISTS: Ulong = 0x0A00_002E;
pub const SAR_FILE_NOT_EXIST: Ulong = 0x0A00_0031;

/// Every code of the spec's Annex A (identical in GmSSL, Longmai and Tongsuo headers).
const SAR_NAMES: &[(Ulong, &str)] = &[
    (0x0000_0000, "SAR_OK"),
    (0x0A00_0001, "SAR_FAIL"),
    (0x0A00_0002, "SAR_UNKNOWNERR"),
    (0x0A00_0003, "SAR_NOTSUPPORTYETERR"),
    (0x0A00_0004, "SAR_FILEERR"),
    (0x0A00_0005, "SAR_INVALIDHANDLEERR"),
    (0x0A00_0006, "SAR_INVALIDPARAMERR"),
    (0x0A00_0007, "SAR_READFILEERR"),
    (0x0A00_0008, "SAR_WRITEFILEERR"),
    (0x0A00_0009, "SAR_NAMELENERR"),
    (0x0A00_000A, "SAR_KEYUSAGEERR"),
    (0x0A00_000B, "SAR_MODULUSLENERR"),
    (0x0A00_000C, "SAR_NOTINITIALIZEERR"),
    (0x0A00_000D, "SAR_OBJERR"),
    (0x0A00_000E, "SAR_MEMORYERR"),
    (0x0A00_000F, "SAR_TIMEOUTERR"),
    (0x0A00_0010, "SAR_INDATALENERR"),
    (0x0A00_0011, "SAR_INDATAERR"),
    (0x0A00_0012, "SAR_GENRANDERR"),
    (0x0A00_0013, "SAR_HASHOBJERR"),
    (0x0A00_0014, "SAR_HASHERR"),
    (0x0A00_0015, "SAR_GENRSAKEYERR"),
    (0x0A00_0016, "SAR_RSAMODULUSLENERR"),
    (0x0A00_0017, "SAR_CSPIMPRTPUBKEYERR"),
    (0x0A00_0018, "SAR_RSAENCERR"),
    (0x0A00_0019, "SAR_RSADECERR"),
    (0x0A00_001A, "SAR_HASHNOTEQUALERR"),
    (0x0A00_001B, "SAR_KEYNOTFOUNTERR"),
    (0x0A00_001C, "SAR_CERTNOTFOUNTERR"),
    (0x0A00_001D, "SAR_NOTEXPORTERR"),
    (0x0A00_001E, "SAR_DECRYPTPADERR"),
    (0x0A00_001F, "SAR_MACLENERR"),
    (0x0A00_0020, "SAR_BUFFER_TOO_SMALL"),
    (0x0A00_0021, "SAR_KEYINFOTYPEERR"),
    (0x0A00_0022, "SAR_NOT_EVENTERR"),
    (0x0A00_0023, "SAR_DEVICE_REMOVED"),
    (0x0A00_0024, "SAR_PIN_INCORRECT"),
    (0x0A00_0025, "SAR_PIN_LOCKED"),
    (0x0A00_0026, "SAR_PIN_INVALID"),
    (0x0A00_0027, "SAR_PIN_LEN_RANGE"),
    (0x0A00_0028, "SAR_USER_ALREADY_LOGGED_IN"),
    (0x0A00_0029, "SAR_USER_PIN_NOT_INITIALIZED"),
    (0x0A00_002A, "SAR_USER_TYPE_INVALID"),
    (0x0A00_002B, "SAR_APPLICATION_NAME_INVALID"),
    (0x0A00_002C, "SAR_APPLICATION_EXISTS"),
    (0x0A00_002D, "SAR_USER_NOT_LOGGED_IN"),
    (0x0A00_002E, "SAR_APPLICATION_NOT_EXISTS"),
    (0x0A00_002F, "SAR_FILE_ALREADY_EXIST"),
    (0x0A00_0030, "SAR_NO_ROOM"),
    (0x0A00_0031, "SAR_FILE_NOT_EXIST"),
    (0x0A00_0032, "SAR_REACH_MAX_CONTAINER_COUNT"),
];

/// Codes outside the spec that one vendor documents (Longmai `skfapi.h`).
const VENDOR_SAR_NAMES: &[(Ulong, &str)] = &[
    (0x0B00_0033, "SAR_SECURITY_INVALID (Longmai)"),
    (0x0B00_0035, "SAR_CONTAINER_NOT_FOUND (Longmai)"),
    (0x0B00_0036, "SAR_CONTAINER_EXIST (Longmai)"),
    (0x0B00_0037, "SAR_AUTH_LOCKED (Longmai)"),
    (0x0B00_0039, "waiting for the signing button (Longmai)"),
    (0x0B00_0040, "signing button press cancelled (Longmai)"),
];

/// A return code. Unknown codes stay visible as hex ("vendor error 0x…").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sar(pub Ulong);

impl Sar {
    /// `Ok(())` for `SAR_OK`, else the code.
    pub fn check(rc: Ulong) -> Result<(), Sar> {
        if rc == SAR_OK { Ok(()) } else { Err(Sar(rc)) }
    }

    /// The spec name (`SAR_PIN_INCORRECT`), or `None` outside Annex A.
    pub fn name(self) -> Option<&'static str> {
        SAR_NAMES
            .iter()
            .find(|(c, _)| *c == self.0)
            .map(|(_, n)| *n)
    }

    /// Whether Annex A defines this code.
    pub fn is_spec(self) -> bool {
        self.name().is_some()
    }
}

impl fmt::Display for Sar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.name() {
            return write!(f, "{name} (0x{:08X})", self.0);
        }
        match VENDOR_SAR_NAMES.iter().find(|(c, _)| *c == self.0) {
            Some((_, name)) => write!(f, "vendor error 0x{:08X}, {name}", self.0),
            None => write!(f, "vendor error 0x{:08X}", self.0),
        }
    }
}

impl std::error::Error for Sar {}

// ---------------------------------------------------------------------------------------------
// Structs (all packed)
// ---------------------------------------------------------------------------------------------

/// `VERSION`.
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Version {
    pub major: u8,
    pub minor: u8,
}

/// `DEVINFO`: 294 bytes. Read fields by value (`{ info.alg_sym_cap }`): references into a
/// packed struct are not allowed.
#[repr(C, packed)]
#[derive(Debug, Clone, Copy)]
pub struct DevInfo {
    pub version: Version,
    pub manufacturer: [u8; 64],
    pub issuer: [u8; 64],
    pub label: [u8; 32],
    pub serial_number: [u8; 32],
    pub hw_version: Version,
    pub firmware_version: Version,
    pub alg_sym_cap: Ulong,
    pub alg_asym_cap: Ulong,
    pub alg_hash_cap: Ulong,
    pub dev_auth_alg_id: Ulong,
    pub total_space: Ulong,
    pub free_space: Ulong,
    pub max_ecc_buffer_size: Ulong,
    pub max_buffer_size: Ulong,
    pub reserved: [u8; 64],
}

/// `RSAPUBLICKEYBLOB`: 268 bytes, modulus at 8 (no version field: skf-api 0.5's extra
/// `version` makes it 270 with the modulus at 10).
#[repr(C, packed)]
#[derive(Debug, Clone, Copy)]
pub struct RsaPublicKeyBlob {
    pub alg_id: Ulong,
    pub bit_len: Ulong,
    pub modulus: [u8; 256],
    pub public_exponent: [u8; 4],
}

/// `ECCPUBLICKEYBLOB`: 132 bytes; coordinates big-endian, right-aligned in 64-byte fields.
#[repr(C, packed)]
#[derive(Debug, Clone, Copy)]
pub struct EccPublicKeyBlob {
    pub bit_len: Ulong,
    pub x: [u8; 64],
    pub y: [u8; 64],
}

/// `ECCSIGNATUREBLOB`: 128 bytes; r and s big-endian, right-aligned in 64-byte fields.
#[repr(C, packed)]
#[derive(Debug, Clone, Copy)]
pub struct EccSignatureBlob {
    pub r: [u8; 64],
    pub s: [u8; 64],
}

/// `ECCCIPHERBLOB`: 165 bytes as declared; `cipher` really holds `cipher_len` bytes.
#[repr(C, packed)]
#[derive(Debug, Clone, Copy)]
pub struct EccCipherBlob {
    pub x: [u8; 64],
    pub y: [u8; 64],
    pub hash: [u8; 32],
    pub cipher_len: Ulong,
    pub cipher: [u8; 1],
}

/// `BLOCKCIPHERPARAM`: 44 bytes, passed BY VALUE to `SKF_EncryptInit`/`SKF_DecryptInit`.
#[repr(C, packed)]
#[derive(Debug, Clone, Copy)]
pub struct BlockCipherParam {
    pub iv: [u8; 32],
    pub iv_len: Ulong,
    pub padding_type: Ulong,
    pub feed_bit_len: Ulong,
}

/// `FILEATTRIBUTE`: 44 bytes.
#[repr(C, packed)]
#[derive(Debug, Clone, Copy)]
pub struct FileAttribute {
    pub file_name: [u8; 32],
    pub file_size: Ulong,
    pub read_rights: Ulong,
    pub write_rights: Ulong,
}

/// The structs a library fills: integers and byte arrays only, so any bytes are a valid value.
mod sealed {
    pub trait Plain: Copy {}
    impl Plain for super::DevInfo {}
    impl Plain for super::RsaPublicKeyBlob {}
    impl Plain for super::EccPublicKeyBlob {}
    impl Plain for super::EccSignatureBlob {}
}

/// A struct from the bytes a library wrote (e.g. `SKF_ExportPublicKey`'s buffer); `None`
/// unless there are exactly `size_of::<T>()` of them.
pub fn from_bytes<T: sealed::Plain>(bytes: &[u8]) -> Option<T> {
    if bytes.len() != std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: `T` is one of the packed integer/byte-array structs above (sealed `Plain`):
    // alignment 1, no padding, every bit pattern valid; the length was just checked.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

impl DevInfo {
    /// All zeros: what to pass to `SKF_GetDevInfo`.
    pub fn zeroed() -> DevInfo {
        DevInfo {
            version: Version::default(),
            manufacturer: [0; 64],
            issuer: [0; 64],
            label: [0; 32],
            serial_number: [0; 32],
            hw_version: Version::default(),
            firmware_version: Version::default(),
            alg_sym_cap: 0,
            alg_asym_cap: 0,
            alg_hash_cap: 0,
            dev_auth_alg_id: 0,
            total_space: 0,
            free_space: 0,
            max_ecc_buffer_size: 0,
            max_buffer_size: 0,
            reserved: [0; 64],
        }
    }

    pub fn manufacturer(&self) -> String {
        fixed_text(&{ self.manufacturer })
    }

    pub fn issuer(&self) -> String {
        fixed_text(&{ self.issuer })
    }

    pub fn label(&self) -> String {
        fixed_text(&{ self.label })
    }

    pub fn serial(&self) -> String {
        fixed_text(&{ self.serial_number })
    }

    /// `AlgHashCap` without vendor bits.
    pub fn hash_caps(&self) -> Ulong {
        self.alg_hash_cap & alg::HASH_CAPS
    }

    /// `AlgAsymCap` without vendor bits.
    pub fn asym_caps(&self) -> Ulong {
        self.alg_asym_cap & alg::ASYM_CAPS
    }

    /// `AlgSymCap` without vendor bits.
    pub fn sym_caps(&self) -> Ulong {
        self.alg_sym_cap & alg::SYM_CAPS
    }
}

/// A fixed-size `CHAR[n]` field: up to the first NUL, UTF-8 or GBK
/// ([`crate::text::vendor_text`]), trailing spaces (vendors pad with them) trimmed.
pub fn fixed_text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    vendor_text(&field[..end]).trim_end().to_string()
}

/// Why a blob cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error("ECC key blob with BitLen {0}, expected 256")]
    EccBitLen(Ulong),
    #[error("ECC value does not fit in 32 bytes (non-zero high half of its 64-byte field)")]
    EccHighHalf,
    #[error("not an uncompressed SM2 point (04‖x‖y, 65 bytes)")]
    NotUncompressedPoint,
    #[error("RSA key blob with BitLen {0}")]
    RsaBitLen(Ulong),
    #[error("signature encoding: {0}")]
    Encoding(String),
}

/// The low 32 bytes of a right-aligned 64-byte field; the high 32 must be zero.
fn low_half(field: &[u8; 64]) -> Result<[u8; 32], BlobError> {
    if field[..32].iter().any(|&b| b != 0) {
        return Err(BlobError::EccHighHalf);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&field[32..]);
    Ok(out)
}

impl EccPublicKeyBlob {
    /// From an uncompressed SEC1 point 04‖x‖y (what an SM2 certificate holds), e.g. for
    /// `SKF_DigestInit`.
    pub fn from_sec1(point: &[u8]) -> Result<EccPublicKeyBlob, BlobError> {
        if point.len() != 65 || point[0] != 0x04 {
            return Err(BlobError::NotUncompressedPoint);
        }
        let mut blob = EccPublicKeyBlob {
            bit_len: 256,
            x: [0; 64],
            y: [0; 64],
        };
        blob.x[32..].copy_from_slice(&point[1..33]);
        blob.y[32..].copy_from_slice(&point[33..]);
        Ok(blob)
    }

    /// The uncompressed SEC1 point 04‖x‖y.
    pub fn to_sec1(&self) -> Result<[u8; 65], BlobError> {
        let bits = self.bit_len;
        if bits != 256 {
            return Err(BlobError::EccBitLen(bits));
        }
        let mut out = [0u8; 65];
        out[0] = 0x04;
        out[1..33].copy_from_slice(&low_half(&{ self.x })?);
        out[33..].copy_from_slice(&low_half(&{ self.y })?);
        Ok(out)
    }
}

impl EccSignatureBlob {
    pub fn zeroed() -> EccSignatureBlob {
        EccSignatureBlob {
            r: [0; 64],
            s: [0; 64],
        }
    }

    /// r‖s, 32 bytes each.
    pub fn to_raw(&self) -> Result<[u8; 64], BlobError> {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&low_half(&{ self.r })?);
        out[32..].copy_from_slice(&low_half(&{ self.s })?);
        Ok(out)
    }

    /// DER `SEQUENCE { r INTEGER, s INTEGER }` with minimal integers (what OpenSSL, X.509
    /// and CMS take for SM2).
    pub fn to_der(&self) -> Result<Vec<u8>, BlobError> {
        crate::token::sign::ecdsa_raw_to_der(&self.to_raw()?)
            .map_err(|e| BlobError::Encoding(e.to_string()))
    }
}

impl RsaPublicKeyBlob {
    /// The modulus: its first BitLen/8 bytes (left-aligned, as GmSSL reads it; unverified
    /// on vendors, so prefer the key in the certificate).
    pub fn modulus(&self) -> Result<Vec<u8>, BlobError> {
        let bits = self.bit_len;
        if bits == 0 || !bits.is_multiple_of(8) || bits > 2048 {
            return Err(BlobError::RsaBitLen(bits));
        }
        Ok(self.modulus[..(bits / 8) as usize].to_vec())
    }

    /// The public exponent, big-endian without leading zeros.
    pub fn exponent(&self) -> Vec<u8> {
        let e = self.public_exponent;
        let start = e.iter().position(|&b| b != 0).unwrap_or(e.len());
        e[start..].to_vec()
    }
}

// ---------------------------------------------------------------------------------------------
// Names and the two-call convention
// ---------------------------------------------------------------------------------------------

/// A device, application or container name as the library spells it: the exact bytes (to
/// pass back), shown as UTF-8 or GBK ([`crate::text::vendor_text`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Vec<u8>);

impl Name {
    /// `None` for an empty name or one containing NUL.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<Name> {
        let bytes = bytes.into();
        (!bytes.is_empty() && !bytes.contains(&0)).then_some(Name(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The NUL-terminated form for the library.
    pub fn to_cstring(&self) -> CString {
        CString::new(self.0.clone()).expect("Name has no NUL")
    }

    /// For people and logs: UTF-8 or GBK (as `Display` writes it).
    pub fn display(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&vendor_text(&self.0))
    }
}

/// The most names certray takes from one list.
pub const MAX_NAMES: usize = 256;
/// The largest list or blob certray allocates for, whatever size a library reports
/// (a Longmai build reports 0xFFFFFFC2 when there is no USB).
pub const MAX_BUFFER: usize = 64 * 1024;

/// Parse a multi-string list (`name\0name\0\0`) already cut to the size the library
/// reported. Tolerant: the final extra NUL may be missing, even the last name's NUL; the list
/// ends at the first empty entry (what follows a double NUL is ignored); at most
/// [`MAX_NAMES`] names.
pub fn parse_name_list(bytes: &[u8]) -> Vec<Name> {
    let mut names = Vec::new();
    for entry in bytes.split(|&b| b == 0) {
        if entry.is_empty() || names.len() == MAX_NAMES {
            break;
        }
        names.push(Name(entry.to_vec()));
    }
    names
}

/// Why a two-call read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizedError {
    #[error("{0}")]
    Call(Sar),
    #[error("the library reported an implausible size of {reported} bytes (limit {limit})")]
    Implausible { reported: u64, limit: usize },
    #[error("the size kept changing between calls")]
    Unstable,
}

/// The two-call convention: ask the size with a NULL buffer, allocate (never more than
/// `limit`), call again. If the second call says `SAR_BUFFER_TOO_SMALL` (a key inserted in
/// between), retry a few times with the new size. A reported size above `limit` or a write
/// longer than the buffer is [`SizedError::Implausible`], so a garbage size costs no huge
/// allocation.
///
/// `call(buffer, len)` calls the library function; `buffer` is NULL the first time.
pub fn read_sized(
    limit: usize,
    mut call: impl FnMut(*mut u8, &mut Ulong) -> Ulong,
) -> Result<Vec<u8>, SizedError> {
    let implausible = |reported: Ulong| SizedError::Implausible {
        reported: u64::from(reported),
        limit,
    };
    let mut len: Ulong = 0;
    let rc = call(std::ptr::null_mut(), &mut len);
    // Some libraries answer the size query itself with SAR_BUFFER_TOO_SMALL.
    if rc != SAR_OK && rc != SAR_BUFFER_TOO_SMALL {
        return Err(SizedError::Call(Sar(rc)));
    }
    for _ in 0..4 {
        let want = len as usize;
        if want > limit {
            return Err(implausible(len));
        }
        if want == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; want];
        let mut got = len;
        match call(buf.as_mut_ptr(), &mut got) {
            SAR_OK if got as usize > want => return Err(implausible(got)),
            SAR_OK => {
                buf.truncate(got as usize);
                return Ok(buf);
            }
            SAR_BUFFER_TOO_SMALL => {
                len = if got > len {
                    got
                } else {
                    len.saturating_mul(2)
                }
            }
            rc => return Err(SizedError::Call(Sar(rc))),
        }
    }
    Err(SizedError::Unstable)
}

// ---------------------------------------------------------------------------------------------
// Function types and the function table
// ---------------------------------------------------------------------------------------------

pub type FnWaitForDevEvent =
    unsafe extern "system" fn(name: *mut c_char, name_len: *mut Ulong, event: *mut Ulong) -> Ulong;
pub type FnCancelWaitForDevEvent = unsafe extern "system" fn() -> Ulong;
pub type FnEnumDev =
    unsafe extern "system" fn(present: Bool, names: *mut c_char, size: *mut Ulong) -> Ulong;
pub type FnConnectDev = unsafe extern "system" fn(name: *const c_char, dev: *mut Handle) -> Ulong;
pub type FnDisConnectDev = unsafe extern "system" fn(dev: Handle) -> Ulong;
pub type FnGetDevState = unsafe extern "system" fn(name: *const c_char, state: *mut Ulong) -> Ulong;
pub type FnGetDevInfo = unsafe extern "system" fn(dev: Handle, info: *mut DevInfo) -> Ulong;
pub type FnTransmit = unsafe extern "system" fn(
    dev: Handle,
    command: *const u8,
    command_len: Ulong,
    data: *mut u8,
    data_len: *mut Ulong,
) -> Ulong;
pub type FnDevAuth = unsafe extern "system" fn(dev: Handle, data: *const u8, len: Ulong) -> Ulong;
pub type FnChangeDevAuthKey =
    unsafe extern "system" fn(dev: Handle, key: *const u8, len: Ulong) -> Ulong;
/// GmSSL declares it `LONG`, Longmai `ULONG`: 32 bits either way; only the low 32 bits of
/// the return register are read.
pub type FnGetPinInfo = unsafe extern "system" fn(
    app: Handle,
    pin_type: Ulong,
    max_retries: *mut Ulong,
    remaining: *mut Ulong,
    default_pin: *mut Bool,
) -> Ulong;
pub type FnVerifyPin = unsafe extern "system" fn(
    app: Handle,
    pin_type: Ulong,
    pin: *const c_char,
    retries: *mut Ulong,
) -> Ulong;
pub type FnChangePin = unsafe extern "system" fn(
    app: Handle,
    pin_type: Ulong,
    old_pin: *const c_char,
    new_pin: *const c_char,
    retries: *mut Ulong,
) -> Ulong;
/// On failure `retries` is the ADMIN PIN's count.
pub type FnUnblockPin = unsafe extern "system" fn(
    app: Handle,
    admin_pin: *const c_char,
    new_user_pin: *const c_char,
    retries: *mut Ulong,
) -> Ulong;
pub type FnClearSecureState = unsafe extern "system" fn(app: Handle) -> Ulong;
pub type FnEnumApplication =
    unsafe extern "system" fn(dev: Handle, names: *mut c_char, size: *mut Ulong) -> Ulong;
pub type FnOpenApplication =
    unsafe extern "system" fn(dev: Handle, name: *const c_char, app: *mut Handle) -> Ulong;
pub type FnCloseApplication = unsafe extern "system" fn(app: Handle) -> Ulong;
pub type FnEnumContainer =
    unsafe extern "system" fn(app: Handle, names: *mut c_char, size: *mut Ulong) -> Ulong;
pub type FnOpenContainer =
    unsafe extern "system" fn(app: Handle, name: *const c_char, container: *mut Handle) -> Ulong;
pub type FnCloseContainer = unsafe extern "system" fn(container: Handle) -> Ulong;
pub type FnGetContainerType =
    unsafe extern "system" fn(container: Handle, container_type: *mut Ulong) -> Ulong;
pub type FnImportCertificate = unsafe extern "system" fn(
    container: Handle,
    sign: Bool,
    cert: *const u8,
    cert_len: Ulong,
) -> Ulong;
/// `sign` TRUE: the signing certificate; FALSE: the encryption one.
pub type FnExportCertificate = unsafe extern "system" fn(
    container: Handle,
    sign: Bool,
    cert: *mut u8,
    cert_len: *mut Ulong,
) -> Ulong;
/// Writes an `ECCPUBLICKEYBLOB` or an `RSAPUBLICKEYBLOB`.
pub type FnExportPublicKey = unsafe extern "system" fn(
    container: Handle,
    sign: Bool,
    blob: *mut u8,
    blob_len: *mut Ulong,
) -> Ulong;
pub type FnGenRandom = unsafe extern "system" fn(dev: Handle, random: *mut u8, len: Ulong) -> Ulong;
pub type FnGenEccKeyPair = unsafe extern "system" fn(
    container: Handle,
    alg_id: Ulong,
    blob: *mut EccPublicKeyBlob,
) -> Ulong;
/// The input is e = SM3(Z‖M), 32 bytes, NOT the message; needs the user PIN.
pub type FnEccSignData = unsafe extern "system" fn(
    container: Handle,
    digest: *const u8,
    digest_len: Ulong,
    signature: *mut EccSignatureBlob,
) -> Ulong;
/// PKCS#1 v1.5 type 1 over the input as given: pass DigestInfo‖hash (at most k − 11 bytes).
pub type FnRsaSignData = unsafe extern "system" fn(
    container: Handle,
    data: *const u8,
    data_len: Ulong,
    signature: *mut u8,
    signature_len: *mut Ulong,
) -> Ulong;
/// With `public_key` and `id` (SM3 only) the hash starts with Z: `SKF_Digest` gives e.
pub type FnDigestInit = unsafe extern "system" fn(
    dev: Handle,
    alg_id: Ulong,
    public_key: *const EccPublicKeyBlob,
    id: *const u8,
    id_len: Ulong,
    hash: *mut Handle,
) -> Ulong;
pub type FnDigest = unsafe extern "system" fn(
    hash: Handle,
    data: *const u8,
    data_len: Ulong,
    out: *mut u8,
    out_len: *mut Ulong,
) -> Ulong;
pub type FnDigestUpdate =
    unsafe extern "system" fn(hash: Handle, data: *const u8, len: Ulong) -> Ulong;
pub type FnDigestFinal =
    unsafe extern "system" fn(hash: Handle, out: *mut u8, out_len: *mut Ulong) -> Ulong;
pub type FnCloseHandle = unsafe extern "system" fn(handle: Handle) -> Ulong;

/// Why a library cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("cannot load SKF library {}: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    #[error(
        "unsupported SKF library {}: it does not export {} (GM/T 0016 functions certray needs)",
        path.display(),
        missing.join(", ")
    )]
    Unsupported {
        path: PathBuf,
        missing: Vec<&'static str>,
    },
}

macro_rules! function_table {
    (
        required { $($rfield:ident: $rty:ty = $rname:literal,)* }
        optional { $($ofield:ident: $oty:ty = $oname:literal,)* }
    ) => {
        /// The functions of one SKF library. Required ones are plain function pointers (a
        /// library lacking one does not load: [`LoadError::Unsupported`]); optional ones are
        /// `Option`s (real libraries differ in what else they export).
        ///
        /// The pointers are valid only while this table (which owns the library) lives:
        /// never copy one out of it.
        pub struct Functions {
            $(pub $rfield: $rty,)*
            $(pub $ofield: Option<$oty>,)*
            path: PathBuf,
            _library: Library,
        }

        /// The symbols a library must export.
        pub const REQUIRED: &[&str] = &[$($rname),*];
        /// The symbols certray uses when present.
        pub const OPTIONAL: &[&str] = &[$($oname),*];

        impl Functions {
            /// Load `path` and resolve every symbol; all missing required ones are named at
            /// once.
            ///
            /// Loading runs the library's initialisers: vendor code, which certray keeps out
            /// of the daemon's process (the SKF host, issue 13).
            pub fn load(path: &Path) -> Result<Functions, LoadError> {
                // SAFETY: loading a dynamic library runs its constructors; certray loads SKF
                // libraries only where a misbehaving one cannot take more than that process
                // down, and nothing else in the process depends on state they could change.
                let library = unsafe { Library::new(path) }.map_err(|e| LoadError::Open {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
                let mut missing = Vec::new();
                $(
                    // SAFETY: the type is the GM/T 0016 prototype of this symbol (the table
                    // pairs them), and the pointer lives in the same struct as `library`.
                    let $rfield = unsafe { symbol::<$rty>(&library, $rname) };
                    if $rfield.is_none() {
                        missing.push($rname);
                    }
                )*
                if !missing.is_empty() {
                    return Err(LoadError::Unsupported { path: path.to_path_buf(), missing });
                }
                Ok(Functions {
                    $($rfield: $rfield.expect("checked above"),)*
                    $(
                        // SAFETY: as for the required symbols.
                        $ofield: unsafe { symbol::<$oty>(&library, $oname) },
                    )*
                    path: path.to_path_buf(),
                    _library: library,
                })
            }

            /// The optional symbols this library does not export.
            pub fn missing_optional(&self) -> Vec<&'static str> {
                let mut missing = Vec::new();
                $(
                    if self.$ofield.is_none() {
                        missing.push($oname);
                    }
                )*
                missing
            }
        }
    };
}

function_table! {
    required {
        enum_dev: FnEnumDev = "SKF_EnumDev",
        connect_dev: FnConnectDev = "SKF_ConnectDev",
        disconnect_dev: FnDisConnectDev = "SKF_DisConnectDev",
        get_dev_info: FnGetDevInfo = "SKF_GetDevInfo",
        enum_application: FnEnumApplication = "SKF_EnumApplication",
        open_application: FnOpenApplication = "SKF_OpenApplication",
        close_application: FnCloseApplication = "SKF_CloseApplication",
        get_pin_info: FnGetPinInfo = "SKF_GetPINInfo",
        verify_pin: FnVerifyPin = "SKF_VerifyPIN",
        change_pin: FnChangePin = "SKF_ChangePIN",
        unblock_pin: FnUnblockPin = "SKF_UnblockPIN",
        clear_secure_state: FnClearSecureState = "SKF_ClearSecureState",
        enum_container: FnEnumContainer = "SKF_EnumContainer",
        open_container: FnOpenContainer = "SKF_OpenContainer",
        close_container: FnCloseContainer = "SKF_CloseContainer",
        export_certificate: FnExportCertificate = "SKF_ExportCertificate",
        ecc_sign_data: FnEccSignData = "SKF_ECCSignData",
    }
    optional {
        wait_for_dev_event: FnWaitForDevEvent = "SKF_WaitForDevEvent",
        cancel_wait_for_dev_event: FnCancelWaitForDevEvent = "SKF_CancelWaitForDevEvent",
        get_dev_state: FnGetDevState = "SKF_GetDevState",
        transmit: FnTransmit = "SKF_Transmit",
        dev_auth: FnDevAuth = "SKF_DevAuth",
        change_dev_auth_key: FnChangeDevAuthKey = "SKF_ChangeDevAuthKey",
        get_container_type: FnGetContainerType = "SKF_GetContainerType",
        import_certificate: FnImportCertificate = "SKF_ImportCertificate",
        export_public_key: FnExportPublicKey = "SKF_ExportPublicKey",
        gen_random: FnGenRandom = "SKF_GenRandom",
        gen_ecc_key_pair: FnGenEccKeyPair = "SKF_GenECCKeyPair",
        rsa_sign_data: FnRsaSignData = "SKF_RSASignData",
        digest_init: FnDigestInit = "SKF_DigestInit",
        digest: FnDigest = "SKF_Digest",
        digest_update: FnDigestUpdate = "SKF_DigestUpdate",
        digest_final: FnDigestFinal = "SKF_DigestFinal",
        close_handle: FnCloseHandle = "SKF_CloseHandle",
    }
}

impl Functions {
    /// The library this table was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for Functions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Functions")
            .field("path", &self.path)
            .field("missing_optional", &self.missing_optional())
            .finish_non_exhaustive()
    }
}

/// # Safety
/// `T` must be the function-pointer type of the symbol `name`, and the result must not be
/// used after `library` is dropped.
unsafe fn symbol<T: Copy>(library: &Library, name: &str) -> Option<T> {
    // SAFETY: forwarded from this function's contract.
    unsafe { library.get::<T>(name.as_bytes()) }
        .ok()
        .map(|s| *s)
}

/// What a library may write is any bytes: the parsers above take whatever comes and never
/// panic, never allocate past their bounds, and what they accept means what it says. The
/// fuzz target `fuzz/fuzz_targets/skf_abi.rs` runs the same calls under libFuzzer (nightly).
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// r and s as DER reads them back (an independent decoder: the `der` crate).
    #[derive(der::Sequence)]
    struct Sig<'a> {
        r: der::asn1::UintRef<'a>,
        s: der::asn1::UintRef<'a>,
    }

    fn minimal(b: &[u8]) -> &[u8] {
        let start = b.iter().position(|&x| x != 0).unwrap_or(b.len() - 1);
        &b[start..]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn name_lists_are_the_names_before_the_first_empty_one(
            bytes in prop::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..2048)
        ) {
            let names = parse_name_list(&bytes);
            prop_assert!(names.len() <= MAX_NAMES);
            let mut rebuilt = Vec::new();
            for n in &names {
                prop_assert!(!n.as_bytes().is_empty() && !n.as_bytes().contains(&0));
                let _ = n.display();
                rebuilt.extend_from_slice(n.as_bytes());
                rebuilt.push(0);
            }
            // The names, each with its NUL, are the list's start (the last NUL may be missing).
            let prefix = &bytes[..rebuilt.len().min(bytes.len())];
            prop_assert_eq!(&rebuilt[..prefix.len()], prefix);
        }

        #[test]
        fn structs_come_from_exactly_their_size(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let info = from_bytes::<DevInfo>(&bytes);
            prop_assert_eq!(info.is_some(), bytes.len() == size_of::<DevInfo>());
            if let Some(i) = info {
                for t in [i.manufacturer(), i.issuer(), i.label(), i.serial()] {
                    prop_assert!(!t.contains('\0') && t == t.trim_end());
                }
                prop_assert_eq!(i.hash_caps() & !alg::HASH_CAPS, 0);
            }
            prop_assert_eq!(
                from_bytes::<EccSignatureBlob>(&bytes).is_some(),
                bytes.len() == size_of::<EccSignatureBlob>()
            );
        }

        #[test]
        fn an_ecc_signature_blob_is_der_of_its_own_r_and_s(
            r in prop::array::uniform32(any::<u8>()),
            s in prop::array::uniform32(any::<u8>()),
            high in prop::collection::vec(any::<u8>(), 128),
            dirty in any::<bool>(),
        ) {
            let mut bytes = [0u8; 128];
            bytes[32..64].copy_from_slice(&r);
            bytes[96..].copy_from_slice(&s);
            if dirty {
                // A library that leaves garbage in the high halves.
                bytes[..32].copy_from_slice(&high[..32]);
                bytes[64..96].copy_from_slice(&high[32..64]);
            }
            let blob = from_bytes::<EccSignatureBlob>(&bytes).unwrap();
            let high_clean = bytes[..32].iter().chain(&bytes[64..96]).all(|&b| b == 0);
            match blob.to_der() {
                Ok(der) => {
                    prop_assert!(high_clean);
                    let sig = <Sig as der::Decode>::from_der(&der).expect("strict DER");
                    prop_assert_eq!(sig.r.as_bytes(), minimal(&r));
                    prop_assert_eq!(sig.s.as_bytes(), minimal(&s));
                }
                Err(_) => prop_assert!(!high_clean),
            }
        }

        #[test]
        fn key_blobs_never_read_past_their_fields(
            bytes in prop::collection::vec(any::<u8>(), std::mem::size_of::<RsaPublicKeyBlob>())
        ) {
            let rsa = from_bytes::<RsaPublicKeyBlob>(&bytes).unwrap();
            if let Ok(m) = rsa.modulus() {
                let bits = rsa.bit_len;
                prop_assert_eq!(m.len() as u64 * 8, u64::from(bits));
            }
            prop_assert!(rsa.exponent().len() <= 4);
            let ecc = from_bytes::<EccPublicKeyBlob>(&bytes[..132]).unwrap();
            if let Ok(p) = ecc.to_sec1() {
                prop_assert_eq!(p[0], 4);
                prop_assert_eq!(EccPublicKeyBlob::from_sec1(&p).unwrap().to_sec1().unwrap(), p);
            }
        }

        /// A library that reports any sizes and return codes, and may claim to have written
        /// more than it was given: read_sized never hands it a buffer over the limit, and
        /// what it returns fits the limit.
        #[test]
        fn two_calls_stay_within_the_limit(
            answers in prop::collection::vec(
                (prop_oneof![Just(SAR_OK), Just(SAR_BUFFER_TOO_SMALL), Just(0x0A00_0001u32 as Ulong)],
                 prop_oneof![0..2048u32, any::<u32>()]),
                1..8,
            ),
            limit in 0usize..4096,
        ) {
            let mut i = 0;
            let mut biggest = 0usize;
            let out = read_sized(limit, |buf, len| {
                let (rc, size) = answers[i.min(answers.len() - 1)];
                i += 1;
                if !buf.is_null() {
                    biggest = biggest.max(*len as usize);
                }
                *len = size as Ulong;
                rc
            });
            prop_assert!(biggest <= limit);
            prop_assert!(i <= 5, "{i} calls");
            if let Ok(v) = out {
                prop_assert!(v.len() <= limit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn packed_layouts() {
        // gcc's numbers (SKF.md §3.3); tests/skf_abi.rs compares every field with gcc itself.
        assert_eq!(size_of::<DevInfo>(), 294);
        assert_eq!(offset_of!(DevInfo, alg_sym_cap), 198);
        assert_eq!(offset_of!(DevInfo, reserved), 230);
        assert_eq!(size_of::<RsaPublicKeyBlob>(), 268);
        assert_eq!(offset_of!(RsaPublicKeyBlob, modulus), 8);
        assert_eq!(size_of::<EccPublicKeyBlob>(), 132);
        assert_eq!(size_of::<EccSignatureBlob>(), 128);
        assert_eq!(size_of::<EccCipherBlob>(), 165);
        assert_eq!(size_of::<BlockCipherParam>(), 44);
        assert_eq!(size_of::<FileAttribute>(), 44);
    }

    #[test]
    fn name_lists_with_and_without_the_double_nul() {
        let names =
            |b: &[u8]| -> Vec<String> { parse_name_list(b).iter().map(Name::display).collect() };
        assert_eq!(names(b"dev1\0dev2\0\0"), ["dev1", "dev2"]);
        // no-double-nul quirk, and even the last NUL missing (bounded by the reported size)
        assert_eq!(names(b"dev1\0dev2\0"), ["dev1", "dev2"]);
        assert_eq!(names(b"dev1\0dev2"), ["dev1", "dev2"]);
        // the list ends at the double NUL; garbage after it is ignored
        assert_eq!(names(b"dev1\0\0\xff\xfegarbage\0"), ["dev1"]);
        assert!(names(b"").is_empty());
        assert!(names(b"\0\0").is_empty());
        assert!(names(b"\0").is_empty());
    }

    #[test]
    fn gbk_names_keep_their_bytes_and_show_as_chinese() {
        // "你好" in GBK
        let list = parse_name_list(b"\xc4\xe3\xba\xc3\0\0");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].as_bytes(), b"\xc4\xe3\xba\xc3");
        assert_eq!(list[0].to_cstring().as_bytes(), b"\xc4\xe3\xba\xc3");
        assert_eq!(list[0].display(), "你好");
        assert_eq!(list[0].to_string(), "你好");
        assert_eq!(Name::new(b"a\0b".to_vec()), None);
        assert_eq!(Name::new(Vec::new()), None);
    }

    #[test]
    fn name_lists_are_bounded() {
        let mut many = Vec::new();
        for i in 0..1000 {
            many.extend_from_slice(format!("d{i}\0").as_bytes());
        }
        assert_eq!(parse_name_list(&many).len(), MAX_NAMES);
    }

    /// A fake `SKF_EnumDev`-style function over `data`, reporting `reported` as the size.
    fn fake(data: &'static [u8], reported: Ulong) -> impl FnMut(*mut u8, &mut Ulong) -> Ulong {
        move |buf, len| {
            if buf.is_null() {
                *len = reported;
                return SAR_OK;
            }
            if (*len as usize) < data.len() {
                *len = data.len() as Ulong;
                return SAR_BUFFER_TOO_SMALL;
            }
            // SAFETY: read_sized passes a buffer of *len bytes, checked >= data.len() above.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len()) };
            *len = data.len() as Ulong;
            SAR_OK
        }
    }

    #[test]
    fn two_calls() {
        let got = read_sized(MAX_BUFFER, fake(b"dev1\0\0", 6)).unwrap();
        assert_eq!(got, b"dev1\0\0");
        assert_eq!(read_sized(MAX_BUFFER, fake(b"", 0)).unwrap(), b"");
    }

    #[test]
    fn a_key_inserted_between_the_calls_means_one_more_try() {
        // The size query saw one device; by the second call there are two.
        let got = read_sized(MAX_BUFFER, fake(b"dev1\0dev2\0\0", 6)).unwrap();
        assert_eq!(parse_name_list(&got).len(), 2);
    }

    #[test]
    fn a_garbage_size_is_refused_without_allocating_it() {
        // Longmai without USB: SAR_OK and 0xFFFFFFC2, then SAR_FAIL.
        let mut calls = 0;
        let err = read_sized(MAX_BUFFER, |buf, len| {
            calls += 1;
            if buf.is_null() {
                *len = 0xFFFF_FFC2;
                SAR_OK
            } else {
                SAR_FAIL
            }
        })
        .unwrap_err();
        assert_eq!(
            err,
            SizedError::Implausible {
                reported: 0xFFFF_FFC2,
                limit: MAX_BUFFER
            }
        );
        assert_eq!(calls, 1, "the buffer call must not even be made");
    }

    #[test]
    fn a_library_claiming_to_write_past_the_buffer_is_refused() {
        let err = read_sized(MAX_BUFFER, |buf, len| {
            if buf.is_null() {
                *len = 4;
            } else {
                *len = 5000;
            }
            SAR_OK
        })
        .unwrap_err();
        assert!(matches!(
            err,
            SizedError::Implausible { reported: 5000, .. }
        ));
    }

    #[test]
    fn errors_and_endless_growth() {
        let err = read_sized(MAX_BUFFER, |_, _| SAR_DEVICE_REMOVED).unwrap_err();
        assert_eq!(err, SizedError::Call(Sar(SAR_DEVICE_REMOVED)));
        assert_eq!(err.to_string(), "SAR_DEVICE_REMOVED (0x0A000023)");
        let err = read_sized(MAX_BUFFER, |buf, len| {
            if buf.is_null() {
                *len = 1;
                SAR_OK
            } else {
                *len += 1;
                SAR_BUFFER_TOO_SMALL
            }
        })
        .unwrap_err();
        assert_eq!(err, SizedError::Unstable);
    }

    #[test]
    fn sar_codes_have_names_and_vendor_codes_stay_visible() {
        assert_eq!(Sar(SAR_PIN_INCORRECT).name(), Some("SAR_PIN_INCORRECT"));
        assert_eq!(Sar(0x0A00_0020).name(), Some("SAR_BUFFER_TOO_SMALL"));
        assert_eq!(Sar(0x0A00_002E).name(), Some("SAR_APPLICATION_NOT_EXISTS"));
        assert_eq!(
            Sar(SAR_PIN_LOCKED).to_string(),
            "SAR_PIN_LOCKED (0x0A000025)"
        );
        assert_eq!(
            Sar(0x0B00_0035).to_string(),
            "vendor error 0x0B000035, SAR_CONTAINER_NOT_FOUND (Longmai)"
        );
        assert_eq!(Sar(0x1234_5678).to_string(), "vendor error 0x12345678");
        assert!(!Sar(0x0B00_0035).is_spec());
        assert_eq!(Sar::check(SAR_OK), Ok(()));
        // The table is sorted and has no duplicates.
        assert!(SAR_NAMES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn dev_info_text_and_caps() {
        let mut info = DevInfo::zeroed();
        info.label[..7].copy_from_slice(b"GM3000 ");
        info.manufacturer[..4].copy_from_slice(b"\xc1\xfa\xc2\xf6"); // GBK 龙脉
        info.alg_hash_cap = alg::SGD_SM3 | 0x8008_0000;
        assert_eq!(info.label(), "GM3000");
        assert_eq!(info.serial(), "");
        assert_eq!(info.manufacturer(), "龙脉");
        assert_eq!(info.hash_caps(), alg::SGD_SM3);
        let bytes = [0u8; 294];
        assert!(from_bytes::<DevInfo>(&bytes).is_some());
        assert!(from_bytes::<DevInfo>(&bytes[..293]).is_none());
    }

    #[test]
    fn ecc_blobs() {
        let mut point = [0u8; 65];
        point[0] = 4;
        for (i, b) in point[1..].iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        let blob = EccPublicKeyBlob::from_sec1(&point).unwrap();
        assert_eq!({ blob.bit_len }, 256);
        assert_eq!(&{ blob.x }[..32], &[0u8; 32]);
        assert_eq!(blob.to_sec1().unwrap(), point);
        let mut high = blob;
        high.x[0] = 1;
        assert_eq!(high.to_sec1(), Err(BlobError::EccHighHalf));
        let mut bits = blob;
        bits.bit_len = 512;
        assert_eq!(bits.to_sec1(), Err(BlobError::EccBitLen(512)));
        assert_eq!(
            EccPublicKeyBlob::from_sec1(&point[..33]).err(),
            Some(BlobError::NotUncompressedPoint)
        );
        let raw = from_bytes::<EccPublicKeyBlob>(&[0u8; 132]).unwrap();
        assert_eq!(raw.to_sec1(), Err(BlobError::EccBitLen(0)));
    }

    #[test]
    fn signature_blob_to_minimal_der() {
        let mut sig = EccSignatureBlob::zeroed();
        // r < 2^248 (a leading zero byte) and s with its high bit set.
        sig.r[33..].copy_from_slice(&[0x11; 31]);
        sig.s[32..].copy_from_slice(&[0x80; 32]);
        let der = sig.to_der().unwrap();
        assert_eq!(&der[..4], &[0x30, 31 + 2 + 33 + 2, 0x02, 31]);
        assert_eq!(&der[4..35], &[0x11; 31]);
        assert_eq!(&der[35..38], &[0x02, 33, 0x00]);
        let mut bad = sig;
        bad.s[0] = 1;
        assert_eq!(bad.to_der(), Err(BlobError::EccHighHalf));
    }

    #[test]
    fn rsa_blob() {
        let mut blob = from_bytes::<RsaPublicKeyBlob>(&[0u8; 268]).unwrap();
        blob.bit_len = 1024;
        blob.modulus[0] = 0xC5;
        blob.public_exponent = [0, 1, 0, 1];
        let m = blob.modulus().unwrap();
        assert_eq!((m.len(), m[0]), (128, 0xC5));
        assert_eq!(blob.exponent(), [1, 0, 1]);
        blob.bit_len = 4096;
        assert_eq!(blob.modulus(), Err(BlobError::RsaBitLen(4096)));
    }

    #[test]
    fn missing_library_is_a_load_error() {
        let err = Functions::load(Path::new("/nonexistent/libskf.so")).unwrap_err();
        assert!(matches!(err, LoadError::Open { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("cannot load SKF library /nonexistent/libskf.so")
        );
    }
}
