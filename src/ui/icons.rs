//! The tray icon's states and their images (drawn in `assets/icons/`, embedded here).
//!
//! The SVG sources are drawn on a 32 px grid; `scripts/make-icons` renders them to PNG at
//! each size in [`SIZES`] (and to one ICO per state for Windows' installer), so a tray
//! gets pixels drawn for its size instead of a blurry scale.

/// What the tray icon says at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IconState {
    /// No key in.
    NoKey,
    /// A key in, every certificate valid.
    Ok,
    /// A certificate within the warning window.
    Expiring,
    /// A certificate expired or a PIN locked.
    Alert,
}

impl IconState {
    pub const ALL: [IconState; 4] = [
        IconState::NoKey,
        IconState::Ok,
        IconState::Expiring,
        IconState::Alert,
    ];
}

/// The sizes rendered in `assets/icons/`, in pixels.
pub const SIZES: [u32; 8] = [16, 22, 24, 32, 48, 64, 128, 256];

/// The size given to the tray. Windows' notification area takes 16–32 px depending on the
/// scale factor and scales down cleanly; appindicator and macOS scale to the panel
/// height. One size everywhere keeps the code simple.
pub const TRAY_SIZE: u32 = 32;

macro_rules! state_pngs {
    ($name:literal) => {
        [
            include_bytes!(concat!("../../assets/icons/tray-", $name, "-16.png")).as_slice(),
            include_bytes!(concat!("../../assets/icons/tray-", $name, "-22.png")).as_slice(),
            include_bytes!(concat!("../../assets/icons/tray-", $name, "-24.png")).as_slice(),
            include_bytes!(concat!("../../assets/icons/tray-", $name, "-32.png")).as_slice(),
            include_bytes!(concat!("../../assets/icons/tray-", $name, "-48.png")).as_slice(),
            include_bytes!(concat!("../../assets/icons/tray-", $name, "-64.png")).as_slice(),
            include_bytes!(concat!("../../assets/icons/tray-", $name, "-128.png")).as_slice(),
            include_bytes!(concat!("../../assets/icons/tray-", $name, "-256.png")).as_slice(),
        ]
    };
}

/// PNG bytes by state, in the order of [`SIZES`].
static NOKEY: [&[u8]; 8] = state_pngs!("nokey");
static OK: [&[u8]; 8] = state_pngs!("ok");
static EXPIRING: [&[u8]; 8] = state_pngs!("expiring");
static ALERT: [&[u8]; 8] = state_pngs!("alert");

/// The index in [`SIZES`] of the size nearest to `size`; between two, the larger one, as
/// scaling down loses less than scaling up.
fn nearest(size: u32) -> usize {
    let mut best = 0;
    for (i, s) in SIZES.iter().enumerate() {
        if s.abs_diff(size) <= SIZES[best].abs_diff(size) {
            best = i;
        }
    }
    best
}

/// The PNG drawn for `state` at the rendered size nearest to `size`.
pub fn png(state: IconState, size: u32) -> &'static [u8] {
    let set = match state {
        IconState::NoKey => &NOKEY,
        IconState::Ok => &OK,
        IconState::Expiring => &EXPIRING,
        IconState::Alert => &ALERT,
    };
    set[nearest(size)]
}

/// [`png()`] decoded to 8-bit RGBA: `(pixels, width, height)`.
pub fn rgba(state: IconState, size: u32) -> (Vec<u8>, u32, u32) {
    // The embedded files were checked by the unit tests, so this cannot fail at run time.
    decode_rgba(png(state, size)).expect("embedded tray icons are valid PNGs")
}

/// Any PNG (palette, grey, 16-bit, with or without alpha) to 8-bit RGBA: a re-rendered
/// icon in another PNG flavour still loads, and other images (the certificate card's)
/// decode the same way. The png crate's default limits bound what a hostile file can cost.
pub fn decode_rgba(bytes: &[u8]) -> Result<(Vec<u8>, u32, u32), String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    // ALPHA: palette and tRNS to an alpha channel, low bit depths to 8; STRIP_16: 16 to 8.
    decoder.set_transformations(png::Transformations::ALPHA | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let mut buf = vec![0; reader.output_buffer_size().ok_or("image too large")?];
    let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    buf.truncate(info.buffer_size());
    let rgba = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        png::ColorType::GrayscaleAlpha => buf
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        png::ColorType::Grayscale => buf.iter().flat_map(|&g| [g, g, g, 255]).collect(),
        // ALPHA expands palettes, so none reaches here.
        png::ColorType::Indexed => {
            return Err("palette image after expansion".into());
        }
    };
    Ok((rgba, info.width, info.height))
}

