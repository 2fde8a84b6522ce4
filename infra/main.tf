# zapfn on Google Cloud. The topology (which function is triggered by what) is
# the catalog in functions.tf; this file wires one module per concern.

locals {
  prefix  = var.name_prefix
  sql     = var.enable_cloud_sql ? 1 : 0
  redis   = var.enable_redis ? 1 : 0
  network = var.enable_cloud_sql || var.enable_redis ? 1 : 0

  # Audience of every OIDC token Google attaches for zapfn (Pub/Sub pushes, tasks,
  # events, scheduler jobs): Cloud Run accepts it (custom audience) and the
  # functions check it (ZAPFN_PUSH_AUDIENCE).
  audience = "${local.prefix}-push:${var.project_id}"

  # Cloud Run's deterministic URL (https://SERVICE-PROJECT_NUMBER.REGION.run.app):
  # the task target is known before the dispatch service exists.
  run_url = { for name in keys(local.functions) :
    name => "https://${local.prefix}-${name}-${module.project.project_number}.${var.region}.run.app"
  }

  apis = concat([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "compute.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "serviceusage.googleapis.com",
    "speech.googleapis.com",
    "storage.googleapis.com",
    "vision.googleapis.com",
    ],
    local.network == 1 ? ["servicenetworking.googleapis.com"] : [],
    var.enable_cloud_sql ? ["sqladmin.googleapis.com"] : [],
    var.enable_redis ? ["redis.googleapis.com"] : [],
    var.kms_key_name == "" ? [] : ["cloudkms.googleapis.com"],
  )

  # Settings every function reads (README "Configuration").
  common_env = {
    GOOGLE_CLOUD_PROJECT        = var.project_id
    RUST_LOG                    = var.log_level
    WA_API_VERSION              = var.wa_api_version
    WA_PHONE_NUMBER_ID          = var.wa_phone_number_id
    ZAPFN_MAX_ATTEMPTS          = tostring(var.max_attempts)
    ZAPFN_MAX_RETRY_SECONDS     = tostring(var.max_retry_seconds)
    ZAPFN_STORE                 = var.enable_cloud_sql ? "postgres" : "firestore"
    ZAPFN_FIRESTORE_DATABASE    = module.firestore.database
    ZAPFN_BLOBS                 = "gcs"
    ZAPFN_MEDIA_BUCKET          = module.storage.bucket
    ZAPFN_BUS                   = "pubsub"
    ZAPFN_TOPIC_PREFIX          = "${local.prefix}-"
    ZAPFN_TASKS                 = "cloudtasks"
    ZAPFN_TASKS_QUEUE           = module.tasks.queue_ids["sending"]
    ZAPFN_DISPATCH_URL          = "${local.run_url["dispatch"]}/_tasks/dispatch"
    ZAPFN_TASKS_SERVICE_ACCOUNT = module.tasks.tasks_email
    ZAPFN_PUSH_AUDIENCE         = local.audience
    ZAPFN_OCR_ENGINE            = var.ocr_engine
    ZAPFN_SPEECH_ENGINE         = var.speech_engine
  }

  relay_function = local.jobs.relay.function

  # The identities Google calls each function as: each gets run.invoker on that
  # function only, and they are the only callers whose OIDC tokens the function
  # accepts on its push, task, event and job routes (ZAPFN_PUSH_SERVICE_ACCOUNTS,
  # modules/service).
  invokers = {
    for name, f in local.functions : name => merge(
      length(f.subscriptions) > 0 ? { push = module.pubsub.push_member } : {},
      length(f.task_queues) > 0 ? { tasks = module.tasks.tasks_member } : {},
      f.storage_events ? { events = module.eventarc.member } : {},
      { for key, job in local.jobs : "job-${key}" => module.scheduler.members[key] if job.function == name },
    )
  }

  secret_env = {
    for name, f in local.functions : name => merge(
      { for key in f.secrets : local.secrets[key] => module.secrets.ids[key] },
      var.enable_cloud_sql ? { ZAPFN_DATABASE_URL = module.sql[0].url_secret_id } : {},
      var.enable_redis ? { ZAPFN_REDIS_URL = module.redis[0].url_secret_id } : {},
    )
  }
}

