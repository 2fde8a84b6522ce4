terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # State in a Cloud Storage bucket; scripts/deploy.sh creates it and passes
  # `-backend-config=bucket=<project>-zapfn-tfstate`.
  backend "gcs" {
    prefix = "zapfn"
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
