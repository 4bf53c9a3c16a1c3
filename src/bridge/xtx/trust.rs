//! Trusted TLS for the XTX endpoint (`wss://127.0.0.1:21061`, `https://127.0.0.1:21061`)
//! without a shared secret.
//!
//! Pages on https portals reach BJCA's helper over TLS, so the browser must trust the
//! certificate certray serves there, without `--ignore-certificate-errors` and without a key
//! that every certray install shares (a shared key would let anyone impersonate anything).
//! [`Trust::install`] therefore:
//!
//! 1. makes a **per-install local CA** whose critical `nameConstraints` permit only
//!    `DNS:localhost` and `IP:127.0.0.1/32`, with `pathLenConstraint` 0;
//! 2. issues the server certificate (SAN `DNS:localhost`, `IP:127.0.0.1`, EKU `serverAuth`);
//! 3. **destroys the CA's private key**: it only ever lives in memory, is never written
//!    anywhere, and is zeroized (rcgen's `zeroize` feature clears its PKCS#8 copy; ring
//!    keeps its own parsed copy, which is freed with it). Nothing else can ever be signed by
//!    this CA; a renewal makes a new CA;
//! 4. keeps the server key and the certificates in `<state dir>/xtx-tls/` (directory 0700,
//!    files 0600);
//! 5. installs the CA certificate with `certutil` (Debian package `libnss3-tools`) into the
//!    user's NSS database `~/.pki/nssdb` (Chromium and Chrome read it on Linux; created when
//!    absent) and into every Firefox profile that has a `cert9.db`, trusted for TLS servers
//!    only (`C,,`), under a nickname [`NICKNAME_PREFIX`]` + <install id>`;
//! 6. with [`InstallOptions::system`], also into the system store
//!    (`/usr/local/share/ca-certificates/` + `update-ca-certificates`), which needs root.
//!
//! Even if the CA certificate were copied elsewhere, the name constraints keep it from
//! vouching for any other site, and the destroyed key keeps it from vouching for anything new.
//!
//! **Validity.** The server certificate (and its CA, which is useless beyond it) is valid for
//! [`VALIDITY_DAYS`] = 730 days from an hour before issue (the hour absorbs clock skew).
//! Renewing means installing a new CA into every store, which the user-level stores allow at
//! any time but the system store only with root; so the period is long, but under the
//! 825 days that Apple platforms enforce for TLS certificates even from user-added roots
//! (browsers' 398-day rule applies to publicly trusted CAs only). [`Status::renewal`] asks for
//! renewal [`RENEW_BEFORE_DAYS`] days before expiry; [`Trust::install`] renews then by itself.
//!
//! `Trust::install` is idempotent: with a valid identity it keeps the CA and only makes sure
//! each store holds it (a Firefox profile made since is added, stale certray CAs are removed),
//! so `certray run` can call it on every start with XTX on.
//!
//! The rustls [`ServerConfig`] for the listener comes from [`Trust::server_config`] (or
//! [`Trust::tls_acceptor`] for tokio).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, PublicKeyData, SanType,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use time::{Duration, OffsetDateTime};
use zeroize::{Zeroize, Zeroizing};

use crate::cert::{self, Certificate};
use crate::error::Code;

/// The names the CA may vouch for and the server certificate carries.
pub const DNS_NAME: &str = "localhost";
/// See [`DNS_NAME`].
pub const IP_ADDRESS: [u8; 4] = [127, 0, 0, 1];
/// Every certray CA's NSS nickname starts with this; the install id follows.
pub const NICKNAME_PREFIX: &str = "certray XTX local CA ";
/// The system store's file for a CA is `certray-xtx-<install id>.crt` in [`SYSTEM_ANCHOR_DIR`].
pub const SYSTEM_FILE_PREFIX: &str = "certray-xtx-";
/// Where Debian's `update-ca-certificates` takes local trust anchors from.
pub const SYSTEM_ANCHOR_DIR: &str = "/usr/local/share/ca-certificates";
/// The bundle `update-ca-certificates` writes, which OpenSSL, curl and GnuTLS read.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The subdirectory of certray's state dir that holds the TLS identity.
pub const STATE_SUBDIR: &str = "xtx-tls";
/// The CA certificate (public; kept so that `status` and `remove` can name it).
pub const CA_FILE: &str = "ca.pem";
/// The server certificate.
pub const SERVER_CERT_FILE: &str = "server.pem";
/// The server's private key (PKCS#8 PEM).
pub const SERVER_KEY_FILE: &str = "server.key";
/// How long a server certificate (and its CA) is valid; see the module documentation.
pub const VALIDITY_DAYS: i64 = 730;
/// Renew this many days before the server certificate expires.
pub const RENEW_BEFORE_DAYS: i64 = 30;
/// NSS trust flags: a CA trusted to issue TLS server certificates, nothing else.
pub const NSS_TRUST: &str = "C,,";

const CERTUTIL: Tool = Tool {
    program: "certutil",
    package: "libnss3-tools",
};
const UPDATE_CA_CERTIFICATES: Tool = Tool {
    program: "update-ca-certificates",
    package: "ca-certificates",
};

