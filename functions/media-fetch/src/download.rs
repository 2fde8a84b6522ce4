//! Getting a media file's bytes from the Graph API: ask for a URL, download it
//! with the bearer token at once (URLs expire in about 5 minutes; an expired
//! one is asked for again), and verify Meta's SHA-256 (a mismatch is
//! downloaded once more before it counts as corruption).

use std::time::Duration;

use bytes::Bytes;
use zapfn_media::check::check_inbound_size;
use zapfn_media::checksum;
use zapfn_media::kind::{human_size, MAX_INBOUND_BYTES};
use zapfn_whatsapp::graph::media::{DownloadError, MediaUrl};
use zapfn_whatsapp::graph::GraphClient;

use crate::failure::Failure;

/// Fresh URLs asked for after an expired one, per attempt.
const URL_REFRESHES: usize = 2;
/// Downloads whose checksum did not match, per attempt, before it counts as corruption.
const CHECKSUM_TRIES: usize = 2;

/// The longest [`download`] takes when each Graph API call ends within
/// `graph_timeout` and each download within `timeout`: every URL request and
/// download of every try.
pub fn longest(graph_timeout: Duration, timeout: Duration) -> Duration {
    (graph_timeout + timeout) * (CHECKSUM_TRIES * (URL_REFRESHES + 1)) as u32
}

/// A downloaded file and what Meta said about it.
#[derive(Debug)]
pub struct Downloaded {
    pub bytes: Bytes,
    pub meta: MediaUrl,
}

/// Downloads media `media_id`, refusing files over what a customer can send
/// (by Meta's size before, and while reading), and checks the SHA-256 after
/// (`webhook_sha256` when the webhook carried one, else the URL answer's).
pub async fn download(
    graph: &GraphClient,
    media_id: &str,
    webhook_sha256: Option<&str>,
    timeout: Duration,
) -> Result<Downloaded, Failure> {
    let mut mismatch = None;
    for _ in 0..CHECKSUM_TRIES {
        let (bytes, meta) = download_once(graph, media_id, timeout).await?;
        let Some(expected) = webhook_sha256.or(meta.sha256.as_deref()) else {
            return Ok(Downloaded { bytes, meta });
        };
        match checksum::verify(expected, &bytes) {
            Some(true) => return Ok(Downloaded { bytes, meta }),
            Some(false) => {
                mismatch = Some(format!(
                    "sha256 mismatch: Meta sent {expected}, the {} downloaded bytes hash to {}",
                    bytes.len(),
                    checksum::sha256_hex(&bytes)
                ));
            }
            None => {
                return Err(Failure::permanent(
                    "sha256_invalid",
                    format!("Meta's sha256 {expected:?} is not a SHA-256 digest"),
                ))
            }
        }
    }
    Err(Failure::permanent(
        "sha256_mismatch",
        mismatch.unwrap_or_default(),
    ))
}

/// One URL request and download, asking again for a URL that expired.
async fn download_once(
    graph: &GraphClient,
    media_id: &str,
    timeout: Duration,
) -> Result<(Bytes, MediaUrl), Failure> {
    let mut last_expiry = 0;
    for _ in 0..=URL_REFRESHES {
        let meta = graph
            .media_url(media_id)
            .await
            .map_err(|error| Failure::graph("GET /{media-id}", error))?;
        if let Some(size) = meta.file_size {
            check_inbound_size(size).map_err(Failure::from)?;
        }
        match graph
            .download_media(&meta.url, MAX_INBOUND_BYTES, timeout)
            .await
        {
            Ok(bytes) => return Ok((bytes, meta)),
            Err(DownloadError::Expired(status)) => {
                tracing::info!(media_id, status, "media URL expired; asking for a new one");
                last_expiry = status;
            }
            Err(DownloadError::TooLarge { limit }) => {
                return Err(Failure::permanent(
                    "too_large",
                    format!(
                        "the file is over Meta's {} limit for inbound media",
                        human_size(limit)
                    ),
                ))
            }
            Err(DownloadError::Unavailable(error)) => return Err(Failure::Transient(error)),
        }
    }
    Err(Failure::Transient(format!(
        "the media URL answered HTTP {last_expiry} after {} fresh URLs",
        URL_REFRESHES + 1
    )))
}
