# Firestore (native mode) and the composite indexes the store's queries need,
# read from the store crate's own list (shared/store-firestore/indexes.json, the
# Firebase CLI format), so code and infrastructure cannot drift apart.

locals {
  declared = jsondecode(file(var.indexes_file))
  indexes = {
    for index in local.declared.indexes :
    join("-", concat([index.collectionGroup, lower(try(index.queryScope, "COLLECTION"))], [
      for field in index.fields : "${field.fieldPath}.${lower(try(field.order, try(field.arrayConfig, "")))}"
    ])) => index
  }
}

resource "google_firestore_database" "db" {
  project                           = var.project_id
  name                              = var.database
  location_id                       = var.location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = var.deletion_protection ? "ABANDON" : "DELETE"
}

resource "google_firestore_index" "index" {
  for_each = local.indexes

  project     = var.project_id
  database    = google_firestore_database.db.name
  collection  = each.value.collectionGroup
  query_scope = try(each.value.queryScope, "COLLECTION")

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path   = fields.value.fieldPath
      order        = try(fields.value.order, null)
      array_config = try(fields.value.arrayConfig, null)
    }
  }
}
