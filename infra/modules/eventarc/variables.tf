variable "project_id" {
  description = "Google Cloud project."
  type        = string
}

variable "region" {
  description = "Trigger location (the bucket's region)."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of trigger and account names."
  type        = string
}

variable "bucket" {
  description = "Bucket whose finalized objects trigger the functions."
  type        = string
}

variable "gcs_agent_member" {
  description = "Cloud Storage's service agent as an IAM member."
  type        = string
}

variable "targets" {
  description = "Function => { service (Cloud Run service name), path (the function's event endpoint) }."
  type        = map(object({ service = string, path = string }))
}
