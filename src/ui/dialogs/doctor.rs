//! 环境检测: `certray doctor`'s report, run as a child process (it loads PKCS#11 modules of
//! its own, which must not happen inside the daemon) on a worker thread.

use std::process::Command;

use eframe::egui::{self, RichText, Ui, Vec2};

use crate::i18n::Lang;
use crate::ui::backend::Services;

use super::widgets::{Job, Poll, Tone, body, busy, footer, header, note, primary, secondary};
use super::{Cx, Dialog, Outcome, window_title};

/// What a run gave: the report's text and whether it found errors.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Report {
    text: String,
    ok: bool,
}

/// Makes the `certray doctor` command for each run.
pub type MakeCommand = Box<dyn Fn() -> Command + Send>;

/// The doctor window.
pub struct Doctor {
    command: MakeCommand,
    job: Option<Job<Result<Report, String>>>,
    report: Option<Result<Report, String>>,
    started: bool,
    copied: bool,
}

impl Doctor {
    /// Runs `backend.doctor_command()`.
    pub fn new(backend: &std::sync::Arc<dyn Services>) -> Doctor {
        let backend = backend.clone();
        Doctor::with_command(Box::new(move || backend.doctor_command()))
    }

    /// Runs the command `make` gives (tests point it at the certray binary).
    pub fn with_command(make: MakeCommand) -> Doctor {
        Doctor {
            command: make,
            job: None,
            report: None,
            started: false,
            copied: false,
        }
    }

    fn run(&mut self, ctx: &egui::Context) {
        let mut cmd = (self.command)();
        self.copied = false;
        self.job = Some(Job::spawn(ctx, "doctor", move || {
            let out = cmd
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| e.to_string())?;
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            let err = String::from_utf8_lossy(&out.stderr);
            if !err.trim().is_empty() {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(err.trim_end());
            }
            Ok(Report {
                text,
                ok: out.status.success(),
            })
        }));
    }
}

impl Dialog for Doctor {
    fn title(&self, lang: Lang) -> String {
        window_title(lang.pick("环境检测", "Diagnostics"), lang)
    }

    fn size(&self) -> Vec2 {
        Vec2::new(700.0, 560.0)
    }

    fn ui(&mut self, ui: &mut Ui, cx: &mut Cx<'_>) -> Outcome {
        let lang = cx.lang;
        let ctx = ui.ctx().clone();
        if !self.started {
            self.started = true;
            self.run(&ctx);
        }
        if let Some(job) = &self.job {
            match job.poll(&ctx) {
                Poll::Pending => {}
                Poll::Done(r) => {
                    self.report = Some(r);
                    self.job = None;
                }
                Poll::Lost => {
                    self.report = Some(Err("worker stopped".into()));
                    self.job = None;
                }
            }
        }
        let running = self.job.is_some();
        let (tone, subtitle) = match (&self.report, running) {
            (_, true) | (None, _) => (Tone::Info, lang.pick("正在检测…", "Checking…")),
            (Some(Ok(r)), false) if r.ok => (
                Tone::Ok,
                lang.pick("检测完成：未发现错误", "Done: no errors found"),
            ),
            (Some(Ok(_)), false) => (
                Tone::Warn,
                lang.pick(
                    "检测完成：发现问题，请按下方提示处理",
                    "Done: problems found, see what to do below",
                ),
            ),
            (Some(Err(_)), false) => (
                Tone::Bad,
                lang.pick("无法运行检测", "The check could not run"),
            ),
        };
        header(
            ui,
            "检",
            lang.pick("环境检测", "Diagnostics"),
            Some(subtitle),
            tone,
        );

        let mut outcome = Outcome::Open;
        let mut again = false;
        footer(ui, "doctor-footer", |ui| {
            if ui.add(primary(lang.pick("关闭", "Close"))).clicked() {
                outcome = Outcome::Close;
            }
            if ui
                .add_enabled(!running, secondary(lang.pick("重新检测", "Check again")))
                .clicked()
            {
                again = true;
            }
            let text = match &self.report {
                Some(Ok(r)) if !running => Some(r.text.clone()),
                _ => None,
            };
            if ui
                .add_enabled(
                    text.is_some(),
                    secondary(lang.pick("复制报告", "Copy report")),
                )
                .clicked()
                && let Some(t) = text
            {
                ui.ctx().copy_text(t);
                self.copied = true;
            }
            if self.copied {
                ui.label(RichText::new(lang.pick("已复制", "Copied")).color(Tone::Ok.color(ui)));
            }
        });

        body(ui, "doctor-body", |ui| {
            if running {
                busy(
                    ui,
                    lang.pick(
                        "正在检测读卡器、驱动和密钥…",
                        "Checking readers, modules and keys…",
                    ),
                );
                return;
            }
            match &self.report {
                Some(Ok(r)) => {
                    egui::ScrollArea::horizontal()
                        .id_salt("doctor-text")
                        .auto_shrink([false, true])
                        .show(ui, |ui| {
                            ui.add(
                                egui::Label::new(RichText::new(&r.text).monospace())
                                    .selectable(true)
                                    .extend(),
                            );
                        });
                }
                Some(Err(e)) => {
                    note(
                        ui,
                        Tone::Bad,
                        &format!(
                            "{}{e}",
                            lang.pick("无法运行 certray doctor：", "Cannot run certray doctor: ")
                        ),
                    );
                }
                None => {}
            }
        });
        if again {
            self.run(&ctx);
        }
        outcome
    }
}
