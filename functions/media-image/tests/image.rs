//! The image handler on a real SQLite store and blob directory, with images
//! rendered by ImageMagick and read by the real Tesseract.

use std::io::{Cursor, Write};
use std::sync::Arc;

use zapfn_blob::BlobKey;
use zapfn_media_image::{processor, ImageProcessor};
use zapfn_mediatools::samples;
use zapfn_mediatools::{MediaConfig, OcrEngine};
use zapfn_runtime::Context;
use zapfn_store::Settlement;

fn image_processor(context: &Context) -> ImageProcessor {
    ImageProcessor {
        processor: processor(context),
        ocr: Arc::new(OcrEngine::from_config(&MediaConfig::default())),
    }
}

fn encode(image: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

#[tokio::test]
async fn a_photo_gets_a_smaller_webp_thumbnail_its_size_and_its_text() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let png = samples::text_image(
        dir.path(),
        "sign",
        1200,
        400,
        &["Promoção de verão", "Open daily 9 to 18"],
    );
    let jpeg = encode(&image::open(&png).unwrap(), image::ImageFormat::Jpeg);
    let original_size = jpeg.len();
    let delivery =
        samples::inbound_media(&context, "wamid.IMG1", "image", jpeg, "image/jpeg").await;

    let settlement = image_processor(&context).handle(&delivery).await;
    assert_eq!(settlement, Settlement::Ack);

    let image = samples::recorded(&context, "wamid.IMG1", "image").await;
    assert_eq!(image["status"], "done", "{image}");
    assert_eq!(
        (image["width"].as_u64(), image["height"].as_u64()),
        (Some(1200), Some(400))
    );
    assert_eq!(image["format"], "jpeg");
    let key = image["thumbnail_key"].as_str().unwrap();
    let message_id = &delivery.payload["message_id"].as_str().unwrap();
    assert_eq!(
        key,
        format!("{}/{message_id}/thumb.webp", samples::PHONE_NUMBER_ID)
    );
    let thumbnail = context
        .blobs
        .get(&BlobKey::new(key).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(thumbnail.info.content_type, "image/webp");
    assert_eq!(&thumbnail.bytes[..4], b"RIFF");
    assert_eq!(&thumbnail.bytes[8..12], b"WEBP");
    assert!(
        thumbnail.bytes.len() < original_size / 2,
        "{} bytes",
        thumbnail.bytes.len()
    );
    let decoded =
        image::load_from_memory_with_format(&thumbnail.bytes, image::ImageFormat::WebP).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (320, 107));
    assert_eq!(
        (
            image["thumbnail_width"].as_u64(),
            image["thumbnail_height"].as_u64()
        ),
        (Some(320), Some(107))
    );

    let text = image["ocr_text"].as_str().unwrap();
    for word in ["Promoção", "verão", "Open", "daily"] {
        assert!(text.contains(word), "{word:?} not in {text:?}");
    }
    assert_eq!(image["ocr_engine"], "tesseract");

    // Redelivered: acknowledged, nothing changes.
    assert_eq!(
        image_processor(&context).handle(&delivery).await,
        Settlement::Ack
    );
    assert_eq!(
        samples::recorded(&context, "wamid.IMG1", "image").await,
        image
    );
}

#[tokio::test]
async fn a_webp_sticker_with_transparency_is_handled_and_small_images_are_not_enlarged() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let sticker = image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(200, 180, |x, _| {
        image::Rgba([200, 30, 30, if x < 100 { 0 } else { 255 }])
    }));
    let webp = encode(&sticker, image::ImageFormat::WebP);
    let delivery =
        samples::inbound_media(&context, "wamid.STK1", "sticker", webp, "image/webp").await;
    assert_eq!(
        image_processor(&context).handle(&delivery).await,
        Settlement::Ack
    );
    let image = samples::recorded(&context, "wamid.STK1", "image").await;
    assert_eq!(image["status"], "done", "{image}");
    assert_eq!(image["format"], "webp");
    assert_eq!(
        (
            image["thumbnail_width"].as_u64(),
            image["thumbnail_height"].as_u64()
        ),
        (Some(200), Some(180))
    );
    let thumbnail = context
        .blobs
        .get(&BlobKey::new(image["thumbnail_key"].as_str().unwrap()).unwrap())
        .await
        .unwrap()
        .unwrap();
    let decoded = image::load_from_memory(&thumbnail.bytes).unwrap();
    assert!(decoded.color().has_alpha());
}

