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

variable "tier" {
  description = "Machine tier."
  type        = string
}

variable "high_availability" {
  description = "Regional instance with a standby."
  type        = bool
}

variable "network" {
  description = "VPC with private services access."
  type        = string
}

variable "deletion_protection" {
  description = "Refuse to delete the instance."
  type        = bool
  default     = true
}
