//! The seal image (签章图片) a token may hold.
//!
//! No standard says where a PKCS#11 token keeps a seal picture, so any public CKO_DATA object
//! whose value is a PNG, JPEG, GIF or BMP file counts, and one whose label or application
//! names a seal ("seal", "stamp", 签章, 印章, 公章, in UTF-8 or GBK) is preferred. Public
//! objects only: the picture shows before any PIN is given, and a kept login must not change
//! what a scan reports. The demo token stores its seal this way (label `seal`, application
//! `certray-seal`).
//!
//! A USB key reads a few kilobytes a second, and every card event rescans, so values are read
//! only when the data objects' labels, applications or lengths changed since the last scan;
//! the preferred candidates are read first and reading stops at the first image.

use std::sync::Arc;

use cryptoki::error::Error as CkError;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use cryptoki::session::Session;

use crate::token::Seal;

/// The largest seal image read (a 512×512 PNG seal is under 100 KiB).
pub(super) const MAX_LEN: usize = 2 << 20;

/// Words in a data object's label or application that mark it as the seal.
const SEAL_WORDS: &[&[u8]] = &[
    b"seal",
    b"stamp",
    "签章".as_bytes(),
    "印章".as_bytes(),
    "公章".as_bytes(),
    // The same in GBK, which Chinese vendor tools write.
    b"\xc7\xa9\xd5\xc2",
    b"\xd3\xa1\xd5\xc2",
    b"\xb9\xab\xd5\xc2",
];

/// What a scan saw on a token: its public data objects and the seal chosen among them.
#[derive(Debug, Clone, Default)]
pub(super) struct Found {
    objects: Vec<DataObject>,
    pub image: Option<Seal>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct DataObject {
    label: Vec<u8>,
    application: Vec<u8>,
    /// CKA_VALUE's length; `None` when the token will not say.
    len: Option<usize>,
}

impl DataObject {
    fn names_a_seal(&self) -> bool {
        [&self.label, &self.application].into_iter().any(|text| {
            let text = text.to_ascii_lowercase();
            SEAL_WORDS
                .iter()
                .any(|w| text.windows(w.len()).any(|s| s == *w))
        })
    }

    fn may_be_image(&self) -> bool {
        matches!(self.len, Some(n) if n > 0 && n <= MAX_LEN)
    }
}

/// Find the seal in an open session; `last` is what the previous scan of this token found,
/// returned as it is when the data objects look the same.
pub(super) fn read(session: &Session, last: Option<&Found>) -> Result<Found, CkError> {
    let handles = session.find_objects(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(false),
    ])?;
    let mut objects = Vec::with_capacity(handles.len());
    for &h in &handles {
        let mut object = DataObject {
            label: Vec::new(),
            application: Vec::new(),
            len: None,
        };
        for a in session.get_attributes(h, &[AttributeType::Label, AttributeType::Application])? {
            match a {
                Attribute::Label(v) => object.label = v,
                Attribute::Application(v) => object.application = v,
                _ => {}
            }
        }
        if let Some(AttributeInfo::Available(n)) = session
            .get_attribute_info(h, &[AttributeType::Value])?
            .first()
        {
            object.len = Some(*n);
        }
        objects.push(object);
    }
    if let Some(last) = last
        && last.objects == objects
    {
        return Ok(last.clone());
    }
    let mut order: Vec<usize> = (0..objects.len())
        .filter(|&i| objects[i].may_be_image())
        .collect();
    // Stable: named seals first, each group in the token's order.
    order.sort_by_key(|&i| !objects[i].names_a_seal());
    for i in order {
        let Some(Attribute::Value(value)) = session
            .get_attributes(handles[i], &[AttributeType::Value])?
            .pop()
        else {
            continue;
        };
        if let Some(format) = image_format(&value)
            && value.len() <= MAX_LEN
        {
            tracing::debug!(
                label = %String::from_utf8_lossy(&objects[i].label),
                format,
                len = value.len(),
                "seal image found"
            );
            return Ok(Found {
                objects,
                image: Some(Seal {
                    format,
                    bytes: Arc::new(value),
                }),
            });
        }
    }
    Ok(Found {
        objects,
        image: None,
    })
}

/// The image format `bytes` start with, by its magic number.
fn image_format(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("gif")
    } else if bytes.starts_with(b"BM") && is_bmp_header(bytes) {
        Some("bmp")
    } else {
        None
    }
}

/// "BM" alone is too weak a magic: also require a known DIB header size at offset 14.
fn is_bmp_header(bytes: &[u8]) -> bool {
    bytes
        .get(14..18)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .is_some_and(|n| matches!(n, 12 | 16 | 40 | 52 | 56 | 64 | 108 | 124))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_formats_by_magic() {
        let mut bmp = b"BM".to_vec();
        bmp.extend([0; 12]);
        bmp.extend(40u32.to_le_bytes());
        for (bytes, want) in [
            (&b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"[..], Some("png")),
            (&[0xff, 0xd8, 0xff, 0xe0, 0, 0x10][..], Some("jpeg")),
            (b"GIF89a\x01\0", Some("gif")),
            (b"GIF87a", Some("gif")),
            (&bmp[..], Some("bmp")),
            (b"BMW is not a bitmap", None),
            (b"\x89PNG", None),
            (b"GIF88a", None),
            (b"hello", None),
            (b"", None),
        ] {
            assert_eq!(image_format(bytes), want, "{bytes:?}");
        }
    }

    #[test]
    fn seal_names_in_utf8_and_gbk() {
        let object = |label: &[u8], application: &[u8]| DataObject {
            label: label.to_vec(),
            application: application.to_vec(),
            len: Some(1),
        };
        for (label, application) in [
            (&b"seal"[..], &b""[..]),
            (b"Company SEAL", b""),
            (b"", b"certray-seal"),
            (b"Stamp 1", b""),
            ("电子签章".as_bytes(), b""),
            ("合同印章".as_bytes(), b""),
            (b"\xb9\xab\xd5\xc2", b""),
        ] {
            assert!(object(label, application).names_a_seal(), "{label:?}");
        }
        assert!(!object(b"logo", b"vendor-config").names_a_seal());
    }
}
