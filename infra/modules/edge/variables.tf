variable "project_id" {
  description = "Google Cloud project."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run services."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the load balancer's resource names."
  type        = string
}

variable "mode" {
  description = "load_balancer, domain_mapping or run_app (nothing created)."
  type        = string
}

variable "domain" {
  description = "Host name of the webhook and the API."
  type        = string
}

variable "services" {
  description = "Internet-facing function => Cloud Run service name (webhook and send)."
  type        = map(string)
}
