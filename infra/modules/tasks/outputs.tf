output "queue_ids" {
  description = "Queue => full name (projects/P/locations/L/queues/Q)."
  value       = { for key, q in google_cloud_tasks_queue.queue : key => q.id }
}

output "tasks_member" {
  description = "IAM member of the tasks identity (grant it run.invoker on the target)."
  value       = google_service_account.tasks.member
}

output "tasks_email" {
  description = "E-mail of the tasks identity."
  value       = google_service_account.tasks.email
}