/// The tray's image for `state`, at [`TRAY_SIZE`]. `None` only if tray-icon refuses it.
pub fn tray_icon(state: IconState) -> Option<tray_icon::Icon> {
    let (pixels, width, height) = rgba(state, TRAY_SIZE);
    match tray_icon::Icon::from_rgba(pixels, width, height) {
        Ok(icon) => Some(icon),
        Err(e) => {
            tracing::warn!(?state, error = %e, "tray icon image refused");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_decodes_at_every_size() {
        for state in IconState::ALL {
            for size in SIZES {
                let (pixels, w, h) = rgba(state, size);
                assert_eq!((w, h), (size, size), "{state:?} at {size}");
                assert_eq!(pixels.len(), (size * size * 4) as usize);
                let opaque = pixels.chunks_exact(4).filter(|p| p[3] > 200).count();
                // The key alone covers well over a tenth of the square.
                assert!(
                    opaque * 10 > (size * size) as usize,
                    "{state:?} at {size}: only {opaque} opaque pixels"
                );
                let clear = pixels.chunks_exact(4).filter(|p| p[3] == 0).count();
                assert!(clear > 0, "{state:?} at {size}: no transparent background");
            }
        }
    }

    #[test]
    fn states_differ() {
        for size in SIZES {
            let images: Vec<Vec<u8>> = IconState::ALL.iter().map(|s| rgba(*s, size).0).collect();
            for i in 0..images.len() {
                for j in i + 1..images.len() {
                    assert_ne!(
                        images[i],
                        images[j],
                        "{:?} and {:?} at {size}",
                        IconState::ALL[i],
                        IconState::ALL[j]
                    );
                }
            }
        }
    }

    /// Each state's badge has its own colour: green, amber, red; no key, none.
    #[test]
    fn badges_have_their_colours() {
        let has = |state, want: fn(&[u8]) -> bool| {
            rgba(state, 32)
                .0
                .chunks_exact(4)
                .filter(|p| p[3] == 255 && want(p))
                .count()
                > 20
        };
        let green = |p: &[u8]| p[1] > 130 && p[0] < 80 && p[2] < 110;
        let amber = |p: &[u8]| p[0] > 220 && p[1] > 140 && p[1] < 190 && p[2] < 40;
        let red = |p: &[u8]| p[0] > 190 && p[1] < 80 && p[2] < 80;
        assert!(has(IconState::Ok, green));
        assert!(has(IconState::Expiring, amber));
        assert!(has(IconState::Alert, red));
        for colour in [green, amber, red] {
            assert!(!has(IconState::NoKey, colour));
        }
        assert!(!has(IconState::Ok, red) && !has(IconState::Alert, green));
    }

    #[test]
    fn nearest_size() {
        let px = |size| SIZES[nearest(size)];
        assert_eq!(px(0), 16);
        assert_eq!(px(16), 16);
        assert_eq!(px(19), 22, "a tie goes to the larger");
        assert_eq!(px(23), 24);
        assert_eq!(px(40), 48);
        assert_eq!(px(36), 32);
        assert_eq!(px(1000), 256);
        assert_eq!(rgba(IconState::Ok, 30).1, 32);
    }

    #[test]
    fn other_png_flavours_decode() {
        // A 2×1 palette image with a transparent entry, and a 1×1 16-bit grey one.
        let mut palette = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut palette, 2, 1);
            enc.set_color(png::ColorType::Indexed);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_palette(vec![255, 0, 0, 0, 0, 255]);
            enc.set_trns(vec![255, 0]);
            enc.write_header()
                .unwrap()
                .write_image_data(&[0, 1])
                .unwrap();
        }
        assert_eq!(
            decode_rgba(&palette).unwrap(),
            (vec![255, 0, 0, 255, 0, 0, 255, 0], 2, 1)
        );
        let mut grey = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut grey, 1, 1);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::Sixteen);
            enc.write_header()
                .unwrap()
                .write_image_data(&[0x80, 0x00])
                .unwrap();
        }
        assert_eq!(
            decode_rgba(&grey).unwrap(),
            (vec![128, 128, 128, 255], 1, 1)
        );
    }

    #[test]
    fn tray_icons_build() {
        for state in IconState::ALL {
            assert!(tray_icon(state).is_some(), "{state:?}");
        }
    }
}
