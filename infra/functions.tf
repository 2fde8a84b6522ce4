# The deployed topology: one Cloud Run service per crate in functions/ (infra/checks
# asserts that every crate is here, with an identity and a trigger, that the
# subscriptions match each crate's `Subscription::new(topics::…)`, that `publishes` and
# `enqueues` match the events its code writes, and that `bucket` covers what it does
# with media objects).
#
# Each entry lists only what differs from local.function_defaults:
#   public         reached from the internet through `var.edge` (Meta's webhook, API clients)
#   subscriptions  Pub/Sub push subscriptions: zapfn topic => attribute filter ("" = every message)
#   task_queues    Cloud Tasks queues (local.queues) whose HTTP target this function is
#   storage_events Eventarc `object.finalized` events of the media bucket, posted to the
#                  function's `media` handler (/_eventarc/media): how the processors are
#                  triggered deployed, instead of `media` events (media-fetch runs with
#                  ZAPFN_MEDIA_TRIGGER=storage and publishes none). Eventarc filters Cloud
#                  Storage events by bucket only, so every object of the bucket reaches
#                  every processor; each acts only on originals media-fetch recorded as
#                  stored (`{pnid}/{message id}/original.*`) of its own message types,
#                  and ignores its own derived files (thumb.webp, poster.jpg).
#   publishes      topics its code writes events to (its outbox relay publishes them)
#   enqueues       queues it may add tasks to (it writes `dispatch` events: a send)
#   bucket         media bucket access: none, read, read-delete (read and delete, no
#                  create or overwrite) or write (create, read, overwrite, delete)
#   signs_urls     signs V4 URLs of media objects (IAM signBlob on its own account)
#   secrets        keys of local.secrets mounted as environment variables
#   env            environment variables of this function only (local.common_env: all)
#   variant        image variant built by the Dockerfile: slim, or media (with packages)
#   timeout        request timeout (s); a media function's covers its longest run, the lease
#                  its code states (infra/checks/tests/timeouts.rs). Pub/Sub redelivers a
#                  push left unanswered for 600 s (its longest ack deadline): a longer run
#                  may be repeated, and its redelivery changes nothing stored (README).

locals {
  media_types = ["image", "sticker", "audio", "video", "document"]

  function_defaults = {
    variant        = "slim"
    packages       = ""
    public         = false
    cpu            = "1"
    memory         = "256Mi"
    concurrency    = 100
    min            = 0
    max            = 20
    timeout        = 60
    secrets        = []
    publishes      = []
    enqueues       = []
    bucket         = "none"
    signs_urls     = false
    subscriptions  = {}
    task_queues    = []
    storage_events = false
    env            = {}
  }

  function_specs = {
    webhook = {
      public      = true
      memory      = "512Mi"
      concurrency = 250
      max         = 100
      timeout     = 30
      secrets     = ["app-secret", "verify-token"]
      publishes   = ["messages", "statuses"]
    }
    send = {
      public      = true
      memory      = "512Mi"
      concurrency = 250
      max         = 50
      secrets     = ["key-pepper", "api-key"]
      enqueues    = ["sending"]
      # GET /v1/media/{id} reads objects and redirects to V4 URLs it signs; erasure
      # deletes a customer's objects. It never creates or overwrites one.
      bucket     = "read-delete"
      signs_urls = true
      # POST /_jobs/retention (local.jobs.retention) deletes data older than this.
      env = { ZAPFN_RETENTION_DAYS = tostring(var.retention_days) }
    }
    status = {
      subscriptions = { statuses = "" }
    }
    text = {
      enqueues = ["sending"]
      subscriptions = {
        messages    = "attributes.message_type = \"text\" OR attributes.message_type = \"interactive\" OR attributes.message_type = \"button\""
        transcripts = ""
      }
    }
    dispatch = {
      concurrency = 250
      secrets     = ["access-token", "app-secret", "verify-token"]
      bucket      = "read"
      task_queues = ["sending", "templates", "media-upload"]
    }
    media-fetch = {
      memory        = "512Mi"
      concurrency   = 20
      timeout       = 540
      secrets       = ["access-token", "app-secret", "verify-token"]
      bucket        = "write"
      subscriptions = { messages = join(" OR ", [for t in local.media_types : "attributes.message_type = \"${t}\""]) }
      # The stored original's object.finalized event starts the processors.
      env = { ZAPFN_MEDIA_TRIGGER = "storage" }
    }
    media-image = {
      variant        = "media"
      packages       = "tesseract-ocr tesseract-ocr-eng tesseract-ocr-por"
      memory         = "1Gi"
      concurrency    = 4
      max            = 10
      timeout        = 300
      bucket         = "write"
      storage_events = true
    }
    media-audio = {
      variant        = "media"
      packages       = "ffmpeg pocketsphinx pocketsphinx-en-us"
      cpu            = "2"
      memory         = "2Gi"
      concurrency    = 2
      max            = 10
      timeout        = 1200
      publishes      = ["transcripts"]
      bucket         = "read"
      storage_events = true
    }
    media-video = {
      variant        = "media"
      packages       = "ffmpeg pocketsphinx pocketsphinx-en-us"
      cpu            = "2"
      memory         = "2Gi"
      concurrency    = 2
      max            = 10
      timeout        = 1320
      bucket         = "write"
      storage_events = true
    }
    media-document = {
      variant        = "media"
      packages       = "poppler-utils"
      memory         = "1Gi"
      concurrency    = 4
      max            = 10
      timeout        = 300
      bucket         = "read"
      storage_events = true
    }
  }

  # Every setting of every function, then the overrides from var.instances.
  function_catalog = {
    for name, spec in local.function_specs : name => merge(local.function_defaults, spec)
  }
  functions = {
    for name, f in local.function_catalog : name => merge(f, {
      min = coalesce(try(var.instances[name].min, null), f.min)
      max = coalesce(try(var.instances[name].max, null), f.max)
    })
  }

  # Pub/Sub topics (the event bus) and Cloud Tasks queues (outbound sends).
  # No `media` topic: deployed, the processors are triggered by storage events.
  topics = ["messages", "statuses", "transcripts"]

  queues = {
    sending      = { rate = var.sending_rate, concurrent = 500 }
    templates    = { rate = var.template_rate, concurrent = 1000 }
    media-upload = { rate = var.media_upload_rate, concurrent = 100 }
  }

  # Secret Manager secrets: key => environment variable. Values are added by
  # scripts/deploy.sh (`gcloud secrets versions add`), never stored in Terraform state.
  secrets = {
    app-secret   = "WA_APP_SECRET"
    verify-token = "WA_VERIFY_TOKEN"
    access-token = "WA_ACCESS_TOKEN"
    key-pepper   = "ZAPFN_KEY_PEPPER"
    api-key      = "ZAPFN_API_KEY"
  }

  # Cloud Scheduler jobs: a POST to a function's path with an OIDC token of the job's
  # own service account, which may invoke that function only (modules/scheduler).
  jobs = {
    relay = {
      function    = "webhook"
      path        = "/_relay"
      schedule    = var.relay_schedule
      description = "Publishes outbox events that an instance stored but did not publish (crash between commit and publish)."
    }
    retention = {
      function    = "send"
      path        = "/_jobs/retention"
      schedule    = var.retention_schedule
      description = "Deletes stored messages, events and media older than the retention period (ZAPFN_RETENTION_DAYS)."
    }
  }
}
