output "webhook_url" {
  description = "Callback URL to enter in Meta's app dashboard (WhatsApp → Configuration)."
  value       = module.edge.webhook_host == "" ? "${module.service["webhook"].uri}/webhook" : "https://${module.edge.webhook_host}/webhook"
}

output "api_url" {
  description = "Base URL of the send and read API (/v1/…)."
  value       = module.edge.api_host == "" ? module.service["send"].uri : "https://${module.edge.api_host}"
}

output "load_balancer_ip" {
  description = "Point the domain's A record here (edge = load_balancer)."
  value       = module.edge.ip_address
}

output "dns_records" {
  description = "DNS records the domain mappings ask for (edge = domain_mapping)."
  value       = module.edge.dns_records
}

output "services" {
  description = "Function => Cloud Run service URL."
  value       = { for name in keys(local.functions) : name => module.service[name].uri }
}

output "image_base" {
  description = "Where Cloud Build pushes the images."
  value       = module.project.image_base
}

output "media_bucket" {
  description = "Media bucket."
  value       = module.storage.bucket
}

output "topics" {
  description = "zapfn topic => Pub/Sub topic."
  value       = module.pubsub.topic_names
}

output "queues" {
  description = "Cloud Tasks queues."
  value       = module.tasks.queue_ids
}

output "secrets" {
  description = "Secret key => Secret Manager secret id (scripts/deploy.sh adds the values)."
  value       = module.secrets.ids
}

output "dead_letter_subscription" {
  description = "Pull subscription holding dead letters."
  value       = module.pubsub.dead_letter_subscription
}

output "dashboard" {
  description = "Cloud Monitoring dashboard id."
  value       = module.monitoring.dashboard_id
}

output "build_service_account" {
  description = "The identity Cloud Build runs as."
  value       = module.project.build_service_account
}
