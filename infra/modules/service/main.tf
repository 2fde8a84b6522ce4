# One function as its own Cloud Run service, with its own service account that
# holds only the roles this function needs.

locals {
  service_name = "${var.name_prefix}-${var.name}"

  # The function's push, task, event and job routes accept OIDC tokens of exactly the
  # identities allowed to invoke it (var.invokers), nobody else's.
  env = merge(var.env, {
    ZAPFN_PUSH_SERVICE_ACCOUNTS = join(",", sort([for member in values(var.invokers) : trimprefix(member, "serviceAccount:")]))
  })
}

resource "google_service_account" "fn" {
  project      = var.project_id
  account_id   = local.service_name
  display_name = "zapfn ${var.name} function"
}

# Firestore: read/write documents of zapfn's database only.
resource "google_project_iam_member" "firestore" {
  count = var.firestore_database == "" ? 0 : 1

  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.fn.member

  condition {
    title      = "zapfn database only"
    expression = "resource.name.startsWith(\"projects/${var.project_id}/databases/${var.firestore_database}\")"
  }
}

# Secrets mounted as environment variables.
resource "google_secret_manager_secret_iam_member" "secret" {
  for_each = var.secret_env

  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.fn.member
}

# Cloud Build deploys new revisions that run as this account.
resource "google_service_account_iam_member" "deployer" {
  service_account_id = google_service_account.fn.name
  role               = "roles/iam.serviceAccountUser"
  member             = var.deployer
}

# V4 signed URLs: on Cloud Run there is no key file, so the storage client
# (gcloud-storage with the metadata server's credentials) signs with IAM
# `projects/-/serviceAccounts/<own e-mail>:signBlob` (iamcredentials API).
# roles/iam.serviceAccountTokenCreator on the function's own account only: it adds
# signBlob/signJwt as itself; the tokens it could mint for itself the metadata
# server already gives it. No other account can be impersonated.
resource "google_service_account_iam_member" "sign_urls" {
  count = var.signs_urls ? 1 : 0

  service_account_id = google_service_account.fn.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_service_account.fn.member
}

resource "google_cloud_run_v2_service" "fn" {
  project             = var.project_id
  name                = local.service_name
  location            = var.region
  ingress             = var.ingress
  custom_audiences    = var.custom_audiences
  deletion_protection = var.deletion_protection
  labels              = { app = "zapfn", function = var.name }

  template {
    service_account                  = google_service_account.fn.email
    timeout                          = "${var.timeout_seconds}s"
    max_instance_request_concurrency = var.concurrency
    execution_environment            = var.execution_environment
    labels                           = { app = "zapfn", function = var.name }

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    containers {
      image = var.image

      ports {
        container_port = 8080
      }

      resources {
        limits            = { cpu = var.cpu, memory = var.memory }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = var.secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      # Ready once /healthz answers (configuration read, store reachable).
      startup_probe {
        period_seconds    = 1
        timeout_seconds   = 1
        failure_threshold = 30
        http_get {
          path = "/healthz"
        }
      }

      dynamic "volume_mounts" {
        for_each = var.cloud_sql_instance == "" ? [] : [var.cloud_sql_instance]
        content {
          name       = "cloudsql"
          mount_path = "/cloudsql"
        }
      }
    }

    dynamic "volumes" {
      for_each = var.cloud_sql_instance == "" ? [] : [var.cloud_sql_instance]
      content {
        name = "cloudsql"
        cloud_sql_instance {
          instances = [volumes.value]
        }
      }
    }

    dynamic "vpc_access" {
      for_each = var.vpc == null ? [] : [var.vpc]
      content {
        egress = "PRIVATE_RANGES_ONLY"
        network_interfaces {
          network    = vpc_access.value.network
          subnetwork = vpc_access.value.subnetwork
        }
      }
    }
  }

  # Cloud Build deploys new images with `gcloud run deploy`; Terraform creates the
  # service with var.image and then leaves the image (and gcloud's client fields) alone.
  lifecycle {
    ignore_changes = [
      template[0].containers[0].image,
      client,
      client_version,
    ]
  }

  depends_on = [google_secret_manager_secret_iam_member.secret]
}

# Internet-facing functions authenticate callers themselves (Meta's signature, API keys).
resource "google_cloud_run_v2_service_iam_member" "public" {
  count = var.public ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.fn.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# Service accounts that push to this function (Pub/Sub, Cloud Tasks, Eventarc, Cloud Scheduler).
resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = var.invokers

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.fn.name
  role     = "roles/run.invoker"
  member   = each.value
}
