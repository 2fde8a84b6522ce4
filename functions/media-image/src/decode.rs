//! Decoding untrusted images: only JPEG, PNG and WebP, with the size read from
//! the header and refused before any pixel is decoded when it is a
//! decompression bomb, and an allocation cap as a second guard.

use std::io::Cursor;

use image::{DynamicImage, ImageError, ImageFormat, ImageReader};
use zapfn_mediatools::processor::Failure;

/// Longest side accepted, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Most pixels accepted (a 48 MP phone photo fits).
pub const MAX_PIXELS: u64 = 50_000_000;
/// Most memory the decoder may allocate.
const MAX_ALLOC: u64 = 512 << 20;

/// A decoded image and the format it came in.
pub struct Decoded {
    pub image: DynamicImage,
    pub format: &'static str,
}

/// Decodes `bytes`, refusing other formats, bombs and corrupt files with the reason.
pub fn decode(bytes: &[u8]) -> Result<Decoded, Failure> {
    let reader = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| Failure::Transient(e.to_string()))
    };
    let format = match reader()?.format() {
        Some(ImageFormat::Jpeg) => "jpeg",
        Some(ImageFormat::Png) => "png",
        Some(ImageFormat::WebP) => "webp",
        Some(other) => {
            return Err(Failure::Permanent(format!(
                "{other:?} images are not accepted (only JPEG, PNG and WebP)"
            )))
        }
        None => {
            return Err(Failure::Permanent(
                "not an image: no JPEG, PNG or WebP signature".into(),
            ))
        }
    };
    let (width, height) = reader()?.into_dimensions().map_err(refusal)?;
    if width.max(height) > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(Failure::Permanent(format!(
            "decompression bomb refused: {width}×{height} px is over the limit \
             ({MAX_SIDE} px a side, {} MP)",
            MAX_PIXELS / 1_000_000
        )));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    let mut reader = reader()?;
    reader.limits(limits);
    let image = reader.decode().map_err(refusal)?;
    Ok(Decoded { image, format })
}

fn refusal(error: ImageError) -> Failure {
    match error {
        ImageError::Limits(limit) => {
            Failure::Permanent(format!("decompression bomb refused: {limit}"))
        }
        ImageError::IoError(error) => Failure::Permanent(format!("corrupt image: {error}")),
        other => Failure::Permanent(format!("corrupt image: {other}")),
    }
}
