# Optional Memorystore for Redis (shared rate-limit state across instances),
# reachable only on the private network, with AUTH and in-transit encryption.

resource "google_redis_instance" "cache" {
  project                 = var.project_id
  name                    = "${var.name_prefix}-redis"
  region                  = var.region
  tier                    = var.high_availability ? "STANDARD_HA" : "BASIC"
  memory_size_gb          = var.memory_gb
  redis_version           = "REDIS_7_2"
  authorized_network      = var.network
  connect_mode            = "PRIVATE_SERVICE_ACCESS"
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"
  labels                  = { app = "zapfn" }
}

resource "google_secret_manager_secret" "url" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-redis-url"
  labels    = { app = "zapfn" }

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "url" {
  secret      = google_secret_manager_secret.url.id
  secret_data = "rediss://:${google_redis_instance.cache.auth_string}@${google_redis_instance.cache.host}:${google_redis_instance.cache.port}"
}
