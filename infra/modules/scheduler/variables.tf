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
  description = "Job => { uri, schedule (cron, UTC), description }. Job names become service account ids (<prefix>-job-<name>, at most 30 characters)."
  type        = map(object({ uri = string, schedule = string, description = string }))

  validation {
    condition     = alltrue([for key in keys(var.jobs) : can(regex("^[a-z][a-z0-9-]{0,13}$", key))])
    error_message = "Job names: lowercase letters, digits and dashes, starting with a letter, at most 14 characters (service account ids)."
  }
}
