//! The closed set of user-facing error codes shared by every interface (CLI, bridge, UI).
//!
//! Each module has its own error enum carrying the details; each maps to exactly one
//! [`Code`] here, and each code has a zh-CN and an en message plus a hint that says what
//! to do. Details (paths, PKCS#11 return values) go to logs and `detail` fields, never
//! into the message.

use crate::i18n::Lang;

/// A user-facing error code. The set is closed: adding one means adding its messages here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Code {
    ModuleLoadFailed,
    TokenNotFound,
    CertNotFound,
    CertInvalid,
    NoPrivateKey,
    PinIncorrect,
    PinLocked,
    PinLenRange,
    PinFinalTry,
    PinMismatch,
    PinRequired,
    TokenRemoved,
    UnsupportedAlgorithm,
    ConfigInvalid,
    Io,
    Internal,
    BadRequest,
    OriginNotAllowed,
    HostNotAllowed,
    PagePinNotAllowed,
    UnsupportedMediaType,
    PayloadTooLarge,
    UserCancelled,
    AlreadyRunning,
    SignatureInvalid,
    SkfHostCrashed,
    SkfHostHung,
    NotACertificate,
    UsccInvalid,
}

impl Code {
    /// Every code, for tests and documentation.
    pub const ALL: [Code; 29] = [
        Code::ModuleLoadFailed,
        Code::TokenNotFound,
        Code::CertNotFound,
        Code::CertInvalid,
        Code::NoPrivateKey,
        Code::PinIncorrect,
        Code::PinLocked,
        Code::PinLenRange,
        Code::PinFinalTry,
        Code::PinMismatch,
        Code::PinRequired,
        Code::TokenRemoved,
        Code::UnsupportedAlgorithm,
        Code::ConfigInvalid,
        Code::Io,
        Code::Internal,
        Code::BadRequest,
        Code::OriginNotAllowed,
        Code::HostNotAllowed,
        Code::PagePinNotAllowed,
        Code::UnsupportedMediaType,
        Code::PayloadTooLarge,
        Code::UserCancelled,
        Code::AlreadyRunning,
        Code::SignatureInvalid,
        Code::SkfHostCrashed,
        Code::SkfHostHung,
        Code::NotACertificate,
        Code::UsccInvalid,
    ];

