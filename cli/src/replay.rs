//! Signing and posting Meta-shaped webhook payloads (`zapfn replay`, `zapfn simulate`).

use std::path::Path;

use zapfn_whatsapp::builders;

/// Signs each file's bytes exactly as they are and posts them; returns (file, HTTP status).
pub async fn replay_files(
    files: &[impl AsRef<Path>],
    url: &str,
    secret: &str,
) -> anyhow::Result<Vec<(String, u16)>> {
    let client = reqwest::Client::new();
    let mut results = Vec::new();
    for file in files {
        let file = file.as_ref();
        let body = std::fs::read(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let status = zapfn_sandbox::post_signed(&client, url, secret.as_bytes(), &body).await?;
        results.push((file.display().to_string(), status.as_u16()));
    }
    Ok(results)
}

/// What a simulated customer sends.
pub enum CustomerInput {
    Text(String),
    ButtonReply { id: String, title: String },
    ListReply { id: String, title: String },
}

/// Builds a signed inbound notification from a customer and posts it; returns (wamid, HTTP status).
pub async fn simulate(
    url: &str,
    secret: &str,
    phone_number_id: &str,
    from: &str,
    name: &str,
    input: CustomerInput,
) -> anyhow::Result<(String, u16)> {
    let wamid = builders::new_wamid();
    let now = chrono::Utc::now().timestamp();
    let message = match input {
        CustomerInput::Text(text) => builders::text_message(from, &wamid, now, &text),
        CustomerInput::ButtonReply { id, title } => {
            builders::interactive_reply(from, &wamid, now, "button_reply", &id, &title, None)
        }
        CustomerInput::ListReply { id, title } => {
            builders::interactive_reply(from, &wamid, now, "list_reply", &id, &title, None)
        }
    };
    let body = builders::messages_notification(phone_number_id, from, name, vec![message]);
    let status = zapfn_sandbox::post_signed(
        &reqwest::Client::new(),
        url,
        secret.as_bytes(),
        body.to_string().as_bytes(),
    )
    .await?;
    Ok((wamid, status.as_u16()))
}
