# Periodic jobs: an OIDC-authenticated POST to a function's path. Each job has its
# own service account, so each may invoke only the function it targets (the caller
# grants run.invoker on that one service) and a function's job routes accept only
# their own job's tokens.

resource "google_service_account" "job" {
  for_each = var.jobs

  project      = var.project_id
  account_id   = "${var.name_prefix}-job-${each.key}"
  display_name = "zapfn Cloud Scheduler job ${each.key}"
}

resource "google_cloud_scheduler_job" "job" {
  for_each = var.jobs

  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-${each.key}"
  description      = each.value.description
  schedule         = each.value.schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "320s"

  retry_config {
    retry_count          = 1
    min_backoff_duration = "10s"
  }

  http_target {
    http_method = "POST"
    uri         = each.value.uri

    oidc_token {
      service_account_email = google_service_account.job[each.key].email
      audience              = var.audience
    }
  }
}
