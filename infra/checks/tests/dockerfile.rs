//! The Dockerfile builds with the same script as Cloud Build and local checks, and
//! its build context keeps every workspace member.

use zapfn_infra_checks::*;

#[test]
fn images_build_with_the_shared_script_as_non_root_on_port() {
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains("scripts/build-functions.sh /out \"${FUNCTION}\""));
    assert!(dockerfile.contains("FROM gcr.io/distroless/cc-debian12:nonroot AS slim"));
    assert!(dockerfile.contains("USER 65532:65532"));
    assert!(dockerfile.contains("ZAPFN_HOST=0.0.0.0"));
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/zapfn-function\"]"));
    // The builder image's Debian release matches the runtimes' (same glibc).
    assert!(
        dockerfile.contains("-slim-bookworm AS builder")
            && dockerfile.contains("debian:bookworm-slim AS media")
    );
}

#[test]
fn build_context_keeps_every_workspace_member() {
    let manifest = read("Cargo.toml");
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("workspace members");
    let ignore = read(".dockerignore");
    let excluded: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('!'))
        .collect();
    let reincluded: Vec<&str> = ignore
        .lines()
        .filter_map(|line| line.trim().strip_prefix('!'))
        .collect();
    for member in members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
    {
        for pattern in &excluded {
            let prefix = pattern.trim_end_matches("/**").trim_end_matches('/');
            let hides = member == prefix || member.starts_with(&format!("{prefix}/"));
            let back = reincluded
                .iter()
                .any(|r| r.trim_end_matches("/**") == member);
            assert!(
                !hides || back,
                ".dockerignore pattern {pattern} hides workspace member {member}"
            );
        }
    }
}