    /// The stable wire name, e.g. `PIN_INCORRECT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::ModuleLoadFailed => "MODULE_LOAD_FAILED",
            Code::TokenNotFound => "TOKEN_NOT_FOUND",
            Code::CertNotFound => "CERT_NOT_FOUND",
            Code::CertInvalid => "CERT_INVALID",
            Code::NoPrivateKey => "NO_PRIVATE_KEY",
            Code::PinIncorrect => "PIN_INCORRECT",
            Code::PinLocked => "PIN_LOCKED",
            Code::PinLenRange => "PIN_LEN_RANGE",
            Code::PinFinalTry => "PIN_FINAL_TRY",
            Code::PinMismatch => "PIN_MISMATCH",
            Code::PinRequired => "PIN_REQUIRED",
            Code::TokenRemoved => "TOKEN_REMOVED",
            Code::UnsupportedAlgorithm => "UNSUPPORTED_ALGORITHM",
            Code::ConfigInvalid => "CONFIG_INVALID",
            Code::Io => "IO",
            Code::Internal => "INTERNAL",
            Code::BadRequest => "BAD_REQUEST",
            Code::OriginNotAllowed => "ORIGIN_NOT_ALLOWED",
            Code::HostNotAllowed => "HOST_NOT_ALLOWED",
            Code::PagePinNotAllowed => "PAGE_PIN_NOT_ALLOWED",
            Code::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Code::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Code::UserCancelled => "USER_CANCELLED",
            Code::AlreadyRunning => "ALREADY_RUNNING",
            Code::SignatureInvalid => "SIGNATURE_INVALID",
            Code::SkfHostCrashed => "SKF_HOST_CRASHED",
            Code::SkfHostHung => "SKF_HOST_HUNG",
            Code::NotACertificate => "NOT_A_CERTIFICATE",
            Code::UsccInvalid => "USCC_INVALID",
        }
    }

    /// What went wrong, in the user's language.
    pub fn message(self, lang: Lang) -> &'static str {
        let (zh, en) = match self {
            Code::ModuleLoadFailed => (
                "无法加载密钥驱动（PKCS#11 模块或 SKF 驱动库）",
                "A key library (PKCS#11 module or SKF library) could not be loaded",
            ),
            Code::TokenNotFound => (
                "未找到该密钥（USB Key）",
                "The token (USB key) was not found",
            ),
            Code::CertNotFound => ("未找到该证书", "The certificate was not found"),
            Code::CertInvalid => ("证书数据无法解析", "The certificate data cannot be read"),
            Code::NoPrivateKey => (
                "该证书在密钥中没有对应的私钥",
                "The token holds no private key for this certificate",
            ),
            Code::PinIncorrect => ("密码（PIN）错误", "The PIN is incorrect"),
            Code::PinLocked => ("密码（PIN）已锁定", "The PIN is locked"),
            Code::PinLenRange => (
                "新密码长度不符合该密钥的要求",
                "The new PIN's length is outside the token's range",
            ),
            Code::PinFinalTry => (
                "只剩最后一次输入密码的机会，再错一次密钥将被锁定",
                "Only one PIN attempt is left; one more wrong PIN locks the token",
            ),
            Code::PinMismatch => ("两次输入的新密码不一致", "The two new PINs do not match"),
            Code::PinRequired => ("需要输入密码（PIN）", "A PIN is required"),
            Code::TokenRemoved => ("密钥已被拔出", "The token was removed"),
            Code::UnsupportedAlgorithm => (
                "该密钥不支持所需的算法",
                "The token does not support the required algorithm",
            ),
            Code::ConfigInvalid => ("配置文件有误", "The configuration file is invalid"),
            Code::Io => ("读写文件失败", "A file could not be read or written"),
            Code::Internal => ("内部错误", "Internal error"),
            Code::BadRequest => ("请求格式有误", "The request is malformed"),
            Code::OriginNotAllowed => (
                "该网站未获准使用证书",
                "This website may not use the certificates",
            ),
            Code::HostNotAllowed => ("请求的主机名不被允许", "The request's Host is not allowed"),
            Code::PagePinNotAllowed => (
                "网页不得直接提交密码（PIN）",
                "Web pages may not submit the PIN",
            ),
            Code::UnsupportedMediaType => (
                "请求内容类型必须是 application/json",
                "The request body must be application/json",
            ),
            Code::PayloadTooLarge => ("请求内容过大", "The request body is too large"),
            Code::UserCancelled => ("用户已取消操作", "The user cancelled"),
            Code::AlreadyRunning => ("证书助手已在运行", "certray is already running"),
            Code::SignatureInvalid => (
                "密钥生成的签名无法用证书验证，已拒绝使用",
                "The token's signature does not verify with the certificate and was withheld",
            ),
            Code::SkfHostCrashed => (
                "密钥厂商的 SKF 驱动库崩溃了，本次操作未完成",
                "The key vendor's SKF library crashed; the operation did not complete",
            ),
            Code::SkfHostHung => (
                "密钥厂商的 SKF 驱动库无响应，已被终止",
                "The key vendor's SKF library stopped responding and was stopped",
            ),
            Code::NotACertificate => ("该文件不是证书", "The file is not a certificate"),
            Code::UsccInvalid => (
                "统一社会信用代码格式有误",
                "The unified social credit code is malformed",
            ),
        };
        match lang {
            Lang::ZhCn => zh,
            Lang::En => en,
        }
    }

    /// What the user can do about it, in the user's language.
    pub fn hint(self, lang: Lang) -> &'static str {
        let (zh, en) = match self {
            Code::ModuleLoadFailed => (
                "请确认已安装密钥厂商的驱动，并检查配置文件中的模块路径；运行 certray doctor 查看详情",
                "Install the token vendor's driver and check the module path in the config file; run `certray doctor` for details",
            ),
            Code::TokenNotFound => (
                "请插入 USB Key 后重试；运行 certray list 查看已识别的密钥",
                "Insert the USB key and try again; run `certray list` to see the tokens certray recognises",
            ),
            Code::CertNotFound => (
                "运行 certray list 查看可用证书的编号",
                "Run `certray list` to see the ids of the available certificates",
            ),
            Code::CertInvalid => (
                "证书可能已损坏，请联系发证机构（CA）重新写入证书",
                "The certificate may be damaged; ask the issuing CA to write it again",
            ),
            Code::NoPrivateKey => (
                "请选择带私钥的签名证书。若已输入密码：密码正确，已登录密钥查找，确实没有该私钥；若本应有私钥，请联系发证机构（CA）",
                "Choose a signing certificate that has a private key. If you entered the PIN: it was correct and the key was looked up after login, and it is really not there; if it should be, contact the issuing CA",
            ),
            Code::PinIncorrect => (
                "请核对密码后重试，注意大小写；多次输错会锁定密钥",
                "Check the PIN and try again (it is case sensitive); repeated wrong PINs lock the token",
            ),
            Code::PinLocked => (
                "请使用管理员密码或发证机构（CA）提供的解锁授权码解锁：certray pin unlock",
                "Unlock it with the admin (SO) PIN or the unlock code from your CA: `certray pin unlock`",
            ),
            Code::PinLenRange => (
                "请按提示的长度范围重新设置密码",
                "Choose a PIN whose length is within the range shown",
            ),
            Code::PinFinalTry => (
                "确认密码无误后，使用 --force 明确确认再试一次",
                "Make sure the PIN is right, then confirm explicitly with --force",
            ),
            Code::PinMismatch => (
                "请重新输入并确认新密码",
                "Enter and confirm the new PIN again",
            ),
            Code::PinRequired => (
                "需要密钥的用户密码（PIN）：请在证书助手的密码对话框中输入；命令行可用 --pin-stdin 从标准输入读取",
                "The token's user PIN is needed: enter it in certray's PIN dialog; on the command line, --pin-stdin reads it from standard input",
            ),
            Code::TokenRemoved => ("请重新插入密钥后重试", "Insert the token again and retry"),
            Code::UnsupportedAlgorithm => (
                "请换用其他证书或摘要算法，或安装支持该算法的厂商驱动",
                "Use another certificate or hash, or install a vendor module that supports the algorithm",
            ),
            Code::ConfigInvalid => (
                "请按提示修改配置文件；运行 certray config check 检查",
                "Fix the configuration file as shown; check it with `certray config check`",
            ),
            Code::Io => (
                "请检查文件路径和权限",
                "Check the file path and its permissions",
            ),
            Code::Internal => (
                "请重试；若问题持续，请附上日志报告问题",
                "Try again; if it keeps happening, report it with the log",
            ),
            Code::BadRequest => (
                "请检查请求的 JSON 字段和 Base64 编码",
                "Check the request's JSON fields and base64 encoding",
            ),
            Code::OriginNotAllowed => (
                "请在证书助手中允许该网站，或将其加入配置文件的 [bridge] allowed_origins",
                "Allow the website in certray, or add it to [bridge] allowed_origins in the config",
            ),
            Code::HostNotAllowed => (
                "请通过 127.0.0.1、localhost 或 [::1] 访问证书助手",
                "Reach certray through 127.0.0.1, localhost or [::1]",
            ),
            Code::PagePinNotAllowed => (
                "请在证书助手自己的对话框中输入密码；旧版网站可加入 [bridge] page_pin_origins",
                "Enter the PIN in certray's own dialog; legacy portals can be listed in [bridge] page_pin_origins",
            ),
            Code::UnsupportedMediaType => (
                "请以 Content-Type: application/json 发送请求",
                "Send the request with Content-Type: application/json",
            ),
            Code::PayloadTooLarge => (
                "签名数据不得超过 16 MiB，其他请求不得超过 64 KiB",
                "Data to sign may be at most 16 MiB, other requests 64 KiB",
            ),
            Code::UserCancelled => (
                "如需继续，请重新发起操作",
                "Start the operation again to continue",
            ),
            Code::AlreadyRunning => (
                "每个用户只需运行一个证书助手；如需重启，请先退出正在运行的那个",
                "One certray per user is enough; to restart it, quit the running one first",
            ),
            Code::SignatureInvalid => (
                "密钥中的私钥与证书不匹配，或厂商驱动计算有误：请联系发证机构（CA）检查或重新写入证书；运行 certray doctor 查看详情",
                "The token's private key does not match the certificate, or the vendor library computes wrongly: ask the issuing CA to check or rewrite the certificate; run `certray doctor` for details",
            ),
            Code::SkfHostCrashed => (
                "证书助手已重新启动该驱动库，请重试；若反复出现，请运行 certray doctor 并联系密钥厂商",
                "certray has restarted the library; try again. If it keeps happening, run `certray doctor` and contact the key vendor",
            ),
            Code::SkfHostHung => (
                "请拔出密钥再插入后重试；若反复出现，请运行 certray doctor 并联系密钥厂商",
                "Unplug the key, plug it in again and retry; if it keeps happening, run `certray doctor` and contact the key vendor",
            ),
            Code::NotACertificate => (
                "请选择证书文件（.cer、.crt、.der、.pem 或 .p7b）；.pfx/.p12 文件含私钥，请先从中导出证书",
                "Choose a certificate file (.cer, .crt, .der, .pem or .p7b); a .pfx/.p12 file holds a private key: export the certificate from it first",
            ),
            Code::UsccInvalid => (
                "统一社会信用代码为 18 位数字和大写字母，最后一位是校验码（GB 32100）；请对照营业执照核对",
                "A unified social credit code is 18 digits and capital letters, the last one a check character (GB 32100); compare it with the business licence",
            ),
        };
        match lang {
            Lang::ZhCn => zh,
            Lang::En => en,
        }
    }

    /// The process exit code the CLI uses for this error (documented in the README).
    pub fn exit_code(self) -> i32 {
        match self {
            Code::Internal => 1,
            Code::ConfigInvalid => 3,
            Code::Io => 4,
            Code::ModuleLoadFailed => 10,
            Code::TokenNotFound | Code::TokenRemoved => 11,
            Code::CertNotFound | Code::CertInvalid | Code::NoPrivateKey | Code::NotACertificate => {
                12
            }
            Code::PinIncorrect => 20,
            Code::PinLocked => 21,
            Code::PinFinalTry => 22,
            Code::PinLenRange | Code::PinMismatch => 23,
            Code::PinRequired => 24,
            Code::UnsupportedAlgorithm => 30,
            Code::BadRequest
            | Code::UnsupportedMediaType
            | Code::PayloadTooLarge
            | Code::UsccInvalid => 5,
            Code::OriginNotAllowed | Code::HostNotAllowed | Code::PagePinNotAllowed => 40,
            Code::UserCancelled => 41,
            Code::AlreadyRunning => 42,
            Code::SignatureInvalid => 31,
            Code::SkfHostCrashed | Code::SkfHostHung => 13,
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_distinct_name_and_both_languages() {
        let mut names = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(names.insert(code.as_str()), "duplicate name {code}");
            for lang in [Lang::ZhCn, Lang::En] {
                assert!(!code.message(lang).is_empty());
                assert!(!code.hint(lang).is_empty());
            }
            assert_ne!(code.message(Lang::ZhCn), code.message(Lang::En));
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_')
            );
        }
    }
}
