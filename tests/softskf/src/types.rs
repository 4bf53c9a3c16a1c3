//! softskf's own GM/T 0016-2012 types, written from the specification (`include/skf.h` is
//! the C transcription gcc checks them against). Deliberately NOT shared with certray's
//! loader (`src/token/skf/abi.rs`): two independent transcriptions, one referee.

#![allow(non_camel_case_types, non_snake_case, clippy::upper_case_acronyms)]

use std::ffi::c_void;

pub type ULONG = u32;
pub type BOOL = i32;
pub type BYTE = u8;
pub type CHAR = std::ffi::c_char;
pub type LPSTR = *mut CHAR;
pub type HANDLE = *mut c_void;

pub const ADMIN_TYPE: ULONG = 0;
pub const USER_TYPE: ULONG = 1;

pub const DEV_ABSENT_STATE: ULONG = 0;
pub const DEV_PRESENT_STATE: ULONG = 1;
pub const DEV_EVENT_INSERT: ULONG = 1;
pub const DEV_EVENT_REMOVE: ULONG = 2;

pub const CONTAINER_TYPE_EMPTY: ULONG = 0;
pub const CONTAINER_TYPE_RSA: ULONG = 1;
pub const CONTAINER_TYPE_ECC: ULONG = 2;

// Algorithm ids: the SKF vendor-header values (SGD_SM2_1 = 0x00020100, not GM/T 0006's).
pub const SGD_SM4_ECB: ULONG = 0x0000_0401;
pub const SGD_RSA: ULONG = 0x0001_0000;
pub const SGD_SM2_1: ULONG = 0x0002_0100;
pub const SGD_SM3: ULONG = 0x0000_0001;
pub const SGD_SHA1: ULONG = 0x0000_0002;
pub const SGD_SHA256: ULONG = 0x0000_0004;

// Annex A error codes (the ones softskf returns).
pub const SAR_OK: ULONG = 0;
pub const SAR_FAIL: ULONG = 0x0A00_0001;
pub const SAR_NOTSUPPORTYETERR: ULONG = 0x0A00_0003;
pub const SAR_INVALIDHANDLEERR: ULONG = 0x0A00_0005;
pub const SAR_INVALIDPARAMERR: ULONG = 0x0A00_0006;
pub const SAR_INDATALENERR: ULONG = 0x0A00_0010;
pub const SAR_HASHOBJERR: ULONG = 0x0A00_0013;
pub const SAR_KEYNOTFOUNTERR: ULONG = 0x0A00_001B;
pub const SAR_CERTNOTFOUNTERR: ULONG = 0x0A00_001C;
pub const SAR_BUFFER_TOO_SMALL: ULONG = 0x0A00_0020;
pub const SAR_NOT_EVENTERR: ULONG = 0x0A00_0022;
pub const SAR_DEVICE_REMOVED: ULONG = 0x0A00_0023;
pub const SAR_PIN_INCORRECT: ULONG = 0x0A00_0024;
pub const SAR_PIN_LOCKED: ULONG = 0x0A00_0025;
pub const SAR_PIN_LEN_RANGE: ULONG = 0x0A00_0027;
pub const SAR_USER_TYPE_INVALID: ULONG = 0x0A00_002A;
pub const SAR_USER_NOT_LOGGED_IN: ULONG = 0x0A00_002D;
pub const SAR_APPLICATION_NOT_EXISTS: ULONG = 0x0A00_002E;
pub const SAR_FILE_NOT_EXIST: ULONG = 0x0A00_0031;

#[repr(C, packed)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VERSION {
    pub major: BYTE,
    pub minor: BYTE,
}

#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct DEVINFO {
    pub Version: VERSION,
    pub Manufacturer: [u8; 64],
    pub Issuer: [u8; 64],
    pub Label: [u8; 32],
    pub SerialNumber: [u8; 32],
    pub HWVersion: VERSION,
    pub FirmwareVersion: VERSION,
    pub AlgSymCap: ULONG,
    pub AlgAsymCap: ULONG,
    pub AlgHashCap: ULONG,
    pub DevAuthAlgId: ULONG,
    pub TotalSpace: ULONG,
    pub FreeSpace: ULONG,
    pub MaxECCBufferSize: ULONG,
    pub MaxBufferSize: ULONG,
    pub Reserved: [u8; 64],
}

