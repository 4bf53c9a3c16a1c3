//! The command line: `certray list|show|sign|pin|watch|run|demo|doctor|…`.
//!
//! This file parses the arguments ([`args`]), sets up logging, runs the command (one file
//! per command in `cli/`) and turns a [`Failure`] into its message and exit code. Errors
//! print their code, the message in the user's language and a hint; with `--json` they
//! print the bridge's error object instead. Exit codes are [`Code::exit_code`] (documented
//! in the README); clap's usage errors exit with 2.
//!
//! Commands call the core ([`crate::core::Live`], [`crate::core::Signing`]); `run` and
//! `demo` hand over to [`crate::daemon`]. Only `demo` reaches `token` (to provision the
//! SoftHSM demo token) and `skf-host` (which is an SKF library's process).

mod args;
mod audit;
mod autostart;
mod config;
mod demo;
mod doctor;
mod inspect;
mod list;
mod origins;
mod pin;
mod pin_entry;
pub(crate) mod render;
mod run;
mod show;
mod sign;
mod skf_host;
mod table;
mod watch;
mod xtx;

use std::path::{Path, PathBuf};

use clap::Parser;

use crate::bridge::wire::ErrorDto;
use crate::config::Config;
use crate::core::{self, Live, LiveOptions};
use crate::error::Code;
use crate::i18n::Lang;
use crate::model::{PinRefusal, PinState};

use args::{Cli, Command};

/// A failed command: the code the user sees plus what helps act on it.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub detail: Option<String>,
    pub pin: Option<PinState>,
}

impl Failure {
    fn new(code: Code, detail: impl Into<String>) -> Failure {
        Failure {
            code,
            detail: Some(detail.into()),
            pin: None,
        }
    }
}

impl From<core::Error> for Failure {
    fn from(e: core::Error) -> Self {
        Failure {
            code: e.code(),
            pin: e.pin_state(),
            detail: Some(e.to_string()),
        }
    }
}

impl From<PinRefusal> for Failure {
    fn from(e: PinRefusal) -> Self {
        Failure {
            code: e.code(),
            pin: e.pin_state(),
            detail: None,
        }
    }
}

impl From<crate::token::Error> for Failure {
    fn from(e: crate::token::Error) -> Self {
        core::Error::from(e).into()
    }
}

impl From<crate::config::Error> for Failure {
    fn from(e: crate::config::Error) -> Self {
        Failure::new(e.code(), e.to_string())
    }
}

impl From<crate::daemon::Error> for Failure {
    fn from(e: crate::daemon::Error) -> Self {
        Failure {
            code: e.code(),
            pin: e.pin_state(),
            detail: Some(e.to_string()),
        }
    }
}

/// What every command gets: the language and `--config`.
struct Ctx {
    lang: Lang,
    config_path: Option<PathBuf>,
}

impl Ctx {
    fn config(&self) -> Result<Config, Failure> {
        Ok(Config::load(self.config_path.as_deref())?.0)
    }

    /// The inventory, read once, for one command.
    fn inventory(&self, config: &Config) -> Result<Live, Failure> {
        let live = Live::start(config, LiveOptions::once())?;
        self.warn_failures(live.failures());
        Ok(live)
    }

    /// One warning line per module that could not be loaded, with its path and reason.
    fn warn_failures(&self, failures: &[core::LoadFailure]) {
        for f in failures {
            eprintln!(
                "{}: {} {} — {}",
                self.lang.pick("警告", "warning"),
                Code::ModuleLoadFailed.message(self.lang),
                f.path.display(),
                f.reason
            );
        }
    }
}

