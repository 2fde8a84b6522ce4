variable "project_id" {
  description = "Google Cloud project."
  type        = string
}

variable "region" {
  description = "Cloud Scheduler region."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of job and account names."
  type        = string
}

variable "audience" {
  description = "Audience of the jobs' OIDC tokens (accepted by Cloud Run and checked by the functions)."
  type        = string
}

variable "jobs" {
  description = "Job => { uri, schedule (cron, UTC), description }."
  type        = map(object({ uri = string, schedule = string, description = string }))
}
