//! Which PKCS#11 module serves an inserted card, by its ATR (with an optional mask, as Web
//! eID and Fortify match cards): the config's `[[cards]]` first, then a built-in table from
//! shared/docs/VENDOR-MODULES.md. A card nobody claims falls back to the configured modules.

use std::path::PathBuf;

use crate::config::CardConfig;

/// One known card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardEntry {
    pub name: String,
    atr: Vec<u8>,
    mask: Vec<u8>,
    /// Match only the first `atr.len()` bytes (vendor tables give ATR prefixes).
    prefix: bool,
    /// Modules that serve it, preferred first; empty when no PKCS#11 module is known.
    pub modules: Vec<PathBuf>,
}

impl CardEntry {
    /// Whether a card's ATR matches: equal length (or a prefix entry) and equal under the mask.
    pub fn matches(&self, atr: &[u8]) -> bool {
        let len_ok = if self.prefix {
            atr.len() >= self.atr.len()
        } else {
            atr.len() == self.atr.len()
        };
        len_ok
            && self
                .atr
                .iter()
                .zip(&self.mask)
                .zip(atr)
                .all(|((a, m), c)| a & m == c & m)
    }
}

/// Hex bytes with optional spaces or colons: `"3B 95 13"`, `"3B:95:13"`, `"3b9513"`.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return Err(format!("`{text}` is not an even number of hex digits"));
    }
    hex::decode(&digits).map_err(|e| format!("`{text}`: {e}"))
}

pub use crate::model::event::format_atr;

/// The card table: configured entries, then built-in ones.
#[derive(Debug, Clone)]
pub struct Registry {
    entries: Vec<CardEntry>,
}

impl Registry {
    /// The config's `[[cards]]` followed by the built-in table. An entry whose ATR or mask is
    /// not hex, or whose mask length differs from its ATR's, is an error naming it.
    pub fn new(cards: &[CardConfig]) -> Result<Registry, String> {
        let mut entries = Vec::new();
        for (i, c) in cards.iter().enumerate() {
            let what = format!(
                "[[cards]] #{} ({})",
                i + 1,
                c.name.as_deref().unwrap_or(&c.atr)
            );
            let atr = parse_hex(&c.atr).map_err(|e| format!("{what}: atr {e}"))?;
            let mask = match &c.mask {
                Some(m) => parse_hex(m).map_err(|e| format!("{what}: mask {e}"))?,
                None => vec![0xFF; atr.len()],
            };
            if mask.len() != atr.len() {
                return Err(format!(
                    "{what}: the mask has {} bytes, the ATR {}",
                    mask.len(),
                    atr.len()
                ));
            }
            entries.push(CardEntry {
                name: c.name.clone().unwrap_or_else(|| format_atr(&atr)),
                atr,
                mask,
                prefix: false,
                modules: vec![c.module.clone()],
            });
        }
        entries.extend(built_in());
        Ok(Registry { entries })
    }

    /// The first entry that matches the card.
    pub fn lookup(&self, atr: &[u8]) -> Option<&CardEntry> {
        self.entries.iter().find(|e| e.matches(atr))
    }
}