/// Why the trust could not be installed, removed, inspected or loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A program certray runs is not installed.
    #[error(
        "{program} not found: install the Debian package {package} (apt-get install {package})"
    )]
    MissingProgram {
        program: &'static str,
        package: &'static str,
    },
    /// A program ran but failed.
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The system store was asked for without root.
    #[error(
        "the system certificate store can only be changed by root: run the command again with sudo"
    )]
    NotRoot,
    /// The system store of this platform is not supported yet.
    #[error("certray cannot change this platform's system certificate store yet")]
    SystemStoreUnsupported,
    #[error("no home directory (HOME is not set)")]
    NoHome,
    #[error("no state directory for certray (XDG_STATE_HOME and HOME are not set)")]
    NoStateDir,
    /// There is no TLS identity to serve yet.
    #[error("no TLS identity in {0}: run `certray xtx trust install`")]
    NotInstalled(PathBuf),
    /// The files are there but cannot be used.
    #[error("the TLS identity in {path} is unusable: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("making the certificates failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

impl Error {
    /// The user-facing code of this error. The details (which program, which package, which
    /// file) are in the error's text, which the CLI shows as the detail.
    pub fn code(&self) -> Code {
        match self {
            Error::MissingProgram { .. }
            | Error::Command { .. }
            | Error::Io { .. }
            | Error::NotRoot
            | Error::NoHome
            | Error::NoStateDir
            | Error::NotInstalled(_)
            | Error::Damaged { .. } => Code::Io,
            Error::SystemStoreUnsupported | Error::Generate(_) | Error::Tls(_) => Code::Internal,
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// The local CA
// ---------------------------------------------------------------------------------------------

/// A freshly made local CA whose private key is still in memory. [`LocalCa::destroy`] (or
/// dropping it) zeroizes the key; the CA's certificate outlives it.
///
/// [`Trust::install`] makes one, issues the server certificate and destroys it at once.
/// [`LocalCa::issue`] signs any names so that tests can prove the constraints hold: a
/// certificate for a name outside them is still rejected by every verifier.
pub struct LocalCa {
    id: String,
    params: CertificateParams,
    key: KeyPair,
    der: CertificateDer<'static>,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa")
            .field("id", &self.id)
            .field("key", &"[destroyed with the CA]")
            .finish()
    }
}

/// A certificate with its private key, as PEM.
pub struct Issued {
    pub cert_der: CertificateDer<'static>,
    /// PKCS#8 PEM, cleared from memory when dropped.
    pub key_pem: Zeroizing<String>,
}

impl Issued {
    pub fn cert_pem(&self) -> String {
        cert::to_pem(&self.cert_der)
    }
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("cert_sha256", &cert::sha256_hex(&self.cert_der))
            .field("key_pem", &"[secret]")
            .finish()
    }
}

impl LocalCa {
    /// A new CA (ECDSA P-256) valid from an hour before `now` for [`VALIDITY_DAYS`],
    /// constrained to [`DNS_NAME`] and [`IP_ADDRESS`]`/32`, path length 0.
    pub fn generate(now: OffsetDateTime) -> Result<LocalCa, Error> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        // The install id: from the CA's public key, so it differs for every CA.
        let id = cert::sha256_hex(key.subject_public_key_info().as_ref())[..16].to_string();
        let mut params = CertificateParams::default();
        params.distinguished_name = certray_name(format!("{NICKNAME_PREFIX}{id}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        // rcgen marks nameConstraints critical.
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![
                GeneralSubtree::DnsName(DNS_NAME.into()),
                GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix(IP_ADDRESS, 32)),
            ],
            excluded_subtrees: Vec::new(),
        });
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(VALIDITY_DAYS);
        let der = params.self_signed(&key)?.der().clone();
        Ok(LocalCa {
            id,
            params,
            key,
            der,
        })
    }

    /// The install id: 16 hex digits from the CA's public key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The CA certificate.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The server certificate: SAN `DNS:localhost` and `IP:127.0.0.1`, EKU serverAuth, the
    /// CA's validity period, and a fresh ECDSA P-256 key.
    pub fn issue_server(&self) -> Result<Issued, Error> {
        let ip = std::net::Ipv4Addr::from(IP_ADDRESS).to_string();
        self.issue(&[DNS_NAME, &ip])
    }

    /// A TLS server certificate for `names` (IP addresses become IP SANs, anything else DNS
    /// SANs), for the CA's validity period, with a fresh key. Names outside the constraints
    /// are signed all the same, so that tests can watch verifiers reject them.
    pub fn issue(&self, names: &[&str]) -> Result<Issued, Error> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName((*n).try_into()?)),
            })
            .collect::<Result<_, rcgen::Error>>()?;
        params.distinguished_name =
            certray_name(names.first().copied().unwrap_or(DNS_NAME).to_string());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = self.params.not_before;
        params.not_after = self.params.not_after;
        let mut key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        let key_pem = Zeroizing::new(key.serialize_pem());
        key.zeroize();
        Ok(Issued {
            cert_der: cert.der().clone(),
            key_pem,
        })
    }

    /// Zeroize and free the private key; what remains is the CA's certificate.
    pub fn destroy(self) -> CertificateDer<'static> {
        // Drop (below) zeroizes the key.
        self.der.clone()
    }
}

/// `O=certray 证书助手, CN=<cn>`.
fn certray_name(cn: String) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::OrganizationName,
        DnValue::Utf8String("certray 证书助手".into()),
    );
    dn.push(DnType::CommonName, DnValue::Utf8String(cn));
    dn
}