module "project" {
  source = "./modules/project"

  project_id         = var.project_id
  region             = var.region
  repository         = var.artifact_repository
  kms_key_name       = var.kms_key_name
  apis               = local.apis
  name_prefix        = local.prefix
  build_cache_bucket = "${var.project_id}-zapfn-build-cache"
}

module "secrets" {
  source     = "./modules/secrets"
  depends_on = [module.project]

  project_id  = var.project_id
  name_prefix = local.prefix
  secrets     = local.secrets
}

module "firestore" {
  source     = "./modules/firestore"
  depends_on = [module.project]

  project_id          = var.project_id
  database            = local.prefix
  location            = var.firestore_location == "" ? var.region : var.firestore_location
  indexes_file        = "${path.module}/../shared/store-firestore/indexes.json"
  deletion_protection = var.deletion_protection
}

module "storage" {
  source     = "./modules/storage"
  depends_on = [module.project]

  project_id          = var.project_id
  region              = var.region
  name_prefix         = local.prefix
  retention_days      = var.retention_days
  kms_key_name        = var.kms_key_name
  deletion_protection = var.deletion_protection
  readers = {
    for name, f in local.functions : name => module.service[name].service_account_member if contains(["read", "read-delete"], f.bucket)
  }
  deleters = {
    for name, f in local.functions : name => module.service[name].service_account_member if f.bucket == "read-delete"
  }
  writers = {
    for name, f in local.functions : name => module.service[name].service_account_member if f.bucket == "write"
  }
}

module "network" {
  source     = "./modules/network"
  count      = local.network
  depends_on = [module.project]

  project_id  = var.project_id
  region      = var.region
  name_prefix = local.prefix
  cidr        = var.network_cidr
}

module "sql" {
  source     = "./modules/sql"
  count      = local.sql
  depends_on = [module.network]

  project_id          = var.project_id
  region              = var.region
  name_prefix         = local.prefix
  tier                = var.cloud_sql_tier
  high_availability   = var.cloud_sql_high_availability
  network             = module.network[0].network
  deletion_protection = var.deletion_protection
}

module "redis" {
  source     = "./modules/redis"
  count      = local.redis
  depends_on = [module.network]

  project_id  = var.project_id
  region      = var.region
  name_prefix = local.prefix
  memory_gb   = var.redis_memory_gb
  network     = module.network[0].network
}

module "service" {
  source   = "./modules/service"
  for_each = local.functions

  project_id            = var.project_id
  region                = var.region
  name_prefix           = local.prefix
  name                  = each.key
  image                 = "${module.project.image_base}/${each.key}:${var.image_tag}"
  cpu                   = each.value.cpu
  memory                = each.value.memory
  concurrency           = each.value.concurrency
  min_instances         = each.value.min
  max_instances         = each.value.max
  timeout_seconds       = each.value.timeout
  execution_environment = each.value.variant == "media" ? "EXECUTION_ENVIRONMENT_GEN2" : "EXECUTION_ENVIRONMENT_GEN1"
  public                = each.value.public
  ingress = (each.value.public
    ? (var.edge == "load_balancer" ? "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER" : "INGRESS_TRAFFIC_ALL")
  : "INGRESS_TRAFFIC_INTERNAL_ONLY")
  invokers         = local.invokers[each.key]
  custom_audiences = [local.audience]
  # A private service's Cloud Run checks the OIDC token (IAM) and forwards it with
  # its signature removed: the function then checks the claims alone.
  env                 = merge(local.common_env, each.value.env, each.value.public ? {} : { ZAPFN_PUSH_VERIFIED_BY = "cloud-run" })
  secret_env          = local.secret_env[each.key]
  signs_urls          = each.value.signs_urls
  firestore_database  = var.enable_cloud_sql ? "" : local.prefix
  cloud_sql_instance  = ""
  vpc                 = local.network == 1 ? { network = module.network[0].network, subnetwork = module.network[0].subnetwork } : null
  deletion_protection = var.deletion_protection
  deployer            = module.project.build_member