fn built_in() -> Vec<CardEntry> {
    #[cfg(target_os = "windows")]
    let (castle, opensc, watchdata) = (
        "C:\\Windows\\System32\\eps2003csp11.dll",
        "C:\\Windows\\System32\\opensc-pkcs11.dll",
        "C:\\Windows\\System32\\WDPKCS.dll",
    );
    #[cfg(target_os = "macos")]
    let (castle, opensc, watchdata) = (
        "/usr/local/lib/libcastle.1.0.0.dylib",
        "/Library/OpenSC/lib/opensc-pkcs11.so",
        "/usr/local/lib/libwdpkcs.dylib",
    );
    #[cfg(not(any(target_os = "windows", target_os = "macos")))]
    let (castle, opensc, watchdata) = (
        "/usr/lib/libcastle.so.1.0.0",
        "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
        "/usr/lib/watchdata/ICP/lib/libwdpkcs_icp.so",
    );
    let entry = |name: &str, atr: &str, prefix: bool, modules: &[&str]| {
        let atr = parse_hex(atr).expect("built-in ATR");
        CardEntry {
            name: name.into(),
            mask: vec![0xFF; atr.len()],
            atr,
            prefix,
            modules: modules.iter().map(PathBuf::from).collect(),
        }
    };
    vec![
        // Feitian ePass2003 (S1, S2, S10): the vendor's libcastle first, OpenSC's epass2003 driver next.
        entry(
            "Feitian ePass2003",
            "3B9F958131FE9F006646530510063171DF000000000024",
            false,
            &[castle, opensc],
        ),
        entry(
            "Feitian ePass2003",
            "3B9F958131FE9F006646530510323871DF000000000019",
            false,
            &[castle, opensc],
        ),
        entry(
            "Feitian ePass2003",
            "3B9F958131FE9F006646530501001171DF000003900080",
            false,
            &[opensc, castle],
        ),
        entry(
            "Feitian ePass2003",
            "3BD518FF8191FE1FC38073C821100A",
            false,
            &[castle, opensc],
        ),
        entry(
            "Feitian ePass2003",
            "3B9F958131FE9F0066465305",
            true,
            &[opensc, castle],
        ),
        // Feitian ePass3000GM (NETCA registration): SM2 keys served through SKF only.
        entry("Feitian ePass3000GM", "3B9F958131FE9F0066474405", true, &[]),
        // Watchdata (S3, S9).
        entry(
            "Watchdata USB Key",
            "3B6E00005744361969869302211815500E2B",
            false,
            &[watchdata],
        ),
        entry(
            "Watchdata USB Key",
            "3B6D00005744364101869312113C1970AF",
            false,
            &[watchdata],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(atr: &str, mask: Option<&str>, module: &str) -> CardConfig {
        CardConfig {
            atr: atr.into(),
            mask: mask.map(Into::into),
            module: module.into(),
            name: None,
        }
    }

    #[test]
    fn config_entries_come_first_and_masks_apply() {
        let reg = Registry::new(&[card(
            "3B 95 13 81 01 80 73 FF 01 00 00",
            Some("FF FF FF FF FF FF FF FF FF FF 00"),
            "/v.so",
        )])
        .unwrap();
        let vicc = parse_hex("3B 95 13 81 01 80 73 FF 01 00 0B").unwrap();
        assert_eq!(
            reg.lookup(&vicc).unwrap().modules,
            vec![PathBuf::from("/v.so")]
        );
        let other = parse_hex("3B 95 13 81 01 80 73 FF 02 00 0B").unwrap();
        assert!(reg.lookup(&other).is_none());
        // Length must match for full entries.
        assert!(reg.lookup(&vicc[..10]).is_none());
    }

    #[test]
    fn built_in_feitian_prefix_and_exact() {
        let reg = Registry::new(&[]).unwrap();
        let epass = parse_hex("3B9F958131FE9F006646530510063171DF000000000024").unwrap();
        assert_eq!(reg.lookup(&epass).unwrap().name, "Feitian ePass2003");
        let other_epass = parse_hex("3B9F958131FE9F0066465305AABBCCDDDF000000000011").unwrap();
        assert_eq!(reg.lookup(&other_epass).unwrap().name, "Feitian ePass2003");
        let gm = parse_hex("3B9F958131FE9F006647440501020304050607080910").unwrap();
        let e = reg.lookup(&gm).unwrap();
        assert_eq!(e.name, "Feitian ePass3000GM");
        assert!(e.modules.is_empty());
        assert!(
            reg.lookup(&parse_hex("3B 95 13 81 01 80 73 FF 01 00 0B").unwrap())
                .is_none()
        );
    }

    #[test]
    fn bad_config_entries_are_named() {
        let e = Registry::new(&[card("3B 9", None, "/v.so")]).unwrap_err();
        assert!(e.contains("#1") && e.contains("atr"), "{e}");
        let e = Registry::new(&[card("3B 95", Some("FF"), "/v.so")]).unwrap_err();
        assert!(e.contains("mask"), "{e}");
        assert_eq!(format_atr(&[0x3b, 0x95]), "3B 95");
    }
}
