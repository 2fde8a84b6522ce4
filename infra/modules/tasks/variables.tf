variable "project_id" {
  description = "Google Cloud project."
  type        = string
}

variable "region" {
  description = "Cloud Tasks location."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of queue and account names."
  type        = string
}

variable "queues" {
  description = "Queue => { rate (dispatches/s), concurrent (dispatches in flight) }."
  type        = map(object({ rate = number, concurrent = number }))
}

variable "max_attempts" {
  description = "Attempts per task (the first one included)."
  type        = number
}

variable "max_retry_seconds" {
  description = "Age after which a failing task is no longer retried."
  type        = number
}

variable "enqueuers" {
  description = "Name => { queue, member } allowed to add tasks."
  type        = map(object({ queue = string, member = string }))
  default     = {}
}

variable "enqueuer_members" {
  description = "Name => IAM member that creates tasks (acts as the tasks identity)."
  type        = map(string)
  default     = {}
}
