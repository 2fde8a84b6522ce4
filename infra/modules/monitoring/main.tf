# Monitoring as code: log-based metrics read from the functions' structured logs
# (fields are camelCase: tracing-stackdriver renames `latency_ms` to `latencyMs`),
# alert policies for the seed's thresholds, and the dashboard.

locals {
  # zapfn's Cloud Run services (request metrics and their logs).
  zapfn_run   = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = starts_with(\"${var.name_prefix}-\")"
  channels    = [for channel in google_monitoring_notification_channel.email : channel.id]
  latency_svc = join(", ", [for s in var.latency_services : "\"${s}\""])
}

resource "google_monitoring_notification_channel" "email" {
  for_each = toset(var.alert_emails)

  project      = var.project_id
  display_name = "zapfn alerts: ${each.value}"
  type         = "email"
  labels       = { email_address = each.value }
}

# --- log-based metrics --------------------------------------------------------

# dispatch: `tracing::warn!(message_id, code, attempt, terminal, %error, "send failed")`
resource "google_logging_metric" "graph_api_errors" {
  project = var.project_id
  name    = "${var.name_prefix}-graph-api-errors"
  filter  = "${local.zapfn_run} AND jsonPayload.message = \"send failed\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Graph API errors"
    labels {
      key         = "code"
      value_type  = "STRING"
      description = "Meta's error code (0: transport failure)"
    }
    labels {
      key         = "terminal"
      value_type  = "STRING"
      description = "true when the message was marked failed"
    }
  }

  label_extractors = {
    code     = "EXTRACT(jsonPayload.code)"
    terminal = "EXTRACT(jsonPayload.terminal)"
  }
}

# dispatch: `tracing::info!(message_id, latency_ms, attempt, "sent")`
resource "google_logging_metric" "messages_sent" {
  project = var.project_id
  name    = "${var.name_prefix}-messages-sent"
  filter  = "${local.zapfn_run} AND jsonPayload.message = \"sent\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Messages accepted by the Graph API"
  }
}

resource "google_logging_metric" "message_latency" {
  project         = var.project_id
  name            = "${var.name_prefix}-message-latency"
  filter          = "${local.zapfn_run} AND jsonPayload.message = \"sent\""
  value_extractor = "EXTRACT(jsonPayload.latencyMs)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "ms"
    display_name = "Message latency: queued to accepted by the Graph API"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 32
      growth_factor      = 1.5
      scale              = 10
    }
  }
}

# webhook: `tracing::warn!(%error, "webhook refused: bad signature (check WA_APP_SECRET)")`
resource "google_logging_metric" "webhook_bad_signatures" {
  project = var.project_id
  name    = "${var.name_prefix}-webhook-bad-signatures"
  filter  = "${local.zapfn_run} AND jsonPayload.message = \"webhook refused: bad signature (check WA_APP_SECRET)\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Webhooks refused for a bad signature"
  }
}

# --- alert policies (the seed's thresholds) -----------------------------------

resource "google_monitoring_alert_policy" "webhook_failures" {
  project               = var.project_id
  display_name          = "zapfn: webhook failures > 1%"
  combiner              = "OR"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    content   = "More than 1% of POST /webhook answers in 5 minutes were not 2xx. 401: WA_APP_SECRET does not match the Meta app (see the webhook-bad-signatures metric); 503: the store is failing (Meta redelivers for up to 7 days)."
  }

  conditions {
    display_name = "webhook non-2xx ratio > 0.01"
    condition_threshold {
      filter             = "metric.type = \"run.googleapis.com/request_count\" AND resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${var.name_prefix}-webhook\" AND metric.labels.response_code_class = one_of(\"4xx\", \"5xx\")"
      denominator_filter = "metric.type = \"run.googleapis.com/request_count\" AND resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${var.name_prefix}-webhook\""
      comparison         = "COMPARISON_GT"
      threshold_value    = 0.01
      duration           = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
}

resource "google_monitoring_alert_policy" "latency" {
  project               = var.project_id
  display_name          = "zapfn: latency > 2 s"
  combiner              = "OR"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    content   = "The 99th percentile of a message-path function's request latency was above 2 s for 5 minutes (webhook, send API, status, text, dispatch: dispatch includes the Graph API call). Check the dashboard's latency and instance tiles, then the function's logs."
  }

  conditions {
    display_name = "p99 request latency > 2000 ms"
    condition_threshold {
      filter          = "metric.type = \"run.googleapis.com/request_latencies\" AND resource.type = \"cloud_run_revision\" AND resource.labels.service_name = one_of(${local.latency_svc})"
      comparison      = "COMPARISON_GT"
      threshold_value = 2000
      duration        = "300s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_99"
        group_by_fields      = ["resource.labels.service_name"]
      }
    }
  }
}

