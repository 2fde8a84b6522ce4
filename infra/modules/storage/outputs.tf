output "bucket" {
  description = "Media bucket name."
  value       = google_storage_bucket.media.name
}

output "gcs_agent_member" {
  description = "Cloud Storage's service agent (publishes the bucket's events)."
  value       = data.google_storage_project_service_account.gcs.member
}
