variable "project_id" {
  description = "Google Cloud project."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the secret ids."
  type        = string
}

variable "secrets" {
  description = "Secret key => environment variable it is mounted as."
  type        = map(string)
}
