//! The link fetcher against a real HTTP server on loopback.

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use zapfn_media::link::{LinkError, LinkFetcher};

async fn serve() -> String {
    let router = Router::new()
        .route(
            "/a.png",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "image/png")],
                    b"\x89PNG\r\n\x1a\n".to_vec(),
                )
            }),
        )
        .route("/big", get(|| async { vec![7u8; 4096] }))
        .route(
            "/chunked",
            get(|| async {
                let chunks = futures_chunks();
                axum::body::Body::from_stream(chunks)
            }),
        )
        .route(
            "/to-metadata",
            get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data") }),
        )
        .route(
            "/to-ftp",
            get(|| async { Redirect::temporary("ftp://example.com/a") }),
        )
        .route("/loop", get(|| async { Redirect::temporary("/loop") }))
        .route(
            "/gone",
            get(|| async { StatusCode::NOT_FOUND.into_response() }),
        )
        .route(
            "/busy",
            get(|| async { StatusCode::SERVICE_UNAVAILABLE.into_response() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

/// 8 chunks of 1 KiB without a Content-Length.
fn futures_chunks() -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::iter((0..8).map(|_| Ok(vec![1u8; 1024])))
}

fn refused(result: Result<zapfn_media::link::Fetched, LinkError>) -> String {
    match result {
        Err(LinkError::Refused(reason)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn loopback_and_localhost_are_refused_without_the_flag() {
    let base = serve().await;
    let fetcher = LinkFetcher::new(false, Duration::from_secs(5));
    let reason = refused(fetcher.fetch(&format!("{base}/a.png"), 1024).await);
    assert!(reason.contains("127.0.0.1, a loopback address"), "{reason}");
    let port = base.rsplit(':').next().unwrap();
    let reason = refused(
        fetcher
            .fetch(&format!("http://localhost:{port}/a.png"), 1024)
            .await,
    );
    assert!(reason.starts_with("localhost resolves to"), "{reason}");
    assert!(reason.contains("loopback"), "{reason}");
    let reason = refused(
        fetcher
            .fetch("http://169.254.169.254/latest/meta-data/", 1024)
            .await,
    );
    assert!(reason.contains("cloud metadata"), "{reason}");
}

#[tokio::test]
async fn with_the_flag_loopback_is_fetched_but_redirects_are_still_guarded() {
    let base = serve().await;
    let fetcher = LinkFetcher::new(true, Duration::from_secs(5));
    let fetched = fetcher.fetch(&format!("{base}/a.png"), 1024).await.unwrap();
    assert_eq!(&fetched.bytes[..], b"\x89PNG\r\n\x1a\n");
    assert_eq!(fetched.content_type.as_deref(), Some("image/png"));

    let reason = refused(fetcher.fetch(&format!("{base}/to-metadata"), 1024).await);
    assert!(
        reason.contains("169.254.169.254") && reason.contains("metadata"),
        "{reason}"
    );
    let reason = refused(fetcher.fetch(&format!("{base}/to-ftp"), 1024).await);
    assert!(reason.contains("only http and https"), "{reason}");
    let reason = refused(fetcher.fetch(&format!("{base}/loop"), 1024).await);
    assert!(reason.contains("redirects"), "{reason}");
}

#[tokio::test]
async fn sizes_and_statuses_are_classified() {
    let base = serve().await;
    let fetcher = LinkFetcher::new(true, Duration::from_secs(5));
    let reason = refused(fetcher.fetch(&format!("{base}/big"), 1000).await);
    assert!(reason.contains("over the 1000 B limit"), "{reason}");
    let reason = refused(fetcher.fetch(&format!("{base}/chunked"), 5000).await);
    assert!(reason.contains("over the"), "{reason}");
    assert_eq!(
        fetcher
            .fetch(&format!("{base}/chunked"), 8192)
            .await
            .unwrap()
            .bytes
            .len(),
        8192
    );
    let reason = refused(fetcher.fetch(&format!("{base}/gone"), 1000).await);
    assert_eq!(reason, "the link answered HTTP 404 Not Found");
    let busy = fetcher
        .fetch(&format!("{base}/busy"), 1000)
        .await
        .unwrap_err();
    assert!(busy.is_transient(), "{busy:?}");
    let closed = fetcher
        .fetch("http://127.0.0.1:9/", 1000)
        .await
        .unwrap_err();
    assert!(closed.is_transient(), "{closed:?}");
}