#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct RSAPUBLICKEYBLOB {
    pub AlgID: ULONG,
    pub BitLen: ULONG,
    pub Modulus: [u8; 256],
    pub PublicExponent: [u8; 4],
}

#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct ECCPUBLICKEYBLOB {
    pub BitLen: ULONG,
    pub XCoordinate: [u8; 64],
    pub YCoordinate: [u8; 64],
}

#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct ECCSIGNATUREBLOB {
    pub r: [u8; 64],
    pub s: [u8; 64],
}

/// Variable length: `Cipher` really holds `CipherLen` bytes.
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct ECCCIPHERBLOB {
    pub XCoordinate: [u8; 64],
    pub YCoordinate: [u8; 64],
    pub HASH: [u8; 32],
    pub CipherLen: ULONG,
    pub Cipher: [u8; 1],
}

#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct BLOCKCIPHERPARAM {
    pub IV: [u8; 32],
    pub IVLen: ULONG,
    pub PaddingType: ULONG,
    pub FeedBitLen: ULONG,
}

#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct FILEATTRIBUTE {
    pub FileName: [u8; 32],
    pub FileSize: ULONG,
    pub ReadRights: ULONG,
    pub WriteRights: ULONG,
}

/// `size`/`offset` lines in the format of `c/layout.c`, in the same order.
pub fn layout_text() -> String {
    use std::mem::{offset_of, size_of};
    let mut lines: Vec<(String, usize)> = Vec::new();
    macro_rules! size {
        ($t:ident) => {
            lines.push((format!("{} size", stringify!($t)), size_of::<$t>()))
        };
    }
    macro_rules! field {
        ($t:ident, $($f:ident),+) => {
            $(lines.push((format!("{}.{}", stringify!($t), stringify!($f)), offset_of!($t, $f)));)+
        };
    }
    size!(VERSION);
    field!(VERSION, major, minor);
    size!(DEVINFO);
    field!(
        DEVINFO,
        Version,
        Manufacturer,
        Issuer,
        Label,
        SerialNumber,
        HWVersion,
        FirmwareVersion,
        AlgSymCap,
        AlgAsymCap,
        AlgHashCap,
        DevAuthAlgId,
        TotalSpace,
        FreeSpace,
        MaxECCBufferSize,
        MaxBufferSize,
        Reserved
    );
    size!(RSAPUBLICKEYBLOB);
    field!(RSAPUBLICKEYBLOB, AlgID, BitLen, Modulus, PublicExponent);
    size!(ECCPUBLICKEYBLOB);
    field!(ECCPUBLICKEYBLOB, BitLen, XCoordinate, YCoordinate);
    size!(ECCSIGNATUREBLOB);
    field!(ECCSIGNATUREBLOB, r, s);
    size!(ECCCIPHERBLOB);
    field!(
        ECCCIPHERBLOB,
        XCoordinate,
        YCoordinate,
        HASH,
        CipherLen,
        Cipher
    );
    size!(BLOCKCIPHERPARAM);
    field!(BLOCKCIPHERPARAM, IV, IVLen, PaddingType, FeedBitLen);
    size!(FILEATTRIBUTE);
    field!(FILEATTRIBUTE, FileName, FileSize, ReadRights, WriteRights);
    lines.iter().map(|(k, v)| format!("{k} {v}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_sizes_match_the_spec() {
        assert_eq!(std::mem::size_of::<DEVINFO>(), 294);
        assert_eq!(std::mem::offset_of!(DEVINFO, AlgSymCap), 198);
        assert_eq!(std::mem::offset_of!(DEVINFO, Reserved), 230);
        assert_eq!(std::mem::size_of::<RSAPUBLICKEYBLOB>(), 268);
        assert_eq!(std::mem::offset_of!(RSAPUBLICKEYBLOB, Modulus), 8);
        assert_eq!(std::mem::size_of::<ECCPUBLICKEYBLOB>(), 132);
        assert_eq!(std::mem::size_of::<ECCSIGNATUREBLOB>(), 128);
        assert_eq!(std::mem::size_of::<ECCCIPHERBLOB>(), 165);
        assert_eq!(std::mem::size_of::<BLOCKCIPHERPARAM>(), 44);
        assert_eq!(std::mem::size_of::<FILEATTRIBUTE>(), 44);
        assert!(layout_text().starts_with("VERSION size 2\nVERSION.major 0\n"));
    }
}
