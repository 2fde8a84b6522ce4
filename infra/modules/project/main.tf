# The project's APIs and the Artifact Registry repository of the function images.

data "google_project" "this" {
  project_id = var.project_id
}

resource "google_project_service" "api" {
  for_each = toset(var.apis)

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

resource "google_artifact_registry_repository" "images" {
  project       = var.project_id
  location      = var.region
  repository_id = var.repository
  format        = "DOCKER"
  description   = "zapfn function images (tag: commit SHA)"
  kms_key_name  = var.kms_key_name == "" ? null : var.kms_key_name

  # Keep the last 20 builds of each image, so rollbacks have something to go back to.
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.api]
}

# The identity Cloud Build runs as: pushes images, reads/writes its cache bucket,
# deploys new revisions of the zapfn services (acting as their service accounts:
# granted on each function's account, modules/service).
resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "zapfn Cloud Build identity"
}

resource "google_artifact_registry_repository_iam_member" "build_pushes" {
  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

resource "google_project_iam_member" "build" {
  for_each = toset([
    "roles/run.developer",     # gcloud run deploy of new revisions
    "roles/logging.logWriter", # build logs (CLOUD_LOGGING_ONLY)
  ])

  project = var.project_id
  role    = each.value
  member  = google_service_account.build.member
}

resource "google_storage_bucket_iam_member" "build_cache" {
  bucket = var.build_cache_bucket
  role   = "roles/storage.objectUser"
  member = google_service_account.build.member
}
