#[tokio::main]
async fn main() -> anyhow::Result<()> {
    zapfn_runtime::run_function(zapfn_media_fetch::function).await
}
