output "ip_address" {
  description = "The load balancer's address (point the domain's A record here); empty without one."
  value       = try(google_compute_global_address.edge[0].address, "")
}

output "webhook_host" {
  description = "Host serving /webhook; empty when the run.app URLs are used."
  value       = var.mode == "run_app" ? "" : var.domain
}

output "api_host" {
  description = "Host serving /v1; empty when the run.app URLs are used."
  value       = var.mode == "load_balancer" ? var.domain : (var.mode == "domain_mapping" ? "api.${var.domain}" : "")
}

output "dns_records" {
  description = "Records the domain mappings ask for."
  value = concat(
    try(google_cloud_run_domain_mapping.webhook[0].status[0].resource_records, []),
    try(google_cloud_run_domain_mapping.api[0].status[0].resource_records, []),
  )
}
