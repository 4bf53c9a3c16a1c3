//! What every dialog is made of: the header band, label/value rows, notes, the masked PIN
//! field, the button row, and the job that runs a blocking call off the frame.

use std::sync::mpsc;
use std::time::Duration;

use eframe::egui::{
    self, Align, Button, Color32, CornerRadius, Frame, Layout, Margin, Response, RichText, Stroke,
    TextEdit, Ui, Vec2,
};
use zeroize::{Zeroize, Zeroizing};

use crate::i18n::Lang;
use crate::model::Pin;

/// How long a dialog with a job under way waits before looking again, in case the job's
/// own wake-up got lost (a frame that was already running when it came).
pub const POLL: Duration = Duration::from_millis(100);

/// What a coloured element says: the colours follow the light or dark theme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Info,
    Ok,
    Warn,
    Bad,
    Neutral,
}

impl Tone {
    /// The strong colour (text, icons, strokes).
    pub fn color(self, ui: &Ui) -> Color32 {
        let dark = ui.visuals().dark_mode;
        match (self, dark) {
            (Tone::Info, false) => Color32::from_rgb(0x1f, 0x6f, 0xd6),
            (Tone::Info, true) => Color32::from_rgb(0x6c, 0xae, 0xff),
            (Tone::Ok, false) => Color32::from_rgb(0x1e, 0x8e, 0x3e),
            (Tone::Ok, true) => Color32::from_rgb(0x6c, 0xd1, 0x8a),
            (Tone::Warn, false) => Color32::from_rgb(0xb9, 0x6a, 0x00),
            (Tone::Warn, true) => Color32::from_rgb(0xf5, 0xb2, 0x4a),
            (Tone::Bad, false) => Color32::from_rgb(0xc5, 0x22, 0x1f),
            (Tone::Bad, true) => Color32::from_rgb(0xff, 0x7b, 0x72),
            (Tone::Neutral, _) => ui.visuals().weak_text_color(),
        }
    }

    /// The pale background of a band or note in this tone.
    pub fn fill(self, ui: &Ui) -> Color32 {
        let base = ui.visuals().panel_fill;
        let c = self.color(ui);
        // A tint of the tone over the panel, so it reads in both themes.
        let mix = |a: u8, b: u8| ((u16::from(a) * 5 + u16::from(b) * 27) / 32) as u8;
        Color32::from_rgb(
            mix(c.r(), base.r()),
            mix(c.g(), base.g()),
            mix(c.b(), base.b()),
        )
    }
}

/// The band at the top of every dialog: a badge, a title, and a line under it. The badge
/// is one character in a disc of the tone's colour (证, 密, 网…): it reads at a glance and
/// needs no image or emoji font.
pub fn header(ui: &mut Ui, badge: &str, title: &str, subtitle: Option<&str>, tone: Tone) {
    Frame::new()
        .fill(tone.fill(ui))
        .corner_radius(CornerRadius::same(8))
        .inner_margin(Margin::symmetric(14, 10))
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| {
                let (rect, _) = ui.allocate_exact_size(Vec2::splat(40.0), egui::Sense::hover());
                let painter = ui.painter();
                painter.circle_filled(rect.center(), 20.0, tone.color(ui));
                painter.text(
                    rect.center(),
                    egui::Align2::CENTER_CENTER,
                    badge,
                    egui::FontId::proportional(20.0),
                    Color32::WHITE,
                );
                ui.add_space(8.0);
                ui.vertical(|ui| {
                    ui.label(RichText::new(title).size(18.0).strong());
                    if let Some(s) = subtitle {
                        ui.label(RichText::new(s).color(ui.visuals().weak_text_color()));
                    }
                });
            });
        });
    ui.add_space(8.0);
}

/// A boxed note in a tone (a PIN warning, an error, a result).
pub fn note(ui: &mut Ui, tone: Tone, text: &str) -> Response {
    Frame::new()
        .fill(tone.fill(ui))
        .stroke(Stroke::new(1.0, tone.color(ui)))
        .corner_radius(CornerRadius::same(6))
        .inner_margin(Margin::symmetric(10, 6))
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.add(egui::Label::new(RichText::new(text).color(tone.color(ui))).wrap());
        })
        .response
}

