# The deployed topology: one Cloud Run service per crate in functions/ (infra/checks
# asserts that every crate is here, with an identity and a trigger, and that the
# subscriptions match each crate's `Subscription::new(topics::…)`).
#
#   public         reached from the internet through `var.edge` (Meta's webhook, API clients)
#   subscriptions  Pub/Sub push subscriptions: zapfn topic => attribute filter ("" = every message)
#   task_queues    Cloud Tasks queues (local.queues) whose HTTP target this function is
#   storage_events Eventarc `object.finalized` events of the media bucket
#   publishes      topics it may publish to; enqueues: queues it may add tasks to
#   bucket         media bucket access: none, read or write
#   secrets        keys of local.secrets mounted as environment variables
#   variant        image variant built by the Dockerfile: slim, or media (with packages)

locals {
  media_types = ["image", "sticker", "audio", "video", "document"]

  function_specs = {
    webhook = {
      variant        = "slim"
      packages       = ""
      public         = true
      cpu            = "1"
      memory         = "512Mi"
      concurrency    = 250
      min            = 0
      max            = 100
      timeout        = 30
      secrets        = ["app-secret", "verify-token"]
      publishes      = ["messages", "statuses"]
      enqueues       = []
      bucket         = "none"
      signs_urls     = false
      subscriptions  = {}
      task_queues    = []
      storage_events = false
    }
    send = {
      variant        = "slim"
      packages       = ""
      public         = true
      cpu            = "1"
      memory         = "512Mi"
      concurrency    = 250
      min            = 0
      max            = 50
      timeout        = 60
      secrets        = ["key-pepper", "api-key"]
      publishes      = []
      enqueues       = ["sending", "templates"]
      bucket         = "read"
      signs_urls     = true
      subscriptions  = {}
      task_queues    = []
      storage_events = false
    }
    status = {
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
      subscriptions  = { statuses = "" }
      task_queues    = []
      storage_events = false
    }
    text = {
      variant     = "slim"
      packages    = ""
      public      = false
      cpu         = "1"
      memory      = "256Mi"
      concurrency = 100
      min         = 0
      max         = 20
      timeout     = 60
      secrets     = []
      publishes   = []
      enqueues    = ["sending"]
      bucket      = "none"
      signs_urls  = false
      subscriptions = {
        messages    = "attributes.message_type = \"text\" OR attributes.message_type = \"interactive\" OR attributes.message_type = \"button\""
        transcripts = ""
      }
      task_queues    = []
      storage_events = false
    }
    dispatch = {
      variant        = "slim"
      packages       = ""
      public         = false
      cpu            = "1"
      memory         = "256Mi"
      concurrency    = 250
      min            = 0
      max            = 20
      timeout        = 60
      secrets        = ["access-token", "app-secret", "verify-token"]
      publishes      = []
      enqueues       = []
      bucket         = "read"
      signs_urls     = false
      subscriptions  = {}
      task_queues    = ["sending", "templates", "media-upload"]
      storage_events = false
    }
    media-fetch = {
      variant        = "slim"
      packages       = ""
      public         = false
      cpu            = "1"
      memory         = "512Mi"
      concurrency    = 20
      min            = 0
      max            = 20
      timeout        = 300
      secrets        = ["access-token", "app-secret", "verify-token"]
      publishes      = ["media"]
      enqueues       = []
      bucket         = "write"
      signs_urls     = false
      subscriptions  = { messages = join(" OR ", [for t in local.media_types : "attributes.message_type = \"${t}\""]) }
      task_queues    = []
      storage_events = false
    }
    media-image = {
      variant        = "media"
      packages       = "tesseract-ocr tesseract-ocr-eng tesseract-ocr-por"
      public         = false
      cpu            = "1"
      memory         = "1Gi"
      concurrency    = 4
      min            = 0
      max            = 10
      timeout        = 300
      secrets        = []
      publishes      = []
      enqueues       = []
      bucket         = "write"
      signs_urls     = false
      subscriptions  = { media = "attributes.message_type = \"image\" OR attributes.message_type = \"sticker\"" }
      task_queues    = []
      storage_events = false
    }
    media-audio = {
      variant        = "media"
      packages       = "ffmpeg pocketsphinx pocketsphinx-en-us"
      public         = false
      cpu            = "2"
      memory         = "2Gi"
      concurrency    = 2
      min            = 0
      max            = 10
      timeout        = 600
      secrets        = []
      publishes      = ["transcripts"]
      enqueues       = []
      bucket         = "write"
      signs_urls     = false
      subscriptions  = { media = "attributes.message_type = \"audio\"" }
      task_queues    = []
      storage_events = false
    }
    media-video = {
      variant        = "media"
      packages       = "ffmpeg pocketsphinx pocketsphinx-en-us"
      public         = false
      cpu            = "2"
      memory         = "2Gi"
      concurrency    = 2
      min            = 0
      max            = 10
      timeout        = 900
      secrets        = []
      publishes      = ["transcripts"]
      enqueues       = []
      bucket         = "write"
      signs_urls     = false
      subscriptions  = { media = "attributes.message_type = \"video\"" }
      task_queues    = []
      storage_events = false
    }
    media-document = {
      variant        = "media"
      packages       = "poppler-utils"
      public         = false
      cpu            = "1"
      memory         = "1Gi"
      concurrency    = 4
      min            = 0
      max            = 10
      timeout        = 300
      secrets        = []
      publishes      = []
      enqueues       = []
      bucket         = "read"
      signs_urls     = false
      subscriptions  = { media = "attributes.message_type = \"document\"" }
      task_queues    = []
      storage_events = false
    }
  }

  # Overrides from var.instances applied.
  functions = {
    for name, spec in local.function_specs : name => merge(spec, {
      min = coalesce(try(var.instances[name].min, null), spec.min)
      max = coalesce(try(var.instances[name].max, null), spec.max)
    })
  }

  # Pub/Sub topics (the event bus) and Cloud Tasks queues (outbound sends).
  topics = ["messages", "statuses", "media", "transcripts"]

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

  # Cloud Scheduler jobs: an authenticated POST to a function's path.
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
      description = "Deletes stored messages and events older than the retention period."
    }
  }
}
