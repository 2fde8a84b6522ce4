# How Meta and API clients reach zapfn on one host name:
#   load_balancer:  global external HTTPS load balancer, Google-managed certificate,
#                   /webhook → webhook function, everything else → send (the API);
#                   HTTP redirects to HTTPS.
#   domain_mapping: Cloud Run domain mappings, <domain> → webhook, api.<domain> → send.

locals {
  lb      = var.mode == "load_balancer" ? 1 : 0
  mapping = var.mode == "domain_mapping" ? 1 : 0
}

resource "google_compute_global_address" "edge" {
  count = local.lb

  project = var.project_id
  name    = "${var.name_prefix}-edge"
}

resource "google_compute_managed_ssl_certificate" "edge" {
  count = local.lb

  project = var.project_id
  name    = "${var.name_prefix}-edge"

  managed {
    domains = [var.domain]
  }
}

resource "google_compute_ssl_policy" "modern" {
  count = local.lb

  project         = var.project_id
  name            = "${var.name_prefix}-modern-tls"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_region_network_endpoint_group" "fn" {
  for_each = local.lb == 1 ? var.services : {}

  project               = var.project_id
  name                  = "${var.name_prefix}-${each.key}"
  region                = var.region
  network_endpoint_type = "SERVERLESS"

  cloud_run {
    service = each.value
  }
}

resource "google_compute_backend_service" "fn" {
  for_each = local.lb == 1 ? var.services : {}

  project               = var.project_id
  name                  = "${var.name_prefix}-${each.key}"
  protocol              = "HTTPS"
  load_balancing_scheme = "EXTERNAL_MANAGED"

  backend {
    group = google_compute_region_network_endpoint_group.fn[each.key].id
  }

  log_config {
    enable      = true
    sample_rate = 1
  }
}

resource "google_compute_url_map" "https" {
  count = local.lb

  project         = var.project_id
  name            = "${var.name_prefix}-edge"
  default_service = google_compute_backend_service.fn["send"].id

  host_rule {
    hosts        = [var.domain]
    path_matcher = "zapfn"
  }

  path_matcher {
    name            = "zapfn"
    default_service = google_compute_backend_service.fn["send"].id

    path_rule {
      paths   = ["/webhook", "/webhook/*"]
      service = google_compute_backend_service.fn["webhook"].id
    }
  }
}

resource "google_compute_target_https_proxy" "edge" {
  count = local.lb

  project          = var.project_id
  name             = "${var.name_prefix}-edge"
  url_map          = google_compute_url_map.https[0].id
  ssl_certificates = [google_compute_managed_ssl_certificate.edge[0].id]
  ssl_policy       = google_compute_ssl_policy.modern[0].id
}

resource "google_compute_global_forwarding_rule" "https" {
  count = local.lb

  project               = var.project_id
  name                  = "${var.name_prefix}-https"
  ip_address            = google_compute_global_address.edge[0].id
  port_range            = "443"
  target                = google_compute_target_https_proxy.edge[0].id
  load_balancing_scheme = "EXTERNAL_MANAGED"
}

resource "google_compute_url_map" "redirect" {
  count = local.lb

  project = var.project_id
  name    = "${var.name_prefix}-redirect"

  default_url_redirect {
    https_redirect         = true
    redirect_response_code = "MOVED_PERMANENTLY_DEFAULT"
    strip_query            = false
  }
}

resource "google_compute_target_http_proxy" "redirect" {
  count = local.lb

  project = var.project_id
  name    = "${var.name_prefix}-redirect"
  url_map = google_compute_url_map.redirect[0].id
}

resource "google_compute_global_forwarding_rule" "http" {
  count = local.lb

  project               = var.project_id
  name                  = "${var.name_prefix}-http"
  ip_address            = google_compute_global_address.edge[0].id
  port_range            = "80"
  target                = google_compute_target_http_proxy.redirect[0].id
  load_balancing_scheme = "EXTERNAL_MANAGED"
}

resource "google_cloud_run_domain_mapping" "webhook" {
  count = local.mapping

  project  = var.project_id
  location = var.region
  name     = var.domain

  metadata {
    namespace = var.project_id
  }

  spec {
    route_name = var.services["webhook"]
  }
}

resource "google_cloud_run_domain_mapping" "api" {
  count = local.mapping

  project  = var.project_id
  location = var.region
  name     = "api.${var.domain}"

  metadata {
    namespace = var.project_id
  }

  spec {
    route_name = var.services["send"]
  }
}
