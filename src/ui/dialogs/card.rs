//! The certificate card (证书信息): who the certificate names, how long it is good for, what
//! the key may do and which key holds it, with the seal image when the key has one. Shown
//! when a key goes in and from the tray menu.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use eframe::egui::{self, RichText, Ui, Vec2};
use time::OffsetDateTime;

use crate::cert::{self, Certificate};
use crate::error::Code;
use crate::i18n::Lang;
use crate::model::CertEntry;
use crate::model::Seal as TokenSeal;
use crate::model::{CertId, TokenId};
use crate::text;

use super::facts::{
    days_text, issuer_text, kind, serial_text, status_tone, unverified_texts, usage_text,
    uscc_text, validity_text,
};
use super::widgets::{
    Rows, Tone, body, enter_unfocused, footer, header, note, primary, rows, secondary,
};
use super::{Cx, Dialog, DialogRequest, Outcome, window_title};
use crate::ui::backend::Services;

/// How an exported certificate is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// `.cer`: the DER bytes, as Windows and CA helpers exchange them.
    Der,
    /// `.pem`: base64 with BEGIN/END lines.
    Pem,
}

impl ExportFormat {
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Der => "cer",
            ExportFormat::Pem => "pem",
        }
    }

    /// The file's bytes.
    pub fn encode(self, der: &[u8]) -> Vec<u8> {
        match self {
            ExportFormat::Der => der.to_vec(),
            ExportFormat::Pem => cert::to_pem(der).into_bytes(),
        }
    }
}

/// The certificate card.
pub struct Card {
    cert_id: CertId,
    token_id: TokenId,
    /// Who the certificate named, for the message once it has gone.
    owner: String,
    /// Where 导出证书 saves; `None`: the user's Downloads folder.
    export_dir: Option<PathBuf>,
    /// The format choice of 导出证书 is showing.
    choosing: bool,
    /// The last export or open-folder result.
    exported: Option<Result<PathBuf, String>>,
    seal: Option<Seal>,
}

/// The token's seal image, decoded once.
struct Seal {
    bytes: Arc<Vec<u8>>,
    view: SealView,
}

enum SealView {
    Image(egui::TextureHandle),
    /// Why it is not shown.
    Note(String),
}

impl Card {
    /// The card for a certificate; `None` when it is not (or no longer) there.
    pub fn new(backend: &dyn Services, cert_id: &CertId) -> Option<Card> {
        let entry = backend.certificate(cert_id)?;
        Some(Card {
            cert_id: entry.id.clone(),
            token_id: entry.token_id.clone(),
            owner: owner_of(&entry),
            export_dir: None,
            choosing: false,
            exported: None,
            seal: None,
        })
    }

    /// Save exports into `dir` instead of the Downloads folder.
    pub fn with_export_dir(mut self, dir: impl Into<PathBuf>) -> Card {
        self.export_dir = Some(dir.into());
        self
    }

    /// The card's view once the certificate has gone: say so, and offer only 关闭.
    fn gone(&self, ui: &mut Ui, lang: Lang, token_there: bool) -> Outcome {
        let code = if token_there {
            Code::CertNotFound
        } else {
            Code::TokenRemoved
        };
        header(
            ui,
            "证",
            &self.owner,
            Some(code.message(lang)),
            Tone::Neutral,
        );
        let close = footer(ui, "card-footer", |ui| {
            ui.add(primary(lang.pick("关闭", "Close"))).clicked()
        });
        body(ui, "card-body", |ui| {
            note(
                ui,
                Tone::Warn,
                &format!(
                    "{}{}",
                    lang.pick(
                        "这张证书已不在密钥中（密钥可能已拔出）。",
                        "This certificate is no longer on the key (it may have been pulled out). "
                    ),
                    code.hint(lang)
                ),
            );
        });
        if close || enter_unfocused(ui) {
            Outcome::Close
        } else {
            Outcome::Open
        }
    }

    fn export(&mut self, entry: &CertEntry, format: ExportFormat, lang: Lang) {
        let dir = self.export_dir.clone().unwrap_or_else(default_export_dir);
        let serial = match &entry.parsed {
            Ok(c) => c.serial.clone(),
            Err(_) => entry.sha256.get(..16).unwrap_or(&entry.sha256).to_string(),
        };
        self.exported = Some(
            export(&entry.der, &owner_of(entry), &serial, format, &dir)
                .map_err(|e| format!("{}{}{e}", Code::Io.message(lang), lang.pick("：", ": "))),
        );
        self.choosing = false;
    }