resource "google_monitoring_alert_policy" "error_rate" {
  project               = var.project_id
  display_name          = "zapfn: error rate > 5%"
  combiner              = "OR"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    content   = "More than 5% of a function's requests in 5 minutes answered 5xx (for push endpoints: handlers asking Pub/Sub or Cloud Tasks to retry). Check the function's ERROR logs."
  }

  conditions {
    display_name = "5xx ratio > 0.05 per function"
    condition_threshold {
      filter             = "metric.type = \"run.googleapis.com/request_count\" AND ${local.zapfn_run} AND metric.labels.response_code_class = \"5xx\""
      denominator_filter = "metric.type = \"run.googleapis.com/request_count\" AND ${local.zapfn_run}"
      comparison         = "COMPARISON_GT"
      threshold_value    = 0.05
      duration           = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.service_name"]
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.service_name"]
      }
    }
  }
}

resource "google_monitoring_alert_policy" "backlog" {
  project               = var.project_id
  display_name          = "zapfn: queue backlog > 1000"
  combiner              = "OR"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    content   = "More than 1000 events waited in a Pub/Sub subscription, or more than 1000 tasks in a Cloud Tasks queue, for 5 minutes. The consuming function is failing or at max instances; sends may be held by the queue's rate (80/s)."
  }

  conditions {
    display_name = "Pub/Sub undelivered messages > 1000"
    condition_threshold {
      filter          = "metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = starts_with(\"${var.name_prefix}-\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 1000
      duration        = "300s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  conditions {
    display_name = "Cloud Tasks queue depth > 1000"
    condition_threshold {
      filter          = "metric.type = \"cloudtasks.googleapis.com/queue/depth\" AND resource.type = \"cloud_tasks_queue\" AND resource.labels.queue_id = starts_with(\"${var.name_prefix}-\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 1000
      duration        = "300s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }
}

# A send that may have reached Meta is sent again after ZAPFN_RECONCILE_SECONDS (30 s)
# without a status naming it. The dispatcher waits longer for statuses still in the
# outbox, but not for those already forwarded to Pub/Sub: a statuses backlog older
# than the window there can make it send twice.
resource "google_monitoring_alert_policy" "status_delay" {
  project               = var.project_id
  display_name          = "zapfn: statuses applied > 30 s late"
  combiner              = "OR"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    content   = "The oldest status update waiting in the status function's subscription is older than the 30 s reconcile window (ZAPFN_RECONCILE_SECONDS). A send whose answer was lost in a crash or timeout may then be sent twice. Look at the status function's errors and instance limit."
  }

  conditions {
    display_name = "statuses subscription oldest unacked message age > 30 s"
    condition_threshold {
      filter          = "metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${var.name_prefix}-status-statuses\""
      comparison      = "COMPARISON_GT"
      threshold_value = 30
      duration        = "60s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }
}

resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project_id
  display_name          = "zapfn: dead letters"
  combiner              = "OR"
  notification_channels = local.channels

  documentation {
    mime_type = "text/markdown"
    content   = "Events gave up after their retries and wait in the ${var.dead_letter_subscription} subscription. Pull them (`gcloud pubsub subscriptions pull ${var.dead_letter_subscription} --limit 10`) to see the topic and payload."
  }

  conditions {
    display_name = "dead-letter subscription not empty"
    condition_threshold {
      filter          = "metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${var.dead_letter_subscription}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }
}

resource "google_monitoring_dashboard" "zapfn" {
  project = var.project_id
  dashboard_json = templatefile("${path.module}/dashboard.json", {
    prefix = var.name_prefix
  })
}
