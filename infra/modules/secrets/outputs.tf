output "ids" {
  description = "Secret key => secret id (short name)."
  value       = { for key, secret in google_secret_manager_secret.secret : key => secret.secret_id }
}

output "names" {
  description = "Secret key => full resource name (projects/…/secrets/…)."
  value       = { for key, secret in google_secret_manager_secret.secret : key => secret.id }
}