impl Drop for LocalCa {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

// ---------------------------------------------------------------------------------------------
// Stores
// ---------------------------------------------------------------------------------------------

/// What kind of certificate store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// The user's shared NSS database, `~/.pki/nssdb` (Chromium, Chrome; also the snap
    /// Chromium's copy under `~/snap/chromium/current/.pki/nssdb` when it exists).
    UserNss,
    /// A Firefox profile's NSS database (`~/.mozilla/firefox/<profile>`; snap and Flatpak
    /// Firefox too).
    Firefox,
    /// The operating system's store (`/usr/local/share/ca-certificates` on Debian).
    System,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::UserNss => "nss",
            StoreKind::Firefox => "firefox",
            StoreKind::System => "system",
        }
    }
}

/// One NSS database and what it holds of certray's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStatus {
    pub kind: StoreKind,
    /// The NSS database directory (or, for the system store, the anchor directory).
    pub path: PathBuf,
    /// The current CA's trust flags there (`C,,`), when it is there. For the system store,
    /// `C,,` when the current CA's file is in the anchor directory.
    pub current: Option<String>,
    /// certray CAs of earlier installs still there (NSS nicknames, or system file names).
    pub stale: Vec<String>,
    /// Why the store could not be read (certutil missing, a locked database…).
    pub error: Option<String>,
}

impl StoreStatus {
    /// True when the current CA is there and trusted for TLS servers.
    pub fn trusts_current(&self) -> bool {
        self.current.as_deref().is_some_and(ssl_trusted)
    }
}

/// Why the server certificate must be (re)made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// Nothing installed yet.
    NotInstalled,
    /// The files are there but unusable.
    Damaged(String),
    /// Expires within [`RENEW_BEFORE_DAYS`].
    Expiring {
        days_left: i64,
    },
    Expired,
    /// Asked for ([`InstallOptions::renew`]).
    Requested,
}

impl std::fmt::Display for Renewal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Renewal::NotInstalled => f.write_str("not installed"),
            Renewal::Damaged(why) => write!(f, "unusable: {why}"),
            Renewal::Expiring { days_left } => write!(f, "expires in {days_left} days"),
            Renewal::Expired => f.write_str("expired"),
            Renewal::Requested => f.write_str("renewal requested"),
        }
    }
}

/// The installed identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The install id (16 hex digits), also in the nickname and the CA's CN.
    pub id: String,
    /// The CA's nickname in the NSS databases.
    pub nickname: String,
    /// The CA certificate's SHA-256 fingerprint, lowercase hex.
    pub ca_sha256: String,
    pub ca: Certificate,
    pub server: Certificate,
}

/// What is installed where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `<state dir>/xtx-tls`.
    pub dir: PathBuf,
    /// The identity in `dir`, when it is there and usable.
    pub identity: Option<Identity>,
    /// Why the server certificate needs to be made anew, if it does.
    pub renewal: Option<Renewal>,
    /// The user's NSS database and every Firefox profile found.
    pub stores: Vec<StoreStatus>,
    /// The system store.
    pub system: StoreStatus,
    /// Whether the current CA is in the system bundle [`SYSTEM_BUNDLE`] (that is,
    /// `update-ca-certificates` ran after it was added).
    pub system_bundle: bool,
}

impl Status {
    /// True when the server certificate must be made anew (not installed, damaged, expired
    /// or expiring within [`RENEW_BEFORE_DAYS`]).
    pub fn needs_renewal(&self) -> bool {
        self.renewal.is_some()
    }

    /// Whole days until the server certificate expires.
    pub fn server_days_left(&self, now: OffsetDateTime) -> Option<i64> {
        self.identity.as_ref().map(|i| i.server.days_left(now))
    }
}

/// Options of [`Trust::install`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstallOptions {
    /// Also install the CA into the system store (root only).
    pub system: bool,
    /// Make a new CA and server certificate even when the current ones are still good.
    pub renew: bool,
}

/// Options of [`Trust::remove`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoveOptions {
    /// Also remove certray's CAs from the system store (root only). Without it, what is
    /// there stays and is reported in [`RemoveReport::system_left`].
    pub system: bool,
}

/// What [`Trust::install`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    /// Why a new CA was made (`None`: the existing one was kept).
    pub renewed: Option<Renewal>,
    pub identity: Identity,
    /// The stores that now hold the CA (the ones it was just added to and the ones that had it).
    pub stores: Vec<(StoreKind, PathBuf)>,
    /// Nicknames (or system files) of earlier certray CAs removed from the stores.
    pub removed_stale: Vec<String>,
    /// Databases other than `~/.pki/nssdb` that could not take the CA, and why.
    pub failed: Vec<(StoreKind, PathBuf, String)>,
    /// The system store file, when installed there.
    pub system: Option<PathBuf>,
}

/// What [`Trust::remove`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveReport {
    /// Per NSS database, the nicknames deleted.
    pub stores: Vec<(StoreKind, PathBuf, Vec<String>)>,
    /// Databases other than `~/.pki/nssdb` that could not be read, and why.
    pub failed: Vec<(StoreKind, PathBuf, String)>,
    /// System store files deleted.
    pub system_removed: Vec<PathBuf>,
    /// System store files left because [`RemoveOptions::system`] was not given.
    pub system_left: Vec<PathBuf>,
    /// Files deleted from the state dir.
    pub files_removed: Vec<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// Trust
