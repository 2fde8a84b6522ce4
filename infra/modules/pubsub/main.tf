# The event bus: one topic per zapfn topic, one push subscription per
# (function, topic) with an attribute filter, OIDC-authenticated pushes,
# exponential retry backoff and dead-lettering to one dead-letter topic.

locals {
  pubsub_agent = "serviceAccount:service-${var.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  subscriptions = {
    for s in var.subscriptions : "${s.function}-${s.topic}" => s
  }
  kms_key_name = var.kms_key_name == "" ? null : var.kms_key_name
}

resource "google_pubsub_topic" "topic" {
  for_each = toset(var.topics)

  project                    = var.project_id
  name                       = "${var.name_prefix}-${each.value}"
  labels                     = { app = "zapfn" }
  kms_key_name               = local.kms_key_name
  message_retention_duration = "86400s"
}

resource "google_pubsub_topic" "dead_letters" {
  project      = var.project_id
  name         = "${var.name_prefix}-dead-letters"
  labels       = { app = "zapfn" }
  kms_key_name = local.kms_key_name
}

# Dead letters are kept (7 days) for inspection and replay.
resource "google_pubsub_subscription" "dead_letters" {
  project                    = var.project_id
  name                       = "${var.name_prefix}-dead-letters"
  topic                      = google_pubsub_topic.dead_letters.id
  message_retention_duration = "604800s"
  retain_acked_messages      = true
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}

# The identity Pub/Sub signs push requests as.
resource "google_service_account" "push" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-push"
  display_name = "zapfn Pub/Sub push identity"
}

# Pub/Sub's service agent mints the OIDC tokens of that identity.
resource "google_service_account_iam_member" "agent_mints_push_tokens" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

resource "google_pubsub_subscription" "push" {
  for_each = local.subscriptions

  project                    = var.project_id
  name                       = "${var.name_prefix}-${each.key}"
  topic                      = google_pubsub_topic.topic[each.value.topic].id
  filter                     = each.value.filter
  ack_deadline_seconds       = each.value.ack_deadline_seconds
  enable_message_ordering    = true
  message_retention_duration = "604800s"
  labels                     = { app = "zapfn", function = each.value.function }

  push_config {
    push_endpoint = each.value.endpoint

    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = var.audience
    }
  }

  retry_policy {
    minimum_backoff = "1s"
    maximum_backoff = "60s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letters.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }
}

# Dead-lettering: Pub/Sub's service agent publishes to the dead-letter topic and
# acknowledges the forwarded message on the source subscription.
resource "google_pubsub_topic_iam_member" "agent_publishes_dead_letters" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letters.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "agent_forwards_dead_letters" {
  for_each = local.subscriptions

  project      = var.project_id
  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# Functions publish only to the topics they produce.
resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = var.publishers

  project = var.project_id
  topic   = google_pubsub_topic.topic[each.value.topic].name
  role    = "roles/pubsub.publisher"
  member  = each.value.member
}
