# Cloud Storage `object.finalized` events of the media bucket, delivered as
# CloudEvents to the functions that process stored objects.

resource "google_service_account" "eventarc" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-events"
  display_name = "zapfn Eventarc identity"
}

resource "google_project_iam_member" "event_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.eventarc.member
}

# Cloud Storage events reach Eventarc through Pub/Sub, published by the storage agent.
resource "google_project_iam_member" "gcs_agent_publishes" {
  count = length(var.targets) == 0 ? 0 : 1

  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = var.gcs_agent_member
}

resource "google_eventarc_trigger" "finalized" {
  for_each = var.targets

  project         = var.project_id
  name            = "${var.name_prefix}-${each.key}-finalized"
  location        = var.region
  service_account = google_service_account.eventarc.email
  labels          = { app = "zapfn", function = each.key }

  matching_criteria {
    attribute = "type"
    value     = "google.cloud.storage.object.v1.finalized"
  }

  matching_criteria {
    attribute = "bucket"
    value     = var.bucket
  }

  destination {
    cloud_run_service {
      service = each.value.service
      region  = var.region
      path    = each.value.path
    }
  }

  depends_on = [google_project_iam_member.event_receiver, google_project_iam_member.gcs_agent_publishes]
}
