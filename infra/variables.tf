# Every variable is documented, with an example value, in terraform.tfvars.example.

variable "project_id" {
  description = "Google Cloud project to deploy into."
  type        = string
}

variable "region" {
  description = "Region of Cloud Run, Cloud Tasks, Eventarc, Artifact Registry and the media bucket."
  type        = string
  default     = "us-central1"
}

variable "firestore_location" {
  description = "Firestore location (a region such as us-central1, or a multi-region such as nam5); the region when empty."
  type        = string
  default     = ""
}

variable "artifact_repository" {
  description = "Artifact Registry Docker repository holding the function images."
  type        = string
  default     = "zapfn"
}

variable "image_tag" {
  description = "Image tag to deploy (the commit SHA Cloud Build tagged). Later deploys replace images with `gcloud run deploy`; Terraform ignores image changes after creation."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every resource name (services, topics, queues, bucket, accounts)."
  type        = string
  default     = "zapfn"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,9}$", var.name_prefix))
    error_message = "name_prefix: 2-10 lowercase letters, digits or dashes, starting with a letter (service account ids are limited to 30 characters)."
  }
}

variable "instances" {
  description = "Per-function overrides of min/max instances, e.g. { webhook = { min = 1, max = 50 } }; functions left out keep the catalog's values (functions.tf)."
  type        = map(object({ min = optional(number), max = optional(number) }))
  default     = {}
}

variable "edge" {
  description = "How the webhook and the API are reached: load_balancer (global HTTPS load balancer with a managed certificate for `domain`), domain_mapping (Cloud Run domain mapping of `domain`), or run_app (the services' own run.app URLs)."
  type        = string
  default     = "run_app"

  validation {
    condition     = contains(["load_balancer", "domain_mapping", "run_app"], var.edge)
    error_message = "edge must be load_balancer, domain_mapping or run_app."
  }
}

variable "domain" {
  description = "Host name for the webhook and API (needed by load_balancer and domain_mapping), e.g. wa.example.com."
  type        = string
  default     = ""
}

variable "wa_phone_number_id" {
  description = "Default WhatsApp business phone number id (WA_PHONE_NUMBER_ID)."
  type        = string
  default     = ""
}

variable "wa_api_version" {
  description = "Graph API version (WA_API_VERSION)."
  type        = string
  default     = "v23.0"
}

variable "ocr_engine" {
  description = "OCR engine of media-image (ZAPFN_OCR_ENGINE): google-vision, tesseract (in the image) or off."
  type        = string
  default     = "google-vision"
}

variable "speech_engine" {
  description = "Speech engine of media-audio and media-video (ZAPFN_SPEECH_ENGINE): google-speech, pocketsphinx (English only, in the image) or off."
  type        = string
  default     = "google-speech"
}

variable "log_level" {
  description = "RUST_LOG filter of every function."
  type        = string
  default     = "info"
}

variable "sending_rate" {
  description = "Dispatches per second of the sending queue (Meta's default throughput per business number: 80/s)."
  type        = number
  default     = 80
}

variable "template_rate" {
  description = "Dispatches per second of the template queue (Meta's upgraded throughput: 1000/s)."
  type        = number
  default     = 1000
}

variable "media_upload_rate" {
  description = "Media uploads to Meta per second."
  type        = number
  default     = 50
}

variable "max_attempts" {
  description = "Attempts per task or event before it is dead-lettered (ZAPFN_MAX_ATTEMPTS, queues' max_attempts)."
  type        = number
  default     = 5
}

variable "max_retry_seconds" {
  description = "Age after which a task is no longer retried (ZAPFN_MAX_RETRY_SECONDS, queues' max_retry_duration)."
  type        = number
  default     = 300
}

variable "retention_days" {
  description = "Days media objects are kept in the bucket (lifecycle rule) and stored data is kept by the retention job (ZAPFN_RETENTION_DAYS of the send service)."
  type        = number
  default     = 90
}

variable "retention_schedule" {
  description = "Cron schedule (UTC) of the retention job."
  type        = string
  default     = "17 3 * * *"
}

variable "relay_schedule" {
  description = "Cron schedule (UTC) of the outbox relay sweep, which publishes events a crashed instance left unpublished."
  type        = string
  default     = "* * * * *"
}

variable "kms_key_name" {
  description = "Cloud KMS key for customer-managed encryption of the media bucket and the Pub/Sub topics; Google-managed keys when empty."
  type        = string
  default     = ""
}

variable "alert_emails" {
  description = "E-mail addresses notified by the alert policies."
  type        = list(string)
  default     = []
}

variable "enable_cloud_sql" {
  description = "Create a Cloud SQL PostgreSQL instance and run the store on it (ZAPFN_STORE=postgres) instead of Firestore."
  type        = bool
  default     = false
}

variable "cloud_sql_tier" {
  description = "Cloud SQL machine tier."
  type        = string
  default     = "db-custom-1-3840"
}

variable "cloud_sql_high_availability" {
  description = "Regional (high-availability) Cloud SQL instance."
  type        = bool
  default     = false
}

variable "enable_redis" {
  description = "Create a Memorystore for Redis instance and mount its URL as ZAPFN_REDIS_URL. No function reads it yet: pacing is the Cloud Tasks queue rate and per-key API limits are per instance, so leave it off unless you add code that uses it."
  type        = bool
  default     = false
}

variable "redis_memory_gb" {
  description = "Memorystore capacity in GiB."
  type        = number
  default     = 1
}

variable "network_cidr" {
  description = "Subnet range of the VPC created when Cloud SQL or Memorystore is enabled (Cloud Run reaches them by Direct VPC egress)."
  type        = string
  default     = "10.20.0.0/24"
}

variable "deletion_protection" {
  description = "Protect Firestore, Cloud SQL, the bucket and the services from `terraform destroy`."
  type        = bool
  default     = true
}