/// Parse the arguments, run the command, return the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let lang = cli
        .lang
        .as_deref()
        .map_or_else(Lang::from_env, Lang::from_locale);
    if cli.command.shows_tray() && !crate::ui::tray::linked() && crate::ui::display_available() {
        // This executable has no tray (on Linux `certray` leaves GTK out): hand the
        // process to the one that has, before any thread or log file exists.
        let e = crate::platform::exec_beside(crate::ui::tray::DESKTOP_EXE);
        eprintln!(
            "{}{e}",
            lang.pick(
                "无法启动托盘程序，本次运行没有托盘图标（对话框和通知照常可用）。请重新安装证书助手，让 certray-desktop 与 certray 在同一目录。原因：",
                "cannot start the tray program, so certray runs without a tray icon (dialogs and notifications still work). Reinstall certray so that certray-desktop is beside certray. Reason: "
            )
        );
    }
    let log_dir = cli
        .command
        .runs_daemon()
        .then(|| crate::config::state_dir().map(|d| d.join("logs")))
        .flatten();
    if cli.command.runs_daemon() {
        // What the daemon writes (logs, approvals, the audit log) is this user's only, and
        // so are the logs an older certray left readable.
        crate::platform::files::private_from_now_on();
        if let Some(dir) = &log_dir
            && let Err(e) = crate::platform::files::make_private_tree(dir)
        {
            eprintln!("{}: {e}", dir.display());
        }
    }
    let _log_guard = init_logging(&cli.log_level, log_dir);
    let json = cli.command.prints_json();
    let ctx = Ctx {
        lang,
        config_path: cli.config.clone(),
    };
    match dispatch(&ctx, cli.command) {
        Ok(()) => 0,
        Err(f) => {
            if json {
                let dto = ErrorDto::new(f.code, lang, f.pin, f.detail.clone());
                println!("{}", serde_json::to_string_pretty(&dto).unwrap_or_default());
            } else {
                eprintln!("{}", render::failure(&f, lang));
            }
            f.code.exit_code()
        }
    }
}

fn dispatch(ctx: &Ctx, command: Command) -> Result<(), Failure> {
    match command {
        // Its own exit codes: it reports failures to the daemon, not to a person.
        Command::DialogHost => std::process::exit(crate::ui::child::main()),
        Command::SkfHost { library } => std::process::exit(skf_host::main(&library)),
        Command::List { json, uscc } => list::list(ctx, json, uscc.as_deref()),
        Command::Show(args) => show::show(ctx, args),
        Command::Inspect(args) => inspect::inspect(ctx, args),
        Command::Sign(args) => sign::sign(ctx, args),
        Command::Pin(cmd) => pin::pin(ctx, cmd),
        Command::Watch { json } => watch::watch(ctx, json),
        Command::Run { headless } => run::run(ctx, ctx.config()?, !headless, |_| {}),
        Command::Config(cmd) => config::config(ctx, cmd),
        Command::Autostart { state } => autostart::autostart(ctx, &state),
        Command::Origins(cmd) => origins::origins(ctx, cmd),
        Command::Xtx(cmd) => xtx::command(ctx, cmd),
        Command::Audit { json } => audit::audit(ctx, json),
        Command::Doctor { json } => doctor::doctor(ctx, json),
        Command::Demo(args) => demo::demo(ctx, args),
    }
}

/// Log lines the file writer may be behind by (see [`init_logging`]).
const LOG_QUEUE_LINES: usize = 4096;

/// Logs go to stderr and, for the daemon, also to a daily file in `<state dir>/logs` (seven
/// kept). The guard flushes the file when dropped.
fn init_logging(
    level: &str,
    file_dir: Option<PathBuf>,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_appender::rolling::{Builder, Rotation};
    use tracing_subscriber::prelude::*;
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Whatever the level asked for: libraries that would log a PIN stay quiet.
    for d in crate::bridge::xtx::LOG_DIRECTIVES {
        if let Ok(d) = d.parse() {
            filter = filter.add_directive(d);
        }
    }
    let appender = file_dir.and_then(|dir| {
        // The appender prunes old files before it creates the directory: on a first run it
        // would complain that there is no directory to read.
        std::fs::create_dir_all(&dir)
            .map_err(|e| eprintln!("{}: {e}", dir.display()))
            .ok()?;
        Builder::new()
            .rotation(Rotation::DAILY)
            .filename_prefix("certray")
            .filename_suffix("log")
            .max_log_files(7)
            .build(&dir)
            .map_err(|e| eprintln!("{}: {e}", dir.display()))
            .ok()
    });
    let (file_layer, guard) = match appender {
        Some(a) => {
            // tracing-appender's default queue holds 128,000 lines and its channel sets
            // every slot up front: 4 MiB resident in an idle daemon. A few thousand lines
            // cover any burst the daemon logs; beyond that lines are dropped, never waited for.
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .buffered_lines_limit(LOG_QUEUE_LINES)
                .finish(a);
            (
                Some(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(false)
                        .with_writer(writer),
                ),
                Some(guard),
            )
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(file_layer)
        .try_init();
    guard
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes)
        .map_err(|e| Failure::new(Code::Io, format!("{}: {e}", path.display())))
}

/// `<state dir>`, where approvals and the audit log are kept.
fn state_dir() -> Result<PathBuf, Failure> {
    crate::config::state_dir().ok_or_else(|| Failure::new(Code::Io, "no home directory"))
}
