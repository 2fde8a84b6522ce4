# Outbound sends: Cloud Tasks queues whose rate and retry settings do the pacing.
# Tasks are HTTP tasks aimed at the dispatch function, carrying an OIDC token of
# the tasks identity.

resource "google_cloud_tasks_queue" "queue" {
  for_each = var.queues

  project  = var.project_id
  name     = "${var.name_prefix}-${each.key}"
  location = var.region

  rate_limits {
    max_dispatches_per_second = each.value.rate
    max_concurrent_dispatches = each.value.concurrent
  }

  retry_config {
    max_attempts       = var.max_attempts
    max_retry_duration = "${var.max_retry_seconds}s"
    min_backoff        = "1s"
    max_backoff        = "60s"
    max_doublings      = 5
  }

  stackdriver_logging_config {
    sampling_ratio = 0.1
  }
}

# The identity whose OIDC token tasks carry to the dispatch function.
resource "google_service_account" "tasks" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-tasks"
  display_name = "zapfn Cloud Tasks identity"
}

resource "google_cloud_tasks_queue_iam_member" "enqueuer" {
  for_each = var.enqueuers

  project  = var.project_id
  location = var.region
  name     = google_cloud_tasks_queue.queue[each.value.queue].name
  role     = "roles/cloudtasks.enqueuer"
  member   = each.value.member
}

# Creating a task that carries the tasks identity's token requires acting as it.
resource "google_service_account_iam_member" "enqueuer_acts_as_tasks" {
  for_each = var.enqueuer_members

  service_account_id = google_service_account.tasks.name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value
}
