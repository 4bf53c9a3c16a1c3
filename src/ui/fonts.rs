//! A CJK font for egui: its default fonts have no Chinese glyphs, so without one every
//! Chinese character is a box. The system's CJK font is loaded at run time (such fonts are
//! 10–20 MB, too big to embed) and added after egui's own fonts, so Latin text keeps egui's
//! look and only what they lack comes from the CJK font. On Linux, fontconfig then finds a
//! font for any character still missing (`certray doctor`'s ✗, say), once per character.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use eframe::egui::epaint::text::Blob;
use eframe::egui::{
    self, FallbackRequest, FontData, FontFamily, FontInsert, FontPriority, InsertFontFamily,
};

/// A font file and the face in it to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FontFile {
    pub path: PathBuf,
    /// The face in a collection (`.ttc`): Noto Sans CJK's Simplified Chinese face is 2.
    pub index: u32,
}

/// Known CJK fonts, best first: Simplified Chinese faces where a collection has several.
fn known() -> Vec<FontFile> {
    let f = |path: &str, index| FontFile {
        path: PathBuf::from(path),
        index,
    };
    if cfg!(windows) {
        let dir = std::env::var_os("WINDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(r"C:\Windows"))
            .join("Fonts");
        ["msyh.ttc", "msyh.ttf", "simsun.ttc", "simhei.ttf"]
            .iter()
            .map(|n| FontFile {
                path: dir.join(n),
                index: 0,
            })
            .collect()
    } else if cfg!(target_os = "macos") {
        vec![
            f("/System/Library/Fonts/PingFang.ttc", 0),
            f("/System/Library/Fonts/STHeiti Medium.ttc", 0),
            f("/System/Library/Fonts/STHeiti Light.ttc", 0),
            f("/System/Library/Fonts/Hiragino Sans GB.ttc", 0),
            f("/Library/Fonts/Arial Unicode.ttf", 0),
        ]
    } else {
        vec![
            // Debian, Ubuntu (fonts-noto-cjk): JP, KR, SC, TC, HK.
            f("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
            // Fedora, Arch.
            f(
                "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
                2,
            ),
            f("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 2),
            // Deepin, UOS, Kylin and older desktops.
            f("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
            f("/usr/share/fonts/wqy-microhei/wqy-microhei.ttc", 0),
            f("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
        ]
    }
}

/// Ask fontconfig for its Simplified Chinese sans font; `None` unless the answer really
/// covers zh-cn (fc-match always answers, with DejaVu when nothing fits).
fn fontconfig() -> Option<FontFile> {
    let out = std::process::Command::new("fc-match")
        .args(["-f", "%{file}|%{index}|%{lang}", "sans:lang=zh-cn"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    parse_fc_match(&String::from_utf8_lossy(&out.stdout))
}

/// `FILE|INDEX|LANG|LANG|…` as printed by `fc-match -f '%{file}|%{index}|%{lang}'`.
fn parse_fc_match(s: &str) -> Option<FontFile> {
    let mut parts = s.trim().split('|');
    let path = PathBuf::from(parts.next()?);
    let index = parts.next()?.parse().ok()?;
    if !parts.any(|l| l == "zh-cn") || !path.is_absolute() {
        return None;
    }
    Some(FontFile { path, index })
}

/// The CJK font to use: a known file that exists, else fontconfig's choice (Linux).
pub fn find() -> Option<FontFile> {
    known()
        .into_iter()
        .find(|f| f.path.is_file())
        .or_else(|| if cfg!(unix) { fontconfig() } else { None })
}

/// A font file's bytes, read once per process: every window and test harness shares them.
fn blob(path: &Path) -> std::io::Result<Blob> {
    static FILES: OnceLock<Mutex<HashMap<PathBuf, Blob>>> = OnceLock::new();
    let mut files = FILES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(b) = files.get(path) {
        return Ok(b.clone());
    }
    // Mapped, not read: a CJK font is ~20 MB and a window touches only the glyphs it
    // draws, so only those pages count against the daemon's memory. Font files are
    // replaced by package managers through a new file (rename), which leaves this
    // mapping intact.
    let file = std::fs::File::open(path)?;
    // SAFETY: the mapping is read-only and the file is not truncated in place (see above).
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let b: Blob = Arc::new(map);
    files.insert(path.to_path_buf(), b.clone());
    Ok(b)
}

/// The CJK font, looked for and read once per process.
fn loaded() -> Option<&'static (FontFile, Blob)> {
    static FONT: OnceLock<Option<(FontFile, Blob)>> = OnceLock::new();
    FONT.get_or_init(|| {
        let Some(file) = find() else {
            tracing::warn!(
                "no CJK font found (Linux: install fonts-noto-cjk); Chinese text shows as boxes"
            );
            return None;
        };
        match blob(&file.path) {
            Ok(b) => {
                tracing::debug!(font = %file.path.display(), index = file.index, "CJK font");
                Some((file, b))
            }
            Err(e) => {
                tracing::warn!(font = %file.path.display(), error = %e, "cannot read the CJK font; Chinese text shows as boxes");
                None
            }
        }
    })
    .as_ref()
}

/// A font for a character no installed font has, from fontconfig: the best sans font that
/// covers it (`fc-match -s` sorts by coverage first), checked against `fc-list`'s list of
/// fonts that really have it. Only formats egui reads (TrueType, OpenType).
fn fallback(request: &FallbackRequest<'_>) -> Option<FontInsert> {
    if !cfg!(unix) {
        return None;
    }
    let c = request.cluster.chars().next()?;
    let charset = format!("charset={:x}", u32::from(c));
    let fc = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let sorted = fc(&[
        "fc-match",
        "-s",
        "-f",
        "%{file}|%{index}\n",
        &format!("sans:{charset}"),
    ])?;
    let covering = fc(&[
        "fc-list",
        "-f",
        "%{file}|%{index}\n",
        &format!(":{charset}"),
    ])?;
    let file = pick_fallback(&sorted, &covering)?;
    let data = blob(&file.path).ok()?;
    tracing::debug!(font = %file.path.display(), char = %c, "fallback font");
    Some(FontInsert::new(
        &format!("fallback:{}#{}", file.path.display(), file.index),
        FontData::from_blob(data, file.index),
        Vec::new(),
    ))
}

/// The first font of fontconfig's sorted list that is in the covering list and that egui
/// can read.
fn pick_fallback(sorted: &str, covering: &str) -> Option<FontFile> {
    let covering: std::collections::HashSet<&str> = covering.lines().collect();
    sorted
        .lines()
        .filter(|l| covering.contains(l))
        .filter_map(|l| {
            let (path, index) = l.split_once('|')?;
            let ext = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
            let index = index.parse().ok()?;
            matches!(ext.as_str(), "ttf" | "otf" | "ttc" | "otc").then(|| FontFile {
                path: PathBuf::from(path),
                index,
            })
        })
        .next()
}

/// Give `ctx` a font with Chinese glyphs, after egui's own fonts (proportional and
/// monospace), and fontconfig's fonts for anything else missing. Returns the CJK font;
/// `None` (logged once) when there is none.
pub fn install(ctx: &egui::Context) -> Option<FontFile> {
    if cfg!(unix) {
        ctx.add_font_provider(Arc::new(fallback));
    }
    let (file, data) = loaded()?;
    ctx.add_font(FontInsert::new(
        "certray-cjk",
        FontData::from_blob(data.clone(), file.index),
        vec![
            InsertFontFamily {
                family: FontFamily::Proportional,
                priority: FontPriority::Lowest,
            },
            InsertFontFamily {
                family: FontFamily::Monospace,
                priority: FontPriority::Lowest,
            },
        ],
    ));
    Some(file.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fc_match_answers() {
        assert_eq!(
            parse_fc_match(
                "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc|2|aa|ja|zh-cn|zh-tw"
            ),
            Some(FontFile {
                path: "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc".into(),
                index: 2
            })
        );
        // DejaVu is what fontconfig gives when nothing covers Chinese.
        assert_eq!(
            parse_fc_match("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf|0|aa|af|en"),
            None
        );
        assert_eq!(parse_fc_match(""), None);
        assert_eq!(parse_fc_match("relative.ttf|0|zh-cn"), None);
    }

    #[test]
    fn fallback_takes_the_best_covering_font_egui_reads() {
        let sorted = "/f/Nimbus.pfb|0\n/f/Sans.ttf|0\n/f/Other.ttf|0\n";
        let covering = "/f/Other.ttf|0\n/f/Nimbus.pfb|0\n/f/Sans.ttf|0\n";
        assert_eq!(
            pick_fallback(sorted, covering),
            Some(FontFile {
                path: "/f/Sans.ttf".into(),
                index: 0
            })
        );
        // fc-match always answers; nothing covers the character.
        assert_eq!(pick_fallback(sorted, ""), None);
    }
}
