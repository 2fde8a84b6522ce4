output "member" {
  description = "IAM member of the Eventarc identity (grant it run.invoker on the targets)."
  value       = google_service_account.eventarc.member
}

output "triggers" {
  description = "Function => trigger name."
  value       = { for key, t in google_eventarc_trigger.finalized : key => t.name }
}

output "email" {
  description = "E-mail of the Eventarc identity."
  value       = google_service_account.eventarc.email
}
