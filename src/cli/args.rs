//! The command line as clap sees it: every command, its arguments and their help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::model::{HashAlg, TokenId};

#[derive(Debug, Parser)]
#[command(
    name = "certray",
    version,
    about = "证书助手 certray — certificates on PKI USB keys and smart cards"
)]
pub struct Cli {
    /// Configuration file (default: the platform config dir's certray/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Language of messages: zh-CN or en (default: from the locale, zh-CN first).
    #[arg(long, global = true, value_name = "LANG")]
    pub lang: Option<String>,
    /// Log level for messages on stderr (error, warn, info, debug, trace); RUST_LOG overrides.
    #[arg(long, global = true, value_name = "LEVEL", default_value = "warn")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every token and every certificate on it (--uscc: only one company's).
    List {
        /// Print {"tokens":[…],"certificates":[…]} as JSON.
        #[arg(long)]
        json: bool,
        /// Only the certificates of this unified social credit code (统一社会信用代码), and
        /// the keys holding them: which key holds this company's certificate. A code whose
        /// check character (GB 32100) is wrong is refused.
        #[arg(long, value_name = "CODE")]
        uscc: Option<String>,
    },
    /// Show one certificate in full.
    Show(ShowArgs),
    /// Inspect certificate files (证书信息检测): .cer/.crt/.der/.pem/.p7b.
    ///
    /// Each certificate is shown as `show` shows one on a key, with its issuer checked
    /// against the other files given, [trust] ca_paths and the system CA store. A file that
    /// is not a certificate is reported (NOT_A_CERTIFICATE) and the exit code is not 0.
    Inspect(InspectArgs),
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
    /// The BJCA "证书应用环境" compatible endpoint for portals' own JavaScript
    /// (ws://127.0.0.1:21051/xtxapp/, wss://127.0.0.1:21061/xtxapp/), and its TLS trust.
    #[command(subcommand)]
    Xtx(super::xtx::XtxCommand),
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
    Demo(DemoArgs),
    /// The daemon's windows, in a process of their own (started by `certray run`, which
    /// talks to it over stdin and stdout).
    #[command(hide = true)]
    DialogHost,
    /// One vendor SKF library in a process of its own (started by certray, which talks to
    /// it over stdin and stdout).
    #[command(hide = true)]
    SkfHost {
        /// The SKF library to load.
        #[arg(long)]
        library: PathBuf,
    },
}

impl Command {
    /// Whether the command runs the daemon (its logs then also go to a file).
    pub fn runs_daemon(&self) -> bool {
        matches!(
            self,
            Command::Run { .. } | Command::Demo(DemoArgs { no_run: false, .. })
        )
    }

    /// Whether the command shows the tray when there is a display.
    pub fn shows_tray(&self) -> bool {
        matches!(
            self,
            Command::Run { headless: false } | Command::Demo(DemoArgs { no_run: false, .. })
        )
    }

    /// Whether the command prints JSON, and so its failures too.
    pub fn prints_json(&self) -> bool {
        matches!(
            self,
            Command::List { json: true, .. }
                | Command::Audit { json: true }
                | Command::Show(ShowArgs { json: true, .. })
                | Command::Inspect(InspectArgs { json: true, .. })
                | Command::Pin(PinCommand::Status { json: true, .. })
                | Command::Doctor { json: true }
        )
    }
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Certificate files: DER (.cer/.crt/.der), PEM (one or many certificates) or PKCS#7
    /// (.p7b). 证书文件。
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print a JSON array: one object per certificate, each as `show --json` prints it.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Certificate id (c-…; a unique prefix of 6+ characters works too).
    pub cert: String,
    #[arg(long, conflicts_with_all = ["pem", "der"])]
    pub json: bool,
    /// Print the certificate as PEM.
    #[arg(long, conflicts_with = "der")]
    pub pem: bool,
    /// Write the certificate's DER bytes to FILE.
    #[arg(long, value_name = "FILE")]
    pub der: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Delete the demo token and create it again.
    #[arg(long)]
    pub reset: bool,
    /// Only create and list the token; do not start the daemon.
    #[arg(long)]
    pub no_run: bool,
    /// Do not open the check page in a browser.
    #[arg(long)]
    pub no_browser: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the path of the configuration file in use.
    Path,
    /// Print the effective configuration (the file plus defaults) as TOML.
    Show,
    /// Check the configuration: syntax, unknown keys, card ATRs, the bridge address.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum OriginsCommand {
    /// The websites approved in the consent dialogs ("always", the BJCA-compatible
    /// endpoint's too) and those in the config.
    List,
    /// Withdraw a website's approval (takes effect when the daemon restarts).
    Revoke { origin: String },
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Certificate id whose private key signs.
    #[arg(long = "cert", value_name = "CERT_ID")]
    pub cert: String,
    /// The data to sign (or, with --digest, its digest).
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,
    /// Where to write the signature.
    #[arg(long = "out", value_name = "FILE")]
    pub output: PathBuf,
    /// sha1, sha256, sha384, sha512 or sm3 (the only hash of SM2 keys).
    #[arg(long, default_value = "sha256")]
    pub hash: HashAlg,
    /// The input file is a precomputed digest (raw bytes), not the data.
    #[arg(long)]
    pub digest: bool,
    #[command(flatten)]
    pub pin: PinArgs,
}

#[derive(Debug, Args, Clone, Copy)]
pub struct PinArgs {
    /// Read the PIN(s) from standard input, one per line, instead of the terminal.
    #[arg(long)]
    pub pin_stdin: bool,
    /// Go ahead although the token reports that only one attempt is left.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum PinCommand {
    /// Show the PIN state (length range, count low, final try, locked).
    Status {
        #[arg(long, value_name = "TOKEN_ID")]
        token: TokenId,
        #[arg(long)]
        json: bool,
    },
    /// Change the user PIN (stdin: current PIN, then new PIN).
    Change {
        #[arg(long, value_name = "TOKEN_ID")]
        token: TokenId,
        #[command(flatten)]
        pin: PinArgs,
    },
    /// Unlock with the admin PIN or the CA's unlock code and set a new user PIN
    /// (stdin: admin PIN or unlock code, then new PIN).
    Unlock {
        #[arg(long, value_name = "TOKEN_ID")]
        token: TokenId,
        #[command(flatten)]
        pin: PinArgs,
    },
}
