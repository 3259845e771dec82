//! The QR code for an otpauth URI, drawn as SVG in the browser with the
//! `qrcode` crate. Nothing secret leaves the page to draw it.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// SVG markup for `data`, or `None` if it does not fit in a QR code.
pub fn svg_for(data: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).ok()?;
    Some(
        code.render::<svg::Color<'_>>()
            .min_dimensions(220, 220)
            .quiet_zone(true)
            .dark_color(svg::Color("#0f172a"))
            .light_color(svg::Color("#ffffff"))
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_an_otpauth_uri() {
        let svg = svg_for("otpauth://totp/Issuer:ann%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Issuer").unwrap();
        assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains("<path"));
    }
}
