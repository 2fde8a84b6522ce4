# The media bucket: private (uniform access, public access prevention), objects
# deleted after the retention period, optionally encrypted with a customer key.

data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

# With a customer-managed key, Cloud Storage's service agent must be able to use it.
resource "google_kms_crypto_key_iam_member" "gcs_uses_key" {
  count = var.kms_key_name == "" ? 0 : 1

  crypto_key_id = var.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = data.google_storage_project_service_account.gcs.member
}

resource "google_storage_bucket" "media" {
  #checkov:skip=CKV_GCP_62:Access is audited with Cloud Audit Logs (data access) rather than legacy usage logs into a second bucket.
  project                     = var.project_id
  name                        = "${var.project_id}-${var.name_prefix}-media"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
  labels                      = { app = "zapfn" }

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = var.retention_days
    }
    action {
      type = "Delete"
    }
  }

  # Overwritten or deleted objects are kept a week, then removed.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == "" ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.gcs_uses_key]
}

# Readers get, list and sign URLs for objects (a V4 signed URL is authorised as
# its signer, so the signing function must be able to read the object).
resource "google_storage_bucket_iam_member" "reader" {
  for_each = var.readers

  bucket = google_storage_bucket.media.name
  role   = "roles/storage.objectViewer"
  member = each.value
}

# Deleters (the send API's erasure and retention) remove objects they can read but
# never create or overwrite one: no predefined role has storage.objects.delete
# without storage.objects.create (roles/storage.objectUser has both, and update), so
# a custom role with that single permission is granted on this bucket only.
resource "google_project_iam_custom_role" "media_deleter" {
  count = length(var.deleters) == 0 ? 0 : 1

  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_media_deleter"
  title       = "zapfn media deleter"
  description = "Deletes objects of the zapfn media bucket (granted on the bucket only)."
  permissions = ["storage.objects.delete"]
}

resource "google_storage_bucket_iam_member" "deleter" {
  for_each = var.deleters

  bucket = google_storage_bucket.media.name
  role   = google_project_iam_custom_role.media_deleter[0].id
  member = each.value
}

# Writers (the media functions that store originals and derived files) create,
# read, overwrite and delete objects.
resource "google_storage_bucket_iam_member" "writer" {
  for_each = var.writers

  bucket = google_storage_bucket.media.name
  role   = "roles/storage.objectUser"
  member = each.value
}
