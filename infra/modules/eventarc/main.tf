# Cloud Storage `object.finalized` events of the media bucket, delivered as
# CloudEvents (binary mode: `ce-*` headers, StorageObjectData body) to the
# functions that process stored objects. Eventarc filters these events by bucket
# only: every new object (originals and derived files alike) reaches every target,
# which ignores what is not its own (shared/mediatools/src/trigger.rs). Delivery is
# at least once, retried with Pub/Sub's backoff (10 s to 600 s) for 24 hours; the
# functions dead-letter themselves after ZAPFN_MAX_RETRY_SECONDS (`ce-time` is the
# first attempt). A trigger takes no OIDC audience setting (its tokens are for the
# target service, not for the custom audience), so the functions also accept a
# token for the URL a request was sent to (shared/cloud/src/oidc.rs).

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
