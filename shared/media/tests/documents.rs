//! Real documents as customers send them (`fixtures/media`): Office Open XML
//! files whose zip entries are not in the order `infer` looks for (as
//! LibreOffice writes them), text in Windows-1252, and files of types Meta
//! does not take for sends.

use zapfn_media::check::{check_inbound, RefusalCode};
use zapfn_media::{check, sniff, MediaKind};

const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/media")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn office_files_that_sniff_as_zip_pass_with_their_office_label() {
    for (declared, file, extension) in [
        (DOCX, "report.docx", "docx"),
        (XLSX, "sales.xlsx", "xlsx"),
        (PPTX, "pitch.pptx", "pptx"),
    ] {
        let bytes = fixture(file);
        assert_eq!(sniff(&bytes).unwrap().mime, "application/zip", "{file}");
        let checked = check(MediaKind::Document, Some(declared), &bytes).unwrap();
        assert_eq!(
            (checked.content_type.as_str(), checked.extension),
            (declared, extension)
        );
    }
}

#[test]
fn a_zip_is_still_not_a_pdf_nor_an_unlabelled_document() {
    let file = fixture("report.docx");
    let refusal = check(MediaKind::Document, Some("application/pdf"), &file).unwrap_err();
    assert_eq!(
        refusal.reason,
        "labelled application/pdf but the content is application/zip"
    );
    let refusal = check(MediaKind::Document, None, &file).unwrap_err();
    assert_eq!(refusal.code, RefusalCode::UnsupportedType);
    let refusal = check(MediaKind::Document, Some("application/zip"), &file).unwrap_err();
    assert_eq!(
        refusal.code,
        RefusalCode::UnsupportedType,
        "Meta takes no zip"
    );
}

#[test]
fn text_in_windows_1252_passes_as_text_and_binary_does_not() {
    let latin = fixture("sales-windows-1252.txt");
    assert!(
        std::str::from_utf8(&latin).is_err(),
        "the fixture is not UTF-8"
    );
    let checked = check(MediaKind::Document, Some("text/plain"), &latin).unwrap();
    assert_eq!(
        (checked.content_type.as_str(), checked.extension),
        ("text/plain", "txt")
    );
    let refusal = check(
        MediaKind::Document,
        Some("text/plain"),
        b"Relat\xF3rio\0\x01",
    )
    .unwrap_err();
    assert_eq!(refusal.code, RefusalCode::TypeMismatch);
    let refusal = check(
        MediaKind::Document,
        Some("text/plain"),
        &fixture("report.docx"),
    )
    .unwrap_err();
    assert_eq!(refusal.code, RefusalCode::TypeMismatch);
}

#[test]
fn customers_files_of_any_type_are_kept_and_typed_by_their_content() {
    let csv = b"name;phone\r\nMaria;5511999990000\r\n".to_vec();
    let zip = fixture("report.docx");
    let unknown = b"\x00\x01\x02 proprietary".to_vec();
    for (declared, bytes, kept_as) in [
        (Some("text/csv"), &csv, "text/csv"),
        (
            Some("application/x-zip-compressed"),
            &zip,
            "application/zip",
        ),
        (
            Some("application/x-custom; v=2"),
            &unknown,
            "application/x-custom",
        ),
        (None, &unknown, "application/octet-stream"),
    ] {
        let refusal = check(MediaKind::Document, declared, bytes).unwrap_err();
        assert_eq!(
            refusal.code,
            RefusalCode::UnsupportedType,
            "not for sends: {declared:?}"
        );
        let kept = check_inbound(MediaKind::Document, declared, bytes).unwrap();
        assert_eq!(kept.content_type, kept_as, "{declared:?}");
    }
    // A type Meta takes is still checked against the content.
    let refusal = check_inbound(MediaKind::Document, Some("application/pdf"), &zip).unwrap_err();
    assert_eq!(refusal.code, RefusalCode::TypeMismatch);
    assert_eq!(
        check_inbound(MediaKind::Document, Some("text/csv"), b"")
            .unwrap_err()
            .code,
        RefusalCode::Empty
    );
    // Any kind: an image Meta would not take for a send is kept too.
    let gif = b"GIF89a\x01\0\x01\0\0\0\0;";
    assert!(check(MediaKind::Image, Some("image/gif"), gif).is_err());
    let kept = check_inbound(MediaKind::Image, Some("image/gif"), gif).unwrap();
    assert_eq!(kept.content_type, "image/gif");
}
