//! C_GetTokenInfo read through the raw function list.
//!
//! cryptoki's `get_token_info` fails as a whole when a token sets CKF_CLOCK_ON_TOKEN but
//! its `utcTime` is not a parsable date: opencryptoki's soft token does this, and vendor
//! modules are no tidier. certray needs only the names, flags and PIN lengths, so this reads
//! the structure itself (a small hand-written part: cryptoki offers no lenient variant).

use cryptoki::slot::Slot;
use cryptoki_sys::{CK_RV, CK_TOKEN_INFO, CKR_OK};

use crate::text::vendor_text;

/// The parts of CK_TOKEN_INFO certray uses.
#[derive(Debug, Clone)]
pub struct RawTokenInfo {
    label: String,
    manufacturer: String,
    model: String,
    serial: String,
    flags: u64,
    min_pin: usize,
    max_pin: usize,
}

/// Blank-padded (and sometimes NUL-padded) fixed-size text: UTF-8 as PKCS#11 says, or the
/// GBK some Chinese tokens write ([`crate::text::vendor_text`]).
fn text(bytes: &[u8]) -> String {
    vendor_text(bytes)
        .trim_end_matches([' ', '\0'])
        .trim()
        .to_string()
}

/// CK_UNAVAILABLE_INFORMATION (all ones) means the token does not say.
fn length(v: cryptoki_sys::CK_ULONG) -> usize {
    if v == cryptoki_sys::CK_UNAVAILABLE_INFORMATION {
        0
    } else {
        usize::try_from(v).unwrap_or(0)
    }
}

impl RawTokenInfo {
    /// C_GetTokenInfo for `slot`; the error is the CK_RV.
    pub fn read(raw: &cryptoki_sys::Pkcs11, slot: Slot) -> Result<RawTokenInfo, CK_RV> {
        let mut info = CK_TOKEN_INFO::default();
        // SAFETY: `raw` is the module's function table, initialized by the worker's cryptoki
        // context (C_Initialize) before any call here; `info` is a valid out-pointer.
        let rv = unsafe { raw.C_GetTokenInfo(slot.into(), &mut info) };
        if rv != CKR_OK {
            return Err(rv);
        }
        Ok(RawTokenInfo {
            label: text(&info.label),
            manufacturer: text(&info.manufacturerID),
            model: text(&info.model),
            serial: text(&info.serialNumber),
            #[allow(clippy::useless_conversion)] // CK_FLAGS is u32 on Windows
            flags: u64::from(info.flags),
            min_pin: length(info.ulMinPinLen),
            max_pin: length(info.ulMaxPinLen),
        })
    }

    fn flag(&self, f: cryptoki_sys::CK_FLAGS) -> bool {
        #[allow(clippy::useless_conversion)]
        let f = u64::from(f);
        self.flags & f != 0
    }

    /// CKF_LOGIN_REQUIRED: some functions (signing) need a login, and private objects show
    /// only after it.
    pub fn login_required(&self) -> bool {
        self.flag(cryptoki_sys::CKF_LOGIN_REQUIRED)
    }

    pub fn label(&self) -> &str {
        &self.label
    }
    pub fn manufacturer_id(&self) -> &str {
        &self.manufacturer
    }
    pub fn model(&self) -> &str {
        &self.model
    }
    pub fn serial_number(&self) -> &str {
        &self.serial
    }
    pub fn min_pin_length(&self) -> usize {
        self.min_pin
    }
    pub fn max_pin_length(&self) -> usize {
        self.max_pin
    }
    pub fn token_initialized(&self) -> bool {
        self.flag(cryptoki_sys::CKF_TOKEN_INITIALIZED)
    }
    pub fn user_pin_initialized(&self) -> bool {
        self.flag(cryptoki_sys::CKF_USER_PIN_INITIALIZED)
    }
    pub fn user_pin_count_low(&self) -> bool {
        self.flag(cryptoki_sys::CKF_USER_PIN_COUNT_LOW)
    }
    pub fn user_pin_final_try(&self) -> bool {
        self.flag(cryptoki_sys::CKF_USER_PIN_FINAL_TRY)
    }
    pub fn user_pin_locked(&self) -> bool {
        self.flag(cryptoki_sys::CKF_USER_PIN_LOCKED)
    }
    pub fn user_pin_to_be_changed(&self) -> bool {
        self.flag(cryptoki_sys::CKF_USER_PIN_TO_BE_CHANGED)
    }
    pub fn so_pin_count_low(&self) -> bool {
        self.flag(cryptoki_sys::CKF_SO_PIN_COUNT_LOW)
    }
    pub fn so_pin_final_try(&self) -> bool {
        self.flag(cryptoki_sys::CKF_SO_PIN_FINAL_TRY)
    }
    pub fn so_pin_locked(&self) -> bool {
        self.flag(cryptoki_sys::CKF_SO_PIN_LOCKED)
    }
    pub fn so_pin_to_be_changed(&self) -> bool {
        self.flag(cryptoki_sys::CKF_SO_PIN_TO_BE_CHANGED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_text_is_utf8_or_gbk_without_its_padding() {
        let mut field = [b' '; 32];
        field[..11].copy_from_slice(b"\xc1\xfa\xc2\xf6 GM3000"); // GBK 龙脉
        assert_eq!(text(&field), "龙脉 GM3000");
        let mut field = [0u8; 32];
        field[..9].copy_from_slice("一证通".as_bytes());
        assert_eq!(text(&field), "一证通");
    }
}
