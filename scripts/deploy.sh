#!/usr/bin/env bash
# One-command deploy to Google Cloud (after `gcloud auth login` and
# `gcloud auth application-default login`):
#
#   WA_ACCESS_TOKEN=… WA_APP_SECRET=… [WA_WABA_ID=…] make deploy PROJECT=my-project [REGION=us-central1]
#
# 1. enables the bootstrap APIs, creates the Terraform state and build-cache buckets;
# 2. creates the project-level resources (APIs, Artifact Registry) with Terraform;
# 3. stores the secrets in Secret Manager (values from the environment; the verify
#    token, API-key pepper and bootstrap API key are generated when unset);
# 4. Cloud Build: tests, compiles, pushes one image per function tagged with the commit;
# 5. terraform apply of everything with that tag (first deploy), or Cloud Build's own
#    parallel `gcloud run deploy` (later deploys; Terraform leaves images alone).
#
# Extra Terraform variables: put them in infra/terraform.tfvars (see the .example).
set -euo pipefail
cd "$(dirname "$0")/.."

project=${PROJECT:-${GOOGLE_CLOUD_PROJECT:-$(gcloud config get-value project 2>/dev/null)}}
region=${REGION:-us-central1}
prefix=${PREFIX:-zapfn}
repository=${REPOSITORY:-zapfn}
die() { echo "deploy: $*" >&2; exit 1; }
say() { echo "deploy: $*" >&2; }

[ -n "$project" ] || die "set PROJECT=<project id> (or gcloud config set project …)"
command -v gcloud >/dev/null || die "install the Google Cloud SDK (gcloud)"
command -v terraform >/dev/null || die "install Terraform >= 1.6"
gcloud auth print-access-token >/dev/null 2>&1 || die "run 'gcloud auth login' first"
gcloud auth application-default print-access-token >/dev/null 2>&1 \
    || die "run 'gcloud auth application-default login' first (Terraform uses it)"
[ -n "${WA_ACCESS_TOKEN:-}" ] || die "set WA_ACCESS_TOKEN (Meta app → WhatsApp → API setup; a system-user token for production)"
[ -n "${WA_APP_SECRET:-}" ] || die "set WA_APP_SECRET (Meta app → App settings → Basic → App secret)"
[ -z "$(git status --porcelain)" ] || say "warning: uncommitted changes are deployed under the last commit's tag"
tag=$(git rev-parse HEAD)

say "project $project, region $region, images tagged $tag"
gcloud services enable --project "$project" serviceusage.googleapis.com cloudresourcemanager.googleapis.com \
    cloudbuild.googleapis.com artifactregistry.googleapis.com storage.googleapis.com secretmanager.googleapis.com
for bucket in "$project-zapfn-tfstate" "$project-zapfn-build-cache"; do
    gcloud storage buckets describe "gs://$bucket" --project "$project" >/dev/null 2>&1 \
        || gcloud storage buckets create "gs://$bucket" --project "$project" --location "$region" \
            --uniform-bucket-level-access --public-access-prevention
done
gcloud storage buckets update "gs://$project-zapfn-tfstate" --versioning >/dev/null

tf() { terraform -chdir=infra "$@"; }
vars=(-var "project_id=$project" -var "region=$region" -var "name_prefix=$prefix"
      -var "artifact_repository=$repository" -var "image_tag=$tag")
tf init -input=false -reconfigure -backend-config="bucket=$project-zapfn-tfstate" >/dev/null
say "step 1/4: APIs, Artifact Registry, secrets"
tf apply -input=false -auto-approve "${vars[@]}" -target=module.project -target=module.secrets

# Secret values go straight to Secret Manager, never into Terraform state.
secret() { # secret KEY VALUE: adds a version when the value differs from the latest
    local id="$prefix-$1" current
    current=$(gcloud secrets versions access latest --secret "$id" --project "$project" 2>/dev/null || true)
    if [ "$current" != "$2" ]; then
        printf '%s' "$2" | gcloud secrets versions add "$id" --project "$project" --data-file=- >/dev/null
        say "secret $id updated"
    fi
}
existing() { gcloud secrets versions access latest --secret "$prefix-$1" --project "$project" 2>/dev/null || true; }
random() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
verify_token=${WA_VERIFY_TOKEN:-$(existing verify-token)}; verify_token=${verify_token:-$(random)}
pepper=${ZAPFN_KEY_PEPPER:-$(existing key-pepper)}; pepper=${pepper:-$(random)}
api_key=${ZAPFN_API_KEY:-$(existing api-key)}; api_key=${api_key:-zapfn_$(random)}
secret access-token "$WA_ACCESS_TOKEN"
secret app-secret "$WA_APP_SECRET"
secret verify-token "$verify_token"
secret key-pepper "$pepper"
secret api-key "$api_key"

first_deploy=true
gcloud run services describe "$prefix-webhook" --region "$region" --project "$project" >/dev/null 2>&1 && first_deploy=false
say "step 2/4: Cloud Build (make test, images, $([ $first_deploy = true ] && echo 'no deploy yet' || echo 'parallel deploy'))"
gcloud builds submit --project "$project" --region "$region" --config cloudbuild.yaml \
    --service-account="projects/$project/serviceAccounts/$prefix-build@$project.iam.gserviceaccount.com" \
    --substitutions="COMMIT_SHA=$tag,_REGION=$region,_REPOSITORY=$repository,_PREFIX=$prefix,_DEPLOY=$([ $first_deploy = true ] && echo false || echo true)" .

say "step 3/4: everything else (Terraform)"
tf apply -input=false -auto-approve "${vars[@]}"

say "step 4/4: check"
webhook_url=$(tf output -raw webhook_url)
api_url=$(tf output -raw api_url)
curl -fsS -o /dev/null "${api_url}/healthz" && say "send API answers /healthz" || say "warning: ${api_url}/healthz did not answer 200 yet"
# Meta sends a WABA's webhooks only to apps subscribed to it (POST /{waba-id}/subscribed_apps).
if [ -n "${WA_WABA_ID:-}" ]; then
    curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $WA_ACCESS_TOKEN" \
        "https://graph.facebook.com/${WA_API_VERSION:-v23.0}/$WA_WABA_ID/subscribed_apps" \
        && say "the Meta app is subscribed to WABA $WA_WABA_ID" \
        || say "warning: subscribing the Meta app to WABA $WA_WABA_ID failed (README \"Point Meta at it\")"
fi
cat <<EOT

zapfn is deployed.
  Meta webhook (App → WhatsApp → Configuration → Edit):
    Callback URL:  $webhook_url
    Verify token:  $verify_token
    then subscribe to the "messages" field.
  API:            $api_url   (Authorization: Bearer $api_key)
  Check it:       cargo run -p zapfn -- replay fixtures/webhooks/message_text.json --url $webhook_url --secret "\$WA_APP_SECRET"
  Roll back:      README "Deploy" → "Roll back" (every function to an older commit's images)
EOT
[ -n "${WA_WABA_ID:-}" ] || say "set WA_WABA_ID to subscribe the Meta app to your WABA, or do it by hand (README \"Point Meta at it\")"
