//! The audit log of state-changing API calls.

use firestore::FirestoreDb;
use zapfn_store::{AuditEntry, Result};

use crate::error::store_error;
use crate::layout::{collections, Layout};
use crate::records::AuditDoc;

/// Appends an entry (one write, under a random id).
pub(crate) async fn record(db: &FirestoreDb, layout: &Layout, entry: &AuditEntry) -> Result<()> {
    let doc = layout.new_audit_entry();
    let record = AuditDoc::from(entry);
    db.fluent()
        .update()
        .in_col(doc.collection)
        .document_id(&doc.id)
        .parent(&doc.parent)
        .object(&record)
        .execute::<()>()
        .await
        .map_err(store_error)
}

/// The latest `limit` entries, newest first.
pub(crate) async fn latest(
    db: &FirestoreDb,
    layout: &Layout,
    limit: usize,
) -> Result<Vec<AuditEntry>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let docs: Vec<AuditDoc> = db
        .fluent()
        .select()
        .from(collections::AUDIT_LOG)
        .parent(layout.root())
        .order(|o| o.fields([o.field("at_ms").descending()]))
        .limit(limit.min(u32::MAX as usize) as u32)
        .obj()
        .query()
        .await
        .map_err(store_error)?;
    Ok(docs.into_iter().map(AuditEntry::from).collect())
}
