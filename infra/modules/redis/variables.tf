variable "project_id" {
  description = "Google Cloud project."
  type        = string
}

variable "region" {
  description = "Instance region."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the instance and secret names."
  type        = string
}

variable "memory_gb" {
  description = "Capacity in GiB."
  type        = number
}

variable "high_availability" {
  description = "Standard tier with a replica."
  type        = bool
  default     = false
}

variable "network" {
  description = "VPC with private services access."
  type        = string
}
