//! What a test asks of softskf through the environment: the state directory (`SOFTSKF_DIR`),
//! vendor quirks (`SOFTSKF_QUIRKS`) and injected faults (`SOFTSKF_FAULT`). Read once per
//! process. A misspelt quirk or fault makes every call fail loudly, never silently pass.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::types::ULONG;

/// The vendor behaviours softskf can imitate (SKF.md §3.8 and §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quirk {
    /// With no device present, `SKF_EnumDev`'s size query answers `SAR_OK` with 0xFFFFFFC2
    /// and the second call `SAR_FAIL` (Longmai SDK x64 builds without USB).
    EnumGarbageSize,
    /// Name lists end with one NUL, not two (skf-rs: "vendor may not do it").
    NoDoubleNul,
    /// `SKF_CancelWaitForDevEvent` wakes a pending wait only after 1 s, returns itself after
    /// 2 s, and is forgotten when no wait is pending (Longmai).
    CancelLostIfIdle,
    /// The failed try that uses up the retries returns `SAR_PIN_INCORRECT` with 0 left
    /// instead of `SAR_PIN_LOCKED`.
    PinIncorrectAtZero,
    /// 0x80080000 ORed into `DEVINFO.AlgHashCap` (Longmai's `LM_SGD_FINGER_STATUS` bit).
    CapsVendorBits,
    /// `SKF_ExportCertificate` returns PEM text instead of DER (GmSSL's dummy).
    PemCert,
    /// `SKF_GetPINInfo` returns a 64-bit `long` whose upper half is not zero, as a library
    /// built with a LP64 `LONG` may: a loader must read only the low 32 bits.
    GetPinInfoLong,
    /// `SKF_ECCSignData` signs SM3(Z‖input) instead of the given `e` (the kintaiW mock):
    /// the negative control OpenSSL must catch.
    Sm2DoubleHash,
}

impl Quirk {
    pub const ALL: [(&'static str, Quirk); 8] = [
        ("enum-garbage-size", Quirk::EnumGarbageSize),
        ("no-double-nul", Quirk::NoDoubleNul),
        ("cancel-lost-if-idle", Quirk::CancelLostIfIdle),
        ("pin-incorrect-at-zero", Quirk::PinIncorrectAtZero),
        ("caps-vendor-bits", Quirk::CapsVendorBits),
        ("pem-cert", Quirk::PemCert),
        ("getpininfo-long", Quirk::GetPinInfoLong),
        ("sm2-double-hash", Quirk::Sm2DoubleHash),
    ];
}

/// A fault injected into one exported function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Die with SIGSEGV on entry (a vendor library crashing in `SKF_EnumDev`).
    Crash,
    /// Never return.
    Hang,
    /// Return this code at once, doing nothing.
    Rc(ULONG),
    /// Sleep this long on entry, then run normally (e.g. to remove the device "during" a
    /// signature: the call then finds it gone).
    Delay(Duration),
}

#[derive(Debug, Default)]
pub struct Config {
    pub dir: Option<PathBuf>,
    pub quirks: BTreeSet<Quirk>,
    pub faults: Vec<(String, Fault)>,
    /// Why the environment cannot be used; every call then fails with `SAR_FAIL`.
    pub error: Option<String>,
}

