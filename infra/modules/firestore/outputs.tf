output "database" {
  description = "Firestore database id."
  value       = google_firestore_database.db.name
}

output "index_count" {
  description = "Composite indexes declared."
  value       = length(google_firestore_index.index)
}