// ---------------------------------------------------------------------------------------------

/// The TLS trust of one user: the identity under their state dir, the stores under their home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    dir: PathBuf,
    home: PathBuf,
}

impl Trust {
    /// The identity lives in `state_dir/xtx-tls`, the NSS databases under `home`.
    pub fn new(state_dir: &Path, home: &Path) -> Trust {
        Trust {
            dir: state_dir.join(STATE_SUBDIR),
            home: home.to_path_buf(),
        }
    }

    /// This user's: [`crate::config::state_dir`] and the home directory.
    pub fn for_current_user() -> Result<Trust, Error> {
        let state = crate::config::state_dir().ok_or(Error::NoStateDir)?;
        let home = directories::BaseDirs::new()
            .map(|d| d.home_dir().to_path_buf())
            .ok_or(Error::NoHome)?;
        Ok(Trust::new(&state, &home))
    }

    /// `<state dir>/xtx-tls`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate file (PEM).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join(CA_FILE)
    }

    /// The server certificate file (PEM).
    pub fn server_cert_path(&self) -> PathBuf {
        self.dir.join(SERVER_CERT_FILE)
    }

    /// The server key file (PKCS#8 PEM).
    pub fn server_key_path(&self) -> PathBuf {
        self.dir.join(SERVER_KEY_FILE)
    }

    /// The user's NSS database directory, `~/.pki/nssdb`.
    pub fn user_nssdb(&self) -> PathBuf {
        self.home.join(".pki/nssdb")
    }

    /// Make (or renew) the identity when needed and install its CA into every store; see the
    /// module documentation. Idempotent.
    pub fn install(&self, opts: InstallOptions) -> Result<InstallReport, Error> {
        // Fail before making anything when the tools are missing or root is needed.
        let certutil = Certutil::find()?;
        if opts.system {
            require_system_store()?;
        }
        let now = OffsetDateTime::now_utc();
        let existing = self.load_identity();
        let renewal = match &existing {
            Ok(id) => renewal_of(&id.server, now).or(opts.renew.then_some(Renewal::Requested)),
            Err(e) => Some(e.clone()),
        };
        let identity = match (&renewal, existing) {
            (None, Ok(identity)) => identity,
            _ => self.make_identity(now)?,
        };
        let ca_pem = cert::to_pem(&identity.ca.der);

        let mut stores = Vec::new();
        let mut removed_stale = Vec::new();
        let user_db = self.user_nssdb();
        certutil.create(&user_db)?;
        let mut failed = Vec::new();
        for (kind, db) in self.nss_databases() {
            match certutil.install(&db, &identity, &ca_pem) {
                Ok(stale) => {
                    removed_stale.extend(stale);
                    stores.push((kind, db));
                }
                // The user's own database must take it; a broken Firefox profile (or snap
                // Chromium copy) must not keep the endpoint from working elsewhere.
                Err(e) if db != user_db => failed.push((kind, db, e.to_string())),
                Err(e) => return Err(e),
            }
        }
        let system = if opts.system {
            let (file, stale) = system_install(&identity, &ca_pem)?;
            removed_stale.extend(stale);
            Some(file)
        } else {
            None
        };
        Ok(InstallReport {
            renewed: renewal,
            identity,
            stores,
            removed_stale,
            failed,
            system,
        })
    }

    /// Only add the current CA to the system store (root only): for
    /// `sudo certray xtx trust install --system` after the user installed it for themselves.
    pub fn install_system(&self) -> Result<PathBuf, Error> {
        require_system_store()?;
        let identity = self.current()?;
        let ca_pem = cert::to_pem(&identity.ca.der);
        Ok(system_install(&identity, &ca_pem)?.0)
    }

    /// Remove every certray CA from the NSS databases (and with [`RemoveOptions::system`]
    /// from the system store), and delete the server key and certificates.
    pub fn remove(&self, opts: RemoveOptions) -> Result<RemoveReport, Error> {
        if opts.system {
            require_system_store()?;
        }
        let mut report = RemoveReport::default();
        let dbs = self.nss_databases();
        if !dbs.is_empty() {
            let certutil = Certutil::find()?;
            let user_db = self.user_nssdb();
            for (kind, db) in dbs {
                match certutil.remove_all(&db) {
                    Ok(gone) => report.stores.push((kind, db, gone)),
                    Err(e) if db != user_db => report.failed.push((kind, db, e.to_string())),
                    Err(e) => return Err(e),
                }
            }
        }
        let system_files = system_files();
        if opts.system {
            if !system_files.is_empty() {
                for f in &system_files {
                    fs::remove_file(f).map_err(io_error(f))?;
                }
                update_ca_certificates(true)?;
            }
            report.system_removed = system_files;
        } else {
            report.system_left = system_files;
        }
        for name in [SERVER_KEY_FILE, SERVER_CERT_FILE, CA_FILE] {
            let path = self.dir.join(name);
            match fs::remove_file(&path) {
                Ok(()) => report.files_removed.push(path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&path)(e)),
            }
        }
        // The directory only when empty: anything else there is not ours to delete.
        let _ = fs::remove_dir(&self.dir);
        Ok(report)
    }

    /// What is installed where. Never fails on a store it cannot read: the store's `error`
    /// says why.
    pub fn status(&self) -> Status {
        let now = OffsetDateTime::now_utc();
        let (identity, renewal) = match self.load_identity() {
            Ok(id) => {
                let r = renewal_of(&id.server, now);
                (Some(id), r)
            }
            Err(r) => (None, Some(r)),
        };
        let nickname = identity.as_ref().map(|i| i.nickname.as_str());
        let certutil = Certutil::find();
        let mut dbs = self.nss_databases();
        // The user database is reported even when it does not exist yet.
        let user_db = self.user_nssdb();
        if !dbs.iter().any(|(_, p)| *p == user_db) {
            dbs.insert(0, (StoreKind::UserNss, user_db));
        }
        let stores = dbs
            .into_iter()
            .map(|(kind, path)| {
                let mut s = StoreStatus {
                    kind,
                    path,
                    current: None,
                    stale: Vec::new(),
                    error: None,
                };
                if !s.path.join("cert9.db").is_file() {
                    s.error = Some("no NSS database here".into());
                    return s;
                }
                match certutil.as_ref() {
                    Err(e) => s.error = Some(e.to_string()),
                    Ok(certutil) => match certutil.list(&s.path) {
                        Err(e) => s.error = Some(e.to_string()),
                        Ok(entries) => {
                            for (nick, trust) in entries {
                                if Some(nick.as_str()) == nickname {
                                    s.current = Some(trust);
                                } else {
                                    s.stale.push(nick);
                                }
                            }
                        }
                    },
                }
                s
            })
            .collect();

        let mut system = StoreStatus {
            kind: StoreKind::System,
            path: PathBuf::from(SYSTEM_ANCHOR_DIR),
            current: None,
            stale: Vec::new(),
            error: None,
        };
        let mut system_bundle = false;
        for f in system_files() {
            let same = identity.as_ref().is_some_and(|i| {
                fs::read(&f)
                    .ok()
                    .and_then(|pem| CertificateDer::from_pem_slice(&pem).ok())
                    .is_some_and(|der| der.as_ref() == i.ca.der.as_slice())
            });
            if same {
                system.current = Some(NSS_TRUST.into());
            } else {
                system.stale.push(f.display().to_string());
            }
        }
        if let Some(i) = &identity {
            let pem = cert::to_pem(&i.ca.der);
            system_bundle = fs::read_to_string(SYSTEM_BUNDLE)
                .map(|b| b.contains(pem.trim()))
                .unwrap_or(false);
        }
        Status {
            dir: self.dir.clone(),
            identity,
            renewal,
            stores,
            system,
            system_bundle,
        }
    }

    /// The server certificate chain (the server certificate, then the CA) and key.
    pub fn server_identity(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
        let identity = self.current()?;
        let key_path = self.server_key_path();
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| Error::Damaged {
            path: key_path.clone(),
            reason: e.to_string(),
        })?;
        Ok((
            vec![
                CertificateDer::from(identity.server.der),
                CertificateDer::from(identity.ca.der),
            ],
            key,
        ))
    }

    /// The rustls configuration for the TLS listener on 127.0.0.1:21061: TLS 1.2 and 1.3 with
    /// ring, no client authentication, ALPN `http/1.1` (WebSocket upgrades need HTTP/1.1).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, Error> {
        let (chain, key) = self.server_identity()?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// [`Trust::server_config`] as a tokio acceptor.
    pub fn tls_acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, Error> {
        Ok(tokio_rustls::TlsAcceptor::from(self.server_config()?))
    }

    /// The NSS databases to keep: the user's (`~/.pki/nssdb`, when it has a `cert9.db`), the
    /// snap Chromium's, and every Firefox profile with a `cert9.db`.
    pub fn nss_databases(&self) -> Vec<(StoreKind, PathBuf)> {
        let mut dbs = Vec::new();
        for dir in [
            self.user_nssdb(),
            self.home.join("snap/chromium/current/.pki/nssdb"),
        ] {
            if dir.join("cert9.db").is_file() {
                dbs.push((StoreKind::UserNss, dir));
            }
        }
        for root in [
            ".mozilla/firefox",
            "snap/firefox/common/.mozilla/firefox",
            ".var/app/org.mozilla.firefox/.mozilla/firefox",
        ] {
            let Ok(entries) = fs::read_dir(self.home.join(root)) else {
                continue;
            };
            let mut profiles: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("cert9.db").is_file())
                .collect();
            profiles.sort();
            dbs.extend(profiles.into_iter().map(|p| (StoreKind::Firefox, p)));
        }
        dbs
    }

    /// The identity in the state dir, or why there is none usable.
    fn current(&self) -> Result<Identity, Error> {
        self.load_identity().map_err(|r| match r {
            Renewal::NotInstalled => Error::NotInstalled(self.dir.clone()),
            other => Error::Damaged {
                path: self.dir.clone(),
                reason: other.to_string(),
            },
        })
    }

    /// The identity in the state dir, checked: the CA is a certray CA, the server certificate
    /// verifies under it (webpki, with its name constraints) for both names.
    fn load_identity(&self) -> Result<Identity, Renewal> {
        let read = |name: &str| -> Result<Option<Vec<u8>>, Renewal> {
            let path = self.dir.join(name);
            match fs::read(&path) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Renewal::Damaged(format!("{}: {e}", path.display()))),
            }
        };
        let (Some(ca), Some(server), Some(key)) = (
            read(CA_FILE)?,
            read(SERVER_CERT_FILE)?,
            read(SERVER_KEY_FILE)?.map(Zeroizing::new),
        ) else {
            return Err(Renewal::NotInstalled);
        };
        let damaged =
            |what: &str, e: &dyn std::fmt::Display| Renewal::Damaged(format!("{what}: {e}"));
        let ca_der = CertificateDer::from_pem_slice(&ca).map_err(|e| damaged(CA_FILE, &e))?;
        let server_der =
            CertificateDer::from_pem_slice(&server).map_err(|e| damaged(SERVER_CERT_FILE, &e))?;
        let key_der =
            PrivateKeyDer::from_pem_slice(&key).map_err(|e| damaged(SERVER_KEY_FILE, &e))?;
        let ca_cert = cert::parse(&ca_der).map_err(|e| damaged(CA_FILE, &e))?;
        let server_cert = cert::parse(&server_der).map_err(|e| damaged(SERVER_CERT_FILE, &e))?;
        let id = ca_cert
            .subject
            .cn
            .as_deref()
            .and_then(|cn| cn.strip_prefix(NICKNAME_PREFIX))
            .ok_or_else(|| damaged(CA_FILE, &"not a certray XTX CA"))?
            .to_string();
        // Checked as of the middle of its validity: expiry is renewal_of's to report.
        let v = server_cert.validity;
        let middle: OffsetDateTime = v.not_before + (v.not_after - v.not_before) / 2;
        let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(middle.unix_timestamp()).unwrap_or(0),
        ));
        verify_at(&ca_der, &server_der, &[DNS_NAME, "127.0.0.1"], at)
            .map_err(|e| damaged(SERVER_CERT_FILE, &e))?;
        // The key must be the server certificate's.
        rustls::sign::CertifiedKey::from_der(vec![server_der.clone()], key_der, &provider())
            .map_err(|e| damaged(SERVER_KEY_FILE, &e))?;
        Ok(Identity {
            nickname: format!("{NICKNAME_PREFIX}{id}"),
            id,
            ca_sha256: ca_cert.sha256.clone(),
            ca: ca_cert,
            server: server_cert,
        })
    }

    /// A new CA, its server certificate, the CA's key destroyed, the files written.
    fn make_identity(&self, now: OffsetDateTime) -> Result<Identity, Error> {
        let ca = LocalCa::generate(now)?;
        let server = ca.issue_server()?;
        let ca_der = ca.destroy();
        make_private_dir(&self.dir)?;
        // The key first, the CA last: an interrupted write leaves no CA that looks complete.
        write_private(&self.server_key_path(), server.key_pem.as_bytes())?;
        write_private(&self.server_cert_path(), server.cert_pem().as_bytes())?;
        write_private(&self.ca_path(), cert::to_pem(&ca_der).as_bytes())?;
        self.current()
    }
}

