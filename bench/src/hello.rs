//! `zapfn-bench hello`: a bare axum hello-world, the ceiling for HTTP on this
//! machine; same runtime flavour as `zapfn dev` (tokio multi-thread, one worker per core).
//! It also takes the webhook step's requests (`POST /webhook`): it reads each
//! body and answers 200 with nothing else done, so the same client work can be
//! compared with zapfn's.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

#[derive(clap::Args)]
pub struct Args {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 18081)]
    port: u16,
}

/// Serves `GET /` → `Hello, World!` and `POST /webhook` → 200 until killed.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
        let app = Router::new()
            .route("/", get(|| async { "Hello, World!" }))
            .route("/webhook", post(|_body: Bytes| async { StatusCode::OK }));
        axum::serve(listener, app).await?;
        Ok(())
    })
}
