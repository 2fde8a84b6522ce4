variable "project_id" {
  description = "Google Cloud project."
  type        = string
}

variable "database" {
  description = "Firestore database id."
  type        = string
}

variable "location" {
  description = "Firestore location (region or multi-region)."
  type        = string
}

variable "indexes_file" {
  description = "The store's composite indexes, Firebase CLI format ({\"indexes\": [{collectionGroup, queryScope, fields: [{fieldPath, order|arrayConfig}]}]})."
  type        = string
}

variable "deletion_protection" {
  description = "Refuse to delete the database."
  type        = bool
  default     = true
}
