variable "project_id" {
  description = "Google Cloud project."
  type        = string
}

variable "region" {
  description = "Region of the Artifact Registry repository."
  type        = string
}

variable "repository" {
  description = "Artifact Registry repository id."
  type        = string
}

variable "kms_key_name" {
  description = "Cloud KMS key for the repository; Google-managed when empty."
  type        = string
  default     = ""
}

variable "apis" {
  description = "APIs to enable."
  type        = list(string)
}

variable "name_prefix" {
  description = "Prefix of the build account's name."
  type        = string
}

variable "build_cache_bucket" {
  description = "Bucket of Cloud Build's cargo cache (scripts/deploy.sh creates it)."
  type        = string
}
