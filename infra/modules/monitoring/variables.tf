variable "project_id" {
  description = "Google Cloud project."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the services, subscriptions and queues the metrics select."
  type        = string
}

variable "alert_emails" {
  description = "E-mail addresses notified by the alert policies."
  type        = list(string)
  default     = []
}

variable "latency_services" {
  description = "Cloud Run services on the message path whose p99 latency is alerted on (media processing is slow by nature)."
  type        = list(string)
}

variable "dead_letter_subscription" {
  description = "Subscription holding dead letters."
  type        = string
}