    fn seal_view(&mut self, ctx: &egui::Context, seal: &TokenSeal, lang: Lang) -> &SealView {
        let fresh = self
            .seal
            .as_ref()
            .is_none_or(|s| !Arc::ptr_eq(&s.bytes, &seal.bytes));
        if fresh {
            let view = match seal.format {
                "png" => match decode_png(&seal.bytes) {
                    Ok(img) => SealView::Image(ctx.load_texture(
                        "certray-seal",
                        img,
                        egui::TextureOptions::LINEAR,
                    )),
                    Err(e) => SealView::Note(format!(
                        "{}{e}",
                        lang.pick("签章图片无法显示：", "The seal image cannot be shown: ")
                    )),
                },
                other => SealView::Note(format!(
                    "{}{}{}",
                    lang.pick("签章图片为 ", "The seal image is "),
                    other.to_ascii_uppercase(),
                    lang.pick(" 格式，暂不能在此显示", "; it cannot be shown here yet")
                )),
            };
            self.seal = Some(Seal {
                bytes: seal.bytes.clone(),
                view,
            });
        }
        &self.seal.as_ref().expect("just set").view
    }
}

impl Dialog for Card {
    fn title(&self, lang: Lang) -> String {
        window_title(lang.pick("证书信息", "Certificate"), lang)
    }

    fn size(&self) -> Vec2 {
        // Room for the seal only when the key has one: no empty band under the facts.
        Vec2::new(560.0, if self.seal.is_some() { 580.0 } else { 460.0 })
    }

    fn ui(&mut self, ui: &mut Ui, cx: &mut Cx<'_>) -> Outcome {
        let lang = cx.lang;
        let snap = cx.backend.snapshot();
        let Some(entry) = snap.certificate(&self.cert_id) else {
            let token_there = snap.token(&self.token_id).is_some();
            return self.gone(ui, lang, token_there);
        };
        let token = snap.token(&entry.token_id);
        let now = OffsetDateTime::now_utc();
        let warning_days = cx.backend.warning_days();

        match &entry.parsed {
            Ok(c) => {
                let tone = status_tone(c.status(now, warning_days));
                header(
                    ui,
                    "证",
                    &c.owner(),
                    Some(&days_text(c, now, warning_days, lang)),
                    tone,
                );
            }
            Err(_) => header(
                ui,
                "证",
                &entry.label,
                Some(Code::CertInvalid.message(lang)),
                Tone::Bad,
            ),
        }

        let mut outcome = Outcome::Open;
        let mut export = None;
        footer(ui, "card-footer", |ui| {
            if ui.add(primary(lang.pick("关闭", "Close"))).clicked() {
                outcome = Outcome::Close;
            }
            if ui.add(secondary(lang.pick("导出证书", "Export"))).clicked() {
                self.choosing = !self.choosing;
                self.exported = None;
            }
            if ui
                .add(secondary(lang.pick("修改密码", "Change PIN")))
                .clicked()
            {
                cx.open.push(DialogRequest::ChangePin {
                    token_id: entry.token_id.clone(),
                });
            }
            if ui
                .add(secondary(lang.pick("查看证书", "Details")))
                .clicked()
            {
                cx.open.push(DialogRequest::Details {
                    cert_id: entry.id.clone(),
                });
            }
        });

        body(ui, "card-body", |ui| {
            // A key often holds two certificates (signing and encryption): tabs.
            let siblings: Vec<&CertEntry> = snap
                .certificates
                .iter()
                .filter(|c| c.token_id == entry.token_id)
                .collect();
            if siblings.len() > 1 {
                ui.horizontal_wrapped(|ui| {
                    for s in &siblings {
                        if ui
                            .selectable_label(s.id == self.cert_id, tab_text(s, lang))
                            .clicked()
                            && s.id != self.cert_id
                        {
                            self.cert_id = s.id.clone();
                            self.owner = owner_of(s);
                            self.exported = None;
                            self.choosing = false;
                        }
                    }
                });
                ui.add_space(6.0);
            }

            rows(ui, KEY_WIDTH, |r| {
                match &entry.parsed {
                    Ok(c) => cert_rows(r, entry, c, now, warning_days, lang),
                    Err(e) => {
                        r.row(lang.pick("错误", "Error"), e.to_string());
                        r.row("SHA-256", entry.sha256.clone());
                    }
                }
                if let Some(t) = token {
                    r.row(
                        lang.pick("介质类型", "Key model"),
                        format!("{} {}", t.manufacturer, t.model).trim().to_string(),
                    );
                    r.row(lang.pick("介质序列号", "Key serial"), t.serial.clone());
                }
            });
            if let Some(seal) = token.and_then(|t| t.seal.as_ref()) {
                ui.add_space(8.0);
                ui.label(
                    RichText::new(lang.pick("签章图片", "Seal image"))
                        .color(ui.visuals().weak_text_color()),
                );
                match self.seal_view(ui.ctx(), seal, lang) {
                    SealView::Image(tex) => {
                        let size = fit(tex.size_vec2(), Vec2::new(220.0, 160.0));
                        ui.add(
                            egui::Image::from_texture((tex.id(), size))
                                .alt_text(lang.pick("签章图片", "Seal image")),
                        );
                    }
                    SealView::Note(n) => {
                        note(ui, Tone::Neutral, n);
                    }
                }
            }

            if self.choosing {
                ui.add_space(8.0);
                ui.horizontal_wrapped(|ui| {
                    ui.label(lang.pick("导出格式：", "Export as:"));
                    if ui
                        .add(secondary(lang.pick("保存为 .cer", "Save as .cer")))
                        .on_hover_text(lang.pick("DER 二进制格式", "binary DER"))
                        .clicked()
                    {
                        export = Some(ExportFormat::Der);
                    }
                    if ui
                        .add(secondary(lang.pick("保存为 .pem", "Save as .pem")))
                        .on_hover_text(lang.pick("Base64 文本格式", "base64 text"))
                        .clicked()
                    {
                        export = Some(ExportFormat::Pem);
                    }
                });
            }
            let mut open_failed = None;
            match &self.exported {
                Some(Ok(path)) => {
                    ui.add_space(8.0);
                    note(
                        ui,
                        Tone::Ok,
                        &format!(
                            "{}{}",
                            lang.pick("证书已保存到：", "Saved to: "),
                            path.display()
                        ),
                    );
                    if ui
                        .add(secondary(lang.pick("打开所在文件夹", "Open folder")))
                        .clicked()
                        && let Some(dir) = path.parent()
                        && let Err(e) = crate::ui::open(dir)
                    {
                        open_failed = Some(format!(
                            "{}{e}",
                            lang.pick("无法打开文件夹：", "Cannot open the folder: ")
                        ));
                    }
                }
                Some(Err(e)) => {
                    ui.add_space(8.0);
                    note(ui, Tone::Bad, e);
                }
                None => {}
            }
            if let Some(e) = open_failed {
                self.exported = Some(Err(e));
            }
        });

        if let Some(format) = export {
            self.export(entry, format, lang);
        }
        if enter_unfocused(ui) {
            outcome = Outcome::Close;
        }
        outcome
    }
}

