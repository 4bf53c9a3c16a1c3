//! `certray::cert::parse` must never panic, whatever the bytes; whatever it accepts must
//! give a model whose derived values work too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = certray::cert::parse(data) {
        assert_eq!(cert.der, data);
        assert_eq!(cert.sha256.len(), 64);
        let _ = cert.id();
        let _ = cert.owner();
        let _ = cert.can_sign();
        for now in [cert.validity.not_before, cert.validity.not_after] {
            let _ = cert.days_left(now);
            let _ = cert.status(now, 90);
        }
        if let Some(uscc) = &cert.ids.uscc {
            assert_eq!(
                cert.ids.uscc_valid,
                Some(certray::cert::uscc_is_valid(uscc))
            );
        }
    }
});
