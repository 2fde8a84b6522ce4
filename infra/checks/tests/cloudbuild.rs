//! cloudbuild.yaml builds, pushes and deploys every function, after the tests.

use serde_json::Value;
use zapfn_infra_checks::*;

fn step<'a>(steps: &'a [Value], id: &str) -> &'a Value {
    steps
        .iter()
        .find(|s| text(&s["id"]) == id)
        .unwrap_or_else(|| panic!("cloudbuild.yaml has no step {id}"))
}

fn script(step: &Value) -> String {
    step["args"]
        .as_array()
        .map(|args| {
            args.iter()
                .map(|a| text(a).to_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn waits_for(step: &Value) -> Vec<String> {
    step["waitFor"]
        .as_array()
        .map(|ids| ids.iter().map(|id| text(id).to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn builds_tests_and_deploys_every_function_in_parallel() {
    let build = cloudbuild();
    for name in ["_REGION", "_REPOSITORY", "_PREFIX"] {
        assert!(
            build["substitutions"][name].is_string(),
            "substitution {name}"
        );
    }
    let steps = build["steps"].as_array().unwrap();
    assert!(
        script(step(steps, "test")).contains("bash .ci/run"),
        "tests run `make test` through .ci/run"
    );
    assert!(script(step(steps, "compile")).contains("scripts/build-functions.sh dist"));
    let specs = function_specs();
    for function in function_crates() {
        let spec = &specs[&function];
        let image = step(steps, &format!("image-{function}"));
        let build = script(image);
        let tag = format!("${{_REPOSITORY}}/{function}:${{COMMIT_SHA}}");
        assert!(
            build.contains(&format!("FUNCTION={function} ")),
            "{function}: {build}"
        );
        assert!(
            build.contains(&format!("VARIANT={}", text(&spec["variant"]))),
            "{function}: {build}"
        );
        let packages = text(&spec["packages"]);
        if !packages.is_empty() {
            assert!(
                build.contains(&format!("MEDIA_PACKAGES=\"{packages}\"")),
                "{function}: {build}"
            );
        }
        assert!(
            build.contains(&format!(
                "docker push ${{_REGION}}-docker.pkg.dev/${{PROJECT_ID}}/{tag}"
            )),
            "{function}: push"
        );
        let mut waits = waits_for(image);
        waits.sort();
        assert_eq!(
            waits,
            ["compile", "test"],
            "{function}: images only after the tests pass"
        );
        let deploy = step(steps, &format!("deploy-{function}"));
        assert_eq!(
            waits_for(deploy),
            [format!("image-{function}")],
            "{function}: deploys wait only for their image"
        );
        let command = script(deploy);
        assert!(
            command.contains(&format!(
                "gcloud run deploy ${{_PREFIX}}-{function} --image="
            )),
            "{command}"
        );
        assert!(command.contains(&tag), "{command}");
    }
    // No stray steps for functions that do not exist.
    for step in steps {
        let id = text(&step["id"]);
        if let Some(function) = id
            .strip_prefix("image-")
            .or_else(|| id.strip_prefix("deploy-"))
        {
            assert!(
                function_crates().contains(function),
                "step {id} for an unknown function"
            );
        }
    }
}