/// The width of the card's label column.
const KEY_WIDTH: f32 = 120.0;

fn cert_rows(
    r: &mut Rows<'_>,
    e: &CertEntry,
    c: &Certificate,
    now: OffsetDateTime,
    warning_days: u32,
    lang: Lang,
) {
    let holder = c.holder();
    r.row(text::HOLDER.pick(lang), holder.name);
    if let Some(o) = holder.organization {
        r.row(text::ORGANIZATION.pick(lang), o);
    }
    if let Some((text, valid)) = uscc_text(c, lang) {
        let mut t = RichText::new(text).monospace();
        if !valid {
            t = t.color(Tone::Bad.color(r.ui));
        }
        r.row(lang.pick("统一社会信用代码", "USCC"), t);
    }
    for u in unverified_texts(c, lang) {
        let t = RichText::new(u).color(Tone::Warn.color(r.ui));
        r.row(text::UNVERIFIED_ID.pick(lang), t);
    }
    r.row(
        lang.pick("证书序列号", "Serial"),
        RichText::new(serial_text(&c.serial)).monospace(),
    );
    r.row(
        lang.pick("颁发者", "Issuer"),
        c.issuer
            .cn
            .clone()
            .or_else(|| c.issuer.o.clone())
            .unwrap_or_else(|| c.issuer.dn.clone()),
    );
    let (issuer, tone) = issuer_text(e.issuer.as_ref(), lang);
    let mut t = RichText::new(issuer).color(tone.color(r.ui));
    if tone != Tone::Neutral {
        t = t.strong();
    }
    r.row(text::ISSUER_CHECK.pick(lang), t);
    r.row(lang.pick("有效期", "Valid"), validity_text(c, lang));
    let status = c.status(now, warning_days);
    let color = status_tone(status).color(r.ui);
    r.row(
        lang.pick("状态", "Status"),
        RichText::new(days_text(c, now, warning_days, lang))
            .strong()
            .color(color),
    );
    r.row(lang.pick("用途", "Usage"), usage_text(c, lang));
}

