output "project_number" {
  description = "Project number (service agent e-mails and deterministic run.app URLs use it)."
  value       = data.google_project.this.number
}

output "image_base" {
  description = "Image path prefix: <region>-docker.pkg.dev/<project>/<repository>."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "apis" {
  description = "The enabled APIs (depend on this to wait for them)."
  value       = [for api in google_project_service.api : api.service]
}

output "build_service_account" {
  description = "Full name of the Cloud Build identity (gcloud builds submit --service-account)."
  value       = google_service_account.build.id
}

output "build_member" {
  description = "IAM member of the Cloud Build identity."
  value       = google_service_account.build.member
}
