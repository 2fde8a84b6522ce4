variable "project_id" {
  description = "Google Cloud project."
  type        = string
}

variable "region" {
  description = "Cloud Run region."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the service and service account names."
  type        = string
}

variable "name" {
  description = "Function name (the crate in functions/)."
  type        = string
}

variable "image" {
  description = "Container image the service is created with."
  type        = string
}

variable "cpu" {
  description = "vCPUs per instance."
  type        = string
}

variable "memory" {
  description = "Memory per instance (e.g. 512Mi)."
  type        = string
}

variable "concurrency" {
  description = "Requests one instance handles at once."
  type        = number
}

variable "min_instances" {
  description = "Instances kept warm (0 scales to zero)."
  type        = number
}

variable "max_instances" {
  description = "Upper bound of instances."
  type        = number
}

variable "timeout_seconds" {
  description = "Request timeout."
  type        = number
}

variable "execution_environment" {
  description = "EXECUTION_ENVIRONMENT_GEN1 (faster cold starts) or EXECUTION_ENVIRONMENT_GEN2 (full Linux compatibility, for the media tools)."
  type        = string
  default     = "EXECUTION_ENVIRONMENT_GEN1"
}

variable "ingress" {
  description = "INGRESS_TRAFFIC_ALL, INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER or INGRESS_TRAFFIC_INTERNAL_ONLY."
  type        = string
}

variable "public" {
  description = "Allow unauthenticated invocations (the function authenticates callers itself)."
  type        = bool
}

variable "invokers" {
  description = "Name => IAM member (a service account) allowed to invoke the service: push, task, event and scheduler identities. They are also the only callers whose OIDC tokens its internal routes accept (ZAPFN_PUSH_SERVICE_ACCOUNTS)."
  type        = map(string)

  # With ZAPFN_PUSH_SERVICE_ACCOUNTS empty the function would accept a token of any
  # Google service account minted for the audience.
  validation {
    condition     = length(var.invokers) > 0 && alltrue([for member in values(var.invokers) : startswith(member, "serviceAccount:")])
    error_message = "Every function needs at least one invoking service account (a subscription, task queue, storage events or a job)."
  }
}

variable "custom_audiences" {
  description = "Extra OIDC audiences Cloud Run accepts for authenticated invocations."
  type        = list(string)
  default     = []
}

variable "env" {
  description = "Plain environment variables (ZAPFN_PUSH_SERVICE_ACCOUNTS is set from var.invokers)."
  type        = map(string)
}

variable "secret_env" {
  description = "Environment variable => Secret Manager secret id (latest version)."
  type        = map(string)
  default     = {}
}

variable "signs_urls" {
  description = "The function signs Cloud Storage URLs (needs signBlob on its own account)."
  type        = bool
  default     = false
}

variable "firestore_database" {
  description = "Firestore database the function may use; none when empty."
  type        = string
  default     = ""
}

variable "cloud_sql_instance" {
  description = "Cloud SQL connection name mounted at /cloudsql; none when empty."
  type        = string
  default     = ""
}

variable "vpc" {
  description = "Direct VPC egress (to Cloud SQL / Memorystore private IPs); none when null."
  type        = object({ network = string, subnetwork = string })
  default     = null
}

variable "deletion_protection" {
  description = "Refuse to delete the service."
  type        = bool
  default     = true
}

variable "deployer" {
  description = "IAM member that deploys new revisions (Cloud Build's identity)."
  type        = string
}
