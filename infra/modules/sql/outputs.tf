output "connection_name" {
  description = "project:region:instance."
  value       = google_sql_database_instance.pg.connection_name
}

output "url_secret_id" {
  description = "Secret holding the connection URL (mounted as ZAPFN_DATABASE_URL)."
  value       = google_secret_manager_secret.url.secret_id
}
