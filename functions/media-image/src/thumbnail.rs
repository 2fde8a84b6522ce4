//! Thumbnails: at most 320 px on the longest side, lossy WebP.

use image::DynamicImage;

/// Longest side of a thumbnail, in pixels.
pub const MAX_SIDE: u32 = 320;
/// libwebp quality, 0–100.
const QUALITY: f32 = 75.0;

/// A WebP thumbnail and its size.
pub struct Thumbnail {
    pub webp: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Scales `image` down to fit 320×320 (never up) and encodes it as WebP,
/// keeping transparency when there is any.
pub fn webp_thumbnail(image: &DynamicImage) -> Thumbnail {
    let small = if image.width().max(image.height()) > MAX_SIDE {
        image.thumbnail(MAX_SIDE, MAX_SIDE)
    } else {
        image.clone()
    };
    let (width, height) = (small.width(), small.height());
    let webp = if small.color().has_alpha() {
        let rgba = small.to_rgba8();
        webp::Encoder::from_rgba(&rgba, width, height)
            .encode(QUALITY)
            .to_vec()
    } else {
        let rgb = small.to_rgb8();
        webp::Encoder::from_rgb(&rgb, width, height)
            .encode(QUALITY)
            .to_vec()
    };
    Thumbnail {
        webp,
        width,
        height,
    }
}
