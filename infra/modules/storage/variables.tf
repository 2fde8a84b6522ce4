variable "project_id" {
  description = "Google Cloud project."
  type        = string
}

variable "region" {
  description = "Bucket location (the functions' region keeps traffic regional)."
  type        = string
}

variable "name_prefix" {
  description = "Part of the bucket name (<project>-<prefix>-media)."
  type        = string
}

variable "retention_days" {
  description = "Days after which media objects are deleted."
  type        = number
}

variable "kms_key_name" {
  description = "Cloud KMS key for the bucket; Google-managed when empty."
  type        = string
  default     = ""
}

variable "readers" {
  description = "Name => IAM member that reads objects."
  type        = map(string)
  default     = {}
}

variable "deleters" {
  description = "Name => IAM member that deletes objects (and nothing else; grant read through readers)."
  type        = map(string)
  default     = {}
}

variable "writers" {
  description = "Name => IAM member that creates, reads, overwrites and deletes objects."
  type        = map(string)
  default     = {}
}

variable "deletion_protection" {
  description = "Refuse to delete a bucket that still has objects."
  type        = bool
  default     = true
}
