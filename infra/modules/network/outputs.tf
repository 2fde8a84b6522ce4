output "network" {
  description = "VPC id."
  value       = google_compute_network.vpc.id
}

output "subnetwork" {
  description = "Subnet id for Direct VPC egress."
  value       = google_compute_subnetwork.run.id
}

output "peering" {
  description = "The private services connection (depend on it before creating private instances)."
  value       = google_service_networking_connection.services.id
}
