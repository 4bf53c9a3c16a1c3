//! The error numbers `SOF_GetLastError` answers: GM/T 0020's `SOR_*` codes for what that
//! standard names, GM/T 0016's `SAR_*` codes for PIN and login states (which GM/T 0020
//! leaves to the device layer), both as published in the standards' annexes.

use crate::core;
use crate::error::Code;
use crate::i18n::Lang;

/// A last error: its number and its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fail {
    pub code: u32,
    /// certray's own code behind it, for the message.
    pub reason: Reason,
}

/// Why a call failed, as certray words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// One of certray's user-facing codes.
    Code(Code),
    /// A device-writing or file function: refused over the protocol.
    Refused,
    /// A function certray does not offer.
    NotSupported,
    /// A missing or malformed argument.
    BadArgument,
    /// The call needs `SOF_Login` on this connection first.
    NotLoggedIn,
    /// The signature does not verify.
    BadSignature,
}

// GM/T 0020-2012 Annex A.
pub const SOR_OK: u32 = 0;
pub const SOR_UNKNOWN: u32 = 0x0B00_0001;
pub const SOR_NOT_SUPPORT_YET: u32 = 0x0B00_0002;
pub const SOR_FILE: u32 = 0x0B00_0003;
pub const SOR_ALGO_TYPE: u32 = 0x0B00_0007;
pub const SOR_INDATA_LEN: u32 = 0x0B00_0200;
pub const SOR_INDATA: u32 = 0x0B00_0201;
pub const SOR_KEY_NOT_FOUND: u32 = 0x0B00_0309;
pub const SOR_CERT_NOT_FOUND: u32 = 0x0B00_0310;
pub const SOR_CERT_ENCODE: u32 = 0x0B00_0405;
pub const SOR_CERT_INVALID: u32 = 0x0B00_0406;
pub const SOR_CERT_HAS_EXPIRED: u32 = 0x0B00_0407;
pub const SOR_VERIFY_SIGN_DATA: u32 = 0x0B00_0410;
pub const SOR_PARAMETER_NOT_SUPPORT: u32 = 0x0B00_0419;
// GM/T 0016-2012 Annex A.
pub const SAR_DEVICE_REMOVED: u32 = 0x0A00_0023;
pub const SAR_PIN_INCORRECT: u32 = 0x0A00_0024;
pub const SAR_PIN_LOCKED: u32 = 0x0A00_0025;
pub const SAR_PIN_LEN_RANGE: u32 = 0x0A00_0027;
pub const SAR_USER_NOT_LOGGED_IN: u32 = 0x0A00_002D;

impl Fail {
    pub fn new(code: u32, reason: Reason) -> Fail {
        Fail { code, reason }
    }

    pub fn refused() -> Fail {
        Fail::new(SOR_NOT_SUPPORT_YET, Reason::Refused)
    }

    pub fn not_supported() -> Fail {
        Fail::new(SOR_NOT_SUPPORT_YET, Reason::NotSupported)
    }

    pub fn bad_argument() -> Fail {
        Fail::new(SOR_INDATA, Reason::BadArgument)
    }

    pub fn cert_not_found() -> Fail {
        Fail::new(SOR_CERT_NOT_FOUND, Reason::Code(Code::CertNotFound))
    }

    pub fn not_a_certificate() -> Fail {
        Fail::new(SOR_CERT_ENCODE, Reason::Code(Code::CertInvalid))
    }

    pub fn not_logged_in() -> Fail {
        Fail::new(SAR_USER_NOT_LOGGED_IN, Reason::NotLoggedIn)
    }

    /// The number for one of certray's codes.
    pub fn from_code(code: Code) -> Fail {
        let n = match code {
            Code::PinIncorrect => SAR_PIN_INCORRECT,
            Code::PinLocked | Code::PinFinalTry => SAR_PIN_LOCKED,
            Code::PinLenRange => SAR_PIN_LEN_RANGE,
            Code::PinRequired => SAR_USER_NOT_LOGGED_IN,
            Code::TokenRemoved | Code::TokenNotFound => SAR_DEVICE_REMOVED,
            Code::CertNotFound => SOR_CERT_NOT_FOUND,
            Code::CertInvalid => SOR_CERT_ENCODE,
            Code::NoPrivateKey => SOR_KEY_NOT_FOUND,
            Code::UnsupportedAlgorithm => SOR_ALGO_TYPE,
            Code::BadRequest | Code::PayloadTooLarge => SOR_INDATA,
            Code::PagePinNotAllowed | Code::OriginNotAllowed | Code::HostNotAllowed => {
                SOR_NOT_SUPPORT_YET
            }
            _ => SOR_UNKNOWN,
        };
        Fail::new(n, Reason::Code(code))
    }

    /// The message `SOF_GetLastErrMsg` answers.
    pub fn message(&self, lang: Lang) -> String {
        match self.reason {
            Reason::Code(c) => c.message(lang).to_string(),
            Reason::Refused => lang
                .pick(
                    "出于安全原因，证书助手不允许网页调用此功能（写入设备或访问文件）",
                    "certray does not let web pages call this function (it writes the device or touches files)",
                )
                .to_string(),
            Reason::NotSupported => lang
                .pick("证书助手不支持此功能", "certray does not offer this function")
                .to_string(),
            Reason::BadArgument => lang.pick("参数错误", "Bad argument").to_string(),
            Reason::NotLoggedIn => lang
                .pick(
                    "请先在本页面登录证书（校验证书密码）",
                    "Log in to the certificate on this page first (verify the PIN)",
                )
                .to_string(),
            Reason::BadSignature => lang
                .pick("签名验证失败", "The signature does not verify")
                .to_string(),
        }
    }
}

impl From<&core::Error> for Fail {
    fn from(e: &core::Error) -> Fail {
        Fail::from_code(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_the_standards() {
        assert_eq!(SOR_NOT_SUPPORT_YET, 184_549_378);
        assert_eq!(Fail::from_code(Code::PinIncorrect).code, 0x0A00_0024);
        assert_eq!(
            Fail::from_code(Code::UnsupportedAlgorithm).code,
            0x0B00_0007
        );
        assert!(Fail::refused().message(Lang::ZhCn).contains("不允许"));
    }
}