/// Whether `server` must be renewed at `now`.
pub fn renewal_of(server: &Certificate, now: OffsetDateTime) -> Option<Renewal> {
    if now >= server.validity.not_after {
        Some(Renewal::Expired)
    } else if now < server.validity.not_before {
        Some(Renewal::Damaged(
            "the server certificate is not valid yet".into(),
        ))
    } else {
        let days_left = server.days_left(now);
        (days_left < RENEW_BEFORE_DAYS).then_some(Renewal::Expiring { days_left })
    }
}

/// Verify `server` under the CA `ca` for `127.0.0.1` and `localhost`, as a browser would
/// (rustls-webpki, which applies the CA's name constraints).
pub fn verify_server(ca: &CertificateDer<'_>, server: &CertificateDer<'_>) -> Result<(), Error> {
    verify_for(ca, server, &[DNS_NAME, "127.0.0.1"])
}

/// Verify `server` under `ca` for each of `names` (rustls-webpki), now.
pub fn verify_for(
    ca: &CertificateDer<'_>,
    server: &CertificateDer<'_>,
    names: &[&str],
) -> Result<(), Error> {
    verify_at(ca, server, names, UnixTime::now())
}

fn verify_at(
    ca: &CertificateDer<'_>,
    server: &CertificateDer<'_>,
    names: &[&str],
    at: UnixTime,
) -> Result<(), Error> {
    use rustls::client::danger::ServerCertVerifier as _;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone().into_owned())?;
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| Error::Tls(rustls::Error::General(e.to_string())))?;
    for name in names {
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| Error::Tls(rustls::Error::General(e.to_string())))?;
        verifier.verify_server_cert(server, &[], &name, &[], at)?;
    }
    Ok(())
}

