//! What an SKF vendor library writes is read by certray's host process with the parsers of
//! `certray::token::skf::abi`; they must never panic, whatever the bytes. The same
//! properties run on stable as proptest cases in `src/token/skf/abi.rs` (`mod properties`).
#![no_main]

use certray::token::skf::abi::{
    DevInfo, EccPublicKeyBlob, EccSignatureBlob, RsaPublicKeyBlob, from_bytes, parse_name_list,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for name in parse_name_list(data) {
        assert!(!name.as_bytes().is_empty() && !name.as_bytes().contains(&0));
        let _ = name.display();
    }
    let _ = certray::text::vendor_text(data);
    if let Some(i) = from_bytes::<DevInfo>(data.get(..294).unwrap_or(data)) {
        let _ = (i.manufacturer(), i.issuer(), i.label(), i.serial(), i.hash_caps());
    }
    if let Some(b) = from_bytes::<EccSignatureBlob>(data.get(..128).unwrap_or(data)) {
        let _ = b.to_der();
    }
    if let Some(b) = from_bytes::<EccPublicKeyBlob>(data.get(..132).unwrap_or(data)) {
        let _ = b.to_sec1();
    }
    if let Some(b) = from_bytes::<RsaPublicKeyBlob>(data.get(..268).unwrap_or(data)) {
        let _ = (b.modulus(), b.exponent());
    }
});
