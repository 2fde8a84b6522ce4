output "topic_ids" {
  description = "zapfn topic => Pub/Sub topic id (projects/…/topics/…)."
  value       = { for topic, t in google_pubsub_topic.topic : topic => t.id }
}

output "topic_names" {
  description = "zapfn topic => Pub/Sub topic name."
  value       = { for topic, t in google_pubsub_topic.topic : topic => t.name }
}

output "dead_letter_topic" {
  description = "The dead-letter topic name."
  value       = google_pubsub_topic.dead_letters.name
}

output "dead_letter_subscription" {
  description = "The pull subscription holding dead letters."
  value       = google_pubsub_subscription.dead_letters.name
}

output "subscription_names" {
  description = "<function>-<topic> => push subscription name."
  value       = { for key, s in google_pubsub_subscription.push : key => s.name }
}

output "push_member" {
  description = "IAM member of the push identity (grant it run.invoker on the targets)."
  value       = google_service_account.push.member
}

output "push_email" {
  description = "E-mail of the push identity (functions accept only its tokens)."
  value       = google_service_account.push.email
}
