output "name" {
  description = "Cloud Run service name."
  value       = google_cloud_run_v2_service.fn.name
}

output "uri" {
  description = "The service's run.app URL."
  value       = google_cloud_run_v2_service.fn.uri
}

output "service_account_email" {
  description = "The function's identity."
  value       = google_service_account.fn.email
}

output "service_account_member" {
  description = "The function's identity as an IAM member (serviceAccount:…)."
  value       = google_service_account.fn.member
}
