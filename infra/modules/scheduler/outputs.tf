output "member" {
  description = "IAM member of the scheduler identity (grant it run.invoker on the targets)."
  value       = google_service_account.scheduler.member
}

output "email" {
  description = "E-mail of the scheduler identity."
  value       = google_service_account.scheduler.email
}

output "jobs" {
  description = "Job => full name."
  value       = { for key, job in google_cloud_scheduler_job.job : key => job.id }
}
