variable "project_id" {
  description = "Google Cloud project."
  type        = string
}

variable "project_number" {
  description = "Project number (names Pub/Sub's service agent)."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of topic, subscription and account names."
  type        = string
}

variable "topics" {
  description = "zapfn topics (topic ids are <name_prefix>-<topic>)."
  type        = list(string)
}

variable "subscriptions" {
  description = "Push subscriptions: the function, its zapfn topic, the attribute filter (\"\" = all), the push endpoint and the ack deadline."
  type = list(object({
    function             = string
    topic                = string
    filter               = string
    endpoint             = string
    ack_deadline_seconds = number
  }))
}

variable "publishers" {
  description = "Name => { topic, member } allowed to publish."
  type        = map(object({ topic = string, member = string }))
  default     = {}
}

variable "audience" {
  description = "Audience of the OIDC tokens on push requests (the functions check it: ZAPFN_PUSH_AUDIENCE)."
  type        = string
}

variable "max_delivery_attempts" {
  description = "Deliveries before a message goes to the dead-letter topic (5-100)."
  type        = number
  default     = 5
}

variable "kms_key_name" {
  description = "Cloud KMS key for the topics; Google-managed when empty."
  type        = string
  default     = ""
}
