//! The command line: `certray list|show|sign|pin|demo`.
//!
//! Errors print their code, the message in the user's language and a hint; with `--json`
//! they print the bridge's error object instead. Exit codes are [`Code::exit_code`]
//! (documented in the README); clap's usage errors exit with 2.

pub(crate) mod render;
mod table;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::bridge::wire::{CertificateDto, ErrorDto, EventDto, ListDto, PinDto, TokenDto};
use crate::config::{self, Config};
use crate::error::Code;
use crate::i18n::Lang;
use crate::inventory::{self, Event, Inventory, Live, LiveOptions, Update};
use crate::token::pkcs11::Auth;
use crate::token::sign::{HashAlg, SignInput};
use crate::token::{self, Pin, PinState};

#[derive(Debug, Parser)]
#[command(
    name = "certray",
    version,
    about = "证书助手 certray — certificates on PKI USB keys and smart cards"
)]
pub struct Cli {
    /// Configuration file (default: the platform config dir's certray/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Language of messages: zh-CN or en (default: from the locale, zh-CN first).
    #[arg(long, global = true, value_name = "LANG")]
    lang: Option<String>,
    /// Log level for messages on stderr (error, warn, info, debug, trace); RUST_LOG overrides.
    #[arg(long, global = true, value_name = "LEVEL", default_value = "warn")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every token and every certificate on it.
    List {
        /// Print {"tokens":[…],"certificates":[…]} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one certificate in full.
    Show {
        /// Certificate id (c-…; a unique prefix of 6+ characters works too).
        cert: String,
        #[arg(long, conflicts_with_all = ["pem", "der"])]
        json: bool,
        /// Print the certificate as PEM.
        #[arg(long, conflicts_with = "der")]
        pem: bool,
        /// Write the certificate's DER bytes to FILE.
        #[arg(long, value_name = "FILE")]
        der: Option<PathBuf>,
    },
    /// Sign a file with a certificate's private key (PKCS#1 v1.5 or DER ECDSA).
    Sign(SignArgs),
    /// PIN status, change and unlock.
    #[command(subcommand)]
    Pin(PinCommand),
    /// Run the daemon: the live inventory, the localhost bridge for web pages and, on a
    /// desktop, the tray icon, dialogs and notifications.
    Run {
        /// No desktop UI (consent and PIN prompts are refused). Without a display the
        /// daemon is headless anyway.
        #[arg(long)]
        headless: bool,
    },
    /// The configuration file: where it is, what is in effect, whether it is valid.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Start certray at login, for this user (the tray's 开机自动启动).
    Autostart {
        /// on, off or status (default).
        #[arg(value_parser = ["on", "off", "status"], default_value = "status")]
        state: String,
    },
    /// Websites allowed to use the certificates.
    #[command(subcommand)]
    Origins(OriginsCommand),
    /// The audit log: every signature and authentication the bridge made.
    Audit {
        #[arg(long)]
        json: bool,
    },
    /// Print key and card events as they happen, starting with the tokens present now.
    Watch {
        /// One JSON object per line, with an "event" field.
        #[arg(long)]
        json: bool,
    },
    /// Check the environment (环境检测): PC/SC, readers, cards, modules, tokens,
    /// certificates, PIN, the bridge, autostart, display and clock. Exit code 50 when a
    /// check finds an error.
    Doctor {
        /// Print {"checks":[…],"summary":{…}} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The built-in demo: create (once) a SoftHSM demo token, list it, and run the daemon on it.
    Demo {
        /// Delete the demo token and create it again.
        #[arg(long)]
        reset: bool,
        /// Only create and list the token; do not start the daemon.
        #[arg(long)]
        no_run: bool,
        /// Do not open the check page in a browser.
        #[arg(long)]
        no_browser: bool,
    },
    /// The daemon's windows, in a process of their own (started by `certray run`, which
    /// talks to it over stdin and stdout).
    #[command(hide = true)]
    DialogHost,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the path of the configuration file in use.
    Path,
    /// Print the effective configuration (the file plus defaults) as TOML.
    Show,
    /// Check the configuration: syntax, unknown keys, card ATRs, the bridge address.
    Check,
}

#[derive(Debug, Subcommand)]
enum OriginsCommand {
    /// The websites approved in the consent dialog ("always") and those in the config.
    List,
    /// Withdraw a website's approval (takes effect when the daemon restarts).
    Revoke { origin: String },
}

#[derive(Debug, Args)]
struct SignArgs {
    /// Certificate id whose private key signs.
    #[arg(long = "cert", value_name = "CERT_ID")]
    cert: String,
    /// The data to sign (or, with --digest, its digest).
    #[arg(long = "in", value_name = "FILE")]
    input: PathBuf,
    /// Where to write the signature.
    #[arg(long = "out", value_name = "FILE")]
    output: PathBuf,
    /// sha1, sha256, sha384 or sha512.
    #[arg(long, default_value = "sha256")]
    hash: HashAlg,
    /// The input file is a precomputed digest (raw bytes), not the data.
    #[arg(long)]
    digest: bool,
    #[command(flatten)]
    pin: PinArgs,
}

#[derive(Debug, Args, Clone, Copy)]
struct PinArgs {
    /// Read the PIN(s) from standard input, one per line, instead of the terminal.
    #[arg(long)]
    pin_stdin: bool,
    /// Go ahead although the token reports that only one attempt is left.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Subcommand)]
enum PinCommand {
    /// Show the PIN state (length range, count low, final try, locked).
    Status {
        #[arg(long, value_name = "TOKEN_ID")]
        token: String,
        #[arg(long)]
        json: bool,
    },
    /// Change the user PIN (stdin: current PIN, then new PIN).
    Change {
        #[arg(long, value_name = "TOKEN_ID")]
        token: String,
        #[command(flatten)]
        pin: PinArgs,
    },
    /// Unlock with the admin PIN or the CA's unlock code and set a new user PIN
    /// (stdin: admin PIN or unlock code, then new PIN).
    Unlock {
        #[arg(long, value_name = "TOKEN_ID")]
        token: String,
        #[command(flatten)]
        pin: PinArgs,
    },
}

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

impl From<inventory::Error> for Failure {
    fn from(e: inventory::Error) -> Self {
        Failure {
            code: e.code(),
            pin: e.pin_state(),
            detail: Some(e.to_string()),
        }
    }
}

impl From<token::Error> for Failure {
    fn from(e: token::Error) -> Self {
        inventory::Error::from(e).into()
    }
}

impl From<config::Error> for Failure {
    fn from(e: config::Error) -> Self {
        Failure::new(e.code(), e.to_string())
    }
}

struct Ctx {
    lang: Lang,
    config_path: Option<PathBuf>,
}

impl Ctx {
    fn config(&self) -> Result<Config, Failure> {
        Ok(Config::load(self.config_path.as_deref())?.0)
    }

    fn inventory(&self, config: &Config) -> Inventory {
        let inv = Inventory::open(config);
        self.warn_failures(inv.failures());
        inv
    }

    /// One warning line per module that could not be loaded, with its path and reason.
    fn warn_failures(&self, failures: &[inventory::LoadFailure]) {
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
    let daemon = matches!(
        cli.command,
        Command::Run { .. } | Command::Demo { no_run: false, .. }
    );
    let log_dir = daemon
        .then(|| config::state_dir().map(|d| d.join("logs")))
        .flatten();
    let _log_guard = init_logging(&cli.log_level, log_dir);
    let lang = match cli.lang.as_deref() {
        Some(l) => Lang::from_locale(l),
        None => Lang::from_env(),
    };
    let json = matches!(
        cli.command,
        Command::List { json: true }
            | Command::Audit { json: true }
            | Command::Show { json: true, .. }
            | Command::Pin(PinCommand::Status { json: true, .. })
            | Command::Doctor { json: true }
    );
    let ctx = Ctx {
        lang,
        config_path: cli.config.clone(),
    };
    match run(&ctx, cli.command) {
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

/// Logs go to stderr and, for the daemon, also to a daily file in `<state dir>/logs` (seven
/// kept). The guard flushes the file when dropped.
fn init_logging(
    level: &str,
    file_dir: Option<PathBuf>,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_appender::rolling::{Builder, Rotation};
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let appender = file_dir.and_then(|dir| {
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
            let (writer, guard) = tracing_appender::non_blocking(a);
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

fn run(ctx: &Ctx, command: Command) -> Result<(), Failure> {
    match command {
        // Its own exit codes: it reports failures to the daemon, not to a person.
        Command::DialogHost => std::process::exit(crate::ui::child::main()),
        Command::List { json } => {
            let inv = ctx.inventory(&ctx.config()?);
            let list = ListDto::from_inventory(&inv, OffsetDateTime::now_utc());
            if json {
                print_json(&list);
            } else {
                print!("{}", render::list(&list, ctx.lang));
            }
            Ok(())
        }
        Command::Show {
            cert,
            json,
            pem,
            der,
        } => {
            let inv = ctx.inventory(&ctx.config()?);
            let entry = inv.certificate(&cert)?;
            if let Some(path) = der {
                write_file(&path, &entry.der)?;
            } else if pem {
                print!("{}", crate::cert::to_pem(&entry.der));
            } else {
                let dto = CertificateDto::new(entry, OffsetDateTime::now_utc(), inv.warning_days());
                if json {
                    print_json(&dto);
                } else {
                    let token = inv.token(&entry.token_id).ok().map(TokenDto::from);
                    print!("{}", render::certificate(&dto, token.as_ref(), ctx.lang));
                }
            }
            Ok(())
        }
        Command::Sign(args) => sign(ctx, args),
        Command::Pin(cmd) => pin(ctx, cmd),
        Command::Watch { json } => watch(ctx, json),
        Command::Run { headless } => run_daemon(ctx, ctx.config()?, !headless, |_| {}),
        Command::Config(cmd) => config_command(ctx, cmd),
        Command::Autostart { state } => autostart(ctx, &state),
        Command::Origins(cmd) => origins(ctx, cmd),
        Command::Audit { json } => audit(ctx, json),
        Command::Doctor { json } => doctor(ctx, json),
        Command::Demo {
            reset,
            no_run,
            no_browser,
        } => demo(ctx, reset, no_run, no_browser),
    }
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes)
        .map_err(|e| Failure::new(Code::Io, format!("{}: {e}", path.display())))
}

/// Where PINs come from: the terminal without echo, or standard input one per line.
struct PinSource {
    stdin: Option<std::io::Lines<std::io::StdinLock<'static>>>,
    lang: Lang,
}

impl PinSource {
    fn new(args: PinArgs, lang: Lang) -> PinSource {
        PinSource {
            stdin: args.pin_stdin.then(|| std::io::stdin().lock().lines()),
            lang,
        }
    }

    fn interactive(&self) -> bool {
        self.stdin.is_none()
    }

    fn read(&mut self, zh: &str, en: &str) -> Result<Pin, Failure> {
        let prompt = self.lang.pick(zh, en);
        // Wrapped at once: the String zeroizes with the SecretString.
        let mut text = Zeroizing::new(match &mut self.stdin {
            Some(lines) => match lines.next() {
                Some(Ok(line)) => line,
                Some(Err(e)) => return Err(Failure::new(Code::Io, e.to_string())),
                None => {
                    return Err(Failure::new(
                        Code::PinRequired,
                        format!("standard input ended before: {en}"),
                    ));
                }
            },
            None => rpassword::prompt_password(format!("{prompt}: ")).map_err(|e| {
                Failure::new(
                    Code::PinRequired,
                    format!("cannot read from the terminal: {e}"),
                )
            })?,
        });
        while text.ends_with(['\r', '\n']) {
            text.pop();
        }
        let pin = SecretString::from(std::mem::take(&mut *text));
        if pin.expose_secret().is_empty() {
            return Err(Failure::new(Code::PinRequired, "empty PIN"));
        }
        Ok(pin)
    }

    /// A new PIN, typed twice on the terminal (once from stdin).
    fn read_new(&mut self, state: PinState) -> Result<Pin, Failure> {
        let new = self.read("新密码", "New PIN")?;
        if !state.accepts_len(new.expose_secret().len()) {
            return Err(Failure {
                code: Code::PinLenRange,
                detail: Some(render::pin_range(state, self.lang)),
                pin: Some(state),
            });
        }
        if self.interactive() {
            let confirm = self.read("确认新密码", "Confirm the new PIN")?;
            if confirm.expose_secret() != new.expose_secret() {
                return Err(Failure::new(Code::PinMismatch, "the confirmation differs"));
            }
        }
        Ok(new)
    }
}

/// Refuse before anything is typed when typing could lock the token.
fn precheck(state: PinState, force: bool) -> Result<(), Failure> {
    if state.locked {
        Err(Failure {
            code: Code::PinLocked,
            detail: None,
            pin: Some(state),
        })
    } else if state.final_try && !force {
        Err(Failure {
            code: Code::PinFinalTry,
            detail: None,
            pin: Some(state),
        })
    } else {
        Ok(())
    }
}

fn sign(ctx: &Ctx, args: SignArgs) -> Result<(), Failure> {
    let inv = ctx.inventory(&ctx.config()?);
    let entry = inv.check_signer(&args.cert)?;
    let bytes = std::fs::read(&args.input)
        .map_err(|e| Failure::new(Code::Io, format!("{}: {e}", args.input.display())))?;
    let input = if args.digest {
        SignInput::Digest(bytes)
    } else {
        SignInput::Data(bytes)
    };
    // A bad digest length is refused before a PIN is typed.
    input
        .digest(args.hash)
        .map_err(|e| Failure::new(Code::Io, e.to_string()))?;
    let state = inv.pin_state(&entry.token_id)?;
    precheck(state, args.pin.force)?;
    let mut pins = PinSource::new(args.pin, ctx.lang);
    if pins.interactive() {
        eprintln!("{}", render::pin_state_line(state, ctx.lang));
    }
    let pin = pins.read("请输入密钥的用户密码（PIN）", "Enter the token's user PIN")?;
    let sig = inv.sign(
        &entry.id,
        args.hash,
        input,
        Auth::Pin {
            pin,
            force: args.pin.force,
            remember: false,
        },
    )?;
    write_file(&args.output, &sig.bytes)?;
    eprintln!(
        "{}{} ({}, {} {}) → {}",
        ctx.lang.pick("已签名：", "Signed: "),
        entry.id,
        sig.algorithm,
        sig.bytes.len(),
        ctx.lang.pick("字节", "bytes"),
        args.output.display()
    );
    Ok(())
}

fn pin(ctx: &Ctx, cmd: PinCommand) -> Result<(), Failure> {
    let inv = ctx.inventory(&ctx.config()?);
    let lang = ctx.lang;
    match cmd {
        PinCommand::Status { token, json } => {
            let state = inv.pin_state(&token)?;
            if json {
                #[derive(serde::Serialize)]
                struct Status {
                    token_id: String,
                    pin: PinDto,
                }
                print_json(&Status {
                    token_id: token,
                    pin: state.into(),
                });
            } else {
                println!("{}", render::pin_state_line(state, lang));
            }
            Ok(())
        }
        PinCommand::Change { token, pin } => {
            let state = inv.pin_state(&token)?;
            precheck(state, pin.force)?;
            let mut pins = PinSource::new(pin, lang);
            if pins.interactive() {
                eprintln!("{}", render::pin_state_line(state, lang));
            }
            let old = pins.read("当前密码", "Current PIN")?;
            let new = pins.read_new(state)?;
            let after = inv.change_pin(&token, old, new, pin.force)?;
            println!("{}", lang.pick("密码已修改。", "The PIN has been changed."));
            println!("{}", render::pin_state_line(after, lang));
            Ok(())
        }
        PinCommand::Unlock { token, pin } => {
            let state = inv.pin_state(&token)?;
            let mut pins = PinSource::new(pin, lang);
            if pins.interactive() {
                eprintln!("{}", render::pin_state_line(state, lang));
            }
            let so = pins.read("管理员密码或解锁授权码", "Admin PIN or unlock code")?;
            let new = pins.read_new(state)?;
            let after = inv.unlock(&token, so, new, pin.force)?;
            println!(
                "{}",
                lang.pick(
                    "密钥已解锁，新密码已设置。",
                    "The token is unlocked and the new PIN is set."
                )
            );
            println!("{}", render::pin_state_line(after, lang));
            Ok(())
        }
    }
}

fn state_dir() -> Result<PathBuf, Failure> {
    config::state_dir().ok_or_else(|| Failure::new(Code::Io, "no home directory"))
}

/// The daemon: live inventory and bridge, plus the desktop UI when `desktop` is asked for
/// and a display is there.
fn run_daemon(
    ctx: &Ctx,
    config: Config,
    desktop: bool,
    on_ready: impl FnOnce(&str),
) -> Result<(), Failure> {
    use std::sync::Arc;

    use crate::bridge::{App, BridgeOptions, Headless, Prompt};
    use crate::platform::{InstanceLock, LockError};
    use crate::ui;
    crate::bridge::check_listen(config.bridge.listen)
        .map_err(|e| Failure::new(Code::ConfigInvalid, e))?;
    // One daemon per user: a second one says which is running, before touching anything.
    let lock_dir =
        crate::platform::lock_dir().ok_or_else(|| Failure::new(Code::Io, "no home directory"))?;
    let mut lock = InstanceLock::acquire(&lock_dir).map_err(|e| match e {
        LockError::Held(holder) => Failure::new(Code::AlreadyRunning, holder.to_string()),
        e => Failure::new(Code::Io, e.to_string()),
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Code::Internal, e.to_string()))?;
    let live = Arc::new(
        Live::start(&config, LiveOptions::default())
            .map_err(|e| Failure::new(Code::ConfigInvalid, e))?,
    );
    ctx.warn_failures(live.failures());
    let lang = ctx.lang;
    let display = ui::display_available();
    // Filled in by the dialog host once it runs (it needs the App this prompt goes into).
    let slot = (desktop && display).then(ui::PromptSlot::new);
    let prompt: Arc<dyn Prompt> = match &slot {
        Some(s) => s.clone(),
        None => Arc::new(Headless),
    };
    let mut desktop_ui = None;
    let result = runtime.block_on(async {
        let listen = config.bridge.listen;
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(Failure::new(
                    Code::Io,
                    format!("{listen} is in use by another program (or another certray); set [bridge] listen"),
                ));
            }
            Err(e) => return Err(Failure::new(Code::Io, format!("{listen}: {e}"))),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(listen.port());
        let app = App::new(
            live.clone(),
            BridgeOptions {
                config: config.bridge.clone(),
                port,
                prompt,
                state_dir: config::state_dir(),
                warning_days: config.alerts.expiry_warning_days,
            },
        );
        let url = format!("http://127.0.0.1:{port}/");
        if let Err(e) = lock.describe(Some(&url)) {
            tracing::warn!(path = %lock.path().display(), error = %e, "cannot note the URL in the lock file");
        }
        let backend = slot.as_ref().map(|slot| {
            let backend = ui::Backend::new(
                live.clone(),
                ui::BackendOptions {
                    bridge: Some(app.clone()),
                    lang,
                    warning_days: config.alerts.expiry_warning_days,
                    check_page: Some(url.clone()),
                    config_path: ctx.config_path.clone(),
                    state_dir: config::state_dir(),
                },
            );
            desktop_ui = Some(ui::start(&backend, slot, &config.ui));
            backend
        });
        println!("{}{url}", lang.pick("证书助手已启动：", "certray is running: "));
        println!(
            "{}",
            match (backend.is_some(), desktop) {
                (true, _) => lang.pick(
                    "桌面界面：已开启（托盘图标、对话框和通知）",
                    "Desktop UI: on (tray icon, dialogs, notifications)"
                ),
                (false, false) => lang.pick(
                    "桌面界面：未开启（--headless）",
                    "Desktop UI: off (--headless)"
                ),
                (false, true) => lang.pick(
                    "桌面界面：未开启（没有图形显示）",
                    "Desktop UI: off (no display)"
                ),
            }
        );
        on_ready(&url);
        let _ = std::io::stdout().flush();
        // Ctrl-C, SIGTERM, or the tray's 退出.
        let shutdown = async move {
            match backend {
                Some(b) => tokio::select! {
                    _ = shutdown_signal() => {}
                    _ = b.quitting() => tracing::info!("stopping"),
                },
                None => shutdown_signal().await,
            }
        };
        crate::bridge::serve(listener, app, shutdown)
            .await
            .map_err(|e| Failure::new(Code::Io, e.to_string()))
    });
    drop(runtime);
    if let Some(d) = desktop_ui {
        d.stop();
    }
    // The dialog host lets go of the inventory on its own thread as it winds down. The
    // modules are finalized where the last handle goes: here, not on a thread racing the
    // process's exit. A host that keeps it (a window still open) keeps it to the end.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while Arc::strong_count(&live) > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    if Arc::strong_count(&live) == 1 {
        drop(live);
    } else {
        tracing::debug!("the inventory is still in use; leaving the modules to the exit");
        std::mem::forget(live);
    }
    result
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("stopping");
}

fn autostart(ctx: &Ctx, state: &str) -> Result<(), Failure> {
    use crate::platform::autostart;
    let lang = ctx.lang;
    if state != "status" {
        let path =
            autostart::set(state == "on").map_err(|e| Failure::new(Code::Io, e.to_string()))?;
        tracing::info!(path = %path.display(), "autostart entry written");
    }
    println!(
        "{}",
        if autostart::is_enabled() {
            lang.pick("开机自动启动：已开启", "Start at login: on")
        } else {
            lang.pick("开机自动启动：已关闭", "Start at login: off")
        }
    );
    Ok(())
}

fn config_command(ctx: &Ctx, cmd: ConfigCommand) -> Result<(), Failure> {
    let lang = ctx.lang;
    let path = ctx.config_path.clone().or_else(config::default_path);
    match cmd {
        ConfigCommand::Path => {
            let path = path.ok_or_else(|| Failure::new(Code::Io, "no home directory"))?;
            println!("{}", path.display());
        }
        ConfigCommand::Show => {
            let config = ctx.config()?;
            let text = toml::to_string_pretty(&config)
                .map_err(|e| Failure::new(Code::Internal, e.to_string()))?;
            print!("{text}");
        }
        ConfigCommand::Check => {
            let (config, loaded) = Config::load(ctx.config_path.as_deref())?;
            crate::token::registry::Registry::new(&config.cards)
                .map_err(|e| Failure::new(Code::ConfigInvalid, e))?;
            crate::bridge::check_listen(config.bridge.listen)
                .map_err(|e| Failure::new(Code::ConfigInvalid, e))?;
            for m in config.pkcs11.modules.iter().filter(|m| !m.path.exists()) {
                eprintln!(
                    "{}: {} {}",
                    lang.pick("警告", "warning"),
                    lang.pick("模块文件不存在：", "module file not found:"),
                    m.path.display()
                );
            }
            match loaded {
                Some(p) => println!(
                    "{}{}",
                    lang.pick("配置有效：", "The configuration is valid: "),
                    p.display()
                ),
                None => println!(
                    "{}",
                    lang.pick(
                        "没有配置文件，使用默认配置",
                        "No configuration file: the defaults apply"
                    )
                ),
            }
        }
    }
    Ok(())
}

fn origins(ctx: &Ctx, cmd: OriginsCommand) -> Result<(), Failure> {
    let dir = state_dir()?;
    let lang = ctx.lang;
    match cmd {
        OriginsCommand::List => {
            let config = ctx.config()?;
            for o in crate::bridge::store::remembered_origins(&dir) {
                println!(
                    "{o}\t{}",
                    lang.pick("已授权（对话框）", "approved (dialog)")
                );
            }
            for o in &config.bridge.allowed_origins {
                println!(
                    "{o}\t{}",
                    lang.pick("配置文件允许", "allowed in the config")
                );
            }
            for o in &config.bridge.page_pin_origins {
                println!(
                    "{o}\t{}",
                    lang.pick("可在网页提交密码（配置文件）", "may send the PIN (config)")
                );
            }
            Ok(())
        }
        OriginsCommand::Revoke { origin } => {
            let was = crate::bridge::store::revoke_origin(&dir, &origin)
                .map_err(|e| Failure::new(Code::Io, e.to_string()))?;
            if was {
                println!(
                    "{} {origin}",
                    lang.pick("已撤销授权：", "Approval withdrawn:")
                );
                Ok(())
            } else {
                Err(Failure::new(
                    Code::BadRequest,
                    format!("{origin} was not approved"),
                ))
            }
        }
    }
}

fn audit(ctx: &Ctx, json: bool) -> Result<(), Failure> {
    let records = crate::bridge::store::read_audit(&state_dir()?);
    if json {
        print_json(&records);
        return Ok(());
    }
    let lang = ctx.lang;
    let mut t = table::Table::new(&[
        lang.pick("时间", "Time"),
        lang.pick("来源", "Origin"),
        lang.pick("操作", "Operation"),
        lang.pick("证书编号", "Certificate ID"),
        lang.pick("格式", "Format"),
        lang.pick("字节", "Bytes"),
        lang.pick("结果", "Result"),
    ]);
    for r in records {
        t.row(vec![
            r.time,
            r.origin,
            r.operation,
            r.certificate_id,
            r.format,
            r.bytes.to_string(),
            r.result,
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

fn watch(ctx: &Ctx, json: bool) -> Result<(), Failure> {
    let config = ctx.config()?;
    let live = Live::start(&config, LiveOptions::default())
        .map_err(|e| Failure::new(Code::ConfigInvalid, e))?;
    ctx.warn_failures(live.failures());
    let days = config.alerts.expiry_warning_days;
    let print = |e: &EventDto| {
        if json {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        } else {
            println!("{}", render::event(e, ctx.lang));
        }
    };
    let print_state = |snap: &inventory::Snapshot| {
        for token in &snap.tokens {
            let e = Event::TokenAdded {
                token: token.clone(),
                certificates: snap.certificates_of(&token.id),
            };
            print(&EventDto::new(
                &e,
                OffsetDateTime::now_utc(),
                days,
                ctx.lang,
            ));
        }
    };
    let (snapshot, mut sub) = live.subscribe();
    print_state(&snapshot);
    loop {
        match sub.blocking_recv() {
            Update::Event(e) => print(&EventDto::new(
                &e,
                OffsetDateTime::now_utc(),
                days,
                ctx.lang,
            )),
            Update::Lagged { missed, snapshot } => {
                print(&EventDto::Resync { missed });
                print_state(&snapshot);
            }
            Update::Closed => return Ok(()),
        }
    }
}

/// Print the environment report; exit with 1 (after flushing) when a check found an error.
fn doctor(ctx: &Ctx, json: bool) -> Result<(), Failure> {
    let report = crate::doctor::run_with_config_file(ctx.config_path.as_deref(), ctx.lang);
    if json {
        print_json(&report);
    } else {
        print!("{}", crate::doctor::render(&report, ctx.lang));
    }
    let code = report.exit_code();
    if code != 0 {
        let _ = std::io::stdout().flush();
        std::process::exit(code);
    }
    Ok(())
}

fn demo(ctx: &Ctx, reset: bool, no_run: bool, no_browser: bool) -> Result<(), Failure> {
    let mut config = ctx.config()?;
    let data = config::data_dir().ok_or_else(|| Failure::new(Code::Io, "no home directory"))?;
    let demo = token::demo::ensure(&data.join("demo"), reset)?;
    // The demo token is served by SoftHSM, first in line.
    config.pkcs11.modules.retain(|m| m.path != demo.module);
    config
        .pkcs11
        .modules
        .insert(0, config::ModuleConfig::new(demo.module.clone()));
    let inv = ctx.inventory(&config);
    let lang = ctx.lang;
    println!(
        "{}",
        lang.pick(
            "证书助手演示密钥（SoftHSM）",
            "certray demo token (SoftHSM)"
        )
    );
    println!("  {}: {}", lang.pick("密钥名称", "Label"), demo.label);
    println!(
        "  {}: {}",
        lang.pick("用户密码（PIN）", "User PIN"),
        demo.pin
    );
    println!(
        "  {}: {}",
        lang.pick("管理员密码", "Admin (SO) PIN"),
        demo.so_pin
    );
    println!(
        "  {}: {}",
        lang.pick("令牌目录", "Token directory"),
        demo.dir.display()
    );
    println!("  SOFTHSM2_CONF={}", demo.conf.display());
    println!();
    print!(
        "{}",
        render::list(
            &ListDto::from_inventory(&inv, OffsetDateTime::now_utc()),
            lang
        )
    );
    let _ = std::io::stdout().flush();
    if no_run {
        return Ok(());
    }
    // The daemon loads the modules itself: the listing's workers finalize first.
    drop(inv);
    let pin = demo.pin;
    run_daemon(ctx, config, true, |url| {
        println!(
            "{}",
            lang.pick(
                &format!("证书检测页：{url}　演示密钥的 PIN：{pin}　按 Ctrl-C 退出"),
                &format!("Check page: {url}   demo PIN: {pin}   press Ctrl-C to stop"),
            )
        );
        if !no_browser {
            open_in_browser(url);
        }
    })
}

/// Open `url` in the desktop's browser when there is a desktop; say so when there is none.
fn open_in_browser(url: &str) {
    if !crate::ui::display_available() {
        tracing::info!("no desktop: open the check page yourself");
    } else if let Err(e) = crate::ui::open(url) {
        tracing::info!(error = %e, "no browser opened");
    }
}
