//! PINs and their state, and the rules that keep a key from being locked by accident.
//!
//! The rules live here, once, as pure functions of the state a key reports: the core
//! applies them before anything is typed or sent, and every backend applies the same
//! functions again on the state it reads right before it submits a PIN.

use secrecy::ExposeSecret;

use crate::error::Code;
use crate::i18n::Lang;
use crate::text;

/// A PIN, admin PIN or unlock code. Zeroized on drop, redacted in `Debug`, never logged.
pub type Pin = secrecy::SecretString;

/// The PIN state a token reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PinState {
    pub min_len: usize,
    pub max_len: usize,
    /// The user PIN has been set (CKF_USER_PIN_INITIALIZED).
    pub initialized: bool,
    pub count_low: bool,
    pub final_try: bool,
    pub locked: bool,
    pub to_be_changed: bool,
    /// Still the factory (default) PIN: change it (SKF `SKF_GetPINInfo`'s `bDefaultPin`).
    #[serde(default)]
    pub default_pin: bool,
    /// Tries left before the PIN locks, when the token says (SKF does; PKCS#11 only flags).
    #[serde(default)]
    pub tries_left: Option<u32>,
}

/// Why a PIN is refused before the token is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PinRefusal {
    #[error("PIN locked")]
    Locked(PinState),
    #[error("the token reports one PIN attempt left; confirm explicitly to use it")]
    FinalTry(PinState),
    #[error("PIN length {len} outside {min}..={max}")]
    LenRange { len: usize, min: usize, max: usize },
    #[error("the two new PINs differ")]
    Mismatch,
}

impl PinRefusal {
    pub fn code(&self) -> Code {
        match self {
            PinRefusal::Locked(_) => Code::PinLocked,
            PinRefusal::FinalTry(_) => Code::PinFinalTry,
            PinRefusal::LenRange { .. } => Code::PinLenRange,
            PinRefusal::Mismatch => Code::PinMismatch,
        }
    }

    /// The state the refusal was made on, when it is about the token's state.
    pub fn pin_state(&self) -> Option<PinState> {
        match self {
            PinRefusal::Locked(s) | PinRefusal::FinalTry(s) => Some(*s),
            PinRefusal::LenRange { .. } | PinRefusal::Mismatch => None,
        }
    }
}

impl PinState {
    /// Whether a correct PIN leaves these flags as they are: no warning that a successful
    /// login clears (count low, final try, locked), no counter to reset (SKF's tries
    /// left), nothing the user must do (change the PIN). Then a successful login need not
    /// read the flags again.
    pub fn unchanged_by_success(&self) -> bool {
        !self.count_low
            && !self.final_try
            && !self.locked
            && !self.to_be_changed
            && !self.default_pin
            && self.tries_left.is_none()
    }

    /// Whether a PIN of `len` bytes fits the token's range. A token reporting 0 as the
    /// maximum does not say, so any length from `min_len` up is accepted.
    pub fn accepts_len(&self, len: usize) -> bool {
        len >= self.min_len && (self.max_len == 0 || len <= self.max_len)
    }

    /// The state in words, e.g. `PIN：正常 · 6–16 个字符，区分大小写`.
    pub fn describe(&self, lang: Lang) -> String {
        text::pin_line(self.flags(), self.min_len, self.max_len, lang)
    }

    /// The flags alone in words, most urgent first, e.g. `正常` or `已锁定，需修改`.
    pub fn flags_text(&self, lang: Lang) -> String {
        text::pin_flags(self.flags(), lang)
    }

    /// The allowed length in words, e.g. `6–16 个字符，区分大小写`.
    pub fn range_text(&self, lang: Lang) -> String {
        text::pin_range(self.min_len, self.max_len, lang)
    }

    fn flags(&self) -> text::PinFlags {
        text::PinFlags {
            locked: self.locked,
            final_try: self.final_try,
            count_low: self.count_low,
            initialized: self.initialized,
            to_be_changed: self.to_be_changed,
            default_pin: self.default_pin,
            tries_left: self.tries_left,
        }
    }

    /// May a PIN be submitted now? Never to a locked PIN; on the final try only with
    /// `force` (the person said so explicitly).
    pub fn admit(&self, force: bool) -> Result<(), PinRefusal> {
        if self.locked {
            Err(PinRefusal::Locked(*self))
        } else if self.final_try && !force {
            Err(PinRefusal::FinalTry(*self))
        } else {
            Ok(())
        }
    }

    /// Does `pin` fit the token's length range? Checked before it is sent: a token that
    /// rejects the length may still count the attempt.
    pub fn check_len(&self, pin: &Pin) -> Result<(), PinRefusal> {
        let len = pin.expose_secret().len();
        if self.accepts_len(len) {
            Ok(())
        } else {
            Err(PinRefusal::LenRange {
                len,
                min: self.min_len,
                max: self.max_len,
            })
        }
    }
}

/// A new PIN typed twice must be the same both times.
pub fn confirm(new: &Pin, again: &Pin) -> Result<(), PinRefusal> {
    if new.expose_secret() == again.expose_secret() {
        Ok(())
    } else {
        Err(PinRefusal::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_flags_a_right_pin_cannot_change_are_unchanged_by_success() {
        let clean = PinState {
            min_len: 4,
            max_len: 16,
            initialized: true,
            ..PinState::default()
        };
        assert!(clean.unchanged_by_success());
        for moved in [
            PinState {
                count_low: true,
                ..clean
            },
            PinState {
                final_try: true,
                ..clean
            },
            PinState {
                locked: true,
                ..clean
            },
            PinState {
                to_be_changed: true,
                ..clean
            },
            PinState {
                default_pin: true,
                ..clean
            },
            PinState {
                tries_left: Some(6),
                ..clean
            },
        ] {
            assert!(!moved.unchanged_by_success(), "{moved:?}");
        }
    }
    fn range(min: usize, max: usize) -> PinState {
        PinState {
            min_len: min,
            max_len: max,
            ..Default::default()
        }
    }

    #[test]
    fn pin_len_range() {
        let p = range(6, 16);
        assert!(!p.accepts_len(5));
        assert!(p.accepts_len(6) && p.accepts_len(16));
        assert!(!p.accepts_len(17));
        assert!(range(4, 0).accepts_len(200));
        assert_eq!(
            p.check_len(&Pin::from("12345")),
            Err(PinRefusal::LenRange {
                len: 5,
                min: 6,
                max: 16
            })
        );
        assert!(p.check_len(&Pin::from("123456")).is_ok());
    }

    #[test]
    fn locked_is_refused_and_the_final_try_needs_force() {
        let locked = PinState {
            locked: true,
            ..Default::default()
        };
        assert_eq!(locked.admit(true), Err(PinRefusal::Locked(locked)));
        let last = PinState {
            final_try: true,
            ..Default::default()
        };
        assert_eq!(last.admit(false), Err(PinRefusal::FinalTry(last)));
        assert!(last.admit(true).is_ok());
        assert!(PinState::default().admit(false).is_ok());
        assert_eq!(PinRefusal::FinalTry(last).code(), Code::PinFinalTry);
    }

    #[test]
    fn confirmation() {
        assert!(confirm(&Pin::from("1"), &Pin::from("1")).is_ok());
        assert_eq!(
            confirm(&Pin::from("1"), &Pin::from("2")),
            Err(PinRefusal::Mismatch)
        );
    }
}
