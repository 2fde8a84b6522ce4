output "host" {
  description = "Private address."
  value       = google_redis_instance.cache.host
}

output "url_secret_id" {
  description = "Secret holding the rediss:// URL (mounted as ZAPFN_REDIS_URL)."
  value       = google_secret_manager_secret.url.secret_id
}
