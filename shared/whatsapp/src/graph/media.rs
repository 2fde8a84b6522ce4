//! Graph API media calls: the URL of a media id, the download from that URL
//! with the bearer token, uploads to `/{phone-number-id}/media`, deletes.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::USER_AGENT;
use reqwest::multipart::{Form, Part};
use serde::{Deserialize, Deserializer};

use super::{read_answer, transport_error, CallError, GraphClient};

/// Meta's answer to `GET /{media-id}`: a download URL valid for about 5 minutes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MediaUrl {
    pub url: String,
    #[serde(default)]
    pub mime_type: Option<String>,
    /// SHA-256 of the file (Meta writes hex here; webhooks carry base64).
    #[serde(default)]
    pub sha256: Option<String>,
    /// Bytes; Meta sends it as a number or a numeric string.
    #[serde(default, deserialize_with = "number_or_string")]
    pub file_size: Option<u64>,
    #[serde(default)]
    pub id: Option<String>,
}

fn number_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Number(u64),
        Text(String),
    }
    Ok(match Option::<Size>::deserialize(deserializer)? {
        Some(Size::Number(size)) => Some(size),
        Some(Size::Text(text)) => text.trim().parse().ok(),
        None => None,
    })
}

/// Why a download from a media URL failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// 401/403/404/410: the URL expired (or the token changed); get a new URL.
    #[error("the media URL answered HTTP {0}: expired or not ours")]
    Expired(u16),
    /// The body is larger than allowed; nothing more was read.
    #[error("the media is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// A transient failure (5xx, timeout, broken connection): retry later.
    #[error("media download failed: {0}")]
    Unavailable(String),
}

#[derive(Deserialize)]
struct Uploaded {
    id: String,
}

#[derive(Deserialize)]
struct Deleted {
    #[serde(default)]
    success: bool,
}

impl GraphClient {
    /// `GET /{media-id}`: where to download the media, with Meta's type, size and checksum.
    pub async fn media_url(&self, media_id: &str) -> Result<MediaUrl, CallError> {
        let response = self
            .http
            .get(self.url(media_id))
            .bearer_auth(&self.config.access_token)
            .send()
            .await
            .map_err(transport_error)?;
        read_answer(response).await
    }

    /// GETs a media URL with the bearer token, reading at most `max_bytes`
    /// within `timeout` (the whole download).
    pub async fn download_media(
        &self,
        url: &str,
        max_bytes: u64,
        timeout: Duration,
    ) -> Result<Bytes, DownloadError> {
        let unavailable = |error: reqwest::Error| DownloadError::Unavailable(error.to_string());
        let mut response = self
            .http
            .get(url)
            .bearer_auth(&self.config.access_token)
            .header(USER_AGENT, "zapfn")
            .timeout(timeout)
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status().as_u16();
        if matches!(status, 401 | 403 | 404 | 410) {
            return Err(DownloadError::Expired(status));
        }
        if !response.status().is_success() {
            return Err(DownloadError::Unavailable(format!("HTTP {status}")));
        }
        if response
            .content_length()
            .is_some_and(|length| length > max_bytes)
        {
            return Err(DownloadError::TooLarge { limit: max_bytes });
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
            if (body.len() + chunk.len()) as u64 > max_bytes {
                return Err(DownloadError::TooLarge { limit: max_bytes });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// `POST /{phone-number-id}/media` (multipart `messaging_product`, `type`,
    /// `file`): Meta's id for the uploaded file, usable in a send for 30 days.
    pub async fn upload_media(
        &self,
        phone_number_id: &str,
        bytes: Bytes,
        mime_type: &str,
        filename: &str,
        timeout: Duration,
    ) -> Result<String, CallError> {
        let file = Part::stream_with_length(bytes.clone(), bytes.len() as u64)
            .file_name(filename.to_owned())
            .mime_str(mime_type)
            .map_err(|e| CallError::Transport(format!("invalid MIME type {mime_type:?}: {e}")))?;
        let form = Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", mime_type.to_owned())
            .part("file", file);
        let response = self
            .http
            .post(self.url(&format!("{phone_number_id}/media")))
            .bearer_auth(&self.config.access_token)
            .multipart(form)
            .timeout(timeout)
            .send()
            .await
            .map_err(transport_error)?;
        read_answer::<Uploaded>(response).await.map(|u| u.id)
    }

    /// `DELETE /{media-id}`: whether Meta deleted it.
    pub async fn delete_media(&self, media_id: &str) -> Result<bool, CallError> {
        let response = self
            .http
            .delete(self.url(media_id))
            .bearer_auth(&self.config.access_token)
            .send()
            .await
            .map_err(transport_error)?;
        read_answer::<Deleted>(response).await.map(|d| d.success)
    }
}

#[cfg(test)]
mod tests {
    use super::MediaUrl;

    #[test]
    fn reads_meta_media_urls_with_sizes_as_numbers_or_strings() {
        let text: MediaUrl = serde_json::from_str(
            r#"{"messaging_product":"whatsapp","url":"https://lookaside.fbsbx.com/x","mime_type":"image/jpeg",
                "sha256":"ab","file_size":"303833","id":"2621233374848975"}"#,
        )
        .unwrap();
        assert_eq!(text.file_size, Some(303833));
        assert_eq!(text.id.as_deref(), Some("2621233374848975"));
        let number: MediaUrl = serde_json::from_str(r#"{"url":"u","file_size":12}"#).unwrap();
        assert_eq!(number.file_size, Some(12));
        assert_eq!(number.sha256, None);
    }
}
