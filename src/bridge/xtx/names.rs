//! Function names: the aliases clients and pages use, what certray offers, and what it
//! refuses whatever the page says (PORTAL-PROTOCOLS.md §1.2).

const EMPTY: &str = "";
const FALSE: &str = "false";

/// The wire name a client's alias stands for (clients send the `SOF_` names; some pages
/// call the aliases directly).
pub fn canonical(func: &str) -> &str {
    match func {
        "GetUserList" => "SOF_GetUserList",
        "GetSignCert" => "SOF_ExportUserCert",
        "GetExchCert" => "SOF_ExportExChangeUserCert",
        "VerifyUserPIN" => "SOF_Login",
        "GetUserPINRetryCount" | "SOF_GetRetryCount" => "SOF_GetPinRetryCount",
        "ChangeUserPassword" => "SOF_ChangePassWd",
        "GetCertBasicinfo" => "SOF_GetCertInfo",
        "GetExtCertInfoByOID" => "SOF_GetCertInfoByOid",
        "GetCertEntity" => "SOF_GetCertEntity",
        "SignedData" => "SOF_SignData",
        "VerifySignedData" => "SOF_VerifySignedData",
        "GenerateRandom" => "SOF_GenRandom",
        "ValidateCert" => "SOF_ValidateCert",
        "Logout" => "SOF_Logout",
        "SetSignMethod" => "SOF_SetSignMethod",
        "GetPicture" | "GetPic1" => "GetPic",
        "GetEnvVersion" | "SOF_GetProductVersion" => "SOF_GetVersion",
        other => other,
    }
}

/// The functions certray answers (canonical names).
pub const OFFERED: [&str; 37] = [
    "SOF_GetVersion",
    "SOF_GetUserList",
    "GetDeviceInfo",
    "GetDeviceCount",
    "GetAllDeviceSN",
    "IsDeviceExist",
    "SOF_ExportUserCert",
    "SOF_ExportExChangeUserCert",
    "SOF_Login",
    "SOF_LoginEx",
    "SOF_Logout",
    "SOF_IsLogin",
    "SOF_GetPinRetryCount",
    "SOF_ChangePassWd",
    "SOF_GetCertInfo",
    "SOF_GetCertInfoByOid",
    "SOF_GetCertEntity",
    "SOF_SignData",
    "SOF_SignDataBase64",
    "SOF_VerifySignedData",
    "SOF_VerifySignedDataBase64",
    "SOF_SignMessage",
    "SOF_SignMessageBase64",
    "SOF_GenRandom",
    "SOF_ValidateCert",
    "SOF_HashData",
    "SOF_SetSignMethod",
    "SOF_GetSignMethod",
    "SOF_SetEncryptMethod",
    "SOF_GetEncryptMethod",
    "SOF_GetLastError",
    "SOF_GetLastErrMsg",
    "SOF_Base64Encode",
    "SOF_Base64Decode",
    "GetPic",
    "ConvertPicFormat",
    "SOF_GetLastLoginCertID",
];

/// Whether certray answers `canonical`.
pub fn is_offered(canonical: &str) -> bool {
    OFFERED.contains(&canonical)
}

/// Whether `name` writes the device, touches files or unlocks a PIN: refused over the
/// protocol, whatever the page says (§1.2). Answers whether it reports with `"false"`.
pub fn refused(name: &str) -> Option<&'static str> {
    const WRITERS: [&str; 17] = [
        "InitDevice",
        "Write",
        "Delete",
        "Unlock",
        "Import",
        "Change",
        "Create",
        "Enable",
        "Set",
        "Generate",
        "Remote",
        "Add",
        "SoftDevice",
        "YZT_",
        "BIO_",
        "SOF_WriteESealData",
        "SOF_EPS_WriteESealData",
    ];
    const OTHERS: [&str; 9] = [
        "ImportPfxToDevice",
        "ExportPfxFromDevice",
        "ExportPfxToFile",
        "OpenSpecifiedFolder",
        "SelectFile",
        "SOF_ImportSymmKey",
        "SOF_UpdateCert",
        "SOF_UpdateCertEx",
        "ExportPKCS10",
    ];
    let writes = WRITERS.iter().any(|p| name.starts_with(p));
    let files = name.contains("File") || name.contains("Folder");
    if writes || files || OTHERS.contains(&name) {
        Some(
            if writes || name.starts_with("SOF_Sym") || name.starts_with("SOFX_") {
                FALSE
            } else {
                EMPTY
            },
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_refusals() {
        assert_eq!(canonical("GetUserList"), "SOF_GetUserList");
        assert_eq!(canonical("VerifyUserPIN"), "SOF_Login");
        assert_eq!(canonical("SOF_SignData"), "SOF_SignData");
        for f in [
            "InitDevice",
            "InitDeviceEx",
            "WriteFile",
            "DeleteContainer",
            "UnlockUserPass",
            "UnlockUserPassEx",
            "ChangeAdminPass",
            "ImportPfxToDevice",
            "GenerateKeyPair",
        ] {
            assert_eq!(refused(f), Some("false"), "{f}");
        }
        for f in [
            "ReadFile",
            "ExportPfxFromDevice",
            "SOF_SignFile",
            "Base64EncodeFile",
            "OpenSpecifiedFolder",
            "SOF_HashFile",
        ] {
            assert_eq!(refused(f), Some(""), "{f}");
        }
        for f in OFFERED {
            assert!(refused(f).is_none() || is_offered(f), "{f}");
        }
        assert!(refused("SOF_GetUserList").is_none());
    }
}