/// Rows of label and value, the labels in a column of `key_width` points and the values
/// wrapping in the rest (a `Grid` would shrink wrapping values to nothing).
pub fn rows(ui: &mut Ui, key_width: f32, add: impl FnOnce(&mut Rows<'_>)) {
    ui.spacing_mut().item_spacing.y = 7.0;
    add(&mut Rows { ui, key_width });
}

/// See [`rows`].
pub struct Rows<'a> {
    pub ui: &'a mut Ui,
    key_width: f32,
}

impl Rows<'_> {
    /// One row: the label muted, the value selectable (so it can be copied).
    pub fn row(&mut self, label: &str, value: impl Into<RichText>) {
        self.row_with(label, value, 0.0, |_| {});
    }

    /// A row with something after the value (a copy button) `tail_width` points wide.
    pub fn row_with<R>(
        &mut self,
        label: &str,
        value: impl Into<RichText>,
        tail_width: f32,
        tail: impl FnOnce(&mut Ui) -> R,
    ) -> R {
        let key_width = self.key_width;
        let value = value.into();
        self.ui
            .horizontal_top(|ui| {
                let weak = ui.visuals().weak_text_color();
                ui.allocate_ui_with_layout(
                    Vec2::new(key_width, 0.0),
                    Layout::top_down(Align::Min),
                    |ui| {
                        ui.set_width(key_width);
                        ui.add(egui::Label::new(RichText::new(label).color(weak)).wrap());
                    },
                );
                let gap = ui.spacing().item_spacing.x;
                let w = (ui.available_width() - tail_width - gap).max(40.0);
                ui.allocate_ui_with_layout(Vec2::new(w, 0.0), Layout::top_down(Align::Min), |ui| {
                    ui.set_width(w);
                    ui.add(egui::Label::new(value).selectable(true).wrap());
                });
                tail(ui)
            })
            .inner
    }
}

/// The main button of a dialog (filled in the accent colour).
pub fn primary(text: &str) -> Button<'static> {
    Button::new(
        RichText::new(text.to_string())
            .strong()
            .color(Color32::WHITE),
    )
    .fill(Color32::from_rgb(0x1f, 0x6f, 0xd6))
    .min_size(Vec2::new(92.0, 30.0))
}

/// Any other button of the button row.
pub fn secondary(text: &str) -> Button<'static> {
    Button::new(text.to_string()).min_size(Vec2::new(84.0, 30.0))
}

/// The button row, kept at the bottom of the window whatever the content above it; laid
/// out right to left (the first button added is the rightmost).
pub fn footer<R>(ui: &mut Ui, id: &str, add: impl FnOnce(&mut Ui) -> R) -> R {
    egui::Panel::bottom(id)
        .resizable(false)
        .show_separator_line(true)
        .frame(Frame::new().inner_margin(Margin {
            left: 0,
            right: 0,
            top: 10,
            bottom: 0,
        }))
        .show(ui, |ui| {
            ui.with_layout(Layout::right_to_left(Align::Center), add)
                .inner
        })
        .inner
}

/// The content above the [`footer`], scrolling when it is taller than the window.
pub fn body<R>(ui: &mut Ui, id: &str, add: impl FnOnce(&mut Ui) -> R) -> R {
    egui::ScrollArea::vertical()
        .id_salt(id)
        .auto_shrink([false, false])
        .show(ui, add)
        .inner
}

/// A spinner and what is under way.
pub fn busy(ui: &mut Ui, text: &str) {
    ui.horizontal(|ui| {
        ui.spinner();
        ui.label(text);
    });
}

/// A PIN, admin PIN or unlock code as it is typed: a `Zeroizing` buffer (wiped when the
/// dialog drops it) with room for the longest PIN allowed, so typing never reallocates
/// (which would leave unwiped copies behind).
pub struct PinField {
    buf: Zeroizing<String>,
}

/// The longest PIN the fields take, in characters.
pub const PIN_MAX_CHARS: usize = 64;

impl Default for PinField {
    fn default() -> Self {
        PinField {
            buf: Zeroizing::new(String::with_capacity(PIN_MAX_CHARS * 4)),
        }
    }
}