  depends_on = [module.project]
}

module "pubsub" {
  source     = "./modules/pubsub"
  depends_on = [module.project]

  project_id            = var.project_id
  project_number        = module.project.project_number
  name_prefix           = local.prefix
  topics                = local.topics
  audience              = local.audience
  max_delivery_attempts = var.max_attempts
  kms_key_name          = var.kms_key_name
  subscriptions = flatten([
    for name, f in local.functions : [
      for topic, filter in f.subscriptions : {
        function             = name
        topic                = topic
        filter               = filter
        endpoint             = "${module.service[name].uri}/_push/${topic}"
        ack_deadline_seconds = min(max(f.timeout, 10), 600)
      }
    ]
  ])
  publishers = merge(
    merge([
      for name, f in local.functions : {
        for topic in f.publishes : "${name}-${topic}" => { topic = topic, member = module.service[name].service_account_member }
      }
    ]...),
    # The relay sweep republishes any topic's unpublished events.
    { for topic in local.topics : "relay-${topic}" => { topic = topic, member = module.service[local.relay_function].service_account_member } },
  )
}

module "tasks" {
  source     = "./modules/tasks"
  depends_on = [module.project]

  project_id        = var.project_id
  region            = var.region
  name_prefix       = local.prefix
  queues            = local.queues
  max_attempts      = var.max_attempts
  max_retry_seconds = var.max_retry_seconds
  enqueuers = merge(
    merge([
      for name, f in local.functions : {
        for queue in f.enqueues : "${name}-${queue}" => { queue = queue, member = module.service[name].service_account_member }
      }
    ]...),
    { relay = { queue = "sending", member = module.service[local.relay_function].service_account_member } },
  )
  enqueuer_members = merge(
    { for name, f in local.functions : name => module.service[name].service_account_member if length(f.enqueues) > 0 },
    { (local.relay_function) = module.service[local.relay_function].service_account_member },
  )
}

module "eventarc" {
  source     = "./modules/eventarc"
  depends_on = [module.project]

  project_id       = var.project_id
  region           = var.region
  name_prefix      = local.prefix
  bucket           = module.storage.bucket
  gcs_agent_member = module.storage.gcs_agent_member
  # The runtime serves a function's handlers of topic T at /_eventarc/T; the
  # processors' `media` handler takes the stored original's object.finalized event.
  targets = {
    for name, f in local.functions : name => { service = module.service[name].name, path = "/_eventarc/media" } if f.storage_events
  }
}

module "scheduler" {
  source     = "./modules/scheduler"
  depends_on = [module.project]

  project_id  = var.project_id
  region      = var.region
  name_prefix = local.prefix
  audience    = local.audience
  jobs = {
    for key, job in local.jobs : key => {
      uri         = "${module.service[job.function].uri}${job.path}"
      schedule    = job.schedule
      description = job.description
    }
  }
}

module "edge" {
  source     = "./modules/edge"
  depends_on = [module.project]

  project_id  = var.project_id
  region      = var.region
  name_prefix = local.prefix
  mode        = var.edge
  domain      = var.domain
  services = {
    webhook = module.service["webhook"].name
    send    = module.service["send"].name
  }
}

module "monitoring" {
  source     = "./modules/monitoring"
  depends_on = [module.project]

  project_id               = var.project_id
  name_prefix              = local.prefix
  alert_emails             = var.alert_emails
  latency_services         = [for name in ["webhook", "send", "status", "text", "dispatch"] : "${local.prefix}-${name}"]
  dead_letter_subscription = module.pubsub.dead_letter_subscription
}
