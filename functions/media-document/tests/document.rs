//! The document handler on a real SQLite store and blob directory, with a
//! two-page PDF read by the real poppler.

use std::path::Path;

use zapfn_media_document::DocumentProcessor;
use zapfn_mediatools::{samples, MediaConfig};
use zapfn_store::Settlement;

fn invoice() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/media/invoice-2-pages.pdf"),
    )
    .unwrap()
}

#[tokio::test]
async fn a_pdf_gets_its_page_count_and_text_and_keeps_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let pdf = invoice();
    let size = pdf.len();
    let delivery =
        samples::inbound_media(&context, "wamid.PDF1", "document", pdf, "application/pdf").await;
    let documents = DocumentProcessor::new(&context, MediaConfig::default());
    assert_eq!(documents.handle(&delivery).await, Settlement::Ack);
    let record = samples::recorded(&context, "wamid.PDF1", "document").await;
    assert_eq!(record["status"], "done", "{record}");
    assert_eq!(record["pages"], 2);
    assert_eq!(record["size"], size);
    assert_eq!(record["mime"], "application/pdf");
    assert_eq!(record["filename"], "invoice.pdf");
    assert_eq!(record["text_truncated"], false);
    let text = record["text"].as_str().unwrap();
    assert!(text.contains("Invoice 4711 for Maria Silva"), "{text:?}");
    assert!(text.contains("Total due: 129 reais"), "{text:?}");
}

#[tokio::test]
async fn other_documents_keep_size_mime_and_name_only() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let delivery = samples::inbound_media(
        &context,
        "wamid.CSV1",
        "document",
        b"sku,price\n1,10\n".to_vec(),
        "text/csv",
    )
    .await;
    let documents = DocumentProcessor::new(&context, MediaConfig::default());
    assert_eq!(documents.handle(&delivery).await, Settlement::Ack);
    let record = samples::recorded(&context, "wamid.CSV1", "document").await;
    assert_eq!(record["status"], "done");
    assert_eq!(
        (record["size"].as_u64(), record["mime"].as_str()),
        (Some(15), Some("text/csv"))
    );
    assert!(record.get("pages").is_none());
}

#[tokio::test]
async fn mislabelled_and_broken_pdfs_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let documents = DocumentProcessor::new(&context, MediaConfig::default());
    let cases = [
        (
            "wamid.NOTPDF",
            b"PK\x03\x04 a zip file".to_vec(),
            "not a PDF",
        ),
        (
            "wamid.BROKEN",
            b"%PDF-1.7\n garbage, no objects".to_vec(),
            "pdfinfo failed",
        ),
    ];
    for (wamid, bytes, reason) in cases {
        let delivery =
            samples::inbound_media(&context, wamid, "document", bytes, "application/pdf").await;
        assert_eq!(documents.handle(&delivery).await, Settlement::Ack);
        let record = samples::recorded(&context, wamid, "document").await;
        assert_eq!(record["status"], "failed", "{record}");
        assert!(
            record["reason"].as_str().unwrap().contains(reason),
            "{record}"
        );
    }
}

#[test]
fn the_lease_outlasts_pdf_tools() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let tool_timeout = MediaConfig::from_env_or_defaults().tool_timeout;
    // pdfinfo, then pdftotext.
    let worst_case = tool_timeout * 2;
    let function = zapfn_media_document::function(&context);
    let lease = function.subscriptions[0].lease;
    assert!(
        lease > worst_case,
        "lease {lease:?}, worst case {worst_case:?}"
    );
}
