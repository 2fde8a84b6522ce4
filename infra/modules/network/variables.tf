variable "project_id" {
  description = "Google Cloud project."
  type        = string
}

variable "region" {
  description = "Region of the subnet."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the network's names."
  type        = string
}

variable "cidr" {
  description = "Subnet range used by Cloud Run's Direct VPC egress."
  type        = string
}