/// A real decompression bomb: a 1-bit PNG of 20,000 × 20,000 zero pixels,
/// a few hundred KB compressed, 400 MB once decoded to 8 bits.
fn png_bomb() -> Vec<u8> {
    let side = 20_000;
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().unwrap();
    let mut stream = writer.stream_writer().unwrap();
    let row = vec![0u8; side as usize / 8];
    for _ in 0..side {
        stream.write_all(&row).unwrap();
    }
    stream.finish().unwrap();
    drop(writer);
    bytes
}

#[tokio::test]
async fn bombs_corrupt_files_and_non_images_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let bomb = png_bomb();
    assert!(bomb.len() < 5 << 20, "{} bytes", bomb.len());
    let mut corrupt = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00".to_vec();
    corrupt.extend((0..4000u32).map(|i| (i * 7919 % 251) as u8));
    let cases = [
        (
            "wamid.BOMB",
            bomb,
            "image/png",
            "decompression bomb refused: 20000×20000 px",
        ),
        ("wamid.CORRUPT", corrupt, "image/jpeg", "corrupt image"),
        (
            "wamid.TEXT",
            b"hello, I am text".to_vec(),
            "image/jpeg",
            "not an image",
        ),
        (
            "wamid.GIF",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(),
            "image/gif",
            "Gif images are not accepted",
        ),
    ];
    for (wamid, bytes, content_type, reason) in cases {
        let delivery = samples::inbound_media(&context, wamid, "image", bytes, content_type).await;
        assert_eq!(
            image_processor(&context).handle(&delivery).await,
            Settlement::Ack,
            "{wamid}"
        );
        let image = samples::recorded(&context, wamid, "image").await;
        assert_eq!(image["status"], "failed", "{wamid}: {image}");
        let recorded_reason = image["reason"].as_str().unwrap();
        assert!(
            recorded_reason.contains(reason),
            "{wamid}: {recorded_reason}"
        );
        assert!(image.get("thumbnail_key").is_none());
    }
}

#[tokio::test]
async fn other_media_types_are_left_to_their_processors() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let delivery = samples::inbound_media(
        &context,
        "wamid.AUD1",
        "audio",
        b"OggS".to_vec(),
        "audio/ogg",
    )
    .await;
    assert_eq!(
        image_processor(&context).handle(&delivery).await,
        Settlement::Ack
    );
    let message = context.store.message("wamid.AUD1").await.unwrap().unwrap();
    assert!(message.media.unwrap_or_default().get("image").is_none());
}

#[tokio::test]
async fn a_missing_object_is_retried_then_recorded_as_failed_on_the_last_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[("ZAPFN_MAX_ATTEMPTS", "2")]);
    let mut delivery =
        samples::inbound_media(&context, "wamid.GONE", "image", b"x".to_vec(), "image/png").await;
    let key = BlobKey::new(delivery.payload["key"].as_str().unwrap()).unwrap();
    context.blobs.delete(&key).await.unwrap();

    let first = image_processor(&context).handle(&delivery).await;
    assert!(
        matches!(&first, Settlement::Retry { error, .. } if error.contains("not found")),
        "{first:?}"
    );
    assert_eq!(
        samples::recorded(&context, "wamid.GONE", "image").await["status"],
        "pending"
    );

    delivery.attempt = 2;
    assert_eq!(
        image_processor(&context).handle(&delivery).await,
        Settlement::Ack
    );
    let image = samples::recorded(&context, "wamid.GONE", "image").await;
    assert_eq!(image["status"], "failed");
    assert_eq!(image["transient"], true);
}

#[test]
fn the_lease_outlasts_ocr() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let tool_timeout = MediaConfig::from_env_or_defaults().tool_timeout;
    // Tesseract, or Cloud Vision's token and request.
    let worst_case = tool_timeout * 2;
    let function = zapfn_media_image::function(&context);
    let lease = function.subscriptions[0].lease;
    assert!(
        lease > worst_case,
        "lease {lease:?}, worst case {worst_case:?}"
    );
}