/// ring, as rcgen uses. rustls 0.23.48 deprecates ring's provider for lacking post-quantum
/// key exchange (X25519MLKEM768 needs aws-lc-rs and its C/CMake build); this traffic never
/// leaves the loopback interface, where there is no eavesdropper to record it for later.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn ssl_trusted(flags: &str) -> bool {
    flags.split(',').next().is_some_and(|ssl| ssl.contains('C'))
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

/// `dir` (and missing parents) with mode 0700; an existing `dir` is set to 0700.
fn make_private_dir(dir: &Path) -> Result<(), Error> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io_error(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_error(dir))?;
    }
    Ok(())
}

/// Write `bytes` to `path` with mode 0600, through a temporary file renamed over it.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(io_error(&tmp))?;
    file.write_all(bytes).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_error(path))
}

// ---------------------------------------------------------------------------------------------
// Programs
// ---------------------------------------------------------------------------------------------

/// A program certray runs and the Debian package that has it.
#[derive(Debug, Clone, Copy)]
struct Tool {
    program: &'static str,
    package: &'static str,
}

impl Tool {
    /// On PATH, or in the system directories a non-login PATH may lack.
    fn find(self) -> Result<PathBuf, Error> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let extra = ["/usr/bin", "/usr/sbin", "/sbin"].map(PathBuf::from);
        std::env::split_paths(&path)
            .chain(extra)
            .map(|dir| dir.join(self.program))
            .find(|p| is_executable(p))
            .ok_or(Error::MissingProgram {
                program: self.program,
                package: self.package,
            })
    }
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// Run `program args…` with stdin closed (a password prompt fails instead of hanging);
/// its stdout, or an error with its output.
fn run(program: &Path, args: &[&OsStr]) -> Result<String, Error> {
    let command = || {
        std::iter::once(program.as_os_str())
            .chain(args.iter().copied())
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(io_error(program))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: command(),
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .trim()
            .to_string(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// NSS (certutil)
// ---------------------------------------------------------------------------------------------

/// `certutil` (libnss3-tools) on NSS databases in `sql:` format.
struct Certutil(PathBuf);

impl Certutil {
    fn find() -> Result<Certutil, Error> {
        CERTUTIL.find().map(Certutil)
    }

    /// `certutil OP -d sql:DIR REST…`.
    fn run(&self, op: &str, dir: &Path, rest: &[&OsStr]) -> Result<String, Error> {
        let mut db = OsString::from("sql:");
        db.push(dir);
        let mut args: Vec<&OsStr> = vec![op.as_ref(), "-d".as_ref(), &db];
        args.extend_from_slice(rest);
        run(&self.0, &args)
    }

    /// Create the database in `dir` (mode 0700, empty password) when it has none.
    fn create(&self, dir: &Path) -> Result<(), Error> {
        if !dir.join("cert9.db").is_file() {
            make_private_dir(dir)?;
            self.run("-N", dir, &["--empty-password".as_ref()])?;
        }
        Ok(())
    }

    /// certray's CAs in the database: (nickname, trust flags).
    fn list(&self, dir: &Path) -> Result<Vec<(String, String)>, Error> {
        let out = self.run("-L", dir, &[])?;
        Ok(parse_certutil_list(&out)
            .into_iter()
            .filter(|(nick, _)| nick.starts_with(NICKNAME_PREFIX))
            .collect())
    }

    /// Add the current CA to `dir` (or fix its trust), and delete earlier certray CAs there.
    /// Returns the nicknames deleted.
    fn install(&self, dir: &Path, identity: &Identity, ca_pem: &str) -> Result<Vec<String>, Error> {
        let nick: &OsStr = identity.nickname.as_ref();
        let entries = self.list(dir)?;
        let mut removed = Vec::new();
        for (old, _) in entries.iter().filter(|(n, _)| *n != identity.nickname) {
            self.delete(dir, old)?;
            removed.push(old.clone());
        }
        match entries.iter().find(|(n, _)| *n == identity.nickname) {
            Some((_, trust)) if trust == NSS_TRUST => {}
            Some(_) => {
                self.run(
                    "-M",
                    dir,
                    &["-n".as_ref(), nick, "-t".as_ref(), NSS_TRUST.as_ref()],
                )?;
            }
            None => {
                // certutil reads the certificate from a file: a temporary one in the database
                // directory (the CA certificate is public).
                let tmp = dir.join(format!("certray-ca-{}.pem", identity.id));
                write_private(&tmp, ca_pem.as_bytes())?;
                let trust = ["-n".as_ref(), nick, "-t".as_ref(), NSS_TRUST.as_ref()];
                let file = ["-a".as_ref(), "-i".as_ref(), tmp.as_os_str()];
                let added = self.run("-A", dir, &[&trust[..], &file[..]].concat());
                let _ = fs::remove_file(&tmp);
                added?;
            }
        }
        Ok(removed)
    }

    /// Delete every certificate under `nick` (NSS deletes one per call).
    fn delete(&self, dir: &Path, nick: &str) -> Result<(), Error> {
        // A bound, in case a database kept answering success without deleting.
        for _ in 0..16 {
            if !self.list(dir)?.iter().any(|(n, _)| n == nick) {
                break;
            }
            self.run("-D", dir, &["-n".as_ref(), nick.as_ref()])?;
        }
        Ok(())
    }

    /// Delete every certray CA from `dir`; the nicknames deleted.
    fn remove_all(&self, dir: &Path) -> Result<Vec<String>, Error> {
        let mut removed: Vec<String> = Vec::new();
        for (nick, _) in self.list(dir)? {
            if !removed.contains(&nick) {
                self.delete(dir, &nick)?;
                removed.push(nick);
            }
        }
        Ok(removed)
    }
}

/// `certutil -L`'s table: a header, then `nickname   trust` per line (the nickname may hold
/// spaces; the trust flags are the last word).
fn parse_certutil_list(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|line| {
            let (nick, trust) = line.trim_end().rsplit_once(char::is_whitespace)?;
            let nick = nick.trim_end();
            (!nick.is_empty() && trust.matches(',').count() == 2)
                .then(|| (nick.to_string(), trust.to_string()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The system store (Debian: update-ca-certificates)
// ---------------------------------------------------------------------------------------------

/// Root, on a platform whose store certray can change.
fn require_system_store() -> Result<(), Error> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err(Error::NotRoot);
        }
        UPDATE_CA_CERTIFICATES.find()?;
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(Error::SystemStoreUnsupported)
    }
}

/// certray's files in the system anchor directory.
fn system_files() -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(SYSTEM_ANCHOR_DIR) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(SYSTEM_FILE_PREFIX) && n.ends_with(".crt"))
        })
        .collect();
    files.sort();
    files
}

