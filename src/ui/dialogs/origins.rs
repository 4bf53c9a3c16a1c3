//! 已授权网站: the websites allowed to use the certificates, remembered or for this run, each
//! with 撤销 (effective at once).

use eframe::egui::{self, RichText, Ui, Vec2};

use crate::error::Code;
use crate::i18n::Lang;
use crate::text::APPROVED_WEBSITES;

use super::widgets::{Tone, body, footer, header, note, primary, secondary};
use super::{Cx, Dialog, Outcome, window_title};

/// The approvals window.
#[derive(Default)]
pub struct Origins {
    /// The last revocation's result, for the person.
    result: Option<(Tone, String)>,
}

impl Origins {
    pub fn new() -> Origins {
        Origins::default()
    }
}

impl Dialog for Origins {
    fn title(&self, lang: Lang) -> String {
        window_title(APPROVED_WEBSITES.pick(lang), lang)
    }

    fn size(&self) -> Vec2 {
        Vec2::new(520.0, 440.0)
    }

    fn ui(&mut self, ui: &mut Ui, cx: &mut Cx<'_>) -> Outcome {
        let lang = cx.lang;
        header(
            ui,
            "网",
            APPROVED_WEBSITES.pick(lang),
            Some(lang.pick(
                "这些网站可以使用您的证书；签名时仍需输入密码",
                "These websites may use your certificates; signing still needs your PIN",
            )),
            Tone::Info,
        );
        let mut outcome = Outcome::Open;
        footer(ui, "origins-footer", |ui| {
            if ui.add(primary(lang.pick("关闭", "Close"))).clicked() {
                outcome = Outcome::Close;
            }
        });
        let (remembered, session) = cx.backend.origins();
        let mut revoke = None;
        body(ui, "origins-body", |ui| {
            if remembered.is_empty() && session.is_empty() {
                ui.add_space(12.0);
                ui.label(
                    RichText::new(lang.pick(
                        "还没有网站获得授权。网站第一次请求使用证书时，证书助手会询问您。",
                        "No website is approved yet. certray asks you the first time a website wants the certificates.",
                    ))
                    .color(ui.visuals().weak_text_color()),
                );
            } else {
                egui::Grid::new("origins-grid")
                    .num_columns(3)
                    .spacing([12.0, 8.0])
                    .striped(true)
                    .show(ui, |ui| {
                        let kinds = [
                            (&remembered, lang.pick("始终允许", "always")),
                            (&session, lang.pick("仅本次运行", "this run only")),
                        ];
                        for (list, kind) in kinds {
                            for o in list {
                                ui.add(
                                    egui::Label::new(RichText::new(o).monospace()).selectable(true),
                                );
                                ui.label(RichText::new(kind).color(ui.visuals().weak_text_color()));
                                if ui
                                    .add(secondary(lang.pick("撤销", "Revoke")))
                                    .accessible_name(format!(
                                        "{}{o}",
                                        lang.pick("撤销 ", "Revoke ")
                                    ))
                                    .clicked()
                                {
                                    revoke = Some(o.clone());
                                }
                                ui.end_row();
                            }
                        }
                    });
            }
            if let Some((tone, text)) = &self.result {
                ui.add_space(8.0);
                note(ui, *tone, text);
            }
        });
        if let Some(o) = revoke {
            self.result = Some(match cx.backend.revoke_origin(&o) {
                Ok(_) => (
                    Tone::Ok,
                    format!("{}{o}", lang.pick("已撤销：", "Revoked: ")),
                ),
                Err(e) => (
                    Tone::Bad,
                    format!("{}{}{e}", Code::Io.message(lang), lang.pick("：", ": ")),
                ),
            });
        }
        outcome
    }
}
