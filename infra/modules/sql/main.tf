# Optional Cloud SQL for PostgreSQL: the store's second deployed option
# (ZAPFN_STORE=postgres). Private IP only, TLS required, backups with PITR.
# The connection URL (with a generated password) is kept in Secret Manager; the
# password is also in Terraform state, which lives in a private bucket.

resource "random_password" "zapfn" {
  length  = 32
  special = false
}

resource "google_sql_database_instance" "pg" {
  #checkov:skip=CKV_GCP_6:Provider 6 removed require_ssl; ssl_mode = ENCRYPTED_ONLY below is its replacement (TLS required).
  project             = var.project_id
  name                = "${var.name_prefix}-pg"
  region              = var.region
  database_version    = "POSTGRES_18"
  deletion_protection = var.deletion_protection

  settings {
    tier              = var.tier
    edition           = "ENTERPRISE"
    availability_type = var.high_availability ? "REGIONAL" : "ZONAL"
    disk_type         = "PD_SSD"
    disk_autoresize   = true
    user_labels       = { app = "zapfn" }

    ip_configuration {
      ipv4_enabled    = false
      private_network = var.network
      ssl_mode        = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
    }

    insights_config {
      query_insights_enabled = true
    }

    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
  }
}

resource "google_sql_database" "zapfn" {
  project  = var.project_id
  instance = google_sql_database_instance.pg.name
  name     = "zapfn"
}

resource "google_sql_user" "zapfn" {
  project  = var.project_id
  instance = google_sql_database_instance.pg.name
  name     = "zapfn"
  password = random_password.zapfn.result
}

resource "google_secret_manager_secret" "url" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-database-url"
  labels    = { app = "zapfn" }

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "url" {
  secret      = google_secret_manager_secret.url.id
  secret_data = "postgres://zapfn:${random_password.zapfn.result}@${google_sql_database_instance.pg.private_ip_address}:5432/zapfn?sslmode=require"
}
