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