/// A tab's text: `签名证书 · 北京某某有限公司`.
fn tab_text(e: &CertEntry, lang: Lang) -> String {
    match &e.parsed {
        Ok(c) => format!("{} · {}", kind(c, lang), short(&c.owner(), 14)),
        Err(_) => format!("{} · {}", lang.pick("无法解析", "unreadable"), e.label),
    }
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

fn owner_of(e: &CertEntry) -> String {
    match &e.parsed {
        Ok(c) => c.owner(),
        Err(_) => e.label.clone(),
    }
}

/// Scale `size` down (never up) to fit in `max`, keeping its shape.
fn fit(size: Vec2, max: Vec2) -> Vec2 {
    let k = (max.x / size.x).min(max.y / size.y).min(1.0);
    size * k
}

/// Where exports go: the Downloads folder, else the home folder.
pub fn default_export_dir() -> PathBuf {
    let user = directories::UserDirs::new();
    user.as_ref()
        .and_then(|u| u.download_dir().map(Path::to_path_buf))
        .or_else(|| user.as_ref().map(|u| u.home_dir().to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `<owner>-<serial>.cer`, with characters no file system takes replaced.
pub fn export_file_name(owner: &str, serial: &str, format: ExportFormat) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_control()
                    || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
                {
                    '_'
                } else {
                    c
                }
            })
            .collect::<String>()
            .trim()
            .trim_matches('.')
            .to_string()
    };
    let mut owner = clean(owner);
    if owner.is_empty() {
        owner = "certificate".into();
    }
    // Long names hit file-name limits (255 bytes) with Chinese text.
    let owner: String = owner.chars().take(60).collect();
    format!("{owner}-{}.{}", clean(serial), format.extension())
}

/// Write the certificate into `dir` (made if missing) and return the file's path. An
/// existing file with other content is kept: the new one gets ` (2)`, ` (3)`… added.
pub fn export(
    der: &[u8],
    owner: &str,
    serial: &str,
    format: ExportFormat,
    dir: &Path,
) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let bytes = format.encode(der);
    let name = export_file_name(owner, serial, format);
    let (stem, ext) = name.rsplit_once('.').unwrap_or((&name, ""));
    for n in 1..1000 {
        let path = if n == 1 {
            dir.join(&name)
        } else {
            dir.join(format!("{stem} ({n}).{ext}"))
        };
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(&bytes)?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Exporting the same certificate again finds its earlier file.
                if fs::read(&path).is_ok_and(|old| old == bytes) {
                    return Ok(path);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("too many files with that name"))
}

/// Decode a PNG (any colour type and bit depth) into an image egui can show.
pub fn decode_png(bytes: &[u8]) -> Result<egui::ColorImage, String> {
    let (rgba, w, h) = crate::ui::icons::decode_rgba(bytes)?;
    if w == 0 || h == 0 || w > 4096 || h > 4096 {
        return Err(format!("unsupported size {w}×{h}"));
    }
    Ok(egui::ColorImage::from_rgba_unmultiplied(
        [w as usize, h as usize],
        &rgba,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(color: png::ColorType, w: u32, h: u32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        writer.write_image_data(data).unwrap();
        writer.finish().unwrap();
        out
    }

    #[test]
    fn seal_png_decodes_to_rgba() {
        let rgb = png(png::ColorType::Rgb, 2, 1, &[255, 0, 0, 0, 0, 255]);
        let img = decode_png(&rgb).unwrap();
        assert_eq!(img.size, [2, 1]);
        assert_eq!(img.pixels[0], egui::Color32::from_rgb(255, 0, 0));
        assert_eq!(img.pixels[1], egui::Color32::from_rgb(0, 0, 255));
        let gray = png(png::ColorType::Grayscale, 1, 1, &[7]);
        assert_eq!(
            decode_png(&gray).unwrap().pixels[0],
            egui::Color32::from_gray(7)
        );
        assert!(decode_png(&rgb[..rgb.len() - 20]).is_err());
    }

    #[test]
    fn export_names_and_files() {
        assert_eq!(
            export_file_name("北京云杉/测试:公司", "8a3f01", ExportFormat::Der),
            "北京云杉_测试_公司-8a3f01.cer"
        );
        assert_eq!(
            export_file_name("..", "01", ExportFormat::Pem),
            "certificate-01.pem"
        );
        let dir = tempfile::tempdir().unwrap();
        let der = b"\x30\x03\x02\x01\x01".to_vec();
        let a = export(&der, "张三", "01", ExportFormat::Der, dir.path()).unwrap();
        assert_eq!(fs::read(&a).unwrap(), der);
        let again = export(&der, "张三", "01", ExportFormat::Der, dir.path()).unwrap();
        assert_eq!(again, a, "the same certificate again: the same file");
        let other = export(b"\x30\x00", "张三", "01", ExportFormat::Der, dir.path()).unwrap();
        assert_eq!(other.file_name().unwrap(), "张三-01 (2).cer");
        let pem = export(
            &der,
            "张三",
            "01",
            ExportFormat::Pem,
            &dir.path().join("new"),
        )
        .unwrap();
        assert_eq!(fs::read_to_string(pem).unwrap(), cert::to_pem(&der));
    }
}
