# Secret Manager secrets. Terraform declares them; scripts/deploy.sh adds their
# values as versions, so no secret value is ever in Terraform state.

resource "google_secret_manager_secret" "secret" {
  for_each = var.secrets

  project   = var.project_id
  secret_id = "${var.name_prefix}-${each.key}"
  labels    = { app = "zapfn", env_var = lower(replace(each.value, "_", "-")) }

  replication {
    auto {}
  }
}