/// Write the CA to the anchor directory (0644: every program reads it), delete earlier
/// certray CAs there, and run `update-ca-certificates`. The file and the stale ones removed.
fn system_install(identity: &Identity, ca_pem: &str) -> Result<(PathBuf, Vec<String>), Error> {
    let dir = Path::new(SYSTEM_ANCHOR_DIR);
    let file = dir.join(format!("{SYSTEM_FILE_PREFIX}{}.crt", identity.id));
    let mut stale = Vec::new();
    for f in system_files().into_iter().filter(|f| *f != file) {
        fs::remove_file(&f).map_err(io_error(&f))?;
        stale.push(f.display().to_string());
    }
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    write_private(&file, ca_pem.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).map_err(io_error(&file))?;
    }
    update_ca_certificates(!stale.is_empty())?;
    Ok((file, stale))
}

/// `update-ca-certificates`, with `--fresh` after a file was deleted: on Debian 12 a plain run
/// rebuilds the bundle without it but leaves its `/etc/ssl/certs` links dangling (it only
/// cleans them up when something was added), and `--fresh` relinks everything.
fn update_ca_certificates(fresh: bool) -> Result<(), Error> {
    let args: &[&OsStr] = if fresh { &["--fresh".as_ref()] } else { &[] };
    run(&UPDATE_CA_CERTIFICATES.find()?, args)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certutil_listing_parses_nicknames_with_spaces() {
        let out = "\nCertificate Nickname                                         Trust Attributes\n                                                             SSL,S/MIME,JAR/XPI\n\ncertray XTX local CA 0123456789abcdef                        C,,  \nsome other CA                                                CT,C,C\n";
        assert_eq!(
            parse_certutil_list(out),
            vec![
                (
                    "certray XTX local CA 0123456789abcdef".to_string(),
                    "C,,".to_string()
                ),
                ("some other CA".to_string(), "CT,C,C".to_string()),
            ]
        );
    }

    #[test]
    fn a_missing_program_names_its_package() {
        let e = Tool {
            program: "certray-no-such-program",
            package: "libnss3-tools",
        }
        .find()
        .unwrap_err();
        assert!(
            e.to_string().contains("apt-get install libnss3-tools"),
            "{e}"
        );
        assert_eq!(e.code(), Code::Io);
    }

    #[test]
    fn trust_flags_for_tls_servers() {
        assert!(ssl_trusted("C,,"));
        assert!(ssl_trusted("CT,C,C"));
        assert!(!ssl_trusted(",C,"));
        assert!(!ssl_trusted("p,p,p"));
    }

    #[test]
    fn server_certificate_verifies_only_within_the_constraints() {
        let now = OffsetDateTime::now_utc();
        let ca = LocalCa::generate(now).unwrap();
        let server = ca.issue_server().unwrap();
        let outside = ca.issue(&["example.com"]).unwrap();
        let other_ip = ca.issue(&["127.0.0.2"]).unwrap();
        let sub = ca.issue(&["a.localhost"]).unwrap();
        let ca_der = ca.destroy();
        verify_server(&ca_der, &server.cert_der).unwrap();
        // webpki applies the CA's name constraints.
        let e = verify_for(&ca_der, &outside.cert_der, &["example.com"]).unwrap_err();
        assert!(format!("{e}").contains("NameConstraint"), "{e}");
        let e = verify_for(&ca_der, &other_ip.cert_der, &["127.0.0.2"]).unwrap_err();
        assert!(format!("{e}").contains("NameConstraint"), "{e}");
        // A DNS constraint permits its subdomains (RFC 5280); *.localhost is loopback too.
        verify_for(&ca_der, &sub.cert_der, &["a.localhost"]).unwrap();
    }

    #[test]
    fn renewal_window() {
        let now = OffsetDateTime::now_utc();
        let ca = LocalCa::generate(now).unwrap();
        let server = cert::parse(&ca.issue_server().unwrap().cert_der).unwrap();
        assert_eq!(renewal_of(&server, now), None);
        let days = server.validity.not_after - server.validity.not_before;
        assert!(days <= Duration::days(VALIDITY_DAYS) + Duration::hours(1));
        assert!(days < Duration::days(825));
        assert_eq!(
            renewal_of(&server, server.validity.not_after - Duration::days(10)),
            Some(Renewal::Expiring { days_left: 10 })
        );
        assert_eq!(
            renewal_of(&server, server.validity.not_after),
            Some(Renewal::Expired)
        );
    }
}
