//! SoftHSM2 (package `softhsm2`, 2.6.1 on Debian 12): a private token store per test, in a
//! temporary directory. SoftHSM never locks a PIN (wrong PINs only set "user PIN count low");
//! use opencryptoki for that.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::config::write_config;
use super::pkcs11::{Select, import_objects, keygen_pair, raw_cert};
use super::{fixture, pkcs11_tool, pkcs11_tool_run, require, require_file, run};

/// SoftHSM2's PKCS#11 module on Debian (package `softhsm2`).
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// [`SOFTHSM_MODULE`], after checking that it exists (panics naming `softhsm2` otherwise).
pub fn softhsm_module() -> PathBuf {
    require_file(Path::new(SOFTHSM_MODULE), "softhsm2")
}

/// A private SoftHSM2 token store in a temporary directory (removed on drop).
///
/// Only processes given [`SoftHsm::env`] (`SOFTHSM2_CONF`) see its tokens. SoftHSM reads
/// `SOFTHSM2_CONF` at C_Initialize, and a process does not see tokens created by another
/// process after its own C_Initialize. SoftHSM never locks a PIN.
pub struct SoftHsm {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl SoftHsm {
    /// A temp dir with `softhsm2.conf` (`directories.tokendir = <dir>/tokens`,
    /// `objectstore.backend = file`, `log.level = ERROR`) and an empty `tokens/`.
    pub fn new() -> SoftHsm {
        softhsm_module();
        require("softhsm2-util", "softhsm2");
        pkcs11_tool();
        let dir = tempfile::Builder::new()
            .prefix("certray-softhsm-")
            .tempdir()
            .expect("tempdir");
        let tokens = dir.path().join("tokens");
        fs::create_dir(&tokens).expect("mkdir tokens");
        let conf = dir.path().join("softhsm2.conf");
        fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("write softhsm2.conf");
        SoftHsm { dir, conf }
    }

    /// The temporary directory (put scratch files here; it goes away with `self`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `softhsm2.conf` file.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The module path ([`SOFTHSM_MODULE`]).
    pub fn module(&self) -> PathBuf {
        PathBuf::from(SOFTHSM_MODULE)
    }

    /// The environment a process needs to see this store: `[("SOFTHSM2_CONF", conf)]`.
    /// Use with `Command::envs(hsm.env())`.
    pub fn env(&self) -> [(&'static str, OsString); 1] {
        [("SOFTHSM2_CONF", self.conf.clone().into_os_string())]
    }

    /// A `Command` for `program` with [`SoftHsm::env`] set.
    pub fn command<S: AsRef<OsStr>>(&self, program: S) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(self.env());
        cmd
    }

    /// `softhsm2-util --init-token --free --label L --so-pin S --pin P`.
    pub fn init_token(&self, label: &str, so_pin: &str, pin: &str) {
        let util = require("softhsm2-util", "softhsm2");
        run(self.command(util).args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            so_pin,
            "--pin",
            pin,
        ]));
    }

    /// Import into token `label`, all objects with CKA_ID `id_hex` and CKA_LABEL `obj_label`:
    /// the certificate (DER) and/or the private key (PKCS#8 DER) plus its public key (derived
    /// with `openssl pkey -pubout`, written as DER SPKI). RSA and EC keys work; SM2 keys do not
    /// (`pkcs11-tool`: "Unsupported key type: 0x0").
    pub fn import(
        &self,
        label: &str,
        pin: &str,
        id_hex: &str,
        cert_der: Option<&Path>,
        key_pkcs8_der: Option<&Path>,
        obj_label: &str,
    ) {
        import_objects(
            &self.module(),
            &self.env(),
            Select::Label(label),
            self.dir(),
            pin,
            id_hex,
            cert_der,
            key_pkcs8_der,
            obj_label,
        );
    }

    /// A token `label` holding the rsa-utf8 certificate (北京云杉) and its key, CKA_ID 01 and
    /// object label "rsa-utf8": the one key most tests need.
    pub fn rsa_utf8_token(&self, label: &str, so_pin: &str, pin: &str) {
        self.init_token(label, so_pin, pin);
        self.import(
            label,
            pin,
            "01",
            Some(&fixture("rsa-utf8.der")),
            Some(&fixture("rsa-utf8.key.der")),
            "rsa-utf8",
        );
    }

    /// Store arbitrary `bytes` (garbage, a truncated certificate, …) as an X.509 certificate
    /// object (through [`RAW_CERT_PY`], since `pkcs11-tool` refuses non-certificates).
    pub fn write_raw_cert(
        &self,
        label: &str,
        pin: &str,
        id_hex: &str,
        bytes: &[u8],
        obj_label: &str,
    ) {
        raw_cert(
            &self.module(),
            &self.env(),
            Select::Label(label),
            self.dir(),
            pin,
            id_hex,
            bytes,
            obj_label,
        );
    }

    /// Generate a key pair on the token: `key_type` as `pkcs11-tool --key-type` takes it
    /// (`rsa:2048`, `EC:prime256v1`, `EC:secp384r1`). Returns pkcs11-tool's output.
    pub fn keygen(
        &self,
        label: &str,
        pin: &str,
        key_type: &str,
        id_hex: &str,
        obj_label: &str,
    ) -> Output {
        keygen_pair(
            &self.module(),
            &self.env(),
            Select::Label(label),
            pin,
            key_type,
            id_hex,
            obj_label,
        )
    }

    /// `pkcs11-tool --token-label L [-l --pin P] --list-objects` stdout.
    pub fn list_objects(&self, label: &str, pin: Option<&str>) -> String {
        let mut args = vec!["--token-label", label];
        if let Some(pin) = pin {
            args.extend(["-l", "--pin", pin]);
        }
        args.push("--list-objects");
        let out = pkcs11_tool_run(&self.module(), &self.env(), &args);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `pkcs11-tool -T` (slots with a token, their flags) stdout.
    pub fn list_token_slots(&self) -> String {
        let out = pkcs11_tool_run(&self.module(), &self.env(), &["--list-token-slots"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Write `<dir>/certray.toml` that loads only SoftHSM and return its path:
    /// `[pkcs11] modules = ["/usr/lib/softhsm/libsofthsm2.so"] use_defaults = false`.
    /// certray must also get [`SoftHsm::env`] to see this store.
    pub fn config_file(&self) -> PathBuf {
        write_config(&self.dir().join("certray.toml"), &self.module())
    }
}
