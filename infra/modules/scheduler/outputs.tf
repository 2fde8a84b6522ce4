output "members" {
  description = "Job => IAM member of its identity (grant it run.invoker on the job's target only)."
  value       = { for key, account in google_service_account.job : key => account.member }
}

output "emails" {
  description = "Job => e-mail of its identity."
  value       = { for key, account in google_service_account.job : key => account.email }
}

output "jobs" {
  description = "Job => full name."
  value       = { for key, job in google_cloud_scheduler_job.job : key => job.id }
}