impl PinField {
    /// Its label, then the masked field named by it (egui_kittest and screen readers find
    /// the field by the label's text).
    pub fn show(&mut self, ui: &mut Ui, label: &str, hint: &str) -> Response {
        let l = ui.label(label);
        let r = ui
            .add(
                TextEdit::singleline(&mut *self.buf)
                    .password(true)
                    .margin(Margin::symmetric(8, 6))
                    .char_limit(PIN_MAX_CHARS)
                    .hint_text(hint.to_string())
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(l.id);
        // egui keeps an undo history of every text field, copies of the text included:
        // a PIN field has none.
        if let Some(mut state) = egui::text_edit::TextEditState::load(ui.ctx(), r.id) {
            state.clear_undoer();
            state.store(ui.ctx(), r.id);
        }
        r
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Length in bytes, as the token counts it.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn as_str(&self) -> &str {
        &self.buf
    }

    /// A copy to send to the token.
    pub fn pin(&self) -> Pin {
        to_pin(&self.buf)
    }

    /// Wipe what was typed.
    pub fn clear(&mut self) {
        // `String::zeroize` wipes the whole allocation and empties it; the capacity goes
        // too, so give it back for the next PIN.
        self.buf.zeroize();
        self.buf.reserve(PIN_MAX_CHARS * 4);
    }
}

/// A [`Pin`] from text, through a `String` of exactly its length (`SecretString::from`
/// shrinks its argument to a `Box<str>`, which would otherwise reallocate and leave the
/// longer buffer behind unwiped).
pub fn to_pin(s: &str) -> Pin {
    let mut exact = String::with_capacity(s.len());
    exact.push_str(s);
    Pin::from(exact)
}

/// A blocking call run on its own thread; the dialog looks for the result each frame.
pub struct Job<T> {
    rx: mpsc::Receiver<T>,
}

/// What a [`Job`] has to say this frame.
pub enum Poll<T> {
    Pending,
    Done(T),
    /// The thread died without answering (a panic).
    Lost,
}

impl<T: Send + 'static> Job<T> {
    /// Start `f` on a thread; it wakes `ctx` when done, so the next frame shows the result.
    pub fn spawn(
        ctx: &egui::Context,
        name: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Job<T> {
        let (tx, rx) = mpsc::channel();
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let _ = tx.send(f());
                ctx.request_repaint();
            });
        if let Err(e) = spawned {
            // The sender went with the closure: the job reads as lost.
            tracing::error!(error = %e, "cannot start a dialog worker thread");
        }
        Job { rx }
    }

    /// Look for the result; asks for another frame while it is pending.
    pub fn poll(&self, ctx: &egui::Context) -> Poll<T> {
        match self.rx.try_recv() {
            Ok(v) => Poll::Done(v),
            Err(mpsc::TryRecvError::Empty) => {
                ctx.request_repaint_after(POLL);
                Poll::Pending
            }
            Err(mpsc::TryRecvError::Disconnected) => Poll::Lost,
        }
    }
}

/// `Enter` pressed this frame while no button or other widget holds the focus (a focused
/// button takes Enter itself).
pub fn enter_unfocused(ui: &Ui) -> bool {
    ui.input(|i| i.key_pressed(egui::Key::Enter)) && ui.memory(|m| m.focused().is_none())
}

/// `1024` → `1 KB`, `1536` → `1.5 KB`, `10` → `10 字节`.
pub fn human_bytes(n: u64, lang: Lang) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    let (v, unit) = if n < 1024 {
        return format!("{n}{}", lang.pick(" 字节", " bytes"));
    } else if f < KIB * KIB {
        (f / KIB, "KB")
    } else if f < KIB * KIB * KIB {
        (f / (KIB * KIB), "MB")
    } else {
        (f / (KIB * KIB * KIB), "GB")
    };
    let s = format!("{v:.1}");
    let s = s.strip_suffix(".0").unwrap_or(&s);
    format!("{s} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn bytes_read_like_a_person_writes_them() {
        assert_eq!(human_bytes(10, Lang::ZhCn), "10 字节");
        assert_eq!(human_bytes(10, Lang::En), "10 bytes");
        assert_eq!(human_bytes(1024, Lang::ZhCn), "1 KB");
        assert_eq!(human_bytes(1536, Lang::En), "1.5 KB");
        assert_eq!(human_bytes(16 * 1024 * 1024, Lang::En), "16 MB");
    }

    #[test]
    fn pin_field_keeps_its_room_and_wipes() {
        let mut f = PinField::default();
        let cap = f.buf.capacity();
        f.buf.push_str("123456");
        assert_eq!(f.pin().expose_secret(), "123456");
        assert_eq!(f.buf.capacity(), cap, "typing did not reallocate");
        f.clear();
        assert!(f.is_empty());
        assert!(f.buf.capacity() >= PIN_MAX_CHARS * 4);
    }
}