impl Config {
    pub fn from_env() -> Config {
        let dir = std::env::var_os("SOFTSKF_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
        let quirks = std::env::var("SOFTSKF_QUIRKS").unwrap_or_default();
        let faults = std::env::var("SOFTSKF_FAULT").unwrap_or_default();
        Config::parse(dir, &quirks, &faults)
    }

    pub fn parse(dir: Option<PathBuf>, quirks: &str, faults: &str) -> Config {
        let mut config = Config {
            dir,
            ..Config::default()
        };
        let mut errors = Vec::new();
        if config.dir.is_none() {
            errors.push("SOFTSKF_DIR is not set".to_string());
        }
        for q in quirks.split(',').map(str::trim).filter(|q| !q.is_empty()) {
            match Quirk::ALL.iter().find(|(name, _)| *name == q) {
                Some((_, quirk)) => {
                    config.quirks.insert(*quirk);
                }
                None => errors.push(format!(
                    "unknown quirk {q:?} in SOFTSKF_QUIRKS (known: {})",
                    Quirk::ALL.map(|(n, _)| n).join(", ")
                )),
            }
        }
        for f in faults.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            match parse_fault(f) {
                Ok(fault) => config.faults.push(fault),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            config.error = Some(errors.join("; "));
        }
        config
    }

    pub fn has(&self, quirk: Quirk) -> bool {
        self.quirks.contains(&quirk)
    }

    pub fn fault(&self, function: &str) -> Option<&Fault> {
        self.faults
            .iter()
            .find(|(f, _)| f == function)
            .map(|(_, fault)| fault)
    }
}

/// `crash:FN`, `hang:FN`, `rc:FN=0x0A000023`, `delay:FN=500` (milliseconds). `FN` may omit
/// the `SKF_` prefix.
fn parse_fault(spec: &str) -> Result<(String, Fault), String> {
    let bad = || {
        format!(
            "bad SOFTSKF_FAULT entry {spec:?} (crash:FN, hang:FN, rc:FN=0x0A000023, delay:FN=MS)"
        )
    };
    let (kind, rest) = spec.split_once(':').ok_or_else(bad)?;
    let (function, value) = match rest.split_once('=') {
        Some((f, v)) => (f, Some(v)),
        None => (rest, None),
    };
    if function.is_empty() {
        return Err(bad());
    }
    let function = if function.starts_with("SKF_") {
        function.to_string()
    } else {
        format!("SKF_{function}")
    };
    let fault = match (kind, value) {
        ("crash", None) => Fault::Crash,
        ("hang", None) => Fault::Hang,
        ("rc", Some(v)) => {
            let v = v.trim();
            let code = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
                Some(hex) => ULONG::from_str_radix(hex, 16),
                None => v.parse(),
            };
            Fault::Rc(code.map_err(|_| bad())?)
        }
        ("delay", Some(v)) => {
            Fault::Delay(Duration::from_millis(v.trim().parse().map_err(|_| bad())?))
        }
        _ => return Err(bad()),
    };
    Ok((function, fault))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quirks_and_faults() {
        let c = Config::parse(
            Some("/tmp/x".into()),
            "pem-cert, sm2-double-hash",
            "crash:EnumDev,rc:SKF_ECCSignData=0x0A000023,hang:SKF_VerifyPIN,delay:RSASignData=250",
        );
        assert_eq!(c.error, None);
        assert!(c.has(Quirk::PemCert) && c.has(Quirk::Sm2DoubleHash));
        assert!(!c.has(Quirk::NoDoubleNul));
        assert_eq!(c.fault("SKF_EnumDev"), Some(&Fault::Crash));
        assert_eq!(c.fault("SKF_ECCSignData"), Some(&Fault::Rc(0x0A00_0023)));
        assert_eq!(c.fault("SKF_VerifyPIN"), Some(&Fault::Hang));
        assert_eq!(
            c.fault("SKF_RSASignData"),
            Some(&Fault::Delay(Duration::from_millis(250)))
        );
        assert_eq!(c.fault("SKF_ConnectDev"), None);
    }

    #[test]
    fn typos_are_errors() {
        let c = Config::parse(Some("/tmp/x".into()), "pem-certs", "");
        assert!(c.error.unwrap().contains("unknown quirk \"pem-certs\""));
        let c = Config::parse(Some("/tmp/x".into()), "", "rc:SKF_EnumDev=zz");
        assert!(c.error.unwrap().contains("bad SOFTSKF_FAULT"));
        let c = Config::parse(None, "", "");
        assert!(c.error.unwrap().contains("SOFTSKF_DIR"));
    }
}
