output "dashboard_id" {
  description = "The Cloud Monitoring dashboard."
  value       = google_monitoring_dashboard.zapfn.id
}

output "alert_policies" {
  description = "Alert policy names."
  value = [
    google_monitoring_alert_policy.webhook_failures.name,
    google_monitoring_alert_policy.latency.name,
    google_monitoring_alert_policy.error_rate.name,
    google_monitoring_alert_policy.backlog.name,
    google_monitoring_alert_policy.dead_letters.name,
  ]
}
